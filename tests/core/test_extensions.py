"""Tests for smtpcore._extensions: EHLO replies in, typed capabilities out."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore._errors import InvalidInputError, LocalProtocolError
from smtpcore._extensions import _PARSERS, MAX_SIZE, Capabilities
from smtpcore._replies import DEFAULT_MAX_LINE_LENGTH, DEFAULT_MAX_LINES, Reply, ReplyParser

#: Every typed field with its "not offered" value.
DEFAULTS: dict[str, object] = {
    "pipelining": False,
    "size": None,
    "size_supported": False,
    "eightbitmime": False,
    "smtputf8": False,
    "starttls": False,
    "auth": frozenset(),
    "dsn": False,
    "enhancedstatuscodes": False,
    "chunking": False,
    "binarymime": False,
    "requiretls": False,
}

#: Typed boolean field -> the keyword that sets it.
FLAG_KEYWORDS = {
    "pipelining": "PIPELINING",
    "eightbitmime": "8BITMIME",
    "smtputf8": "SMTPUTF8",
    "starttls": "STARTTLS",
    "dsn": "DSN",
    "enhancedstatuscodes": "ENHANCEDSTATUSCODES",
    "chunking": "CHUNKING",
    "binarymime": "BINARYMIME",
    "requiretls": "REQUIRETLS",
}


def typed(caps: Capabilities) -> dict[str, object]:
    return {name: getattr(caps, name) for name in DEFAULTS}


def expect(**overrides: object) -> dict[str, object]:
    unknown = set(overrides) - set(DEFAULTS)
    assert not unknown, unknown
    return {**DEFAULTS, **overrides}


def ehlo(*lines: str | bytes) -> Capabilities:
    return Capabilities.from_ehlo(Reply.build(250, "mx.example.test", *lines))


# -- real-world replies --------------------------------------------------------

POSTFIX = Reply.build(
    250,
    "mail.example.test",
    "PIPELINING",
    "SIZE 10240000",
    "VRFY",
    "ETRN",
    "STARTTLS",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
)
GMAIL_PLAIN = Reply.build(
    250,
    "smtp.gmail.com at your service, [1.2.3.4]",
    "SIZE 35882577",
    "8BITMIME",
    "STARTTLS",
    "ENHANCEDSTATUSCODES",
    "PIPELINING",
    "CHUNKING",
    "SMTPUTF8",
)
GMAIL_TLS = Reply.build(
    250,
    "smtp.gmail.com at your service, [1.2.3.4]",
    "SIZE 35882577",
    "8BITMIME",
    "AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH",
    "ENHANCEDSTATUSCODES",
    "PIPELINING",
    "CHUNKING",
    "SMTPUTF8",
)
EXCHANGE = Reply.build(
    250,
    "EX01.contoso.test Hello [1.2.3.4]",
    "SIZE 37748736",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "STARTTLS",
    "X-ANONYMOUSTLS",
    "AUTH GSSAPI NTLM",
    "AUTH=LOGIN",
    "X-EXPS GSSAPI NTLM",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "XRDST",
)
OFFICE365 = Reply.build(
    250,
    "LO2P265CA0123.outlook.office365.com Hello [1.2.3.4]",
    "SIZE 157286400",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "AUTH LOGIN XOAUTH2",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "SMTPUTF8",
)
EXIM = Reply.build(
    250,
    "mx.example.test Hello client.example.test [1.2.3.4]",
    "SIZE 52428800",
    "8BITMIME",
    "PIPELINING",
    "PIPE_CONNECT",
    "CHUNKING",
    "PRDR",
    "HELP",
)
AIOSMTPD = Reply.build(
    250,
    "host.example.test",
    "SIZE 33554432",
    "8BITMIME",
    "SMTPUTF8",
    "AUTH LOGIN PLAIN",
    "HELP",
)
BARE = Reply.build(250, "host")

REAL_WORLD = [
    pytest.param(
        POSTFIX,
        "mail.example.test",
        expect(
            pipelining=True,
            size=10240000,
            size_supported=True,
            starttls=True,
            enhancedstatuscodes=True,
            eightbitmime=True,
            dsn=True,
            smtputf8=True,
            chunking=True,
        ),
        {
            "PIPELINING": (),
            "SIZE": ("10240000",),
            "VRFY": (),
            "ETRN": (),
            "STARTTLS": (),
            "ENHANCEDSTATUSCODES": (),
            "8BITMIME": (),
            "DSN": (),
            "SMTPUTF8": (),
            "CHUNKING": (),
        },
        id="postfix-3.7",
    ),
    pytest.param(
        GMAIL_PLAIN,
        "smtp.gmail.com",
        expect(
            size=35882577,
            size_supported=True,
            eightbitmime=True,
            starttls=True,
            enhancedstatuscodes=True,
            pipelining=True,
            chunking=True,
            smtputf8=True,
        ),
        {
            "SIZE": ("35882577",),
            "8BITMIME": (),
            "STARTTLS": (),
            "ENHANCEDSTATUSCODES": (),
            "PIPELINING": (),
            "CHUNKING": (),
            "SMTPUTF8": (),
        },
        id="gmail-before-tls",
    ),
    pytest.param(
        GMAIL_TLS,
        "smtp.gmail.com",
        expect(
            size=35882577,
            size_supported=True,
            eightbitmime=True,
            auth=frozenset(
                {"LOGIN", "PLAIN", "XOAUTH2", "PLAIN-CLIENTTOKEN", "OAUTHBEARER", "XOAUTH"}
            ),
            enhancedstatuscodes=True,
            pipelining=True,
            chunking=True,
            smtputf8=True,
        ),
        {
            "SIZE": ("35882577",),
            "8BITMIME": (),
            "AUTH": ("LOGIN", "PLAIN", "XOAUTH2", "PLAIN-CLIENTTOKEN", "OAUTHBEARER", "XOAUTH"),
            "ENHANCEDSTATUSCODES": (),
            "PIPELINING": (),
            "CHUNKING": (),
            "SMTPUTF8": (),
        },
        id="gmail-after-tls",
    ),
    pytest.param(
        EXCHANGE,
        "EX01.contoso.test",
        expect(
            size=37748736,
            size_supported=True,
            pipelining=True,
            dsn=True,
            enhancedstatuscodes=True,
            starttls=True,
            auth=frozenset({"GSSAPI", "NTLM", "LOGIN"}),
            eightbitmime=True,
            binarymime=True,
            chunking=True,
        ),
        {
            "SIZE": ("37748736",),
            "PIPELINING": (),
            "DSN": (),
            "ENHANCEDSTATUSCODES": (),
            "STARTTLS": (),
            "X-ANONYMOUSTLS": (),
            # AUTH=LOGIN is the old spelling of AUTH: both land under one key.
            "AUTH": ("GSSAPI", "NTLM", "LOGIN"),
            "X-EXPS": ("GSSAPI", "NTLM"),
            "8BITMIME": (),
            "BINARYMIME": (),
            "CHUNKING": (),
            "XRDST": (),
        },
        id="exchange-on-premises",
    ),
    pytest.param(
        OFFICE365,
        "LO2P265CA0123.outlook.office365.com",
        expect(
            size=157286400,
            size_supported=True,
            pipelining=True,
            dsn=True,
            enhancedstatuscodes=True,
            auth=frozenset({"LOGIN", "XOAUTH2"}),
            eightbitmime=True,
            binarymime=True,
            chunking=True,
            smtputf8=True,
        ),
        {
            "SIZE": ("157286400",),
            "PIPELINING": (),
            "DSN": (),
            "ENHANCEDSTATUSCODES": (),
            "AUTH": ("LOGIN", "XOAUTH2"),
            "8BITMIME": (),
            "BINARYMIME": (),
            "CHUNKING": (),
            "SMTPUTF8": (),
        },
        id="office365",
    ),
    pytest.param(
        EXIM,
        "mx.example.test",
        expect(
            size=52428800,
            size_supported=True,
            eightbitmime=True,
            pipelining=True,
            chunking=True,
        ),
        {
            "SIZE": ("52428800",),
            "8BITMIME": (),
            "PIPELINING": (),
            # Not in the RFC 5321 grammar, kept on purpose (see the module).
            "PIPE_CONNECT": (),
            "CHUNKING": (),
            "PRDR": (),
            "HELP": (),
        },
        id="exim",
    ),
    pytest.param(
        AIOSMTPD,
        "host.example.test",
        expect(
            size=33554432,
            size_supported=True,
            eightbitmime=True,
            smtputf8=True,
            auth=frozenset({"LOGIN", "PLAIN"}),
        ),
        {
            "SIZE": ("33554432",),
            "8BITMIME": (),
            "SMTPUTF8": (),
            "AUTH": ("LOGIN", "PLAIN"),
            "HELP": (),
        },
        id="aiosmtpd",
    ),
    pytest.param(BARE, "host", expect(), {}, id="bare-host"),
    pytest.param(
        Reply.build(
            250,
            "mx.example.test",
            "pipelining",
            "size 1000",
            "8bitmime",
            "smtputf8",
            "starttls",
            "auth login cram-md5",
            "dsn",
            "enhancedstatuscodes",
            "chunking",
            "binarymime",
            "requiretls",
            "x-custom Param",
        ),
        "mx.example.test",
        expect(
            pipelining=True,
            size=1000,
            size_supported=True,
            eightbitmime=True,
            smtputf8=True,
            starttls=True,
            auth=frozenset({"LOGIN", "CRAM-MD5"}),
            dsn=True,
            enhancedstatuscodes=True,
            chunking=True,
            binarymime=True,
            requiretls=True,
        ),
        {
            "PIPELINING": (),
            "SIZE": ("1000",),
            "8BITMIME": (),
            "SMTPUTF8": (),
            "STARTTLS": (),
            # Keywords are upper-cased, params are kept as sent.
            "AUTH": ("login", "cram-md5"),
            "DSN": (),
            "ENHANCEDSTATUSCODES": (),
            "CHUNKING": (),
            "BINARYMIME": (),
            "REQUIRETLS": (),
            "X-CUSTOM": ("Param",),
        },
        id="lower-case-everything",
    ),
]


@pytest.mark.parametrize(("reply", "domain", "fields", "keywords"), REAL_WORLD)
def test_real_world_replies(
    reply: Reply, domain: str, fields: dict[str, object], keywords: dict[str, tuple[str, ...]]
) -> None:
    caps = Capabilities.from_ehlo(reply)
    assert typed(caps) == fields
    assert dict(caps.keywords) == keywords
    # The server's order is kept, not just the contents.
    assert list(caps.keywords) == list(keywords)
    assert caps.domain == domain
    assert caps.esmtp is True


@pytest.mark.parametrize(("reply", "domain", "fields", "keywords"), REAL_WORLD)
def test_real_world_replies_from_the_wire(
    reply: Reply, domain: str, fields: dict[str, object], keywords: dict[str, tuple[str, ...]]
) -> None:
    # The same bytes give the same capabilities whether they arrive whole or
    # one octet at a time through the reply parser.
    wire = reply.to_bytes()
    results = []
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))]):
        parser = ReplyParser()
        for chunk in chunks:
            parser.feed(chunk)
        parsed = parser.next_reply()
        assert parsed is not None
        results.append(Capabilities.from_ehlo(parsed))
    assert results[0] == results[1] == Capabilities.from_ehlo(reply)
    assert typed(results[0]) == fields


# -- SIZE ----------------------------------------------------------------------

SIZE_CASES = [
    # RFC 1870 3: no param and 0 both mean "no fixed maximum".
    pytest.param(["SIZE"], True, None, id="bare"),
    pytest.param(["SIZE 0"], True, None, id="zero"),
    pytest.param(["SIZE 000"], True, None, id="zeros"),
    pytest.param(["SIZE 1"], True, 1, id="one"),
    pytest.param(["SIZE 0010"], True, 10, id="leading-zeros"),
    pytest.param(["SIZE\t\t2048"], True, 2048, id="tabs"),
    pytest.param(["  SIZE   2048  "], True, 2048, id="extra-spaces"),
    # Bad values: the extension stays announced, the limit is unknown.
    pytest.param(["SIZE abc"], True, None, id="letters"),
    pytest.param(["SIZE -5"], True, None, id="negative"),
    pytest.param(["SIZE +5"], True, None, id="plus-sign"),
    pytest.param(["SIZE 1.5"], True, None, id="decimal"),
    pytest.param(["SIZE 0x10"], True, None, id="hex"),
    pytest.param(["SIZE 1e9"], True, None, id="exponent"),
    pytest.param(["SIZE 10 20"], True, None, id="two-params"),
    pytest.param(["SIZE 1_000"], True, None, id="underscore-digits"),
    pytest.param(["SIZE=1000"], False, None, id="equals-is-not-size"),
    # Huge values: beyond MAX_SIZE means no usable fixed maximum.
    pytest.param([f"SIZE {MAX_SIZE}"], True, MAX_SIZE, id="max"),
    pytest.param([f"SIZE {MAX_SIZE + 1}"], True, None, id="max-plus-one"),
    pytest.param(["SIZE 99999999999999999999999"], True, None, id="huge"),
    pytest.param([f"SIZE {'0' * 40}{MAX_SIZE}"], True, MAX_SIZE, id="max-padded"),
    pytest.param(["SIZE " + "9" * 900], True, None, id="900-digits"),
    # Duplicates: the smallest fixed maximum wins, in any order.
    pytest.param(["SIZE 2000", "SIZE 1000"], True, 1000, id="twice-smaller-last"),
    pytest.param(["SIZE 1000", "SIZE 2000"], True, 1000, id="twice-smaller-first"),
    pytest.param(["SIZE 1000", "SIZE"], True, 1000, id="fixed-then-bare"),
    pytest.param(["SIZE 0", "SIZE 1000"], True, 1000, id="zero-then-fixed"),
    pytest.param(["SIZE 1000", "SIZE abc"], True, 1000, id="fixed-then-bad"),
    pytest.param([], False, None, id="absent"),
]


@pytest.mark.parametrize(("lines", "supported", "size"), SIZE_CASES)
def test_size(lines: list[str], supported: bool, size: int | None) -> None:
    caps = ehlo(*lines)
    assert caps.size_supported is supported
    assert caps.size == size
    assert typed(caps) == expect(size_supported=supported, size=size)


# -- AUTH ----------------------------------------------------------------------

AUTH_CASES = [
    pytest.param(["AUTH PLAIN LOGIN"], {"PLAIN", "LOGIN"}, id="plain"),
    pytest.param(["AUTH"], set(), id="no-mechanisms"),
    pytest.param(["AUTH=LOGIN"], {"LOGIN"}, id="old-form"),
    pytest.param(["AUTH=LOGIN PLAIN"], {"LOGIN", "PLAIN"}, id="old-form-two"),
    pytest.param(["auth=login"], {"LOGIN"}, id="old-form-lower"),
    pytest.param(["AUTH="], set(), id="old-form-empty"),
    pytest.param(["AUTH PLAIN", "AUTH=LOGIN"], {"PLAIN", "LOGIN"}, id="both-forms"),
    pytest.param(["AUTH PLAIN", "AUTH LOGIN PLAIN"], {"PLAIN", "LOGIN"}, id="twice"),
    pytest.param(["AUTH login Cram-Md5"], {"LOGIN", "CRAM-MD5"}, id="mixed-case"),
    pytest.param(["AUTH SCRAM_SHA_1"], {"SCRAM_SHA_1"}, id="underscore"),
    # RFC 4422 3.1: 1 to 20 of [A-Z0-9-_]; anything else is dropped.
    pytest.param(["AUTH " + "A" * 20], {"A" * 20}, id="twenty-chars"),
    pytest.param(["AUTH " + "A" * 21 + " PLAIN"], {"PLAIN"}, id="twenty-one-chars"),
    pytest.param(["AUTH PL@IN LOGIN"], {"LOGIN"}, id="bad-char"),
    pytest.param(["AUTH LOGIN=X PLAIN"], {"PLAIN"}, id="equals-in-name"),
    pytest.param(["AUTH=LOGIN=X"], set(), id="old-form-bad-name"),
    pytest.param(["AUTH PLAIN\u00e9 LOGIN"], set(), id="non-ascii-drops-line"),
]


@pytest.mark.parametrize(("lines", "mechanisms"), AUTH_CASES)
def test_auth(lines: list[str], mechanisms: set[str]) -> None:
    caps = ehlo(*lines)
    assert caps.auth == frozenset(mechanisms)
    assert typed(caps) == expect(auth=frozenset(mechanisms))


def test_auth_old_form_is_recorded_under_auth() -> None:
    caps = ehlo("AUTH=LOGIN PLAIN", "AUTH LOGIN CRAM-MD5")
    assert dict(caps.keywords) == {"AUTH": ("LOGIN", "PLAIN", "CRAM-MD5")}
    assert caps.has("auth")
    assert not caps.has("AUTH=LOGIN")


# -- keywords without parameters -----------------------------------------------


@pytest.mark.parametrize(("field", "keyword"), sorted(FLAG_KEYWORDS.items()))
@pytest.mark.parametrize(
    "suffix", ["", " unexpected-param", "\tx y", "   "], ids=["bare", "param", "tab", "spaces"]
)
def test_flag_keywords(field: str, keyword: str, suffix: str) -> None:
    # RFC 3030 3: BINARYMIME is only usable with CHUNKING, so add it where
    # needed; every other flag is checked alone.
    extra = ["CHUNKING"] if field == "binarymime" else []
    caps = ehlo(*extra, keyword + suffix)
    expected = expect(**{field: True, **({"chunking": True} if extra else {})})
    assert typed(caps) == expected
    assert caps.has(keyword)


def test_binarymime_without_chunking_is_not_offered() -> None:
    caps = ehlo("BINARYMIME", "8BITMIME")
    assert typed(caps) == expect(eightbitmime=True)
    # The raw record still shows what the server said.
    assert caps.has("BINARYMIME")


def test_every_typed_keyword_has_a_parser() -> None:
    assert set(_PARSERS) == {*FLAG_KEYWORDS.values(), "SIZE", "AUTH"}


# -- lines that do not fit the grammar -----------------------------------------

GARBAGE = [
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="spaces"),
    pytest.param(b"\t", id="tab"),
    pytest.param(b"PIPELINING\x00", id="nul"),
    pytest.param(b"PIPELINING\x7f", id="del"),
    pytest.param(b"PIPELINING \x1b[31m", id="escape-sequence"),
    pytest.param(b"PIPELINING\r", id="cr"),
    pytest.param(b"PIPELINING\nSTARTTLS", id="lf"),
    pytest.param(b"PIPELINING\x0b", id="vertical-tab"),
    pytest.param(b"PIPELINING\x0c", id="form-feed"),
    pytest.param("PIPELINING caf\u00e9".encode(), id="utf8-param"),
    pytest.param("P\u00cdPELINING".encode(), id="utf8-keyword"),
    pytest.param(b"PIPELINING \xff", id="latin1-octet"),
    pytest.param(b"-PIPELINING", id="leading-hyphen"),
    pytest.param(b"_PIPELINING", id="leading-underscore"),
    pytest.param(b"PIPE.LINING", id="dot-in-keyword"),
    pytest.param(b"PIPELINING=YES", id="equals-in-keyword"),
    pytest.param(b"STARTTLS=1", id="equals-not-auth"),
    pytest.param(b"AUTHX=LOGIN", id="auth-prefix-lookalike"),
    pytest.param(b"(PIPELINING)", id="parenthesis"),
    pytest.param(b"PIPELINING" + b"x" * DEFAULT_MAX_LINE_LENGTH, id="over-long"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_lines_are_ignored(garbage: bytes) -> None:
    caps = ehlo(b"SIZE 100", garbage, b"DSN")
    # The lines around the garbage are still read...
    assert typed(caps) == expect(size=100, size_supported=True, dsn=True)
    # ...and nothing of the garbage is recorded.
    assert dict(caps.keywords) == {"SIZE": ("100",), "DSN": ()}


def test_long_line_within_the_limit_is_read() -> None:
    params = " ".join(f"P{i}" for i in range(150))
    caps = ehlo(f"X-LONG {params}")
    assert len(f"X-LONG {params}") <= DEFAULT_MAX_LINE_LENGTH
    assert caps.params("X-LONG") == tuple(f"P{i}" for i in range(150))


def test_lines_beyond_the_reply_parser_limit_are_ignored() -> None:
    filler = [f"X-FILL{i}" for i in range(DEFAULT_MAX_LINES - 2)]
    # Line number DEFAULT_MAX_LINES (counting the domain line) is the last
    # one the reply parser can produce; the one after it is ignored.
    reply = Reply.build(250, "mx.example.test", *filler, "DSN", "PIPELINING")
    assert len(reply.lines) == DEFAULT_MAX_LINES + 1
    caps = Capabilities.from_ehlo(reply)
    assert caps.dsn
    assert not caps.pipelining
    assert not caps.has("PIPELINING")
    assert len(caps.keywords) == DEFAULT_MAX_LINES - 1


# -- duplicates ----------------------------------------------------------------


def test_duplicate_keyword_params_are_merged_without_repeats() -> None:
    caps = ehlo("X-A one two", "x-a TWO two three", "X-A")
    assert caps.params("X-A") == ("one", "two", "TWO", "three")
    assert list(caps.keywords) == ["X-A"]


def test_duplicate_flags_are_harmless() -> None:
    caps = ehlo("DSN", "dsn", "DSN")
    assert typed(caps) == expect(dsn=True)
    assert dict(caps.keywords) == {"DSN": ()}


# -- the first line --------------------------------------------------------------

DOMAINS = [
    pytest.param(b"mail.example.test", "mail.example.test", id="name"),
    pytest.param(b"mx.example.test Hello [1.2.3.4]", "mx.example.test", id="greeting"),
    pytest.param(b"mx.example.test\tHello", "mx.example.test", id="tab"),
    pytest.param(b"  mx.example.test  ESMTP", "mx.example.test", id="leading-spaces"),
    pytest.param(b"[192.0.2.1] ready", "[192.0.2.1]", id="address-literal"),
    pytest.param(b"", "", id="empty"),
    pytest.param(b" ", "", id="only-space"),
    pytest.param("b\u00fccher.example".encode(), "b\u00fccher.example", id="utf8"),
    pytest.param(b"mx\xff.example", "mx\udcff.example", id="undecodable-lossless"),
    pytest.param(b"x" * (DEFAULT_MAX_LINE_LENGTH + 1), "", id="over-long"),
]


@pytest.mark.parametrize(("first", "domain"), DOMAINS)
def test_domain(first: bytes, domain: str) -> None:
    caps = Capabilities.from_ehlo(Reply.build(250, first, b"PIPELINING"))
    assert caps.domain == domain
    assert caps.pipelining
    # Lossless: the octets come back.
    if len(first) <= DEFAULT_MAX_LINE_LENGTH:
        assert caps.domain.encode("utf-8", "surrogateescape") in first


def test_first_line_is_never_a_keyword() -> None:
    caps = Capabilities.from_ehlo(Reply.build(250, "PIPELINING"))
    assert caps.domain == "PIPELINING"
    assert not caps.pipelining
    assert dict(caps.keywords) == {}


# -- HELO and negative replies -------------------------------------------------


def test_helo_has_no_extensions() -> None:
    caps = Capabilities.helo(Reply.build(250, "mx.example.test Hello client"))
    assert typed(caps) == expect()
    assert caps.esmtp is False
    assert caps.domain == "mx.example.test"
    assert dict(caps.keywords) == {}
    assert not caps.has("PIPELINING")


def test_helo_ignores_ehlo_lines() -> None:
    # A HELO reply announces nothing even if it looks like an EHLO reply.
    caps = Capabilities.helo(POSTFIX)
    assert typed(caps) == expect()
    assert caps.domain == "mail.example.test"


@pytest.mark.parametrize("code", [421, 500, 501, 502, 554, 354])
@pytest.mark.parametrize("method", ["from_ehlo", "helo"])
def test_non_positive_reply_is_a_caller_error(code: int, method: str) -> None:
    reply = Reply.build(code, "mx.example.test", "PIPELINING")
    with pytest.raises(InvalidInputError) as info:
        getattr(Capabilities, method)(reply)
    assert isinstance(info.value, LocalProtocolError)
    assert info.value.value == code


def test_any_positive_code_is_read() -> None:
    caps = Capabilities.from_ehlo(Reply.build(251, "mx.example.test", "DSN"))
    assert caps.dsn


# -- has() / params() ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ("SIZE", ("10240000",)),
        ("size", ("10240000",)),
        ("SiZe", ("10240000",)),
        ("vrfy", ()),
        ("ETRN", ()),
        ("AUTH", None),
        ("", None),
        ("SIZE ", None),
        ("S\u0130ZE", None),  # non-ASCII: never folded onto an ASCII keyword
        ("\u017fize", None),  # "long s" upper-cases to "S" in Unicode
    ],
)
def test_has_and_params(query: str, params: tuple[str, ...] | None) -> None:
    caps = Capabilities.from_ehlo(POSTFIX)
    assert caps.params(query) == params
    assert caps.has(query) is (params is not None)


# -- the value itself ----------------------------------------------------------


def test_value_semantics() -> None:
    a = Capabilities.from_ehlo(EXCHANGE)
    b = Capabilities.from_ehlo(EXCHANGE)
    assert a == b
    assert hash(a) == hash(b)
    assert a != Capabilities.from_ehlo(POSTFIX)
    assert {a, b} == {a}
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.deepcopy(a) == a
    assert isinstance(a.keywords, Mapping)


def test_keyword_order_does_not_change_equality_or_hash() -> None:
    a = ehlo("DSN", "X-A 1")
    b = ehlo("X-A 1", "DSN")
    assert list(a.keywords) != list(b.keywords)
    assert a == b
    assert hash(a) == hash(b)


def test_value_is_immutable() -> None:
    caps = Capabilities.from_ehlo(POSTFIX)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.size = 1  # type: ignore[misc]
    keywords: Any = caps.keywords
    with pytest.raises(TypeError):
        keywords["PIPELINING"] = ("x",)
    with pytest.raises(AttributeError):
        keywords.pop("PIPELINING")


def test_constructor_copies_a_plain_mapping() -> None:
    source: dict[str, tuple[str, ...]] = {"X-A": ("1",)}
    caps = Capabilities(esmtp=True, keywords=source)
    source["X-B"] = ()
    assert dict(caps.keywords) == {"X-A": ("1",)}
    hash(caps)


def test_default_is_nothing_known() -> None:
    caps = Capabilities()
    assert typed(caps) == expect()
    assert caps.esmtp is False
    assert caps.domain == ""
    assert dict(caps.keywords) == {}


INVALID: list[Any] = [
    pytest.param({"size": 0, "size_supported": True, "esmtp": True}, id="size-zero"),
    pytest.param({"size": -1, "size_supported": True, "esmtp": True}, id="size-negative"),
    pytest.param({"size": MAX_SIZE + 1, "size_supported": True, "esmtp": True}, id="size-huge"),
    pytest.param({"size": True, "size_supported": True, "esmtp": True}, id="size-bool"),
    pytest.param({"size": 10, "esmtp": True}, id="size-without-supported"),
    pytest.param({"auth": frozenset({"login"}), "esmtp": True}, id="auth-lower"),
    pytest.param({"auth": frozenset({"A" * 21}), "esmtp": True}, id="auth-long"),
    pytest.param({"auth": {"LOGIN"}, "esmtp": True}, id="auth-set"),
    pytest.param({"binarymime": True, "esmtp": True}, id="binarymime-alone"),
    pytest.param({"pipelining": 1, "esmtp": True}, id="flag-int"),
    pytest.param({"keywords": {"dsn": ()}, "esmtp": True}, id="keyword-lower"),
    pytest.param({"keywords": {"-X": ()}, "esmtp": True}, id="keyword-hyphen"),
    pytest.param({"keywords": {"X": ["a"]}, "esmtp": True}, id="params-list"),
    pytest.param({"keywords": {"X": ("a b",)}, "esmtp": True}, id="param-space"),
    pytest.param({"keywords": {"X": ("",)}, "esmtp": True}, id="param-empty"),
    pytest.param({"keywords": [("X", ())], "esmtp": True}, id="keywords-list"),
    pytest.param({"domain": b"x"}, id="domain-bytes"),
    pytest.param({"pipelining": True}, id="helo-with-flag"),
    pytest.param({"size_supported": True}, id="helo-with-size"),
    pytest.param({"auth": frozenset({"PLAIN"})}, id="helo-with-auth"),
    pytest.param({"keywords": {"VRFY": ()}}, id="helo-with-keyword"),
]


@pytest.mark.parametrize("kwargs", INVALID)
def test_constructor_rejects_impossible_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        Capabilities(**kwargs)


# -- properties ----------------------------------------------------------------

any_line = st.binary(max_size=80)
keyword_line = st.builds(
    lambda kw, params, sep: sep.join([kw, *params]),
    st.tuples(
        st.sampled_from(
            [*FLAG_KEYWORDS.values(), "SIZE", "AUTH", "AUTH=PLAIN", "X-FOO", "VRFY", "PIPE_CONNECT"]
        ),
        st.booleans(),
    ).map(lambda t: t[0].lower() if t[1] else t[0]),
    st.lists(
        st.one_of(
            st.from_regex(r"[0-9]{1,25}", fullmatch=True),
            st.from_regex(r"[!-~]{1,22}", fullmatch=True),
            st.sampled_from(["LOGIN", "PLAIN", "XOAUTH2", "0", "-5"]),
        ),
        max_size=4,
    ),
    st.sampled_from([" ", "  ", "\t"]),
)
mixed_line = st.one_of(any_line, keyword_line.map(str.encode))


def check_consistent(caps: Capabilities) -> None:
    assert caps.esmtp is True
    assert caps.size is None or (type(caps.size) is int and 0 < caps.size <= MAX_SIZE)
    assert caps.size_supported is caps.has("SIZE")
    assert caps.size is None or caps.size_supported
    for field, keyword in FLAG_KEYWORDS.items():
        if getattr(caps, field):
            assert caps.has(keyword)
        elif field != "binarymime":
            assert not caps.has(keyword)
    assert caps.binarymime is (caps.has("BINARYMIME") and caps.chunking)
    if caps.auth:
        assert caps.has("AUTH")
    for mech in caps.auth:
        assert mech == mech.upper()
        assert 1 <= len(mech) <= 20
    for keyword, params in caps.keywords.items():
        assert keyword == keyword.upper()
        assert keyword.isascii()
        assert all(p and p.isascii() and p.isprintable() and " " not in p for p in params)
    # The value can be rebuilt from its own fields (it passes validation).
    assert dataclasses.replace(caps) == caps
    hash(caps)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.lists(mixed_line, max_size=30))
def test_never_raises_and_is_consistent(first: bytes, lines: list[bytes]) -> None:
    caps = Capabilities.from_ehlo(Reply.build(250, first, *lines))
    check_consistent(caps)


@settings(max_examples=200, deadline=None)
@given(st.lists(keyword_line, max_size=20), st.randoms(use_true_random=False))
def test_typed_fields_do_not_depend_on_line_order(lines: list[str], rnd: random.Random) -> None:
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    a = ehlo(*lines)
    b = ehlo(*shuffled)
    assert typed(a) == typed(b)
    assert set(a.keywords) == set(b.keywords)


@settings(max_examples=200, deadline=None)
@given(st.lists(keyword_line, max_size=15), st.data())
def test_garbage_lines_change_nothing(lines: list[str], data: st.DataObject) -> None:
    garbage = data.draw(
        st.lists(
            st.sampled_from([b"", b"  ", b"DSN\x00", b"SIZE \xff", b"-AUTH PLAIN", b"\x1b[0m"]),
            max_size=10,
        )
    )
    mixed: list[bytes] = [line.encode() for line in lines]
    for junk in garbage:
        mixed.insert(data.draw(st.integers(0, len(mixed))), junk)
    assert ehlo(*mixed) == ehlo(*lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2 * MAX_SIZE), min_size=1, max_size=5))
def test_size_is_the_smallest_usable_limit(values: list[int]) -> None:
    caps = ehlo(*(f"SIZE {v}" for v in values))
    usable = [v for v in values if 0 < v <= MAX_SIZE]
    assert caps.size_supported
    assert caps.size == (min(usable) if usable else None)
