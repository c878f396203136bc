"""SMTP commands as typed values: checked when built, serialised to bytes.

Theory of operation
-------------------
Every command the client can send is a frozen value whose constructor checks
each argument against the grammar of RFC 5321 4.1.2 (and of the extension that
defines it). A command that exists can be put on the wire as it is: there is
no way to build one whose line carries a CR, an LF or a NUL, or a parameter
smuggled in through an address (``"a@b.c> SIZE=1"``). This is a grammar check
for the envelope, not a header parser: display names, comments and folding
have no place here. The address grammar itself (domains, mailboxes, xtext,
ENVID) is in :mod:`smtpcore._address`; its public names are re-exported here.

:func:`mail_line` and :func:`rcpt_line` make the MAIL and RCPT lines of
values checked before (when a message was built), without checking them
again: :class:`Mail` and :class:`Rcpt` build their own lines with them.

Each command knows

* its exact line, CRLF included (:meth:`Command.to_bytes`), and what a log may
  show of it (:meth:`Command.transcript`: the same, except that SASL data is
  replaced by ``<redacted>``);
* its :class:`~smtpcore._errors.Stage`, the timeout category of its reply
  (RFC 5321 4.5.3.2);
* whether it ends a pipelined group (``ends_group``, RFC 2920 3.1).

Line lengths
------------
RFC 5321 4.5.3.1.4 limits a command line to 512 octets with its CRLF and lets
extensions raise the limit. Here a line may be 512 octets plus the allowance
of each extension whose parameter it carries:

========  =====================  ==========================================
command   parameter              allowance
========  =====================  ==========================================
MAIL      SIZE                   26 (RFC 1870 3)
MAIL      BODY                   16 (room for ``" BODY=BINARYMIME"``)
MAIL      SMTPUTF8               10 (RFC 6531 3.1)
MAIL      RET and/or ENVID       100 (RFC 3461 4)
MAIL      AUTH=                  500 (RFC 4954 3)
MAIL      REQUIRETLS             11 (its own length; RFC 8689 names none)
RCPT      NOTIFY and/or ORCPT    500 (RFC 3461 4)
========  =====================  ==========================================

Parameters given in ``extra`` get no allowance: their extension is unknown
here, so they must fit in the room the others leave. The sum is a budget for
the whole line, not a per-parameter cap: a short address leaves room for a
long ENVID.

RFC 4954 4: the AUTH command line itself stays within the SMTP limit of 512;
an initial response that does not fit is sent as the answer to the server's
first, empty, challenge instead (see :meth:`Auth.initial_response_fits`).
Continuation lines may be up to 12288 octets, the size RFC 4954 4 calls
sufficient for deployed mechanisms.
"""

from __future__ import annotations

import base64
import enum
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias, final

# The address grammar has a module of its own; its public names are
# re-exported here, where they were first defined.
from ._address import (
    MAX_DOMAIN_LENGTH,
    MAX_ENVID_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_LOCAL_PART_LENGTH,
    MAX_PATH_LENGTH,
    _check_dot_string,
    _check_text,
    _describe,
    _is_postmaster,
    _scan_quoted_string,
    _utf8_addr_xtext,
    validate_domain,
    validate_envid,
    validate_mailbox,
    xtext_decode,
    xtext_encode,
)
from ._errors import InvalidInputError, Stage

__all__ = [
    "MAX_AUTH_LINE",
    "MAX_COMMAND_LINE",
    "MAX_DOMAIN_LENGTH",
    "MAX_ENVID_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_LOCAL_PART_LENGTH",
    "MAX_PATH_LENGTH",
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Bdat",
    "BodyType",
    "Command",
    "Data",
    "Ehlo",
    "EndOfData",
    "Expn",
    "Helo",
    "Lhlo",
    "Mail",
    "Noop",
    "Notify",
    "Quit",
    "RawCommand",
    "Rcpt",
    "Ret",
    "Rset",
    "StartTLS",
    "Vrfy",
    "mail_line",
    "rcpt_line",
    "validate_domain",
    "validate_envid",
    "validate_mailbox",
    "xtext_decode",
    "xtext_encode",
]

#: RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF.
MAX_COMMAND_LINE = 512
#: RFC 4954 4: 12288 octets is "a sufficient line length limit" for the
#: continuation lines of deployed SASL mechanisms.
MAX_AUTH_LINE = 12288

# The line allowances of the table in the module docstring.
_SIZE_ALLOWANCE = 26
_BODY_ALLOWANCE = 16
_SMTPUTF8_ALLOWANCE = 10
_DSN_MAIL_ALLOWANCE = 100
_AUTH_PARAM_ALLOWANCE = 500
_REQUIRETLS_ALLOWANCE = 11
_DSN_RCPT_ALLOWANCE = 500

# RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 4422 3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT /
# HYPHEN / UNDERSCORE. Lower case is accepted here and upper-cased.
_SASL_MECH = re.compile(r"[A-Za-z0-9_-]{1,20}")
# An extension verb: a letter, then letters, digits and hyphens (the shape of
# an RFC 5321 4.1.2 ehlo-keyword, which names the extension), at most 20 long.
_VERB = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,19}")

# -- parameters ----------------------------------------------------------------------


class BodyType(enum.Enum):
    """The ``BODY=`` parameter of MAIL (RFC 6152 2, RFC 3030 3)."""

    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"
    BINARY_MIME = "BINARYMIME"


class Ret(enum.Enum):
    """The ``RET=`` parameter of MAIL (RFC 3461 4.3): what a DSN returns."""

    FULL = "FULL"
    HDRS = "HDRS"


class Notify(enum.Enum):
    """A ``NOTIFY=`` value of RCPT (RFC 3461 4.1)."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


# RFC 3461 4.1 lists them in this order; a fixed order makes lines comparable.
_NOTIFY_ORDER = (Notify.SUCCESS, Notify.FAILURE, Notify.DELAY)

_MAIL_KEYWORDS = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH", "REQUIRETLS"})
_RCPT_KEYWORDS = frozenset({"NOTIFY", "ORCPT"})

#: ESMTP parameters as (keyword, value) pairs; a value of None sends the keyword alone.
Params: TypeAlias = tuple[tuple[str, str | None], ...]


def _check_size(value: object, field: str, *, max_digits: int) -> int:
    # bool is an int subclass; SIZE=True is a caller mistake, not SIZE=1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(field, f"must be an int, not {type(value).__name__}", value)
    # Compare before any conversion to text: str() of a huge int raises
    # ValueError (the int max_str_digits limit), and the error shows the value.
    limit = 10**max_digits
    shown = value if -limit < value < limit else None
    if value < 0:
        raise InvalidInputError(field, "must not be negative", shown)
    if value >= limit:
        raise InvalidInputError(field, f"has more than {max_digits} digits", shown)
    return int(value)


def _check_extra(value: object, *, reserved: frozenset[str], utf8: bool) -> Params:
    field = "ESMTP parameter"
    if not isinstance(value, (tuple, list)):
        raise InvalidInputError(
            field, f"extra must be a tuple of (keyword, value) pairs, not {type(value).__name__}"
        )
    seen: set[str] = set()
    checked: list[tuple[str, str | None]] = []
    for item in value:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidInputError(field, "each extra parameter is a (keyword, value) pair", item)
        keyword, param = item
        if not isinstance(keyword, str) or not _ESMTP_KEYWORD.fullmatch(keyword):
            raise InvalidInputError(
                field,
                "keyword must be a letter or digit followed by letters, digits and hyphens "
                "(RFC 5321 4.1.2 esmtp-keyword)",
                keyword,
            )
        upper = keyword.upper()
        if upper in reserved:
            raise InvalidInputError(
                field, f"{upper} has its own argument; it cannot be an extra parameter", keyword
            )
        if upper in seen:
            raise InvalidInputError(field, f"{upper} is given twice", keyword)
        seen.add(upper)
        if param is not None:
            _check_esmtp_value(param, keyword, utf8=utf8)
        checked.append((keyword, param))
    return tuple(checked)


def _check_esmtp_value(value: object, keyword: str, *, utf8: bool) -> None:
    field = f"{keyword} parameter"
    text = _check_text(value, field, utf8=utf8, shown=value)
    # RFC 5321 4.1.2: esmtp-value = 1*(%d33-60 / %d62-126); RFC 6531 3.3
    # adds UTF8-non-ascii. No space (it would start another parameter) and
    # no "=".
    if not text:
        raise InvalidInputError(field, "value is empty (omit it with None instead)", value)
    for char in " =":
        if char in text:
            raise InvalidInputError(field, f"value contains {_describe(char)}", value)


def _format_params(params: Params) -> str:
    """The parameters as they follow the path, each after one SP."""
    return "".join(
        f" {keyword}" if value is None else f" {keyword}={value}" for keyword, value in params
    )


def _notify_param(notify: frozenset[Notify]) -> str:
    # RFC 3461 4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element.
    if Notify.NEVER in notify:
        return " NOTIFY=NEVER"
    return " NOTIFY=" + ",".join(n.value for n in _NOTIFY_ORDER if n in notify)


# Every valid NOTIFY= parameter, made once: NEVER, or a non-empty subset of
# the other three.
_NOTIFY_PARAMS = {
    notify: _notify_param(notify)
    for notify in [
        frozenset({Notify.NEVER}),
        *(
            frozenset(chosen)
            for count in range(1, len(_NOTIFY_ORDER) + 1)
            for chosen in itertools.combinations(_NOTIFY_ORDER, count)
        ),
    ]
}


# -- envelope lines ----------------------------------------------------------------------
#
# MAIL and RCPT lines for values already checked: the session checks every
# address once, when the message is built, and then makes four or so of these
# lines per message. Each is one string built by concatenation (no list, no
# enum .value lookups), encoded once; the line limit is only worked out for
# the rare line longer than 512 octets.


def mail_line(
    sender: str,
    *,
    size: int | None,
    body: BodyType | None,
    smtputf8: bool,
    ret: Ret | None,
    envid: str | None,
    requiretls: bool,
) -> bytes:
    """The ``MAIL FROM`` line :class:`Mail` makes of the same values.

    Nothing is checked but the length of the line: the caller guarantees
    that ``sender`` passed :func:`validate_mailbox` (with ``utf8=smtputf8``)
    or is ``""``, that ``envid`` passed :func:`validate_envid`, and that
    ``size`` is a non-negative int of at most 20 digits.

    Returns:
        The exact line, CRLF included: ``Mail(...).to_bytes()``.

    Raises:
        InvalidInputError: the line is longer than its limit (the error
            ``Mail`` raises; see the module docstring).
    """
    return _mail_line(sender, size, body, smtputf8, ret, envid, None, requiretls, ())


def rcpt_line(
    recipient: str,
    *,
    notify: frozenset[Notify] | None,
    orcpt: str | None,
    utf8: bool,
    extra: Params = (),
) -> bytes:
    """The ``RCPT TO`` line :class:`Rcpt` makes of the same values.

    Nothing is checked but the length of the line: the caller guarantees
    that ``recipient`` passed :func:`validate_mailbox` (with the same
    ``utf8``) or is ``"Postmaster"``, that ``notify`` is ``{Notify.NEVER}``
    or a non-empty set of the others, and that ``orcpt`` is non-empty text
    ``Rcpt`` accepts, and that ``extra`` passed ``Rcpt``'s checks. ``utf8``
    does not change the line (non-ASCII goes out as UTF-8 either way); it is
    taken so that the values are Rcpt's.

    Returns:
        The exact line, CRLF included: ``Rcpt(...).to_bytes()``.

    Raises:
        InvalidInputError: the line is longer than its limit (the error
            ``Rcpt`` raises).
    """
    # Parameters in a fixed order: NOTIFY ORCPT, then the extra ones.
    line = "RCPT TO:<" + recipient + ">"
    if notify is not None:
        line += _NOTIFY_PARAMS.get(notify) or _notify_param(notify)
    if orcpt is not None:
        if orcpt.isascii():
            line += " ORCPT=rfc822;" + xtext_encode(orcpt)
        else:
            # RFC 6533 3: the 7-bit form of a UTF-8 address, safe in ORCPT.
            line += " ORCPT=utf-8;" + _utf8_addr_xtext(orcpt)
    if extra:
        line += _format_params(extra)
    wire = (line + "\r\n").encode()
    if len(wire) > MAX_COMMAND_LINE:
        limit = _rcpt_line_limit(notify is not None or orcpt is not None)
        if len(wire) > limit:
            raise _line_too_long(len(wire), limit, "RCPT parameters")
    return wire


def _mail_line(
    sender: str,
    size: int | None,
    body: BodyType | None,
    smtputf8: bool,
    ret: Ret | None,
    envid: str | None,
    auth: str | None,
    requiretls: bool,
    extra: Params,
) -> bytes:
    # Parameters in a fixed order: SIZE BODY SMTPUTF8 RET ENVID AUTH
    # REQUIRETLS, then the extra ones. An enum's _value_ is its value
    # without the descriptor lookup behind .value.
    line = "MAIL FROM:<" + sender + ">"
    if size is not None:
        line += f" SIZE={size}"  # an int: "{size:d}" is the same, only slower
    if body is not None:
        line += " BODY=" + body._value_
    if smtputf8:
        line += " SMTPUTF8"
    if ret is not None:
        line += " RET=" + ret._value_
    if envid is not None:
        line += " ENVID=" + xtext_encode(envid)
    if auth is not None:
        line += " AUTH=" + xtext_encode(auth)
    if requiretls:
        line += " REQUIRETLS"
    if extra:
        line += _format_params(extra)
    wire = (line + "\r\n").encode()
    if len(wire) > MAX_COMMAND_LINE:
        limit = _mail_line_limit(
            size is not None,
            body is not None,
            smtputf8,
            ret is not None or envid is not None,
            auth is not None,
            requiretls,
        )
        if len(wire) > limit:
            raise _line_too_long(len(wire), limit, "MAIL parameters")
    return wire


def _mail_line_limit(
    size: bool, body: bool, smtputf8: bool, dsn: bool, auth: bool, requiretls: bool
) -> int:
    # RFC 5321 4.5.3.1.4: 512, raised by each extension used (module docstring).
    limit = MAX_COMMAND_LINE
    if size:
        limit += _SIZE_ALLOWANCE  # RFC 1870 3
    if body:
        limit += _BODY_ALLOWANCE
    if smtputf8:
        limit += _SMTPUTF8_ALLOWANCE  # RFC 6531 3.1
    if dsn:
        limit += _DSN_MAIL_ALLOWANCE  # RFC 3461 4
    if auth:
        limit += _AUTH_PARAM_ALLOWANCE  # RFC 4954 3
    if requiretls:
        limit += _REQUIRETLS_ALLOWANCE
    return limit


def _rcpt_line_limit(dsn: bool) -> int:
    # RFC 3461 4: NOTIFY and ORCPT raise the limit by 500.
    return MAX_COMMAND_LINE + _DSN_RCPT_ALLOWANCE if dsn else MAX_COMMAND_LINE


# -- commands --------------------------------------------------------------------------


class Command:
    """Base of every command: a line to send and what to expect of its reply.

    Attributes:
        verb: the command verb (``"MAIL"``); ``"AUTH"`` for SASL continuation
            lines, ``"."`` for the end of data.
        ends_group: RFC 2920 3.1: the command must be the last of a pipelined
            group; the client waits for its reply before sending more.
    """

    __slots__ = ()

    verb: ClassVar[str]
    ends_group: ClassVar[bool]
    _stage: ClassVar[Stage] = Stage.COMMAND

    @property
    def stage(self) -> Stage:
        """The timeout category of the reply to this command."""
        return self._stage

    @property
    def line_limit(self) -> int:
        """The longest line, CRLF included, this command may have."""
        return MAX_COMMAND_LINE

    def to_bytes(self) -> bytes:
        """The exact line to send, CRLF included."""
        return self._line()

    def transcript(self) -> bytes:
        """What a transcript or log may show of this command."""
        return self.to_bytes()

    def _line(self) -> bytes:
        raise NotImplementedError

    def _check_line_length(self, field: str) -> bytes:
        """Check the line against :attr:`line_limit`; return it."""
        return _check_length(self._line(), self.line_limit, field)


def _check_length(line: bytes, limit: int, field: str) -> bytes:
    """Return ``line`` if it is at most ``limit`` octets long, else raise."""
    if len(line) > limit:
        raise _line_too_long(len(line), limit, field)
    return line


def _line_too_long(length: int, limit: int, field: str) -> InvalidInputError:
    # RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF,
    # and extensions may raise the limit (the module docstring's table).
    return InvalidInputError(
        field,
        f"makes the command line {length} octets long, more than its limit of "
        f"{limit} (RFC 5321 4.5.3.1.4 plus extension allowances)",
    )


def _check_hello_domain(domain: object, field: str) -> None:
    # The greeting goes out before the client knows whether the server takes
    # SMTPUTF8, so an internationalized name must be given as A-labels.
    text = _check_text(
        domain,
        field,
        utf8=False,
        non_ascii_reason="contains non-ASCII characters; give the A-label (xn--) form",
        shown=domain,
    )
    validate_domain(text, field=field)


def _simple_line(verb: str, argument: str = "") -> bytes:
    text = f"{verb} {argument}\r\n" if argument else f"{verb}\r\n"
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Hello:
    """What EHLO, HELO and LHLO share: one domain, checked and sent alike.

    A mixin rather than a Command subclass, so that each greeting stays a
    final Command of its own with the same fields, repr and equality.
    """

    verb: ClassVar[str]
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.EHLO

    domain: str

    def __post_init__(self) -> None:
        field = f"{self.verb} domain"
        _check_hello_domain(self.domain, field)
        _check_length(self._line(), MAX_COMMAND_LINE, field)

    def _line(self) -> bytes:
        return _simple_line(self.verb, self.domain)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Ehlo(_Hello, Command):
    """``EHLO domain`` (RFC 5321 4.1.1.1): open an ESMTP session.

    The domain is an ASCII domain or an address literal: it is sent before
    the client knows whether the server takes SMTPUTF8.
    """

    verb: ClassVar[str] = "EHLO"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Helo(_Hello, Command):
    """``HELO domain`` (RFC 5321 4.1.1.1): open a plain SMTP session."""

    verb: ClassVar[str] = "HELO"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Lhlo(_Hello, Command):
    """``LHLO domain`` (RFC 2033 4.1): open an LMTP session."""

    verb: ClassVar[str] = "LHLO"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLS(Command):
    """``STARTTLS`` (RFC 3207 4): ends a pipelined group (RFC 3207 4.2)."""

    verb: ClassVar[str] = "STARTTLS"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.STARTTLS

    def _line(self) -> bytes:
        return b"STARTTLS\r\n"


def _check_mechanism(value: object) -> str:
    field = "AUTH mechanism"
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a str, not {type(value).__name__}")
    # RFC 4422 3.1: sasl-mech = 1*20mech-char.
    if not _SASL_MECH.fullmatch(value):
        raise InvalidInputError(
            field,
            "must be 1 to 20 characters of A-Z, 0-9, '-' and '_' (RFC 4422 3.1)",
            value,
        )
    return value.upper()


def _auth_line(mechanism: str, initial_response: bytes | None) -> bytes:
    if initial_response is None:
        return f"AUTH {mechanism}\r\n".encode("ascii")
    # RFC 4954 4: a zero-length initial response is sent as a single "=".
    encoded = base64.b64encode(initial_response) if initial_response else b"="
    return b"AUTH " + mechanism.encode("ascii") + b" " + encoded + b"\r\n"


def _check_secret_bytes(value: object, field: str) -> bytes:
    # Never show the value: it is SASL data.
    if not isinstance(value, bytes):
        raise InvalidInputError(field, f"must be bytes, not {type(value).__name__}")
    return value


def _check_shown(value: object, field: str) -> None:
    # What a transcript shows of SASL data (the mechanism's transcript rule):
    # one line, so no CR or LF; never shown in an error, as it might hold
    # what the caller meant to hide.
    if value is not None and (not isinstance(value, bytes) or b"\r" in value or b"\n" in value):
        raise InvalidInputError(field, "must be None or bytes without CR or LF")


_REDACTED_SASL = b"<redacted>"


@final
@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Auth(Command):
    """``AUTH mechanism [initial-response]`` (RFC 4954 4).

    Attributes:
        mechanism: the SASL mechanism name, upper-cased.
        initial_response: the raw (not yet base64) initial response, or
            ``None`` to send none. Never shown by ``repr`` or
            :meth:`transcript`.
        shown: what :meth:`transcript` shows in place of the initial
            response: the mechanism's rule
            (``SASLMechanism.transcript_response``); ``None`` for
            ``<redacted>``. Not part of equality.
    """

    verb: ClassVar[str] = "AUTH"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.AUTH

    mechanism: str
    initial_response: bytes | None = None
    shown: bytes | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mechanism", _check_mechanism(self.mechanism))
        if self.initial_response is not None:
            _check_secret_bytes(self.initial_response, "AUTH initial response")
        _check_shown(self.shown, "AUTH transcript form")
        length = len(self._line())
        if length > MAX_COMMAND_LINE:
            # RFC 4954 4: "the AUTH command is still subject to the line length
            # limitations defined in [SMTP]"; the client then sends no initial
            # response and answers the server's empty challenge with it.
            raise InvalidInputError(
                "AUTH initial response",
                f"makes the AUTH line {length} octets long, more than {MAX_COMMAND_LINE}; "
                "send it as the answer to the first challenge (RFC 4954 4)",
            )

    @staticmethod
    def initial_response_fits(mechanism: str, initial_response: bytes) -> bool:
        """Whether ``initial_response`` may go on the AUTH line (RFC 4954 4).

        Raises:
            InvalidInputError: the mechanism name or response is malformed.
        """
        data = _check_secret_bytes(initial_response, "AUTH initial response")
        return len(_auth_line(_check_mechanism(mechanism), data)) <= MAX_COMMAND_LINE

    def _line(self) -> bytes:
        return _auth_line(self.mechanism, self.initial_response)

    def transcript(self) -> bytes:
        """The AUTH line with any initial response replaced by :attr:`shown`
        (``<redacted>`` by default)."""
        if self.initial_response is None:
            return self.to_bytes()
        shown = _REDACTED_SASL if self.shown is None else self.shown
        return b"AUTH " + self.mechanism.encode("ascii") + b" " + shown + b"\r\n"

    def __repr__(self) -> str:
        shown = "None" if self.initial_response is None else "<redacted>"
        return f"Auth(mechanism={self.mechanism!r}, initial_response={shown})"


@final
@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class AuthResponse(Command):
    """One SASL continuation line: base64 of ``data`` (RFC 4954 4).

    Empty ``data`` is an empty line. ``data`` is never shown by ``repr`` or
    :meth:`transcript`; ``shown`` is what :meth:`transcript` shows instead:
    the mechanism's rule (``SASLMechanism.transcript_response``), or ``None``
    for ``<redacted>``. It is not part of equality.
    """

    verb: ClassVar[str] = "AUTH"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.AUTH

    data: bytes
    shown: bytes | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_secret_bytes(self.data, "AUTH response")
        _check_shown(self.shown, "AUTH response transcript form")
        length = len(self._line())
        if length > MAX_AUTH_LINE:
            raise InvalidInputError(
                "AUTH response",
                f"is {length} octets long once encoded, more than {MAX_AUTH_LINE} (RFC 4954 4)",
            )

    @property
    def line_limit(self) -> int:
        """RFC 4954 4: continuation lines may be up to 12288 octets."""
        return MAX_AUTH_LINE

    def _line(self) -> bytes:
        return base64.b64encode(self.data) + b"\r\n"

    def transcript(self) -> bytes:
        """:attr:`shown` (``<redacted>`` by default) and CRLF."""
        return (_REDACTED_SASL if self.shown is None else self.shown) + b"\r\n"

    def __repr__(self) -> str:
        return "AuthResponse(data=<redacted>)"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AuthCancel(Command):
    """``*``: cancel the SASL exchange (RFC 4954 4)."""

    verb: ClassVar[str] = "AUTH"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.AUTH

    def _line(self) -> bytes:
        return b"*\r\n"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Mail(Command):
    """``MAIL FROM:<sender>`` with its ESMTP parameters (RFC 5321 4.1.1.2).

    Parameters go on the line in a fixed order: ``SIZE BODY SMTPUTF8 RET
    ENVID AUTH REQUIRETLS``, then ``extra`` in the order given.

    Attributes:
        sender: the reverse-path mailbox; ``""`` is the null path ``<>``
            (RFC 5321 4.5.5), used for bounces.
        size: RFC 1870 ``SIZE=``, the message size in octets.
        body: RFC 6152 / RFC 3030 ``BODY=``.
        smtputf8: RFC 6531 ``SMTPUTF8``; allows non-ASCII in the sender, in
            ``auth`` and in extra values.
        ret: RFC 3461 4.3 ``RET=``.
        envid: RFC 3461 4.4 ``ENVID=``: printable ASCII, at most 100
            characters, sent as xtext.
        auth: RFC 4954 5 ``AUTH=``: ``"<>"`` or a mailbox, sent as xtext.
        requiretls: RFC 8689 ``REQUIRETLS``.
        extra: further parameters as (keyword, value or None) pairs.
    """

    verb: ClassVar[str] = "MAIL"
    ends_group: ClassVar[bool] = False
    _stage: ClassVar[Stage] = Stage.MAIL

    sender: str
    size: int | None = None
    body: BodyType | None = None
    smtputf8: bool = False
    ret: Ret | None = None
    envid: str | None = None
    auth: str | None = None
    requiretls: bool = False
    extra: Params = ()
    # The line, built once when the command is checked (the hot path of a
    # bulk sender builds a MAIL and several RCPTs per message).
    _wire: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # RFC 5321 4.1.1.2: Reverse-path = Path / "<>"; "" stands for "<>".
        if not isinstance(self.sender, str) or self.sender:
            validate_mailbox(self.sender, field="sender", utf8=self.smtputf8)
        if self.size is not None:
            # RFC 1870 3: size-value ::= 1*20DIGIT.
            object.__setattr__(self, "size", _check_size(self.size, "SIZE", max_digits=20))
        if self.body is not None and not isinstance(self.body, BodyType):
            raise InvalidInputError("BODY", "must be a BodyType", self.body)
        if self.ret is not None and not isinstance(self.ret, Ret):
            raise InvalidInputError("RET", "must be a Ret", self.ret)
        if self.envid is not None:
            validate_envid(self.envid)
        if self.auth is not None and self.auth != "<>":
            # RFC 4954 5: the decoded AUTH= value is a mailbox or "<>".
            validate_mailbox(self.auth, field="AUTH= parameter", utf8=self.smtputf8)
        if self.extra != ():
            extra = _check_extra(self.extra, reserved=_MAIL_KEYWORDS, utf8=self.smtputf8)
            object.__setattr__(self, "extra", extra)
        line = _mail_line(
            self.sender,
            self.size,
            self.body,
            self.smtputf8,
            self.ret,
            self.envid,
            self.auth,
            self.requiretls,
            self.extra,
        )
        object.__setattr__(self, "_wire", line)

    def to_bytes(self) -> bytes:
        """The exact line to send, CRLF included."""
        return self._wire

    @property
    def line_limit(self) -> int:
        """512 plus the allowance of each extension used (module docstring)."""
        return _mail_line_limit(
            self.size is not None,
            self.body is not None,
            self.smtputf8,
            self.ret is not None or self.envid is not None,
            self.auth is not None,
            self.requiretls,
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Rcpt(Command):
    """``RCPT TO:<recipient>`` with its ESMTP parameters (RFC 5321 4.1.1.3).

    Parameters go on the line in a fixed order: ``NOTIFY ORCPT``, then
    ``extra`` in the order given.

    Attributes:
        recipient: the forward-path mailbox, or ``"Postmaster"`` alone
            (RFC 5321 4.1.1.3). Never empty: ``<>`` is only a reverse-path.
        notify: RFC 3461 4.1 ``NOTIFY=``: ``{Notify.NEVER}`` or a non-empty
            set of SUCCESS, FAILURE and DELAY.
        orcpt: RFC 3461 4.2 ``ORCPT=``: the original recipient address, sent
            as ``rfc822;`` xtext, or, when it is not ASCII, as RFC 6533
            ``utf-8;`` utf-8-addr-xtext.
        utf8: the transaction's MAIL carried SMTPUTF8, so non-ASCII is
            allowed in the recipient, ``orcpt`` and extra values. Not sent.
        extra: further parameters as (keyword, value or None) pairs.
    """

    verb: ClassVar[str] = "RCPT"
    ends_group: ClassVar[bool] = False
    _stage: ClassVar[Stage] = Stage.RCPT

    recipient: str
    notify: frozenset[Notify] | None = None
    orcpt: str | None = None
    utf8: bool = False
    extra: Params = ()
    _wire: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.recipient == "":
            # RFC 5321 4.1.1.3: Forward-path = Path; only MAIL takes "<>".
            raise InvalidInputError(
                "recipient", "is empty; the null path <> is only a reverse-path (MAIL)", ""
            )
        if not (isinstance(self.recipient, str) and _is_postmaster(self.recipient)):
            validate_mailbox(self.recipient, field="recipient", utf8=self.utf8)
        if self.notify is not None:
            object.__setattr__(self, "notify", self._check_notify(self.notify))
        if self.orcpt is not None:
            # RFC 3461 4.2: the ORCPT address need not follow the syntax of
            # its addr-type, so only what cannot go on the line is refused.
            orcpt = _check_text(self.orcpt, "ORCPT", utf8=self.utf8, shown=self.orcpt)
            if not orcpt:
                raise InvalidInputError("ORCPT", "is empty (use None for no ORCPT)", orcpt)
        if self.extra != ():
            extra = _check_extra(self.extra, reserved=_RCPT_KEYWORDS, utf8=self.utf8)
            object.__setattr__(self, "extra", extra)
        line = rcpt_line(
            self.recipient, notify=self.notify, orcpt=self.orcpt, utf8=self.utf8, extra=self.extra
        )
        object.__setattr__(self, "_wire", line)

    def to_bytes(self) -> bytes:
        """The exact line to send, CRLF included."""
        return self._wire

    @staticmethod
    def _check_notify(value: object) -> frozenset[Notify]:
        if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
            raise InvalidInputError("NOTIFY", "must be a set of Notify values", value)
        try:
            items = frozenset(value)
        except TypeError:
            raise InvalidInputError("NOTIFY", "must be a set of Notify values", None) from None
        for item in items:
            if not isinstance(item, Notify):
                raise InvalidInputError("NOTIFY", f"{item!r} is not a Notify value", item)
        # RFC 3461 4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element.
        if not items:
            raise InvalidInputError(
                "NOTIFY", "is empty; give {Notify.NEVER} or some of SUCCESS, FAILURE, DELAY"
            )
        if Notify.NEVER in items and len(items) > 1:
            raise InvalidInputError(
                "NOTIFY", "NEVER cannot be combined with SUCCESS, FAILURE or DELAY (RFC 3461 4.1)"
            )
        return items

    @property
    def line_limit(self) -> int:
        """512, plus 500 with NOTIFY or ORCPT (RFC 3461 4)."""
        return _rcpt_line_limit(self.notify is not None or self.orcpt is not None)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Data(Command):
    """``DATA`` (RFC 5321 4.1.1.4): ends a pipelined group (RFC 2920 3.1)."""

    verb: ClassVar[str] = "DATA"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.DATA_INIT

    def _line(self) -> bytes:
        return b"DATA\r\n"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Bdat(Command):
    """``BDAT size [LAST]`` (RFC 3030 2): the line before a chunk of ``size``
    octets. The chunk itself is not part of the command.
    """

    verb: ClassVar[str] = "BDAT"
    ends_group: ClassVar[bool] = False

    size: int
    last: bool = False

    def __post_init__(self) -> None:
        # RFC 3030 2: chunk-size = 1*DIGIT; zero is allowed (an empty BDAT LAST).
        # The line limit bounds the digits anyway; the cap keeps the check cheap.
        size = _check_size(self.size, "BDAT size", max_digits=MAX_COMMAND_LINE)
        object.__setattr__(self, "size", size)
        self._check_line_length("BDAT size")

    @property
    def stage(self) -> Stage:
        """DATA_TERMINATION for the last chunk, else DATA_BLOCK."""
        return Stage.DATA_TERMINATION if self.last else Stage.DATA_BLOCK

    def _line(self) -> bytes:
        suffix = " LAST" if self.last else ""
        return f"BDAT {self.size:d}{suffix}\r\n".encode("ascii")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfData(Command):
    """The ``.`` line that ends the data after DATA (RFC 5321 4.1.1.4)."""

    verb: ClassVar[str] = "."
    ends_group: ClassVar[bool] = False
    _stage: ClassVar[Stage] = Stage.DATA_TERMINATION

    def _line(self) -> bytes:
        return b".\r\n"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Rset(Command):
    """``RSET`` (RFC 5321 4.1.1.5): abort the transaction."""

    verb: ClassVar[str] = "RSET"
    ends_group: ClassVar[bool] = False
    _stage: ClassVar[Stage] = Stage.RSET

    def _line(self) -> bytes:
        return b"RSET\r\n"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    """``NOOP [text]`` (RFC 5321 4.1.1.9).

    The server ignores the text (RFC 5321 4.1.1.9 "SHOULD ignore"), so any
    printable ASCII is accepted rather than only the String production.
    """

    verb: ClassVar[str] = "NOOP"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.NOOP

    text: str = ""

    def __post_init__(self) -> None:
        _check_text(
            self.text,
            "NOOP text",
            utf8=False,
            non_ascii_reason="contains non-ASCII characters",
            shown=self.text,
        )
        self._check_line_length("NOOP text")

    def _line(self) -> bytes:
        return _simple_line(self.verb, self.text)


def _check_string_argument(value: object, field: str, *, utf8: bool) -> str:
    """RFC 5321 4.1.1.6: String = Atom / Quoted-string; a mailbox is also taken.

    A space outside a quoted string is refused: with ``SMTPUTF8`` after the
    argument (RFC 6531 3.7.4.2), a space would let the argument forge it.
    """
    text = _check_text(value, field, utf8=utf8, shown=value)
    if text.startswith('"'):
        end = _scan_quoted_string(text, field)
        if end == len(text):
            return text
        if text[end] != "@":
            raise InvalidInputError(field, "has text after the closing quote", text)
        return validate_mailbox(text, field=field, utf8=utf8)
    if "@" in text:
        return validate_mailbox(text, field=field, utf8=utf8)
    # Atoms joined by dots: user names such as "John.Smith" are commonly verified.
    _check_dot_string(text, field, text, what="argument")
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class _StringQuery:
    """What VRFY and EXPN share: one String argument, then ``SMTPUTF8`` with
    ``utf8`` (RFC 6531 3.7.4.2), checked and sent alike.

    A mixin rather than a Command subclass, like :class:`_Hello`.
    """

    verb: ClassVar[str]
    ends_group: ClassVar[bool] = True

    string: str
    utf8: bool = False

    def __post_init__(self) -> None:
        field = f"{self.verb} string"
        _check_string_argument(self.string, field, utf8=self.utf8)
        _check_length(self._line(), MAX_COMMAND_LINE, field)

    def _line(self) -> bytes:
        suffix = " SMTPUTF8" if self.utf8 else ""
        return f"{self.verb} {self.string}{suffix}\r\n".encode()


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Vrfy(_StringQuery, Command):
    """``VRFY string [SMTPUTF8]`` (RFC 5321 4.1.1.6, RFC 6531 3.7.4.2).

    Attributes:
        string: a user name (Atom or dotted atoms), a quoted string or a
            mailbox.
        utf8: allow non-ASCII in ``string`` and send the SMTPUTF8 parameter,
            which lets the server answer in UTF-8.
    """

    verb: ClassVar[str] = "VRFY"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Expn(_StringQuery, Command):
    """``EXPN string [SMTPUTF8]`` (RFC 5321 4.1.1.7, RFC 6531 3.7.4.2).

    Attributes:
        string: a list name (Atom or dotted atoms), a quoted string or a
            mailbox.
        utf8: allow non-ASCII in ``string`` and send the SMTPUTF8 parameter.
    """

    verb: ClassVar[str] = "EXPN"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Quit(Command):
    """``QUIT`` (RFC 5321 4.1.1.10)."""

    verb: ClassVar[str] = "QUIT"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.QUIT

    def _line(self) -> bytes:
        return b"QUIT\r\n"


# Verbs with a command class of their own. Sending them raw would move the
# server into a state (TLS, data, a transaction) the client does not track.
_TYPED_VERBS = frozenset(
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
        "RSET",
        "NOOP",
        "VRFY",
        "EXPN",
        "QUIT",
    }
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RawCommand(Command):
    """A command for an extension this module does not model, still checked.

    Attributes:
        verb: 1 to 20 letters, digits and hyphens, starting with a letter;
            not a verb that has its own class here.
        argument: printable ASCII (with ``utf8``, also non-ASCII UTF-8).
        ends_group: whether the client must wait for the reply before
            sending more (RFC 2920 3.1); True unless the extension says the
            command may be pipelined.
        utf8: allow non-ASCII in the argument.
    """

    # The one command whose verb and grouping are chosen per instance.
    verb: str  # type: ignore[misc]
    argument: str = ""
    ends_group: bool = True  # type: ignore[misc]
    utf8: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.verb, str) or not _VERB.fullmatch(self.verb):
            raise InvalidInputError(
                "command verb",
                "must be 1 to 20 letters, digits and hyphens, starting with a letter",
                self.verb,
            )
        if self.verb.upper() in _TYPED_VERBS:
            raise InvalidInputError(
                "command verb",
                f"{self.verb.upper()} has its own command class; use it so the session "
                "tracks what the server does",
                self.verb,
            )
        _check_text(self.argument, "command argument", utf8=self.utf8, shown=self.argument)
        self._check_line_length("command argument")

    def _line(self) -> bytes:
        return _simple_line(self.verb, self.argument)
