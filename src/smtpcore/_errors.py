"""The one error hierarchy of smtpcore.

Everything smtpcore raises derives from :class:`SMTPError`. The families:

* :class:`LocalProtocolError`: the caller asked for something illegal (a bad
  address, a command in the wrong state, a body that cannot be sent as given).
  Raised by constructors and send paths, before a byte is written.
* :class:`RemoteProtocolError`: the server broke the protocol. It is the only
  thing the receive path of the protocol layer may raise.
* :class:`ReplyError`: the server answered correctly, but negatively.
* :class:`ConfigurationError`, :class:`AuthenticationError`, :class:`TLSError`,
  :class:`SMTPTimeoutError`, :class:`ConnectionLostError` and
  :class:`MessageSourceError`: the session-level failure taxonomy
  (POE::Component::Client::SMTP's ``Configure``, ``Timeout``, ``POE::Wheel::*`` and
  ``MessageFile_Error``).

Errors never carry secrets: credentials are not part of any message or repr.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._events import MessageResult
    from ._replies import Reply

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionLostError",
    "InvalidInputError",
    "LocalProtocolError",
    "MessageContentError",
    "MessageSourceError",
    "PermanentReplyError",
    "ProtocolError",
    "RecipientsRefusedError",
    "RemoteProtocolError",
    "ReplyError",
    "SMTPError",
    "SMTPTimeoutError",
    "Stage",
    "TLSError",
    "TLSRequiredError",
    "TemporaryReplyError",
]


class Stage(enum.Enum):
    """Where in the conversation something happened.

    The timeout categories are those of RFC 5321 4.5.3.2 plus the ESMTP stages
    (EHLO, STARTTLS, AUTH) and QUIT. Adapters map each stage to a duration.
    """

    CONNECT = "connect"
    GREETING = "greeting"  # RFC 5321 4.5.3.2.1: 5 minutes
    EHLO = "ehlo"
    STARTTLS = "starttls"
    TLS_HANDSHAKE = "tls-handshake"
    AUTH = "auth"
    MAIL = "mail"  # RFC 5321 4.5.3.2.2: 5 minutes
    RCPT = "rcpt"  # RFC 5321 4.5.3.2.3: 5 minutes
    DATA_INIT = "data-init"  # RFC 5321 4.5.3.2.4: 2 minutes
    DATA_BLOCK = "data-block"  # RFC 5321 4.5.3.2.5: 3 minutes
    DATA_TERMINATION = "data-termination"  # RFC 5321 4.5.3.2.6: 10 minutes
    RSET = "rset"
    NOOP = "noop"
    QUIT = "quit"
    COMMAND = "command"  # any other command (VRFY, raw extension commands)

    @property
    def status_unknown(self) -> bool:
        """True when a failure at this stage leaves a message's fate unknown.

        RFC 5321 4.5.3.2.6: once the final dot was sent, the server may have
        taken responsibility for the message even if its reply never arrives.
        """
        return self is Stage.DATA_TERMINATION


class SMTPError(Exception):
    """Base class of every error smtpcore raises.

    Attributes:
        status_unknown: True when the error leaves a message's fate unknown:
            its end of data went out and no well-formed final reply came
            (RFC 5321 4.5.3.2.6). Resending such a message may duplicate it.
        result: for an error about one message (``MessageFailed``, or what an
            adapter raises for a message), that message's outcome, recipient
            by recipient, across all its transactions; None otherwise.
    """

    status_unknown: bool = False
    result: MessageResult | None = None

    def for_message(self, result: MessageResult, *, status_unknown: bool) -> SMTPError:
        """A copy of this error about one message: with its ``result`` and
        whether that message's status is unknown. The original (which may be
        shared by several messages, or be the session's own error) is left
        as it is."""
        clone = _copy_error(self)
        clone.result = result
        clone.status_unknown = status_unknown
        if status_unknown and "status unknown" not in str(clone):
            clone.args = (f"{clone} (delivery status unknown)",)
        clone.__cause__ = self.__cause__
        return clone


class ProtocolError(SMTPError):
    """Base class of the two protocol-violation families."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol does not allow."""


class InvalidInputError(LocalProtocolError, ValueError):
    """A value given by the caller cannot be put on the wire.

    Attributes:
        field: what the value was for (``"recipient"``, ``"EHLO domain"``...).
        reason: what is wrong with it.
        value: the offending value (never a secret).
    """

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        shown = "" if value is None else f": {_short_repr(value)}"
        super().__init__(f"invalid {field}: {reason}{shown}")


class MessageContentError(LocalProtocolError):
    """The message body cannot be sent as given (bare LF in strict mode, NUL,
    8-bit data the server cannot take, an over-long line, a size over the
    server's limit). Raised before any byte of the transaction is sent when
    the body is known in advance."""


class RemoteProtocolError(ProtocolError):
    """The server broke the protocol; the connection cannot be used further."""


