"""The asyncio adapter: ``send()``, ``Client`` and ``Pool``, awaited.

The same API as :mod:`smtpcore.adapters.blocking`. The client loop is
shared with trio (:mod:`smtpcore.adapters._async`); this module is its
asyncio I/O: connect, write, read with the stage's timeout, TLS handshake,
close, and a worker thread for body files. Every protocol decision is the
core's.

The connection is a small :class:`asyncio.Protocol`, not streams:
``StreamWriter.start_tls`` needs Python 3.11, and a protocol costs one wakeup
per read rather than one per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import IO, Any, TypeVar, final

from smtpcore import SMTPTimeoutError, Stage, TLSError

from . import _async
from ._common import (
    ClientOptions,
    FailureCallback,
    MessageInput,
    SendResult,
    SuccessCallback,
    TLSInfo,
    connect_error,
)

__all__ = ["Client", "Pool", "send"]

T = TypeVar("T")

#: Received bytes buffered before the transport stops reading (flow control).
_READ_HIGH_WATER = 256 * 1024


class _Stream(asyncio.Protocol):
    """One connection (an :class:`_async.Connection`): received bytes wait
    in a buffer until the client asks."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # of the current wait, on the loop's clock
        self._write_paused = self._read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _READ_HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._read_paused = True
        self._wake()

    def eof_received(self) -> None:
        self._eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof, self._error, self._write_paused = True, exc, False
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def readable_now(self) -> bool:
        """True when bytes or the end of the stream wait to be read."""
        return bool(self._buffer) or self._eof

    def _take(self) -> bytes:
        """Everything received so far (``b""`` if nothing, or at EOF)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    async def read(self, timeout: float) -> bytes:
        """What was received, waiting up to ``timeout``; ``b""`` at EOF."""
        if not self.readable_now():
            await self._wait(timeout)
        if not self._buffer and isinstance(self._error, OSError):
            raise self._error
        return self._take()

    async def write(self, data: bytes, timeout: float) -> None:
        """Write ``data``; wait only while the transport's buffer is full."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise self._error if isinstance(self._error, OSError) else BrokenPipeError()
        transport.write(data)
        if self._write_paused:
            deadline = asyncio.get_running_loop().time() + timeout
            while self._write_paused:
                await self._wait(deadline - asyncio.get_running_loop().time())

    async def start_tls(self, options: ClientOptions, hostname: str | None) -> bytes | None:
        """STARTTLS's handshake, unless the server already sent more."""
        if self._eof and not self._buffer:
            # A closed connection is a failed handshake (as with trio): handing
            # the session an EOF here would only ask for the handshake again.
            raise _closed(options)
        if not self._buffer:
            await self.handshake(options, hostname)
        return self._take() if self._buffer else None

    async def handshake(self, options: ClientOptions, hostname: str | None) -> None:
        """Run the TLS handshake on the connection (TLSError if it fails)."""
        assert self.transport is not None
        assert options.ssl_context is not None
        seconds = options.timeouts(Stage.TLS_HANDSHAKE)
        handshake = asyncio.get_running_loop().start_tls(
            self.transport,
            self,
            options.ssl_context,
            server_hostname=hostname,
            # A backstop only: wait_for below decides, as a timeout.
            ssl_handshake_timeout=2 * seconds,
        )
        try:
            transport = await asyncio.wait_for(handshake, seconds)
        except asyncio.TimeoutError as exc:  # an OSError too, from Python 3.11
            raise SMTPTimeoutError(Stage.TLS_HANDSHAKE, seconds) from exc
        except (ssl.SSLError, OSError) as exc:
            reason = exc if str(exc) else "timed out"
            raise TLSError(f"TLS handshake with {options.address} failed: {reason}") from exc
        if transport is None:  # What start_tls returns if the server closed meanwhile.
            raise _closed(options)
        self.transport = transport

    def tls_info(self) -> TLSInfo | None:
        """What TLS was negotiated, if it is up."""
        obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        return TLSInfo.from_ssl_object(obj) if isinstance(obj, ssl.SSLObject) else None

    def abort(self) -> None:
        """Close the transport now.

        By the time the session asks for Close (QUIT answered, or a fatal
        error) nothing is left worth flushing. ``close()`` sends TLS's
        close_notify (at once from Python 3.11); ``abort()`` then frees the
        socket rather than wait for the peer's, which could outlive the loop.
        """
        self._cancel_timer()
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
            transport.abort()

    async def aclose(self, graceful: bool, timeout: float) -> None:
        """:meth:`abort`: there is nothing to wait for."""
        self.abort()

    async def _wait(self, timeout: float) -> None:
        """Wait for :meth:`_wake`, or raise TimeoutError after ``timeout``.

        One future per wait (cheaper than wait_for's task), and one timer for
        many waits: a pipelining client waits once per message, each time
        with a later deadline, so the timer is only moved when a deadline
        comes earlier than it, and re-armed when it fires early.
        """
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._deadline = deadline = loop.time() + max(timeout, 0.0)
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._on_timer)
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next wait arms a new timer
        loop = waiter.get_loop()
        if loop.time() >= self._deadline:
            waiter.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(self._deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


def _closed(options: ClientOptions) -> TLSError:
    error = TLSError(f"TLS handshake with {options.address} failed: connection closed")
    error.__cause__ = ConnectionResetError("the server closed the connection")
    return error


async def open_stream(options: ClientOptions, sock: socket.socket | None = None) -> _Stream:
    """Connect (TCP, UNIX socket or the given socket), with TLS if implicit."""
    loop = asyncio.get_running_loop()
    stream = _Stream()
    if sock is not None:
        connecting = loop.create_connection(lambda: stream, sock=sock)
    elif options.unix_path is not None:
        connecting = loop.create_unix_connection(lambda: stream, options.unix_path)
    else:
        connecting = loop.create_connection(
            lambda: stream, options.server, options.port, local_addr=options.source_address
        )
    try:
        await asyncio.wait_for(connecting, options.timeouts(Stage.CONNECT))
    except socket.gaierror as exc:
        raise connect_error(exc, options.address, "resolve") from exc
    except asyncio.TimeoutError as exc:  # Not an OSError before Python 3.11.
        raise connect_error(TimeoutError("timed out"), options.address) from exc
    except OSError as exc:
        raise connect_error(exc, options.address) from exc
    raw = stream.transport.get_extra_info("socket") if stream.transport else None
    if raw is not None and raw.family in (socket.AF_INET, socket.AF_INET6):
        # The server may have closed it already (EOF before the greeting):
        # the session reports that; the option does not matter then.
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if options.implicit_tls:
        try:
            await stream.handshake(options, options.server)
        except BaseException:
            stream.abort()
            raise
    return stream


class _Asyncio:
    """The :class:`_async.Backend` for asyncio."""

    async def connect(self, options: ClientOptions, given: socket.socket | None) -> _Stream:
        return await open_stream(options, given)

    def lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    def semaphore(self, value: int) -> asyncio.Semaphore:
        return asyncio.Semaphore(value)

    async def to_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(function, *args)

    async def gather(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        return list(await asyncio.gather(*(call() for call in calls)))


@final
class Client(_async.Client):
    """One SMTP connection for many messages.

    ``async with Client("mx.example.net", tls="starttls") as c:
    await c.send_message("a@example.net", ["b@example.org"], message=b"...")``.
    Keyword arguments are those of :func:`send` that describe the connection.
    Many tasks may call :meth:`send_message` at once: their messages are
    pipelined on the one connection. If the server closed the connection
    while it was idle, the next message reconnects; a message whose data was
    sent is never resent. Cancelling a task whose message is in flight
    aborts the connection (and so fails the other messages in flight).
    """

    _backend = _Asyncio()

    def __init__(
        self,
        server: str = "localhost",
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        **options: Any,
    ) -> None:
        super().__init__(ClientOptions.build(server=server, port=port, **options), sock)


async def send(
    sender: str | None = None,
    recipients: str | Iterable[str] | None = None,
    *,
    message: MessageInput | None = None,
    message_file: str | os.PathLike[str] | None = None,
    file_handle: IO[bytes] | None = None,
    server: str = "localhost",
    port: int | None = None,
    sock: socket.socket | None = None,
    context: Any = None,
    on_success: SuccessCallback | None = None,
    on_failure: FailureCallback | None = None,
    message_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> SendResult | None:
    """Send one message over one connection.

    The arguments are those of :func:`smtpcore.adapters.blocking.send`; the
    body file is read in a worker thread, so the event loop never blocks.

    Returns:
        A :class:`SendResult` (None when callbacks are given).

    Raises:
        SMTPError: the typed error, when no callbacks are given.
    """
    return await _async.send(
        lambda: Client(server, port, sock=sock, **options),
        sender,
        recipients,
        message=message,
        message_file=message_file,
        file_handle=file_handle,
        context=context,
        on_success=on_success,
        on_failure=on_failure,
        message_options=message_options,
    )


@final
class Pool(_async.Pool):
    """Send many messages over up to ``size`` reused connections. Safe to
    use from many tasks; each message's result is reported on its own."""

    _backend = _Asyncio()

    def __init__(
        self, server: str = "localhost", port: int | None = None, *, size: int = 4, **options: Any
    ) -> None:
        super().__init__(lambda: Client(server, port, **options), size)
