"""The async client, written once for asyncio and trio.

:class:`Client` is the whole adapter: :meth:`Client._run` asks the session
what to do, does it on the connection (write, read with the stage's timeout,
TLS handshake, read a body chunk in a worker thread), hands the outcome back
and files the events in the :class:`Ledger`. Every protocol decision is the
core's; every I/O call goes through two small interfaces that
:mod:`smtpcore.adapters.asyncio` and :mod:`smtpcore.adapters.trio` implement
natively:

* :class:`Connection`: one connected byte stream. Its calls raise only
  ``TimeoutError`` (the deadline passed), ``OSError`` (the connection
  failed: ``errno`` and ``str()`` describe it) or :class:`smtpcore.TLSError`.
* :class:`Backend`: connecting, a lock, a worker thread, running calls
  concurrently.

Many tasks may share one client: the task holding the lock drives the
connection, and its loop serves every task's messages and commands, which
wait for their outcomes in the ledger.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import IO, Any, ClassVar, Protocol, TypeVar

from smtpcore import (
    Close,
    Command,
    Idle,
    LocalProtocolError,
    MessageResult,
    NeedBody,
    Noop,
    OutgoingMessage,
    Phase,
    Read,
    Reply,
    ServerReady,
    Session,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    StartTLSAction,
    TLSError,
    TranscriptEntry,
    Write,
)

from ._common import (
    Batch,
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
    conclude_send,
    dropped,
    pool_batches,
)

__all__ = ["Backend", "Client", "Connection", "Pool", "send"]

T = TypeVar("T")
ClientT = TypeVar("ClientT", bound="Client")
PoolT = TypeVar("PoolT", bound="Pool")


class Connection(Protocol):
    """One connected byte stream, as the backend does I/O on it."""

    async def write(self, data: bytes, timeout: float) -> None:
        """Write all of ``data`` within ``timeout`` seconds."""

    async def read(self, timeout: float) -> bytes:
        """What the server sent, waiting up to ``timeout``; ``b""`` at EOF."""

    def readable_now(self) -> bool:
        """True if bytes or EOF wait to be read (on an idle connection)."""

    async def start_tls(self, options: ClientOptions, hostname: str | None) -> bytes | None:
        """Run the TLS handshake: None once TLS is up. Bytes the server sent
        in the clear before it are returned instead (for the session to
        refuse), with no handshake. A closed connection raises TLSError."""

    def tls_info(self) -> TLSInfo | None:
        """What TLS was negotiated, if it is up."""

    def abort(self) -> None:
        """Close at once, without awaiting (safe in any state)."""

    async def aclose(self, graceful: bool, timeout: float) -> None:
        """Close (works while cancelled); ``graceful`` may say goodbye to TLS
        first, within ``timeout``."""


class Slots(Protocol):
    """An ``async with`` semaphore (``asyncio.Semaphore``, ``trio.Semaphore``)."""

    async def __aenter__(self) -> None: ...

    async def __aexit__(self, *exc_info: Any, **kwargs: Any) -> object: ...


class Lock(Slots, Protocol):
    """``asyncio.Lock``, ``trio.Lock``."""

    def locked(self) -> bool: ...


class Backend(Protocol):
    """What the client needs from an async library besides a connection."""

    async def connect(self, options: ClientOptions, given: Any) -> Connection:
        """Connect as ``options`` say (implicit TLS included), over ``given``
        (the caller's socket or stream) when it is not None. Raises
        :class:`smtpcore.ConnectionLostError` or :class:`smtpcore.TLSError`."""

    def lock(self) -> Lock: ...

    def semaphore(self, value: int) -> Slots: ...

    async def to_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (a file read) in a worker thread."""

    async def gather(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run every call concurrently; their results, in order."""


class Client:
    """One SMTP connection for many messages (see the backends' ``Client``)."""

    _backend: ClassVar[Backend]

    def __init__(self, options: ClientOptions, given: Any = None) -> None:
        self.options = options
        self._given = given
        self._conn: Connection | None = None
        self._session: Session | None = None
        self._log = client_logger(options.name)
        self._ledger = Ledger(self._log)
        # Held by the one task driving the connection; its loop serves all.
        self._lock = self._backend.lock()

    async def __aenter__(self: ClientT) -> ClientT:
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
        batch = Batch(self.options.config, messages, raise_errors=raise_errors)
        outcomes: list[Outcome] = []
        try:
            if batch.items:
                outcomes, session, reused = await self._submit(batch.items)
                retry = [i for i, o in enumerate(outcomes) if reused and dropped(o)]
                if retry:
                    # The server closed the idle connection before these
                    # messages' data: send them once more on a fresh connection
                    # (unless a task sharing this client opened one already).
                    self._log.debug("connection dropped while idle; reconnecting")
                    try:
                        async with self._lock:
                            if self._session is session:
                                await self._connect()
                        again, _, _ = await self._submit([batch.items[i] for i in retry])
                    except SMTPError as exc:
                        # The new connection failed too: the messages keep
                        # their first outcome, and the rest of the batch its own.
                        self._log.debug("reconnect failed: %s", exc)
                    else:
                        for i, outcome in zip(retry, again, strict=True):
                            outcomes[i] = outcome
        finally:
            batch.close()
        return batch.finish(outcomes)

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
            if session is not None and self._conn is not None and not session.closed:
                session.quit()
                await self._run(lambda: False)
            await self._discard()

    def abort(self) -> None:
        """Close the connection at once, without QUIT; whatever is in flight
        fails with :class:`smtpcore.ConnectionLostError`."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
        session = self._session
        if session is not None and not session.closed:
            session.connection_lost("abort", None, "the connection was aborted")
            session.next_action()  # Close: the session reports its end.
            self._ledger.file(session)

    # -- the loop --------------------------------------------------------------

    async def _discard(self, *, graceful: bool = False) -> None:
        """Close the connection (works while cancelled), then abort the session."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                await conn.aclose(graceful, self.options.timeouts(Stage.QUIT))
        finally:
            self.abort()

    async def _connect(self) -> None:
        await self._discard()
        given, self._given = self._given, None
        self._conn = conn = await self._backend.connect(self.options, given)
        self._log.debug("connected to %s", self.options.address)
        self._session = session = Session(self.options.config)
        self._ledger.reset()
        self._ledger.tls_info = conn.tls_info()
        # Only set the connection up: messages other tasks queued on it
        # meanwhile are driven by those tasks, so that their failure is not
        # raised here as if this connection could not be opened.
        await self._run(lambda: session.phase is Phase.READY)
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
            if self._session is None or self._conn is None or not await self._still_open():
                await self._connect()
            assert self._session is not None
            return self._session

    async def _still_open(self) -> bool:
        """Before a new transaction on an idle connection, take in whatever
        the server sent meanwhile (EOF, a 421) so the core can judge it."""
        session, conn = self._session, self._conn
        assert session is not None
        assert conn is not None
        while conn.readable_now() and not session.closed:
            # Bytes are there (or a partial TLS record: its rest is due).
            seconds = self.options.timeouts(Stage.MAIL)
            await _read(session, conn, seconds, seconds)
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
        session, conn = self._session, self._conn
        assert session is not None
        if conn is None:
            return
        timeout = self.options.timeouts
        waiting: tuple[Stage, int] | None = None  # the reply the deadline is for
        deadline = 0.0
        try:
            while not done():
                action = session.next_action()
                if not isinstance(action, Read):
                    waiting = None
                if isinstance(action, Write):
                    try:
                        await conn.write(action.data, timeout(action.stage))
                    except TimeoutError:
                        session.timeout_expired(timeout(action.stage))
                    except OSError as exc:
                        session.connection_lost("write", exc.errno, str(exc))
                elif isinstance(action, Read):
                    if waiting != (action.stage, action.replies):
                        waiting = (action.stage, action.replies)
                        deadline = time.monotonic() + timeout(action.stage)
                    await _read(session, conn, deadline - time.monotonic(), timeout(action.stage))
                elif isinstance(action, StartTLSAction):
                    hostname = action.server_hostname or self.options.server
                    try:
                        early = await conn.start_tls(self.options, hostname)
                    except SMTPTimeoutError as exc:
                        session.timeout_expired(exc.seconds)
                    except TLSError as exc:
                        session.tls_failed(str(exc.__cause__ or exc))
                    else:
                        if early is not None:
                            # Bytes the server sent outside TLS (or before our
                            # EHLO): the session refuses them.
                            session.receive_data(early)
                        else:
                            self._ledger.tls_info = conn.tls_info()
                            session.tls_established()
                elif isinstance(action, NeedBody):
                    source = self._ledger.sources[session, action.message_id]
                    try:
                        chunk = await self._backend.to_thread(
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


async def _read(session: Session, conn: Connection, left: float, seconds: float) -> None:
    """Read once (for at most ``left`` of the stage's ``seconds``) and hand
    the session the bytes, the timeout or the failure."""
    try:
        if left <= 0:
            raise TimeoutError
        data = await conn.read(left)
    except TimeoutError:
        session.timeout_expired(seconds)
    except OSError as exc:
        session.connection_lost("read", exc.errno, str(exc))
    else:
        session.receive_data(data)


async def send(
    client: Callable[[], Client],
    sender: str | None,
    recipients: str | Iterable[str] | None,
    *,
    message: MessageInput | None,
    message_file: str | os.PathLike[str] | None,
    file_handle: IO[bytes] | None,
    context: Any,
    on_success: SuccessCallback | None,
    on_failure: FailureCallback | None,
    message_options: Mapping[str, Any] | None,
) -> SendResult | None:
    """The backends' ``send``: one message over a ``client()`` of its own."""
    made: Client | None = None
    outcome: MessageResult | None = None
    error: SMTPError | None = None
    try:
        made = client()
        async with contextlib.AsyncExitStack() as stack:
            # The client's exit (QUIT, or abort) without its enter: the
            # message is built (a missing file found) before connecting.
            stack.push_async_exit(made)
            outcome = await made.send_message(
                sender,
                recipients,
                message=message,
                message_file=message_file,
                file_handle=file_handle,
                **(message_options or {}),
            )
    except SMTPError as exc:
        error = exc
    logged = made is not None and made.options.config.transaction_log
    return conclude_send(
        outcome=outcome,
        error=error,
        transcript=made.transcript if logged and made is not None else None,
        context=context,
        on_success=on_success,
        on_failure=on_failure,
    )


class Pool:
    """Many messages over up to ``size`` reused ``client()`` connections."""

    _backend: ClassVar[Backend]

    def __init__(self, client: Callable[[], Client], size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._client = client
        self._idle: list[Client] = []  # Last in, first out: the warmest first.
        self._size = size
        self._slots = self._backend.semaphore(size)
        self._all: list[Client] = []

    async def __aenter__(self: PoolT) -> PoolT:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send_message(self, *args: Any, **kwargs: Any) -> MessageResult:
        """Like :meth:`Client.send_message`, on a free connection."""
        async with self._slots:
            client = self._take()
            try:
                return await client.send_message(*args, **kwargs)
            finally:
                self._idle.append(client)

    async def send_many(
        self, messages: Iterable[Mapping[str, Any]]
    ) -> list[MessageResult | SMTPError]:
        """Send each message (keyword arguments of ``send_message``) over the
        pool; returns, in order, each result or the typed error.

        The messages are cut into batches of consecutive messages, spread
        over the connections; each batch goes with :meth:`Client.send_many`,
        so the messages of a batch are pipelined on their connection.
        """
        items = list(messages)
        results: list[MessageResult | SMTPError] = [LocalProtocolError("not sent")] * len(items)
        starts = pool_batches(len(items), self._size)
        todo = list(reversed(starts))

        async def worker() -> None:
            while todo:
                start = todo.pop()
                batch = items[start : start + starts.step]
                async with self._slots:
                    client = self._take()
                    try:
                        outcomes = await client.send_many(batch)
                    except SMTPError as exc:  # e.g. the connection could not be made
                        outcomes = [exc] * len(batch)
                    finally:
                        self._idle.append(client)
                results[start : start + len(batch)] = outcomes

        await self._backend.gather([worker] * min(self._size, len(starts)))
        return results

    def _take(self) -> Client:
        """An idle connection (the warmest), or a new one."""
        if self._idle:
            return self._idle.pop()
        client = self._client()
        self._all.append(client)
        return client

    async def close(self) -> None:
        """QUIT every connection."""
        clients, self._all = self._all, []
        self._idle.clear()
        await self._backend.gather([client.close for client in clients])
