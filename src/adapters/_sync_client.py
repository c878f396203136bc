# GENERATED from _async_client.py by scripts/unasync.py: do not edit.
# Edit the async source and run `python scripts/unasync.py`; `make lint`
# fails when this file is out of date.
"""The client, written once: ``send``, ``Client`` and ``Pool`` over a backend.

This is the source of every adapter. :class:`SyncClient` asks the session
what to do, does it on a connection (write, read with the stage's timeout,
TLS handshake, read a body chunk in a worker thread), hands the outcome back
and files the events in the :class:`Ledger`. Every protocol decision is the
core's; every I/O call goes through two small interfaces that each backend
implements:

* :class:`SyncConnection`: one connected byte stream. Its calls raise only
  ``TimeoutError`` (the deadline passed), ``OSError`` (the connection
  failed: ``errno`` and ``str()`` describe it) or :class:`smtpcore.TLSError`.
* :class:`SyncBackend`: connecting, a lock, a semaphore, a worker thread,
  running calls concurrently, sleeping and calling the caller back.

``_sync_client.py`` is generated from this file by ``scripts/unasync.py``
(``async``/``await`` removed, ``Async`` names made ``Sync``); ``make lint``
checks that the two have not drifted. The asyncio, trio and anyio adapters
bind :class:`SyncClient` to their backend, the blocking adapter binds the
generated ``SyncClient`` to sockets and threads.

Many tasks (or threads) may share one client: the one holding the lock
drives the connection, and its loop serves every caller's messages and
commands, which wait for their outcomes in the ledger.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from typing import IO, TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from smtpcore import (
    Close,
    Command,
    Idle,
    LocalProtocolError,
    MessageFailed,
    MessageResult,
    MessageSourceError,
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
    POOL_BATCH,
    Batch,
    BodySource,
    ClientOptions,
    FailureCallback,
    Key,
    Ledger,
    MessageInput,
    Outcome,
    SendResult,
    SuccessCallback,
    TLSInfo,
    client_logger,
    describe,
    dropped,
    pool_batches,
)
from ._options import (
    CONNECT_KEYS,
    MESSAGE_OPTION_KEYS,
    ConnectOptions,
    MessageOptions,
    check_keywords,
    expands,
)
from ._retry import Progress, RetryPolicy, Tracker

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SyncBackend", "SyncClient", "SyncConnection", "SyncPool", "SyncSend"]

T = TypeVar("T")
SockT = TypeVar("SockT")
StreamT = TypeVar("StreamT")
#: A message ready to submit, with its streamed source.
Built = tuple[OutgoingMessage, BodySource | None]
#: Awaited with (index in the submitted list, outcome) as each outcome is filed.
Filed = Callable[[int, Outcome], None]
ClientT = TypeVar("ClientT", bound="SyncClient[Any, Any]")
PoolT = TypeVar("PoolT", bound="SyncPool[Any, Any]")

#: ``progress(Progress)``: called as each message of ``send_many`` has its
#: final outcome (awaited when it is a coroutine function, on async adapters).
ProgressCallback = Callable[[Progress], object]


class SyncConnection(Protocol):
    """One connected byte stream, as a backend does I/O on it."""

    #: After a write that failed (OSError or TimeoutError): how many of its
    #: leading octets the OS took, at most, or None if it cannot tell.
    written: int | None

    def write(self, data: bytes, timeout: float) -> None:
        """Write all of ``data`` within ``timeout`` seconds; return once the
        kernel has it. On failure, sets :attr:`written` first."""

    def read(self, timeout: float) -> bytes:
        """What the server sent, waiting up to ``timeout``; ``b""`` at EOF."""

    def readable_now(self) -> bool:
        """True if bytes or EOF wait to be read (on an idle connection)."""

    def received_now(self) -> bytes:
        """What the server already sent, taken without waiting: ``b""`` if
        nothing, at EOF, on an error, or where the backend cannot tell. Once
        a write failed, these are the replies to what went before it."""

    def start_tls(self, options: ClientOptions, hostname: str | None) -> bytes | None:
        """Run the TLS handshake: None once TLS is up. Bytes the server sent
        in the clear before it are returned instead (for the session to
        refuse), with no handshake. A closed connection raises TLSError."""

    def tls_info(self) -> TLSInfo | None:
        """What TLS was negotiated, if it is up."""

    def abort(self) -> None:
        """Close at once, without waiting (safe in any state)."""

    def close(self, graceful: bool, timeout: float) -> None:
        """Close (works while cancelled); ``graceful`` may say goodbye to TLS
        first, within ``timeout``."""


class Slots(Protocol):
    """A semaphore used as a context manager."""

    def __enter__(self) -> object: ...

    def __exit__(self, *exc_info: Any, **kwargs: Any) -> object: ...


class Lock(Slots, Protocol):
    """A lock used as a context manager."""

    def locked(self) -> bool: ...


class SyncBackend(Protocol):
    """What the client needs from an I/O library besides a connection."""

    def connect(self, options: ClientOptions, given: Any) -> SyncConnection:
        """Connect as ``options`` say (implicit TLS included), over ``given``
        (the caller's socket or stream) when it is not None. Raises
        :class:`smtpcore.ConnectionLostError` or :class:`smtpcore.TLSError`."""

    def lock(self) -> Lock: ...

    def semaphore(self, value: int) -> Slots: ...

    def to_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (a file read) off the event loop."""

    def gather(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run every call concurrently; their results, in order."""

    def sleep(self, seconds: float) -> None: ...

    def check_callback(self, name: str, callback: object) -> None:
        """Raise :class:`smtpcore.ConfigurationError` for a callback this
        backend cannot call (a coroutine function, without an event loop)."""

    def call(self, callback: Callable[..., object], *args: Any) -> None:
        """Call the caller back (awaiting what it returns, if it can)."""


class SyncClient(Generic[SockT, StreamT]):
    """One SMTP connection for many messages.

    Keyword arguments: :class:`~smtpcore.adapters.ConnectOptions`. ``sock``
    (a connected socket) or ``stream`` (a connected stream, where the
    backend has them) replace the first connection. Many callers may share
    the client: their messages are pipelined on the one connection. If the
    server closed the connection while it was idle, the next message
    reconnects; a message whose data was sent is never resent unless a
    :class:`~smtpcore.adapters.RetryPolicy` says so.
    """

    _backend: ClassVar[SyncBackend]

    @expands(ConnectOptions)
    def __init__(
        self,
        server: str = "localhost",
        port: int | None = None,
        *,
        sock: SockT | None = None,
        stream: StreamT | None = None,
        **options: Unpack[ConnectOptions],
    ) -> None:
        check_keywords(type(self).__name__, options, CONNECT_KEYS)
        if sock is not None and stream is not None:
            raise TypeError("give sock or stream, not both")
        self.options = ClientOptions.build(server=server, port=port, **options)
        self._given: object = sock if sock is not None else stream
        self._conn: SyncConnection | None = None
        self._session: Session | None = None
        self._log = client_logger(self.options.name)
        self._ledger = Ledger(self._log)
        # Held by the one caller driving the connection; its loop serves all.
        self._lock = self._backend.lock()

    def __enter__(self: ClientT) -> ClientT:
        self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        # A refused message leaves a working session: QUIT politely. Anything
        # else (cancellation, a bug) closes at once.
        if exc_type is None or issubclass(exc_type, SMTPError):
            self.close()
        else:
            self._discard()

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

    def connect(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS and AUTH as configured."""
        with self._lock:
            self._connect()

    @expands(MessageOptions)
    def send_message(
        self,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        *,
        message: MessageInput | None = None,
        message_file: str | os.PathLike[str] | None = None,
        file_handle: IO[bytes] | None = None,
        **message_options: Unpack[MessageOptions],
    ) -> MessageResult:
        """Send one message; returns its result or raises the typed error.

        ``message`` (bytes, str or an ``EmailMessage``), ``message_file`` (a
        path) or ``file_handle`` (a binary file) is the message; ``sender``
        and ``recipients`` default to its headers'. Keyword arguments:
        :class:`~smtpcore.adapters.MessageOptions`.
        """
        check_keywords("send_message", message_options, MESSAGE_OPTION_KEYS)
        item = dict(
            sender=sender,
            recipients=recipients,
            message=message,
            message_file=message_file,
            file_handle=file_handle,
            **message_options,
        )
        [outcome] = self.send_many([item], raise_errors=True)
        assert isinstance(outcome, MessageResult)
        return outcome

    def send_many(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        raise_errors: bool = False,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[MessageResult | SMTPError]:
        """Send several messages over this one connection, pipelined.

        Each item holds :meth:`send_message`'s keyword arguments. Returns, in
        order, each message's result or its typed error (with
        ``raise_errors``, the first error is raised instead). ``retry``
        sends messages that failed temporarily again, after its backoff;
        ``progress`` is called with a :class:`~smtpcore.adapters.Progress`
        as each message has its final outcome.
        """
        self._backend.check_callback("progress", progress)
        batch = Batch(self.options.config, messages, raise_errors=raise_errors)
        outcomes: list[Outcome] = []
        if retry is None and progress is None:
            # The plain case, without the bookkeeping of retries and progress.
            try:
                if batch.items:
                    outcomes = self._deliver(batch.items)
            finally:
                batch.close()
            return batch.finish(outcomes)
        tracker = Tracker(len(batch.slots) + len(batch.unbuilt))
        count = len(batch.items)
        attempts, final = [1] * count, [False] * count
        failure: list[Exception] = []  # the progress callback's, raised at the end

        def report(index: int, outcome: Outcome) -> None:
            final[index] = True
            if failure:
                return  # the callback failed: no more calls
            try:
                self._report(
                    progress, tracker, batch.slots[index], _result(outcome), attempts[index]
                )
            except Exception as exc:
                # Raised once every message in flight has its outcome: a
                # broken callback must not abandon messages mid-delivery.
                failure.append(exc)

        def as_filed(index: int, outcome: Outcome) -> None:
            # A message whose outcome is final as it is filed is reported
            # at once, not when the whole call is over.
            if not final[index] and _final_now(outcome, retry, attempts[index]):
                report(index, outcome)

        try:
            for slot, error in batch.unbuilt:
                self._report(progress, tracker, slot, error, 0)
            tracker.started(count)
            early = as_filed if progress is not None else None
            outcomes = self._deliver(batch.items, early) if count else []
            while True:
                again = _retries(retry, batch.items, outcomes, attempts, final)
                for index, outcome in enumerate(outcomes):
                    if not final[index] and index not in again:
                        report(index, outcome)
                if retry is None or not again or failure:
                    break
                for _ in again:
                    tracker.requeued()
                order = sorted(again)
                self._backend.sleep(min(retry.delay(attempts[i]) for i in order))
                tracker.started(len(order), retry=True)
                for index in order:
                    attempts[index] += 1
                redone = self._deliver([batch.items[i] for i in order], _mapped(early, order))
                for index, outcome in zip(order, redone, strict=True):
                    outcomes[index] = outcome
        finally:
            batch.close()
        if failure:
            raise failure[0]
        return batch.finish(outcomes)

    def command(self, command: Command) -> Reply:
        """Send NOOP, VRFY, EXPN or a raw extension command; returns the reply."""
        session = self._live_session()
        key = (session, session.command(command))
        try:
            self._drive(lambda: key in self._ledger.replies)
        finally:
            reply = self._ledger.replies.pop(key, None)
        if reply is None:
            raise Ledger.dead_error(session)
        return reply

    def noop(self) -> Reply:
        """Send NOOP (keeps an idle connection alive)."""
        return self.command(Noop())

    def close(self) -> None:
        """QUIT and close the connection (the transcript stays readable)."""
        with self._lock:
            session = self._session
            if session is not None and self._conn is not None and not session.closed:
                session.quit()
                self._run(lambda: False)
            self._discard()

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

    # -- sending ---------------------------------------------------------------

    def _report(
        self,
        progress: ProgressCallback | None,
        tracker: Tracker,
        slot: int,
        outcome: MessageResult | SMTPError,
        attempts: int,
    ) -> None:
        """Count a message's final outcome and tell the caller."""
        if attempts == 0:
            tracker.started(1)
        update = tracker.finished(slot, outcome, attempts)
        if progress is not None:
            self._backend.call(progress, update)

    def _deliver(self, items: list[Built], filed: Filed | None = None) -> list[Outcome]:
        """Each message's outcome over this connection; the messages the
        server's dropping an idle connection failed go once more on a new one.
        ``filed(index, outcome)`` is awaited as each outcome comes in."""
        outcomes, session, reused = self._submit(items, filed)
        again = [i for i, o in enumerate(outcomes) if reused and dropped(o)]
        if again:
            # The server closed the idle connection before these messages'
            # data: send them once more on a fresh connection (unless a
            # caller sharing this client opened one already).
            self._log.debug("connection dropped while idle; reconnecting")
            try:
                with self._lock:
                    if self._session is session:
                        self._connect()
                redone, _, _ = self._submit([items[i] for i in again], _mapped(filed, again))
            except SMTPError as exc:
                # The new connection failed too: the messages keep their
                # first outcome, and the rest of the batch its own.
                self._log.debug("reconnect failed: %s", exc)
            else:
                for i, outcome in zip(again, redone, strict=True):
                    outcomes[i] = outcome
        return outcomes

    def _submit(
        self, items: list[Built], filed: Filed | None = None
    ) -> tuple[list[Outcome], Session, bool]:
        """Queue the messages and drive the connection until each has its
        outcome (the session reports one for every message, even when it
        dies); returns them, their session and whether it had been used."""
        session = self._live_session()
        used = self._ledger.used
        keys = []
        for outgoing, source in items:
            key = (session, session.submit(outgoing))
            keys.append(key)
            if source is not None:
                self._ledger.sources[key] = source
        arrivals: deque[Key] = deque()
        pending = self._ledger.expect(keys, None if filed is None else arrivals)
        try:
            if filed is None:
                self._drive(lambda: not pending)
            else:
                self._drive_filing(keys, pending, arrivals, filed)
        finally:
            outcomes = self._ledger.collect(keys)
        if any(outcome is None for outcome in outcomes):
            raise Ledger.dead_error(session)
        return [outcome for outcome in outcomes if outcome is not None], session, used

    # -- the loop --------------------------------------------------------------

    def _discard(self, *, graceful: bool = False) -> None:
        """Close the connection (works while cancelled), then abort the session."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close(graceful, self.options.timeouts(Stage.QUIT))
        finally:
            self.abort()

    def _connect(self) -> None:
        self._discard()
        given, self._given = self._given, None
        self._conn = conn = self._backend.connect(self.options, given)
        self._log.debug("connected to %s", self.options.address)
        self._session = session = self._ledger.start(self.options.config)
        self._ledger.tls_info = conn.tls_info()
        # Only set the connection up: messages other callers queued on it
        # meanwhile are driven by them, so that their failure is not raised
        # here as if this connection could not be opened.
        self._run(lambda: session.phase is Phase.READY)
        if session.closed and session.error is not None:
            raise session.error

    def _live_session(self) -> Session:
        session = self._session
        if session is not None and not session.closed and self._lock.locked():
            return session  # Another caller is driving it: in use, not idle.
        with self._lock:
            if self._session is None or self._conn is None or not self._still_open():
                self._connect()
            assert self._session is not None
            return self._session

    def _still_open(self) -> bool:
        """Before a new transaction on an idle connection, take in whatever
        the server sent meanwhile (EOF, a 421) so the core can judge it."""
        session, conn = self._session, self._conn
        assert session is not None
        assert conn is not None
        while conn.readable_now() and not session.closed:
            # Bytes are there (or a partial TLS record: its rest is due).
            seconds = self.options.timeouts(Stage.MAIL)
            _read(session, conn, seconds, seconds)
            self._run(lambda: False)
        return not session.closed

    def _drive(self, done: Callable[[], bool]) -> None:
        """Drive the connection until ``done()``; if another caller is
        driving it, wait for the lock: its loop serves every request."""
        try:
            with self._lock:
                self._run(done)
        except BaseException:
            if not done():
                self._discard()  # Cancelled with a request in flight.
            raise

    def _drive_filing(
        self, keys: list[Key], pending: set[Key], arrivals: deque[Key], filed: Filed
    ) -> None:
        """:meth:`_drive` until ``pending`` is empty, stopping whenever
        outcomes of ``keys`` arrive to ``filed`` for each, in the order
        they came (outside the lock: other callers go on meanwhile)."""
        position = {key: index for index, key in enumerate(keys)}
        outcomes = self._ledger.outcomes
        try:
            while True:
                self._drive(lambda: not pending or bool(arrivals))
                while arrivals:
                    key = arrivals.popleft()
                    filed(position[key], outcomes[key])
                if not pending:
                    return
        except BaseException:
            if pending:
                self._discard()  # Cancelled with messages in flight.
            raise

    def _run(self, done: Callable[[], bool]) -> None:
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
                        conn.write(action.data, timeout(action.stage))
                    except TimeoutError:
                        _take_replies(session, conn)
                        session.timeout_expired(timeout(action.stage), written=conn.written)
                    except OSError as exc:
                        _take_replies(session, conn)
                        session.connection_lost("write", exc.errno, str(exc), written=conn.written)
                elif isinstance(action, Read):
                    if waiting != (action.stage, action.replies):
                        waiting = (action.stage, action.replies)
                        deadline = time.monotonic() + timeout(action.stage)
                    _read(session, conn, deadline - time.monotonic(), timeout(action.stage))
                elif isinstance(action, StartTLSAction):
                    hostname = action.server_hostname or self.options.tls_hostname
                    try:
                        early = conn.start_tls(self.options, hostname)
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
                        chunk = self._backend.to_thread(
                            source.next_chunk, action.size_hint, action.restart
                        )
                    except SMTPError as exc:
                        session.body_failed(action.message_id, exc)
                    else:
                        session.send_body(action.message_id, chunk)
                elif isinstance(action, Close):
                    self._ledger.file(session)
                    self._discard(graceful=session.error is None)
                    return
                else:
                    assert isinstance(action, Idle)
                    self._ledger.file(session)
                    return
                self._ledger.file(session)
        except BaseException:
            # Cancelled, interrupted or a bug: never leave a half-spoken
            # connection behind.
            self._discard()
            raise


def _read(session: Session, conn: SyncConnection, left: float, seconds: float) -> None:
    """Read once (for at most ``left`` of the stage's ``seconds``) and hand
    the session the bytes, the timeout or the failure."""
    try:
        if left <= 0:
            raise TimeoutError
        data = conn.read(left)
    except TimeoutError:
        session.timeout_expired(seconds)
    except OSError as exc:
        session.connection_lost("read", exc.errno, str(exc))
    else:
        session.receive_data(data)


def _take_replies(session: Session, conn: SyncConnection) -> None:
    """A write failed: hand the session what the server already sent (it
    may have answered what went before), which it settles before the
    failure: a message it accepted is reported accepted, not unknown."""
    data = conn.received_now()
    if data:  # b"" would say EOF
        session.receive_data(data)


def _result(outcome: Outcome) -> MessageResult | SMTPError:
    """What the caller gets for a message: its result or its error."""
    return outcome.error if isinstance(outcome, MessageFailed) else outcome.result


def _final_now(outcome: Outcome, retry: RetryPolicy | None, attempts: int) -> bool:
    """Whether a message's outcome is final as it is filed: it may not be
    while the message could still go again (after a dropped idle connection,
    or by ``retry``), which is decided once the call's messages are in."""
    if not isinstance(outcome, MessageFailed):
        return True
    if dropped(outcome):
        return False
    return retry is None or not retry.should_retry(outcome.error, attempts)


def _mapped(filed: Filed | None, indices: list[int]) -> Filed | None:
    """``filed`` for a subset of the messages: position ``j`` is message
    ``indices[j]``."""
    if filed is None:
        return None

    def subset(index: int, outcome: Outcome) -> None:
        filed(indices[index], outcome)

    return subset


def _retries(
    retry: RetryPolicy | None,
    items: list[Built],
    outcomes: list[Outcome],
    attempts: list[int],
    final: list[bool],
) -> set[int]:
    """The messages (indices) to try again, their sources rewound."""
    again: set[int] = set()
    if retry is None:
        return again
    for index, outcome in enumerate(outcomes):
        if final[index] or not isinstance(outcome, MessageFailed):
            continue
        if not retry.should_retry(outcome.error, attempts[index]):
            continue
        source = items[index][1]
        if source is not None:
            try:
                source.rewind()
            except MessageSourceError:
                continue  # a pipe cannot be read twice: the first error stands
        again.add(index)
    return again


class SyncSend(Generic[SockT, StreamT]):
    """Every adapter's ``send`` (POE::Component::Client::SMTP's ``send``):
    one message over a client of its own, reported through the return value
    or the callbacks.

    Args:
        sender: the envelope sender (From); None derives it from an
            ``EmailMessage``.
        recipients: one address or a list (To); None derives them.
        message: bytes, str or an ``EmailMessage`` (Body).
        message_file: a path to read the message from (MessageFile).
        file_handle: a binary file object (FileHandle).
        server, port: where to connect (Server, Port; port 25, or 465 with
            ``tls="implicit"``).
        sock, stream: an already-connected socket or stream (e.g. through a
            proxy), where the adapter takes one.
        context: returned untouched to the callbacks and in the result (Context).
        on_success: ``on_success(context, result)`` (SMTP_Success).
        on_failure: ``on_failure(context, error, transcript, description)``
            (SMTP_Failure). Async adapters callbacks that are coroutine
            functions; the blocking adapter refuses them.
        message_options: :class:`~smtpcore.adapters.MessageOptions`.
        **options: :class:`~smtpcore.adapters.ConnectOptions`.

    Returns:
        A :class:`~smtpcore.adapters.SendResult` (None when callbacks are given).

    Raises:
        SMTPError: the typed error, when no callbacks are given.
    """

    def __init__(self, client_class: type[SyncClient[SockT, StreamT]], module: str) -> None:
        self._client_class = client_class
        self.__module__ = module
        self.__name__ = self.__qualname__ = "send"

    def __repr__(self) -> str:
        return f"<function {self.__module__}.send>"

    @expands(ConnectOptions)
    def __call__(
        self,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        *,
        message: MessageInput | None = None,
        message_file: str | os.PathLike[str] | None = None,
        file_handle: IO[bytes] | None = None,
        server: str = "localhost",
        port: int | None = None,
        sock: SockT | None = None,
        stream: StreamT | None = None,
        context: Any = None,
        on_success: SuccessCallback | None = None,
        on_failure: FailureCallback | None = None,
        message_options: MessageOptions | None = None,
        **options: Unpack[ConnectOptions],
    ) -> SendResult | None:
        backend = self._client_class._backend
        backend.check_callback("on_success", on_success)
        backend.check_callback("on_failure", on_failure)
        check_keywords("send", options, CONNECT_KEYS)
        check_keywords("send: message_options", message_options or {}, MESSAGE_OPTION_KEYS)
        client: SyncClient[SockT, StreamT] | None = None
        outcome: MessageResult | None = None
        error: SMTPError | None = None
        try:
            client = self._client_class(server, port, sock=sock, stream=stream, **options)
            with contextlib.ExitStack() as stack:
                # The client's exit (QUIT, or abort) without its enter: the
                # message is built (a missing file found) before connecting.
                stack.push(client)
                outcome = client.send_message(
                    sender,
                    recipients,
                    message=message,
                    message_file=message_file,
                    file_handle=file_handle,
                    **(message_options or {}),
                )
        except SMTPError as exc:
            error = exc
        logged = client is not None and client.options.config.transaction_log
        transcript = client.transcript if logged and client is not None else None
        callbacks = on_success is not None or on_failure is not None
        if error is not None:
            if not callbacks:
                raise error
            if on_failure is not None:
                backend.call(on_failure, context, error, transcript, describe(error))
            return None
        assert outcome is not None
        result = SendResult(result=outcome, transcript=transcript, context=context)
        if on_success is not None:
            backend.call(on_success, context, result)
        return None if callbacks else result


class SyncPool(Generic[SockT, StreamT]):
    """Many messages over up to ``size`` reused connections.

    Keyword arguments: :class:`~smtpcore.adapters.ConnectOptions`, for every
    connection. Safe to share between callers; each message's result is
    reported on its own.
    """

    _backend: ClassVar[SyncBackend]
    _client_class: ClassVar[type[SyncClient[Any, Any]]]

    @expands(ConnectOptions)
    def __init__(
        self,
        server: str = "localhost",
        port: int | None = None,
        *,
        size: int = 4,
        **options: Unpack[ConnectOptions],
    ) -> None:
        check_keywords(type(self).__name__, options, CONNECT_KEYS)
        if size < 1:
            raise ValueError("size must be at least 1")
        # Checked now, so that a bad option fails here, not at the first message.
        ClientOptions.build(server=server, port=port, **options)
        self._server, self._port, self._options = server, port, options
        self._idle: list[SyncClient[Any, Any]] = []  # Last in, first out: the warmest first.
        self._size = size
        self._slots = self._backend.semaphore(size)
        self._all: list[SyncClient[Any, Any]] = []
        self._runs: list[_Feed] = []  # the send_many runs under way, for abort()

    def __enter__(self: PoolT) -> PoolT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @expands(MessageOptions)
    def send_message(
        self,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        *,
        message: MessageInput | None = None,
        message_file: str | os.PathLike[str] | None = None,
        file_handle: IO[bytes] | None = None,
        **message_options: Unpack[MessageOptions],
    ) -> MessageResult:
        """Like :meth:`SyncClient.send_message`, on a free connection."""
        with self._slots:
            client = self._take()
            try:
                return client.send_message(
                    sender,
                    recipients,
                    message=message,
                    message_file=message_file,
                    file_handle=file_handle,
                    **message_options,
                )
            finally:
                self._idle.append(client)

    def send_many(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        retry: RetryPolicy | None = None,
        progress: ProgressCallback | None = None,
        batch_size: int | None = None,
    ) -> list[MessageResult | SMTPError]:
        """Send each message (keyword arguments of ``send_message``) over the
        pool; returns, in order, each result or the typed error.

        The messages are cut into batches of consecutive messages (at most
        ``batch_size``, default :data:`POOL_BATCH` and enough batches for
        every connection), each pipelined on a free connection. ``messages``
        is read as batches are handed out: an iterator that stops yielding
        stops the run once the batches in flight are done. With ``retry``,
        messages that failed temporarily wait out the backoff and go again
        in a later batch, on any connection; ``progress`` is called with a
        :class:`~smtpcore.adapters.Progress` as each message has its final
        outcome.
        """
        self._backend.check_callback("progress", progress)
        feed = _Feed(messages, self._size, batch_size, retrying=retry is not None)
        self._runs.append(feed)
        tracker = Tracker(feed.total)

        def report(start: int, outcomes: list[MessageResult | SMTPError]) -> None:
            for offset, outcome in enumerate(outcomes):
                index = start + offset
                attempt = feed.attempts[index]
                if (
                    isinstance(outcome, SMTPError)
                    and retry is not None
                    and retry.should_retry(outcome, attempt)
                    and not feed.stopped
                    and feed.rewindable(index)
                ):
                    tracker.requeued()
                    feed.results[index] = outcome  # until the next try
                    feed.later(index, time.monotonic() + retry.delay(attempt))
                    continue
                feed.results[index] = outcome
                update = tracker.finished(index, outcome, attempt)
                if progress is not None:
                    self._backend.call(progress, update)

        def run_batch(indices: list[int]) -> None:
            """One batch over a free connection, each message reported as
            the connection has its outcome (not once the batch is done)."""
            batch = [feed.items[i] for i in indices]
            tracker.started(len(batch), retry=feed.attempts[indices[0]] > 0)
            for i in indices:
                feed.attempts[i] += 1
            reported: set[int] = set()
            failed: list[Exception] = []  # the caller's callback's

            def as_done(update: Progress) -> None:
                reported.add(update.index)
                if failed:
                    return
                try:
                    report(indices[update.index], [update.outcome])
                except Exception as exc:
                    failed.append(exc)

            with self._slots:
                client = self._take()
                try:
                    outcomes = client.send_many(
                        batch, progress=as_done if progress is not None else None
                    )
                except SMTPError as exc:  # e.g. the connection could not be made
                    outcomes = [exc] * len(batch)
                finally:
                    self._idle.append(client)
            if failed:
                raise failed[0]
            for offset, (i, outcome) in enumerate(zip(indices, outcomes, strict=True)):
                if offset not in reported:
                    report(i, [outcome])
            feed.finished()

        def worker() -> None:
            while True:
                work = feed.next()
                if work is None:
                    return
                if isinstance(work, float):
                    self._backend.sleep(work)
                    continue
                run_batch(work)

        try:
            self._backend.gather([worker] * self._size)
            # Stopped or aborted with messages waiting for a retry: they end
            # with their last error.
            for index in feed.abandoned():
                outcome = feed.results[index]
                update = tracker.finished(index, outcome, feed.attempts[index], waiting=True)
                if progress is not None:
                    self._backend.call(progress, update)
        finally:
            self._runs.remove(feed)
        return feed.results

    def _take(self) -> SyncClient[Any, Any]:
        """An idle connection (the warmest), or a new one."""
        try:
            return self._idle.pop()
        except IndexError:
            client = self._client_class(self._server, self._port, **self._options)
            self._all.append(client)
            return client

    def stop(self) -> None:
        """Wind down every ``send_many`` under way (from another task or
        thread too, e.g. on Ctrl-C): the batches in flight finish; no more
        messages are handed out and none is retried (one waiting for a
        retry ends with its last error). The connections stay open."""
        for feed in list(self._runs):
            feed.stop()

    def abort(self) -> None:
        """Close every connection at once, without QUIT (from another task;
        on the blocking adapter, another thread): the messages in flight fail with
        :class:`smtpcore.ConnectionLostError`, and each ``send_many`` under
        way hands out no more messages, retries none and returns."""
        for feed in list(self._runs):
            feed.stop()
        for client in list(self._all):
            client.abort()

    def close(self) -> None:
        """QUIT every connection."""
        clients, self._all = self._all, []
        self._idle.clear()
        self._backend.gather([client.close for client in clients])


#: The longest a pool's worker sleeps while messages wait for a retry.
_NAP = 0.25


class _Feed:
    """The messages of a pool's ``send_many``: handed out in batches as
    connections are free, read from ``messages`` only as needed; messages
    to retry wait here until their time."""

    def __init__(
        self,
        messages: Iterable[Mapping[str, Any]],
        size: int,
        batch_size: int | None,
        *,
        retrying: bool,
    ) -> None:
        self.total = len(messages) if isinstance(messages, Sized) else None
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        step = POOL_BATCH if self.total is None else pool_batches(self.total, size).step
        self.step = min(step, batch_size or step)
        self.items: list[Mapping[str, Any]] = []
        self.results: list[MessageResult | SMTPError] = []
        self.attempts: list[int] = []
        self._source = iter(messages)
        self._exhausted = False
        self._waiting: list[tuple[float, int]] = []  # (not before, index)
        self._busy = 0  # batches out
        self._retrying = retrying
        self._starts: dict[int, int] = {}  # where a file handle's body starts
        self._lock = threading.Lock()
        self.stopped = False  # stop() or abort(): hand out nothing more

    def next(self) -> list[int] | float | None:
        """The next batch (its messages' indices), or seconds to wait for a
        retry to be due, or None when there is nothing more to do."""
        with self._lock:
            if self.stopped:
                return None
            now = time.monotonic()
            due = [i for when, i in self._waiting if when <= now]
            if due:
                due = due[: self.step]
                self._waiting = [(w, i) for w, i in self._waiting if i not in due]
                self._busy += 1
                return due
            if not self._exhausted:
                chunk = []
                for item in self._source:
                    chunk.append(item)
                    if len(chunk) >= self.step:
                        break
                else:
                    self._exhausted = True
                if chunk:
                    start = len(self.items)
                    if self._retrying:
                        self._remember(start, chunk)
                    self.items.extend(chunk)
                    self.results.extend([LocalProtocolError("not sent")] * len(chunk))
                    self.attempts.extend([0] * len(chunk))
                    self._busy += 1
                    return list(range(start, start + len(chunk)))
            if self._waiting:
                # A short nap at most, so that stop() is heard soon.
                return min(_NAP, max(0.0, min(w for w, _ in self._waiting) - now))
            if self._busy and self._retrying:
                return 0.01  # a batch in flight may yet need a retry
            return None

    def _remember(self, start: int, chunk: list[Mapping[str, Any]]) -> None:
        """Note where each file handle's body starts, to send it again."""
        for offset, item in enumerate(chunk):
            handle = item.get("file_handle")
            if handle is not None:
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    self._starts[start + offset] = handle.tell()

    def rewindable(self, index: int) -> bool:
        """Make message ``index`` ready to go again: False if it cannot (its
        body came from a handle that cannot go back to where it started; a
        file given by name is opened again)."""
        handle = self.items[index].get("file_handle")
        if handle is None:
            return True
        try:
            handle.seek(self._starts[index])
        except (AttributeError, KeyError, OSError, ValueError):
            return False
        return True

    def later(self, index: int, when: float) -> None:
        with self._lock:
            self._waiting.append((when, index))

    def finished(self) -> None:
        with self._lock:
            self._busy -= 1

    def stop(self) -> None:
        with self._lock:
            self.stopped = True

    def abandoned(self) -> list[int]:
        """The messages left waiting for a retry (once the workers are done)."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        return sorted(index for _, index in waiting)
