"""Hypothesis strategies for SMTP: replies, EHLO lists, addresses, bodies, servers."""

from __future__ import annotations

import itertools
import string
from collections.abc import Collection, Iterable, Sequence
from typing import Final

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from smtpcore import Reply

from ._driver import EOF, ServerScript, ServerSignal, ServerStep, WriteFailure

__all__ = [
    "KNOWN_EXTENSIONS",
    "addresses",
    "chunkings",
    "ehlo_replies",
    "message_bodies",
    "replies",
    "reply_streams",
    "server_scripts",
]

# -- replies -------------------------------------------------------------------

# RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39.
_COMMON_CODES = (
    211, 214, 220, 221, 235, 250, 251, 252, 334, 354, 421, 432, 450, 451, 452, 454, 455,
    500, 501, 502, 503, 504, 530, 534, 535, 538, 550, 551, 552, 553, 554, 555,
)  # fmt: skip
_TEXT_ASCII = string.ascii_letters + string.digits + string.punctuation + " "


def _is_wire_code(code: int) -> bool:
    return 200 <= code <= 599 and (code // 10) % 10 <= 5


def _codes(codes: Iterable[int] | SearchStrategy[int] | None) -> SearchStrategy[int]:
    if codes is None:
        grammar = st.builds(
            lambda a, b, c: a * 100 + b * 10 + c,
            st.integers(2, 5),
            st.integers(0, 5),
            st.integers(0, 9),
        )
        return st.one_of(st.sampled_from(_COMMON_CODES), grammar)
    if isinstance(codes, SearchStrategy):
        return codes.filter(_is_wire_code)
    chosen = list(codes)
    if not chosen or not all(isinstance(c, int) and _is_wire_code(c) for c in chosen):
        raise InvalidArgument(f"codes must be RFC 5321 reply codes (2-5, 0-5, 0-9), got {chosen!r}")
    return st.sampled_from(chosen)


def _line_texts(max_length: int) -> SearchStrategy[bytes]:
    """Reply texts: printable ASCII mostly, sometimes UTF-8, 8-bit octets or
    controls; never CR or LF (they would end the line)."""
    ascii_text = st.text(_TEXT_ASCII, max_size=max_length).map(str.encode)
    utf8_text = st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=max_length // 4
    ).map(str.encode)
    raw = st.binary(max_size=max_length).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
    return st.one_of(ascii_text, ascii_text, utf8_text, raw).map(lambda b: b[:max_length])


@st.composite
def _reply(
    draw: st.DrawFn,
    codes: SearchStrategy[int],
    multiline: bool | None,
    enhanced: bool | None,
    max_lines: int,
    max_length: int,
) -> Reply:
    code = draw(codes)
    if multiline is None:
        count = draw(st.integers(1, max_lines))
    elif multiline:
        count = draw(st.integers(2, max(2, max_lines)))
    else:
        count = 1
    lines = draw(st.lists(_line_texts(max_length), min_size=count, max_size=count))
    with_enhanced = draw(st.booleans()) if enhanced is None else enhanced
    if with_enhanced:
        # RFC 3463 2: class.subject.detail, the class repeating the code's.
        subject = draw(st.integers(0, 7))
        detail = draw(st.integers(0, 9))
        prefix = f"{code // 100}.{subject}.{detail}".encode()
        lines = [prefix + (b" " + line if line else b"") for line in lines]
    return Reply.build(code, *lines)


