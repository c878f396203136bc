"""The anyio adapter: ``send()``, ``Client`` and ``Pool``, awaited, on asyncio or trio.

The same API as :mod:`smtpcore.adapters.trio`, for code that runs under
:func:`anyio.run` (either backend) or inside a framework built on anyio;
``stream=`` runs over any connected :class:`anyio.abc.ByteStream`. The
client is the one every adapter shares
(:mod:`smtpcore.adapters._async_client`); this module is its I/O, written
with anyio only: connect, write, read with the stage's timeout, TLS
handshake (:class:`anyio.streams.tls.TLSStream`), close, and a worker thread
for body files.

On asyncio, a connection it opens (or a socket given with ``sock=``) is
the asyncio adapter's own: measured, anyio's socket waits cost about 1.5
times the CPU a message of the asyncio adapter's protocol, for the same
guarantees. On trio, and for a caller's ``stream=`` on either, it is anyio's.

The sockets it opens on trio are driven directly, non-blocking, with
:func:`anyio.wait_readable` and :func:`anyio.wait_writable`, rather than
through :func:`anyio.connect_tcp`'s streams. On asyncio those are
transports: they can only be closed by awaiting, so ``Client.abort()`` could
not close one, and they read ahead of the caller, so an idle connection
could not be checked by polling its socket. A socket of our own does what
the client asks and nothing more: a write returns once the kernel has every
byte, nothing is read before it is asked for, and it closes at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar, final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from smtpcore import SMTPTimeoutError, Stage, TLSError

from ._async_client import AsyncClient, AsyncConnection, AsyncPool, AsyncSend
from ._common import (
    AwaitsCallbacks,
    ClientOptions,
    TLSInfo,
    connect_error,
    received_now,
    record_pieces,
)
from .asyncio import open_stream as open_asyncio_stream

__all__ = ["Client", "Pool", "send"]

T = TypeVar("T")

_READ_SIZE = 64 * 1024
#: What a failed stream operation raises (TLSStream lets ssl.SSLError through).
_BROKEN = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class _SocketStream(anyio.abc.ByteStream):
    """A connected socket as an anyio byte stream that :meth:`close` closes
    at once, without awaiting (it takes the socket over)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = sock
        #: Octets of the last :meth:`send` the kernel took (all of them once
        #: it returns; fewer when it was cancelled or failed).
        self.sent = 0

    async def receive(self, max_bytes: int = _READ_SIZE) -> bytes:
        while True:
            try:
                data = self._call(self.socket.recv, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self.socket)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        self.sent = 0
        while view:
            try:
                taken = self._call(self.socket.send, view)
            except BlockingIOError:
                await anyio.wait_writable(self.socket)
                continue
            view = view[taken:]
            self.sent += taken

    def _call(self, method: Callable[[Any], T], argument: Any) -> T:
        """A socket call, its failure in anyio's terms (except would-block)."""
        if self.socket.fileno() < 0:
            raise anyio.ClosedResourceError
        try:
            return method(argument)
        except BlockingIOError:
            raise
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        self.socket.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close now; a task waiting on the socket gets ClosedResourceError."""
        if self.socket.fileno() >= 0:
            # Outside an event loop nobody can be waiting on the socket.
            with contextlib.suppress(RuntimeError):
                anyio.notify_closing(self.socket)
            self.socket.close()

    async def aclose(self) -> None:
        self.close()
        await anyio.lowlevel.checkpoint()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {
            SocketAttribute.raw_socket: lambda: self.socket,
            SocketAttribute.family: lambda: self.socket.family,
        }


async def open_socket(options: ClientOptions) -> socket.socket:
    """Connect (TCP or UNIX socket), binding as asked, within the connect
    timeout; each of the server's addresses in turn, as
    :func:`socket.create_connection` does."""
    with anyio.move_on_after(options.timeouts(Stage.CONNECT)):
        try:
            if options.unix_path is not None:
                return await _connect(socket.AF_UNIX, 0, options.unix_path, None)
            infos = await anyio.getaddrinfo(options.server, options.port, type=socket.SOCK_STREAM)
            errors: list[OSError] = []
            for family, _, proto, _, address in infos:
                try:
                    return await _connect(family, proto, address, options.source_address)
                except OSError as exc:
                    errors.append(exc)
            raise _attempts_error(errors)
        except socket.gaierror as exc:
            raise connect_error(exc, options.address, "resolve") from exc
        except OSError as exc:
            raise connect_error(exc, options.address) from exc
    raise connect_error(TimeoutError("timed out"), options.address)


async def _connect(family: int, proto: int, address: Any, local: Any) -> socket.socket:
    """One socket connected to ``address`` without blocking the event loop."""
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setblocking(False)
        if local is not None:
            sock.bind(local)
        while (code := sock.connect_ex(address)) == errno.EAGAIN:  # a UNIX backlog is full
            await anyio.wait_writable(sock)
        if code == errno.EINPROGRESS:
            await anyio.wait_writable(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
    except BaseException:
        sock.close()
        raise
    return sock


def _attempts_error(errors: list[OSError]) -> OSError:
    """The attempts' error when they agree on an errno, else one naming them all."""
    if errors and len({e.errno for e in errors}) == 1:
        return errors[0]
    return OSError("; ".join(map(str, errors)) or "no address to connect to")


