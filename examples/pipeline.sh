#!/usr/bin/env bash
# Replace nc in a pipeline: send a request, FIN at stdin EOF, read the whole reply.
# (A stand-in "server" on loopback answers +PONG; against a real Redis: ncat-trio host 6379.)
source "$(dirname "$0")/_lib.sh"
start_server port ncat-trio listen 127.0.0.1 0 < <(printf '+PONG\r\n') > /dev/null
reply=$(printf 'PING\r\n' | ncat-trio 127.0.0.1 "$port")
[[ $reply == $'+PONG\r' ]] || { echo "unexpected reply: $reply" >&2; exit 1; }
echo "reply: $reply"
