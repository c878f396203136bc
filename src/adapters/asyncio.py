"""The asyncio adapter: ``send()``, ``Client`` and ``Pool``, awaited.

The same API as :mod:`smtpcore.adapters.blocking`. The whole adapter is
:meth:`Client._run`: ask the session what to do, do it on the connection
(write, read with the stage's timeout, TLS handshake, read a body chunk in a
thread), hand the outcome back, and file the events. Every protocol decision
is the core's.

The connection is a small :class:`asyncio.Protocol`, not streams:
``StreamWriter.start_tls`` needs Python 3.11, and a protocol costs one wakeup
per read rather than one per line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, final

from smtpcore import (
    Close,
    Command,
    ConfigurationError,
    Idle,
    LocalProtocolError,
    MessageFailed,
    MessageResult,
    NeedBody,
    Noop,
    OutgoingMessage,
    Read,
    Reply,
    ServerReady,
    Session,
    SMTPError,
    Stage,
    StartTLSAction,
    TLSError,
    TranscriptEntry,
    Write,
)

from ._common import (
    QUIT_BEFORE_MAIL,
    BodySource,
    ClientOptions,
    FailureCallback,
    Ledger,
    MessageInput,
    Outcome,
    SendResult,
    SuccessCallback,
    TLSInfo,
    client_logger,
    connect_error,
    make_message,
    report,
)

__all__ = ["Client", "Pool", "send"]

#: Received bytes buffered before the transport stops reading (flow control).
_READ_HIGH_WATER = 256 * 1024


class _Stream(asyncio.Protocol):
    """One connection: received bytes wait in a buffer until the loop asks."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
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

    @property
    def pending(self) -> bool:
        """True when bytes or the end of the stream wait to be read."""
        return bool(self._buffer) or self._eof

    def take(self) -> bytes:
        """Everything received so far (``b""`` if nothing, or at EOF)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    async def read(self, timeout: float) -> bytes:
        """What was received, waiting up to ``timeout``; ``b""`` at EOF."""
        if not self.pending:
            await self._wait(timeout)
        if not self._buffer and isinstance(self._error, OSError):
            raise self._error
        return self.take()

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

    async def start_tls(self, options: ClientOptions, hostname: str | None) -> None:
        """Run the TLS handshake on the connection (TLSError if it fails)."""
        assert self.transport is not None
        assert options.ssl_context is not None
        seconds = options.timeouts(Stage.TLS_HANDSHAKE)
        handshake = asyncio.get_running_loop().start_tls(
            self.transport,
            self,
            options.ssl_context,
            server_hostname=hostname,
            ssl_handshake_timeout=seconds,
        )
        try:
            self.transport = await asyncio.wait_for(handshake, seconds)
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            reason = exc if str(exc) else "timed out"
            raise TLSError(f"TLS handshake with {options.address} failed: {reason}") from exc

    def tls_info(self) -> TLSInfo | None:
        """What TLS was negotiated, if it is up."""
        obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        return TLSInfo.from_ssl_object(obj) if isinstance(obj, ssl.SSLObject) else None

    def close(self) -> None:
        """Close the transport now.

        By the time the session asks for Close (QUIT answered, or a fatal
        error) nothing is left worth flushing. ``close()`` sends TLS's
        close_notify (at once from Python 3.11); ``abort()`` then frees the
        socket rather than wait for the peer's, which could outlive the loop.
        """
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
            transport.abort()

    async def _wait(self, timeout: float) -> None:
        # One future and one timer per wait: cheaper than wait_for's task.
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(max(timeout, 0.0), _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


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
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if options.implicit_tls:
        try:
            await stream.start_tls(options, options.server)
        except BaseException:
            stream.close()
            raise
    return stream


@final
class Client:
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

    def __init__(
        self,
        server: str = "localhost",
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        **options: Any,
    ) -> None:
        self.options = ClientOptions.build(server=server, port=port, **options)
        self._given_sock = sock
        self._stream: _Stream | None = None
        self._session: Session | None = None
        self._log = client_logger(self.options.name)
        self._ledger = Ledger(self._log)
        # Held by the one task driving the connection; its loop serves all.
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        # A refused message leaves a working session: QUIT politely. Anything
        # else (cancellation, a bug) closes at once.
        if exc_type is None or issubclass(exc_type, SMTPError):
            await self.close()
        else:
            self.abort()

    # -- public API ------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        """The current session (None before ``connect``)."""
        return self._session

    @property
    def greeting(self) -> Reply | None:
        """The server's greeting on the current connection."""
        return self._ledger.greeting

    @property
    def server_ready(self) -> list[ServerReady]:
        """Each EHLO answer on the current connection (before and after STARTTLS)."""
        return self._ledger.server_ready

    @property
    def tls_info(self) -> TLSInfo | None:
        """The TLS version, cipher and peer certificate (kept after close)."""
        return self._ledger.tls_info

    @property
    def transcript(self) -> tuple[TranscriptEntry, ...]:
        """The transaction log of the current (or last) connection."""
        return tuple(self._session.transcript) if self._session else ()

    async def connect(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS and AUTH as configured."""
        async with self._lock:
            await self._connect()

    async def send_message(
        self,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        *,
        message: MessageInput | None = None,
        message_file: str | os.PathLike[str] | None = None,
        file_handle: IO[bytes] | None = None,
        **message_options: Any,
    ) -> MessageResult:
        """Send one message; returns its result or raises the typed error."""
        item = dict(
            sender=sender,
            recipients=recipients,
            message=message,
            message_file=message_file,
            file_handle=file_handle,
            **message_options,
        )
        [outcome] = await self.send_many([item], raise_errors=True)
        assert isinstance(outcome, MessageResult)
        return outcome

    async def send_many(
        self, messages: Iterable[Mapping[str, Any]], *, raise_errors: bool = False
    ) -> list[MessageResult | SMTPError]:
        """Send several messages over this one connection, pipelined: the end
        of one message's data and the next message's envelope share a round
        trip when the server offers PIPELINING.

        Each item holds :meth:`send_message`'s keyword arguments. Returns, in
        order, each message's result or its typed error (with
        ``raise_errors``, the first error is raised instead).
        """
        if self.options.config.quit_after in QUIT_BEFORE_MAIL:
            raise ConfigurationError(
                f"quit_after={self.options.config.quit_after.value} stops before any message: "
                "use connect() to probe"
            )
        results: list[MessageResult | SMTPError] = []
        prepared: list[tuple[int, OutgoingMessage, BodySource | None]] = []
        outcomes: list[Outcome] = []
        try:
            for item in messages:
                try:
                    outgoing, source = make_message(**{"sender": None, "recipients": None, **item})
                except SMTPError as exc:
                    if raise_errors:
                        raise
                    results.append(exc)
                    continue
                prepared.append((len(results), outgoing, source))
                results.append(LocalProtocolError("not sent"))
            items = [(outgoing, source) for _, outgoing, source in prepared]
            if items:
                outcomes, session, reused = await self._submit(items)
                retry = [i for i, o in enumerate(outcomes) if reused and _dropped(o)]
                if retry:
                    # The server closed the idle connection before these
                    # messages' data: send them once more on a fresh connection
                    # (unless a task sharing this client opened one already).
                    self._log.debug("connection dropped while idle; reconnecting")
                    async with self._lock:
                        if self._session is session:
                            await self._connect()
                    again, _, _ = await self._submit([items[i] for i in retry])
                    for i, outcome in zip(retry, again, strict=True):
                        outcomes[i] = outcome
        finally:
            for _, _, source in prepared:
                if source is not None:
                    source.close()
        for (slot, _, _), outcome in zip(prepared, outcomes, strict=True):
            if isinstance(outcome, MessageFailed):
                if raise_errors:
                    raise outcome.error
                results[slot] = outcome.error
            else:
                results[slot] = outcome.result
        return results

    async def command(self, command: Command) -> Reply:
        """Send NOOP, VRFY, EXPN or a raw extension command; returns the reply."""
        session = await self._live_session()
        key = (session, session.command(command))
        try:
            await self._drive(lambda: key in self._ledger.replies)
        finally:
            reply = self._ledger.replies.pop(key, None)
        if reply is None:
            raise Ledger.dead_error(session)
        return reply

    async def noop(self) -> Reply:
        """Send NOOP (keeps an idle connection alive)."""
        return await self.command(Noop())

    async def close(self) -> None:
        """QUIT and close the connection (the transcript stays readable)."""
        async with self._lock:
            session = self._session
            if session is not None and self._stream is not None and not session.closed:
                session.quit()
                await self._run(lambda: False)
            self.abort()

    def abort(self) -> None:
        """Close the connection at once, without QUIT; whatever is in flight
        fails with :class:`smtpcore.ConnectionLostError`."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        session = self._session
        if session is not None and not session.closed:
            session.connection_lost("abort", None, "the connection was aborted")
            session.next_action()  # Close: the session reports its end.
            self._ledger.file(session)

    # -- the loop --------------------------------------------------------------

    async def _connect(self) -> None:
        self.abort()
        sock, self._given_sock = self._given_sock, None
        self._stream = await open_stream(self.options, sock)
        self._log.debug("connected to %s", self.options.address)
        self._session = session = Session(self.options.config)
        self._ledger.reset()
        self._ledger.tls_info = self._stream.tls_info()
        await self._run(lambda: False)
        if session.closed and session.error is not None:
            raise session.error

    async def _submit(
        self, items: list[tuple[OutgoingMessage, BodySource | None]]
    ) -> tuple[list[Outcome], Session, bool]:
        """Queue the messages and drive the connection until each has its
        outcome (the session reports one for every message, even when it
        dies); returns them, their session and whether it had been used."""
        session = await self._live_session()
        used = self._ledger.used
        keys = []
        for outgoing, source in items:
            key = (session, session.submit(outgoing))
            keys.append(key)
            if source is not None:
                self._ledger.sources[key] = source
        pending = self._ledger.expect(keys)
        try:
            await self._drive(lambda: not pending)
        finally:
            outcomes = self._ledger.collect(keys)
        if any(outcome is None for outcome in outcomes):
            raise Ledger.dead_error(session)
        return [outcome for outcome in outcomes if outcome is not None], session, used

    async def _live_session(self) -> Session:
        session = self._session
        if session is not None and not session.closed and self._lock.locked():
            return session  # Another task is driving it: in use, not idle.
        async with self._lock:
            if self._session is None or self._stream is None or not await self._still_open():
                await self._connect()
            assert self._session is not None
            return self._session

    async def _still_open(self) -> bool:
        """Before a new transaction on an idle connection, take in whatever
        the server sent meanwhile (EOF, a 421) so the core can judge it."""
        session, stream = self._session, self._stream
        assert session is not None
        assert stream is not None
        while stream.pending and not session.closed:
            session.receive_data(stream.take())
            await self._run(lambda: False)
        return not session.closed

    async def _drive(self, done: Callable[[], bool]) -> None:
        """Drive the connection until ``done()``; if another task is driving
        it, wait for the lock: its loop serves every task's requests."""
        try:
            async with self._lock:
                await self._run(done)
        except BaseException:
            if not done():
                self.abort()  # Cancelled with a request in flight.
            raise

    async def _run(self, done: Callable[[], bool]) -> None:
        """Do what the session asks until ``done()``, Idle or Close."""
        session, stream = self._session, self._stream
        assert session is not None
        if stream is None:
            return
        timeout = self.options.timeouts
        try:
            while not done():
                action = session.next_action()
                if isinstance(action, Write):
                    try:
                        await stream.write(action.data, timeout(action.stage))
                    except TimeoutError:
                        session.timeout_expired(timeout(action.stage))
                    except OSError as exc:
                        session.connection_lost("write", exc.errno, str(exc))
                elif isinstance(action, Read):
                    try:
                        data = await stream.read(timeout(action.stage))
                    except TimeoutError:
                        session.timeout_expired(timeout(action.stage))
                    except OSError as exc:
                        session.connection_lost("read", exc.errno, str(exc))
                    else:
                        session.receive_data(data)
                elif isinstance(action, StartTLSAction):
                    hostname = action.server_hostname or self.options.server
                    try:
                        if not stream.pending:
                            await stream.start_tls(self.options, hostname)
                    except TLSError as exc:
                        session.tls_failed(str(exc.__cause__ or exc))
                    else:
                        if stream.pending:
                            # Bytes the server sent outside TLS (or before our
                            # EHLO): the session refuses them.
                            session.receive_data(stream.take())
                        else:
                            self._ledger.tls_info = stream.tls_info()
                            session.tls_established()
                elif isinstance(action, NeedBody):
                    source = self._ledger.sources[session, action.message_id]
                    try:
                        chunk = await asyncio.to_thread(
                            source.next_chunk, action.size_hint, action.restart
                        )
                    except SMTPError as exc:
                        session.body_failed(action.message_id, exc)
                    else:
                        session.send_body(action.message_id, chunk)
                elif isinstance(action, Close):
                    self._ledger.file(session)
                    stream.close()
                    if self._stream is stream:
                        self._stream = None
                    return
                else:
                    assert isinstance(action, Idle)
                    self._ledger.file(session)
                    return
                self._ledger.file(session)
        except BaseException:
            # Cancelled or a bug: never leave a half-spoken connection behind.
            self.abort()
            raise


