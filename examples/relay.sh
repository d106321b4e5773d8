#!/usr/bin/env bash
# A port relay between a client and a server, with a little injected latency.
source "$(dirname "$0")/_lib.sh"
start_server server_port ncat-trio listen 127.0.0.1 0 < <(printf 'hello through the relay\n') > /dev/null
start_server relay_port ncat-trio relay 127.0.0.1:0 "127.0.0.1:$server_port" --latency 50ms
reply=$(ncat-trio 127.0.0.1 "$relay_port" < /dev/null)
[[ $reply == "hello through the relay" ]] || { echo "unexpected: $reply" >&2; exit 1; }
echo "$reply"
