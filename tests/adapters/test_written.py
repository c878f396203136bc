"""What a failed write says it wrote (``AsyncConnection.written``): the
count the session uses to tell a final dot that may have left (status
unknown) from one that did not (not sent). Over plain sockets the adapters
count exactly what the kernel took: the peer, reading everything after the
failure, gets exactly that many octets, a prefix of the write."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import pytest
import trio
from servers import TLSMaterial
from smtpcore.adapters._common import ClientOptions
from smtpcore.adapters.anyio import _AnyioConnection, _SocketStream
from smtpcore.adapters.anyio import start_tls as anyio_start_tls
from smtpcore.adapters.asyncio import open_stream
from smtpcore.adapters.blocking import _Socket, wrap_tls
from smtpcore.adapters.trio import _Connection
from smtpcore.adapters.trio import start_tls as trio_start_tls

LOOPBACK = "127.0.0.1"
#: Far more than the small buffers below hold.
DATA = bytes(range(256)) * 4096  # 1 MiB


@contextmanager
def stalled_peer(tls: TLSMaterial | None = None) -> Iterator[tuple[int, Callable[[], bytes]]]:
    """A listener with a small receive buffer whose one connection reads
    nothing until ``received()`` is called, then everything to EOF (with
    ``tls``: after the handshake, which runs at once; ``received()`` then
    returns the plain octets decrypted). Yields (port, received)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind((LOOPBACK, 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    context = tls.server_context() if tls is not None else None
    if context is not None:
        # No TLS 1.3 session tickets: a client that never reads would close
        # with them unread, which resets the connection and discards what
        # the kernel had not yet handed to this peer.
        context.num_tickets = 0

    def serve() -> None:
        conn = listener.accept()[0]
        conn.settimeout(5.0)
        accepted.append(conn if context is None else context.wrap_socket(conn, server_side=True))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def received() -> bytes:
        thread.join(5.0)
        [conn] = accepted
        got = bytearray()
        # Until EOF, or (TLS) the broken record the client's abort left.
        with contextlib.suppress(ssl.SSLError) if context is not None else contextlib.nullcontext():
            while chunk := conn.recv(65536):
                got += chunk
        conn.close()
        return bytes(got)

    try:
        yield listener.getsockname()[1], received
    finally:
        listener.close()


def small_socket(port: int, send_buffer: int = 4096) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.connect((LOOPBACK, port))
    return sock


def check_count(written: int | None, got: bytes, *, tls: bool = False) -> None:
    """The peer got exactly the ``written`` first octets of DATA: some, not
    all (under TLS, whole records of 16 KiB)."""
    assert written is not None
    assert 0 < written < len(DATA)
    if tls:
        assert written % (16 * 1024) == 0
    assert got == DATA[:written]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_blocking_counts_what_left_before_a_timeout(tls: bool) -> None:
    material = TLSMaterial.create() if tls else None
    with stalled_peer(material) as (port, received):
        if material is None:
            sock = small_socket(port)
        else:
            options = ClientOptions.build(
                server=LOOPBACK, port=port, tls="implicit", ssl_context=material.client_context()
            )
            sock = wrap_tls(small_socket(port, 64 * 1024), options, LOOPBACK)
        conn = _Socket(sock)
        with pytest.raises(TimeoutError):
            conn.write(DATA, 0.3)
        conn.abort()
        got = received()
    check_count(conn.written, got, tls=tls)


def test_asyncio_counts_what_left_before_a_timeout() -> None:
    async def main() -> tuple[int | None, bytes]:
        with stalled_peer() as (port, received):
            options = ClientOptions.build(server=LOOPBACK, port=port, tls="none")
            stream = await open_stream(options, small_socket(port))
            with pytest.raises(TimeoutError):
                await stream.write(DATA, 0.3)
            stream.abort()
            await asyncio.sleep(0)
            return stream.written, await asyncio.to_thread(received)

    written, got = asyncio.run(main())
    check_count(written, got)


@pytest.mark.parametrize("size", [len(DATA), 10_000], ids=["many-records", "one-record"])
def test_asyncio_counts_the_records_that_left_under_tls(size: int) -> None:
    # Under TLS the transport holds records: what may have reached the
    # server is the plain octets of the records the kernel took whole. The
    # server, reading on after the failure, decrypts exactly those.
    tls = TLSMaterial.create()
    data = DATA[:size]

    async def main() -> tuple[int | None, bytes]:
        with stalled_peer(tls) as (port, received):
            options = ClientOptions.build(
                server=LOOPBACK, port=port, tls="implicit", ssl_context=tls.client_context()
            )
            # Buffers that hold a few records (of 16 KiB and some).
            stream = await open_stream(options, small_socket(port, 64 * 1024))
            # Fill the socket buffers first, so that the write below stalls.
            with pytest.raises(TimeoutError):
                await stream.write(DATA, 0.3)
            first = stream.written
            assert first is not None
            with pytest.raises(TimeoutError):
                await stream.write(data, 0.3)
            assert stream.written == 0  # nothing of it got past the first
            stream.abort()
            await asyncio.sleep(0)
            return first, await asyncio.to_thread(received)

    written, got = asyncio.run(main())
    check_count(written, got, tls=True)


def test_trio_and_anyio_count_the_records_that_left_under_tls() -> None:
    tls = TLSMaterial.create()

    def options(port: int) -> ClientOptions:
        return ClientOptions.build(
            server=LOOPBACK, port=port, tls="implicit", ssl_context=tls.client_context()
        )

    async def with_trio() -> tuple[int | None, bytes]:
        with stalled_peer(tls) as (port, received):
            sock = trio.socket.from_stdlib_socket(small_socket(port, 64 * 1024))
            stream = await trio_start_tls(trio.SocketStream(sock), options(port), LOOPBACK)
            conn = _Connection(stream)
            with pytest.raises(TimeoutError):
                await conn.write(DATA, 0.3)
            await conn.aclose(False, 1.0)
            return conn.written, await trio.to_thread.run_sync(received)

    async def with_anyio() -> tuple[int | None, bytes]:
        with stalled_peer(tls) as (port, received):
            plain = _SocketStream(small_socket(port, 64 * 1024))
            conn = _AnyioConnection(await anyio_start_tls(plain, options(port), LOOPBACK))
            with pytest.raises(TimeoutError):
                await conn.write(DATA, 0.3)
            await conn.aclose(False, 1.0)
            return conn.written, await anyio.to_thread.run_sync(received)

    for written, got in (trio.run(with_trio), anyio.run(with_anyio, backend="trio")):
        check_count(written, got, tls=True)


def test_trio_counts_what_left_before_a_timeout() -> None:
    async def main() -> tuple[int | None, bytes]:
        with stalled_peer() as (port, received):
            sock = trio.socket.from_stdlib_socket(small_socket(port))
            conn = _Connection(trio.SocketStream(sock))
            with pytest.raises(TimeoutError):
                await conn.write(DATA, 0.3)
            await conn.aclose(False, 1.0)
            return conn.written, await trio.to_thread.run_sync(received)

    written, got = trio.run(main)
    check_count(written, got)


def test_anyio_counts_what_left_before_a_timeout() -> None:
    # anyio on trio: the adapter's own socket stream (on asyncio, anyio
    # takes the asyncio adapter's connection, counted above).
    async def main() -> tuple[int | None, bytes]:
        with stalled_peer() as (port, received):
            conn = _AnyioConnection(_SocketStream(small_socket(port)))
            with pytest.raises(TimeoutError):
                await conn.write(DATA, 0.3)
            await conn.aclose(False, 1.0)
            return conn.written, await anyio.to_thread.run_sync(received)

    written, got = anyio.run(main, backend="trio")
    check_count(written, got)


def test_a_write_to_a_reset_connection_took_nothing() -> None:
    # The send fails at once: nothing of it left.
    with stalled_peer() as (port, received):
        sock = small_socket(port)
        conn = _Socket(sock)
        sock.shutdown(socket.SHUT_WR)  # our side can no longer send
        with pytest.raises(OSError):
            conn.write(b"x" * 100, 1.0)
        conn.abort()
        assert received() == b""
    assert conn.written == 0
