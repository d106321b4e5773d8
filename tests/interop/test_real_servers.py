"""The default FIN policy against real servers (issue 16 §2).

With a FIN at stdin EOF (``-N``, the old default), ``printf 'GET /big.bin HTTP/1.0\\r\\n\\r\\n'
| ncat-trio HOST PORT`` received 3.9 of 52 MB from nginx and exited 0, and through
tinyproxy or ncat's HTTP proxy 0-100 % of the reply was lost (README, "Differences").
The default (``--shutdown=idle``) must give both worlds in the same configuration: every
byte of a large body from nginx, directly and through both proxies, *and* the answer of
a server that reads to EOF before it replies (socat ``EXEC:sha256sum``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncat_trio import report_schema
from ncat_trio.report_schema import validate

from ..support import NCAT
from . import servers

BODY = 24 << 20  # large enough that nginx is still sending when a FIN would arrive
REQUEST = b"GET /big.bin HTTP/1.0\r\n\r\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """nginx serving /big.bin; yields (port, sha256 of the file)."""
    tmp = tmp_path_factory.mktemp("nginx")
    root = tmp / "www"
    root.mkdir()
    body = bytes(range(256)) * (BODY // 256)
    (root / "big.bin").write_bytes(body)
    with servers.nginx(root, tmp) as port:
        yield port, hashlib.sha256(body).hexdigest()


def _get(args: list[str]) -> tuple[bytes, subprocess.CompletedProcess[bytes]]:
    """Run ncat-trio with the request on stdin; return (HTTP body, process)."""
    proc = subprocess.run(
        [*NCAT, *args], input=REQUEST, capture_output=True, timeout=90, check=False
    )
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), (head[:200], proc.stderr)
    return body, proc


def _check_whole(site: tuple[int, str], args: list[str]) -> None:
    body, proc = _get(args)
    assert proc.returncode == 0, proc.stderr
    assert (len(body), hashlib.sha256(body).hexdigest()) == (BODY, site[1]), proc.stderr


def test_nginx_big_body_arrives_whole_by_default(site: tuple[int, str]) -> None:
    _check_whole(site, ["127.0.0.1", str(site[0])])


@pytest.mark.parametrize("copy", [[], ["--no-zerocopy"]], ids=["zerocopy", "user-space"])
def test_nginx_json_says_peer_closed(site: tuple[int, str], copy: list[str]) -> None:
    body, proc = _get([*copy, "--json", "127.0.0.1", str(site[0])])
    assert len(body) == BODY
    record = json.loads(proc.stderr)
    assert validate(record, report_schema.NETCAT) == []
    assert (record["ended"], record["exit_code"]) == ("peer closed", 0)


def test_through_tinyproxy_the_body_arrives_whole_by_default(
    site: tuple[int, str], tmp_path: Path
) -> None:
    with servers.tinyproxy(tmp_path, site[0]) as proxy:
        _check_whole(site, ["connect", "--proxy", f"127.0.0.1:{proxy}", "127.0.0.1", str(site[0])])


def test_through_ncat_http_proxy_the_body_arrives_whole_by_default(
    site: tuple[int, str],
) -> None:
    with servers.ncat_http_proxy() as proxy:
        _check_whole(site, ["connect", "--proxy", f"127.0.0.1:{proxy}", "127.0.0.1", str(site[0])])


def test_a_read_to_eof_server_still_answers_by_default(tmp_path: Path) -> None:
    """The same default configuration: socat EXEC:sha256sum needs our FIN to answer."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(bytes(range(251)) * 40_000)
    with servers.socat_sha256() as port, upload.open("rb") as stdin:
        proc = subprocess.run(
            [*NCAT, "127.0.0.1", str(port)],
            stdin=stdin,
            capture_output=True,
            timeout=90,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    expected = hashlib.sha256(upload.read_bytes()).hexdigest()
    assert proc.stdout.split()[0].decode() == expected


def test_no_shutdown_gets_the_nginx_body_whole(site: tuple[int, str]) -> None:
    """The documented escape hatch, as nc.openbsd without -N."""
    _check_whole(site, ["--no-shutdown", "127.0.0.1", str(site[0])])
