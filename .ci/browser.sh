#!/usr/bin/env bash
# Installs Debian's Chromium, which the dashboard tests (tests/web) drive headless through Playwright
# (from PyPI, in the `test` extra, told to use this browser: Playwright downloads none of its own).
# Idempotent; needs root only when chromium is missing. Prints an `export CHUTES_CHROMIUM=...` line.
#
#   eval "$(bash .ci/browser.sh)"
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }
die() { printf '[browser] error: %s\n' "$*" >&2; exit 1; }

find_chromium() { command -v chromium || command -v chromium-browser || true; }

if [ -z "$(find_chromium)" ]; then
    [ "$(id -u)" = 0 ] || die "need root to apt-get install chromium (or install it yourself: apt-get install chromium)"
    export DEBIAN_FRONTEND=noninteractive
    log "installing Debian's chromium"
    installed=""
    for _ in $(seq 1 60); do  # another apt may hold the lock briefly
        if apt-get -o DPkg::Lock::Timeout=60 install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2; then
            installed=1
            break
        fi
        apt-get update -qq >&2 || true
        sleep 5
    done
    [ -n "$installed" ] || die "apt-get install chromium failed"
fi
chromium=$(find_chromium)
[ -n "$chromium" ] || die "chromium is not on PATH after installing it"
log "chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"
echo "export CHUTES_CHROMIUM=$chromium"
