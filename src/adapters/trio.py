"""The trio adapter: ``send()``, ``Client`` and ``Pool``, awaited.

The same API as :mod:`smtpcore.adapters.blocking`, plus ``stream=`` to run
over any connected :class:`trio.abc.Stream`. The client is the one every
adapter shares (:mod:`smtpcore.adapters._async_client`); this module is its
trio I/O:
connect, write, read with the stage's timeout, TLS handshake, close, and a
worker thread for body files.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar, cast, final

import trio

from smtpcore import SMTPTimeoutError, Stage, TLSError

from ._async_client import AsyncClient, AsyncPool, AsyncSend
from ._common import (
    AwaitsCallbacks,
    ClientOptions,
    TLSInfo,
    connect_error,
    received_now,
    record_pieces,
)

__all__ = ["Client", "Pool", "send"]

T = TypeVar("T")

_READ_SIZE = 64 * 1024
#: What a failed stream operation raises.
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def open_stream(options: ClientOptions) -> trio.abc.Stream:
    """Connect (TCP or UNIX socket), binding and starting TLS as asked.
    trio's socket streams set TCP_NODELAY themselves."""
    stream: trio.abc.Stream
    try:
        with trio.fail_after(options.timeouts(Stage.CONNECT)):
            if options.unix_path is not None:
                stream = await trio.open_unix_socket(options.unix_path)
            elif options.source_address is not None:
                stream = await _open_bound(options.server, options.port, options.source_address)
            else:
                stream = await trio.open_tcp_stream(options.server, options.port or 25)
    except trio.TooSlowError as exc:
        raise connect_error(TimeoutError("timed out"), options.address) from exc
    except socket.gaierror as exc:
        raise connect_error(exc, options.address, "resolve") from exc
    except OSError as exc:
        raise connect_error(_attempts_error(exc), options.address) from exc
    if options.implicit_tls:
        stream = await start_tls(stream, options, options.tls_hostname)
    return stream


def _attempts_error(exc: OSError) -> OSError:
    """open_tcp_stream's error names no errno; its attempts' errors do."""
    attempts = [e for e in getattr(exc.__cause__, "exceptions", ()) if isinstance(e, OSError)]
    codes = {e.errno for e in attempts}
    code = codes.pop() if len(codes) == 1 else None
    return exc if exc.errno is not None or code is None else OSError(code, os.strerror(code))


async def _open_bound(host: str, port: int | None, local: tuple[str, int]) -> trio.SocketStream:
    # trio.open_tcp_stream cannot bind a local port: try each address in turn,
    # as socket.create_connection does.
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in infos:
        sock = trio.socket.socket(family, kind, proto)
        try:
            await sock.bind(local)
            await sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
        else:
            return trio.SocketStream(sock)
    raise error


async def start_tls(
    stream: trio.abc.Stream, options: ClientOptions, hostname: str | None
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the TLS handshake over ``stream`` (closed, with TLSError, on failure)."""
    assert options.ssl_context is not None
    tls = trio.SSLStream(stream, options.ssl_context, server_hostname=hostname)
    seconds = options.timeouts(Stage.TLS_HANDSHAKE)
    try:
        with trio.fail_after(seconds):
            await tls.do_handshake()
    except trio.TooSlowError as exc:
        await trio.aclose_forcefully(stream)
        raise SMTPTimeoutError(Stage.TLS_HANDSHAKE, seconds) from exc
    except _BROKEN as exc:
        await trio.aclose_forcefully(stream)
        reason = exc.__cause__ or exc
        raise TLSError(f"TLS handshake with {options.address} failed: {reason}") from reason
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return tls


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream | None:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream if isinstance(stream, trio.SocketStream) else None


def _tls_on_socket(stream: trio.abc.Stream) -> bool:
    """TLS straight over a trio socket stream (whose ``send_all`` returns
    once the kernel has every octet)."""
    return isinstance(stream, trio.SSLStream) and type(stream.transport_stream) is trio.SocketStream


def _raw_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """The standard socket under a plain trio socket stream, else None.

    trio keeps it as its socket's ``_sock``; a trio without it (or any other
    stream) only loses the direct path. trio's sockets are non-blocking.
    """
    if type(stream) is not trio.SocketStream:
        return None
    raw = getattr(stream.socket, "_sock", None)
    return raw if isinstance(raw, socket.socket) else None


def _failed(exc: BaseException) -> NoReturn:
    """Raise a failed stream operation as the OSError the client expects."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    error = OSError(str(cause or exc) or type(exc).__name__)
    error.errno = cause.errno if isinstance(cause, OSError) else None
    raise error from exc


