"""SMTP commands as typed values: checked when built, serialised to bytes.

Theory of operation
-------------------
Every command the client can send is a frozen value whose constructor checks
each argument against the grammar of RFC 5321 4.1.2 (and of the extension that
defines it). A command that exists can be put on the wire as it is: there is
no way to build one whose line carries a CR, an LF or a NUL, or a parameter
smuggled in through an address (``"a@b.c> SIZE=1"``). This is a grammar check
for the envelope, not a header parser: display names, comments and folding
have no place here.

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
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias, final

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
#: RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
MAX_LOCAL_PART_LENGTH = 64
#: RFC 5321 4.5.3.1.2: a domain name or number is at most 255 octets.
MAX_DOMAIN_LENGTH = 255
#: RFC 1035 2.3.4: a DNS label is at most 63 octets.
MAX_LABEL_LENGTH = 63
#: RFC 5321 4.5.3.1.3: a path, with its angle brackets, is at most 256 octets.
MAX_PATH_LENGTH = 256
#: RFC 3461 4.4: an ENVID is at most 100 characters.
MAX_ENVID_LENGTH = 100

# The line allowances of the table in the module docstring.
_SIZE_ALLOWANCE = 26
_BODY_ALLOWANCE = 16
_SMTPUTF8_ALLOWANCE = 10
_DSN_MAIL_ALLOWANCE = 100
_AUTH_PARAM_ALLOWANCE = 500
_REQUIRETLS_ALLOWANCE = 11
_DSN_RCPT_ALLOWANCE = 500

_NEEDS_SMTPUTF8 = "contains non-ASCII characters; non-ASCII requires SMTPUTF8 (RFC 6531)"

# RFC 5322 3.2.3: atext is ALPHA / DIGIT and these.
_ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")
# IDNA (RFC 3490 3.1) treats these as label separators; in a U-label they
# would be a dot in the wrong place.
_UNICODE_FULL_STOPS = frozenset("\u3002\uff0e\uff61")

# RFC 5321 4.1.2: Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig.
_LDH_STR = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]")
# RFC 5321 4.1.2: dcontent = %d33-90 / %d94-126.
_DCONTENT = re.compile(r"[\x21-\x5a\x5e-\x7e]+")
# RFC 5321 4.1.3: IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT.
_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
# RFC 5321 4.1.3: IPv6-addr is hex digits, colons and (for the v4 tail) dots;
# anything else (a "%zone", which ipaddress accepts) is not in the grammar.
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
# RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 4422 3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT /
# HYPHEN / UNDERSCORE. Lower case is accepted here and upper-cased.
_SASL_MECH = re.compile(r"[A-Za-z0-9_-]{1,20}")
# An extension verb: a letter, then letters, digits and hyphens (the shape of
# an RFC 5321 4.1.2 ehlo-keyword, which names the extension), at most 20 long.
_VERB = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,19}")

# Fast paths for the common case (see validate_domain and validate_mailbox):
# RFC 5321 4.1.2 sub-domain = Let-dig [Ldh-str], at most 63 octets (RFC 1035),
# and a Dot-string of RFC 5322 atext.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_FAST_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_FAST_MAILBOX = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@{_LABEL}(?:\.{_LABEL})*")


# -- character checks ------------------------------------------------------------


def _describe(char: str) -> str:
    """Name one character for an error message, without echoing controls."""
    code = ord(char)
    if char == " ":
        return "a space (SP)"
    if 0x21 <= code <= 0x7E:
        return f"'{char}'"
    return f"U+{code:04X}"


def _check_text(
    value: object,
    field: str,
    *,
    utf8: bool,
    non_ascii_reason: str = _NEEDS_SMTPUTF8,
    shown: object = None,
) -> str:
    """Refuse what can never be on a command line: line breaks, NUL, other
    controls, DEL and (unless ``utf8``) anything past ASCII.

    ``shown`` is what the error may show of the value; ``None`` shows nothing.
    """
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a str, not {type(value).__name__}", None)
    if value.isascii() and value.isprintable():
        # The common case, in C: printable ASCII is %x20-7E, nothing to refuse.
        return value
    # RFC 5321 2.3.8: CRLF ends a line, and a bare CR or LF must not appear
    # in a command; any of them would let the value start a command of its own.
    if "\r\n" in value:
        raise InvalidInputError(field, "contains a line break (CRLF)", shown)
    if "\r" in value:
        raise InvalidInputError(field, "contains a carriage return (CR)", shown)
    if "\n" in value:
        raise InvalidInputError(field, "contains a line feed (LF)", shown)
    if "\x00" in value:
        raise InvalidInputError(field, "contains a NUL character", shown)
    for char in value:
        code = ord(char)
        if code == 0x7F:
            raise InvalidInputError(field, "contains DEL (U+007F)", shown)
        if code < 0x20 or 0x80 <= code <= 0x9F:
            raise InvalidInputError(field, f"contains a control character (U+{code:04X})", shown)
        if code < 0x80:
            continue
        if not utf8:
            raise InvalidInputError(field, non_ascii_reason, shown)
        if 0xD800 <= code <= 0xDFFF:
            # A lone surrogate has no UTF-8 form (RFC 3629 3).
            raise InvalidInputError(
                field, f"contains a lone surrogate (U+{code:04X}), not valid Unicode", shown
            )
        if unicodedata.category(char) in ("Zl", "Zp"):
            # Not a line break on the wire, but one in every log that decodes it.
            raise InvalidInputError(
                field, f"contains a line or paragraph separator (U+{code:04X})", shown
            )
    return value


def _utf8_len(value: str) -> int:
    # Every string measured here passed _check_text, so it has no surrogates.
    return len(value.encode("utf-8"))


# -- domains -----------------------------------------------------------------------


def validate_domain(value: str, *, field: str, utf8: bool = False) -> str:
    """Check a domain or address literal against RFC 5321 4.1.2.

    ``Domain = sub-domain *("." sub-domain)``, where a sub-domain is a letter
    or digit, then letters, digits and hyphens, not ending with a hyphen; or
    an ``address-literal``: ``[192.0.2.1]``, ``[IPv6:2001:db8::1]`` or a
    general literal ``[tag:content]``. With ``utf8`` (RFC 6531 3.3) a
    sub-domain may also be a U-label.

    Args:
        value: the domain, without a trailing dot.
        field: what the value is for, for the error message.
        utf8: allow U-labels (the server offered SMTPUTF8 and it is in use).

    Returns:
        ``value``, unchanged.

    Raises:
        InvalidInputError: the value is not a domain or address literal.
    """
    if isinstance(value, str) and len(value) <= MAX_DOMAIN_LENGTH and _FAST_DOMAIN.fullmatch(value):
        return value  # plain ASCII labels: the grammar below, in one C pass
    _check_text(value, field, utf8=utf8, shown=value)
    if not value:
        raise InvalidInputError(field, "domain is empty", value)
    if value.startswith("["):
        _check_address_literal(value, field)
        return value
    octets = _utf8_len(value)
    if octets > MAX_DOMAIN_LENGTH:
        # RFC 5321 4.5.3.1.2: a domain name is at most 255 octets.
        raise InvalidInputError(
            field,
            f"domain is {octets} octets long, more than {MAX_DOMAIN_LENGTH} (RFC 5321 4.5.3.1.2)",
            value,
        )
    for label in value.split("."):
        _check_label(label, field, value)
    return value


def _check_label(label: str, field: str, domain: str) -> None:
    if not label:
        # RFC 5321 4.1.2: sub-domains are separated by single dots; there is
        # no empty one, and no trailing root dot.
        raise InvalidInputError(
            field, "domain has an empty label (a leading, trailing or doubled dot)", domain
        )
    for char in label:
        if char.isascii():
            # RFC 5321 4.1.2: Let-dig = ALPHA / DIGIT, Ldh-str adds "-".
            if not (char.isalnum() or char == "-"):
                raise InvalidInputError(field, f"domain contains {_describe(char)}", domain)
            continue
        # Only reachable with utf8 (_check_text refused non-ASCII otherwise).
        if char in _UNICODE_FULL_STOPS:
            raise InvalidInputError(
                field, f"domain contains {_describe(char)}, a full stop IDNA reads as '.'", domain
            )
        # RFC 5892: a U-label is made of letters, marks and digits.
        if unicodedata.category(char)[0] not in "LMN":
            raise InvalidInputError(
                field,
                f"domain contains {_describe(char)}, which is not a letter, mark or digit",
                domain,
            )
    if label.startswith("-") or label.endswith("-"):
        # RFC 5321 4.1.2: sub-domain = Let-dig [Ldh-str]; Ldh-str ends with a Let-dig.
        raise InvalidInputError(
            field, f"domain label {label!r} starts or ends with a hyphen", domain
        )
    if label.isascii():
        octets = len(label)
    else:
        if unicodedata.category(label[0]).startswith("M"):
            # RFC 5891 4.2.3.2: a U-label must not begin with a combining mark.
            raise InvalidInputError(field, "domain label starts with a combining mark", domain)
        if not unicodedata.is_normalized("NFC", label):
            # RFC 5891 5.3: a U-label is in Unicode Normalization Form C.
            raise InvalidInputError(field, "domain label is not in Unicode NFC", domain)
        # RFC 5890 2.3.2.1: the DNS sees the A-label, "xn--" plus Punycode.
        octets = 4 + len(label.encode("punycode"))
    if octets > MAX_LABEL_LENGTH:
        # RFC 1035 2.3.4: labels are 63 octets or less.
        raise InvalidInputError(
            field,
            f"domain label is {octets} octets long, more than {MAX_LABEL_LENGTH} (RFC 1035 2.3.4)",
            domain,
        )


def _check_address_literal(value: str, field: str) -> None:
    # RFC 5321 4.1.3: address-literal = "[" ( IPv4-address-literal /
    # IPv6-address-literal / General-address-literal ) "]".
    if len(value) < 2 or not value.endswith("]"):
        raise InvalidInputError(field, "address literal lacks its closing ']'", value)
    if len(value) > MAX_DOMAIN_LENGTH:
        raise InvalidInputError(
            field, f"address literal is longer than {MAX_DOMAIN_LENGTH} octets", value
        )
    inner = value[1:-1]
    if not inner:
        raise InvalidInputError(field, "address literal is empty", value)
    if not inner.isascii():
        raise InvalidInputError(field, "address literal contains non-ASCII characters", value)
    if inner[:5].lower() == "ipv6:":
        # RFC 5321 4.1.3: IPv6-address-literal = "IPv6:" IPv6-addr.
        address = inner[5:]
        if not _IPV6_CHARS.fullmatch(address) or not _is_ip(ipaddress.IPv6Address, address):
            raise InvalidInputError(field, "invalid IPv6 address literal", value)
    elif ":" in inner:
        # RFC 5321 4.1.3: General-address-literal = Standardized-tag ":"
        # 1*dcontent, with Standardized-tag = Ldh-str.
        tag, _, content = inner.partition(":")
        if not _LDH_STR.fullmatch(tag):
            raise InvalidInputError(field, "general address literal has an invalid tag", value)
        if not _DCONTENT.fullmatch(content):
            raise InvalidInputError(
                field, "general address literal has empty or invalid content", value
            )
    elif not _IPV4_LITERAL.fullmatch(inner) or not _is_ip(ipaddress.IPv4Address, inner):
        # RFC 5321 4.1.3: Snum is a decimal number from 0 through 255.
        # ipaddress also refuses leading zeros, which some read as octal.
        raise InvalidInputError(field, "invalid IPv4 address literal", value)


def _is_ip(kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address], text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


# -- mailboxes ---------------------------------------------------------------------


def validate_mailbox(value: str, *, field: str, utf8: bool = False) -> str:
    """Check a mailbox (``local-part@domain``) against RFC 5321 4.1.2.

    The local part is a Dot-string (atoms of RFC 5322 atext joined by single
    dots) or a Quoted-string; the domain is checked by
    :func:`validate_domain`. With ``utf8`` (RFC 6531 3.3) atext, qtextSMTP and
    sub-domains also admit non-ASCII. Source routes are not accepted.

    Args:
        value: the bare mailbox, without angle brackets.
        field: what the value is for, for the error message.
        utf8: allow non-ASCII (the transaction uses SMTPUTF8).

    Returns:
        ``value``, unchanged.

    Raises:
        InvalidInputError: the value is not a mailbox, or is too long.
    """
    if isinstance(value, str) and len(value) + 2 <= MAX_PATH_LENGTH:
        fast = _FAST_MAILBOX.fullmatch(value)
        if fast is not None and fast.end(1) <= MAX_LOCAL_PART_LENGTH:
            # An ASCII Dot-string at a plain domain, the common case: the same
            # grammar and limits as below, in one C pass. Anything else takes
            # the detailed path, which also words the error.
            return value
    _check_text(value, field, utf8=utf8, shown=value)
    if not value:
        raise InvalidInputError(field, "is empty", value)
    local, domain = _split_mailbox(value, field)
    local_octets = _utf8_len(local)
    if local_octets > MAX_LOCAL_PART_LENGTH:
        # RFC 5321 4.5.3.1.1 (and RFC 6531 3.3: counted in octets of UTF-8).
        raise InvalidInputError(
            field,
            f"local part is {local_octets} octets long, more than {MAX_LOCAL_PART_LENGTH} "
            "(RFC 5321 4.5.3.1.1)",
            value,
        )
    if not domain:
        raise InvalidInputError(field, "domain is empty", value)
    validate_domain(domain, field=field, utf8=utf8)
    path_octets = _utf8_len(value) + 2
    if path_octets > MAX_PATH_LENGTH:
        # RFC 5321 4.5.3.1.3: a path, "<" and ">" included, is at most 256 octets.
        raise InvalidInputError(
            field,
            f"path is {path_octets} octets long with its angle brackets, more than "
            f"{MAX_PATH_LENGTH} (RFC 5321 4.5.3.1.3)",
            value,
        )
    return value


def _split_mailbox(value: str, field: str) -> tuple[str, str]:
    """Split at the last "@" outside the quoted string; check the local part."""
    if value.startswith('"'):
        end = _scan_quoted_string(value, field)
        local, rest = value[:end], value[end:]
        if not rest:
            raise InvalidInputError(
                field, "has no '@' and domain after the quoted local part", value
            )
        if rest[0] != "@":
            raise InvalidInputError(
                field, f"quoted local part is followed by {_describe(rest[0])}, not '@'", value
            )
        return local, rest[1:]
    # Outside a quoted local part, SP, "<" and ">" are in no production of
    # RFC 5321 4.1.2; in a path they would end the address early and let the
    # rest of the value pass as parameters.
    for char in " <>":
        if char in value:
            raise InvalidInputError(
                field, f"contains {_describe(char)} outside a quoted local part", value
            )
    at = value.rfind("@")
    if at < 0:
        raise InvalidInputError(field, "has no '@' (a mailbox is local-part@domain)", value)
    local, domain = value[:at], value[at + 1 :]
    _check_dot_string(local, field, value)
    return local, domain


def _check_dot_string(local: str, field: str, value: str, what: str = "local part") -> None:
    # RFC 5321 4.1.2: Dot-string = Atom *("." Atom); Atom = 1*atext.
    if not local:
        raise InvalidInputError(field, f"{what} is empty", value)
    if local.startswith("."):
        raise InvalidInputError(field, f"{what} starts with a dot", value)
    if local.endswith("."):
        raise InvalidInputError(field, f"{what} ends with a dot", value)
    if ".." in local:
        raise InvalidInputError(field, f"{what} contains consecutive dots", value)
    for char in local:
        # RFC 6531 3.3: atext =/ UTF8-non-ascii (reached only with utf8).
        if char == "." or not char.isascii():
            continue
        if not (char.isalnum() or char in _ATEXT_SPECIALS):
            raise InvalidInputError(
                field,
                f"{what} contains {_describe(char)}, allowed only in a quoted string",
                value,
            )


def _scan_quoted_string(value: str, field: str) -> int:
    """Return the index just past the closing DQUOTE of the leading quoted string.

    RFC 5321 4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE, where
    qtextSMTP is printable ASCII but '"' and '\\' (RFC 6531 3.3 adds
    non-ASCII) and quoted-pairSMTP is '\\' followed by printable ASCII or SP.
    Controls were refused before; '"' and '\\' are handled here.
    """
    index = 1
    while index < len(value):
        char = value[index]
        if char == '"':
            return index + 1
        if char == "\\":
            if index + 1 == len(value):
                break
            escaped = value[index + 1]
            if not " " <= escaped <= "~":
                raise InvalidInputError(
                    field,
                    f"quoted local part escapes {_describe(escaped)}; only printable ASCII "
                    "may follow a backslash (RFC 5321 4.1.2)",
                    value,
                )
            index += 2
            continue
        index += 1
    raise InvalidInputError(field, "quoted local part has no closing quote", value)


def _is_postmaster(value: str) -> bool:
    # RFC 5321 4.1.1.3: "Postmaster" without a domain, case-insensitively.
    return value.isascii() and value.lower() == "postmaster"


# -- xtext ---------------------------------------------------------------------------


def _is_xchar(char: str) -> bool:
    # RFC 3461 4: xchar = "!" .. "~" except "+" and "=".
    return "!" <= char <= "~" and char not in "+="


def xtext_encode(value: str) -> str:
    """Encode text as RFC 3461 4 xtext.

    Printable ASCII other than ``+`` and ``=`` stands for itself; every other
    octet of the UTF-8 form becomes ``+`` and two upper-case hex digits
    (RFC 4954 8: in xtext, non-ASCII is only allowed as hexchar).

    Raises:
        InvalidInputError: ``value`` is not a str or holds a lone surrogate.
    """
    if not isinstance(value, str):
        raise InvalidInputError("xtext", f"must be a str, not {type(value).__name__}", None)
    parts: list[str] = []
    for char in value:
        if _is_xchar(char):
            parts.append(char)
            continue
        try:
            octets = char.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                "xtext", f"contains a lone surrogate (U+{ord(char):04X})", None
            ) from None
        parts.extend(f"+{octet:02X}" for octet in octets)
    return "".join(parts)


def xtext_decode(value: str) -> str:
    """Decode RFC 3461 4 xtext; the inverse of :func:`xtext_encode`.

    Hex digits are accepted in either case (RFC 4954 8 writes them as HEXDIG).

    Raises:
        InvalidInputError: ``value`` is not well-formed xtext, or the octets it
            encodes are not UTF-8.
    """
    if not isinstance(value, str):
        raise InvalidInputError("xtext", f"must be a str, not {type(value).__name__}", None)
    out = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char == "+":
            digits = value[index + 1 : index + 3]
            if len(digits) != 2 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise InvalidInputError("xtext", "'+' must be followed by two hex digits", value)
            out.append(int(digits, 16))
            index += 3
            continue
        if not _is_xchar(char):
            raise InvalidInputError("xtext", f"contains {_describe(char)}", value)
        out.append(ord(char))
        index += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("xtext", "encodes octets that are not UTF-8", value) from None


def _utf8_addr_xtext(value: str) -> str:
    """Encode an address as RFC 6533 3 utf-8-addr-xtext.

    utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar): printable ASCII other
    than "\\", "+" and "=" stands for itself; everything else becomes
    ``\\x{HEX}``, the code point in upper-case hex without leading zeros
    (which is what HEXPOINT allows). Every character of the result is an
    xchar, so it is also valid xtext as it is.
    """
    return "".join(
        char if _is_xchar(char) and char != "\\" else f"\\x{{{ord(char):X}}}" for char in value
    )


def validate_envid(value: str) -> str:
    """Check an RFC 3461 4.4 envelope identifier (the ``ENVID=`` of MAIL).

    It is printable US-ASCII, spaces included, and at most 100 characters
    before xtext encoding; empty is refused (leave the parameter out instead).

    Returns:
        ``value``, unchanged.

    Raises:
        InvalidInputError: the value cannot be an ENVID.
    """
    text = _check_text(
        value,
        "ENVID",
        utf8=False,
        non_ascii_reason="contains non-ASCII characters; RFC 3461 4.4 allows ASCII only",
        shown=value,
    )
    if not text:
        raise InvalidInputError("ENVID", "is empty (use None for no ENVID)", text)
    if len(text) > MAX_ENVID_LENGTH:
        raise InvalidInputError(
            "ENVID",
            f"is {len(text)} characters long, more than {MAX_ENVID_LENGTH} (RFC 3461 4.4)",
            text,
        )
    return text


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


def _format_params(params: Params) -> list[str]:
    return [keyword if value is None else f"{keyword}={value}" for keyword, value in params]


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
        line = self._line()
        if len(line) > self.line_limit:
            raise InvalidInputError(
                field,
                f"makes the command line {len(line)} octets long, more than its limit of "
                f"{self.line_limit} (RFC 5321 4.5.3.1.4 plus extension allowances)",
            )
        return line


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


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Ehlo(Command):
    """``EHLO domain`` (RFC 5321 4.1.1.1): open an ESMTP session.

    The domain is an ASCII domain or an address literal: it is sent before
    the client knows whether the server takes SMTPUTF8.
    """

    verb: ClassVar[str] = "EHLO"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.EHLO

    domain: str

    def __post_init__(self) -> None:
        _check_hello_domain(self.domain, f"{self.verb} domain")
        self._check_line_length(f"{self.verb} domain")

    def _line(self) -> bytes:
        return _simple_line(self.verb, self.domain)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Helo(Command):
    """``HELO domain`` (RFC 5321 4.1.1.1): open a plain SMTP session."""

    verb: ClassVar[str] = "HELO"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.EHLO

    domain: str

    def __post_init__(self) -> None:
        _check_hello_domain(self.domain, f"{self.verb} domain")
        self._check_line_length(f"{self.verb} domain")

    def _line(self) -> bytes:
        return _simple_line(self.verb, self.domain)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Lhlo(Command):
    """``LHLO domain`` (RFC 2033 4.1): open an LMTP session."""

    verb: ClassVar[str] = "LHLO"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.EHLO

    domain: str

    def __post_init__(self) -> None:
        _check_hello_domain(self.domain, f"{self.verb} domain")
        self._check_line_length(f"{self.verb} domain")

    def _line(self) -> bytes:
        return _simple_line(self.verb, self.domain)


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


@final
@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Auth(Command):
    """``AUTH mechanism [initial-response]`` (RFC 4954 4).

    Attributes:
        mechanism: the SASL mechanism name, upper-cased.
        initial_response: the raw (not yet base64) initial response, or
            ``None`` to send none. Never shown by ``repr`` or
            :meth:`transcript`.
    """

    verb: ClassVar[str] = "AUTH"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.AUTH

    mechanism: str
    initial_response: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mechanism", _check_mechanism(self.mechanism))
        if self.initial_response is not None:
            _check_secret_bytes(self.initial_response, "AUTH initial response")
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
        """The AUTH line with any initial response replaced by ``<redacted>``."""
        if self.initial_response is None:
            return self.to_bytes()
        return f"AUTH {self.mechanism} <redacted>\r\n".encode("ascii")

    def __repr__(self) -> str:
        shown = "None" if self.initial_response is None else "<redacted>"
        return f"Auth(mechanism={self.mechanism!r}, initial_response={shown})"


@final
@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class AuthResponse(Command):
    """One SASL continuation line: base64 of ``data`` (RFC 4954 4).

    Empty ``data`` is an empty line. ``data`` is never shown by ``repr`` or
    :meth:`transcript`.
    """

    verb: ClassVar[str] = "AUTH"
    ends_group: ClassVar[bool] = True
    _stage: ClassVar[Stage] = Stage.AUTH

    data: bytes

    def __post_init__(self) -> None:
        _check_secret_bytes(self.data, "AUTH response")
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
        """``<redacted>`` and CRLF, whatever the data."""
        return b"<redacted>\r\n"

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
        object.__setattr__(self, "_wire", self._check_line_length("MAIL parameters"))

    def to_bytes(self) -> bytes:
        """The exact line to send, CRLF included."""
        return self._wire

    @property
    def line_limit(self) -> int:
        """512 plus the allowance of each extension used (module docstring)."""
        limit = MAX_COMMAND_LINE
        if self.size is not None:
            limit += _SIZE_ALLOWANCE
        if self.body is not None:
            limit += _BODY_ALLOWANCE
        if self.smtputf8:
            limit += _SMTPUTF8_ALLOWANCE
        if self.ret is not None or self.envid is not None:
            limit += _DSN_MAIL_ALLOWANCE
        if self.auth is not None:
            limit += _AUTH_PARAM_ALLOWANCE
        if self.requiretls:
            limit += _REQUIRETLS_ALLOWANCE
        return limit

    def _line(self) -> bytes:
        parts = [f"MAIL FROM:<{self.sender}>"]
        if self.size is not None:
            parts.append(f"SIZE={self.size:d}")
        if self.body is not None:
            parts.append(f"BODY={self.body.value}")
        if self.smtputf8:
            parts.append("SMTPUTF8")
        if self.ret is not None:
            parts.append(f"RET={self.ret.value}")
        if self.envid is not None:
            parts.append(f"ENVID={xtext_encode(self.envid)}")
        if self.auth is not None:
            parts.append(f"AUTH={xtext_encode(self.auth)}")
        if self.requiretls:
            parts.append("REQUIRETLS")
        parts.extend(_format_params(self.extra))
        return (" ".join(parts) + "\r\n").encode("utf-8")


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
        if self.notify is None and self.orcpt is None and self.extra == ():
            # The common case: a checked path is at most 256 octets
            # (RFC 5321 4.5.3.1.3), so the line is well within 512.
            line = f"RCPT TO:<{self.recipient}>\r\n".encode()
            object.__setattr__(self, "_wire", line)
            return
        if self.notify is not None:
            object.__setattr__(self, "notify", self._check_notify(self.notify))
        if self.orcpt is not None:
            # RFC 3461 4.2: the ORCPT address need not follow the syntax of
            # its addr-type, so only what cannot go on the line is refused.
            orcpt = _check_text(self.orcpt, "ORCPT", utf8=self.utf8, shown=self.orcpt)
            if not orcpt:
                raise InvalidInputError("ORCPT", "is empty (use None for no ORCPT)", orcpt)
        extra = _check_extra(self.extra, reserved=_RCPT_KEYWORDS, utf8=self.utf8)
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "_wire", self._check_line_length("RCPT parameters"))

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
        if self.notify is not None or self.orcpt is not None:
            return MAX_COMMAND_LINE + _DSN_RCPT_ALLOWANCE
        return MAX_COMMAND_LINE

    def _line(self) -> bytes:
        parts = [f"RCPT TO:<{self.recipient}>"]
        if self.notify is not None:
            if Notify.NEVER in self.notify:
                parts.append("NOTIFY=NEVER")
            else:
                chosen = ",".join(n.value for n in _NOTIFY_ORDER if n in self.notify)
                parts.append(f"NOTIFY={chosen}")
        if self.orcpt is not None:
            if self.orcpt.isascii():
                parts.append(f"ORCPT=rfc822;{xtext_encode(self.orcpt)}")
            else:
                # RFC 6533 3: the 7-bit form of a UTF-8 address, safe in ORCPT.
                parts.append(f"ORCPT=utf-8;{_utf8_addr_xtext(self.orcpt)}")
        parts.extend(_format_params(self.extra))
        return (" ".join(parts) + "\r\n").encode("utf-8")


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


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Vrfy(Command):
    """``VRFY string [SMTPUTF8]`` (RFC 5321 4.1.1.6, RFC 6531 3.7.4.2).

    Attributes:
        string: a user name (Atom or dotted atoms), a quoted string or a
            mailbox.
        utf8: allow non-ASCII in ``string`` and send the SMTPUTF8 parameter,
            which lets the server answer in UTF-8.
    """

    verb: ClassVar[str] = "VRFY"
    ends_group: ClassVar[bool] = True

    string: str
    utf8: bool = False

    def __post_init__(self) -> None:
        _check_string_argument(self.string, f"{self.verb} string", utf8=self.utf8)
        self._check_line_length(f"{self.verb} string")

    def _line(self) -> bytes:
        suffix = " SMTPUTF8" if self.utf8 else ""
        return f"{self.verb} {self.string}{suffix}\r\n".encode()


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Expn(Command):
    """``EXPN string [SMTPUTF8]`` (RFC 5321 4.1.1.7, RFC 6531 3.7.4.2).

    Attributes:
        string: a list name (Atom or dotted atoms), a quoted string or a
            mailbox.
        utf8: allow non-ASCII in ``string`` and send the SMTPUTF8 parameter.
    """

    verb: ClassVar[str] = "EXPN"
    ends_group: ClassVar[bool] = True

    string: str
    utf8: bool = False

    def __post_init__(self) -> None:
        _check_string_argument(self.string, f"{self.verb} string", utf8=self.utf8)
        self._check_line_length(f"{self.verb} string")

    def _line(self) -> bytes:
        suffix = " SMTPUTF8" if self.utf8 else ""
        return f"{self.verb} {self.string}{suffix}\r\n".encode()


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