async def start_tls(
    stream: anyio.abc.ByteStream, options: ClientOptions, hostname: str | None
) -> TLSStream:
    """Run the TLS handshake over ``stream`` (closed, with TLSError, on failure).

    ``standard_compatible=False``: a server that closes without TLS's
    close_notify has ended the stream (as trio and asyncio take it), and
    closing does not wait for the server's close_notify.
    """
    assert options.ssl_context is not None
    seconds = options.timeouts(Stage.TLS_HANDSHAKE)
    try:
        with anyio.CancelScope(deadline=anyio.current_time() + seconds):
            return await TLSStream.wrap(
                stream,
                server_side=False,
                hostname=hostname,
                ssl_context=options.ssl_context,
                standard_compatible=False,
            )
    except anyio.EndOfStream:
        await anyio.aclose_forcefully(stream)
        message = f"TLS handshake with {options.address} failed: connection closed"
        raise TLSError(message) from ConnectionResetError("the server closed the connection")
    except _BROKEN as exc:
        await anyio.aclose_forcefully(stream)
        reason = exc.__cause__ or exc
        raise TLSError(f"TLS handshake with {options.address} failed: {reason}") from reason
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    await anyio.aclose_forcefully(stream)
    raise SMTPTimeoutError(Stage.TLS_HANDSHAKE, seconds)  # the deadline passed


def _failed(exc: BaseException) -> NoReturn:
    """Raise a failed stream operation as the OSError the client expects."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    error = OSError(str(cause or exc) or type(exc).__name__)
    error.errno = cause.errno if isinstance(cause, OSError) else None
    raise error from exc


class _AnyioConnection:
    """An anyio byte stream as an :class:`AsyncConnection`."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        # The socket under the stream (TLS keeps it), if it has one.
        self._socket: socket.socket | None = stream.extra(SocketAttribute.raw_socket, None)

    # A plain cancel scope with an absolute deadline: fail_after's work
    # without its generator, on the path of every write and read.

    #: After a failed write: what our own socket stream took of it (under
    #: TLS, by whole records); None over a caller's stream, which cannot say.
    written: int | None = None

    async def write(self, data: bytes, timeout: float) -> None:
        stream = self.stream
        # TLS over our socket goes a record's worth (16 KiB) at a time: each
        # send that completes has handed its records to the kernel, so the
        # completed ones are the plain octets that may have left.
        tls = isinstance(stream, TLSStream) and type(stream.transport_stream) is _SocketStream
        sent = 0
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                if not tls:
                    await stream.send(data)
                    return
                for piece in record_pieces(data):
                    await stream.send(bytes(piece))
                    sent += len(piece)
                return
        except anyio.EndOfStream as exc:  # TLS wanted a record, the server closed
            self._count(tls, sent)
            raise BrokenPipeError(errno.EPIPE, "the server closed the connection") from exc
        except _BROKEN as exc:
            self._count(tls, sent)
            _failed(exc)
        self._count(tls, sent)
        raise TimeoutError  # the deadline passed

    def _count(self, tls: bool, sent: int) -> None:
        stream = self.stream
        if tls:
            self.written = sent
        else:
            self.written = stream.sent if type(stream) is _SocketStream else None

    async def read(self, timeout: float) -> bytes:
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                return await self.stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            return b""
        except _BROKEN as exc:
            _failed(exc)
        raise TimeoutError  # the deadline passed

    def readable_now(self) -> bool:
        """True if the stream's socket has bytes or EOF waiting (False if unknown)."""
        if self._socket is None:
            return False
        fd = self._socket.fileno()
        if fd < 0:
            return True
        if hasattr(select, "poll"):  # poll has no FD_SETSIZE limit.
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])

    def received_now(self) -> bytes:
        """What our own plain socket holds, without waiting (it reads
        nothing ahead). TLS and a caller's stream cannot be read without a
        checkpoint, which may wait: ``b""``."""
        stream = self.stream
        return received_now(stream.socket if type(stream) is _SocketStream else None, _READ_SIZE)

    async def start_tls(self, options: ClientOptions, hostname: str | None) -> None:
        # Nothing is read ahead here: bytes after the 220 reply reach the
        # handshake, which fails on them.
        self.stream = await start_tls(self.stream, options, hostname)

    def tls_info(self) -> TLSInfo | None:
        ssl_object = self.stream.extra(TLSAttribute.ssl_object, None)
        return None if ssl_object is None else TLSInfo.from_ssl_object(ssl_object)

    def abort(self) -> None:
        """Close a socket we opened (or were given) at once. A caller's
        stream cannot be closed without awaiting: its socket is shut down,
        which ends the connection for the server and for any task using it."""
        ours: anyio.abc.AnyByteStream = self.stream
        while isinstance(ours, TLSStream):
            ours = ours.transport_stream
        if isinstance(ours, _SocketStream):
            ours.close()
        elif self._socket is not None and self._socket.fileno() >= 0:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    async def aclose(self, graceful: bool, timeout: float) -> None:
        """Close at once: ``graceful`` changes nothing, as TLSStream sends its
        close_notify only to wait for the server's, and after QUIT's reply
        nothing is left for it to protect."""
        with contextlib.suppress(*_BROKEN):
            await anyio.aclose_forcefully(self.stream)


