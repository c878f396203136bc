"""The trio adapter: ``send()``, ``Client`` and ``Pool``, awaited.

The same API as :mod:`smtpcore.adapters.blocking`, plus ``stream=`` to run
over any connected :class:`trio.abc.Stream`. The whole adapter is
:meth:`Client._run`: ask the session what to do, do it on the stream (write,
read with the stage's timeout, TLS handshake, read a body chunk in a thread),
hand the outcome back, and pass the events on.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, cast, final

import trio

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
        stream = await start_tls(stream, options, options.server)
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
    try:
        with trio.fail_after(options.timeouts(Stage.TLS_HANDSHAKE)):
            await tls.do_handshake()
    except (*_BROKEN, trio.TooSlowError) as exc:
        await trio.aclose_forcefully(stream)
        reason = exc.__cause__ or exc
        raise TLSError(f"TLS handshake with {options.address} failed: {reason}") from reason
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return tls


def _tls_info(stream: trio.abc.Stream) -> TLSInfo | None:
    if not isinstance(stream, trio.SSLStream):
        return None
    # SSLStream passes cipher(), version() and getpeercert() through.
    return TLSInfo.from_ssl_object(cast("ssl.SSLObject", stream))


def _close_now(stream: trio.abc.Stream) -> None:
    """Close a socket-backed stream without awaiting (what aclose does first)."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        stream.socket.close()


