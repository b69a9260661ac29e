#!/usr/bin/env bash
# Installs and starts a real Docker engine, a local registry on 127.0.0.1:5000 and the base images
# that `chutes build` starts FROM. Idempotent: a second call reuses what is running and cached.
#
#   bash .ci/engine.sh          # set up; prints `export ...` lines on stdout, logs on stderr
#   bash .ci/engine.sh stop     # stop the engine and the registry this script started
#
# The export lines are also written to $CHUTES_CI_CACHE/engine.env, so a runner can `source` that
# file. The cache (engine data, rootfs tarball, registry: about 500 MB) lives outside the checkout,
# by default in ~/.cache/chutes-ci, so clones share it and never carry it. Nothing here pulls from a container registry: the base image
# is bootstrapped from Debian packages and the rootfs tarball is cached.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CHUTES_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chutes-ci}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
# Unix socket paths are limited to ~108 bytes, so runtime state lives in a short /tmp path.
RUN_DIR=/tmp/chutes-engine-$(printf %s "$CACHE" | sha256sum | cut -c1-10)
SOCK=$RUN_DIR/engine.sock
REGISTRY_ADDR=127.0.0.1:5000
SUITE=bookworm
ROOTFS_IMAGE=localhost/chutes-rootfs:$SUITE
BASE_IMAGE=localhost/chutes-base:$SUITE
ENV_FILE=$CACHE/engine.env

log() { printf '[engine] %s\n' "$*" >&2; }
die() { printf '[engine] error: %s\n' "$*" >&2; exit 1; }

engine_answers() { DOCKER_HOST=unix://$SOCK docker version >/dev/null 2>&1; }
registry_answers() { python3 - "$REGISTRY_ADDR" <<'EOF' 2>/dev/null; }
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2)
EOF

stop_pid() {
    local pidfile=$1
    [ -f "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

if [ "${1:-}" = stop ]; then
    stop_pid "$RUN_DIR/registry.pid"
    stop_pid "$RUN_DIR/dockerd.pid"
    log "stopped"
    exit 0
fi

# One setup at a time per cache: two checkouts setting up at once bootstrapped into the same
# directory, and one removed it while the other's debootstrap had /proc mounted there. The daemons
# started below must not inherit the lock's descriptor (9>&-), or it would be held as long as they run.
exec 9>"$CACHE/engine.lock"
flock -w 1800 9 || die "another engine setup has held $CACHE/engine.lock for 30 minutes"

# shellcheck source=.ci/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_get update -qq || die "apt-get update failed"
    # policy-rc.d keeps the packages from starting their own services.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt_get install -y -qq --no-install-recommends "${missing[@]}" \
        || { rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
    rm -f /usr/sbin/policy-rc.d
}

start_engine() {
    mkdir -p "$RUN_DIR"
    if engine_answers; then log "engine already answers on $SOCK"; return 0; fi
    stop_pid "$RUN_DIR/dockerd.pid"
    log "starting dockerd"
    nohup dockerd --data-root "$CACHE/docker-data" --exec-root "$RUN_DIR/exec" \
        -H "unix://$SOCK" --pidfile "$RUN_DIR/dockerd.pid" \
        >"$CACHE/dockerd.log" 2>&1 </dev/null 9>&- &
    for _ in $(seq 1 300); do
        engine_answers && return 0
        sleep 0.1
    done
    tail -n 20 "$CACHE/dockerd.log" >&2
    die "dockerd did not answer on $SOCK within 30 s (log: $CACHE/dockerd.log)"
}

start_registry() {
    if registry_answers; then log "registry already answers on $REGISTRY_ADDR"; return 0; fi
    stop_pid "$RUN_DIR/registry.pid"
    mkdir -p "$CACHE/registry"
    cat >"$CACHE/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $CACHE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    log "starting registry on $REGISTRY_ADDR"
    nohup docker-registry serve "$CACHE/registry.yml" >"$CACHE/registry.log" 2>&1 </dev/null 9>&- &
    echo $! >"$RUN_DIR/registry.pid"
    for _ in $(seq 1 100); do
        registry_answers && return 0
        sleep 0.1
    done
    tail -n 20 "$CACHE/registry.log" >&2
    die "registry did not answer on $REGISTRY_ADDR within 10 s"
}

debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

make_rootfs_tarball() {
    local tarball=$CACHE/rootfs-$SUITE.tar
    [ -s "$tarball" ] && return 0
    local dir=$CACHE/rootfs-$SUITE.tmp
    remove_rootfs_dir "$dir"
    log "bootstrapping a $SUITE rootfs with python3 (about a minute, cached afterwards)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$dir" "$(debian_mirror)" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
    # Trust the same CAs as this host, so pip or apt inside RUN work behind a re-signing proxy.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
        chroot "$dir" update-ca-certificates >/dev/null 2>&1
    fi
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar --numeric-owner -C "$dir" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    remove_rootfs_dir "$dir"
}

# Removes a bootstrap directory, first unmounting what an interrupted debootstrap left mounted in it.
remove_rootfs_dir() {
    local dir=$1 mounted
    [ -e "$dir" ] || return 0
    mounted=$(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
    for m in $mounted; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$dir"
}

make_images() {
    export DOCKER_HOST=unix://$SOCK
    if ! docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
        make_rootfs_tarball
        log "importing $ROOTFS_IMAGE"
        docker import "$CACHE/rootfs-$SUITE.tar" "$ROOTFS_IMAGE" >/dev/null
    fi
    log "building $BASE_IMAGE from Dockerfile.base"
    # Dockerfile.base needs no context: it is sent on stdin.
    docker build -q --pull=false --build-arg "BASE_IMAGE=$ROOTFS_IMAGE" \
        -t "$BASE_IMAGE" - <"$ROOT/Dockerfile.base" >/dev/null \
        || die "building $BASE_IMAGE failed"
}

install_packages
start_engine
start_registry
make_images

# networks no container uses, left by an interrupted run, would in time exhaust the engine's address pools
DOCKER_HOST=unix://$SOCK docker network prune -f >/dev/null 2>&1 || true
cat >"$ENV_FILE" <<EOF
export DOCKER_HOST=unix://$SOCK
export CHUTES_BASE_IMAGE=$BASE_IMAGE
export CHUTES_TEST_REGISTRY=$REGISTRY_ADDR
EOF
log "ready; environment in $ENV_FILE"
cat "$ENV_FILE"
