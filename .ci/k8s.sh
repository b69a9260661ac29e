#!/usr/bin/env bash
# Builds Kubernetes 1.20.2 from Debian's source package (offline, with Debian's Go) once per machine,
# for the Kubernetes executor's tests, and caches the binaries outside the checkout.
#
#   bash .ci/k8s.sh        # build (or reuse) the binaries; prints `export CHUTES_K8S_BIN=...` on stdout
#
# The cache lives in $CHUTES_CI_CACHE/k8s-<version> (default ~/.cache/chutes-ci), keyed on the
# source package's version, so clones share it. The first build takes about 20 minutes on 2 cores;
# later calls take a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CHUTES_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chutes-ci}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"

log() { printf '[k8s] %s\n' "$*" >&2; }
die() { printf '[k8s] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=apt.sh
. "$ROOT/.ci/apt.sh"

[ "$(id -u)" = 0 ] || die "building and running a cluster needs root"
command -v apt-get >/dev/null || die "needs Debian's apt (the source package comes from Debian)"

SRC_LIST=/etc/apt/sources.list.d/chutes-debian-src.sources
need_update=""
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    log "adding a deb-src entry for $suite"
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "${uri:-http://deb.debian.org/debian}" "$suite" >"$SRC_LIST"
    need_update=1
fi

packages="golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev iproute2 iptables conntrack socat"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$need_update$missing" ]; then
    log "apt-get update"
    apt_get update -qq
fi
if [ -n "$missing" ]; then
    log "installing$missing"
    DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends $missing
fi

version=$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ {print $2; exit}')
[ -n "$version" ] || die "Debian has no 'kubernetes' source package here (apt-cache showsrc kubernetes)"
OUT=$CACHE/k8s-${version//[^A-Za-z0-9.+-]/_}
have_all() { for b in $BINARIES; do [ -x "$OUT/bin/$b" ] || return 1; done; }

# One build at a time per cache: two checkouts building at once shared the work directory.
exec 8>"$CACHE/k8s.lock"
flock -w 3600 8 || die "another build has held $CACHE/k8s.lock for an hour"
if ! have_all; then
    work=$CACHE/k8s-build
    mkdir -p "$work"
    cd "$work"
    if [ ! -d src ]; then
        log "fetching the kubernetes $version source package"
        rm -rf dl && mkdir dl && (cd dl && apt-get source --download-only -qq kubernetes >/dev/null)
        dpkg-source -x dl/kubernetes_*.dsc src.tmp >/dev/null
        # The vendored reflect2 crashes kube-apiserver under Debian's Go on its first real request
        # ("fatal error: fault" in mapiterinit); Debian's packaged reflect2 works.
        rm -rf src.tmp/vendor/github.com/modern-go/reflect2
        cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 src.tmp/vendor/github.com/modern-go/
        rm -f src.tmp/vendor/github.com/modern-go/reflect2/go.mod
        mkdir -p src.tmp/.go/src/k8s.io && ln -s ../../.. src.tmp/.go/src/k8s.io/kubernetes
        mv src.tmp src
        rm -rf dl
    fi
    cd src
    log "building $BINARIES (about 20 minutes the first time)"
    GOPATH=$PWD/.go GOCACHE=$work/gocache CGO_ENABLED=0 GOFLAGS=-mod=vendor \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl" \
        >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; die "the build failed (log: $work/build.log)"; }
    mkdir -p "$OUT/bin.tmp"
    for b in $BINARIES; do
        f=$(find _output -type f -name "$b" -perm -u+x | head -n1)
        [ -n "$f" ] || die "the build made no $b"
        cp "$f" "$OUT/bin.tmp/$b"
    done
    rm -rf "$OUT/bin" && mv "$OUT/bin.tmp" "$OUT/bin"
    cd "$CACHE" && rm -rf "$work"
    log "built into $OUT/bin"
fi
exec 8>&-
echo "export CHUTES_K8S_BIN=$OUT/bin"
