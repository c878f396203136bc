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
Each message is one or more mail transactions (a 452, ``max_recipients``);
each transaction is a small state machine of its own, :class:`TxnState`,
whose every move is a row of ``_TXN_MOVES``::

    ENVELOPE --DATA--> DATA_WAIT --354--> BODY --end--> END_SENT --answered--> DONE
        |  \\--BDAT chunk--> BODY                  ^         \\--refused--> ABORTED
        |   \\--BDAT LAST (in-memory body)---------/
        \\--nothing to send (MAIL or every RCPT refused, or withheld)--> ABORTED
    DATA_WAIT, BODY --refused--> ABORTED

Every command goes to the :class:`Connection` with a tag (its transaction,
or a user's ticket); every reply comes back with that tag: the connection's
FIFO is the only record of what is in flight.

Outcome truth. What the server did with each recipient is recorded as its
replies arrive, and a message's result is built once, when its last
transaction ends. The server's own transaction is tracked too: after a
refused DATA or BDAT (RFC 3030 4.2), or a BDAT LAST not yet answered, a
server may keep the transaction open (Exim, Dovecot) or reset it (Postfix).
Either reading is allowed, so the session sends RSET before the next MAIL
whenever the server's transaction is not known to be closed, pipelined with
that MAIL (no extra round trip). A message's status is unknown only when its
end of data went out and no well-formed final reply came
(RFC 5321 4.5.3.2.6).

Pipelining: the envelope, and with CHUNKING an in-memory body as one BDAT
LAST, go out in one write; the end of one message's data and the next
message's envelope go out together (RFC 2920 3.1 lets message content open a
group). With CHUNKING no 354 stands between messages, so several
transactions are on the wire at once (``MAX_TXNS_IN_FLIGHT``, and at most
``MAX_BYTES_IN_FLIGHT`` of their data, which keeps unread replies far below
any socket buffer: the pipelining deadlock of RFC 2920 4).

Fatal errors (protocol violations, timeouts, EOF, TLS failures under a
required policy, AUTH failures) fail every message in flight or queued, each
with its own result, send QUIT where the conversation still allows it, and
end with ``Close``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from types import MethodType
from typing import Final, final

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
    Expn,
    Helo,
    Lhlo,
    Mail,
    Noop,
    Quit,
    RawCommand,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
    mail_line,
    rcpt_line,
)
from ._config import OutgoingMessage, QuitAfter, SessionConfig, TLSPolicy
from ._connection import NEED_DATA, Connection, ConnectionClosed, OneHandler, OnReply, Pending
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
    IDLE,
    Action,
    Authenticated,
    Close,
    CommandCompleted,
    Direction,
    Event,
    GreetingReceived,
    MessageFailed,
    MessageProbed,
    MessageResult,
    NeedBody,
    RecipientResult,
    RecipientState,
    RecipientStatus,
    ServerReady,
    ServiceClosing,
    SessionClosed,
    StartTLSAction,
    TLSEstablished,
    TranscriptEntry,
    build_message_accepted,
    build_message_result,
    build_read,
    build_recipient_status,
    build_write,
)
from ._extensions import Capabilities
from ._message import BodyEncoder, BodyInfo, EncodeMode, encode_scanned, scan_body
from ._redact import Redactor
from ._replies import Reply

__all__ = ["Phase", "Session", "TxnState"]

#: How much body the session asks for at a time (NeedBody.size_hint).
BODY_CHUNK_SIZE = 64 * 1024
#: Streamed BDAT chunks sent before the session reads their replies: bounds
#: the unread replies so neither side can block on a full socket buffer.
MAX_BDAT_IN_FLIGHT = 8
#: Transactions with replies outstanding at once, and the message data they
#: may have on the wire together (see the module docstring).
MAX_TXNS_IN_FLIGHT = 16
MAX_BYTES_IN_FLIGHT = 256 * 1024
#: Message data at least this long goes out as a Write of its own, without
#: being copied into the output buffer (a 50 MB in-memory body costs no
#: second 50 MB).
BIG_WRITE = 64 * 1024
#: An in-memory body at least this long that needs encoding (dot-stuffing,
#: line endings) is encoded chunk by chunk as it is written, like a streamed
#: one, instead of into a second whole copy.
BIG_BODY = 1024 * 1024


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


class TxnState(enum.Enum):
    """Where one mail transaction stands (the module docstring draws it)."""

    __hash__ = object.__hash__  # identity: C speed in the move table

    ENVELOPE = enum.auto()  # MAIL and RCPTs out or being answered; no data command yet
    DATA_WAIT = enum.auto()  # DATA sent, 354 awaited
    BODY = enum.auto()  # message data going out (after 354, or BDAT chunks)
    END_SENT = enum.auto()  # final dot or BDAT LAST out; the final reply(ies) awaited
    DONE = enum.auto()  # the end of data was answered: the server closed the transaction
    ABORTED = enum.auto()  # ended without an answered end of data (RSET before the next MAIL)


class _In(enum.Enum):
    """What happens to a transaction: the columns of ``_TXN_MOVES``."""

    __hash__ = object.__hash__

    SEND_DATA = enum.auto()
    SEND_CHUNK = enum.auto()  # a BDAT chunk that is not the last
    SEND_END = enum.auto()  # the final dot or BDAT LAST
    GOT_354 = enum.auto()
    REFUSED = enum.auto()  # DATA, a BDAT chunk or BDAT LAST refused
    ANSWERED = enum.auto()  # every final reply to the end of data is in
    NOTHING_TO_SEND = enum.auto()  # envelope done and no recipient to send data to


T = TxnState
_TXN_MOVES: dict[tuple[TxnState, _In], TxnState] = {
    # RFC 5321 3.3: MAIL, RCPT..., then DATA; RFC 3030 2: or BDAT instead.
    (T.ENVELOPE, _In.SEND_DATA): T.DATA_WAIT,
    (T.ENVELOPE, _In.SEND_CHUNK): T.BODY,
    # An in-memory body goes as one BDAT LAST, pipelined behind the envelope.
    (T.ENVELOPE, _In.SEND_END): T.END_SENT,
    # MAIL refused, every RCPT refused, or require_all_recipients withheld it.
    (T.ENVELOPE, _In.NOTHING_TO_SEND): T.ABORTED,
    # RFC 5321 4.1.1.4: message data follows a 354 only.
    (T.DATA_WAIT, _In.GOT_354): T.BODY,
    (T.DATA_WAIT, _In.REFUSED): T.ABORTED,
    (T.BODY, _In.SEND_CHUNK): T.BODY,
    (T.BODY, _In.SEND_END): T.END_SENT,
    # RFC 3030 4.2: after a refused chunk no further chunk may be sent; the
    # server may or may not keep the transaction.
    (T.BODY, _In.REFUSED): T.ABORTED,
    (T.END_SENT, _In.REFUSED): T.ABORTED,
    (T.END_SENT, _In.ANSWERED): T.DONE,
    # Replies to BDAT chunks or BDAT LAST still due after a refusal.
    (T.ABORTED, _In.REFUSED): T.ABORTED,
    (T.ABORTED, _In.ANSWERED): T.ABORTED,
}
del T


# The enum members the per-message paths test, as module constants. Python
# 3.11 looks a member up on its class (``Phase.READY``) through the hook of
# EnumType.__getattr__, at about 15 times the cost of a global: the ~75 such
# lookups a message made a tenth of the core's instructions (measured with
# ``python -m bench.instructions``). Python 3.12 dropped the hook.
_CLOSED: Final = Phase.CLOSED
_READY: Final = Phase.READY
_HELLO: Final = Phase.HELLO
_AUTH: Final = Phase.AUTH
_TLS_HANDSHAKE: Final = Phase.TLS_HANDSHAKE
_QUITTING: Final = Phase.QUITTING
_ENVELOPE: Final = TxnState.ENVELOPE
_ABORTED: Final = TxnState.ABORTED
_SEND_DATA: Final = _In.SEND_DATA
_SEND_END: Final = _In.SEND_END
_GOT_354: Final = _In.GOT_354
_ANSWERED: Final = _In.ANSWERED
_STAGE_DATA_BLOCK: Final = Stage.DATA_BLOCK
_STAGE_MAIL: Final = Stage.MAIL
_STAGE_RCPT: Final = Stage.RCPT
_STAGE_DATA_INIT: Final = Stage.DATA_INIT
_ACCEPTED: Final = RecipientState.ACCEPTED
_BINARY_MIME: Final = BodyType.BINARY_MIME
_EIGHT_BIT_MIME: Final = BodyType.EIGHT_BIT_MIME
_MODE_DATA: Final = EncodeMode.DATA
_MODE_BDAT: Final = EncodeMode.BDAT
_AFTER_MAIL: Final = QuitAfter.MAIL
_AFTER_RCPT: Final = QuitAfter.RCPT


