"""The trio adapter's direct socket path: over a plain socket stream a write
or a read is tried on the socket at once, and waits (with its deadline) only
when the socket is not ready. Each case runs over a real socket pair."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from smtpcore.adapters.trio import _Connection, _raw_socket


@asynccontextmanager
async def _pair() -> AsyncIterator[tuple[_Connection, trio.SocketStream]]:
    """The adapter's connection over one end of a socket pair, and the
    other end (both closed on leaving)."""
    a, b = trio.socket.socketpair()
    conn, peer = _Connection(trio.SocketStream(a)), trio.SocketStream(b)
    try:
        yield conn, peer
    finally:
        await conn.aclose(False, 1.0)
        await peer.aclose()


def test_a_plain_socket_stream_takes_the_direct_path() -> None:
    # Guards the speed of every trio message: a trio that no longer keeps
    # its standard socket where _raw_socket looks would fall back silently.
    async def main() -> None:
        async with _pair() as (conn, _peer):
            assert isinstance(_raw_socket(conn.stream), socket.socket)
            assert _raw_socket(trio.testing.MemorySendStream()) is None  # type: ignore[arg-type]

    trio.run(main)


def test_a_large_write_to_a_slow_reader_arrives_whole() -> None:
    # The socket takes part at once; the rest goes through the stream's
    # send_all, in order.
    data = bytes(range(256)) * (16 * 1024)  # 4 MiB

    async def main() -> None:
        async with _pair() as (conn, peer):
            got = bytearray()

            async def reader() -> None:
                while len(got) < len(data):
                    await trio.sleep(0.001)
                    got.extend(await peer.receive_some(256 * 1024))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await conn.write(data, 10.0)
            assert bytes(got) == data

    trio.run(main)


def test_a_write_to_a_peer_that_never_reads_times_out() -> None:
    async def main() -> None:
        async with _pair() as (conn, _peer):
            start = trio.current_time()
            with pytest.raises(TimeoutError):
                await conn.write(b"x" * (64 * 1024 * 1024), 0.2)
            assert 0.15 <= trio.current_time() - start < 5.0

    trio.run(main)


def test_a_read_waits_for_its_data_or_its_deadline() -> None:
    async def main() -> None:
        async with _pair() as (conn, peer):
            start = trio.current_time()
            with pytest.raises(TimeoutError):
                await conn.read(0.2)
            assert 0.15 <= trio.current_time() - start < 5.0

            async def later() -> None:
                await trio.sleep(0.05)
                await peer.send_all(b"250 ok\r\n")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(later)
                assert await conn.read(5.0) == b"250 ok\r\n"  # waited for it
            await peer.send_all(b"221 bye\r\n")
            await trio.sleep(0.01)
            assert await conn.read(5.0) == b"221 bye\r\n"  # there at once
            await peer.aclose()
            assert await conn.read(5.0) == b""  # EOF

    trio.run(main)


def test_a_closed_peer_fails_the_write_with_an_os_error() -> None:
    async def main() -> None:
        async with _pair() as (conn, peer):
            await peer.aclose()

            async def write_until_refused() -> None:
                for _ in range(100):  # a first write may still be taken
                    await conn.write(b"x" * 65536, 1.0)

            with pytest.raises(OSError, match=r"Broken pipe|reset"):
                await write_until_refused()

    trio.run(main)


def test_both_are_checkpoints() -> None:
    # trio's rule: an async operation that completes at once still lets other
    # tasks run, and a cancelled caller is cancelled before it starts.
    async def main() -> None:
        async with _pair() as (conn, peer):
            await peer.send_all(b"250 ok\r\n")
            await trio.sleep(0.01)
            with trio.CancelScope() as scope:
                scope.cancel()
                with pytest.raises(trio.Cancelled):
                    await conn.write(b"NOOP\r\n", 1.0)
                with pytest.raises(trio.Cancelled):
                    await conn.read(1.0)
            with trio.testing.assert_checkpoints():
                await conn.write(b"NOOP\r\n", 1.0)
            with trio.testing.assert_checkpoints():
                assert await conn.read(1.0) == b"250 ok\r\n"
            assert await peer.receive_some(100) == b"NOOP\r\n"

    trio.run(main)
