"""Drive ncat-trio's session from Python: connect, send a request, half-close, read the reply.

Run it: ``python examples/api_roundtrip.py`` (starts its own loopback server, exits 0 on success).
The same ``netcat_session`` is what ``ncat-trio connect`` runs; here stdin and stdout are
in-memory streams instead of the process's own.
"""

from __future__ import annotations

import trio
import trio.testing

from ncat_trio import Endpoint, SessionOptions, connect_tcp, netcat_session, open_tcp_listener


async def upper_case_server(stream: trio.SocketStream) -> None:
    """Read until the client's FIN, *then* answer: only a lossless half-close sees the reply."""
    request = bytearray()
    while chunk := await stream.receive_some():
        request += chunk
    await trio.sleep(0.2)  # a slow server: the reply comes well after the client's EOF
    await stream.send_all(bytes(request).upper())
    await stream.aclose()


async def main() -> None:
    listener = await open_tcp_listener(Endpoint("127.0.0.1", 0))
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, upper_case_server, [listener])

        stdin_writer, stdin = trio.testing.memory_stream_one_way_pair()
        stdout = trio.testing.MemorySendStream()
        await stdin_writer.send_all(b"hello over a half-closed connection\n")
        await stdin_writer.aclose()  # stdin EOF -> ncat-trio sends FIN, keeps reading

        conn = await connect_tcp(Endpoint("127.0.0.1", port))
        async with conn:
            result = await netcat_session(conn, stdin, stdout, SessionOptions(linger=10))
        reply = stdout.get_data_nowait()
        print(reply.decode(), end="")
        assert reply == b"HELLO OVER A HALF-CLOSED CONNECTION\n"
        assert result.peer_eof
        assert result.bytes_sent == result.bytes_received == len(reply)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