# Commands without arguments are immutable values: one of each serves every
# transaction. ``_MAIL`` and ``_RCPT`` stand for the lines the session builds
# itself (``Connection.push``): only their type, verb and stage are read.
_DATA: Final = Data()
_DATA_LINE: Final = _DATA.to_bytes()
_END_OF_DATA: Final = EndOfData()
_RSET: Final = Rset()
_MAIL: Final = Mail(sender="")
_RCPT: Final = Rcpt(recipient="postmaster")


def _is_too_many_recipients(reply: Reply) -> bool:
    """RFC 5321 4.5.3.1.10: "452 too many recipients"; RFC 821 listed 552
    for it, and "clients SHOULD treat a 552 code in this case as a temporary
    ... failure": a 552 with RFC 3463's 5.5.3 ("too many recipients"), or
    without an enhanced code but saying so."""
    code = reply.code
    if code == 452:
        return True
    if code != 552:
        return False
    enhanced = reply.enhanced_code
    if enhanced is not None:
        return enhanced == "5.5.3"
    return b"too many recipients" in b" ".join(reply.lines).lower()


class _Msg:
    """One message across its transactions; its result is built from
    ``statuses`` when the last transaction ends."""

    __slots__ = (
        "data_sent",
        "id",
        "in_memory",
        "info",
        "last_reply",
        "mail_line",
        "message",
        "refusal",
        "size",
        "statuses",
        "streamed_before",
        "todo",
        "use_bdat",
        "utf8",
        "wire",
    )

    def __init__(self, ident: int, message: OutgoingMessage) -> None:
        self.id = ident
        self.message = message
        self.todo: deque[str] = deque(message.recipients)  # not yet in any transaction
        self.statuses: dict[str, RecipientStatus] = {}
        self.info: BodyInfo | None = None
        self.wire: bytes | None = None  # the encoded in-memory body
        self.in_memory = False  # a large in-memory body, encoded as it is written
        self.mail_line = b""
        self.use_bdat = False
        self.utf8 = message.needs_smtputf8
        self.size = 0  # octets of data written
        self.data_sent = False
        self.last_reply: Reply | None = None  # the last final reply to its data
        self.streamed_before = False  # an earlier transaction streamed the body
        self.refusal: ReplyError | None = None  # the refusal that decides its error


class _Txn:
    """One mail transaction of a message (the tag of each of its commands)."""

    __slots__ = (
        "accepted",
        "answered",
        "bdat_in_flight",
        "data_refused",
        "deferred",
        "encoder",
        "end_at",
        "end_unwritten",
        "mail_refused",
        "msg",
        "offset",
        "positive",
        "rcpt_replies",
        "rcpts",
        "restart",
        "sent",
        "state",
        "wire_size",
        "withheld",
    )

    def __init__(self, msg: _Msg, rcpts: list[str]) -> None:
        self.msg = msg
        self.state = _ENVELOPE
        self.rcpts = rcpts
        self.sent = -1  # RCPTs sent (-1: not even the MAIL yet)
        self.answered = 0  # RCPT replies in
        self.accepted: list[str] = []  # recipients accepted, in order
        self.positive = 0  # 2yz RCPT replies, even after a refused MAIL (LMTP counts them)
        self.rcpt_replies: dict[str, Reply] = {}  # the accepted ones' replies
        self.deferred: list[str] = []  # 452: for a further transaction
        self.mail_refused: Reply | None = None
        self.withheld = False  # require_all_recipients: a RCPT was refused
        self.data_refused: Reply | None = None
        self.end_unwritten = False  # the write holding its end failed
        self.end_at = 0  # octets of that write up to its end's last one
        self.bdat_in_flight = 0
        self.encoder: BodyEncoder | None = None  # a streamed body's
        self.restart = False  # the next NeedBody starts the body over
        self.offset = 0  # of an in-memory body encoded as it is written
        self.wire_size = 0

    def move(self, what: _In) -> None:
        new = _TXN_MOVES.get((self.state, what))
        if new is None:
            raise LocalProtocolError(f"transaction cannot {what.name} in state {self.state.name}")
        self.state = new

    @property
    def envelope_done(self) -> bool:
        """Every RCPT that will be sent was sent and answered."""
        return self.answered == self.sent and (
            self.sent == len(self.rcpts) or self.withheld or self.mail_refused is not None
        )

    @property
    def end_out(self) -> bool:
        """Nothing more of this transaction goes out before a next MAIL."""
        return self.state in _ENDED


