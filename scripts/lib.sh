# Helpers shared by the benchmark scripts (sourced, not run).

# stop_pid PID: SIGTERM, then wait for it at most 20 s, then SIGKILL. Only
# ever the processes the calling script started, by their id.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        # Gone, or a zombie waiting for `wait` below.
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X) =~ ^[XZ]$ ]] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# clean_environment: forgets every DROPGATE_* setting of the caller (a STOCK
# default, a config file, ...), which would silently change what is
# measured, and quiets the info logs, which cost time per import.
clean_environment() {
    local var
    unset DROPGATE_CONFIG
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^DROPGATE_' || true)
    export RUST_LOG=warn
}
