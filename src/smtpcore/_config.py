"""Session configuration and the message a caller submits."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union, final

if TYPE_CHECKING:
    import email.message

from ._auth import MECHANISMS, Credentials, OAuth2Token
from ._commands import BodyType, Notify, Ret, validate_domain, validate_envid, validate_mailbox
from ._errors import InvalidInputError
from ._message import _email_message_class, envelope_from_message, to_bytes_message
from ._replies import DEFAULT_MAX_LINE_LENGTH, DEFAULT_MAX_LINES, DEFAULT_MAX_REPLY_SIZE
from ._slots import slot_setters

__all__ = ["OutgoingMessage", "QuitAfter", "SessionConfig", "TLSPolicy"]


class TLSPolicy(enum.Enum):
    """How the session uses TLS.

    * ``NONE``: never STARTTLS (for trusted local relays and tests).
    * ``OPPORTUNISTIC``: STARTTLS when offered; go on in plaintext when it is
      not offered or refused with a reply. A failed handshake is fatal.
    * ``STARTTLS``: TLS required: no STARTTLS, a refusal or a failed handshake
      ends the session before any AUTH or MAIL byte.
    * ``IMPLICIT``: TLS from the first byte (RFC 8314, port 465).
    """

    NONE = "none"
    OPPORTUNISTIC = "opportunistic"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"

    @property
    def required(self) -> bool:
        """True when the session must not proceed without TLS."""
        return self in (TLSPolicy.STARTTLS, TLSPolicy.IMPLICIT)


class QuitAfter(enum.Enum):
    """Where a probing session stops and sends QUIT (swaks' ``--quit-after``)."""

    CONNECT = "connect"
    EHLO = "ehlo"
    TLS = "tls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"

    @property
    def before_mail(self) -> bool:
        """The session ends before any MAIL: it can probe, not send a message."""
        return self in (QuitAfter.CONNECT, QuitAfter.EHLO, QuitAfter.TLS, QuitAfter.AUTH)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Everything a session needs to know before it starts.

    Attributes:
        local_hostname: the name sent with EHLO/HELO/LHLO (POE::Component::Client::SMTP's
            ``MyHostname``): a domain or an address literal.
        server_hostname: the name TLS verifies (None: the adapter's host).
        tls: the TLS policy.
        credentials: AUTH credentials (a password or an OAuth2 token).
        auth_mechanisms: allow-list of SASL mechanisms (None: every mechanism
            smtpcore implements that suits the credentials).
        allow_insecure_auth: send credentials without TLS. Off by default.
        helo_fallback: fall back to HELO when EHLO gets 500/502 (never when
            TLS is required, and never in LMTP).
        lmtp: speak LMTP (RFC 2033) instead of SMTP.
        pipelining: use PIPELINING when offered (RFC 2920).
        chunking: use BDAT when CHUNKING is offered (RFC 3030).
        strict_line_endings: refuse bare CR/LF in bodies instead of
            canonicalising them to CRLF.
        allow_controls: let C0 control characters other than NUL through.
        require_all_recipients: a message with any refused recipient fails.
        max_recipients: recipients per transaction; more are sent in further
            transactions of the same message.
        transaction_log: keep the transcript (POE::Component::Client::SMTP's
            ``TransactionLog``).
        log_message_data: put message data lines in the transcript too.
        recipient_events: report each RCPT reply as a ``RecipientResult``
            event as it arrives (every message's result has them anyway).
        tls_verified: the adapter verifies the server's certificate and name
            when it starts TLS. False (``dangerously_skip_tls_verification``)
            means TLS protects against eavesdropping only: a message that
            demands REQUIRETLS is then refused (RFC 8689 4.2.1).
        quit_after: stop early and QUIT (probing; no message data is sent).
        max_auth_steps: bound on AUTH challenge rounds.
        max_reply_line, max_reply_lines, max_reply_size: reply parser limits.
    """

    local_hostname: str = "localhost"
    server_hostname: str | None = None
    tls: TLSPolicy = TLSPolicy.OPPORTUNISTIC
    credentials: Credentials | OAuth2Token | None = field(default=None, repr=False)
    auth_mechanisms: tuple[str, ...] | None = None
    allow_insecure_auth: bool = False
    helo_fallback: bool = True
    lmtp: bool = False
    pipelining: bool = True
    chunking: bool = True
    strict_line_endings: bool = False
    allow_controls: bool = False
    require_all_recipients: bool = False
    max_recipients: int | None = None
    transaction_log: bool = False
    log_message_data: bool = False
    recipient_events: bool = False
    tls_verified: bool = True
    quit_after: QuitAfter | None = None
    max_auth_steps: int = 8
    max_reply_line: int = DEFAULT_MAX_LINE_LENGTH
    max_reply_lines: int = DEFAULT_MAX_LINES
    max_reply_size: int = DEFAULT_MAX_REPLY_SIZE

    def __post_init__(self) -> None:
        validate_domain(self.local_hostname, field="local hostname")
        if self.auth_mechanisms is not None:
            unknown = [m for m in self.auth_mechanisms if m.upper() not in MECHANISMS]
            if unknown:
                raise InvalidInputError("auth mechanisms", "unknown mechanism", unknown)
        if self.max_recipients is not None and self.max_recipients < 1:
            raise InvalidInputError("max recipients", "must be at least 1", self.max_recipients)
        if self.max_auth_steps < 1:
            raise InvalidInputError("max auth steps", "must be at least 1", self.max_auth_steps)

    def __repr__(self) -> str:
        shown = "None" if self.credentials is None else "<redacted>"
        return (
            f"SessionConfig(local_hostname={self.local_hostname!r}, tls={self.tls.value}, "
            f"credentials={shown}, lmtp={self.lmtp}, pipelining={self.pipelining}, "
            f"chunking={self.chunking})"
        )


MessageInput = Union[bytes, bytearray, memoryview, str, "email.message.Message"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    """A message to send: envelope, content and per-message ESMTP options.

    ``data`` holds the message in memory; None means the adapter streams it
    (``NeedBody`` actions), with ``size_hint`` as the estimate for SIZE=.

    Build one with :meth:`build`, which accepts bytes, str or an
    ``email.message.EmailMessage`` and derives the envelope from the headers
    when it is not given.
    """

    sender: str
    recipients: tuple[str, ...]
    data: bytes | None = field(default=None, repr=False)
    size_hint: int | None = None
    smtputf8: bool = False
    body_type: BodyType | None = None
    ret: Ret | None = None
    envid: str | None = None
    notify: frozenset[Notify] | None = None
    orcpt: bool = False
    requiretls: bool = False
    _needs_smtputf8: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.recipients, tuple):
            raise InvalidInputError("recipients", "must be a tuple of addresses", self.recipients)
        if not self.recipients:
            raise InvalidInputError("recipients", "at least one recipient is needed")
        # RFC 5321 4.1.2; non-ASCII addresses are checked here by grammar and
        # later against the server's SMTPUTF8 (RFC 6531).
        if self.sender != "":
            validate_mailbox(self.sender, field="sender", utf8=True)
        for rcpt in self.recipients:
            if rcpt.lower() != "postmaster":
                validate_mailbox(rcpt, field="recipient", utf8=True)
        if self.size_hint is not None and self.size_hint < 0:
            raise InvalidInputError("size hint", "must not be negative", self.size_hint)
        if self.envid is not None:
            validate_envid(self.envid)
        utf8 = (
            self.smtputf8
            or not self.sender.isascii()
            or not all(r.isascii() for r in self.recipients)
        )
        object.__setattr__(self, "_needs_smtputf8", utf8)

    @property
    def needs_smtputf8(self) -> bool:
        """True when the envelope or the caller asks for SMTPUTF8 (RFC 6531)."""
        return self._needs_smtputf8

    @property
    def wants_dsn(self) -> bool:
        """True when any RFC 3461 parameter is requested."""
        return bool(self.ret or self.envid or self.notify or self.orcpt)

    @classmethod
    def build(
        cls,
        *,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        message: MessageInput | None = None,
        size_hint: int | None = None,
        smtputf8: bool = False,
        body_type: BodyType | None = None,
        ret: Ret | None = None,
        envid: str | None = None,
        notify: Iterable[Notify] | None = None,
        orcpt: bool = False,
        requiretls: bool = False,
    ) -> OutgoingMessage:
        """Build a message from the caller's inputs.

        Args:
            sender: envelope sender; ``""`` is the null reverse-path. None:
                derived from an ``EmailMessage``'s headers.
            recipients: one address or several. None: derived from an
                ``EmailMessage``'s To/Cc/Bcc (Resent-* when present).
            message: bytes, str (encoded as UTF-8), or an email message
                (serialised with the SMTP or SMTPUTF8 policy, Bcc removed).
                None: the body is streamed by the adapter.
            size_hint: for a streamed body, its approximate size.
            smtputf8: ask for SMTPUTF8 even with an ASCII envelope.
            body_type: declare BODY= explicitly (BINARYMIME needs CHUNKING).
            ret, envid, notify, orcpt: RFC 3461 DSN requests (``orcpt`` sends
                each recipient as its own ORCPT).
            requiretls: RFC 8689 REQUIRETLS for this message.
        """
        message_class = _email_message_class()
        if (
            message_class is not None
            and isinstance(message, message_class)
            and (sender is None or recipients is None)
        ):
            # Only what the caller did not give is read from the headers.
            derived_sender, derived_rcpts = envelope_from_message(message)
            sender = derived_sender if sender is None else sender
            if recipients is None:
                recipients = derived_rcpts
        if sender is None:
            raise InvalidInputError("sender", "no sender given")
        if recipients is None:
            raise InvalidInputError("recipients", "no recipients given")
        rcpts = (recipients,) if isinstance(recipients, str) else tuple(recipients)
        for r in rcpts:
            if not isinstance(r, str):
                raise InvalidInputError("recipient", "must be a str", r)
        data: bytes | None
        if message is None:
            data = None
        elif isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
        else:
            # RFC 6531 3.4: with SMTPUTF8 an email message's headers may go as
            # raw UTF-8 (else as RFC 2047 encoded words).
            utf8 = smtputf8 or not sender.isascii() or not all(r.isascii() for r in rcpts)
            data = to_bytes_message(message, smtputf8=utf8)
        # What cls(sender=..., ...) makes, its fields set through their slots
        # (smtpcore._slots: half the cost on every message's path), then
        # checked by the same __post_init__.
        built: OutgoingMessage = _new(cls)
        values = (
            sender,
            rcpts,
            data,
            size_hint,
            smtputf8,
            body_type,
            ret,
            envid,
            None if notify is None else frozenset(notify),
            orcpt,
            requiretls,
            False,
        )
        for setter, value in zip(_OUTGOING_SETTERS, values, strict=True):
            setter(built, value)
        built.__post_init__()
        return built


_new = object.__new__
_OUTGOING_SETTERS = slot_setters(
    OutgoingMessage,
    "sender",
    "recipients",
    "data",
    "size_hint",
    "smtputf8",
    "body_type",
    "ret",
    "envid",
    "notify",
    "orcpt",
    "requiretls",
    "_needs_smtputf8",
)
