#!/usr/bin/env bash
# Installs bubblewrap (`bwrap`), which the host's process executor confines every chute with.
# Idempotent; needs root only when bwrap is missing. Logs on stderr.
#
#   bash .ci/sandbox.sh
set -euo pipefail

log() { printf '[sandbox] %s\n' "$*" >&2; }
die() { printf '[sandbox] error: %s\n' "$*" >&2; exit 1; }

if command -v bwrap >/dev/null; then
    log "bwrap is installed: $(bwrap --version)"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "need root to apt-get install bubblewrap (or install it yourself: apt-get install bubblewrap)"

# Another apt (an unattended upgrade, the engine setup of a second checkout) may hold the lock: wait, bounded.
APT_LOCK_WAIT=${CHUTES_APT_LOCK_WAIT:-600}
apt_get() {
    local deadline=$((SECONDS + APT_LOCK_WAIT)) out
    while :; do
        if out=$(apt-get -o DPkg::Lock::Timeout=60 "$@" 2>&1); then return 0; fi
        if ! grep -qiE 'could not (get|open) lock|unable to lock' <<<"$out" || ((SECONDS >= deadline)); then
            printf '%s\n' "$out" | tail -n 20 >&2
            return 1
        fi
        log "apt is locked by another process; waiting (up to ${APT_LOCK_WAIT}s in all)"
        sleep 5
    done
}

log "installing bubblewrap"
export DEBIAN_FRONTEND=noninteractive
apt_get install -y -qq --no-install-recommends bubblewrap \
    || { apt_get update -qq && apt_get install -y -qq --no-install-recommends bubblewrap; } \
    || die "apt-get install bubblewrap failed"
log "installed: $(bwrap --version)"
