"""What the session asks of its adapter (actions) and what it reports (events).

Actions are the I/O the core cannot do itself. An adapter loops::

    while True:
        action = session.next_action()
        match action:
            case Write(data=data):          send all of ``data``
            case Read(stage=stage):         read with the stage's timeout, then
                                            session.receive_data(chunk) (b"" at EOF)
                                            or session.timeout_expired()
            case StartTLSAction(server_hostname=name):
                                            handshake, then session.tls_established()
                                            or session.tls_failed(reason)
            case NeedBody(message_id=mid):  session.send_body(mid, next chunk or b"")
            case Idle():                    nothing to do until a message is submitted
            case Close():                   close the connection; the session is over
        for event in session.events(): ...

Events are frozen values; a negative reply is an event, not an exception.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, final

from ._errors import ConnectionLostError, ReplyError, SMTPError, Stage
from ._replies import Reply, printable
from ._slots import slot_setters

if TYPE_CHECKING:
    from ._commands import Command
    from ._extensions import Capabilities

__all__ = [
    "Action",
    "Authenticated",
    "Close",
    "CommandCompleted",
    "Direction",
    "Event",
    "GreetingReceived",
    "Idle",
    "MessageAccepted",
    "MessageFailed",
    "MessageProbed",
    "MessageResult",
    "NeedBody",
    "Read",
    "RecipientResult",
    "RecipientState",
    "RecipientStatus",
    "ServerReady",
    "ServiceClosing",
    "SessionClosed",
    "StartTLSAction",
    "TLSEstablished",
    "TranscriptEntry",
    "Write",
]


# -- actions -------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """Write all of ``data`` to the server. ``stage`` names the timeout that
    applies (a stalled write of message data is a DATA_BLOCK timeout)."""

    data: bytes
    stage: Stage

    def __repr__(self) -> str:
        # Never show the bytes: they may carry AUTH secrets or message content.
        return f"Write(<{len(self.data)} octets>, stage={self.stage.value})"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    """Read more bytes; if none come within ``stage``'s timeout, call
    ``timeout_expired()``.

    ``replies`` counts the replies the session has received. Consecutive
    Reads with the same count wait for the same reply and share one
    deadline: RFC 5321 4.5.3.2 times the wait for a reply, so a server
    that drips a reply byte by byte cannot restart the clock with each byte.
    """

    stage: Stage
    replies: int = 0


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLSAction:
    """Run the TLS handshake on the connection now, verifying
    ``server_hostname`` (None: the adapter's host)."""

    server_hostname: str | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class NeedBody:
    """Give the next chunk of message ``message_id``'s body to
    ``send_body()`` (``b""`` at its end). ``size_hint`` is how much to read.
    ``restart`` asks for the body from its start again: a message split over
    several transactions (452 too many recipients) sends it once for each."""

    message_id: int
    size_hint: int
    restart: bool = False


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Idle:
    """Nothing to do until the caller submits a message, a command or quit()."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Close the connection. The session is over."""


Action = Write | Read | StartTLSAction | NeedBody | Idle | Close


# -- results -------------------------------------------------------------------


class RecipientState(enum.Enum):
    """What became of one recipient of a message.

    * ``ACCEPTED``: the server took responsibility for the message for this
      recipient (a positive final reply to the end of data; in LMTP, this
      recipient's own reply).
    * ``REFUSED``: the server refused it (at RCPT, MAIL, DATA/BDAT or after the
      data); ``reply`` says how, and whether it is temporary (4xx).
    * ``UNKNOWN``: the end of data went out and no well-formed final reply
      came (RFC 5321 4.5.3.2.6): the message may or may not have been queued.
    * ``NOT_SENT``: the message never went to the server for this recipient:
      the client withheld it (``require_all_recipients`` after another
      recipient was refused) or the session ended before its transaction.
      Sending it again cannot duplicate it.
    """

    __hash__ = object.__hash__

    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    NOT_SENT = "not-sent"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientStatus:
    """One recipient's outcome and the reply that decided it: the final reply
    to the data when accepted, the refusing reply when refused, its own RCPT
    reply (or None when it was never sent) when unknown or not sent."""

    recipient: str
    reply: Reply | None
    state: RecipientState

    @property
    def accepted(self) -> bool:
        """True when the server took the message for this recipient."""
        return self.state is RecipientState.ACCEPTED


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MessageResult:
    """The outcome of one message, recipient by recipient.

    Attributes:
        message_id: the id ``submit()`` returned.
        sender: the envelope sender.
        recipients: every recipient's status, in the order given, across all
            the transactions of the message (452 splits, ``max_recipients``).
        reply: the final reply to the message data (the last one when the
            message took several transactions), or None if no data was sent.
        size: octets of message data written (after encoding).
        data_sent: whether any message data went on the wire.
        status_known: False when some recipient's status is unknown: an end
            of data went out and no well-formed final reply came back.
    """

    message_id: int
    sender: str
    recipients: tuple[RecipientStatus, ...] = ()
    reply: Reply | None = None
    size: int = 0
    data_sent: bool = False
    status_known: bool = True

    def _where(self, state: RecipientState) -> tuple[str, ...]:
        return tuple(r.recipient for r in self.recipients if r.state is state)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Recipients the server took responsibility for."""
        return self._where(RecipientState.ACCEPTED)

    @property
    def rejected(self) -> Mapping[str, Reply]:
        """Recipients the server refused, with the reply that refused them."""
        return {
            r.recipient: r.reply
            for r in self.recipients
            if r.state is RecipientState.REFUSED and r.reply is not None
        }

    @property
    def unknown(self) -> tuple[str, ...]:
        """Recipients whose delivery status is unknown (do not resend blindly)."""
        return self._where(RecipientState.UNKNOWN)

    @property
    def not_sent(self) -> tuple[str, ...]:
        """Recipients the message never went to: safe to send again."""
        return self._where(RecipientState.NOT_SENT)

    @property
    def retryable(self) -> tuple[str, ...]:
        """Recipients worth another try: not sent, or refused temporarily (4xx)."""
        return tuple(
            r.recipient
            for r in self.recipients
            if r.state is RecipientState.NOT_SENT
            or (r.state is RecipientState.REFUSED and r.reply is not None and r.reply.is_transient)
        )


# -- events --------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class GreetingReceived:
    """The server's 220 greeting."""

    reply: Reply


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ServerReady:
    """EHLO/HELO/LHLO succeeded; ``capabilities`` is what the server offers
    now (learnt again after STARTTLS). ``tls`` says whether TLS is active."""

    capabilities: Capabilities
    tls: bool


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TLSEstablished:
    """TLS is up (after STARTTLS, or from the start with implicit TLS)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Authenticated:
    """AUTH succeeded with ``mechanism``."""

    mechanism: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientResult:
    """The server's reply to one RCPT."""

    message_id: int
    recipient: str
    reply: Reply

    @property
    def accepted(self) -> bool:
        """True for a 2xx reply."""
        return self.reply.is_positive


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MessageAccepted:
    """The server accepted the message for at least one recipient (for all
    of them with ``require_all_recipients``)."""

    result: MessageResult


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MessageFailed:
    """The message was not accepted.

    ``retry_safe`` is True when no byte of its data was sent, so sending it
    again (on this or a new connection) cannot duplicate it.
    """

    result: MessageResult
    error: SMTPError

    @property
    def retry_safe(self) -> bool:
        """True when no message data was sent: a retry cannot duplicate it."""
        return not self.result.data_sent

    @property
    def connection_dropped(self) -> bool:
        """True when the server went away (EOF, reset, or 421) before any of
        the message's data was sent: the same message can be sent again on a
        new connection. Adapters use this to reconnect an idle client."""
        error = self.error
        dropped = isinstance(error, ConnectionLostError) or (
            isinstance(error, ReplyError) and error.code == 421
        )
        return dropped and self.retry_safe


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MessageProbed:
    """With ``quit_after`` MAIL or RCPT: the envelope was tried, no data was
    sent. The result holds each recipient's RCPT reply."""

    result: MessageResult


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CommandCompleted:
    """A command submitted with ``session.command()`` (NOOP, VRFY...) got its reply."""

    ticket: int
    command: Command
    reply: Reply


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceClosing:
    """The server sent 421: it is closing the connection (RFC 5321 3.8)."""

    reply: Reply


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClosed:
    """The session is over. ``error`` is None after a clean QUIT."""

    error: SMTPError | None = None


Event = (
    GreetingReceived
    | ServerReady
    | TLSEstablished
    | Authenticated
    | RecipientResult
    | MessageAccepted
    | MessageFailed
    | MessageProbed
    | CommandCompleted
    | ServiceClosing
    | SessionClosed
)


# -- transcript ----------------------------------------------------------------


class Direction(enum.Enum):
    """Who sent a transcript line: as POE::Component::Client::SMTP's
    transaction log writes them, ``<-`` and ``->``."""

    RECEIVED = "<-"
    SENT = "->"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptEntry:
    """One line of the transaction log. AUTH secrets are already redacted;
    message data is summarised unless the session logs bodies."""

    direction: Direction
    data: bytes
    summary: bool = field(default=False)

    def __str__(self) -> str:
        text = self.data.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        return f"{self.direction.value} {printable(text)}"


# -- building values on the per-message paths ----------------------------------
#
# The same objects as the classes' own __init__ makes, at half the cost (see
# smtpcore._slots); tests/core/test_events.py checks each against its class.

_new = object.__new__

_WRITE_DATA, _WRITE_STAGE = slot_setters(Write, "data", "stage")
_READ_STAGE, _READ_REPLIES = slot_setters(Read, "stage", "replies")
_RS_RECIPIENT, _RS_REPLY, _RS_STATE = slot_setters(RecipientStatus, "recipient", "reply", "state")
_MR_FIELDS = slot_setters(
    MessageResult,
    "message_id",
    "sender",
    "recipients",
    "reply",
    "size",
    "data_sent",
    "status_known",
)
(_MA_RESULT,) = slot_setters(MessageAccepted, "result")


def build_write(data: bytes, stage: Stage) -> Write:
    """``Write(data=data, stage=stage)``."""
    action: Write = _new(Write)
    _WRITE_DATA(action, data)
    _WRITE_STAGE(action, stage)
    return action


def build_read(stage: Stage, replies: int) -> Read:
    """``Read(stage=stage, replies=replies)``."""
    action: Read = _new(Read)
    _READ_STAGE(action, stage)
    _READ_REPLIES(action, replies)
    return action


def build_recipient_status(
    recipient: str, reply: Reply | None, state: RecipientState
) -> RecipientStatus:
    """``RecipientStatus(recipient=recipient, reply=reply, state=state)``."""
    status: RecipientStatus = _new(RecipientStatus)
    _RS_RECIPIENT(status, recipient)
    _RS_REPLY(status, reply)
    _RS_STATE(status, state)
    return status


def build_message_result(
    message_id: int,
    sender: str,
    recipients: tuple[RecipientStatus, ...],
    reply: Reply | None,
    size: int,
    data_sent: bool,
    status_known: bool,
) -> MessageResult:
    """``MessageResult(...)`` with every field given, in the class's order."""
    result: MessageResult = _new(MessageResult)
    set_id, set_sender, set_recipients, set_reply, set_size, set_sent, set_known = _MR_FIELDS
    set_id(result, message_id)
    set_sender(result, sender)
    set_recipients(result, recipients)
    set_reply(result, reply)
    set_size(result, size)
    set_sent(result, data_sent)
    set_known(result, status_known)
    return result


def build_message_accepted(result: MessageResult) -> MessageAccepted:
    """``MessageAccepted(result=result)``."""
    event: MessageAccepted = _new(MessageAccepted)
    _MA_RESULT(event, result)
    return event


#: The one ``Idle()`` the session hands out (it has no fields).
IDLE: Final = Idle()
