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

# shellcheck source=.ci/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

log "installing bubblewrap"
export DEBIAN_FRONTEND=noninteractive
apt_get install -y -qq --no-install-recommends bubblewrap \
    || { apt_get update -qq && apt_get install -y -qq --no-install-recommends bubblewrap; } \
    || die "apt-get install bubblewrap failed"
log "installed: $(bwrap --version)"
