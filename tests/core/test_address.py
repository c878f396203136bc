"""Tests for smtpcore._address: the envelope address grammar, xtext and ENVID."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore._address import (
    MAX_ENVID_LENGTH,
    validate_domain,
    validate_envid,
    validate_mailbox,
    xtext_decode,
    xtext_encode,
)
from smtpcore._commands import Ehlo, Mail, Rcpt
from smtpcore._errors import InvalidInputError

FAST = settings(max_examples=300, deadline=None)


def untyped(value: object) -> Any:
    """Pass a value of the wrong type past mypy, as a careless caller would."""
    return value


# -- domains and mailboxes ---------------------------------------------------------------------


def test_validators_name_the_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_domain("a..b", field="custom field")
    assert info.value.field == "custom field"
    assert "custom field" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        validate_mailbox("nope", field="other field")
    assert info.value.field == "other field"


def test_validate_domain_accepts_u_labels_only_with_utf8() -> None:
    assert validate_domain("bücher.example", field="d", utf8=True) == "bücher.example"
    with pytest.raises(InvalidInputError, match="SMTPUTF8"):
        validate_domain("bücher.example", field="d")


# RFC 5321 4.1.3: General-address-literal = Standardized-tag ":" 1*dcontent, and dcontent
# (%d33-90 / %d94-126) leaves out only "[", "\" and "]". '"', "<" and ">" are refused all
# the same: inside a path they would close the <...> of MAIL or RCPT early or open a quoted
# string, and no standardized tag needs them.
GENERAL_LITERAL_DELIMITERS = [
    pytest.param("[x-tag:a<b]", id="less-than"),
    pytest.param("[x-tag:a>b]", id="greater-than"),
    pytest.param('[x-tag:a"b]', id="double-quote"),
    pytest.param("[x-tag:<evil@example.net>]", id="a-whole-path"),
    pytest.param("[x-tag:>]", id="only-a-greater-than"),
]


@pytest.mark.parametrize("literal", GENERAL_LITERAL_DELIMITERS)
def test_general_address_literal_refuses_path_delimiters(literal: str) -> None:
    with pytest.raises(InvalidInputError, match=r"general address literal.*RFC 5321 4\.1\.3"):
        validate_domain(literal, field="domain")
    # A quoted local part is checked apart from the domain, so the literal is all that
    # stands between the value and the path's closing ">".
    for mailbox in (f"a@{literal}", f'"a b"@{literal}'):
        with pytest.raises(InvalidInputError):
            validate_mailbox(mailbox, field="mailbox")
    with pytest.raises(InvalidInputError, match="general address literal"):
        Mail(sender=f'"a b"@{literal}')
    with pytest.raises(InvalidInputError, match="general address literal"):
        Rcpt(recipient=f'"a b"@{literal}')
    with pytest.raises(InvalidInputError, match="general address literal"):
        Ehlo(domain=literal)


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("[x-tag:content!~]", id="printable"),
        pytest.param("[x-tag:a:b=c;d]", id="colons-and-punctuation"),
        pytest.param("[x-tag:!#$%&'()*+,-./09:;=?@AZ^_`az{|}~]", id="every-other-dcontent"),
    ],
)
def test_general_address_literal_keeps_the_rest_of_dcontent(literal: str) -> None:
    assert validate_domain(literal, field="domain") == literal
    assert Ehlo(domain=literal).to_bytes() == f"EHLO {literal}\r\n".encode()


def test_validate_envid() -> None:
    assert validate_envid("QQ314159") == "QQ314159"
    assert validate_envid("x" * MAX_ENVID_LENGTH) == "x" * MAX_ENVID_LENGTH
    with pytest.raises(InvalidInputError, match="100"):
        validate_envid("x" * (MAX_ENVID_LENGTH + 1))
    with pytest.raises(InvalidInputError, match="empty"):
        validate_envid("")
    with pytest.raises(InvalidInputError, match="line feed"):
        validate_envid("a\nb")


# -- xtext -------------------------------------------------------------------------------------

XTEXT = [
    pytest.param("", "", id="empty"),
    pytest.param("abc", "abc", id="plain"),
    pytest.param("e=mc2@example.com", "e+3Dmc2@example.com", id="rfc4954-example"),
    pytest.param("a+b", "a+2Bb", id="plus"),
    pytest.param("a b", "a+20b", id="space"),
    pytest.param("\x00\x7f", "+00+7F", id="controls"),
    pytest.param("é", "+C3+A9", id="utf8-octets"),
    pytest.param("<>", "<>", id="angle-brackets-are-xchars"),
    pytest.param("!~", "!~", id="range-ends"),
]


@pytest.mark.parametrize(("text", "encoded"), XTEXT)
def test_xtext_encode(text: str, encoded: str) -> None:
    assert xtext_encode(text) == encoded
    assert xtext_decode(encoded) == text


def test_xtext_encode_escapes_exactly_what_is_not_an_xchar() -> None:
    # RFC 3461 4: xchar = "!" .. "~" except "+" and "="; everything else is "+" HEXCHAR
    # HEXCHAR per octet. Runs of xchars take a shortcut, which must agree.
    for code in range(0x180):
        char = chr(code)
        if 0x21 <= code <= 0x7E and char not in "+=":
            assert xtext_encode(char) == char
            assert xtext_encode(char * 3 + "+") == char * 3 + "+2B"
        else:
            octets = char.encode()
            assert xtext_encode(char) == "".join(f"+{octet:02X}" for octet in octets)


def test_xtext_decode_accepts_lower_case_hex() -> None:
    assert xtext_decode("e+3dmc2") == "e=mc2"


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        pytest.param("a+", "two hex digits", id="truncated"),
        pytest.param("a+4", "two hex digits", id="one-digit"),
        pytest.param("a+GG", "two hex digits", id="not-hex"),
        pytest.param("a b", "space", id="space"),
        pytest.param("a=b", "'='", id="equals"),
        pytest.param("é", "U+00E9", id="non-ascii"),
        pytest.param("+FF", "UTF-8", id="not-utf8"),
    ],
)
def test_xtext_decode_refuses(text: str, mentions: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        xtext_decode(text)
    assert mentions in info.value.reason


def test_xtext_type_errors() -> None:
    with pytest.raises(InvalidInputError):
        xtext_encode(untyped(b"x"))
    with pytest.raises(InvalidInputError):
        xtext_decode(untyped(None))
    with pytest.raises(InvalidInputError, match="surrogate"):
        xtext_encode("\ud800")


XCHARS = frozenset(chr(c) for c in range(33, 127)) - {"+", "="}
HEX = frozenset("0123456789ABCDEF")


@FAST
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_xtext_round_trip_printable(text: str) -> None:
    assert xtext_decode(xtext_encode(text)) == text


@FAST
@given(st.text(st.characters(codec="utf-8")))
def test_xtext_round_trip_any_text_and_alphabet(text: str) -> None:
    encoded = xtext_encode(text)
    assert xtext_decode(encoded) == text
    index = 0
    while index < len(encoded):
        if encoded[index] == "+":
            assert set(encoded[index + 1 : index + 3]) <= HEX
            assert len(encoded[index + 1 : index + 3]) == 2
            index += 3
        else:
            assert encoded[index] in XCHARS
            index += 1
