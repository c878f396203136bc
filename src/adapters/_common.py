"""What every adapter shares: parameters, message sources, results, callbacks.

Nothing here does I/O on a connection or knows SMTP: it turns the caller's
keyword arguments (POE::Component::Client::SMTP's parameter set) into a
:class:`smtpcore.SessionConfig` and an :class:`smtpcore.OutgoingMessage`,
opens message files, maps timeouts to stages and reports outcomes through
return values, exceptions or the ``on_success``/``on_failure`` callbacks.
"""

from __future__ import annotations

import email.message
import inspect
import logging
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Final, final

from smtpcore import (
    BodyType,
    CommandCompleted,
    ConfigurationError,
    ConnectionLostError,
    Credentials,
    GreetingReceived,
    InvalidInputError,
    LocalProtocolError,
    MessageAccepted,
    MessageFailed,
    MessageProbed,
    MessageResult,
    MessageSourceError,
    Notify,
    OAuth2Token,
    OutgoingMessage,
    QuitAfter,
    RecipientResult,
    Reply,
    Ret,
    ServerReady,
    Session,
    SessionClosed,
    SessionConfig,
    SMTPError,
    Stage,
    TLSPolicy,
    TranscriptEntry,
)

from ._logging import WireLog, client_logger
from ._options import MESSAGE_KEYS, check_keywords

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_TIMEOUT",
    "POOL_BATCH",
    "Batch",
    "BodySource",
    "ClientOptions",
    "Ledger",
    "SendResult",
    "TLSInfo",
    "Timeouts",
    "client_logger",
    "AwaitsCallbacks",
    "connect_error",
    "dropped",
    "make_message",
    "pool_batches",
]

#: POE::Component::Client::SMTP's default: 30 seconds, applied to each stage.
DEFAULT_TIMEOUT: Final = 30.0
#: RFC 5321 (25), RFC 8314 (465 for implicit TLS), RFC 2033 has no port.
DEFAULT_PORTS: Final = {TLSPolicy.IMPLICIT: 465}
#: The session's defaults, for the limits passed through as they are.
DEFAULTS: Final = SessionConfig()
#: Bytes read from a message file at a time (bounded memory for any size).
FILE_CHUNK: Final = 64 * 1024

AuthInput = Credentials | OAuth2Token | tuple[str, str] | None
SuccessCallback = Callable[[Any, "SendResult"], object]
FailureCallback = Callable[[Any, SMTPError, "tuple[TranscriptEntry, ...] | None", str], object]