class ReplyError(SMTPError):
    """The server gave a negative reply.

    Attributes:
        reply: the server's reply.
        command: the command it answered (a short description, e.g. ``"MAIL"``).
    """

    def __init__(self, reply: Reply, command: str, message: str | None = None) -> None:
        self.reply = reply
        self.command = command
        text = message or f"{command} refused: {reply.describe()}"
        super().__init__(text)

    @property
    def code(self) -> int:
        """The three-digit reply code."""
        return self.reply.code

    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 enhanced status code, if the server gave one."""
        return self.reply.enhanced_code

    @property
    def text(self) -> str:
        """The reply text, decoded losslessly."""
        return self.reply.text

    @property
    def temporary(self) -> bool:
        """True for a 4xx reply: the same request may succeed later."""
        return self.reply.is_transient


class TemporaryReplyError(ReplyError):
    """A 4xx reply: try again later."""


class PermanentReplyError(ReplyError):
    """A 5xx reply (or an unexpected positive one): do not retry as is."""


class RecipientsRefusedError(ReplyError):
    """No recipient of the message was accepted; or, with
    ``require_all_recipients``, some were refused and the message went to
    none.

    ``replies`` maps each refused recipient to the server's reply for it;
    ``reply`` is the reply that decided the outcome (the last recipient's).
    ``unsent`` are the recipients the server accepted that the message was
    not sent to (``require_all_recipients``), in order; empty otherwise.
    """

    def __init__(
        self, replies: dict[str, Reply], reply: Reply, unsent: tuple[str, ...] = ()
    ) -> None:
        self.replies = dict(replies)
        self.unsent = tuple(unsent)
        refused = ", ".join(f"{rcpt} ({r.code})" for rcpt, r in self.replies.items())
        if self.unsent:
            text = (
                f"recipients refused: {refused}; not sent to the accepted "
                f"{', '.join(self.unsent)} (require_all_recipients)"
            )
        else:
            text = f"no valid recipients: {refused}"
        super().__init__(reply, "RCPT", text)


class ConfigurationError(SMTPError):
    """The session was configured in a way the server cannot satisfy (POE::Component::Client::SMTP's
    ``Configure``): credentials with no AUTH offered, no mechanism in
    common, SMTPUTF8 needed but not offered..."""


class AuthenticationError(SMTPError):
    """Authentication failed: a negative reply, a malformed challenge, an
    endless challenge loop or a server signature that does not verify."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        self.reply = reply
        super().__init__(message)

    @property
    def temporary(self) -> bool:
        """True when the server said 4xx (e.g. 454 temporary failure)."""
        return self.reply is not None and self.reply.is_transient


class TLSError(SMTPError):
    """TLS could not be established as the policy requires."""


class TLSRequiredError(TLSError):
    """TLS is required but the server did not offer or refused STARTTLS."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        self.reply = reply
        super().__init__(message)


class SMTPTimeoutError(SMTPError, TimeoutError):
    """The server did not answer in time.

    Attributes:
        stage: the stage whose timeout expired.
        status_unknown: True after the final dot: the message may have been
            delivered.
    """

    def __init__(self, stage: Stage, seconds: float | None = None) -> None:
        self.stage = stage
        self.seconds = seconds
        self.status_unknown = stage.status_unknown
        after = "" if seconds is None else f" after {seconds:g}s"
        extra = " (delivery status unknown)" if self.status_unknown else ""
        super().__init__(f"timed out waiting for the server at stage {stage.value}{after}{extra}")


class ConnectionLostError(SMTPError, ConnectionError):
    """The connection failed or was closed by the server.

    Attributes:
        stage: where it happened.
        operation: what the adapter was doing (``"connect"``, ``"read"``...).
        errno: the OS error number, when there is one.
        status_unknown: True after the final dot.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: Stage | None = None,
        operation: str | None = None,
        errno: int | None = None,
    ) -> None:
        status_unknown = stage is not None and stage.status_unknown
        if status_unknown:
            message += " (delivery status unknown)"
        super().__init__(message)  # OSError.__init__ resets errno: set attributes after it
        self.stage = stage
        self.operation = operation
        self.errno = errno
        self.status_unknown = status_unknown


class MessageSourceError(SMTPError):
    """The message file or file handle could not be read (POE::Component::Client::SMTP's
    ``MessageFile_Error``)."""


def _copy_error(error: SMTPError) -> SMTPError:
    """A shallow copy of an error, whatever its ``__init__`` takes."""
    cls = type(error)
    clone: SMTPError = cls.__new__(cls)
    clone.args = error.args
    clone.__dict__.update(error.__dict__)
    if isinstance(error, OSError):
        # OSError keeps errno outside __dict__ (ConnectionLostError).
        clone.errno = error.errno  # type: ignore[attr-defined]
    return clone


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
