#!/usr/bin/env bash
# Copy a file and know it arrived: send/receive verify a sha256 and acknowledge after fsync.
source "$(dirname "$0")/_lib.sh"
work=$(mktemp -d); trap 'cleanup; rm -rf "$work"' EXIT
head -c 3000000 /dev/urandom > "$work/data.bin"
mkdir "$work/incoming"
start_server port ncat-trio receive 127.0.0.1 0 -o "$work/incoming/"
ncat-trio send 127.0.0.1 "$port" "$work/data.bin"
wait "${SERVER_PIDS[0]}"
cmp "$work/data.bin" "$work/incoming/data.bin"
echo "copied and verified: $(sha256sum < "$work/incoming/data.bin" | cut -c1-16)…"
