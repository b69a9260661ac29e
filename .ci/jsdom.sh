#!/usr/bin/env bash
# Installs jsdom (from the npm registry, with Debian's Node.js and npm) for the tests that load the
# host's Swagger pages as a browser would. Idempotent; prints an `export CHUTES_JSDOM=...` line.
#
#   eval "$(bash .ci/jsdom.sh)"
set -euo pipefail

JSDOM_VERSION=24.1.3
CACHE=${CHUTES_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chutes-ci}
DIR=$CACHE/jsdom-$JSDOM_VERSION

log() { printf '[jsdom] %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing Debian's nodejs and npm"
        for _ in $(seq 1 60); do  # another apt may hold the lock briefly
            apt-get install -y --no-install-recommends nodejs npm >&2 && break
            sleep 5
        done
    fi
    command -v node >/dev/null && command -v npm >/dev/null || { log "no node/npm: the page tests will skip"; exit 1; }
fi
if [ ! -f "$DIR/node_modules/jsdom/package.json" ]; then
    log "installing jsdom $JSDOM_VERSION into $DIR"
    mkdir -p "$DIR"
    npm install --prefix "$DIR" --no-audit --no-fund --silent "jsdom@$JSDOM_VERSION" >&2
fi
echo "export CHUTES_JSDOM=$DIR/node_modules"
