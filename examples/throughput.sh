#!/usr/bin/env bash
# A ttcp throughput test on loopback: 64 payloads of 64 KiB, stop-and-wait, then a window.
source "$(dirname "$0")/_lib.sh"
start_server port ncat-trio ttcp receive -p 0 -b 127.0.0.1 -k
ncat-trio ttcp transmit 127.0.0.1 -p "$port" -l 65536 -n 64
ncat-trio ttcp transmit 127.0.0.1 -p "$port" -l 1024 -n 2000 --window 16
