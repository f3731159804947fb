#!/usr/bin/env bash
# Build (or reuse) a local Postgres + pgvector image without any image registry: the Dockerfile beside this
# script apt-installs Postgres and pgvector on the local Debian base (.ci/debian-base.sh). Needs root,
# debootstrap and a running Docker engine.
#
#   .ci/postgres-image/build.sh                 # builds local/aegra-postgres:17 unless it exists
#   AEGRA_IMAGE_REBUILD=1 .ci/postgres-image/build.sh
#
# Settings (environment): AEGRA_TEST_POSTGRES_IMAGE (the tag, default local/aegra-postgres:17),
# DEBIAN_SUITE (trixie: it has postgresql-17), DEBIAN_MIRROR, PG_MAJOR (17).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image="${AEGRA_TEST_POSTGRES_IMAGE:-local/aegra-postgres:17}"
pg_major="${PG_MAJOR:-17}"

if [ -z "${AEGRA_IMAGE_REBUILD:-}" ] && docker image inspect "$image" > /dev/null 2>&1; then
    echo "postgres image: reusing $image"
    exit 0
fi
base=$("$here/../debian-base.sh")

echo "postgres image: building $image (PostgreSQL $pg_major + pgvector on $base)"
# Host networking: the build's apt-get reaches the mirror the way this machine does, with no bridge/NAT setup.
build_log=$(mktemp)
docker build --network host --build-arg "BASE=$base" --build-arg "PG_MAJOR=$pg_major" --tag "$image" "$here" \
    > "$build_log" 2>&1 || { tail -40 "$build_log"; rm -f "$build_log"; exit 1; }
rm -f "$build_log"
echo "postgres image: built $image"