def _on_asyncio() -> bool:
    """True when anyio runs on asyncio (trio needs sniffio, which says so)."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover - installed with trio
        return True
    return sniffio.current_async_library() == "asyncio"


class _Anyio(AwaitsCallbacks):
    """The :class:`AsyncBackend` for anyio."""

    async def connect(
        self, options: ClientOptions, given: socket.socket | anyio.abc.ByteStream | None
    ) -> AsyncConnection:
        if not isinstance(given, anyio.abc.ByteStream) and _on_asyncio():
            # On asyncio, the asyncio adapter's own connection: the same
            # guarantees (a write returns once the kernel has it, nothing
            # read ahead, abort() closes at once) for less CPU a message
            # than anyio's socket waits (bench/README.md). anyio's
            # cancellation reaches it as the task's CancelledError.
            return await open_asyncio_stream(options, given)
        if given is None:
            stream: anyio.abc.ByteStream = _SocketStream(await open_socket(options))
        elif isinstance(given, socket.socket):
            stream = _SocketStream(given)
        else:
            stream = given
        if options.implicit_tls:
            stream = await start_tls(stream, options, options.tls_hostname)
        return _AnyioConnection(stream)

    def lock(self) -> anyio.Lock:
        return anyio.Lock()

    def semaphore(self, value: int) -> anyio.Semaphore:
        return anyio.Semaphore(value)

    async def to_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args)

    async def gather(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        results: dict[int, T] = {}

        async def one(index: int) -> None:
            results[index] = await calls[index]()

        async with anyio.create_task_group() as group:
            for index in range(len(calls)):
                group.start_soon(one, index)
        return [results[index] for index in range(len(calls))]

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


@final
class Client(AsyncClient[socket.socket, anyio.abc.ByteStream]):
    """One SMTP connection for many messages, on anyio (asyncio or trio).

    ``async with Client("mx.example.net", tls="starttls") as c:
    await c.send_message("a@example.net", ["b@example.org"], message=b"...")``.
    Keyword arguments: :class:`~smtpcore.adapters.ConnectOptions`; ``stream``
    (a connected :class:`anyio.abc.ByteStream`) or ``sock`` (a connected
    :class:`socket.socket`) replace the first connection. Many tasks may call
    :meth:`send_message` at once: their messages are pipelined on the one
    connection. If the server closed the connection while it was idle, the
    next message reconnects; a message whose data was sent is never resent.
    Cancelling a task whose message is in flight aborts the connection (and
    so fails the other messages in flight). ``abort()`` cannot close a
    caller's stream (an anyio stream closes only by awaiting): it shuts its
    socket down, and closing the stream is left to the caller.
    """

    _backend = _Anyio()


@final
class Pool(AsyncPool[socket.socket, anyio.abc.ByteStream]):
    """Send many messages over up to ``size`` reused connections. Safe to
    use from many tasks; each message's result is reported on its own."""

    _backend = _Anyio()
    _client_class = Client


#: Send one message over one connection (see :class:`AsyncSend`); the body
#: file is read in a worker thread, so the event loop never blocks.
send = AsyncSend(Client, __name__)
