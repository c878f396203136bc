"""The asyncio adapter: ``send()``, ``Client`` and ``Pool``, awaited.

The same API as :mod:`smtpcore.adapters.blocking`. The client is the one
every adapter shares (:mod:`smtpcore.adapters._async_client`); this module
is its asyncio I/O: connect, write, read with the stage's timeout, TLS handshake,
close, and a worker thread for body files. Every protocol decision is the
core's.

The connection is a small :class:`asyncio.Protocol`, not streams: a
protocol costs one wakeup per read rather than one per line, and it knows
when the kernel has taken a write (streams' ``drain()`` only knows that the
buffer is below a limit, and under TLS not even that of the socket's).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar, final

from smtpcore import SMTPTimeoutError, Stage, TLSError

from ._async_client import AsyncClient, AsyncPool, AsyncSend
from ._common import (
    RECORD_SIZE,
    AwaitsCallbacks,
    ClientOptions,
    TLSInfo,
    connect_error,
    record_pieces,
)

__all__ = ["Client", "Pool", "send"]

T = TypeVar("T")

#: Received bytes buffered before the transport stops reading (flow control).
_READ_HIGH_WATER = 256 * 1024
#: Decrypted bytes taken from the TLS layer at a time.
_READ_SIZE = 64 * 1024


def _written(data: bytes, records: Sequence[tuple[int, int]], buffered: int) -> int:
    """How many leading octets of ``data`` may have left when ``buffered``
    octets of it (of its TLS records, when ``records`` says where each
    piece's records end) were still in the transport's buffer."""
    if not records:
        return max(0, len(data) - buffered)
    handed = records[-1][0]
    taken = handed - buffered  # record octets the kernel took
    return max((plain for end, plain in records if end <= taken), default=0)


class _Stream(asyncio.Protocol):
    """One connection (an :class:`AsyncConnection`): received bytes wait
    in a buffer until the client asks.

    A write completes only once the kernel has every byte of it, as with a
    blocking socket: the transport's write buffer limit is zero, so it calls
    :meth:`pause_writing` as soon as it holds a byte and :meth:`resume_writing`
    once it is empty again. A write the kernel takes at once never waits. A
    connection that breaks while bytes are still buffered fails the write,
    so the session never takes bytes that did not leave (a final dot) for
    sent.

    TLS runs here over memory BIOs, as trio does, rather than with
    ``loop.start_tls``: the TLS transport buffers records of its own in
    front of the socket's buffer, and says nothing when the socket's buffer
    empties, so a write through it could not tell when its bytes left.
    """

    written: int | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Its loop, looked up once: get_running_loop() costs a getpid()
        # system call each time, and a read would make two.
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # of the current wait, on the loop's clock
        self._write_paused = self._read_paused = False
        # TLS, once a handshake began: received records go to _incoming,
        # records to send come out of _outgoing.
        self._tls: ssl.SSLObject | None = None
        self._tls_up = False
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        # Octets of records the TLS layer sent of itself (a key update).
        self._flushed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=0)

    def data_received(self, data: bytes) -> None:
        if self._tls is None:
            self._buffer += data
        else:
            self._incoming.write(data)
            if self._tls_up:
                self._decrypt(self._tls)
        if len(self._buffer) > _READ_HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._read_paused = True
        self._wake()

    def _decrypt(self, tls: ssl.SSLObject) -> None:
        """Move what the received records hold into the buffer."""
        try:
            while self._incoming.pending or tls.pending():
                data = tls.read(_READ_SIZE)
                if not data:  # the server's close_notify
                    self._eof = True
                    break
                self._buffer += data
        except ssl.SSLWantReadError:
            pass  # the rest of a record is due
        except ssl.SSLError as exc:  # a broken record or an alert
            self._eof = True
            self._error = self._error or exc
        self._flush()  # what the TLS layer answers itself (a key update)

    def _flush(self) -> None:
        """Hand the TLS records made so far to the transport."""
        if self._outgoing.pending and self.transport is not None:
            records = self._outgoing.read()
            self._flushed += len(records)
            self.transport.write(records)

    def eof_received(self) -> None:
        self._eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        # _write_paused stays as it is: still set, it says bytes were lost.
        self._eof = self._lost = True
        self._error = self._error or exc
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _broken(self) -> OSError:
        """Why the connection cannot be written to."""
        if isinstance(self._error, OSError):
            return self._error
        return BrokenPipeError(errno.EPIPE, "the connection is closed")

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

    def received_now(self) -> bytes:
        """What was received (and decrypted) so far, without waiting."""
        return self._take()

    async def read(self, timeout: float) -> bytes:
        """What was received, waiting up to ``timeout``; ``b""`` at EOF."""
        if not self.readable_now():
            # Received records may hold no data (a TLS session ticket).
            loop = self._loop
            deadline = loop.time() + timeout
            while not self.readable_now():
                await self._wait(deadline - loop.time())
        if not self._buffer and isinstance(self._error, OSError):
            raise self._error
        return self._take()

    async def write(self, data: bytes, timeout: float) -> None:
        """Write ``data``; return once the kernel has all of it."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.written = 0
            raise self._broken()
        records: Sequence[tuple[int, int]] = ()
        if self._tls is None:
            transport.write(data)
        else:
            records = self._encrypt(self._tls, transport, data)
        # A send that fails at once closes the transport, which reports why
        # a moment later (connection_lost).
        failed = transport.is_closing()
        if not (self._write_paused or failed):
            return  # the kernel took it all: the common case, with no wait
        if failed:
            # The send failed at once: none of it left (a partial send
            # buffers the rest and leaves the transport open).
            self.written = 0
            raise self._broken()
        loop = self._loop
        deadline = loop.time() + timeout
        flushed = self._flushed
        try:
            while self._write_paused and not self._lost:
                await self._wait(deadline - loop.time())
        except TimeoutError:
            # Still buffered: the end of ``data`` (the transport's buffer
            # holds ours after any earlier bytes). Under TLS it holds
            # records: the plain octets that may have left are those of the
            # records the kernel took whole (the rest of a record is thrown
            # away with the buffer, and the server cannot read half of one).
            # Records the TLS layer sent of itself meanwhile are buffered
            # behind ours: at most that many of the buffered octets are not
            # ours (what is left errs towards "may have left").
            buffered = transport.get_write_buffer_size() - (self._flushed - flushed)
            self.written = _written(data, records, max(0, buffered))
            raise
        if self._write_paused:
            # The connection broke with bytes of ours still buffered: they
            # never left, but what came before them may have, and asyncio
            # forgets how much when it closes the transport.
            self.written = None
            raise self._broken()

    def _encrypt(
        self, tls: ssl.SSLObject, transport: asyncio.Transport, data: bytes
    ) -> list[tuple[int, int]]:
        """Hand ``data`` to the transport as TLS records, a record's worth of
        plain octets at a time. Returns, for each piece, where its records
        end in what was handed over and where it ends in ``data``."""
        if len(data) <= RECORD_SIZE:  # every command, most data: one piece
            tls.write(data)  # an SSLError is an OSError: a failed write
            records = self._outgoing.read()
            transport.write(records)
            return [(len(records), len(data))]
        pieces: list[bytes] = []
        ends: list[tuple[int, int]] = []
        records_end = plain_end = 0
        for piece in record_pieces(data):
            tls.write(piece)
            pieces.append(self._outgoing.read())
            records_end += len(pieces[-1])
            plain_end += len(piece)
            ends.append((records_end, plain_end))
        transport.write(b"".join(pieces))
        return ends

    async def start_tls(self, options: ClientOptions, hostname: str | None) -> bytes | None:
        """STARTTLS's handshake, unless the server already sent more."""
        if self._buffer:
            return self._take()  # in the clear after the 220: the session refuses it
        if self._eof:
            # A closed connection is a failed handshake (as with trio): handing
            # the session an EOF here would only ask for the handshake again.
            raise _closed(options, self._error)
        await self.handshake(options, hostname)
        return None

    async def handshake(self, options: ClientOptions, hostname: str | None) -> None:
        """Run the TLS handshake on the connection (TLSError if it fails)."""
        assert options.ssl_context is not None
        loop = self._loop
        seconds = options.timeouts(Stage.TLS_HANDSHAKE)
        deadline = loop.time() + seconds
        tls = self._tls = options.ssl_context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=hostname
        )
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self._flush()
                if self._eof:
                    raise _closed(options, self._error)
                await self._wait(deadline - loop.time())
        except TimeoutError as exc:
            raise SMTPTimeoutError(Stage.TLS_HANDSHAKE, seconds) from exc
        except (ssl.SSLError, OSError) as exc:
            self._flush()  # our alert, if any: the server learns why
            raise TLSError(f"TLS handshake with {options.address} failed: {exc}") from exc
        self._tls_up = True
        self._flush()
        self._decrypt(tls)  # records that came with the end of the handshake

    def tls_info(self) -> TLSInfo | None:
        """What TLS was negotiated, if it is up."""
        return TLSInfo.from_ssl_object(self._tls) if self._tls_up and self._tls else None

    def abort(self) -> None:
        """Close the transport now.

        By the time the session asks for Close (QUIT answered, or a fatal
        error) nothing is left worth flushing. TLS's close_notify goes first
        if the socket takes it at once; ``abort()`` then frees the socket
        rather than wait for the peer's, which could outlive the loop.
        """
        self._cancel_timer()
        transport, self.transport = self.transport, None
        if transport is None:
            return
        if self._tls_up and self._tls is not None and not transport.is_closing():
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()  # SSLWantReadError: the peer's is not awaited
            if self._outgoing.pending:
                transport.write(self._outgoing.read())
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
        loop = self._loop
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


