# Shared by the example scripts: start a server and learn its real port from its readiness line.
# Usage: start_server VAR command args...   (the command's stderr is read for "listening on")
set -euo pipefail
# ncat-trio itself: from PATH (an activated venv, a pipx install), else from the .venv that
# the README's quick start creates, so the scripts work right after it as written.
if ! command -v ncat-trio >/dev/null; then
    PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin:$PATH"
    command -v ncat-trio >/dev/null || {
        echo "ncat-trio is not on PATH: run the README's quick start, or . .venv/bin/activate" >&2
        exit 127
    }
fi
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
    if [[ -z ${!var-} ]]; then
        echo "start_server: '$*' ended before its readiness line" >&2
        exit 1
    fi
    cat <&"$fd" >&2 &   # keep draining its stderr
    exec {fd}<&-
}
SERVER_PIDS=()
cleanup() { for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