@final
@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each stage: ``default`` unless overridden.

    Stages are :class:`smtpcore.Stage` members or their string values
    (``{"data-termination": 600}``).
    """

    default: float = DEFAULT_TIMEOUT
    overrides: Mapping[Stage, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls, timeout: float | None, overrides: Mapping[Stage | str, float] | None
    ) -> Timeouts:
        default = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        if default <= 0:
            raise InvalidInputError("timeout", "must be positive", timeout)
        table: dict[Stage, float] = {}
        for key, seconds in (overrides or {}).items():
            try:
                stage = key if isinstance(key, Stage) else Stage(key)
            except ValueError:
                raise InvalidInputError("timeouts", "unknown stage", key) from None
            if seconds <= 0:
                raise InvalidInputError("timeouts", "must be positive", seconds)
            table[stage] = float(seconds)
        return cls(default, table)

    def __call__(self, stage: Stage) -> float:
        if not self.overrides:
            return self.default
        return self.overrides.get(stage, self.default)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """Where and how to connect, shared by ``send``, ``Client`` and ``Pool``."""

    server: str = "localhost"
    port: int = 25
    unix_path: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    bind_address: str | None = None
    bind_port: int | None = None
    ssl_context: ssl.SSLContext | None = None
    config: SessionConfig = field(default_factory=SessionConfig)
    name: str | None = None

    @classmethod
    def build(
        cls,
        *,
        server: str = "localhost",
        port: int | None = None,
        unix_path: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        timeouts: Mapping[Stage | str, float] | None = None,
        local_hostname: str | None = None,
        server_hostname: str | None = None,
        bind_address: str | None = None,
        bind_port: int | None = None,
        tls: TLSPolicy | str = TLSPolicy.OPPORTUNISTIC,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        dangerously_skip_tls_verification: bool = False,
        auth: AuthInput = None,
        auth_mechanisms: Iterable[str] | str | None = None,
        allow_insecure_auth: bool = False,
        helo_fallback: bool = True,
        transaction_log: bool = False,
        log_message_data: bool = False,
        name: str | None = None,
        lmtp: bool = False,
        pipelining: bool = True,
        chunking: bool = True,
        strict_line_endings: bool = False,
        allow_controls: bool = False,
        require_all_recipients: bool = False,
        max_recipients: int | None = None,
        quit_after: QuitAfter | str | None = None,
        max_auth_steps: int = DEFAULTS.max_auth_steps,
        max_reply_line: int = DEFAULTS.max_reply_line,
        max_reply_lines: int = DEFAULTS.max_reply_lines,
        max_reply_size: int = DEFAULTS.max_reply_size,
    ) -> ClientOptions:
        """The options of :class:`ConnectOptions` checked and combined (the
        defaults of every adapter's keyword arguments are here)."""
        policy = _tls_policy(tls)
        context = ssl_context
        if policy is not TLSPolicy.NONE and context is None:
            context = _default_context(ca_file, client_cert, client_key)
        elif ssl_context is not None and (ca_file or client_cert or client_key):
            raise ConfigurationError(
                "give ssl_context, or ca_file/client_cert/client_key to build one, not both"
            )
        elif policy is TLSPolicy.NONE and (ca_file or client_cert or client_key):
            raise ConfigurationError("ca_file, client_cert and client_key need TLS: tls is none")
        if dangerously_skip_tls_verification and context is not None:
            logging.getLogger("smtpcore").warning(
                "TLS certificate verification is DISABLED for %s: the connection can be "
                "intercepted",
                server,
            )
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if isinstance(auth_mechanisms, str):
            auth_mechanisms = (auth_mechanisms,)
        config = SessionConfig(
            local_hostname=local_hostname or "localhost",
            server_hostname=server_hostname or (server if unix_path is None else None),
            tls=policy,
            tls_verified=context is None or _verifies(context),
            credentials=_credentials(auth),
            auth_mechanisms=None if auth_mechanisms is None else tuple(auth_mechanisms),
            allow_insecure_auth=allow_insecure_auth,
            helo_fallback=helo_fallback,
            transaction_log=transaction_log,
            log_message_data=log_message_data,
            lmtp=lmtp,
            pipelining=pipelining,
            chunking=chunking,
            strict_line_endings=strict_line_endings,
            allow_controls=allow_controls,
            require_all_recipients=require_all_recipients,
            max_recipients=max_recipients,
            quit_after=None if quit_after is None else QuitAfter(quit_after),
            max_auth_steps=max_auth_steps,
            max_reply_line=max_reply_line,
            max_reply_lines=max_reply_lines,
            max_reply_size=max_reply_size,
        )
        if port is None:
            port = DEFAULT_PORTS.get(policy, 25)
        if not 0 < port < 65536:
            raise InvalidInputError("port", "must be 1-65535", port)
        return cls(
            server=server,
            port=port,
            unix_path=unix_path,
            timeouts=Timeouts.build(timeout, timeouts),
            bind_address=bind_address,
            bind_port=bind_port,
            ssl_context=context,
            config=config,
            name=name,
        )

    @property
    def address(self) -> str:
        """Where we connect, for messages and logs."""
        if self.unix_path:
            return self.unix_path
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"{host}:{self.port}"

    @property
    def source_address(self) -> tuple[str, int] | None:
        """The local (address, port) to bind, if any."""
        if self.bind_address is None and self.bind_port is None:
            return None
        return (self.bind_address or "", self.bind_port or 0)

    @property
    def tls_hostname(self) -> str:
        """The name TLS sends (SNI) and verifies: ``server_hostname`` or the server."""
        return self.config.server_hostname or self.server

    @property
    def implicit_tls(self) -> bool:
        """True when TLS starts before the first byte (RFC 8314)."""
        return self.config.tls is TLSPolicy.IMPLICIT


def _default_context(
    ca_file: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext:
    """The system's trust store (plus ``ca_file``), certificate and host name
    verified, TLS >= 1.2, and the client certificate if given."""
    if client_key is not None and client_cert is None:
        raise ConfigurationError("client_key needs client_cert")
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load ca_file {ca_file!r}: {exc}") from None
    try:
        if client_cert is not None:
            context.load_cert_chain(client_cert, client_key)
    except (OSError, ssl.SSLError) as exc:
        # Never the key's content or a password: only the files' names.
        raise ConfigurationError(
            f"cannot load client_cert {client_cert!r} / client_key {client_key!r}: "
            f"{getattr(exc, 'strerror', None) or type(exc).__name__}"
        ) from None
    return context


def _verifies(context: ssl.SSLContext) -> bool:
    """True when ``context`` checks the server's certificate and its name.

    In client mode CERT_OPTIONAL means what CERT_REQUIRED does (the server
    always presents a certificate); ``check_hostname`` needs either.
    """
    return context.verify_mode != ssl.CERT_NONE and context.check_hostname


def _tls_policy(value: TLSPolicy | str) -> TLSPolicy:
    if isinstance(value, TLSPolicy):
        return value
    try:
        return TLSPolicy(value)
    except ValueError:
        choices = ", ".join(p.value for p in TLSPolicy)
        raise InvalidInputError("tls", f"must be one of {choices}", value) from None


def _credentials(auth: AuthInput) -> Credentials | OAuth2Token | None:
    if auth is None or isinstance(auth, (Credentials, OAuth2Token)):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2:
        return Credentials(username=auth[0], password=auth[1])
    raise InvalidInputError("auth", "must be Credentials, OAuth2Token or a (user, password) tuple")


# -- message sources -----------------------------------------------------------


@final
class BodySource:
    """A message body read from a file or file handle in bounded chunks.

    Read errors become :class:`MessageSourceError` (POE::Component::Client::SMTP's
    ``MessageFile_Error``). Files opened here are closed by :meth:`close`.
    """

    def __init__(self, handle: IO[bytes], *, owned: bool, label: str) -> None:
        self.handle = handle
        self.owned = owned
        self.label = label
        try:
            self.start: int | None = handle.tell()
        except (OSError, AttributeError, ValueError):
            self.start = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BodySource:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise MessageSourceError(
                f"cannot open message file {os.fspath(path)!r}: {exc.strerror}"
            ) from exc
        return cls(handle, owned=True, label=os.fspath(path))

    def size_hint(self) -> int | None:
        try:
            return os.fstat(self.handle.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            return None

    def rewind(self) -> None:
        """Go back to where the body started (``NeedBody.restart``)."""
        try:
            if self.start is None:
                raise OSError("not seekable")
            self.handle.seek(self.start)
        except (OSError, AttributeError, ValueError) as exc:
            raise MessageSourceError(
                f"cannot send {self.label} again for the next transaction: {exc}"
            ) from exc

    def next_chunk(self, size: int, restart: bool) -> bytes:
        """The chunk a ``NeedBody`` action asks for."""
        if restart:
            self.rewind()
        return self.read(size)

    def read(self, size: int = FILE_CHUNK) -> bytes:
        try:
            # A non-blocking handle may return None; a text handle, str.
            chunk: object = self.handle.read(min(size, FILE_CHUNK))
        except (OSError, ValueError) as exc:
            raise MessageSourceError(f"cannot read message from {self.label}: {exc}") from exc
        if chunk is None:
            chunk = b""
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise MessageSourceError(f"{self.label} must be opened in binary mode")
        return bytes(chunk)

    def close(self) -> None:
        if self.owned:
            self.handle.close()


MessageInput = bytes | str | email.message.Message

#: The most messages a pool's ``send_many`` puts in one batch (one
#: ``Client.send_many`` on one connection).
POOL_BATCH = 64


def pool_batches(count: int, connections: int) -> range:
    """Where the batches of a pool's ``send_many`` start (the step is their
    size): consecutive messages, about ``count / connections`` each so that
    every connection gets some, and at most :data:`POOL_BATCH`."""
    size = max(1, min(POOL_BATCH, -(-count // max(connections, 1))))
    return range(0, count, size)


def make_message(
    *,
    sender: str | None,
    recipients: str | Iterable[str] | None,
    message: MessageInput | None = None,
    message_file: str | os.PathLike[str] | None = None,
    file_handle: IO[bytes] | None = None,
    smtputf8: bool = False,
    body_type: BodyType | None = None,
    dsn_ret: Ret | str | None = None,
    dsn_envid: str | None = None,
    dsn_notify: Iterable[Notify | str] | None = None,
    dsn_orcpt: bool = False,
    requiretls: bool = False,
) -> tuple[OutgoingMessage, BodySource | None]:
    """Build the message to submit and, for files, its streamed source.

    Exactly one of ``message`` (Body), ``message_file`` (MessageFile) or
    ``file_handle`` (FileHandle) must be given.
    """
    given = [x is not None for x in (message, message_file, file_handle)]
    if sum(given) != 1:
        raise InvalidInputError(
            "message", "give exactly one of message, message_file or file_handle"
        )
    source: BodySource | None = None
    if message_file is not None:
        source = BodySource.open(message_file)
    elif file_handle is not None:
        if not hasattr(file_handle, "read"):
            raise InvalidInputError("file_handle", "must be a readable binary file object")
        source = BodySource(file_handle, owned=False, label="the file handle")
    try:
        outgoing = OutgoingMessage.build(
            sender=sender,
            recipients=recipients,
            message=message,
            size_hint=None if source is None else source.size_hint(),
            smtputf8=smtputf8,
            body_type=body_type,
            ret=None if dsn_ret is None else Ret(dsn_ret) if isinstance(dsn_ret, str) else dsn_ret,
            envid=dsn_envid,
            notify=None if dsn_notify is None else [Notify(n) for n in dsn_notify],
            orcpt=dsn_orcpt,
            requiretls=requiretls,
        )
    except BaseException:
        if source is not None:
            source.close()
        raise
    return outgoing, source


# -- outcomes ------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    """What ``send`` returns (and gives ``on_success``).

    Attributes:
        result: the message's outcome (accepted and refused recipients...).
        transcript: the transaction log when ``transaction_log`` was on.
        context: the caller's ``context``, untouched.
    """

    result: MessageResult
    transcript: tuple[TranscriptEntry, ...] | None = None
    context: Any = None

    @property
    def accepted(self) -> tuple[str, ...]:
        """Recipients the server accepted."""
        return self.result.accepted

    @property
    def transcript_text(self) -> str:
        """The transcript as ``<-``/``->`` lines."""
        return "\n".join(str(e) for e in self.transcript or ())


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TLSInfo:
    """What TLS was negotiated: for logs, ``probe`` and tests."""

    version: str | None
    cipher: str | None
    bits: int | None
    peer_certificate: Mapping[str, Any] | None
    peer_certificate_der: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_ssl_object(cls, obj: ssl.SSLSocket | ssl.SSLObject) -> TLSInfo:
        cipher = obj.cipher()
        try:
            cert = obj.getpeercert()
            der = obj.getpeercert(binary_form=True)
        except (ValueError, ssl.SSLError):
            cert, der = None, None
        return cls(
            version=obj.version(),
            cipher=cipher[0] if cipher else None,
            bits=cipher[2] if cipher else None,
            peer_certificate=cert or None,
            peer_certificate_der=der,
        )


def describe(error: BaseException) -> str:
    """A one-line description of an error (POE::Component::Client::SMTP's ``ARG3``)."""
    return f"{type(error).__name__}: {error}".replace("\n", " ")


class AwaitsCallbacks:
    """The callbacks of the async backends: a coroutine function's result
    is awaited, a plain function's is not."""

    def check_callback(self, name: str, callback: object) -> None:
        if callback is not None and not callable(callback):
            raise ConfigurationError(f"{name} must be callable")

    async def call(self, callback: Callable[..., object], *args: Any) -> None:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result


#: Plain octets handed to TLS at a time when a write must be counted: one
#: record's at most (RFC 8446 5.1: 2^14). The records the kernel took whole
#: are then what may have reached the server: the rest of a record is
#: dropped with the connection, and the server cannot read half of one.
RECORD_SIZE: Final = 16 * 1024


def record_pieces(data: bytes) -> Iterator[memoryview]:
    """``data`` in pieces of at most :data:`RECORD_SIZE` octets, in order."""
    view = memoryview(data)
    for start in range(0, len(view), RECORD_SIZE):
        yield view[start : start + RECORD_SIZE]


#: At most this many reads of what arrived before a failed write (1 MiB).
_RECEIVED_NOW_READS: Final = 16


def received_now(sock: socket.socket | None, size: int) -> bytes:
    """What the non-blocking ``sock`` holds, taken without waiting (``b""``
    for None): once a write failed, the replies to what went before it.
    Stops at EOF or any error (nothing more there, a partial TLS record, a
    broken connection): the failed write tells the session the rest."""
    taken: list[bytes] = []
    try:
        while sock is not None and len(taken) < _RECEIVED_NOW_READS:
            data = sock.recv(size)
            if not data:
                break
            taken.append(data)
    except OSError:
        pass
    return b"".join(taken)


def connect_error(exc: OSError, address: str, operation: str = "connect") -> ConnectionLostError:
    """The typed error for a failed connect, resolve or socket call."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    number = _os_errno(exc)
    return ConnectionLostError(
        f"cannot {'connect to' if operation == 'connect' else operation} {address}: {reason}",
        stage=Stage.CONNECT,
        operation=operation,
        errno=number,
    )


def _os_errno(exc: BaseException) -> int | None:
    """The errno of an OSError, or of the first error behind it (trio raises
    one OSError for all the addresses it tried, with a group as its cause)."""
    number = getattr(exc, "errno", None)
    if number is not None:
        return int(number)
    for inner in getattr(exc.__cause__, "exceptions", ()):
        if (number := _os_errno(inner)) is not None:
            return number
    return None


# -- a send_many batch ---------------------------------------------------------

Outcome = MessageAccepted | MessageFailed | MessageProbed


@final
class Batch:
    """The messages of one ``Client.send_many``, each adapter's side of it.

    Every message is built before anything is sent: one that cannot be built
    gets its typed error in its slot (or raises, with ``raise_errors``).
    :meth:`finish` files the outcome of each message that was submitted.
    Close the batch (its file sources) once sent.
    """

    def __init__(
        self,
        config: SessionConfig,
        messages: Iterable[Mapping[str, Any]],
        *,
        raise_errors: bool,
    ) -> None:
        if config.quit_after is not None and config.quit_after.before_mail:
            raise ConfigurationError(
                f"quit_after={config.quit_after.value} stops before any message: "
                "use connect() to probe"
            )
        self.raise_errors = raise_errors
        self._results: list[MessageResult | SMTPError] = []
        #: Where each submitted message's result goes (its position in ``messages``).
        self.slots: list[int] = []
        #: The messages that could not be built: their positions and errors.
        self.unbuilt: list[tuple[int, SMTPError]] = []
        #: The messages to submit, in order, with their streamed sources.
        self.items: list[tuple[OutgoingMessage, BodySource | None]] = []
        try:
            for item in messages:
                if not item.keys() <= MESSAGE_KEYS:
                    check_keywords("send_many item: send_message", item, MESSAGE_KEYS)
                try:
                    outgoing, source = make_message(**{"sender": None, "recipients": None, **item})
                except SMTPError as exc:
                    if raise_errors:
                        raise
                    self.unbuilt.append((len(self._results), exc))
                    self._results.append(exc)
                    continue
                self.slots.append(len(self._results))
                self.items.append((outgoing, source))
                self._results.append(LocalProtocolError("not sent"))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the sources of the files the batch opened."""
        for _, source in self.items:
            if source is not None:
                source.close()

    def finish(self, outcomes: list[Outcome]) -> list[MessageResult | SMTPError]:
        """Each message's result or typed error, in order, given the outcomes
        of :attr:`items` (with ``raise_errors``, the first error is raised)."""
        for slot, outcome in zip(self.slots, outcomes, strict=True):
            if isinstance(outcome, MessageFailed):
                if self.raise_errors:
                    raise outcome.error
                self._results[slot] = outcome.error
            else:
                self._results[slot] = outcome.result
        return self._results


def dropped(outcome: Outcome) -> bool:
    """The message failed because the server had closed the connection
    before its data: it may be sent again on a new connection."""
    return isinstance(outcome, MessageFailed) and outcome.connection_dropped


# -- the clients' bookkeeping -----------------------------------------------------

#: Session keys: ``(session, message id or command ticket)``.
Key = tuple[Session, int]


@final
class Ledger:
    """What a client's callers are owed (the tasks sharing an async client,
    or the blocking client's caller), filed from the session's events: each
    message's outcome and each command's reply.

    Keys are ``(session, id)`` because ids start again with every
    connection, and a task may collect its outcome after a reconnect.
    ``sources`` holds the body of each streamed message; ``used`` says
    whether the current connection has finished a message (a dropped idle
    connection is then worth one retry). ``greeting``, ``server_ready`` and
    ``tls_info`` describe the current (or last) connection.
    """

    def __init__(self, log: logging.LoggerAdapter[logging.Logger]) -> None:
        self.outcomes: dict[Key, Outcome] = {}
        self.replies: dict[Key, Reply] = {}
        self.sources: dict[Key, BodySource] = {}
        self.used = False
        self.greeting: Reply | None = None
        self.server_ready: list[ServerReady] = []
        self.tls_info: TLSInfo | None = None
        # Each awaited key: the set of its call's keys still without an
        # outcome, and the call's arrivals queue (None: it has none).
        self._waiting: dict[Key, tuple[set[Key], deque[Key] | None]] = {}
        self._log = log
        self._wire = WireLog(log)

    def reset(self) -> None:
        """A new connection: forget what the server said about itself."""
        self.used = False
        self.greeting = None
        self.server_ready = []
        self.tls_info = None

    def start(self, config: SessionConfig) -> Session:
        """A new connection: :meth:`reset`, and its session (which keeps a
        transcript for the wire log when ``smtpcore.wire`` logs at DEBUG)."""
        self.reset()
        return Session(self._wire.session_config(config))

    def expect(self, keys: list[Key], arrivals: deque[Key] | None = None) -> set[Key]:
        """The keys without an outcome yet, as a set that empties as their
        outcomes are filed (so that waiting for a batch costs O(1) a step);
        with ``arrivals``, each key is also appended to it as its outcome
        is filed."""
        pending = {key for key in keys if key not in self.outcomes}
        for key in pending:
            self._waiting[key] = (pending, arrivals)
        return pending

    def collect(self, keys: list[Key]) -> list[Outcome | None]:
        """Take the outcomes of ``keys`` (None where there is none) and
        forget their sources."""
        for key in keys:
            self.sources.pop(key, None)
            self._waiting.pop(key, None)
        return [self.outcomes.pop(key, None) for key in keys]

    def file(self, session: Session) -> None:
        """Drain the session's events into the ledger, and its new transcript
        lines into the wire log."""
        self._wire.follow(session)
        for event in session.events():
            if type(event) is RecipientResult:
                continue  # the most frequent event; the message's result has it too
            if isinstance(event, (MessageAccepted, MessageFailed, MessageProbed)):
                key = (session, event.result.message_id)
                self.outcomes[key] = event
                waiting = self._waiting.pop(key, None)
                if waiting is not None:
                    pending, arrivals = waiting
                    pending.discard(key)
                    if arrivals is not None:
                        arrivals.append(key)
                self.used = True
            elif isinstance(event, CommandCompleted):
                self.replies[session, event.ticket] = event.reply
            elif isinstance(event, GreetingReceived):
                self.greeting = event.reply
            elif isinstance(event, ServerReady):
                self.server_ready.append(event)
            elif isinstance(event, SessionClosed) and event.error is not None:
                self._log.debug("session ended: %s", event.error)

    @staticmethod
    def dead_error(session: Session) -> SMTPError:
        """Why a request got no answer: the session ended."""
        if session.error is not None:
            return session.error
        return LocalProtocolError("the session ended before the request completed")