def _readable_now(stream: trio.abc.Stream) -> bool:
    """True if the stream's socket has bytes or EOF waiting (False if unknown)."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if not isinstance(stream, trio.SocketStream):
        return False
    fd = stream.socket.fileno()
    if fd < 0:
        return True
    if hasattr(select, "poll"):  # poll has no FD_SETSIZE limit.
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _lost(session: Session, operation: str, exc: BaseException) -> None:
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    errno = cause.errno if isinstance(cause, OSError) else None
    session.connection_lost(operation, errno, str(cause or exc) or type(exc).__name__)


@final
class Client:
    """One SMTP connection for many messages.

    ``async with Client("mx.example.net", tls="starttls") as c:
    await c.send_message("a@example.net", ["b@example.org"], message=b"...")``.
    Keyword arguments are those of :func:`send` that describe the connection;
    ``stream`` (a connected :class:`trio.abc.Stream`) or ``sock`` (a connected
    trio socket) replace the first connection. Many tasks may call
    :meth:`send_message` at once: their messages are pipelined on the one
    connection. If the server closed the connection while it was idle, the
    next message reconnects; a message whose data was sent is never resent.
    Cancelling a task whose message is in flight aborts the connection (and
    so fails the other messages in flight).
    """

    def __init__(
        self,
        server: str = "localhost",
        port: int | None = None,
        *,
        sock: trio.socket.SocketType | None = None,
        stream: trio.abc.Stream | None = None,
        **options: Any,
    ) -> None:
        self.options = ClientOptions.build(server=server, port=port, **options)
        if sock is not None:
            if stream is not None:
                raise ValueError("give stream or sock, not both")
            stream = trio.SocketStream(sock)
        self._given_stream = stream
        self._stream: trio.abc.Stream | None = None
        self._session: Session | None = None
        self._log = client_logger(self.options.name)
        self._ledger = Ledger(self._log)
        # Held by the one task driving the connection; its loop serves all.
        self._lock = trio.Lock()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        # A refused message leaves a working session: QUIT politely. Anything
        # else (cancellation, a bug) closes at once.
        if exc_type is None or issubclass(exc_type, SMTPError):
            await self.close()
        else:
            await self._discard()

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
            await self._discard()

    def abort(self) -> None:
        """Close the connection at once, without QUIT; whatever is in flight
        fails with :class:`smtpcore.ConnectionLostError`. (A caller-supplied
        stream that is not socket-based is closed by ``close()`` only.)"""
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_now(stream)
        session = self._session
        if session is not None and not session.closed:
            session.connection_lost("abort", None, "the connection was aborted")
            session.next_action()  # Close: the session reports its end.
            self._ledger.file(session)

    # -- the loop --------------------------------------------------------------

    async def _discard(self, *, graceful: bool = False) -> None:
        """Close the stream (works while cancelled), then abort the session.
        ``graceful`` sends TLS's close_notify first, within the QUIT timeout."""
        stream, self._stream = self._stream, None
        try:
            if stream is not None and graceful:
                with trio.move_on_after(self.options.timeouts(Stage.QUIT)):
                    await stream.aclose()  # Closes even when cancelled.
            elif stream is not None:
                await trio.aclose_forcefully(stream)
        except _BROKEN:
            pass  # Closed all the same.
        finally:
            self.abort()

    async def _connect(self) -> None:
        await self._discard()
        stream, self._given_stream = self._given_stream, None
        if stream is None:
            stream = await open_stream(self.options)
        elif self.options.implicit_tls:
            stream = await start_tls(stream, self.options, self.options.server)
        self._stream = stream
        self._log.debug("connected to %s", self.options.address)
        self._session = session = Session(self.options.config)
        self._ledger.reset()
        self._ledger.tls_info = _tls_info(stream)
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
        if _readable_now(stream) and not session.closed:
            # Bytes are there (or a partial TLS record: its rest is due).
            seconds = self.options.timeouts(Stage.MAIL)
            try:
                with trio.fail_after(seconds):
                    data = await stream.receive_some(_READ_SIZE)
            except trio.TooSlowError:
                session.timeout_expired(seconds)
            except _BROKEN as exc:
                _lost(session, "read", exc)
            else:
                session.receive_data(bytes(data))
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
                await self._discard()  # Cancelled with a request in flight.
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
                        with trio.fail_after(timeout(action.stage)):
                            await stream.send_all(action.data)
                    except trio.TooSlowError:
                        session.timeout_expired(timeout(action.stage))
                    except _BROKEN as exc:
                        _lost(session, "write", exc)
                elif isinstance(action, Read):
                    try:
                        with trio.fail_after(timeout(action.stage)):
                            data = await stream.receive_some(_READ_SIZE)
                    except trio.TooSlowError:
                        session.timeout_expired(timeout(action.stage))
                    except _BROKEN as exc:
                        _lost(session, "read", exc)
                    else:
                        session.receive_data(bytes(data))
                elif isinstance(action, StartTLSAction):
                    # Nothing is read ahead here: bytes after the 220 reply
                    # reach the handshake, which fails on them.
                    hostname = action.server_hostname or self.options.server
                    try:
                        stream = self._stream = await start_tls(stream, self.options, hostname)
                    except TLSError as exc:
                        session.tls_failed(str(exc.__cause__ or exc))
                    else:
                        self._ledger.tls_info = _tls_info(stream)
                        session.tls_established()
                elif isinstance(action, NeedBody):
                    source = self._ledger.sources[session, action.message_id]
                    try:
                        chunk = await trio.to_thread.run_sync(
                            source.next_chunk, action.size_hint, action.restart
                        )
                    except SMTPError as exc:
                        session.body_failed(action.message_id, exc)
                    else:
                        session.send_body(action.message_id, chunk)
                elif isinstance(action, Close):
                    self._ledger.file(session)
                    await self._discard(graceful=session.error is None)
                    return
                else:
                    assert isinstance(action, Idle)
                    self._ledger.file(session)
                    return
                self._ledger.file(session)
        except BaseException:
            # Cancelled or a bug: never leave a half-spoken connection behind.
            await self._discard()
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
    sock: trio.socket.SocketType | None = None,
    stream: trio.abc.Stream | None = None,
    context: Any = None,
    on_success: SuccessCallback | None = None,
    on_failure: FailureCallback | None = None,
    message_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> SendResult | None:
    """Send one message over one connection.

    The arguments are those of :func:`smtpcore.adapters.blocking.send`, plus
    ``stream``: a connected :class:`trio.abc.Stream` to use instead of
    connecting (``sock`` takes a connected trio socket). The body file is
    read in a worker thread, so trio never blocks.

    Returns:
        A :class:`SendResult` (None when callbacks are given).

    Raises:
        SMTPError: the typed error, when no callbacks are given.
    """
    client: Client | None = None
    result: SendResult | None = None
    error: SMTPError | None = None
    try:
        client = Client(server, port, sock=sock, stream=stream, **options)
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
        self._slots = trio.Semaphore(size)
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
        todo = list(messages)
        results: list[MessageResult | SMTPError] = [LocalProtocolError("not sent")] * len(todo)

        async def one(index: int, kwargs: Mapping[str, Any]) -> None:
            try:
                results[index] = await self.send_message(**kwargs)
            except SMTPError as exc:
                results[index] = exc

        async with trio.open_nursery() as nursery:
            for index, kwargs in enumerate(todo):
                nursery.start_soon(one, index, kwargs)
        return results

    async def close(self) -> None:
        """QUIT every connection."""
        clients, self._all = self._all, []
        self._idle.clear()
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(client.close)