def _dropped(outcome: Outcome) -> bool:
    return isinstance(outcome, MessageFailed) and outcome.connection_dropped


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
    client: Client | None = None
    result: SendResult | None = None
    error: SMTPError | None = None
    try:
        client = Client(server, port, sock=sock, **options)
        async with client:
            outcome = await client.send_message(
                sender,
                recipients,
                message=message,
                message_file=message_file,
                file_handle=file_handle,
                **(message_options or {}),
            )
    except SMTPError as exc:
        error = exc
    transcript = None
    if client is not None and client.options.config.transaction_log:
        transcript = client.transcript
    if error is None:
        result = SendResult(result=outcome, transcript=transcript, context=context)
    return report(
        result=result,
        error=error,
        context=context,
        transcript=transcript,
        on_success=on_success,
        on_failure=on_failure,
    )


@final
class Pool:
    """Send many messages over up to ``size`` reused connections. Safe to
    use from many tasks; each message's result is reported on its own."""

    def __init__(
        self, server: str = "localhost", port: int | None = None, *, size: int = 4, **options: Any
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._server, self._port, self._options = server, port, options
        self._idle: list[Client] = []  # Last in, first out: the warmest first.
        self._slots = asyncio.Semaphore(size)
        self._all: list[Client] = []

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send_message(self, *args: Any, **kwargs: Any) -> MessageResult:
        """Like :meth:`Client.send_message`, on a free connection."""
        async with self._slots:
            if self._idle:
                client = self._idle.pop()
            else:
                client = Client(self._server, self._port, **self._options)
                self._all.append(client)
            try:
                return await client.send_message(*args, **kwargs)
            finally:
                self._idle.append(client)

    async def send_many(
        self, messages: Iterable[Mapping[str, Any]]
    ) -> list[MessageResult | SMTPError]:
        """Send each message (keyword arguments of ``send_message``) over the
        pool; returns, in order, each result or the typed error."""

        async def one(kwargs: Mapping[str, Any]) -> MessageResult | SMTPError:
            try:
                return await self.send_message(**kwargs)
            except SMTPError as exc:
                return exc

        return list(await asyncio.gather(*(one(m) for m in messages)))

    async def close(self) -> None:
        """QUIT every connection."""
        clients, self._all = self._all, []
        self._idle.clear()
        await asyncio.gather(*(client.close() for client in clients))