def replies(
    *,
    codes: Iterable[int] | SearchStrategy[int] | None = None,
    multiline: bool | None = None,
    enhanced: bool | None = None,
    max_lines: int = 5,
    max_text_length: int = 200,
) -> SearchStrategy[Reply]:
    """Server replies that a conforming parser reads back unchanged.

    ``reply.to_bytes()`` is the wire form; ``ReplyParser`` parses it back to
    an equal :class:`~smtpcore.Reply`. Texts are mostly printable ASCII, and
    sometimes UTF-8, raw 8-bit octets or control characters (servers do send
    them), never CR or LF.

    Args:
        codes: the codes to draw from (values or a strategy); by default
            common codes and any code of the RFC 5321 4.2 grammar.
        multiline: True for two or more lines, False for one, None for either.
        enhanced: True to start every line with an RFC 3463 enhanced status
            code of the reply's class, False never, None either.
        max_lines: the most lines a reply gets.
        max_text_length: the longest text of a line, in octets.

    Example::

        @given(replies(codes=[250, 550]))
        def test_round_trip(reply):
            parser = ReplyParser()
            parser.feed(reply.to_bytes())
            assert parser.next_reply() == reply
    """
    if max_lines < 1 or max_text_length < 0:
        raise InvalidArgument("max_lines must be >= 1 and max_text_length >= 0")
    return _reply(_codes(codes), multiline, enhanced, max_lines, max_text_length)


# Broken pieces a hostile server sends; each breaks RFC 5321 4.2 / 2.3.8.
_HOSTILE_PIECES = (
    b"250 bare LF\n",
    b"250 bare\rCR\r\n",
    b"250-first\r\n251 code changed\r\n",
    b"2x0 not a code\r\n",
    b"600 out of range\r\n",
    b"260 second digit out of range\r\n",
    b"25\r\n",
    b"250_underscore\r\n",
    b"\r\n",
    b"\x00\x00\x00\r\n",
    b"250 " + b"x" * 1100 + b"\r\n",
    b"250-" + b"y" * 3000,
    b"".join(b"250-line\r\n" for _ in range(120)) + b"250 end\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello where text belongs
)


def reply_streams(
    *,
    elements: SearchStrategy[Reply] | None = None,
    min_replies: int = 1,
    max_replies: int = 8,
    hostile: bool = False,
) -> SearchStrategy[bytes]:
    """What a server sends: several replies in wire form, concatenated.

    ``elements`` gives the replies (default: :func:`replies`).

    With ``hostile=True`` the stream also carries protocol violations (bare
    LF, bare CR, a code changed mid-reply, malformed or out-of-range codes,
    over-long lines, too many lines, binary garbage, a cut-off last line),
    at random places: a parser must give the replies before the first
    violation, then fail with ``RemoteProtocolError``, and nothing else.

    Example::

        @given(reply_streams(hostile=True), st.data())
        def test_only_remote_errors(stream, data):
            parser = ReplyParser()
            with contextlib.suppress(RemoteProtocolError):
                for chunk in data.draw(chunkings(stream)):
                    parser.feed(chunk)
                    while parser.next_reply() is not None:
                        pass
    """
    if min_replies < 0 or max_replies < min_replies:
        raise InvalidArgument("need 0 <= min_replies <= max_replies")
    wire = (elements if elements is not None else replies()).map(Reply.to_bytes)
    if not hostile:
        return st.lists(wire, min_size=min_replies, max_size=max_replies).map(b"".join)
    piece = st.one_of(wire, st.sampled_from(_HOSTILE_PIECES), st.binary(min_size=1, max_size=40))
    cut = st.booleans()

    @st.composite
    def stream(draw: st.DrawFn) -> bytes:
        parts = draw(st.lists(piece, min_size=max(min_replies, 1), max_size=max_replies + 2))
        data = b"".join(parts)
        if draw(cut) and data:
            data = data[: draw(st.integers(0, len(data)))]
        return data

    return stream()


# -- EHLO ------------------------------------------------------------------------

