#!/usr/bin/env bash
# What the Docker tests need, made ready on a Debian machine with no image registry reachable: a Docker engine
# (Debian's docker.io; dockerd started in the background when nothing answers), debootstrap for
# .ci/postgres-image/build.sh, and a local registry (Debian's docker-registry, no auth, on 127.0.0.1:5000 or
# $AEGRA_TEST_REGISTRY) for the test that pulls an image with progress. Needs root; whatever already answers is
# used as it is.
set -euo pipefail
dockerd_log="${DOCKERD_LOG:-/tmp/dockerd.log}"
registry="${AEGRA_TEST_REGISTRY:-127.0.0.1:5000}"
registry_dir="${AEGRA_TEST_REGISTRY_DIR:-/tmp/aegra-registry}"

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq 1 $((seconds * 2))); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "$what did not answer within $seconds s"
    return 1
}

missing=()
command -v dockerd > /dev/null || missing+=(docker.io)
command -v debootstrap > /dev/null || missing+=(debootstrap)
command -v docker-registry > /dev/null || missing+=(docker-registry)
if [ ${#missing[@]} -gt 0 ]; then
    echo "docker: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
fi

if ! docker info > /dev/null 2>&1; then
    echo "docker: starting dockerd (log: $dockerd_log)"
    nohup dockerd > "$dockerd_log" 2>&1 &
    wait_for 60 dockerd docker info || { tail -30 "$dockerd_log"; exit 1; }
fi
echo "docker: engine $(docker version --format '{{.Server.Version}}') answers"

if ! curl -fs "http://$registry/v2/" > /dev/null; then
    mkdir -p "$registry_dir"
    cat > "$registry_dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $registry_dir/data
  delete:
    enabled: true
http:
  addr: $registry
YAML
    echo "docker: starting a local registry on $registry (log: $registry_dir/log)"
    nohup docker-registry serve "$registry_dir/config.yml" > "$registry_dir/log" 2>&1 &
    wait_for 30 "the registry" curl -fs "http://$registry/v2/" || { tail -30 "$registry_dir/log"; exit 1; }
fi
echo "docker: registry $registry answers"
