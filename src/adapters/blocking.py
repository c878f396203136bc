"""The blocking-socket adapter: ``send()``, ``Client`` and ``Pool``.

The whole adapter is :meth:`Client._run`: ask the session what to do, do it
with a socket (write, read with the stage's timeout, TLS handshake, read a
body chunk), hand the outcome back, and pass the events on. Every protocol
decision is the core's.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, final

from smtpcore import (
    Close,
    Command,
    Idle,
    LocalProtocolError,
    MessageResult,
    NeedBody,
    Noop,
    OutgoingMessage,
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
    connect_error,
    dropped,
    pool_batches,
)

__all__ = ["Client", "Pool", "send"]


def open_socket(options: ClientOptions) -> socket.socket:
    """Connect (TCP or UNIX socket), binding and wrapping in TLS as asked."""
    timeout = options.timeouts(Stage.CONNECT)
    try:
        if options.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(options.unix_path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(
                (options.server, options.port), timeout, options.source_address
            )
    except socket.gaierror as exc:
        raise connect_error(exc, options.address, "resolve") from exc
    except OSError as exc:
        raise connect_error(exc, options.address) from exc
    if options.unix_path is None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if options.implicit_tls:
        sock = _wrap_tls(sock, options, options.server)
    return sock


def _wrap_tls(sock: socket.socket, options: ClientOptions, hostname: str | None) -> ssl.SSLSocket:
    assert options.ssl_context is not None
    seconds = options.timeouts(Stage.TLS_HANDSHAKE)
    sock.settimeout(seconds)
    try:
        return options.ssl_context.wrap_socket(sock, server_hostname=hostname)
    except TimeoutError as exc:
        sock.close()
        raise SMTPTimeoutError(Stage.TLS_HANDSHAKE, seconds) from exc
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        sock.close()
        raise TLSError(f"TLS handshake with {options.address} failed: {exc}") from exc


@final
class Client:
    """One SMTP connection for many messages.

    ``with Client("mx.example.net", tls="starttls", auth=("user", "pw")) as c:
    c.send_message("a@example.net", ["b@example.org"], message=b"...")``.
    Keyword arguments are those of :func:`send` that describe the connection.
    If the server closed the connection while it was idle, the next message
    reconnects transparently; a message whose data was sent is never resent.
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
        self._sock: socket.socket | None = None
        # Watches the socket between transactions (made on first use, one per
        # connection: STARTTLS keeps the file descriptor).
        self._selector: selectors.BaseSelector | None = None
        self._session: Session | None = None
        self._log = client_logger(self.options.name)
        # Outcomes, replies and what the server said about itself, filed
        # from the session's events (as for the async clients).
        self._ledger = Ledger(self._log)

    # -- context manager -------------------------------------------------------

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        # A refused message leaves a working session: QUIT politely. Anything
        # else (cancellation, a bug) closes at once.
        if exc_type is None or issubclass(exc_type, SMTPError):
            self.close()
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

    def connect(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS and AUTH as configured."""
        self.abort()
        if self._given_sock is not None:
            sock, self._given_sock = self._given_sock, None
            self._sock = (
                _wrap_tls(sock, self.options, self.options.server)
                if self.options.implicit_tls
                else sock
            )
        else:
            self._sock = open_socket(self.options)
        self._log.debug("connected to %s", self.options.address)
        self._session = Session(self.options.config)
        self._ledger.reset()
        self._run(lambda: False)
        if self._session.closed and self._session.error is not None:
            raise self._session.error

    def send_message(
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
        [outcome] = self.send_many(
            [
                dict(
                    sender=sender,
                    recipients=recipients,
                    message=message,
                    message_file=message_file,
                    file_handle=file_handle,
                    **message_options,
                )
            ],
            raise_errors=True,
        )
        assert isinstance(outcome, MessageResult)
        return outcome

    def send_many(
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
                reused = self._ledger.used
                outcomes = self._submit(batch.items)
                retry = [i for i, o in enumerate(outcomes) if reused and dropped(o)]
                if retry:
                    # The server closed the idle connection before these
                    # messages' data: send them once more on a fresh connection.
                    self._log.debug("connection dropped while idle; reconnecting")
                    try:
                        self.connect()
                        again = self._submit([batch.items[i] for i in retry])
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

    def command(self, command: Command) -> Reply:
        """Send NOOP, VRFY, EXPN or a raw extension command; returns the reply."""
        session = self._live_session()
        key = (session, session.command(command))
        replies = self._ledger.replies
        self._run(lambda: key in replies)
        if key not in replies:
            raise Ledger.dead_error(session)
        return replies.pop(key)

    def noop(self) -> Reply:
        """Send NOOP (keeps an idle connection alive)."""
        return self.command(Noop())

    def close(self) -> None:
        """QUIT and close the connection (the transcript stays readable)."""
        session = self._session
        if session is not None and self._sock is not None and not session.closed:
            session.quit()
            self._run(lambda: False)
        self.abort()

    def abort(self) -> None:
        """Close the connection at once, without QUIT."""
        sock, self._sock = self._sock, None
        selector, self._selector = self._selector, None
        if selector is not None:
            selector.close()
        if sock is not None:
            sock.close()

    @property
    def tls_info(self) -> TLSInfo | None:
        """The TLS version, cipher and peer certificate, when TLS is up."""
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket):
            self._ledger.tls_info = TLSInfo.from_ssl_object(sock)
        return self._ledger.tls_info

    @property
    def transcript(self) -> tuple[TranscriptEntry, ...]:
        """The transaction log of the current (or last) connection."""
        return tuple(self._session.transcript) if self._session else ()

    # -- the loop --------------------------------------------------------------

    def _submit(self, items: list[tuple[OutgoingMessage, BodySource | None]]) -> list[Outcome]:
        """Queue every message on the session and run until each has an
        outcome (the session reports one for every message, even when it
        dies)."""
        session = self._live_session()
        keys = []
        for outgoing, source in items:
            key = (session, session.submit(outgoing))
            keys.append(key)
            if source is not None:
                self._ledger.sources[key] = source
        pending = self._ledger.expect(keys)
        try:
            self._run(lambda: not pending)
        finally:
            outcomes = self._ledger.collect(keys)
        if any(outcome is None for outcome in outcomes):
            raise Ledger.dead_error(session)
        return [o for o in outcomes if o is not None]

    def _live_session(self) -> Session:
        session = self._session
        if session is None or self._sock is None or session.closed or self._peer_went_away():
            self.connect()
        assert self._session is not None
        return self._session

    def _peer_went_away(self) -> bool:
        """Before a new transaction on an idle connection, take in whatever
        the server sent meanwhile (EOF, a 421) so the core can judge it."""
        sock, session = self._sock, self._session
        assert sock is not None
        assert session is not None
        selector = self._selector
        if selector is None:
            selector = self._selector = selectors.DefaultSelector()
            selector.register(sock.fileno(), selectors.EVENT_READ)
        if selector.select(0):
            try:
                sock.settimeout(0.0)
                data = sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                return False
            except OSError:
                data = b""
            session.receive_data(data)
            self._run(lambda: False)
        return session.closed

    def _run(self, done: Callable[[], bool]) -> None:
        """Do what the session asks until ``done()``, Idle or Close."""
        session, sock = self._session, self._sock
        assert session is not None
        assert sock is not None
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
                        sock.settimeout(timeout(action.stage))
                        sock.sendall(action.data)
                    except TimeoutError:
                        session.timeout_expired(timeout(action.stage))
                    except OSError as exc:
                        session.connection_lost("write", exc.errno, str(exc))
                elif isinstance(action, Read):
                    if waiting != (action.stage, action.replies):
                        waiting = (action.stage, action.replies)
                        deadline = time.monotonic() + timeout(action.stage)
                    try:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError
                        sock.settimeout(left)
                        data = sock.recv(65536)
                    except TimeoutError:
                        session.timeout_expired(timeout(action.stage))
                    except OSError as exc:
                        session.connection_lost("read", exc.errno, str(exc))
                    else:
                        session.receive_data(data)
                elif isinstance(action, StartTLSAction):
                    hostname = action.server_hostname or self.options.server
                    try:
                        sock = self._sock = _wrap_tls(sock, self.options, hostname)
                    except SMTPTimeoutError as exc:
                        session.timeout_expired(exc.seconds)
                    except TLSError as exc:
                        session.tls_failed(str(exc.__cause__ or exc))
                    else:
                        self._ledger.tls_info = TLSInfo.from_ssl_object(sock)
                        session.tls_established()
                elif isinstance(action, NeedBody):
                    source = self._ledger.sources[session, action.message_id]
                    try:
                        chunk = source.next_chunk(action.size_hint, action.restart)
                    except SMTPError as exc:
                        session.body_failed(action.message_id, exc)
                    else:
                        session.send_body(action.message_id, chunk)
                elif isinstance(action, Close):
                    self._ledger.file(session)
                    self.abort()
                    return
                else:
                    assert isinstance(action, Idle)
                    self._ledger.file(session)
                    return
                self._ledger.file(session)
        except BaseException:
            # Cancelled (KeyboardInterrupt...) or a bug: never leave a
            # half-spoken connection behind.
            self.abort()
            raise


def send(
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
    """Send one message over one connection (POE::Component::Client::SMTP's ``send``).

    Args:
        sender: the envelope sender (From); None derives it from an
            ``EmailMessage``.
        recipients: one address or a list (To); None derives them.
        message: bytes, str or an ``EmailMessage`` (Body).
        message_file: a path to read the message from (MessageFile).
        file_handle: a binary file object (FileHandle).
        server, port: where to connect (Server, Port; port 25, or 465 with
            ``tls="implicit"``).
        sock: an already-connected socket (e.g. through a proxy).
        context: returned untouched to the callbacks and in the result (Context).
        on_success: ``on_success(context, result)`` (SMTP_Success).
        on_failure: ``on_failure(context, error, transcript, description)``
            (SMTP_Failure).
        message_options: per-message options (``dsn_notify``, ``smtputf8``...).
        **options: ``timeout``, ``timeouts``, ``local_hostname``,
            ``bind_address``, ``bind_port``, ``tls``, ``ssl_context``,
            ``auth``, ``auth_mechanisms``, ``transaction_log``, ``name``,
            ``unix_path``, ``lmtp``...

    Returns:
        A :class:`SendResult` (None when callbacks are given).

    Raises:
        SMTPError: the typed error, when no callbacks are given.
    """
    client: Client | None = None
    outcome: MessageResult | None = None
    error: SMTPError | None = None
    try:
        client = Client(server, port, sock=sock, **options)
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
    return conclude_send(
        outcome=outcome,
        error=error,
        transcript=client.transcript if logged and client is not None else None,
        context=context,
        on_success=on_success,
        on_failure=on_failure,
    )


@final
class Pool:
    """Send many messages over up to ``size`` reused connections, one thread
    per connection. Each message's result is reported on its own."""

    def __init__(
        self, server: str = "localhost", port: int | None = None, *, size: int = 4, **options: Any
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._server, self._port, self._options = server, port, options
        self._size = size
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(size)
        self._all: list[Client] = []

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send_message(self, *args: Any, **kwargs: Any) -> MessageResult:
        """Like :meth:`Client.send_message`, on a free connection (thread-safe)."""
        with self._lease() as client:
            return client.send_message(*args, **kwargs)

    def send_many(self, messages: Iterable[Mapping[str, Any]]) -> list[MessageResult | SMTPError]:
        """Send each message (keyword arguments of ``send_message``) over the
        pool; returns, in order, each result or the typed error.

        The messages are cut into batches of consecutive messages, spread
        over the connections; each batch goes with :meth:`Client.send_many`,
        so the messages of a batch are pipelined on their connection.
        """
        items = list(messages)
        results: list[MessageResult | SMTPError] = [LocalProtocolError("not sent")] * len(items)
        starts = pool_batches(len(items), self._size)
        per_batch = starts.step
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for start in starts:
            todo.put(start)

        def worker() -> None:
            while True:
                try:
                    start = todo.get_nowait()
                except queue.Empty:
                    return
                batch = items[start : start + per_batch]
                try:
                    with self._lease() as client:
                        outcomes = client.send_many(batch)
                except SMTPError as exc:  # e.g. the connection could not be made
                    outcomes = [exc] * len(batch)
                results[start : start + len(batch)] = outcomes

        workers = min(self._size, len(starts))
        with ThreadPoolExecutor(max_workers=max(workers, 1)) as executor:
            for future in [executor.submit(worker) for _ in range(workers)]:
                future.result()
        return results

    @contextlib.contextmanager
    def _lease(self) -> Iterator[Client]:
        """A connection of the pool for this thread's exclusive use."""
        with self._slots:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                client = Client(self._server, self._port, **self._options)
                with self._lock:
                    self._all.append(client)
            try:
                yield client
            finally:
                self._idle.put(client)

    def close(self) -> None:
        """QUIT every connection."""
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            client.close()