#: The extensions smtpcore interprets (RFC 2920, 1870, 6152, 6531, 3207,
#: 4954, 3461, 2034, 3030, 8689).
KNOWN_EXTENSIONS = (
    "PIPELINING",
    "SIZE",
    "8BITMIME",
    "SMTPUTF8",
    "STARTTLS",
    "AUTH",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "CHUNKING",
    "BINARYMIME",
    "REQUIRETLS",
)
# Real keywords smtpcore does not interpret (Postfix, Exim, Exchange, Sendmail).
_OTHER_EXTENSIONS = (
    "ETRN",
    "VRFY",
    "HELP",
    "PRDR",
    "PIPE_CONNECT",
    "XCLIENT NAME ADDR PROTO HELO",
    "XFORWARD NAME ADDR PROTO HELO SOURCE",
    "X-EXPS GSSAPI NTLM",
    "X-ANONYMOUSTLS",
    "XRDST",
    "DELIVERBY 3600",
    "LIMITS MAILMAX=1000 RCPTMAX=50000",
    "MT-PRIORITY MIXER",
    "X-LINK2STATE",
    "XEXCH50",
)
_MECHANISMS = (
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "SCRAM-SHA-256",
    "XOAUTH2",
    "OAUTHBEARER",
    "GSSAPI",
    "NTLM",
    "DIGEST-MD5",
    "PLAIN-CLIENTTOKEN",
)
_SERVER_NAMES = (
    "mail.example.org",
    "mx.example.com",
    "smtp.gmail.com at your service, [203.0.113.5]",
    "EX01.corp.example.com Hello [192.0.2.10]",
    "mx.example.net Hello client.example.com [192.0.2.1]",
    "[192.0.2.25]",
)


def _keyword_case(keyword: str) -> SearchStrategy[str]:
    # RFC 5321 2.4: keywords are case-insensitive; most servers use upper case.
    return st.sampled_from((keyword, keyword, keyword, keyword.lower(), keyword.title()))


@st.composite
def _ehlo_line(draw: st.DrawFn, keyword: str, mechanisms: Sequence[str]) -> list[str]:
    if keyword == "SIZE":
        limit = draw(
            st.one_of(
                st.none(),
                st.just(0),
                st.integers(1, 100 * 2**20),
                st.sampled_from((10240000, 35882577, 52428800, 2**64)),
            )
        )
        name = draw(_keyword_case("SIZE"))
        return [name if limit is None else f"{name} {limit}"]
    if keyword == "AUTH":
        chosen = draw(st.lists(st.sampled_from(mechanisms), min_size=1, unique=True))
        chosen = [draw(st.sampled_from((m, m, m.lower()))) for m in chosen]
        form = draw(st.sampled_from(("modern", "modern", "old", "both")))
        lines = []
        if form in ("modern", "both"):
            lines.append(f"{draw(_keyword_case('AUTH'))} {' '.join(chosen)}")
        if form in ("old", "both"):
            # The pre-RFC 2554 form of old Exchange and Netscape servers.
            lines.append(f"AUTH={' '.join(chosen)}")
        return lines
    if keyword in KNOWN_EXTENSIONS:
        return [draw(_keyword_case(keyword))]
    return [keyword]


@st.composite
def _ehlo(
    draw: st.DrawFn,
    pool: Sequence[str],
    always: Sequence[str],
    mechanisms: Sequence[str],
) -> Reply:
    chosen = list(always) + draw(
        st.lists(st.sampled_from(pool), unique=True, max_size=len(pool)) if pool else st.just([])
    )
    chosen = list(dict.fromkeys(chosen))
    ordered = draw(st.permutations(chosen))
    lines = [draw(st.sampled_from(_SERVER_NAMES))]
    for keyword in ordered:
        lines += draw(_ehlo_line(keyword, mechanisms))
    return Reply.build(250, *lines)


