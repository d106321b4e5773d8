"""Stdio streams for every kind of fd, never touching the inherited description."""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile

import pytest
import trio

from ncat_trio.transport.stdio import FdKind, bytes_left, fd_kind, open_stdin, open_stdout

from ..support import read_to_eof


def nonblocking(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)


async def test_pipe_stdin_is_reopened_not_modified() -> None:
    r, w = os.pipe()
    payload = os.urandom(300_000)  # more than a pipe holds: needs real waiting
    try:
        assert fd_kind(r) is FdKind.PIPE
        with trio.fail_after(10):
            async with open_stdin(r) as stream, trio.open_nursery() as nursery:

                async def writer() -> None:
                    await trio.to_thread.run_sync(os.write, w, payload)
                    os.close(w)

                nursery.start_soon(writer)
                assert not nonblocking(r)
                assert await read_to_eof(stream) == payload
        assert not nonblocking(r)
    finally:
        os.close(r)


async def test_regular_file_stdin_and_stdout() -> None:
    with tempfile.TemporaryFile() as src, tempfile.TemporaryFile() as dst:
        src.write(b"file contents" * 1000)
        src.flush()
        src.seek(0)
        assert fd_kind(src.fileno()) is FdKind.REGULAR
        async with open_stdin(src.fileno()) as stream, open_stdout(dst.fileno()) as sink:
            await sink.send_all(await read_to_eof(stream))
        dst.seek(0)
        assert dst.read() == b"file contents" * 1000


async def test_devnull_reads_eof_and_swallows_writes() -> None:
    fd = os.open(os.devnull, os.O_RDWR)
    try:
        assert fd_kind(fd) is FdKind.DEVNULL
        async with open_stdin(fd) as stream, open_stdout(fd) as sink:
            assert await stream.receive_some() == b""
            await sink.send_all(b"gone")
    finally:
        os.close(fd)


async def test_socket_stdin_uses_a_thread_and_stays_blocking() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert fd_kind(a.fileno()) is FdKind.OTHER
        with trio.fail_after(10):
            async with open_stdin(a.fileno()) as stream:
                b.sendall(b"via a socket")
                b.shutdown(socket.SHUT_WR)
                assert await read_to_eof(stream) == b"via a socket"
        assert a.getblocking()


async def test_tty_stdin_reads_lines_without_touching_the_terminal() -> None:
    master, slave = os.openpty()
    try:
        assert fd_kind(slave) is FdKind.TTY
        with trio.fail_after(10):
            async with open_stdin(slave) as stream:
                os.write(master, b"typed line\n")
                assert await stream.receive_some() == b"typed line\n"
                assert not nonblocking(slave)
        assert not nonblocking(slave)
    finally:
        os.close(master)
        os.close(slave)


async def test_stdout_pipe_without_reader_is_a_broken_resource() -> None:
    r, w = os.pipe()
    os.close(r)
    try:
        async with open_stdout(w) as sink:
            with pytest.raises(trio.BrokenResourceError) as info:
                await sink.send_all(b"nobody listens")
        assert isinstance(info.value.__cause__, BrokenPipeError)
    finally:
        os.close(w)


def test_bytes_left_counts_from_the_offset_of_a_regular_file_only() -> None:
    """-P's percentage for `< file`: what is left after the shell's (or a previous
    reader's) offset; a pipe has no size."""
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 1000)
        f.seek(300)
        assert bytes_left(f.fileno()) == 700
        f.seek(5000)  # past the end: nothing left, never negative
        assert bytes_left(f.fileno()) == 0
    r, w = os.pipe()
    try:
        assert bytes_left(r) is None
    finally:
        os.close(r)
        os.close(w)