_ENDED = frozenset({TxnState.END_SENT, TxnState.DONE, TxnState.ABORTED})


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
        # Writes ready before what _out holds: (data, stage, ends in it).
        self._writes: deque[tuple[bytes, Stage, list[_Txn]]] = deque()
        self._out_stage = Stage.GREETING
        self._events: deque[Event] = deque()
        self._jobs: deque[_Msg | tuple[int, Command] | None] = deque()  # None = QUIT
        self._active: list[_Txn] = []  # transactions under way, oldest first
        self._inflight_bytes = 0  # in-memory data of the active transactions
        self._body_txn: _Txn | None = None  # the transaction whose body the adapter feeds
        # RFC 3030 4.2 and RFC 5321 4.1.1.5: the server's transaction may be
        # open (a MAIL went out since the last RSET, end of data or EHLO that
        # is known to close it): RSET goes before the next MAIL.
        self._rset_due = False
        self._latest: _Txn | None = None  # the transaction whose MAIL went out last
        self._capabilities: Capabilities | None = None
        self._mechanism: SASLMechanism | None = None
        # Hides what AUTH sent from every reply, error and log (RFC 4954 4:
        # a server may echo it).
        self._redactor = Redactor()
        self._auth_steps = 0
        self._auth_error: AuthenticationError | None = None
        self._helo_fallback_used = False
        self._tried_starttls = False
        self._next_id = 1
        self._quit_queued = False
        self._error: SMTPError | None = None
        self._close_reported = False
        self._unpaired = 0  # replies and events that answer no command
        # Bytes (or EOF) were received since the connection last had no
        # complete reply: only then can there be a reply to process.
        self._unparsed = True
        # Transactions whose end (final dot, BDAT LAST) is in _out, not
        # written yet; and, while a Write is with the adapter, that Write's
        # stage, ends and size.
        self._ends_unwritten: list[_Txn] = []
        self._writing: tuple[Stage, list[_Txn], int] | None = None
        self.transcript: list[TranscriptEntry] = []
        self._logging = config.transaction_log  # config is frozen and read-only
        self._rcpt_events = config.recipient_events
        self._quit_after = config.quit_after
        # Each reply's handler, by the class of the command it answers: the
        # command's own (an AUTH exchange's replies, and any reply while a
        # secret is to be hidden or a transcript kept, through _on_reply).
        self._handlers: Mapping[type[Command] | type[None], OnReply] = (
            OneHandler(self._on_reply)
            if self._logging
            else {
                cls: self._on_reply if cls in _SASL_COMMANDS else MethodType(handler, self)
                for cls, handler in _HANDLERS.items()
            }
        )
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
        return self._phase is _CLOSED

    @property
    def busy(self) -> bool:
        """True while messages or commands are queued or in flight."""
        return bool(self._jobs or self._active or self._conn.waiting)

    # -- what the caller asks --------------------------------------------------

    def submit(self, message: OutgoingMessage) -> int:
        """Queue a message; returns its id (events carry it)."""
        self._check_open()
        if not isinstance(message, OutgoingMessage):
            raise LocalProtocolError(
                f"submit() takes an OutgoingMessage, not {type(message).__name__} "
                "(build one with OutgoingMessage.build)"
            )
        if self._quit_after is not None and self._quit_after.before_mail:
            raise ConfigurationError(
                f"quit_after={self._quit_after.value} stops before any message is sent"
            )
        msg = _Msg(self._new_id(), message)
        self._jobs.append(msg)
        return msg.id

    def command(self, command: Command) -> int:
        """Queue a command (NOOP, VRFY, EXPN, a raw extension command) to be
        sent between transactions; returns a ticket (``CommandCompleted``)."""
        self._check_open()
        if not isinstance(command, Command):
            raise LocalProtocolError(
                f"command() takes a command object such as Noop() or Vrfy(argument=...), "
                f"not {type(command).__name__}"
            )
        if command.verb in _SESSION_OWNED:
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
        if self._phase is _CLOSED:
            return
        if self._phase is _TLS_HANDSHAKE:
            # RFC 3207 4.2: after its 220 the server waits for the handshake;
            # plaintext then is injected, and EOF means there will be no TLS.
            if data:
                error: SMTPError = RemoteProtocolError("server sent data before the TLS handshake")
            else:
                error = TLSError("the server closed the connection before the TLS handshake")
            self._fatal(error, quit=False)
            return
        self._unparsed = True
        try:
            self._conn.receive_data(data)
        except RemoteProtocolError as exc:
            self._fatal(exc, quit=False)

    def timeout_expired(self, seconds: float | None = None, *, written: int | None = None) -> None:
        """The read (or write) asked for by the last action timed out.

        The connection is closed without QUIT: a late reply must never be
        paired with a later command. For a Write, ``written`` is as for
        :meth:`connection_lost`, and so is the handling of replies received
        before it.
        """
        if self._phase is Phase.CLOSED:
            return
        stage = self._failed_stage(written)
        if self._answered_before_failing():
            return
        self._fatal(SMTPTimeoutError(stage, seconds), quit=False)

    def connection_lost(
        self,
        operation: str,
        errno: int | None = None,
        detail: str = "",
        *,
        written: int | None = None,
    ) -> None:
        """The adapter's I/O failed (reset, broken pipe...).

        When the last action was a Write that did not complete, ``written``
        is how many of its leading octets may have left (at most: the count
        the OS took), or None if the adapter cannot tell. A message whose
        final dot or ``BDAT LAST`` chunk is among those octets may have been
        taken by the server: its status is unknown (RFC 5321 4.5.3.2.6),
        not "not sent". With None, any octet but the Write's last may have
        left (a Write that failed did not deliver its last octet).

        Complete replies given to :meth:`receive_data` before this call are
        handled first: a Write can fail after the server answered what came
        before it, and an adapter that reads what is already there without
        waiting lets those messages be reported accepted or refused, not
        unknown (and a 421 say why the connection went).
        """
        if self._phase is Phase.CLOSED:
            return
        stage = self._failed_stage(written)
        if self._answered_before_failing():
            return
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
        txn = self._body_txn
        if txn is None or txn.msg.id != message_id:
            raise LocalProtocolError(f"no body is expected for message {message_id}")
        txn.restart = False
        try:
            self._stream_chunk(txn, chunk)
        except MessageContentError as exc:
            self.body_failed(message_id, exc)

    def body_failed(self, message_id: int, error: SMTPError) -> None:
        """The body being streamed cannot be completed (unreadable file, or
        content found unsendable halfway through).

        There is no way to abort DATA cleanly: the message fails and the
        connection is closed without the final dot, so the server discards
        what it got (RFC 5321 4.1.1.4: only the terminator completes it).
        """
        txn = self._body_txn
        if txn is None or txn.msg.id != message_id:
            raise LocalProtocolError(f"no body is expected for message {message_id}")
        self._body_txn = None
        self._fail_txn(txn, error)
        self._fatal(error, quit=False)

    # -- what the adapter asks -------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Drain the events reported since the last call."""
        while self._events:
            yield self._events.popleft()

    def take_transcript(self) -> list[TranscriptEntry]:
        """The transcript lines logged since the last call, which the
        session then forgets (``transcript`` starts again, empty).

        For an adapter that passes each line on as it comes (to a log): a
        long-lived session then holds no history.
        """
        taken, self.transcript = self.transcript, []
        return taken

    def next_action(self) -> Action:
        """What the adapter must do next."""
        self._writing = None  # the last Write (if any) completed
        while True:
            if self._writes:
                data, stage, ends = self._writes.popleft()
                self._writing = (stage, ends, len(data))
                return build_write(data, stage)
            if self._out:
                # Let queued work join this write first: the end of one
                # message's data and the next envelope go out together
                # (RFC 2920 3.1), so a queue costs one round trip a message.
                if self._phase is _READY and self._body_txn is None and self._advance():
                    continue
                data = bytes(self._out)
                self._out.clear()
                self._writing = (self._out_stage, self._ends_unwritten, len(data))
                self._ends_unwritten = []
                return build_write(data, self._out_stage)
            if self._phase is _CLOSED:
                if not self._close_reported:
                    self._close_reported = True
                    self._events.append(SessionClosed(error=self._error))
                return Close()
            if self._phase is _TLS_HANDSHAKE:
                return StartTLSAction(server_hostname=self._config.server_hostname)
            if self._process_replies():
                continue
            txn = self._body_txn
            if txn is not None:
                if txn.bdat_in_flight < MAX_BDAT_IN_FLIGHT and (
                    not txn.msg.use_bdat or self._conn.can_send()
                ):
                    body = txn.msg.message.data
                    if body is not None:
                        # A large in-memory body: its next piece, encoded here.
                        start = 0 if txn.restart else txn.offset
                        chunk = body[start : start + BODY_CHUNK_SIZE]
                        txn.offset = start + len(chunk)
                        self.send_body(txn.msg.id, chunk)
                        continue
                    return NeedBody(
                        message_id=txn.msg.id, size_hint=BODY_CHUNK_SIZE, restart=txn.restart
                    )
            elif self._advance():
                continue
            awaited = self._conn.waiting_stage()
            if awaited is not None:
                return build_read(awaited, self._conn.delivered + self._unpaired)
            return IDLE

    # -- replies ---------------------------------------------------------------

    def _process_replies(self) -> bool:
        """Handle every complete reply buffered; True if anything happened."""
        if not self._unparsed:
            return False
        conn = self._conn
        before = conn.delivered + self._unpaired  # every reply and event counts
        while self._phase is not _CLOSED:
            try:
                got = conn.deliver(self._handlers, self._on_reply)
            except RemoteProtocolError as exc:
                self._fatal(exc, quit=False)
                return True
            if got is None:
                continue  # the session closed: the loop ends
            if got is NEED_DATA:
                self._unparsed = False
                break
            self._unpaired += 1
            self._on_unpaired(got)
        return conn.delivered + self._unpaired != before

    def _close(self) -> None:
        self._phase = _CLOSED
        self._conn.halt()  # no reply is handled after this

    def _careful(self) -> None:
        """From now on every reply goes through :meth:`_on_reply` (a secret
        to hide, or a transcript to keep)."""
        self._handlers = OneHandler(self._on_reply)

    def _on_reply(self, pending: Pending, received: Reply, index: int, final: bool) -> None:
        """A reply with what the common case skips: logs, events and errors
        get it with any secret the server echoed hidden (the AUTH handler
        decodes challenges from the reply as received); 421 closes."""
        command = pending.command
        redactor = self._redactor
        reply = redactor.reply(received) if redactor.active else received
        sasl = type(command) in _SASL_COMMANDS
        if self._logging:
            mech = self._mechanism
            self._log_reply(mech.transcript_reply(reply) if sasl and mech is not None else reply)
        if reply.code == 421 and type(command) is not Quit:
            self._on_closing(pending, reply, index, final)
        elif sasl:
            self._on_auth(pending, received, index, final)
        else:
            _HANDLERS[type(command)](self, pending, reply, index, final)

    def _on_unpaired(self, got: ServiceClosing | ConnectionClosed) -> None:
        """An event that answers no command: the server closing unasked
        (RFC 5321 3.8) or the connection's end."""
        if isinstance(got, ServiceClosing):
            closing = self._redactor.reply(got.reply)
            self._log_reply(closing)
            self._events.append(got if closing is got.reply else ServiceClosing(reply=closing))
            self._fatal(
                TemporaryReplyError(closing, "session", "server closing: " + closing.describe()),
                quit=False,
            )
        else:
            assert isinstance(got, ConnectionClosed)
            self._on_eof(got)

    def _on_closing(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        """RFC 5321 3.8: 421 to any command: the server is closing. A
        transaction's command takes it as its refusal first (a 421 to the
        end of data is an answer: that message's fate is known)."""
        command = pending.command
        self._events.append(ServiceClosing(reply=reply))
        txn = pending.tag
        if isinstance(txn, _Txn):
            if pending.final_data:
                _HANDLERS[type(command)](self, pending, reply, index, final)
            elif type(command) is Rcpt:
                rcpt = txn.rcpts[txn.answered]
                txn.answered += 1
                txn.msg.statuses[rcpt] = build_recipient_status(rcpt, reply, RecipientState.REFUSED)
        if self._phase is not Phase.CLOSED:
            name = "greeting" if command is None else command.verb
            self._fatal(TemporaryReplyError(reply, name), quit=False)

    def _on_eof(self, event: ConnectionClosed) -> None:
        waiting = [c for c in event.outstanding if type(c) is not Quit]
        if self._phase is Phase.QUITTING and not waiting:
            # The server closed after (or instead of) its 221: a clean end.
            self._close()
            return
        # The oldest outstanding command is the one that was waiting.
        if event.outstanding:
            first = event.outstanding[0]
            stage = Stage.GREETING if first is None else first.stage
        else:
            stage = self._current_stage()
        self._fatal(
            ConnectionLostError(event.describe(), stage=stage, operation="read"), quit=False
        )

    def _on_greeting(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
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

    def _on_hello(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        command = pending.command
        if not reply.is_positive:
            self._hello_refused(command, reply)
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
                self._send(StartTLS())
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

    def _hello_refused(self, command: Command | None, reply: Reply) -> None:
        # RFC 5321 4.1.4: a server that does not know EHLO answers 500/502;
        # the client may then fall back to HELO. Never when TLS is required
        # (HELO cannot negotiate STARTTLS) and never in LMTP (RFC 2033 4.1).
        unknown = isinstance(command, Ehlo) and reply.code in (500, 502)
        tls_required = self._config.tls is TLSPolicy.STARTTLS and not self._tls
        if unknown and tls_required:
            self._fatal(
                TLSRequiredError(
                    "TLS is required but the server does not speak ESMTP (no STARTTLS)", reply
                ),
                quit=True,
            )
        elif unknown and self._config.helo_fallback:
            self._helo_fallback_used = True
            self._phase = Phase.HELLO
        else:
            self._fatal(_reply_error(reply, _command_name(command)), quit=True)

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
        self._redactor.add(*self._mechanism.secrets())
        if self._redactor.active:
            self._careful()
        self._phase = Phase.AUTH

    def _on_starttls(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
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

    def _on_auth(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
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
                self._send(AuthCancel())
                return
            self._redactor.add(*mech.secrets())
            if self._redactor.active:
                self._careful()
            self._send(AuthResponse(data=response, shown=mech.transcript_response(response)))
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

    # -- transactions: sending -------------------------------------------------

    def _advance(self) -> bool:
        """Send what the phase and the connection allow; True if anything
        happened."""
        phase = self._phase
        if phase is _HELLO:
            self._send_hello()
            return True
        if phase is _AUTH:
            self._send_auth()
            return True
        conn = self._conn
        if phase is not _READY or not conn.can_send():
            return False  # (everything below sends, which needs can_send)
        did = False
        active = self._active
        if active and active[-1].state is _ENVELOPE:
            # Only the newest transaction can still have envelope to send:
            # a MAIL goes out once every earlier transaction's end is out.
            did = self._pump(active[-1])
        jobs = self._jobs
        while jobs and self._body_txn is None and conn.can_send():
            job = jobs[0]
            if type(job) is _Msg:
                if active and (
                    not active[-1].end_out
                    or len(active) >= MAX_TXNS_IN_FLIGHT
                    or self._inflight_bytes >= MAX_BYTES_IN_FLIGHT
                ):
                    break
                jobs.popleft()
                did = True
                txn = self._start_transaction(job)
                if txn is not None:
                    active.append(txn)
                    self._inflight_bytes += txn.wire_size
                    self._pump(txn)
                continue
            if active or conn.waiting:
                break  # commands and QUIT go between transactions
            jobs.popleft()
            did = True
            if job is None:
                self._begin_quit()
                return True
            assert isinstance(job, tuple)
            ticket, command = job
            self._send(command, ticket)
        return did

    def _send_auth(self) -> None:
        mech = self._mechanism
        assert mech is not None
        self._auth_steps = 0
        initial = mech.initial_response()
        # RFC 4954 4: an initial response that would make the AUTH line
        # longer than 512 octets is sent after an empty 334 instead.
        if initial is not None and not Auth.initial_response_fits(mech.name, initial):
            initial = None
        shown = None if initial is None else mech.transcript_response(initial)
        self._send(Auth(mechanism=mech.name, initial_response=initial, shown=shown))
        self._phase = Phase.AUTH_WAIT

    def _send_hello(self) -> None:
        name = self._config.local_hostname
        command: Command
        if self._config.lmtp:
            command = Lhlo(domain=name)
        elif self._helo_fallback_used:
            command = Helo(domain=name)
        else:
            command = Ehlo(domain=name)
        self._send(command)
        # RFC 5321 4.1.4: EHLO (or HELO) also clears any transaction.
        self._rset_due = False
        self._phase = Phase.HELLO_WAIT

    def _start_transaction(self, msg: _Msg) -> _Txn | None:
        """The next transaction of ``msg`` (checked against the server the
        first time); None, after reporting the failure, if it cannot be sent."""
        if not msg.mail_line:
            try:
                self._prepare(msg, self._caps())
            except (MessageContentError, ConfigurationError, InvalidInputError) as exc:
                self._finish(msg, exc)
                return None
        limit = self._config.max_recipients
        todo = msg.todo
        if limit is None or len(todo) <= limit:
            rcpts = list(todo)
            todo.clear()
        else:
            rcpts = [todo.popleft() for _ in range(limit)]
        txn = _Txn(msg, rcpts)
        if msg.wire is not None:
            txn.wire_size = len(msg.wire)
        return txn

    def _prepare(self, msg: _Msg, caps: Capabilities) -> None:
        """Check the message against the server once, and encode what goes on
        the wire once: the MAIL line and an in-memory body (a message split
        over several transactions sends the same data in each)."""
        m = msg.message
        self._check_message(msg, caps)
        msg.use_bdat = (self._config.chunking and caps.chunking) or (m.body_type is _BINARY_MIME)
        if m.data is not None:
            if m.body_type is _BINARY_MIME:
                # RFC 3030 3: BINARYMIME data has no lines: it goes as it is.
                msg.wire = m.data
            else:
                # _check_message scanned it and refused what is unsendable.
                info = msg.info
                assert info is not None
                data = m.data
                if len(data) >= BIG_BODY and (
                    info.has_bare_line_endings
                    or not data.endswith(b"\n")
                    or (not msg.use_bdat and (data.startswith(b".") or b"\n." in data))
                ):
                    # Encoded chunk by chunk as it goes out (msg.wire stays
                    # None): no second copy of a large body.
                    msg.in_memory = True
                else:
                    mode = _MODE_BDAT if msg.use_bdat else _MODE_DATA
                    # Without the terminator: the dot goes as EndOfData.
                    msg.wire = encode_scanned(data, info, mode, terminator=False)
        msg.mail_line = self._mail_line(msg, caps)

    def _check_message(self, msg: _Msg, caps: Capabilities) -> None:
        m = msg.message
        # RFC 6531 3.4: non-ASCII addresses need SMTPUTF8.
        if msg.utf8 and not caps.smtputf8:
            raise MessageContentError(
                "the server does not offer SMTPUTF8, needed for this message's non-ASCII addresses"
            )
        if m.wants_dsn and not caps.dsn:
            raise ConfigurationError(
                "DSN parameters were requested but the server does not offer DSN (RFC 3461)"
            )
        if m.requiretls:
            # RFC 8689 4.2.1: REQUIRETLS needs the extension and a TLS session
            # whose certificate was verified (the client MUST NOT relay it
            # over an unauthenticated channel).
            if not (caps.requiretls and self._tls):
                raise ConfigurationError(
                    "REQUIRETLS was requested but is not available "
                    "(RFC 8689 needs TLS and the REQUIRETLS extension)"
                )
            if not self._config.tls_verified:
                raise ConfigurationError(
                    "REQUIRETLS was requested but the server's certificate is not verified "
                    "(RFC 8689 4.2.1); TLS verification is turned off for this client"
                )
        if m.body_type is _BINARY_MIME and not (caps.binarymime and caps.chunking):
            raise MessageContentError(
                "BINARYMIME needs the server's BINARYMIME and CHUNKING (RFC 3030)"
            )
        if m.body_type is _EIGHT_BIT_MIME and not caps.eightbitmime:
            raise MessageContentError("the server does not offer 8BITMIME (RFC 6152)")
        size = m.size_hint
        if m.data is not None and m.body_type is not _BINARY_MIME:
            info = msg.info = scan_body(m.data)
            size = info.canonical_size
            self._check_body(info, caps)
        elif m.data is not None:
            size = len(m.data)
        # RFC 1870 6: a message larger than the announced SIZE is refused with
        # nothing sent.
        if size is not None and caps.size is not None and size > caps.size:
            raise MessageContentError(
                f"the message ({size} octets) exceeds the server's SIZE limit ({caps.size} octets)"
            )

    def _check_body(self, info: BodyInfo, caps: Capabilities) -> None:
        if self._config.strict_line_endings and info.has_bare_line_endings:
            raise MessageContentError("the message has bare CR or LF line endings (strict mode)")
        if info.has_nul:
            raise MessageContentError("the message contains NUL octets")
        if info.has_controls and not self._config.allow_controls:
            raise MessageContentError(
                "the message contains control characters (allow_controls=True lets them through)"
            )
        # RFC 6152 / RFC 5321 2.4: 8-bit content needs 8BITMIME.
        if info.has_8bit and not caps.eightbitmime:
            raise MessageContentError(
                "the message has 8-bit data and the server does not offer 8BITMIME"
            )
        # RFC 5321 4.5.3.1.6: a text line is at most 998 octets plus CRLF.
        if info.over_limit:
            raise MessageContentError("the message has a line longer than 998 octets")

    def _encoder(self, mode: EncodeMode, caps: Capabilities) -> BodyEncoder:
        return BodyEncoder(
            mode=mode,
            strict_line_endings=self._config.strict_line_endings,
            allow_8bit=caps.eightbitmime or caps.binarymime,
            # RFC 3030 3: BINARYMIME content is arbitrary octets.
            allow_controls=self._config.allow_controls or mode is EncodeMode.BINARY,
        )

    def _pump(self, txn: _Txn) -> bool:
        """Send as much of ``txn``'s envelope, and then its data command, as
        the connection allows: everything at once with PIPELINING, else one
        command per reply. True if anything was sent."""
        conn = self._conn
        if txn.state is not _ENVELOPE or self._phase is not _READY or not conn.can_send():
            return False
        pipelining = conn.pipelining
        did = False
        if txn.sent < 0:
            if self._send_envelope(txn, pipelining) or not pipelining:
                return True
            did = True
        elif txn.sent < len(txn.rcpts):
            # Without PIPELINING, one RCPT per reply (with it, every RCPT
            # went with the MAIL, unless quit_after stops at MAIL).
            if (
                pipelining
                or txn.mail_refused is not None
                or txn.withheld
                or self._quit_after is _AFTER_MAIL
            ):
                return False
            self._send_rcpt(txn)
            return True
        if not self._data_command_due(txn):
            return did
        msg = txn.msg
        if not msg.use_bdat:
            self._send(_DATA, txn)
            txn.move(_SEND_DATA)
        elif msg.wire is not None:
            self._send_bdat(txn, msg.wire, last=True)
        else:
            self._begin_stream(txn, _MODE_BDAT)
        return True

    def _send_envelope(self, txn: _Txn, pipelining: bool) -> bool:
        """``txn``'s MAIL, after an RSET when one is due. With PIPELINING the
        envelope goes as one group (RFC 2920 3.1): the RSET, the MAIL, every
        RCPT and then DATA (which ends the group) unless something makes it
        wait for the RCPT replies, recorded and written together; without
        it the RSET goes alone (MAIL waits for its reply). True if DATA went
        with it."""
        if self._rset_due:
            # RFC 5321 4.1.1.5 / RFC 3030 4.2: the server's last transaction
            # may still be open: reset it.
            self._send(_RSET)
            self._rset_due = False
            if not pipelining:
                return False
        msg = txn.msg
        rcpts = txn.rcpts if pipelining and self._quit_after is not _AFTER_MAIL else []
        # Every line is built (a RCPT line can be too long) before any of
        # them is recorded as sent.
        lines = [msg.mail_line, *_rcpt_lines(msg, rcpts)]
        txn.sent = len(rcpts)
        self._rset_due = True
        self._latest = txn
        data = pipelining and not msg.use_bdat and self._data_command_due(txn)
        if data:
            lines.append(_DATA_LINE)
        self._conn.push_envelope(_MAIL, _RCPT, len(rcpts), _DATA if data else None, txn)
        self._write_command(
            b"".join(lines), _STAGE_DATA_INIT if data else _STAGE_RCPT if rcpts else _STAGE_MAIL
        )
        if self._logging:
            for line in lines:
                self._log(Direction.SENT, line)
        if data:
            txn.move(_SEND_DATA)
        return data

    def _send_rcpt(self, txn: _Txn) -> None:
        """``txn``'s next RCPT, alone (no PIPELINING)."""
        [line] = _rcpt_lines(txn.msg, [txn.rcpts[txn.sent]])
        self._send_line(_RCPT, line, txn, _STAGE_RCPT)
        txn.sent += 1

    def _data_command_due(self, txn: _Txn) -> bool:
        """Whether ``txn``'s DATA (or BDAT) may follow its envelope now."""
        quit_after = self._quit_after
        if quit_after is _AFTER_MAIL or quit_after is _AFTER_RCPT:
            return False  # probing: no data
        if txn.answered == txn.sent:
            # Every reply is in: the reply handler ends a transaction with
            # nothing to deliver.
            return txn.mail_refused is None and not txn.withheld and bool(txn.accepted)
        # The data command waits for every RCPT reply:
        # * with require_all_recipients: after a 354 or a BDAT the message
        #   can no longer be withheld;
        # * a streamed body: no gigabytes for a refused envelope;
        # * BDAT LAST in LMTP: with no RCPT accepted, RFC 2033 4.3 gives it
        #   zero replies and Dovecot one (a 503): either reading misplaces
        #   every later reply, so it is only sent once some recipient was
        #   accepted.
        msg = txn.msg
        return not (
            self._config.require_all_recipients
            or (msg.use_bdat and (msg.wire is None or self._conn.lmtp))
        )

    def _mail_line(self, msg: _Msg, caps: Capabilities) -> bytes:
        """The MAIL line, built once per message from addresses checked when
        the message was made."""
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
        return mail_line(
            m.sender,
            size=size,
            body=body,
            smtputf8=msg.utf8,
            ret=m.ret,
            envid=m.envid,
            requiretls=m.requiretls,
        )

    def _send_bdat(self, txn: _Txn, chunk: bytes, *, last: bool) -> None:
        size = len(chunk)
        self._conn.push_bdat(size, last, txn)
        line = b"BDAT %d LAST\r\n" % size if last else b"BDAT %d\r\n" % size
        self._write_command(line)
        if self._logging:
            self._log(Direction.SENT, line)
        txn.bdat_in_flight += 1
        txn.move(_SEND_END if last else _In.SEND_CHUNK)
        ends = self._write_data(txn.msg, chunk)
        if last:
            # RFC 3030 2: the data ends with the chunk's last octet, so the
            # end goes with the Write that carries that octet.
            ends.append(txn)
            txn.end_at = len(self._out) if ends is self._ends_unwritten else size

    def _send_end_of_data(self, txn: _Txn) -> None:
        self._send(_END_OF_DATA, txn)
        txn.move(_SEND_END)
        self._ends_unwritten.append(txn)
        txn.end_at = len(self._out)
        if txn is self._latest:
            # RFC 5321 4.1.1.4: the end of data ends the transaction, whatever
            # the reply (a missing reply ends the connection instead).
            self._rset_due = False

    def _begin_stream(self, txn: _Txn, mode: EncodeMode) -> None:
        """Ask the adapter for the body, from its start."""
        msg = txn.msg
        txn.encoder = self._encoder(mode, self._caps())
        # A message split over several transactions (452, max_recipients)
        # sends its body again: the adapter must start over.
        txn.restart = msg.streamed_before
        msg.streamed_before = True
        self._body_txn = txn

    def _write_data(self, msg: _Msg, data: bytes) -> list[_Txn]:
        """Queue message data; returns the ends list of the Write that will
        carry its last octet (an end of data recorded there is marked
        unwritten only if that Write fails)."""
        if not data:
            return self._ends_unwritten
        self._conn.send_body(data)
        if len(data) >= BIG_WRITE:
            # As it is, in a Write of its own: no copy of a large body. What
            # is queued before it goes first, with the ends it carries.
            if self._out:
                self._writes.append((bytes(self._out), self._out_stage, self._ends_unwritten))
                self._out.clear()
                self._ends_unwritten = []
            ends: list[_Txn] = []
            self._writes.append((data, _STAGE_DATA_BLOCK, ends))
        else:
            self._out += data
            ends = self._ends_unwritten
        self._out_stage = _STAGE_DATA_BLOCK
        msg.size += len(data)
        msg.data_sent = True
        if self._logging:
            if self._config.log_message_data:
                for line in (
                    data.split(b"\r\n")[:-1] if data.endswith(b"\r\n") else data.split(b"\r\n")
                ):
                    self._log(Direction.SENT, line)
            else:
                self._log(
                    Direction.SENT, f"[message data: {len(data)} octets]".encode(), summary=True
                )
        return ends

    def _stream_chunk(self, txn: _Txn, chunk: bytes) -> None:
        encoder = txn.encoder
        assert encoder is not None
        if chunk:
            wire = encoder.feed(chunk)
            if not wire:
                return
            if txn.msg.use_bdat:
                self._send_bdat(txn, wire, last=False)
            else:
                self._write_data(txn.msg, wire)
            return
        tail = encoder.end()
        self._body_txn = None
        if txn.msg.use_bdat:
            self._send_bdat(txn, tail, last=True)
        else:
            # The encoder's tail ends with the terminator; the connection
            # sends it as the EndOfData command so that its reply is expected.
            self._write_data(txn.msg, tail[:-3])
            self._send_end_of_data(txn)

    # -- transactions: replies -------------------------------------------------

    def _on_mail(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        txn = pending.tag
        assert isinstance(txn, _Txn)
        if not reply.is_positive:
            txn.mail_refused = reply
            if txn.msg.refusal is None:
                txn.msg.refusal = _reply_error(reply, "MAIL")
        if self._quit_after is _AFTER_MAIL:
            self._probe_done(txn)
            return
        if txn.answered == txn.sent:  # else RCPT replies are due: not done yet
            self._envelope_step(txn)

    def _on_rcpt(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        txn = pending.tag
        assert isinstance(txn, _Txn)
        rcpt = txn.rcpts[txn.answered]
        txn.answered += 1
        msg = txn.msg
        if self._rcpt_events:
            self._events.append(RecipientResult(message_id=msg.id, recipient=rcpt, reply=reply))
        positive = reply.code < 300  # Reply.is_positive: RCPT gets no 3yz (RFC 5321 4.3.2)
        if positive:
            txn.positive += 1
        if txn.mail_refused is not None:
            # No transaction to join: whatever the RCPT got, the MAIL refusal
            # decided (the server's reply to this recipient is kept).
            msg.statuses[rcpt] = build_recipient_status(
                rcpt, reply if not positive else txn.mail_refused, RecipientState.REFUSED
            )
        elif positive:
            txn.accepted.append(rcpt)
            txn.rcpt_replies[rcpt] = reply
        elif txn.accepted and _is_too_many_recipients(reply):
            # RFC 5321 4.5.3.1.10: "too many recipients": the rest go in a
            # further transaction (only when this one took some, so that a
            # server refusing everyone cannot loop us).
            txn.deferred.append(rcpt)
        else:
            msg.statuses[rcpt] = build_recipient_status(rcpt, reply, RecipientState.REFUSED)
            if self._config.require_all_recipients and not txn.withheld:
                # The message fails as a whole: deliver it to no one.
                txn.withheld = True
                if msg.refusal is None:
                    msg.refusal = _reply_error(reply, "RCPT")
        if txn.answered == txn.sent:  # else more RCPT replies are due
            self._envelope_step(txn)

    def _envelope_step(self, txn: _Txn) -> None:
        """After a MAIL or RCPT reply: end a transaction that has nothing to
        deliver once every envelope reply is in and no data command went."""
        if not txn.envelope_done:
            return
        if self._quit_after is _AFTER_RCPT:
            self._probe_done(txn)
            return
        if txn.state is _ENVELOPE and (
            txn.mail_refused is not None or txn.withheld or not txn.accepted
        ):
            txn.move(_In.NOTHING_TO_SEND)
            self._end_transaction(txn)

    def _on_data(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        txn = pending.tag
        assert isinstance(txn, _Txn)
        msg = txn.msg
        if reply.code != 354:
            # RFC 5321 4.1.1.4: no 354, no data. The server may keep the
            # transaction (RSET goes before the next MAIL). When no RCPT
            # succeeded the refusal is a consequence (RFC 2920 3.1), not the
            # cause.
            txn.data_refused = reply
            txn.move(_In.REFUSED)
            if txn.accepted and msg.refusal is None:
                msg.refusal = _reply_error(reply, "DATA")
            self._end_transaction(txn)
            return
        txn.move(_GOT_354)
        if not txn.accepted:
            if self._conn.lmtp and not txn.positive:
                # RFC 2033 4.2: with no RCPT accepted, DATA "MUST fail with a
                # 503". After this 354 the lone terminator would get no reply
                # at all (one per accepted RCPT), or one that would be taken
                # for the next command's: the message is refused (every RCPT
                # said so) and the connection is closed.
                txn.move(_In.REFUSED)
                self._end_transaction(txn)
                self._fatal(
                    RemoteProtocolError(
                        "LMTP server answered DATA with 354 although no recipient was "
                        "accepted (RFC 2033 4.2 requires 503)"
                    ),
                    quit=False,
                )
                return
            # RFC 2920 3.1: every RCPT failed but the server still said 354:
            # send the lone terminator, so that no message is created.
            self._send_end_of_data(txn)
            return
        if msg.wire is not None:
            self._write_data(msg, msg.wire)
            self._send_end_of_data(txn)
            return
        self._begin_stream(txn, _MODE_DATA)

    def _on_bdat(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        if pending.final_data:
            self._on_end(pending, reply, index, final)
            return
        txn = pending.tag
        assert isinstance(txn, _Txn)
        txn.bdat_in_flight -= 1
        if not reply.is_positive and txn.state is not TxnState.ABORTED:
            # RFC 3030 4.2: after a failed chunk the client must not send
            # more, and the server may or may not keep the transaction.
            txn.data_refused = reply
            txn.move(_In.REFUSED)
            if txn.accepted and txn.msg.refusal is None:
                txn.msg.refusal = _reply_error(reply, "BDAT")
            if self._body_txn is txn:
                self._body_txn = None
        if txn.state is TxnState.ABORTED and not txn.bdat_in_flight:
            self._end_transaction(txn)

    def _on_end(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        """A reply to the end of data (final dot or BDAT LAST); in LMTP one
        of several, one per accepted recipient (RFC 2033 4.2)."""
        txn = pending.tag
        assert isinstance(txn, _Txn)
        bdat = type(pending.command) is Bdat
        if final:
            txn.msg.last_reply = reply
            if bdat:
                txn.bdat_in_flight -= 1
        if txn.state is _ABORTED or not txn.accepted:
            self._end_decides_nothing(txn, reply, final, bdat)
            return
        self._record_end_reply(txn, reply, index, final, bdat)
        if not final:
            return
        if bdat and txn.data_refused is not None:
            # RFC 3030 4.2: a refused BDAT LAST may leave the server's
            # transaction open (Exim) or not (Postfix): RSET before the next MAIL.
            txn.move(_In.REFUSED)
        else:
            txn.move(_ANSWERED)
            if bdat and txn is self._latest:
                self._rset_due = False  # the data was taken: the transaction is closed
        self._end_transaction(txn)

    def _end_decides_nothing(self, txn: _Txn, reply: Reply, final: bool, bdat: bool) -> None:
        """A reply to the end of data of a transaction whose outcome the
        replies before decided."""
        if not final:
            return
        if txn.state is _ABORTED:
            # A chunk was refused before: this reply changes nothing.
            if not txn.bdat_in_flight:
                self._end_transaction(txn)
            return
        # The lone terminator, or BDAT LAST pipelined behind an envelope that
        # was refused: the RCPT replies decided.
        txn.move(_In.REFUSED if bdat and not reply.is_positive else _ANSWERED)
        self._end_transaction(txn)

    def _record_end_reply(
        self, txn: _Txn, reply: Reply, index: int, final: bool, bdat: bool
    ) -> None:
        """The accepted recipients' statuses from a reply to the end of data:
        all of them in SMTP, the ``index``-th in LMTP."""
        msg = txn.msg
        accepted = txn.accepted
        statuses = msg.statuses
        positive = reply.code < 300  # Reply.is_positive: no 3yz here (RFC 5321 4.3.2)
        state = _ACCEPTED if positive else RecipientState.REFUSED
        if self._conn.lmtp:
            # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
            if index < len(accepted):
                rcpt = accepted[index]
                statuses[rcpt] = build_recipient_status(rcpt, reply, state)
            if positive:
                txn.data_refused = None
            elif final and reply.code == 421:
                # The server closes (RFC 5321 3.8) instead of answering the
                # recipients after this one: their end of data went out and
                # no reply came, so their fate is unknown (RFC 5321
                # 4.5.3.2.6), whatever the replies before said.
                rcpt_replies = txn.rcpt_replies
                for rcpt in accepted[index + 1 :]:
                    statuses[rcpt] = build_recipient_status(
                        rcpt, rcpt_replies.get(rcpt), RecipientState.UNKNOWN
                    )
        else:
            for rcpt in accepted:
                statuses[rcpt] = build_recipient_status(rcpt, reply, state)
        if not positive:
            if msg.refusal is None:
                msg.refusal = _reply_error(reply, "BDAT" if bdat else "DATA")
            if index == 0 or txn.data_refused is not None:
                txn.data_refused = reply  # every reply so far refused

    # -- transactions: outcomes ------------------------------------------------

    def _end_transaction(self, txn: _Txn) -> None:
        """The transaction is over, its outcome known: give every recipient of
        it a status, then go on with the message's next transaction or report
        the message."""
        msg = txn.msg
        self._retire(txn)
        statuses = msg.statuses
        mail_refused = txn.mail_refused
        deferred = txn.deferred
        for rcpt in txn.rcpts:
            if rcpt in statuses or rcpt in deferred:
                continue
            if mail_refused is not None:
                # Never sent (no pipelining): the MAIL refusal stopped it.
                status = build_recipient_status(rcpt, mail_refused, RecipientState.REFUSED)
            elif txn.data_refused is not None and not txn.withheld:
                # Accepted at RCPT, then DATA or a BDAT chunk was refused.
                status = build_recipient_status(rcpt, txn.data_refused, RecipientState.REFUSED)
            else:
                # Withheld (require_all_recipients), or never sent after the
                # client stopped the envelope: the message did not go to it.
                status = build_recipient_status(
                    rcpt, txn.rcpt_replies.get(rcpt), RecipientState.NOT_SENT
                )
            statuses[rcpt] = status
        if deferred:
            msg.todo.extendleft(reversed(deferred))
        if msg.todo and mail_refused is None and not txn.withheld:
            # More recipients (452 or max_recipients): another transaction,
            # before anything else queued.
            self._jobs.appendleft(msg)
            return
        self._finish(msg)

    def _retire(self, txn: _Txn) -> None:
        if txn in self._active:
            self._active.remove(txn)
            self._inflight_bytes -= txn.wire_size

    def _finish(self, msg: _Msg, error: SMTPError | None = None) -> None:
        """Report the message, from its recipients' statuses (``error``: the
        reason it was not sent at all)."""
        result, count = self._counted_result(msg)
        if (
            error is None
            and count
            and (not self._config.require_all_recipients or count == len(result.recipients))
        ):
            self._events.append(build_message_accepted(result))
            return
        accepted = result.accepted
        if error is None:
            refusal = msg.refusal
            rejected = dict(result.rejected)
            if refusal is not None and refusal.command != "RCPT" and not accepted:
                error = refusal
            elif rejected:
                # With require_all_recipients, those the server accepted at
                # RCPT got nothing: the error names them.
                unsent = tuple(
                    r.recipient
                    for r in result.recipients
                    if r.state is RecipientState.NOT_SENT
                    and r.reply is not None
                    and r.reply.is_positive
                )
                error = RecipientsRefusedError(rejected, _decisive(rejected, accepted), unsent)
            else:
                reply = msg.last_reply
                error = (
                    _reply_error(reply, "DATA")
                    if reply is not None
                    else LocalProtocolError("the message was not sent")
                )
        if result.status_known:
            error.result = result
        else:
            # Some recipient's end of data went unanswered (an LMTP server
            # closing halfway through its replies): the error says so.
            error = error.for_message(result, status_unknown=True)
        self._events.append(MessageFailed(result=result, error=error))

    def _result(self, msg: _Msg) -> MessageResult:
        return self._counted_result(msg)[0]

    def _counted_result(self, msg: _Msg) -> tuple[MessageResult, int]:
        """The message's result, and how many of its recipients were accepted."""
        statuses = msg.statuses
        recipients = msg.message.recipients
        unknown = False
        count = 0
        ordered = []
        for rcpt in recipients:
            status = statuses.get(rcpt)
            if status is None:
                status = build_recipient_status(rcpt, None, RecipientState.NOT_SENT)
            elif status.state is _ACCEPTED:
                count += 1
            elif status.state is RecipientState.UNKNOWN:
                unknown = True
            ordered.append(status)
        result = build_message_result(
            msg.id,
            msg.message.sender,
            tuple(ordered),
            msg.last_reply,
            msg.size,
            msg.data_sent,
            not unknown,
        )
        return result, count

    def _probe_done(self, txn: _Txn) -> None:
        """``quit_after`` MAIL or RCPT: report what the envelope got, QUIT."""
        msg = txn.msg
        self._retire(txn)
        for rcpt in txn.accepted:
            msg.statuses[rcpt] = build_recipient_status(
                rcpt, txn.rcpt_replies[rcpt], RecipientState.ACCEPTED
            )
        if txn.mail_refused is not None:
            # The MAIL refusal decides every recipient it stopped.
            msg.last_reply = txn.mail_refused
            for rcpt in txn.rcpts:
                msg.statuses.setdefault(
                    rcpt,
                    build_recipient_status(rcpt, txn.mail_refused, RecipientState.REFUSED),
                )
        self._events.append(MessageProbed(result=self._result(msg)))
        self._begin_quit()

    def _fail_txn(self, txn: _Txn, error: SMTPError) -> None:
        """The session failed with ``txn`` under way: what is known of each
        recipient stays, the rest is unknown (its end of data went out) or
        not sent; the message is reported with its own copy of ``error``."""
        msg = txn.msg
        self._retire(txn)
        end_out = txn.state is TxnState.END_SENT and not txn.end_unwritten
        statuses = msg.statuses
        for rcpt in txn.rcpts:
            if rcpt in statuses or rcpt in txn.deferred:
                continue
            reply = txn.rcpt_replies.get(rcpt)
            if txn.mail_refused is not None:
                status = build_recipient_status(rcpt, txn.mail_refused, RecipientState.REFUSED)
            elif end_out and not txn.withheld:
                # RFC 5321 4.5.3.2.6: after the end of data and before its
                # reply, the server may or may not have taken the message
                # (also for a recipient whose RCPT reply never came).
                status = build_recipient_status(rcpt, reply, RecipientState.UNKNOWN)
            else:
                status = build_recipient_status(rcpt, reply, RecipientState.NOT_SENT)
            statuses[rcpt] = status
        self._fail_message(msg, error)

    def _fail_message(self, msg: _Msg, error: SMTPError) -> None:
        result = self._result(msg)
        own = _own_error(error, result)
        self._events.append(MessageFailed(result=result, error=own))

    # -- simple replies --------------------------------------------------------

    def _on_rset(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        if not reply.is_positive:
            # RFC 5321 4.1.1.5: RSET must succeed; a server that refuses it is
            # in a state we cannot reason about.
            self._fatal(_reply_error(reply, "RSET"), quit=True)

    def _on_quit(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        self._close()

    def _on_user(self, pending: Pending, reply: Reply, index: int, final: bool) -> None:
        command = pending.command
        assert command is not None
        assert isinstance(pending.tag, int)
        self._events.append(CommandCompleted(ticket=pending.tag, command=command, reply=reply))

    # -- ending ----------------------------------------------------------------

    def _begin_quit(self) -> None:
        if self._phase in (Phase.QUITTING, Phase.CLOSED):
            return
        # Whatever is still queued will not be sent.
        self._drop_jobs(None)
        if self._conn.can_send():
            try:
                self._send(Quit())
            except LocalProtocolError:
                self._close()
                return
            self._phase = Phase.QUITTING
        else:
            self._close()

    def _fatal(self, error: SMTPError, *, quit: bool) -> None:
        """End the session with ``error``: fail everything in flight and
        queued, QUIT if the conversation allows it, then close."""
        error = self._redactor.error(error)
        if self._error is None:
            self._error = error
        self._body_txn = None
        # Ends still in _out were never written, and never will be.
        for txn in self._ends_unwritten:
            txn.end_unwritten = True
        self._ends_unwritten = []
        for _, _, ends in self._writes:
            for txn in ends:
                txn.end_unwritten = True
        for txn in list(self._active):
            self._fail_txn(txn, error)
        self._active.clear()
        self._inflight_bytes = 0
        self._drop_jobs(error)
        # QUIT only where it cannot be confused with anything in flight.
        if (
            quit
            and self._phase not in (Phase.QUITTING, Phase.CLOSED)
            and not self._conn.waiting
            and not self._out
            and not self._writes
            and self._conn.can_send()
        ):
            try:
                self._send(Quit())
            except LocalProtocolError:
                pass
            else:
                self._phase = Phase.QUITTING
                return
        # No byte after a fatal error: drop anything not yet written.
        self._out.clear()
        self._writes.clear()
        self._close()

    def _drop_jobs(self, error: SMTPError | None) -> None:
        for job in self._jobs:
            if type(job) is _Msg:
                self._fail_message(
                    job,
                    error
                    if error is not None
                    else LocalProtocolError("the session quit before this message was sent"),
                )
        self._jobs.clear()

    # -- plumbing --------------------------------------------------------------

    def _send(self, command: Command, tag: object = None) -> None:
        self._write_command(self._conn.send(command, tag), command.stage)
        if self._logging:
            self._log(Direction.SENT, command.transcript())

    def _send_line(self, command: Command, line: bytes, txn: _Txn, stage: Stage) -> None:
        """A MAIL or RCPT line the session built itself; ``command`` stands
        for its kind."""
        self._conn.push(command, txn)
        self._write_command(line, stage)
        if self._logging:
            self._log(Direction.SENT, line)

    def _write_command(self, line: bytes, stage: Stage = _STAGE_DATA_BLOCK) -> None:
        if not (self._out_stage is _STAGE_DATA_BLOCK and self._out):
            # RFC 5321 4.5.3.2.5: a write carrying message data is a data
            # block, whatever command follows the data in it.
            self._out_stage = stage
        self._out += line

    def _log(self, direction: Direction, data: bytes, *, summary: bool = False) -> None:
        if self._logging:
            self.transcript.append(TranscriptEntry(direction=direction, data=data, summary=summary))

    def _log_reply(self, reply: Reply) -> None:
        if self._logging:
            for line in reply.to_bytes().split(b"\r\n")[:-1]:
                self._log(Direction.RECEIVED, line)

    def _caps(self) -> Capabilities:
        caps = self._capabilities
        assert caps is not None
        return caps

    def _failed_stage(self, written: int | None) -> Stage:
        """The stage of a failed read or write, for its error; the
        connection is sealed (nothing more leaves).

        An end of data beyond the ``written`` octets of a Write that did not
        complete was never delivered: that message is not in the unknown
        state of RFC 5321 4.5.3.2.6, it was not sent, and no reply can answer
        it (a 421 the server sent meanwhile came unasked). One within them
        may have reached the server, which may have taken the message.
        """
        if self._writing is None:
            self._conn.seal()
            return self._current_stage()
        stage, ends, size = self._writing
        if written is None:
            # Not told: only its last octet is known not to have left.
            written = size - 1
        elif not 0 <= written <= size:
            raise LocalProtocolError(f"written={written} is not within the Write's {size} octets")
        unsent = []
        for txn in ends:
            if txn.end_at > written:
                txn.end_unwritten = True
                unsent.append(txn)
        self._conn.seal(unsent)
        return stage

    def _answered_before_failing(self) -> bool:
        """Handle the complete replies received (``receive_data``) but not
        yet taken, before the I/O failure is reported; True if they closed
        the session.

        A Write can fail after the server answered what came before it: the
        replies an adapter reads without waiting once the Write failed. A
        reply only answers what reached the server, so each settles its
        command as usual: a message whose final reply is among them was
        accepted or refused, not left in the unknown state of RFC 5321
        4.5.3.2.6 (a retry would duplicate an accepted one), and a 421 tells
        why the connection went (RFC 5321 3.8). Whatever the replies prompt
        the session to send is never written (``_fatal`` drops it).
        """
        self._process_replies()
        return self._phase is _CLOSED

    def _current_stage(self) -> Stage:
        stage = self._conn.waiting_stage()
        if stage is not None:
            return stage
        if self._phase is Phase.TLS_HANDSHAKE:
            return Stage.TLS_HANDSHAKE
        if self._body_txn is not None:
            return Stage.DATA_BLOCK
        return self._out_stage

    def _check_open(self) -> None:
        if self._phase in (_QUITTING, _CLOSED) or self._quit_queued:
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

#: The commands of an AUTH exchange: their replies go to _on_auth as received.
_SASL_COMMANDS = frozenset({Auth, AuthResponse, AuthCancel})

_Handler = Callable[[Session, Pending, Reply, int, bool], None]
#: Each reply goes to the handler of the command it answers (``None``: the greeting).
_HANDLERS: dict[type[Command] | type[None], _Handler] = {
    type(None): Session._on_greeting,
    Ehlo: Session._on_hello,
    Helo: Session._on_hello,
    Lhlo: Session._on_hello,
    StartTLS: Session._on_starttls,
    Auth: Session._on_auth,
    AuthResponse: Session._on_auth,
    AuthCancel: Session._on_auth,
    Mail: Session._on_mail,
    Rcpt: Session._on_rcpt,
    Data: Session._on_data,
    Bdat: Session._on_bdat,
    EndOfData: Session._on_end,
    Rset: Session._on_rset,
    Quit: Session._on_quit,
    Noop: Session._on_user,
    Vrfy: Session._on_user,
    Expn: Session._on_user,
    RawCommand: Session._on_user,
}


def _rcpt_lines(msg: _Msg, rcpts: list[str]) -> list[bytes]:
    """The RCPT lines of ``rcpts`` for ``msg``, from addresses checked when
    the message was made."""
    m = msg.message
    notify, orcpt, utf8 = m.notify, m.orcpt, msg.utf8
    lines = []
    for rcpt in rcpts:  # a loop: a comprehension costs a frame of its own on 3.11
        lines.append(rcpt_line(rcpt, notify=notify, orcpt=rcpt if orcpt else None, utf8=utf8))
    return lines


def _own_error(error: SMTPError, result: MessageResult) -> SMTPError:
    """The error to report for one message when the session fails: a copy
    of ``error`` with the message's result.

    An error that leaves a delivery status unknown (after an end of data) is
    only true of a message whose end went out: for the others, queued or with
    only their envelope sent, the session failed before their data was
    complete, and they say so.
    """
    unknown = not result.status_known
    if unknown or not error.status_unknown:
        return error.for_message(result, status_unknown=unknown)
    reason = str(error).removesuffix(" (delivery status unknown)")
    lost = ConnectionLostError(
        f"the session failed before this message's data was complete: {reason}",
        stage=Stage.MAIL,
        operation=getattr(error, "operation", None),
        errno=getattr(error, "errno", None),
    )
    lost.__cause__ = error
    lost.result = result
    return lost


def _decisive(rejected: dict[str, Reply], accepted: tuple[str, ...]) -> Reply:
    """The reply that decided a RecipientsRefusedError: with some recipients
    accepted (require_all_recipients), the first refusal; else the last."""
    replies = list(rejected.values())
    return replies[0] if accepted else replies[-1]


def _reply_error(reply: Reply, command: str) -> ReplyError:
    cls = TemporaryReplyError if reply.is_transient else PermanentReplyError
    return cls(reply, command)


def _command_name(command: Command | None) -> str:
    return "greeting" if command is None else command.verb