def ehlo_replies(
    extensions: Collection[str] | None = None,
    *,
    always: Collection[str] = (),
    never: Collection[str] = (),
    auth_mechanisms: Collection[str] | None = None,
) -> SearchStrategy[Reply]:
    """Positive replies to EHLO with realistic capability lists.

    The first line is the server's name and greeting; then a random subset
    of ``extensions`` in random order and letter case: ``SIZE`` bare, with a
    limit, 0, or a limit too large for 64 bits; ``AUTH`` with a random list
    of mechanisms in the RFC 4954 form, the old ``AUTH=`` form, or both;
    keywords smtpcore does not know (``PIPE_CONNECT``, ``XCLIENT ...``).

    Args:
        extensions: the keywords to draw from (any of
            :data:`KNOWN_EXTENSIONS` and unknown ones); by default all known
            ones and a list of real unknown ones.
        always: keywords every reply has (e.g. ``{"STARTTLS"}``).
        never: keywords no reply has (e.g. ``{"CHUNKING"}``).
        auth_mechanisms: the SASL mechanisms ``AUTH`` lines draw from.

    Example::

        @given(ehlo_replies(always={"PIPELINING"}))
        def test_pipelining_seen(reply):
            assert Capabilities.from_ehlo(reply).pipelining
    """
    pool_source = (
        list(KNOWN_EXTENSIONS) + list(_OTHER_EXTENSIONS) if extensions is None else extensions
    )
    for keyword in [*pool_source, *always, *never]:
        if not isinstance(keyword, str) or not keyword or "\r" in keyword or "\n" in keyword:
            raise InvalidArgument(f"not an EHLO keyword line: {keyword!r}")
    blocked = {k.upper() for k in never}
    pool = [k for k in pool_source if k.split(" ")[0].upper() not in blocked]
    required = [k for k in always if k.upper() not in blocked]
    mechanisms = list(auth_mechanisms) if auth_mechanisms is not None else list(_MECHANISMS)
    if not mechanisms:
        raise InvalidArgument("auth_mechanisms must not be empty")
    return _ehlo(pool, required, mechanisms)


# -- chunkings -------------------------------------------------------------------


@st.composite
def _chunking(draw: st.DrawFn, data: bytes, max_chunks: int | None) -> list[bytes]:
    if not data:
        return []
    n = len(data)
    limit = n - 1 if max_chunks is None else min(n - 1, max_chunks - 1)
    shape = draw(st.sampled_from(("whole", "bytes", "random", "random", "random")))
    if shape == "whole" or limit == 0:
        return [data]
    if shape == "bytes" and limit == n - 1:
        return [data[i : i + 1] for i in range(n)]
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=min(limit, 64))))
    bounds = [0, *cuts, n]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def chunkings(data: bytes, *, max_chunks: int | None = None) -> SearchStrategy[list[bytes]]:
    """Ways to split ``data`` into non-empty chunks, as TCP may deliver it.

    The chunks join back to ``data``: sometimes whole, sometimes one octet
    at a time, mostly at random points. ``b""`` gives ``[]`` (an empty chunk
    would mean EOF to ``Session.receive_data``).

    Example::

        @given(st.data())
        def test_same_replies(data):
            stream = POSTFIX_CONVERSATION
            chunks = data.draw(chunkings(stream))
            assert parse(chunks) == parse([stream])
    """
    if max_chunks is not None and max_chunks < 1:
        raise InvalidArgument("max_chunks must be at least 1")
    return _chunking(bytes(data), max_chunks)


# -- addresses ------------------------------------------------------------------------

_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
_LDH = string.ascii_lowercase + string.digits + "-"
# Letters only (categories L), already in NFC, none of them a combining mark
# or an IDNA full stop; from several scripts.
_UTF8_LETTERS = "éüßçñøåπδλжщыяשאبتअइ中文字日本한국"
_UTF8_LABELS = ("пример", "münchen", "例え", "δοκιμή", "bücher", "한국", "مثال", "उदाहरण")


def _atom(alphabet: str, max_size: int = 10) -> SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=max_size)


def _dot_atom(alphabet: str) -> SearchStrategy[str]:
    return st.lists(_atom(alphabet), min_size=1, max_size=3).map(".".join)


_QTEXT = "".join(c for c in map(chr, range(0x20, 0x7F)) if c not in '"\\')


@st.composite
def _quoted(draw: st.DrawFn) -> str:
    # RFC 5321 4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE.
    parts = draw(
        st.lists(
            st.one_of(
                st.text(_QTEXT, min_size=1, max_size=6),
                st.sampled_from(('\\"', "\\\\", "\\ ", "\\<")),
            ),
            max_size=4,
        )
    )
    return '"' + "".join(parts) + '"'


