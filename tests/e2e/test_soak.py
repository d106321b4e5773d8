"""The soak in CI: ``benchmarks/soak.py`` for a few seconds per server, and its own checks.

The soak itself (a separate process, so this test runs it exactly as ``just soak`` does,
only shorter) puts ``listen -k`` and ``relay`` (with faults mixed in) under concurrent
clients and checks every byte by sha256; here we assert its JSON report: nothing lost,
every reset accounted for, resets and injected faults actually happened, no fd growth,
RSS back near its warm-up figure, and the server still serving at the end.

The stdout splitter that makes the listen -k check possible is tested on its own first.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import random
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.support import ROOT

SOAK_SECONDS = 4


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak", module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


soak: Any = load_soak()


def interleave(streams: dict[int, bytes], rng: random.Random, *, least: int = 8) -> bytes:
    """Each stream cut into random chunks of ``least`` bytes or more (the last may be
    shorter), the chunks shuffled but in order per stream."""
    queues = {}
    for key, data in streams.items():
        edges = [0]
        while len(data) - edges[-1] > 2 * least and len(edges) < 8:
            edges.append(rng.randrange(edges[-1] + least, len(data) - least))
        edges.append(len(data))
        queues[key] = [data[a:b] for a, b in itertools.pairwise(edges) if b > a]
    out = bytearray()
    while any(queues.values()):
        key = rng.choice([k for k, q in queues.items() if q])
        out += queues[key].pop(0)
    return bytes(out)


@pytest.mark.parametrize("seed", range(12))
def test_demultiplex_splits_interleaved_streams_exactly(seed: int) -> None:
    rng = random.Random(seed)
    sizes: dict[int, int] = {}
    streams: dict[int, bytes] = {}
    reset_bytes = 0
    for i in range(60):
        reset = i % 5 == 0
        key = rng.getrandbits(60) | 1 | (soak.RESET_KEY if reset else 0)
        size = rng.choice([0, 8, 9, 17, 1000, 70000])
        # A reset client's bytes arrive only in part: the server read a prefix.
        arrived = rng.randrange(size + 1) if reset else size
        streams[key] = soak.stream_bytes(key, 0, arrived)
        if reset:
            reset_bytes += arrived
        else:
            sizes[key] = size
    out = interleave(streams, rng)
    matched, residue = soak.demultiplex(memoryview(out), sizes)
    assert matched == {k: len(streams[k]) for k in sizes}
    assert residue == reset_bytes


def test_demultiplex_refuses_a_flipped_byte() -> None:
    rng = random.Random(1)
    streams = {k: soak.stream_bytes(k, 0, 5000) for k in (3, 5, 7)}
    out = bytearray(interleave(streams, rng))
    out[2500] ^= 0x01
    with pytest.raises(ValueError, match="matches no connection"):
        soak.demultiplex(memoryview(bytes(out)), {k: 5000 for k in streams})


def test_demultiplex_refuses_a_duplicated_chunk() -> None:
    data = soak.stream_bytes(9, 0, 3000)
    out = data[:1000] + data[500:1000] + data[1000:]
    with pytest.raises(ValueError, match="matches no connection"):
        soak.demultiplex(memoryview(out), {9: 3000})


def test_demultiplex_refuses_a_lost_chunk() -> None:
    data = soak.stream_bytes(11, 0, 3000)
    with pytest.raises(ValueError, match="matches no connection"):
        soak.demultiplex(memoryview(data[:1000] + data[1500:]), {11: 3000})


def test_demultiplex_takes_a_read_of_a_few_bytes_mid_stream() -> None:
    a, b = soak.stream_bytes(21, 0, 3000), soak.stream_bytes(23, 0, 3000)
    out = a[:1000] + b[:500] + a[1000:1003] + b[500:] + a[1003:]
    matched, residue = soak.demultiplex(memoryview(out), {21: 3000, 23: 3000})
    assert matched == {21: 3000, 23: 3000}
    assert residue == 0


@pytest.mark.slow
def test_soak_short_run_loses_nothing_and_leaks_nothing() -> None:
    command = [
        sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--duration", str(SOAK_SECONDS),
        "--clients", "16", "--max-size", str(512 << 10), "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=110, check=False, cwd=ROOT)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    result = json.loads(done.stdout)
    reports = {r["mode"]: r for r in result["reports"]}
    assert set(reports) == {"listen -k", "relay"}
    for mode, r in reports.items():
        why = f"{mode} (seed {result['seed']}): {r['mismatches'][:5]}"
        assert r["mismatches"] == [], why
        assert r["bytes_lost"] == 0, why
        assert r["connections"] > 50, why
        assert r["client_resets"] > 0, why  # resets really were mixed in
        assert r["clean"] > r["client_resets"], why
        assert r["bytes_up"] > 0, why
        assert r["end_fds"] == r["idle_fds"], why
        assert r["rss_end_kib"] - r["rss_warm_kib"] <= 8 * 1024, why
        assert r["still_serving"], why
        assert r["exit_code"] == 143, why  # SIGTERM at the end, handled
        assert r["ok"], why
    relay = reports["relay"]
    assert relay["bytes_down"] > 0
    assert relay["faults_logged"].get("fault-reset-peer", 0) > 0  # the relay's own faults
    # Clients saw the relay's resets as errors.  Port by port, soak.py already checked that
    # every reset the relay made was an error for its client, unless that client had reset
    # first (a race the aggregate count can't see: 41 seen of 42 made failed once here).
    assert relay["fault_resets_seen"] > 0
    assert done.returncode == 0
