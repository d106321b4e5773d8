#!/usr/bin/env bash
# Check two hosts' clock offset (here both ends on loopback: the offset should be ~0).
source "$(dirname "$0")/_lib.sh"
start_server port ncat-trio clock serve -p 0 -b 127.0.0.1 --proto ntp
ncat-trio clock probe 127.0.0.1 -p "$port" --proto ntp -c 4 --interval 0.05