class _Connection:
    """A trio stream as an :class:`AsyncConnection`.

    Over a plain TCP or UNIX socket stream, a write or read is first tried
    at once on the socket, as trio's own socket methods do (a checkpoint
    around a non-blocking call), and a deadline is set up only when the
    socket is not ready: most writes, and many reads, never wait. The
    stream's own methods and a cancel scope cost about a quarter of the
    client's instructions a message. Any other stream (TLS, a caller's)
    takes the stream's methods.
    """

    written: int | None = None

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._raw = _raw_socket(stream)

    # A plain cancel scope with an absolute deadline: the same as fail_after
    # at half its cost (no generator).

    async def write(self, data: bytes, timeout: float) -> None:
        raw = self._raw
        if raw is None:
            await self._write_stream(data, timeout)
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            sent = raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.written = 0
            _failed(exc)
        if sent == len(data):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        # The rest as trio's send_all does it, counting what the kernel took
        # (for a failure: see AsyncConnection.written).
        rest = memoryview(data)[sent:]
        try:
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                while rest:
                    await trio.lowlevel.wait_writable(raw)
                    try:
                        taken = raw.send(rest)
                    except BlockingIOError:
                        continue
                    rest = rest[taken:]
                    sent += taken
                return
        except _BROKEN as exc:
            self.written = sent
            _failed(exc)
        self.written = sent
        raise TimeoutError  # the deadline passed

    async def _write_stream(self, data: bytes, timeout: float) -> None:
        """A write through the stream's own method. TLS on a trio socket
        goes a record's worth (16 KiB) at a time: each ``send_all`` that
        completes has handed its records to the kernel, so the completed
        ones are the plain octets that may have left (a half-sent record is
        dropped with the connection). A caller's stream cannot say."""
        counted = _tls_on_socket(self.stream)
        sent = 0
        try:
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                if not counted:
                    await self.stream.send_all(data)
                    return
                for piece in record_pieces(data):
                    await self.stream.send_all(piece)
                    sent += len(piece)
                return
        except _BROKEN as exc:
            self.written = sent if counted else None
            _failed(exc)
        self.written = sent if counted else None
        raise TimeoutError  # the deadline passed

    async def read(self, timeout: float) -> bytes:
        raw = self._raw
        if raw is None:
            try:
                with trio.CancelScope(deadline=trio.current_time() + timeout):
                    return bytes(await self.stream.receive_some(_READ_SIZE))
            except _BROKEN as exc:
                _failed(exc)
            raise TimeoutError  # the deadline passed
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = raw.recv(_READ_SIZE)
        except BlockingIOError:
            pass
        except OSError as exc:
            _failed(exc)
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        try:
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                while True:
                    await trio.lowlevel.wait_readable(raw)
                    try:
                        return raw.recv(_READ_SIZE)
                    except BlockingIOError:
                        continue  # woken without data: wait again
        except _BROKEN as exc:
            _failed(exc)
        raise TimeoutError  # the deadline passed

    def readable_now(self) -> bool:
        """True if the stream's socket has bytes or EOF waiting (False if unknown)."""
        stream = _socket_stream(self.stream)
        if stream is None:
            return False
        fd = stream.socket.fileno()
        if fd < 0:
            return True
        if hasattr(select, "poll"):  # poll has no FD_SETSIZE limit.
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])

    def received_now(self) -> bytes:
        """What the socket holds, without waiting. A TLS or caller's stream
        cannot be read without a checkpoint (which may wait): ``b""``."""
        return received_now(self._raw, _READ_SIZE)

    async def start_tls(self, options: ClientOptions, hostname: str | None) -> None:
        # Nothing is read ahead here: bytes after the 220 reply reach the
        # handshake, which fails on them.
        self.stream = await start_tls(self.stream, options, hostname)
        self._raw = None  # from here on, the TLS stream's methods

    def tls_info(self) -> TLSInfo | None:
        if not isinstance(self.stream, trio.SSLStream):
            return None
        # SSLStream passes cipher(), version() and getpeercert() through.
        return TLSInfo.from_ssl_object(cast("ssl.SSLObject", self.stream))

    def abort(self) -> None:
        """Close a socket-backed stream without awaiting (what aclose does
        first); any other stream is closed by ``aclose`` only."""
        stream = _socket_stream(self.stream)
        if stream is not None:
            stream.socket.close()

    async def aclose(self, graceful: bool, timeout: float) -> None:
        """``graceful`` sends TLS's close_notify first, within ``timeout``."""
        try:
            if graceful:
                with trio.move_on_after(timeout):
                    await self.stream.aclose()  # Closes even when cancelled.
            else:
                await trio.aclose_forcefully(self.stream)
        except _BROKEN:
            pass  # Closed all the same.