@st.composite
def _label(draw: st.DrawFn, utf8: bool) -> str:
    if utf8 and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(_UTF8_LABELS))
    first = draw(st.sampled_from(string.ascii_lowercase + string.digits))
    middle = draw(st.text(_LDH, max_size=10))
    last = draw(st.sampled_from(string.ascii_lowercase + string.digits))
    return first + middle + last if middle or draw(st.booleans()) else first


@st.composite
def _domain(draw: st.DrawFn, utf8: bool) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        octets = draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))
        return "[" + ".".join(map(str, octets)) + "]"
    if kind == 1:
        return draw(st.sampled_from(("[IPv6:2001:db8::1]", "[IPv6:::1]", "[IPv6:fe80::1:2:3]")))
    labels = draw(st.lists(_label(utf8), min_size=1, max_size=3))
    tld = draw(st.sampled_from(("com", "org", "net", "example", "de", "xn--p1ai", "рф")))
    if tld == "рф" and not utf8:
        tld = "ru"
    return ".".join([*labels, tld])


@st.composite
def _local(draw: st.DrawFn, utf8: bool, quoted: bool) -> str:
    if quoted and draw(st.integers(0, 4)) == 0:
        return draw(_quoted())
    alphabet = _ATEXT + (_UTF8_LETTERS if utf8 else "")
    return draw(_dot_atom(alphabet))


def _fits(address: str) -> bool:
    local, _, _ = address.rpartition("@")
    # RFC 5321 4.5.3.1.1 and 4.5.3.1.3: 64 octets of local part, 256 of path.
    return len(local.encode()) <= 64 and len(address.encode()) + 2 <= 256


def _valid_addresses(utf8: bool, quoted: bool = True) -> SearchStrategy[str]:
    return st.builds(
        lambda local, domain: f"{local}@{domain}", _local(utf8, quoted), _domain(utf8)
    ).filter(_fits)


# What hostile addresses carry: line breaks and NUL (RFC 5321 2.3.8), other
# controls, DEL, C1 controls, Unicode line separators, lone surrogates, and
# the characters that end a path early and let the rest pass as parameters.
_INJECTIONS = (
    "\r",
    "\n",
    "\r\n",
    "\x00",
    "\x01",
    "\x08",
    "\t",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x85",
    "\x9b",
    "\u2028",
    "\u2029",
    "\ud800",
    "\udfff",
    "<",
    ">",
    " ",
    "> SIZE=1",
    "> NOTIFY=SUCCESS ORCPT=rfc822;evil@example.net",
    ">\r\nRCPT TO:<evil@example.net",
    "\r\nDATA\r\n",
    "\r\n.\r\n",
    "\nQUIT",
)


@st.composite
def _hostile(draw: st.DrawFn, utf8: bool) -> str:
    base = draw(_valid_addresses(utf8, quoted=False))
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        injection = draw(st.sampled_from(_INJECTIONS))
        pos = draw(st.integers(0, len(base)))
        return base[:pos] + injection + base[pos:]
    if kind == 6 and not utf8:
        # Non-ASCII without SMTPUTF8 (RFC 6531 3.3).
        return draw(st.sampled_from(("é", "пользователь", "中"))) + base
    local, _, domain = base.rpartition("@")
    broken = (
        local + domain,  # no "@"
        "@" + domain,  # empty local part
        local + "@",  # empty domain
        "." + base,  # local part starts with a dot
        local + ".@" + domain,  # ... ends with a dot
        local + "..x@" + domain,  # consecutive dots
        "a" * 65 + "@" + domain,  # local part over 64 octets
        local + "@" + "a" * 64 + ".com",  # label over 63 octets
        local + "@" + ".".join(["abcdefghi"] * 26) + ".com",  # path over 256 octets
        local + "@-" + domain,  # label starts with a hyphen
        local + "@" + domain + ".",  # trailing root dot
        local + "@[300.1.2.3]",  # not an IPv4 literal
        local + "@[192.0.2.1",  # unclosed literal
        '"unclosed@' + domain,  # unclosed quoted string
    )
    return draw(st.sampled_from(broken))


