"""One NTP probe, shared by the interop tests and benchmarks/bench_clock.py."""

from __future__ import annotations

import socket


def ntp_answers(port: int) -> bool:
    """Does an NTP server answer a (minimal, mode 3) request on 127.0.0.1:port?"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.05)
        sock.connect(("127.0.0.1", port))
        try:
            sock.send(b"\x23" + b"\0" * 47)
            reply = sock.recv(1024)
        except OSError:  # refused (not bound yet) or no answer in 50 ms
            return False
    return len(reply) >= 48 and reply[0] & 7 == 4
