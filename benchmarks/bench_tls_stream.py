"""TLS throughput: ncat-trio's TlsStream (SSLObject + memory BIOs, half-close) against
trio.SSLStream (what it replaced), in the same run, over a Unix socketpair.

One direction, --size bytes in 64 KiB writes, TLS 1.3 with a trustme certificate; each
stream is timed --rounds times alternately and the best round is kept.  Prints MiB/s
and the ratio TlsStream / SSLStream (1.0 = the same speed).

Usage: python benchmarks/bench_tls_stream.py [--size 256M] [--rounds 3]
"""

from __future__ import annotations

import argparse
import ssl
import time
from collections.abc import Callable

import trio
import trustme

from ncat_trio.parse import parse_size
from ncat_trio.transport.tls_stream import TlsStream

CHUNK = 65536
Wrap = Callable[[trio.SocketStream, ssl.SSLContext, bool], trio.abc.Stream]


def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return client, server


def ours(conn: trio.SocketStream, context: ssl.SSLContext, server: bool) -> TlsStream:
    return TlsStream(
        conn, context, server_side=server, server_hostname="localhost", peer_name="bench"
    )


def trios(
    conn: trio.SocketStream, context: ssl.SSLContext, server: bool
) -> trio.SSLStream[trio.SocketStream]:
    return trio.SSLStream(
        conn, context, server_side=server, server_hostname=None if server else "localhost"
    )


async def one_round(wrap: Wrap, size: int) -> float:
    client_context, server_context = contexts()
    left, right = trio.socket.socketpair()
    sender = wrap(trio.SocketStream(left), server_context, True)
    receiver = wrap(trio.SocketStream(right), client_context, False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.do_handshake)  # type: ignore[attr-defined]
        await receiver.do_handshake()  # type: ignore[attr-defined]
    block = bytes(CHUNK)
    received = 0
    started = time.perf_counter()

    async def send() -> None:
        for _ in range(size // CHUNK):
            await sender.send_all(block)

    async def receive() -> None:
        nonlocal received
        while received < size // CHUNK * CHUNK:
            received += len(await receiver.receive_some(CHUNK))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(receive)
    seconds = time.perf_counter() - started
    await trio.aclose_forcefully(sender)
    await trio.aclose_forcefully(receiver)
    return received / seconds / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256M")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = parse_size(args.size, what="--size")
    best = {"TlsStream": 0.0, "trio.SSLStream": 0.0}
    streams: list[tuple[str, Wrap]] = [("TlsStream", ours), ("trio.SSLStream", trios)]
    for _ in range(args.rounds):
        for name, wrap in streams:
            best[name] = max(best[name], trio.run(one_round, wrap, size))
    for name, rate in best.items():
        print(f"{name:16} {rate:8.1f} MiB/s")
    print(f"ratio TlsStream / trio.SSLStream: {best['TlsStream'] / best['trio.SSLStream']:.2f}")


if __name__ == "__main__":
    main()
