"""``-u -e``: a UDP echo through ``-e cat`` with nc.openbsd as the peer, and our
``listen -u -e`` side by side with ``ncat -u -l -e`` on the same script.

ncat 7.93 (checked here): ``-u -l -e`` locks onto the first sender, gives each datagram
to the child and each child write back as a datagram, exits 0 when the child exits;
with ``-k`` it starts one child per sender (checked by hand on a fixed port: with port 0
it re-binds a new random port after each sender); we refuse ``-k -u -e`` (exit 2,
``tests/e2e/test_exec_udp.py``).  It prints the port it was asked for (0): the real one comes
from /proc/net/udp.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from ..support import (
    NCAT,
    finish,
    read_line,
    require_program,
    spawn,
    udp_port_of,
    wait_for_port,
)

pytestmark = pytest.mark.interop

SCRIPT = """#!/bin/sh
while read line; do
  [ "$line" = quit ] && { echo "bye from $NCAT_PROTO $NCAT_REMOTE_ADDR $NCAT_LOCAL_ADDR"; exit 3; }
  echo "got $line"
done
"""


def test_udp_echo_through_exec_cat_with_nc_openbsd_as_the_client() -> None:
    ours = spawn([*NCAT, "listen", "-u", "-i", "1", "-e", "cat", "127.0.0.1", "0"])
    assert ours.stderr is not None
    port = wait_for_port(ours.stderr)
    nc = spawn([require_program("nc.openbsd"), "-u", "127.0.0.1", str(port)], stdin=subprocess.PIPE)
    assert nc.stdin is not None
    assert nc.stdout is not None
    for line in (b"hello through cat\n", b"and again\n"):
        nc.stdin.write(line)
        nc.stdin.flush()
        assert read_line(nc.stdout) == line
    with ours:
        assert finish(ours, 20) == 0  # -i 1 after the last datagram
    nc.terminate()  # nc -u never ends by itself
    with nc:
        finish(nc, 20)


def test_udp_exec_matches_ncat_u_l_e_on_the_same_script(tmp_path: Path) -> None:
    script = tmp_path / "answer.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)

    def converse(port: int) -> list[bytes]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            transcript = []
            for line in (b"first\n", b"second line\n", b"quit\n"):
                client.sendto(line, ("127.0.0.1", port))
                transcript.append(client.recv(65536))
            return transcript

    theirs = spawn([require_program("ncat"), "-v", "-u", "-l", "127.0.0.1", "0", "-e", str(script)])
    assert theirs.stderr is not None
    while b"Listening on" not in read_line(theirs.stderr):
        pass
    their_transcript = converse(udp_port_of(theirs.pid))
    with theirs:
        assert finish(theirs, 20) == 0  # the script's exit ends ncat

    ours = spawn([*NCAT, "listen", "-u", "-e", str(script), "127.0.0.1", "0"])
    assert ours.stderr is not None
    our_transcript = converse(wait_for_port(ours.stderr))
    with ours:
        assert finish(ours, 20) == 0  # and ours

    assert our_transcript == their_transcript
    assert our_transcript == [
        b"got first\n",
        b"got second line\n",
        b"bye from UDP 127.0.0.1 127.0.0.1\n",
    ]
