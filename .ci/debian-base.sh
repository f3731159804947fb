#!/usr/bin/env bash
# The base of the local test images (.ci/postgres-image, .ci/python-image), made without any image registry: a
# minimal Debian root file system from debootstrap becomes an image (`docker import`). Reused when it exists.
# Needs root, debootstrap and a running Docker engine. Prints the image's name.
#
# Settings (environment): DEBIAN_SUITE (trixie), DEBIAN_MIRROR.
set -euo pipefail
suite="${DEBIAN_SUITE:-trixie}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base="local/debian:$suite"

if ! docker image inspect "$base" > /dev/null 2>&1; then
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
    echo "debian base: debootstrap $suite from $mirror" >&2
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
        || { tail -30 "$rootfs.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$base" > /dev/null
fi
echo "$base"