def addresses(*, valid: bool = True, smtputf8: bool = False) -> SearchStrategy[str]:
    """Mailboxes (``local-part@domain``) as a caller would give them.

    ``valid=True``: RFC 5321 4.1.2 mailboxes that ``validate_mailbox``
    accepts: dot-atoms (and sometimes quoted strings holding spaces, ``<``,
    ``>`` and escapes), LDH domains and address literals, within the length
    limits of RFC 5321 4.5.3.1. With ``smtputf8`` local parts and domain
    labels also hold non-ASCII letters (RFC 6531 3.3).

    ``valid=False``: addresses that must never reach the wire: a valid one
    with CR, LF, NUL, another control, DEL, a C1 control, U+2028, a lone
    surrogate, ``<``, ``>``, SP or a whole smuggled parameter or command
    inserted outside any quoted string, non-ASCII without ``smtputf8``, or
    broken structure (no ``@``, empty parts, dots in the wrong place, limits
    exceeded, bad address literals). ``validate_mailbox`` refuses all of them
    (with ``utf8=smtputf8``), and so do ``Mail`` and ``Rcpt`` (``""`` is
    never drawn: it is the null reverse-path ``<>``, valid in MAIL).

    Example::

        @given(addresses(valid=False))
        def test_refused(address):
            with pytest.raises(InvalidInputError):
                OutgoingMessage.build(sender="a@example.com", recipients=[address])
    """
    return _valid_addresses(smtputf8) if valid else _hostile(smtputf8)


# -- message bodies ------------------------------------------------------------------

_TEXT_LINES = (
    b"Subject: test",
    b"From: Alice <alice@example.com>",
    b"",
    b"Hello,",
    b"From the start of a line",
    b"-- ",
    b"=?utf-8?q?caf=C3=A9?=",
)
_DOT_LINES = (b".", b"..", b"...", b". ", b".x", b"..x", b".\t")


