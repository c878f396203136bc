"""The envelope address grammar: domains, mailboxes, xtext and ENVID.

Theory of operation
-------------------
Every address that goes into a command line is checked here first, against
the grammar of RFC 5321 4.1.2 and 4.1.3 (with the non-ASCII additions of
RFC 6531 3.3 when SMTPUTF8 is in use) and the length limits of RFC 5321
4.5.3.1. A value that passes has no line break, NUL or other control, and no
``<``, ``>`` or space outside a quoted local part (not even in a general
address literal, where RFC 5321 4.1.3 would allow ``<`` and ``>``), so it
cannot end a path early or start a parameter or a command of its own.

The checks are a grammar for the envelope, not a header parser: display
names, comments and folding have no place here. The common case (an ASCII
Dot-string at plain LDH labels) is matched by one compiled pattern; anything
else takes the detailed path, which also words the error.

xtext (RFC 3461 4) and utf-8-addr-xtext (RFC 6533 3) are the encodings of
the DSN parameters ``ENVID=``, ``ORCPT=`` and of ``AUTH=`` (RFC 4954 5).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from ._errors import InvalidInputError

__all__ = [
    "MAX_DOMAIN_LENGTH",
    "MAX_ENVID_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_LOCAL_PART_LENGTH",
    "MAX_PATH_LENGTH",
    "validate_domain",
    "validate_envid",
    "validate_mailbox",
    "xtext_decode",
    "xtext_encode",
]

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

_NEEDS_SMTPUTF8 = "contains non-ASCII characters; non-ASCII requires SMTPUTF8 (RFC 6531)"

# RFC 5322 3.2.3: atext is ALPHA / DIGIT and these.
_ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")
# IDNA (RFC 3490 3.1) treats these as label separators; in a U-label they
# would be a dot in the wrong place.
_UNICODE_FULL_STOPS = frozenset("\u3002\uff0e\uff61")

# RFC 5321 4.1.2: Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig.
_LDH_STR = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]")
# RFC 5321 4.1.3: dcontent = %d33-90 / %d94-126.
_DCONTENT = re.compile(r"[\x21-\x5a\x5e-\x7e]+")
# In dcontent, but refused in a general address literal (see there).
_PATH_DELIMITERS = '"<>'
# RFC 5321 4.1.3: IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT.
_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
# RFC 5321 4.1.3: IPv6-addr is hex digits, colons and (for the v4 tail) dots;
# anything else (a "%zone", which ipaddress accepts) is not in the grammar.
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")

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
        for char in _PATH_DELIMITERS:
            if char in content:
                # RFC 5321 4.1.3: dcontent = %d33-90 / %d94-126 leaves out
                # only "[", "\" and "]", so the grammar admits these three.
                # They are refused all the same: in a path ("<" Mailbox ">",
                # RFC 5321 4.1.2) a ">" would end the path early and let the
                # rest of the line pass as parameters, a "<" would open
                # another, and a '"' would start a quoted string for any
                # parser that looks for one. No standardized tag needs them.
                raise InvalidInputError(
                    field,
                    f"general address literal contains {_describe(char)}, which RFC 5321 "
                    "4.1.3 dcontent allows but which is refused here: in a MAIL or RCPT "
                    "path it could end the <...> early or open a quoted string",
                    value,
                )
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


# RFC 3461 4: a run of xchars ("!" .. "~" except "+" and "="), which xtext
# leaves as it is: most ENVIDs and ORCPT addresses are one.
_XCHARS = re.compile(r"[!-*,-<>-~]*")


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
    if _XCHARS.fullmatch(value):
        return value  # nothing to encode: the loop below, in one C pass
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
