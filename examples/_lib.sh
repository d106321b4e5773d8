# Shared by the example scripts: start a server and learn its real port from its readiness line.
# Usage: start_server VAR command args...   (the command's stderr is read for "listening on")
set -euo pipefail
start_server() {
    local var=$1; shift
    local fifo fd line
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    "$@" 2>"$fifo" <&0 &   # <&0: a background job would otherwise get /dev/null
    SERVER_PIDS+=($!)
    exec {fd}<"$fifo"
    rm -f "$fifo"
    while IFS= read -r line <&"$fd"; do
        if [[ $line =~ listening\ on\ .*:([0-9]+) ]]; then
            printf -v "$var" '%s' "${BASH_REMATCH[1]}"
            break
        fi
    done
    cat <&"$fd" >&2 &   # keep draining its stderr
    exec {fd}<&-
}
SERVER_PIDS=()
cleanup() { for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