def message_bodies(
    *,
    eight_bit: bool = True,
    bare_line_endings: bool = True,
    long_lines: bool = False,
    controls: bool = False,
    max_lines: int = 30,
) -> SearchStrategy[bytes]:
    """Message bodies that stress the encoder: lines starting with dots
    (``.``, ``..``, ``.x``: dot-stuffing, RFC 5321 4.5.2), embedded
    ``CRLF.CRLF``, and, as chosen, bare CR and LF and CRCRLF line ends,
    8-bit octets, lines longer than 998 octets, and control characters.

    The defaults give bodies a session sends as they are to a server with
    8BITMIME (line ends are made CRLF); ``long_lines`` and ``controls``
    produce bodies it must refuse with ``MessageContentError``.

    Example::

        @given(message_bodies(), st.data())
        def test_data_round_trip(body, data):
            ...  # drive a Session, un-stuff the data, compare
    """
    if max_lines < 0:
        raise InvalidArgument("max_lines must be >= 0")
    text = st.text(_TEXT_ASCII, max_size=40).map(str.encode)
    contents: list[SearchStrategy[bytes]] = [
        st.sampled_from(_TEXT_LINES),
        st.sampled_from(_DOT_LINES),
        text,
        st.builds(lambda a, b: a + b, st.sampled_from(_DOT_LINES), text),
    ]
    if eight_bit:
        contents.append(
            st.one_of(
                st.binary(min_size=1, max_size=20).map(lambda b: bytes(x | 0x80 for x in b)),
                st.text(
                    st.characters(
                        min_codepoint=0xA0,
                        max_codepoint=0x2FFF,
                        blacklist_categories=("Cs", "Zl", "Zp"),
                    ),
                    min_size=1,
                    max_size=10,
                ).map(str.encode),
            )
        )
    if long_lines:
        contents.append(st.integers(999, 2500).map(lambda n: b"L" * n))
    if controls:
        contents.append(st.binary(min_size=1, max_size=4).map(lambda b: bytes(x % 0x20 for x in b)))
    endings = [st.just(b"\r\n")] * 4
    if bare_line_endings:
        endings.append(st.sampled_from((b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\n")))
    line = st.builds(lambda c, e: c + e, st.one_of(contents), st.one_of(endings))

    @st.composite
    def body(draw: st.DrawFn) -> bytes:
        lines = draw(st.lists(line, max_size=max_lines))
        data = b"".join(lines)
        # Contents hold no CR or LF, except that ``controls`` may draw them:
        # they are then just more (bare) line ends.
        if draw(st.integers(0, 4)) == 0:
            data += draw(st.one_of(contents))  # no line end at the very end
        return data

    return body()


# -- server scripts ------------------------------------------------------------------------

_FAILURE_KINDS = ("transient", "permanent", "421", "eof", "garbage", "timeout")
_GARBAGE = (
    b"250 ok\n",
    b"2x0 what\r\n",
    b"\x00\xff\xfe\r\n",
    b"250-a\r\n251 b\r\n",
    b"250 " + b"z" * 2000,
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
)


def _wire(reply: Reply) -> bytes:
    return reply.to_bytes()


#: One in three: a write of the client's fails partway.
_WRITE_FAILURES: Final = st.one_of(
    st.none(),
    st.none(),
    st.builds(
        WriteFailure,
        nth=st.integers(1, 8),
        written=st.none() | st.integers(0, 2048),
        timeout=st.booleans(),
    ),
)


@st.composite
def _server_script(
    draw: st.DrawFn,
    *,
    recipients: int,
    messages: int,
    starttls: bool,
    auth: bool,
    chunking: bool,
    lmtp: bool,
    failures: bool,
    split: bool,
    write_failures: bool,
) -> ServerScript:
    never = set() if chunking else {"CHUNKING", "BINARYMIME"}
    first_always = {"STARTTLS"} if starttls else set()
    if auth and not starttls:
        first_always.add("AUTH")
    mechs = ("PLAIN",)
    stages: list[tuple[str, ServerStep]] = []
    greeting = draw(replies(codes=[220], enhanced=False, max_text_length=60))
    stages.append(("greeting", _wire(greeting)))
    first_never = set(never)
    if not starttls:
        first_never.add("STARTTLS")
    if not auth:
        first_never.add("AUTH")
    ehlo = draw(ehlo_replies(always=first_always, never=first_never, auth_mechanisms=mechs))
    stages.append(("EHLO", _wire(ehlo)))
    if starttls:
        stages.append(("STARTTLS", b"220 2.0.0 Ready to start TLS\r\n"))
        stages.append(("handshake", ServerSignal.TLS_OK))
        again = draw(
            ehlo_replies(
                always={"AUTH"} if auth else set(),
                never=never | {"STARTTLS"} | (set() if auth else {"AUTH"}),
                auth_mechanisms=mechs,
            )
        )
        stages.append(("EHLO after TLS", _wire(again)))
    if auth:
        stages.append(("AUTH", b"235 2.7.0 Authentication successful\r\n"))
    for m in range(messages):
        stages.append((f"MAIL {m}", b"250 2.1.0 Ok\r\n"))
        for r in range(recipients):
            stages.append((f"RCPT {m}.{r}", b"250 2.1.5 Ok\r\n"))
        if not chunking:
            stages.append((f"DATA {m}", b"354 End data with <CR><LF>.<CR><LF>\r\n"))
        for r in range(recipients if lmtp else 1):
            stages.append((f"end of data {m}.{r}", b"250 2.0.0 Ok: queued as 4Tq9Xk1RvNz3x\r\n"))
    stages.append(("QUIT", b"221 2.0.0 Bye\r\n"))
    notes: list[str] = []
    ended = False
    if failures:
        plan = draw(
            st.lists(
                st.tuples(st.integers(0, len(stages) - 1), st.sampled_from(_FAILURE_KINDS)),
                max_size=2,
            )
        )
        for index, kind in sorted(plan, key=lambda p: p[0]):
            name, good = stages[index]
            if good == ServerSignal.TLS_OK and kind in ("transient", "permanent", "garbage"):
                stages[index] = (name, ServerSignal.TLS_FAIL)
                notes.append(f"{name}: fails")
                continue
            if kind == "transient":
                bad = draw(replies(codes=[450, 451, 452, 454], max_lines=2, max_text_length=40))
                stages[index] = (name, _wire(bad))
            elif kind == "permanent":
                bad = draw(
                    replies(
                        codes=[500, 502, 503, 535, 550, 552, 554], max_lines=2, max_text_length=40
                    )
                )
                stages[index] = (name, _wire(bad))
            elif kind == "421":
                stages[index : len(stages)] = [
                    (name, b"421 4.3.2 Service shutting down\r\n"),
                    ("close", EOF),
                ]
            elif kind == "eof":
                stages[index : len(stages)] = [(name, EOF)]
            elif kind == "garbage":
                stages[index : len(stages)] = [(name, draw(st.sampled_from(_GARBAGE)))]
            else:
                stages[index : len(stages)] = [(name, ServerSignal.TIMEOUT)]
            notes.append(f"{name}: {kind}")
            if kind in ("421", "eof", "garbage", "timeout"):
                ended = True
                break
    if not ended:
        stages.append(("close", EOF))
    steps: list[ServerStep] = []
    for _, step in stages:
        if isinstance(step, bytes) and split and len(step) > 1:
            steps.extend(draw(chunkings(step, max_chunks=4)))
        else:
            steps.append(step)
    write_failure = draw(_WRITE_FAILURES) if write_failures else None
    if write_failure is not None:
        count = "an unknown count" if write_failure.written is None else write_failure.written
        how = "timed out" if write_failure.timeout else "reset"
        notes.append(f"write {write_failure.nth}: {how} after {count} octets")
    return ServerScript(steps=tuple(steps), notes=tuple(notes), write_failure=write_failure)


def server_scripts(
    *,
    recipients: int = 1,
    messages: int = 1,
    starttls: bool = False,
    auth: bool = False,
    chunking: bool = False,
    lmtp: bool = False,
    failures: bool = True,
    split: bool = True,
    write_failures: bool = False,
) -> SearchStrategy[ServerScript]:
    """What a server answers to one client conversation, with random faults.

    The script is the conversation of a client that sends ``messages``
    messages of ``recipients`` recipients each: a 220 greeting, the EHLO
    reply (from :func:`ehlo_replies`, with STARTTLS, AUTH PLAIN and CHUNKING
    offered as the flags say, PIPELINING or not), with ``starttls`` the 220,
    a successful handshake and the second EHLO reply, with ``auth`` a 235,
    then MAIL, RCPT, DATA 354 (unless ``chunking``) and the final reply (one
    per recipient with ``lmtp``) for each message, 221 to QUIT, and EOF.

    With ``failures`` up to two stages fail: a 4xx or 5xx reply instead of
    the positive one (the script then goes on as written, so replies may
    no longer match what the client sends, as with a confused server), a 421
    followed by EOF, EOF, garbage, a time-out, or a failed TLS handshake.
    With ``split`` replies are cut into random reads. With ``write_failures``
    one script in three also fails one of the client's first eight writes
    partway (:class:`WriteFailure`: a reset or a time-out, after a random
    count of its octets or an unknown one). ``notes`` says what was
    injected. Run a script with :func:`run_script`.

    Example::

        @given(server_scripts(starttls=True, auth=True))
        def test_never_auth_in_plaintext(script):
            session = Session(SessionConfig(tls=TLSPolicy.STARTTLS, credentials=CREDS))
            session.submit(MESSAGE)
            run = run_script(session, script)
            for entry in run.wire:
                if entry.kind is WireKind.SENT and not entry.tls:
                    assert not entry.data.startswith((b"AUTH", b"MAIL"))
    """
    if recipients < 1 or messages < 0:
        raise InvalidArgument("need recipients >= 1 and messages >= 0")
    return _server_script(
        recipients=recipients,
        messages=messages,
        starttls=starttls,
        auth=auth,
        chunking=chunking,
        lmtp=lmtp,
        failures=failures,
        split=split,
        write_failures=write_failures,
    )
