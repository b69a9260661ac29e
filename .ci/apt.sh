# Sourced by the .ci scripts: `apt_get ARGS...` runs apt-get, waiting (bounded) while another apt
# (an unattended upgrade, a second checkout's setup) holds the lock, instead of failing at once.
# The caller defines log().
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
