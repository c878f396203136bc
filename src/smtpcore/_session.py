"""The session: whole SMTP conversations as a pure state machine.

Theory of operation
-------------------
A :class:`Session` is configured once (:class:`SessionConfig`) and then asked,
over and over, what to do next (:meth:`Session.next_action`): write bytes,
read bytes (with a named timeout stage), start TLS, hand over a body chunk,
wait idle, or close. The adapter does that I/O and feeds the outcome back
(``receive_data``, ``timeout_expired``, ``tls_established``, ``tls_failed``,
``send_body``, ``connection_lost``). Everything the session learns is reported
as events (:meth:`Session.events`).

The session runs in phases::

    GREETING -> HELLO -> [STARTTLS -> TLS_HANDSHAKE -> HELLO] -> [AUTH] -> READY
             -> QUITTING -> CLOSED

In READY it works through a queue of jobs (messages, user commands, QUIT).
Each message is one or more transactions (MAIL, RCPT..., DATA or BDAT); the
session sends as much of each as the :class:`Connection` lets it: everything
up to DATA in one write when PIPELINING is on, one command at a time when it
is off. The end of one message's data and the next message's envelope go out
together (RFC 2920 3.1 lets message content open a group), so a queue of
messages costs one round trip each. At most two messages are in flight, which
bounds memory and keeps unread replies far below any socket buffer (the
pipelining deadlock of RFC 2920 4).

Every reply comes back bound to the command it answers (the connection's
FIFO); the session keeps, per command sent, what it was for (``_Sent``).

Fatal errors (protocol violations, timeouts, EOF, TLS failures under a
required policy, AUTH failures) fail every message in flight or queued, send
QUIT where the conversation still allows it, and end with ``Close``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import final

from ._auth import SASLMechanism, choose_mechanism, decode_challenge
from ._commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    BodyType,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    Lhlo,
    Mail,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
)
from ._config import OutgoingMessage, QuitAfter, SessionConfig, TLSPolicy
from ._connection import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    ReplyReceived,
)
from ._connection import (
    ServiceClosing as _ConnServiceClosing,
)
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    InvalidInputError,
    LocalProtocolError,
    MessageContentError,
    PermanentReplyError,
    RecipientsRefusedError,
    RemoteProtocolError,
    ReplyError,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    TemporaryReplyError,
    TLSError,
    TLSRequiredError,
)
from ._events import (
    Action,
    Authenticated,
    Close,
    CommandCompleted,
    Direction,
    Event,
    GreetingReceived,
    Idle,
    MessageAccepted,
    MessageFailed,
    MessageProbed,
    MessageResult,
    NeedBody,
    Read,
    RecipientResult,
    RecipientState,
    RecipientStatus,
    ServerReady,
    ServiceClosing,
    SessionClosed,
    TLSEstablished,
    TranscriptEntry,
    Write,
)
from ._events import (
    StartTLS as StartTLSAction,
)
from ._extensions import Capabilities
from ._message import BodyEncoder, BodyInfo, EncodeMode, encode_scanned, scan_body
from ._replies import Reply

__all__ = ["Session"]

#: How much body the session asks for at a time (NeedBody.size_hint).
BODY_CHUNK_SIZE = 64 * 1024
#: Streamed BDAT chunks sent before the session reads their replies: bounds
#: the unread replies so neither side can block on a full socket buffer.
MAX_BDAT_IN_FLIGHT = 8
#: Messages with replies outstanding at once (see the module docstring).
MAX_MESSAGES_IN_FLIGHT = 2


class Phase(enum.Enum):
    """Where the session stands."""

    GREETING = enum.auto()
    HELLO = enum.auto()  # EHLO/LHLO (or HELO) is due
    HELLO_WAIT = enum.auto()
    STARTTLS_WAIT = enum.auto()
    TLS_HANDSHAKE = enum.auto()  # the adapter is doing the handshake
    AUTH = enum.auto()  # AUTH is due
    AUTH_WAIT = enum.auto()
    READY = enum.auto()
    QUITTING = enum.auto()
    CLOSED = enum.auto()


# Commands without arguments are immutable values: one of each serves every
# transaction.
_DATA = Data()
_END_OF_DATA = EndOfData()
_RSET = Rset()


class _Kind(enum.Enum):
    __hash__ = object.__hash__  # identity, as ConnState (C speed in _HANDLERS)

    GREETING = enum.auto()
    HELLO = enum.auto()
    STARTTLS = enum.auto()
    AUTH = enum.auto()
    MAIL = enum.auto()
    RCPT = enum.auto()
    DATA = enum.auto()
    END = enum.auto()  # end of data / BDAT LAST: the final reply(ies)
    BDAT = enum.auto()  # a BDAT chunk that is not the last
    RSET = enum.auto()
    QUIT = enum.auto()
    USER = enum.auto()


@dataclass(slots=True)
class _Sent:
    """What a command was sent for."""

    kind: _Kind
    msg: _Msg | None = None
    recipient: str = ""
    ticket: int = 0


@dataclass(slots=True)
class _Msg:
    """The run-time state of one message (across its transactions)."""

    id: int
    message: OutgoingMessage
    todo: deque[str]  # recipients not yet sent in any transaction
    statuses: dict[str, RecipientStatus] = field(default_factory=dict)
    info: BodyInfo | None = None
    wire: bytes | None = None  # encoded in-memory body for this transaction
    encoder: BodyEncoder | None = None  # for streamed bodies
    use_bdat: bool = False
    # The current transaction:
    rcpts: list[str] = field(default_factory=list)
    sent_rcpts: int = 0
    answered_rcpts: int = 0
    accepted: list[str] = field(default_factory=list)
    positive_rcpts: int = 0  # 2xx RCPT replies, even after a refused MAIL
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)  # accepted ones
    mail_reply: Reply | None = None
    mail_sent: bool = False
    data_sent: bool = False  # DATA or the first BDAT went out
    body_started: bool = False
    end_sent: bool = False  # final dot / BDAT LAST went out
    streaming: bool = False  # the adapter is feeding the body
    streamed_before: bool = False  # an earlier transaction streamed it already
    restart: bool = False  # the next NeedBody asks for the body from its start
    bdat_in_flight: int = 0
    final_replies: int = 0
    failed_reply: ReplyError | None = None  # a refusal that ends the transaction
    # Across transactions:
    any_data_sent: bool = False
    size: int = 0
    last_reply: Reply | None = None
    first_refusal: ReplyError | None = None


@final
class Session:
    """An SMTP client session as a pure state machine.

    Args:
        config: the session's configuration.
    """

    def __init__(self, config: SessionConfig | None = None) -> None:
        self._config = config = config if config is not None else SessionConfig()
        self._conn = Connection(
            lmtp=config.lmtp,
            max_line_length=config.max_reply_line,
            max_lines=config.max_reply_lines,
            max_reply_size=config.max_reply_size,
        )
        self._phase = Phase.GREETING
        self._tls = config.tls is TLSPolicy.IMPLICIT
        self._out = bytearray()
        self._out_stage = Stage.GREETING
        self._events: deque[Event] = deque()
        self._sent: deque[_Sent] = deque([_Sent(_Kind.GREETING)])
        self._jobs: deque[_Msg | tuple[int, Command] | None] = deque()  # None = QUIT
        self._active: list[_Msg] = []  # messages with a transaction under way
        self._body_msg: _Msg | None = None  # the message whose body the adapter feeds
        self._capabilities: Capabilities | None = None
        self._mechanism: SASLMechanism | None = None
        self._auth_steps = 0
        self._auth_error: AuthenticationError | None = None
        self._helo_fallback_used = False
        self._tried_starttls = False
        self._next_id = 1
        self._quit_queued = False
        self._error: SMTPError | None = None
        self._close_reported = False
        self._replies_received = 0
        # Messages whose end (final dot, BDAT LAST) is in _out, not written yet;
        # and, while a Write is with the adapter, that Write's stage and ends.
        self._ends_unwritten: list[_Msg] = []
        self._writing: tuple[Stage, list[_Msg]] | None = None
        self.transcript: list[TranscriptEntry] = []
        self._logging = config.transaction_log  # config is frozen and read-only
        if self._tls:
            self._events.append(TLSEstablished())

    # -- inspection ------------------------------------------------------------

    @property
    def config(self) -> SessionConfig:
        """The session's configuration (fixed for its lifetime)."""
        return self._config

    @property
    def phase(self) -> Phase:
        """The session's phase."""
        return self._phase

    @property
    def capabilities(self) -> Capabilities | None:
        """What the server offers (after EHLO; None before)."""
        return self._capabilities

    @property
    def tls_active(self) -> bool:
        """True once TLS protects the connection."""
        return self._tls

    @property
    def error(self) -> SMTPError | None:
        """The error that ended the session, if any."""
        return self._error

    @property
    def closed(self) -> bool:
        """True once the session asked for Close."""
        return self._phase is Phase.CLOSED

    @property
    def busy(self) -> bool:
        """True while messages or commands are queued or in flight."""
        return bool(self._jobs or self._active or self._conn.waiting)

    # -- what the caller asks --------------------------------------------------

    def submit(self, message: OutgoingMessage) -> int:
        """Queue a message; returns its id (events carry it)."""
        self._check_open()
        if self._config.quit_after is not None and self._config.quit_after.before_mail:
            raise ConfigurationError(
                f"quit_after={self._config.quit_after.value} stops before any message is sent"
            )
        msg = _Msg(id=self._new_id(), message=message, todo=deque(message.recipients))
        self._jobs.append(msg)
        return msg.id

    def command(self, command: Command) -> int:
        """Queue a command (NOOP, VRFY, EXPN, a raw extension command) to be
        sent between transactions; returns a ticket (``CommandCompleted``)."""
        self._check_open()
        if not isinstance(command, Command) or command.verb in _SESSION_OWNED:
            raise LocalProtocolError(f"the session sends {command.verb} itself")
        ticket = self._new_id()
        self._jobs.append((ticket, command))
        return ticket

    def quit(self) -> None:
        """Send QUIT once everything queued is done, then close."""
        if self._phase is Phase.CLOSED or self._quit_queued:
            return
        self._quit_queued = True
        self._jobs.append(None)

    # -- the adapter's inputs --------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the server (``b""`` at EOF)."""
        if self._phase is Phase.CLOSED:
            return
        if self._phase is Phase.TLS_HANDSHAKE:
            # RFC 3207 4.2: after its 220 the server waits for the handshake;
            # plaintext then is injected, and EOF means there will be no TLS.
            if data:
                error: SMTPError = RemoteProtocolError("server sent data before the TLS handshake")
            else:
                error = TLSError("the server closed the connection before the TLS handshake")
            self._fatal(error, quit=False)
            return
        try:
            self._conn.receive_data(data)
        except RemoteProtocolError as exc:
            self._fatal(exc, quit=False)

    def timeout_expired(self, seconds: float | None = None) -> None:
        """The read (or write) asked for by the last action timed out.

        The connection is closed without QUIT: a late reply must never be
        paired with a later command.
        """
        if self._phase is Phase.CLOSED:
            return
        self._fatal(SMTPTimeoutError(self._failed_stage(), seconds), quit=False)

    def connection_lost(self, operation: str, errno: int | None = None, detail: str = "") -> None:
        """The adapter's I/O failed (reset, broken pipe...)."""
        if self._phase is Phase.CLOSED:
            return
        stage = self._failed_stage()
        message = f"connection failed during {operation}" + (f": {detail}" if detail else "")
        self._fatal(
            ConnectionLostError(message, stage=stage, operation=operation, errno=errno),
            quit=False,
        )

    def tls_established(self) -> None:
        """The TLS handshake asked for by ``StartTLS`` succeeded."""
        if self._phase is not Phase.TLS_HANDSHAKE:
            raise LocalProtocolError("no TLS handshake was asked for")
        self._conn.tls_established()
        self._tls = True
        # RFC 3207 4.2: forget everything learnt before TLS and EHLO again.
        self._capabilities = None
        self._events.append(TLSEstablished())
        self._log(Direction.SENT, b"[TLS established]", summary=True)
        self._phase = Phase.HELLO

    def tls_failed(self, reason: str) -> None:
        """The TLS handshake failed (verification, protocol...)."""
        if self._phase is Phase.CLOSED:
            return
        self._fatal(TLSError(f"TLS handshake failed: {reason}"), quit=False)

    def send_body(self, message_id: int, chunk: bytes) -> None:
        """The next chunk of a streamed body (``b""`` at its end)."""
        msg = self._body_msg
        if msg is None or msg.id != message_id:
            raise LocalProtocolError(f"no body is expected for message {message_id}")
        msg.restart = False
        try:
            self._stream_chunk(msg, chunk)
        except MessageContentError as exc:
            self.body_failed(message_id, exc)

    def body_failed(self, message_id: int, error: SMTPError) -> None:
        """The body being streamed cannot be completed (unreadable file, or
        content found unsendable halfway through).

        There is no way to abort DATA cleanly: the message fails and the
        connection is closed without the final dot, so the server discards
        what it got (RFC 5321 4.1.1.4: only the terminator completes it).
        """
        msg = self._body_msg
        if msg is None or msg.id != message_id:
            raise LocalProtocolError(f"no body is expected for message {message_id}")
        self._body_msg = None
        self._fail_message(msg, error)
        self._fatal(error, quit=False)

    # -- what the adapter asks -------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Drain the events reported since the last call."""
        while self._events:
            yield self._events.popleft()

    def next_action(self) -> Action:
        """What the adapter must do next."""
        self._writing = None  # the last Write (if any) completed
        while True:
            if self._out:
                # Let queued work join this write first: the end of one
                # message's data and the next envelope go out together
                # (RFC 2920 3.1), so a queue costs one round trip a message.
                if self._phase is Phase.READY and self._body_msg is None and self._advance():
                    continue
                data = bytes(self._out)
                self._out.clear()
                self._writing = (self._out_stage, self._ends_unwritten)
                self._ends_unwritten = []
                return Write(data=data, stage=self._out_stage)
            if self._phase is Phase.CLOSED:
                if not self._close_reported:
                    self._close_reported = True
                    self._events.append(SessionClosed(error=self._error))
                return Close()
            if self._phase is Phase.TLS_HANDSHAKE:
                return StartTLSAction(server_hostname=self._config.server_hostname)
            if self._process_replies():
                continue
            if self._body_msg is not None and not self._out:
                msg = self._body_msg
                if msg.bdat_in_flight < MAX_BDAT_IN_FLIGHT and (
                    not msg.use_bdat or self._conn.can_send()
                ):
                    return NeedBody(
                        message_id=msg.id, size_hint=BODY_CHUNK_SIZE, restart=msg.restart
                    )
            elif self._advance():
                continue
            if self._conn.waiting:
                return Read(stage=self._current_stage(), replies=self._replies_received)
            return Idle()

    # -- replies ---------------------------------------------------------------

    def _process_replies(self) -> bool:
        """Handle every complete reply buffered; True if anything happened."""
        did = False
        while self._phase is not Phase.CLOSED:
            try:
                event = self._conn.next_event()
            except RemoteProtocolError as exc:
                self._fatal(exc, quit=False)
                return True
            if event is NEED_DATA:
                return did
            did = True
            self._replies_received += 1
            if isinstance(event, ReplyReceived):
                if self._logging:
                    self._log_reply(event.reply)
                self._on_reply(event)
            elif isinstance(event, _ConnServiceClosing):
                self._log_reply(event.reply)
                self._events.append(ServiceClosing(reply=event.reply))
                self._fatal(
                    TemporaryReplyError(
                        event.reply, "session", "server closing: " + event.reply.describe()
                    ),
                    quit=False,
                )
            elif isinstance(event, ConnectionClosed):
                self._on_eof(event)
        return did

    def _on_eof(self, event: ConnectionClosed) -> None:
        waiting = [s for s in self._sent if s.kind is not _Kind.QUIT]
        if self._phase is Phase.QUITTING and not waiting:
            # The server closed after (or instead of) its 221: a clean end.
            self._phase = Phase.CLOSED
            return
        # The connection forgot its pending commands when it reported EOF;
        # the event keeps them: the oldest is the one that was waiting.
        if event.outstanding:
            first = event.outstanding[0]
            stage = Stage.GREETING if first is None else first.stage
        else:
            stage = self._current_stage()
        self._fatal(
            ConnectionLostError(event.describe(), stage=stage, operation="read"), quit=False
        )

    def _on_reply(self, event: ReplyReceived) -> None:
        reply = event.reply
        sent = self._sent[0]
        if sent.kind is not _Kind.END or self._end_complete(sent, event.index):
            self._sent.popleft()
        if reply.code == 421 and sent.kind is not _Kind.QUIT:
            # RFC 5321 3.8: 421 to any command: the server is closing.
            if sent.kind is _Kind.END and sent.msg is not None:
                # The final dot was answered: the message was refused, its
                # fate is known (unlike a timeout or EOF after the dot).
                sent.msg.last_reply = reply
                sent.msg.end_sent = False
            self._events.append(ServiceClosing(reply=reply))
            self._fatal(TemporaryReplyError(reply, _command_name(event.command)), quit=False)
            return
        handler = _HANDLERS[sent.kind]
        handler(self, sent, reply, event)

    def _end_complete(self, sent: _Sent, index: int) -> bool:
        if not self._conn.lmtp or sent.msg is None:
            return True
        # RFC 2033 4.2: one reply per RCPT the server took (2xx), counted
        # as the connection counts them, even when MAIL was refused.
        return index + 1 >= max(sent.msg.positive_rcpts, 1)

    def _on_greeting(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        # RFC 5321 3.1 / 4.3.2: 220 opens the session; 554 (or anything else)
        # refuses it, and the client should QUIT.
        if reply.code != 220:
            error_cls = TemporaryReplyError if reply.is_transient else PermanentReplyError
            self._fatal(
                error_cls(reply, "greeting", f"server refused the session: {reply.describe()}"),
                quit=True,
            )
            return
        self._events.append(GreetingReceived(reply=reply))
        if self._config.quit_after is QuitAfter.CONNECT:
            self._begin_quit()
            return
        self._phase = Phase.HELLO

    def _on_hello(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        command = event.command
        if not reply.is_positive:
            # RFC 5321 4.1.4: a server that does not know EHLO answers 500/502;
            # the client may then fall back to HELO. Never when TLS is required
            # (HELO cannot negotiate STARTTLS) and never in LMTP (RFC 2033 4.1).
            if (
                isinstance(command, Ehlo)
                and reply.code in (500, 502)
                and self._config.helo_fallback
                and not (self._config.tls is TLSPolicy.STARTTLS and not self._tls)
            ):
                self._helo_fallback_used = True
                self._phase = Phase.HELLO
                return
            if (
                isinstance(command, Ehlo)
                and reply.code in (500, 502)
                and self._config.tls is TLSPolicy.STARTTLS
                and not self._tls
            ):
                self._fatal(
                    TLSRequiredError(
                        "TLS is required but the server does not speak ESMTP (no STARTTLS)", reply
                    ),
                    quit=True,
                )
                return
            self._fatal(_reply_error(reply, _command_name(command)), quit=True)
            return
        caps = (
            Capabilities.helo(reply) if isinstance(command, Helo) else Capabilities.from_ehlo(reply)
        )
        self._capabilities = caps
        self._conn.pipelining = caps.pipelining and self._config.pipelining
        self._events.append(ServerReady(capabilities=caps, tls=self._tls))
        if self._config.quit_after is QuitAfter.EHLO and not self._tls:
            self._begin_quit()
            return
        policy = self._config.tls
        if not self._tls and policy in (TLSPolicy.STARTTLS, TLSPolicy.OPPORTUNISTIC):
            if caps.starttls and not self._tried_starttls:
                self._tried_starttls = True
                self._send(StartTLS(), _Sent(_Kind.STARTTLS))
                self._phase = Phase.STARTTLS_WAIT
                return
            if policy is TLSPolicy.STARTTLS:
                self._fatal(
                    TLSRequiredError("TLS is required but the server does not offer STARTTLS"),
                    quit=True,
                )
                return
        if self._config.quit_after in (QuitAfter.EHLO, QuitAfter.TLS):
            self._begin_quit()
            return
        self._after_hello()

    def _after_hello(self) -> None:
        credentials = self._config.credentials
        if credentials is None:
            self._phase = Phase.READY
            return
        caps = self._capabilities
        assert caps is not None
        if not self._tls and not self._config.allow_insecure_auth:
            self._fatal(
                ConfigurationError(
                    "refusing to send credentials without TLS "
                    "(use a TLS policy, or allow_insecure_auth=True to override)"
                ),
                quit=True,
            )
            return
        if not caps.auth:
            self._fatal(
                ConfigurationError("credentials were given but the server offers no AUTH"),
                quit=True,
            )
            return
        try:
            self._mechanism = choose_mechanism(caps.auth, credentials, self._config.auth_mechanisms)
        except (ConfigurationError, InvalidInputError) as exc:
            # SCRAM-SHA-256 refuses a password SASLprep prohibits (RFC 4013):
            # a configuration problem, reported like any other.
            self._fatal(exc, quit=True)
            return
        self._phase = Phase.AUTH

    def _on_starttls(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        if reply.code == 220:
            self._phase = Phase.TLS_HANDSHAKE
            return
        if self._config.tls is TLSPolicy.STARTTLS:
            # RFC 3207 4: 454 (or anything but 220) means no TLS now; with TLS
            # required the session ends before any AUTH or MAIL byte.
            self._fatal(
                TLSRequiredError(
                    f"TLS is required but STARTTLS was refused: {reply.describe()}", reply
                ),
                quit=True,
            )
            return
        # Opportunistic: carry on in plaintext.
        if self._config.quit_after is QuitAfter.TLS:
            self._begin_quit()
            return
        self._after_hello()

    def _on_auth(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        mech = self._mechanism
        assert mech is not None
        if reply.code == 334:
            if self._auth_error is not None:
                # We cancelled and the server still challenges: stop.
                self._fatal(self._auth_error, quit=False)
                return
            self._auth_steps += 1
            try:
                if self._auth_steps > self._config.max_auth_steps:
                    raise AuthenticationError(
                        f"too many AUTH challenges (more than {self._config.max_auth_steps})"
                    )
                challenge = decode_challenge(reply.lines[0])
                response = mech.respond(challenge)
            except AuthenticationError as exc:
                # RFC 4954 4: "*" cancels the exchange; the server answers 501.
                self._auth_error = exc
                self._send(AuthCancel(), _Sent(_Kind.AUTH))
                return
            self._send(AuthResponse(data=response), _Sent(_Kind.AUTH))
            return
        if self._auth_error is not None:
            self._fatal(self._auth_error, quit=True)
            return
        if reply.is_positive:
            try:
                # RFC 4422 5 "additional data with success": only mechanisms
                # that expect it read the 235 text as base64.
                data = None
                if mech.wants_success_data:
                    data = decode_challenge(reply.message.encode("utf-8", "surrogateescape"))
                mech.verify_success(data)
            except AuthenticationError as exc:
                # e.g. SCRAM: a 235 without a valid server signature means we
                # may be talking to an impostor; do not send mail.
                self._fatal(exc, quit=True)
                return
            self._events.append(Authenticated(mechanism=mech.name))
            if self._config.quit_after is QuitAfter.AUTH:
                self._begin_quit()
                return
            self._phase = Phase.READY
            return
        self._fatal(
            AuthenticationError(f"authentication failed: {reply.describe()}", reply), quit=True
        )

    # -- transactions ----------------------------------------------------------

    def _advance(self) -> bool:
        """Send what the phase and the connection allow; True if anything
        happened."""
        phase = self._phase
        if phase is Phase.HELLO:
            self._send_hello()
            return True
        if phase is Phase.AUTH:
            mech = self._mechanism
            assert mech is not None
            self._auth_steps = 0
            initial = mech.initial_response()
            # RFC 4954 4: an initial response that would make the AUTH line
            # longer than 512 octets is sent after an empty 334 instead.
            if initial is not None and not Auth.initial_response_fits(mech.name, initial):
                initial = None
            self._send(Auth(mechanism=mech.name, initial_response=initial), _Sent(_Kind.AUTH))
            self._phase = Phase.AUTH_WAIT
            return True
        if phase is not Phase.READY:
            return False
        did = False
        for msg in list(self._active):
            did |= self._pump(msg)
        while self._jobs and self._body_msg is None and self._conn.can_send():
            job = self._jobs[0]
            if isinstance(job, _Msg):
                if len(self._active) >= MAX_MESSAGES_IN_FLIGHT or any(
                    not m.end_sent for m in self._active
                ):
                    break
                self._jobs.popleft()
                did = True
                if self._start_transaction(job):
                    self._active.append(job)
                    self._pump(job)
                continue
            if self._active or self._conn.waiting:
                break  # commands and QUIT go between transactions
            self._jobs.popleft()
            did = True
            if job is None:
                self._begin_quit()
                return True
            ticket, command = job
            self._send(command, _Sent(_Kind.USER, ticket=ticket))
        return did

    def _send_hello(self) -> None:
        name = self._config.local_hostname
        command: Command
        if self._config.lmtp:
            command = Lhlo(domain=name)
        elif self._helo_fallback_used:
            command = Helo(domain=name)
        else:
            command = Ehlo(domain=name)
        self._send(command, _Sent(_Kind.HELLO))
        self._phase = Phase.HELLO_WAIT

    def _start_transaction(self, msg: _Msg) -> bool:
        """Check the message against the server and prepare a transaction.
        Returns False (after reporting the failure) if it cannot be sent."""
        caps = self._capabilities
        assert caps is not None
        m = msg.message
        try:
            self._check_message(msg, caps)
        except (MessageContentError, ConfigurationError) as exc:
            self._fail_message(msg, exc)
            return False
        limit = self._config.max_recipients
        msg.rcpts = []
        while msg.todo and (limit is None or len(msg.rcpts) < limit):
            msg.rcpts.append(msg.todo.popleft())
        msg.sent_rcpts = msg.answered_rcpts = 0
        msg.accepted = []
        msg.positive_rcpts = 0
        msg.mail_reply = None
        msg.mail_sent = msg.data_sent = msg.body_started = msg.end_sent = False
        msg.failed_reply = None
        msg.final_replies = 0
        msg.use_bdat = (
            self._config.chunking and caps.chunking
        ) or m.body_type is BodyType.BINARY_MIME
        if m.data is not None and msg.wire is None:
            # Encoded once per message: the transactions of a split message
            # (452, max_recipients) all send the same data.
            if m.body_type is BodyType.BINARY_MIME:
                # RFC 3030 3: BINARYMIME data has no lines: it goes as it is.
                msg.wire = m.data
            else:
                # _check_message scanned it and refused what is unsendable.
                assert msg.info is not None
                mode = EncodeMode.BDAT if msg.use_bdat else EncodeMode.DATA
                msg.wire = encode_scanned(m.data, msg.info, mode)
        return True

    def _check_message(self, msg: _Msg, caps: Capabilities) -> None:
        m = msg.message
        # RFC 6531 3.4: non-ASCII addresses need SMTPUTF8.
        if m.needs_smtputf8 and not caps.smtputf8:
            raise MessageContentError(
                "the server does not offer SMTPUTF8, needed for this message's non-ASCII addresses"
            )
        if m.wants_dsn and not caps.dsn:
            raise ConfigurationError(
                "DSN parameters were requested but the server does not offer DSN (RFC 3461)"
            )
        if m.requiretls and not (caps.requiretls and self._tls):
            raise ConfigurationError(
                "REQUIRETLS was requested but is not available "
                "(RFC 8689 needs TLS and the REQUIRETLS extension)"
            )
        if m.body_type is BodyType.BINARY_MIME and not (caps.binarymime and caps.chunking):
            raise MessageContentError(
                "BINARYMIME needs the server's BINARYMIME and CHUNKING (RFC 3030)"
            )
        if m.body_type is BodyType.EIGHT_BIT_MIME and not caps.eightbitmime:
            raise MessageContentError("the server does not offer 8BITMIME (RFC 6152)")
        size = m.size_hint
        if m.data is not None and m.body_type is not BodyType.BINARY_MIME:
            info = msg.info if msg.info is not None else scan_body(m.data)
            msg.info = info
            size = info.canonical_size
            if self._config.strict_line_endings and info.has_bare_line_endings:
                raise MessageContentError(
                    "the message has bare CR or LF line endings (strict mode)"
                )
            if info.has_nul:
                raise MessageContentError("the message contains NUL octets")
            if info.has_controls and not self._config.allow_controls:
                raise MessageContentError(
                    "the message contains control characters "
                    "(allow_controls=True lets them through)"
                )
            # RFC 6152 / RFC 5321 2.4: 8-bit content needs 8BITMIME.
            if info.has_8bit and not caps.eightbitmime:
                raise MessageContentError(
                    "the message has 8-bit data and the server does not offer 8BITMIME"
                )
            # RFC 5321 4.5.3.1.6: a text line is at most 998 octets plus CRLF.
            if info.over_limit:
                raise MessageContentError("the message has a line longer than 998 octets")
        elif m.data is not None:
            size = len(m.data)
        # RFC 1870 6: a message larger than the announced SIZE is refused with
        # nothing sent.
        if size is not None and caps.size is not None and size > caps.size:
            raise MessageContentError(
                f"the message ({size} octets) exceeds the server's SIZE limit ({caps.size} octets)"
            )

    def _encoder(self, mode: EncodeMode, caps: Capabilities) -> BodyEncoder:
        return BodyEncoder(
            mode=mode,
            strict_line_endings=self._config.strict_line_endings,
            allow_8bit=caps.eightbitmime or caps.binarymime,
            # RFC 3030 3: BINARYMIME content is arbitrary octets.
            allow_controls=self._config.allow_controls or mode is EncodeMode.BINARY,
        )

    def _pump(self, msg: _Msg) -> bool:
        """Send as much of ``msg``'s transaction as the connection allows."""
        if msg.data_sent:
            return False  # the envelope is out; replies or the body come next
        did = False
        conn = self._conn
        quit_after = self._config.quit_after
        while conn.can_send() and self._phase is Phase.READY:
            if not msg.mail_sent:
                self._send(self._mail_command(msg), _Sent(_Kind.MAIL, msg))
                msg.mail_sent = True
            elif msg.sent_rcpts < len(msg.rcpts):
                if msg.failed_reply is not None or quit_after is QuitAfter.MAIL:
                    break  # replies known (no pipelining): stop sending RCPTs
                rcpt = msg.rcpts[msg.sent_rcpts]
                msg.sent_rcpts += 1
                self._send(self._rcpt_command(msg, rcpt), _Sent(_Kind.RCPT, msg, recipient=rcpt))
            elif not msg.data_sent:
                if quit_after in (QuitAfter.MAIL, QuitAfter.RCPT):
                    break
                all_answered = msg.answered_rcpts == len(msg.rcpts) and msg.mail_reply is not None
                if all_answered and (msg.failed_reply is not None or not msg.accepted):
                    break  # nothing to send data for; the reply handler ends it
                if not all_answered and (
                    (msg.message.data is None and msg.use_bdat)
                    or self._config.require_all_recipients
                ):
                    # A streamed body is only sent once some recipient is known
                    # to be accepted: no gigabytes for a refused envelope. With
                    # require_all_recipients DATA waits for every RCPT reply:
                    # after a 354 the message can no longer be withheld.
                    break
                msg.data_sent = True
                if not msg.use_bdat:
                    self._send(_DATA, _Sent(_Kind.DATA, msg))
                elif msg.wire is not None:
                    self._send_bdat(msg, msg.wire, last=True)
                else:
                    self._begin_stream(msg, EncodeMode.BDAT)
                    return True
            else:
                break
            did = True
        return did

    def _mail_command(self, msg: _Msg) -> Mail:
        caps = self._caps()
        m = msg.message
        size: int | None = None
        if caps.size_supported:
            size = msg.info.canonical_size if msg.info is not None else m.size_hint
            if size is None and m.data is not None:
                size = len(m.data)
        body = m.body_type
        # RFC 6152 2: declare 8-bit content; a streamed body is unknown, so it
        # is declared 8BITMIME whenever the server takes it.
        eight_bit = (msg.info is not None and msg.info.has_8bit) or m.data is None
        if body is None and caps.eightbitmime and eight_bit:
            body = BodyType.EIGHT_BIT_MIME
        return Mail(
            sender=m.sender,
            size=size,
            body=body,
            smtputf8=m.needs_smtputf8,
            ret=m.ret,
            envid=m.envid,
            requiretls=m.requiretls,
        )

    def _rcpt_command(self, msg: _Msg, rcpt: str) -> Rcpt:
        m = msg.message
        return Rcpt(
            recipient=rcpt,
            notify=m.notify,
            orcpt=rcpt if m.orcpt else None,
            utf8=m.needs_smtputf8,
        )

    def _send_bdat(self, msg: _Msg, chunk: bytes, *, last: bool) -> None:
        kind = _Kind.END if last else _Kind.BDAT
        self._send(Bdat(size=len(chunk), last=last), _Sent(kind, msg))
        self._write_data(msg, chunk)
        if last:
            msg.end_sent = True
        else:
            msg.bdat_in_flight += 1

    def _write_data(self, msg: _Msg, data: bytes) -> None:
        if not data:
            return
        self._out += self._conn.send_body(data)
        self._out_stage = Stage.DATA_BLOCK
        msg.size += len(data)
        msg.any_data_sent = msg.body_started = True
        if self._config.transaction_log:
            if self._config.log_message_data:
                for line in (
                    data.split(b"\r\n")[:-1] if data.endswith(b"\r\n") else data.split(b"\r\n")
                ):
                    self._log(Direction.SENT, line)
            else:
                self._log(
                    Direction.SENT, f"[message data: {len(data)} octets]".encode(), summary=True
                )

    def _stream_chunk(self, msg: _Msg, chunk: bytes) -> None:
        encoder = msg.encoder
        assert encoder is not None
        if chunk:
            wire = encoder.feed(chunk)
            if not wire:
                return
            if msg.use_bdat:
                self._send_bdat(msg, wire, last=False)
            else:
                self._write_data(msg, wire)
            return
        tail = encoder.end()
        self._body_msg = None
        msg.streaming = False
        if msg.use_bdat:
            self._send_bdat(msg, tail, last=True)
        else:
            # The encoder's tail ends with the terminator; the connection
            # sends it as the EndOfData command so that its reply is expected.
            self._write_data(msg, tail[:-3])
            self._send(_END_OF_DATA, _Sent(_Kind.END, msg))
            msg.end_sent = True

    # -- transaction replies ---------------------------------------------------

    def _on_mail(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        msg = sent.msg
        assert msg is not None
        msg.mail_reply = reply
        if not reply.is_positive:
            msg.failed_reply = _reply_error(reply, "MAIL")
        if self._config.quit_after is QuitAfter.MAIL:
            self._probe_done(msg)
            return
        self._maybe_end_early(msg)

    def _on_rcpt(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        msg = sent.msg
        assert msg is not None
        rcpt = sent.recipient
        msg.answered_rcpts += 1
        self._events.append(RecipientResult(message_id=msg.id, recipient=rcpt, reply=reply))
        positive = reply.is_positive
        if positive:
            msg.positive_rcpts += 1
        if positive and msg.failed_reply is None:
            msg.accepted.append(rcpt)
            msg.rcpt_replies[rcpt] = reply
        elif reply.code == 452 and msg.accepted:
            # RFC 5321 4.5.3.1.10: "452 too many recipients": send the rest in
            # another transaction (only when this one accepted some, so that
            # a server refusing everyone cannot loop us).
            msg.todo.append(rcpt)
        else:
            msg.statuses[rcpt] = RecipientStatus(
                recipient=rcpt, reply=reply, state=RecipientState.REFUSED
            )
            if self._config.require_all_recipients and msg.failed_reply is None:
                # The message fails as a whole: deliver it to no one.
                msg.failed_reply = _reply_error(reply, "RCPT")
        if msg.answered_rcpts == len(msg.rcpts):
            if self._config.quit_after is QuitAfter.RCPT:
                self._probe_done(msg)
                return
            self._maybe_end_early(msg)
        elif msg.failed_reply is not None and msg.answered_rcpts == msg.sent_rcpts:
            # No further RCPT goes out (require_all_recipients refused one):
            # the transaction ends here, or it would stay open for ever.
            self._maybe_end_early(msg)

    def _maybe_end_early(self, msg: _Msg) -> None:
        """With every envelope reply in and no DATA sent, end a transaction
        that has nothing to deliver (MAIL refused, or no recipient taken)."""
        if msg.data_sent or msg.answered_rcpts < msg.sent_rcpts or msg.mail_reply is None:
            return
        if msg.answered_rcpts < len(msg.rcpts) and msg.failed_reply is None:
            return
        if msg.failed_reply is None and msg.accepted:
            return
        self._send(_RSET, _Sent(_Kind.RSET))
        self._end_transaction(msg)

    def _on_data(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        msg = sent.msg
        assert msg is not None
        if reply.code != 354:
            # RFC 5321 4.1.1.4: no 354, no data. When no RCPT succeeded,
            # the refusal of DATA is a consequence (RFC 2920 3.1), not the
            # cause: the message fails with RecipientsRefusedError.
            if msg.failed_reply is None and msg.accepted:
                msg.failed_reply = _reply_error(reply, "DATA")
            msg.last_reply = reply
            self._send(_RSET, _Sent(_Kind.RSET))
            self._end_transaction(msg)
            return
        if not msg.accepted or msg.failed_reply is not None:
            # RFC 2920 3.1: every RCPT failed but the server still said 354:
            # send the lone terminator, so no message is created.
            self._send(_END_OF_DATA, _Sent(_Kind.END, msg))
            msg.end_sent = True
            return
        if msg.wire is not None:
            self._write_data(msg, msg.wire[:-3])
            self._send(_END_OF_DATA, _Sent(_Kind.END, msg))
            msg.end_sent = True
            return
        self._begin_stream(msg, EncodeMode.DATA)

    def _begin_stream(self, msg: _Msg, mode: EncodeMode) -> None:
        """Ask the adapter for the body, from its start."""
        msg.encoder = self._encoder(mode, self._caps())
        # A message split over several transactions (452, max_recipients)
        # sends its body again: the adapter must start over.
        msg.restart = msg.streamed_before
        msg.streamed_before = True
        msg.streaming = True
        self._body_msg = msg

    def _on_bdat(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        msg = sent.msg
        assert msg is not None
        msg.bdat_in_flight -= 1
        if not reply.is_positive and msg.failed_reply is None:
            # RFC 3030 4.2: after a failed chunk the client must not send more.
            msg.failed_reply = _reply_error(reply, "BDAT")
            msg.last_reply = reply
            if self._body_msg is msg:
                self._body_msg = None
                msg.streaming = False
                self._send(_RSET, _Sent(_Kind.RSET))
                self._end_transaction(msg)

    def _on_end(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        msg = sent.msg
        assert msg is not None
        msg.last_reply = reply
        if not msg.accepted or msg.failed_reply is not None:
            # The lone terminator: the recipients' or MAIL's refusal decides.
            if self._end_complete(sent, event.index):
                # RFC 5321 4.1.1.4: the end of the data clears the transaction
                # whatever the reply. RSET is a courtesy, and never after the
                # next envelope was pipelined: it would abort that transaction.
                if not reply.is_positive and not self._sent and self._conn.can_send():
                    self._send(_RSET, _Sent(_Kind.RSET))
                self._end_transaction(msg)
            return
        if self._conn.lmtp:
            # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
            recipients = [msg.accepted[event.index]] if event.index < len(msg.accepted) else []
        else:
            recipients = list(msg.accepted)
        positive = reply.is_positive
        for rcpt in recipients:
            msg.statuses[rcpt] = RecipientStatus(
                recipient=rcpt,
                reply=reply,
                state=RecipientState.ACCEPTED if positive else RecipientState.REFUSED,
            )
        if not positive and msg.first_refusal is None:
            msg.first_refusal = _reply_error(reply, "DATA")
        if self._end_complete(sent, event.index):
            self._end_transaction(msg)

    def _end_transaction(self, msg: _Msg) -> None:
        if msg.failed_reply is not None:
            for rcpt in msg.rcpts:
                if rcpt not in msg.statuses:
                    reply = msg.failed_reply.reply
                    msg.statuses[rcpt] = RecipientStatus(
                        recipient=rcpt, reply=reply, state=RecipientState.REFUSED
                    )
            if msg.first_refusal is None:
                msg.first_refusal = msg.failed_reply
        if msg in self._active:
            self._active.remove(msg)
        if msg.todo and (
            msg.failed_reply is None or (msg.accepted and not self._config.require_all_recipients)
        ):
            # More recipients (452 or max_recipients): another transaction,
            # before anything else queued.
            self._jobs.appendleft(msg)
            return
        self._finish_message(msg)

    def _finish_message(self, msg: _Msg) -> None:
        result = self._result(msg)
        accepted = result.accepted
        refused = result.rejected
        if accepted and not (refused and self._config.require_all_recipients):
            self._events.append(MessageAccepted(result=result))
            return
        error: SMTPError
        if accepted:
            error = RecipientsRefusedError(dict(refused), next(iter(refused.values())))
        elif msg.first_refusal is not None and msg.first_refusal.command != "RCPT":
            error = msg.first_refusal
        else:
            last = list(refused.values())[-1] if refused else msg.last_reply
            assert last is not None
            error = RecipientsRefusedError(dict(refused), last)
        self._events.append(MessageFailed(result=result, error=error))

    def _probe_done(self, msg: _Msg) -> None:
        """``quit_after`` MAIL or RCPT: report what the envelope got, QUIT."""
        if msg in self._active:
            self._active.remove(msg)
        for rcpt in msg.accepted:
            msg.statuses[rcpt] = RecipientStatus(
                recipient=rcpt, reply=msg.rcpt_replies[rcpt], state=RecipientState.ACCEPTED
            )
        msg.last_reply = msg.mail_reply if msg.failed_reply is not None else None
        if msg.failed_reply is not None:
            # The MAIL refusal decides every recipient it stopped.
            for rcpt in msg.rcpts:
                msg.statuses.setdefault(
                    rcpt,
                    RecipientStatus(
                        recipient=rcpt, reply=msg.failed_reply.reply, state=RecipientState.REFUSED
                    ),
                )
        self._events.append(MessageProbed(result=self._result(msg)))
        self._begin_quit()

    def _result(self, msg: _Msg, *, status_known: bool = True) -> MessageResult:
        ordered = tuple(msg.statuses[r] for r in msg.message.recipients if r in msg.statuses)
        return MessageResult(
            message_id=msg.id,
            sender=msg.message.sender,
            recipients=ordered,
            reply=msg.last_reply,
            size=msg.size,
            data_sent=msg.any_data_sent,
            status_known=status_known,
        )

    def _fail_message(self, msg: _Msg, error: SMTPError) -> None:
        if msg in self._active:
            self._active.remove(msg)
        # After the final dot and before its reply, the server may or may not
        # have taken the message (RFC 5321 4.5.3.2.6): say so.
        result = self._result(msg, status_known=not msg.end_sent)
        self._events.append(MessageFailed(result=result, error=_own_error(error, msg.end_sent)))

    # -- simple replies --------------------------------------------------------

    def _on_rset(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        if not reply.is_positive:
            # RFC 5321 4.1.1.5: RSET must succeed; a server that refuses it is
            # in a state we cannot reason about.
            self._fatal(_reply_error(reply, "RSET"), quit=True)

    def _on_quit(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        self._phase = Phase.CLOSED

    def _on_user(self, sent: _Sent, reply: Reply, event: ReplyReceived) -> None:
        assert event.command is not None
        self._events.append(
            CommandCompleted(ticket=sent.ticket, command=event.command, reply=reply)
        )

    # -- ending ----------------------------------------------------------------

    def _begin_quit(self) -> None:
        if self._phase in (Phase.QUITTING, Phase.CLOSED):
            return
        # Whatever is still queued will not be sent.
        self._drop_jobs(None)
        if self._conn.can_send():
            try:
                self._send(Quit(), _Sent(_Kind.QUIT))
            except LocalProtocolError:
                self._phase = Phase.CLOSED
                return
            self._phase = Phase.QUITTING
        else:
            self._phase = Phase.CLOSED

    def _fatal(self, error: SMTPError, *, quit: bool) -> None:
        """End the session with ``error``: fail everything in flight and
        queued, QUIT if the conversation allows it, then close."""
        if self._error is None:
            self._error = error
        self._body_msg = None
        for msg in list(self._active):
            self._fail_message(msg, error)
        self._active.clear()
        self._drop_jobs(error)
        self._sent.clear()
        # QUIT only where it cannot be confused with anything in flight.
        if (
            quit
            and self._phase not in (Phase.QUITTING, Phase.CLOSED)
            and not self._conn.waiting
            and not self._out
            and self._conn.can_send()
        ):
            try:
                self._send(Quit(), _Sent(_Kind.QUIT))
            except LocalProtocolError:
                pass
            else:
                self._phase = Phase.QUITTING
                return
        # No byte after a fatal error: drop anything not yet written.
        self._out.clear()
        self._phase = Phase.CLOSED

    def _drop_jobs(self, error: SMTPError | None) -> None:
        for job in self._jobs:
            if isinstance(job, _Msg):
                self._events.append(
                    MessageFailed(
                        result=self._result(job),
                        error=_own_error(error, False)
                        if error is not None
                        else LocalProtocolError("the session quit before this message was sent"),
                    )
                )
        self._jobs.clear()

    # -- plumbing --------------------------------------------------------------

    def _send(self, command: Command, sent: _Sent) -> None:
        data_pending = self._out_stage is Stage.DATA_BLOCK and bool(self._out)
        self._out += self._conn.send(command)
        if not data_pending:
            # RFC 5321 4.5.3.2.5: a write carrying message data is a data
            # block, whatever command follows the data in it.
            self._out_stage = command.stage
        if sent.kind is _Kind.END and sent.msg is not None:
            self._ends_unwritten.append(sent.msg)
        self._sent.append(sent)
        if self._logging:
            self._log(Direction.SENT, command.transcript())

    def _log(self, direction: Direction, data: bytes, *, summary: bool = False) -> None:
        if self._config.transaction_log:
            self.transcript.append(TranscriptEntry(direction=direction, data=data, summary=summary))

    def _log_reply(self, reply: Reply) -> None:
        if self._config.transaction_log:
            for line in reply.to_bytes().split(b"\r\n")[:-1]:
                self._log(Direction.RECEIVED, line)

    def _caps(self) -> Capabilities:
        caps = self._capabilities
        assert caps is not None
        return caps

    def _failed_stage(self) -> Stage:
        """The stage of a failed read or write, for its error.

        A Write that did not complete never delivered its final dot or BDAT
        LAST: those messages are not in the unknown state of RFC 5321
        4.5.3.2.6, they were not sent.
        """
        if self._writing is None:
            return self._current_stage()
        stage, ends = self._writing
        for msg in ends:
            msg.end_sent = False
        return stage

    def _current_stage(self) -> Stage:
        if self._conn.waiting:
            first = self._conn.oldest
            return Stage.GREETING if first is None else first.stage
        if self._phase is Phase.TLS_HANDSHAKE:
            return Stage.TLS_HANDSHAKE
        if self._body_msg is not None:
            return Stage.DATA_BLOCK
        return self._out_stage

    def _check_open(self) -> None:
        if self._phase in (Phase.QUITTING, Phase.CLOSED) or self._quit_queued:
            raise LocalProtocolError("the session is closing or closed")

    def _new_id(self) -> int:
        ident = self._next_id
        self._next_id += 1
        return ident


# Commands the session sequences itself; ``Session.command`` refuses them.
_SESSION_OWNED = frozenset(
    {
        "EHLO",
        "HELO",
        "LHLO",
        "STARTTLS",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "BDAT",
        "QUIT",
        "RSET",
        ".",
    }
)

_Handler = Callable[[Session, _Sent, Reply, ReplyReceived], None]
_HANDLERS: dict[_Kind, _Handler] = {
    _Kind.GREETING: Session._on_greeting,
    _Kind.HELLO: Session._on_hello,
    _Kind.STARTTLS: Session._on_starttls,
    _Kind.AUTH: Session._on_auth,
    _Kind.MAIL: Session._on_mail,
    _Kind.RCPT: Session._on_rcpt,
    _Kind.DATA: Session._on_data,
    _Kind.BDAT: Session._on_bdat,
    _Kind.END: Session._on_end,
    _Kind.RSET: Session._on_rset,
    _Kind.QUIT: Session._on_quit,
    _Kind.USER: Session._on_user,
}


def _own_error(error: SMTPError, end_sent: bool) -> SMTPError:
    """The error to report for one message when the session fails.

    An error that leaves a delivery status unknown (after a final dot) is
    only true of the message whose dot went out: the others, queued or with
    only their envelope sent, were certainly not delivered.
    """
    if end_sent or not getattr(error, "status_unknown", False):
        return error
    reason = str(error).removesuffix(" (delivery status unknown)")
    lost = ConnectionLostError(
        f"the session failed before this message's data was complete: {reason}",
        stage=Stage.MAIL,
        operation=getattr(error, "operation", None),
        errno=getattr(error, "errno", None),
    )
    lost.__cause__ = error
    return lost


def _reply_error(reply: Reply, command: str) -> ReplyError:
    cls = TemporaryReplyError if reply.is_transient else PermanentReplyError
    return cls(reply, command)


def _command_name(command: Command | None) -> str:
    return "greeting" if command is None else command.verb
