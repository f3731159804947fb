#!/usr/bin/env bash
# Build (or reuse) a local stand-in for the official Python image (see the Dockerfile beside this script) on the
# local Debian base (.ci/debian-base.sh), without any image registry. Needs root, debootstrap and a running
# Docker engine.
#
#   .ci/python-image/build.sh                   # builds local/python:slim unless it exists
#   AEGRA_IMAGE_REBUILD=1 .ci/python-image/build.sh
#
# Settings (environment): AEGRA_TEST_PYTHON_IMAGE (the tag, default local/python:slim), DEBIAN_SUITE, DEBIAN_MIRROR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image="${AEGRA_TEST_PYTHON_IMAGE:-local/python:slim}"

if [ -z "${AEGRA_IMAGE_REBUILD:-}" ] && docker image inspect "$image" > /dev/null 2>&1; then
    echo "python image: reusing $image"
    exit 0
fi
base=$("$here/../debian-base.sh")

echo "python image: building $image (Debian's Python on $base)"
context=$(mktemp -d)
build_log="$context.log"
trap 'rm -rf "$context" "$build_log"' EXIT
cp "$here/Dockerfile" "$context/"
mkdir "$context/certs"
cp /usr/local/share/ca-certificates/*.crt "$context/certs/" 2> /dev/null || true  # this machine's own CAs
docker build --network host --build-arg "BASE=$base" --tag "$image" "$context" \
    > "$build_log" 2>&1 || { tail -40 "$build_log"; exit 1; }
echo "python image: built $image"