class _Trio(AwaitsCallbacks):
    """The :class:`AsyncBackend` for trio."""

    async def connect(
        self, options: ClientOptions, given: trio.socket.SocketType | trio.abc.Stream | None
    ) -> _Connection:
        if given is None:
            return _Connection(await open_stream(options))
        stream = given if isinstance(given, trio.abc.Stream) else trio.SocketStream(given)
        if options.implicit_tls:
            stream = await start_tls(stream, options, options.tls_hostname)
        return _Connection(stream)

    def lock(self) -> trio.Lock:
        return trio.Lock()

    def semaphore(self, value: int) -> trio.Semaphore:
        return trio.Semaphore(value)

    async def to_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(function, *args)

    async def gather(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        results: dict[int, T] = {}

        async def one(index: int) -> None:
            results[index] = await calls[index]()

        async with trio.open_nursery() as nursery:
            for index in range(len(calls)):
                nursery.start_soon(one, index)
        return [results[index] for index in range(len(calls))]

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


@final
class Client(AsyncClient[trio.socket.SocketType, trio.abc.Stream]):
    """One SMTP connection for many messages, on trio.

    ``async with Client("mx.example.net", tls="starttls") as c:
    await c.send_message("a@example.net", ["b@example.org"], message=b"...")``.
    Keyword arguments: :class:`~smtpcore.adapters.ConnectOptions`; ``stream``
    (a connected :class:`trio.abc.Stream`) or ``sock`` (a connected trio
    socket) replace the first connection. Many tasks may call
    :meth:`send_message` at once: their messages are pipelined on the one
    connection. If the server closed the connection while it was idle, the
    next message reconnects; a message whose data was sent is never resent.
    Cancelling a task whose message is in flight aborts the connection (and
    so fails the other messages in flight). A caller's stream that is not
    socket-based is closed by ``close()`` only.
    """

    _backend = _Trio()


@final
class Pool(AsyncPool[trio.socket.SocketType, trio.abc.Stream]):
    """Send many messages over up to ``size`` reused connections. Safe to
    use from many tasks; each message's result is reported on its own."""

    _backend = _Trio()
    _client_class = Client


#: Send one message over one connection (see :class:`AsyncSend`); the body
#: file is read in a worker thread, so trio never blocks.
send = AsyncSend(Client, __name__)