def _closed(options: ClientOptions, error: Exception | None = None) -> TLSError:
    """The TLSError for a connection that closed before or during the handshake."""
    tls_error = TLSError(f"TLS handshake with {options.address} failed: connection closed")
    cause = error if isinstance(error, OSError) else None
    tls_error.__cause__ = cause or ConnectionResetError("the server closed the connection")
    return tls_error


async def open_stream(options: ClientOptions, sock: socket.socket | None = None) -> _Stream:
    """Connect (TCP, UNIX socket or the given socket), with TLS if implicit."""
    loop = asyncio.get_running_loop()
    stream = _Stream(loop)
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
            await stream.handshake(options, options.tls_hostname)
        except BaseException:
            stream.abort()
            raise
    return stream


class _Asyncio(AwaitsCallbacks):
    """The :class:`AsyncBackend` for asyncio."""

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

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@final
class Client(AsyncClient[socket.socket, NoReturn]):
    """One SMTP connection for many messages, on asyncio.

    ``async with Client("mx.example.net", tls="starttls") as c:
    await c.send_message("a@example.net", ["b@example.org"], message=b"...")``.
    Keyword arguments: :class:`~smtpcore.adapters.ConnectOptions`; ``sock``
    is a connected socket to use first. Many tasks may call
    :meth:`send_message` at once: their messages are pipelined on the one
    connection. If the server closed the connection while it was idle, the
    next message reconnects; a message whose data was sent is never resent.
    Cancelling a task whose message is in flight aborts the connection (and
    so fails the other messages in flight).
    """

    _backend = _Asyncio()


@final
class Pool(AsyncPool[socket.socket, NoReturn]):
    """Send many messages over up to ``size`` reused connections. Safe to
    use from many tasks; each message's result is reported on its own."""

    _backend = _Asyncio()
    _client_class = Client


#: Send one message over one connection (see :class:`AsyncSend`); the body
#: file is read in a worker thread, so the event loop never blocks.
send = AsyncSend(Client, __name__)
