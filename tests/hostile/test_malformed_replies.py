"""Malformed and hostile replies, and replies that try to exhaust resources.

RFC 5321 4.2: ``Reply-code = %x32-35 %x30-35 %x30-39``, then SP, "-" or CRLF;
every line of a multi-line reply has the same code; lines end with CRLF
only (2.3.8). Anything else is RemoteProtocolError, and the client closes
without another byte: a server (or a middlebox) that frames replies
differently from us must not get to answer our next command.

Bounds: a line without CRLF, endless continuation lines and an oversized
reply end the session within the parser's limits, not when memory or
patience runs out. Text that is not UTF-8 is kept (as bytes, and losslessly
as text); terminal escape sequences never reach a message, a transcript
line or a repr unescaped.
"""

from __future__ import annotations

import pytest
from servers import Flavor

from smtpcore import (
    Direction,
    RecipientsRefusedError,
    RemoteProtocolError,
    SMTPError,
    TranscriptEntry,
)

from .conftest import StartPeer, attempt
from .peer import (
    EHLO,
    MAIL,
    RCPT_TO,
    AwaitEOF,
    Expect,
    Flood,
    Send,
    data,
    envelope,
    goodbye,
    greet,
    hello,
)

pytestmark = pytest.mark.anyio

MALFORMED = {
    "code-changes-in-multiline": b"250-peer.test\r\n251 PIPELINING\r\n",
    "class-changes-in-multiline": b"250-peer.test\r\n550 no\r\n",
    "four-digits": b"2500 OK\r\n",
    "two-digits": b"25 OK\r\n",
    "plus-sign": b"+250 OK\r\n",
    "minus-sign": b"-250 OK\r\n",
    "leading-space": b" 250 OK\r\n",
    "tab-after-code": b"250\tOK\r\n",
    "code-199": b"199 OK\r\n",
    "code-600": b"600 OK\r\n",
    "code-099": b"099 OK\r\n",
    "code-260": b"260 OK\r\n",
    "letter-in-code": b"2x0 OK\r\n",
    "nul-in-code": b"25\x000 OK\r\n",
    "fullwidth-digits": "\uff12\uff15\uff10 OK\r\n".encode(),
    "empty-line": b"\r\n",
    "bare-lf": b"250 OK\n",
    "bare-cr-inside": b"250 O\rK\r\n",
    "bare-lf-between-lines": b"250-peer.test\n250 OK\r\n",
    "lf-cr": b"250 OK\n\r",
}


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_ehlo_reply(flavor: Flavor, start_peer: StartPeer, reply: bytes) -> None:
    peer = start_peer([*greet(), Expect(EHLO), Send(reply), AwaitEOF()])
    outcome = await attempt(flavor, peer)
    outcome.failed(RemoteProtocolError)
    # Closed without a further byte: not even QUIT.
    assert bytes(outcome.record.received) == b"EHLO localhost\r\n"


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_greeting(flavor: Flavor, start_peer: StartPeer, reply: bytes) -> None:
    peer = start_peer([Send(reply.replace(b"250", b"220")), AwaitEOF()])
    outcome = await attempt(flavor, peer)
    outcome.failed(RemoteProtocolError)
    assert bytes(outcome.record.received) == b""


@pytest.mark.parametrize(
    "reply", [b"2500 OK\r\n", b"250 OK\n", b"250-a\r\n251 b\r\n"], ids=["4-digits", "lf", "mix"]
)
async def test_malformed_mail_reply(flavor: Flavor, start_peer: StartPeer, reply: bytes) -> None:
    peer = start_peer([*hello(), Expect(MAIL), Send(reply), AwaitEOF()])
    outcome = await attempt(flavor, peer)
    outcome.failed(RemoteProtocolError)
    assert outcome.record.verbs() == [b"EHLO", b"MAIL"]


# -- resource exhaustion ---------------------------------------------------------------------


async def test_endless_line(flavor: Flavor, start_peer: StartPeer) -> None:
    """A greeting that never ends: refused at the line limit (1024 octets),
    long before the peer's 16 MiB cap."""
    peer = start_peer([Flood(b"a" * 512, prefix=b"220 ")])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RemoteProtocolError)
    assert "longer than 1024 octets" in str(error)
    assert outcome.record.flooded < 16 * 1024 * 1024
    assert outcome.elapsed < 2.0
    assert bytes(outcome.record.received) == b""


async def test_endless_line_after_complete_lines(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer([*greet(), Expect(EHLO), Flood(b"b" * 512, prefix=b"250-peer.test\r\n250 ")])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RemoteProtocolError)
    assert "longer than 1024 octets" in str(error)
    assert outcome.record.verbs() == [b"EHLO"]


async def test_endless_continuation_lines(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer([*greet(), Expect(EHLO), Flood(b"250-PIPELINING\r\n")])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RemoteProtocolError)
    assert "more than 100 lines" in str(error)
    assert outcome.elapsed < 2.0
    assert outcome.record.verbs() == [b"EHLO"]


async def test_oversized_reply(flavor: Flavor, start_peer: StartPeer) -> None:
    """Long (but legal-length) continuation lines: refused at 64 KiB."""
    line = b"250-" + b"x" * 1000 + b"\r\n"
    peer = start_peer([*greet(), Expect(EHLO), Flood(line)])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RemoteProtocolError)
    assert "larger than 65536 octets" in str(error)
    assert outcome.record.verbs() == [b"EHLO"]


async def test_endless_greeting_continuation(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer([Flood(b"220-still greeting\r\n")])
    outcome = await attempt(flavor, peer)
    outcome.failed(RemoteProtocolError)
    assert bytes(outcome.record.received) == b""


# -- text ------------------------------------------------------------------------------------

NOT_UTF8 = b"\xff\xfe \xc3\x28 \xed\xa0\x80 \xc0\xaf"


async def test_invalid_utf8_is_kept(flavor: Flavor, start_peer: StartPeer) -> None:
    """Undecodable octets in the greeting, the EHLO reply and the final
    reply: the session works and the reply keeps the octets."""
    peer = start_peer(
        [
            *greet(b"220 peer.test " + NOT_UTF8 + b"\r\n"),
            Expect(EHLO),
            Send(b"250-peer.test " + NOT_UTF8 + b"\r\n250 HELP " + NOT_UTF8 + b"\r\n"),
            *envelope(),
            *data(b"250 2.0.0 queued as " + NOT_UTF8 + b"\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer, transaction_log=True)
    result = outcome.sent()
    reply = result.result.reply
    assert reply is not None
    assert reply.lines == (b"2.0.0 queued as " + NOT_UTF8,)
    assert reply.enhanced_code == "2.0.0"
    assert reply.text.encode("utf-8", "surrogateescape") == reply.lines[0]
    assert "\\xff\\xfe" in reply.describe()
    received = [e for e in result.transcript or () if e.direction is Direction.RECEIVED]
    assert received[0].data == b"220 peer.test " + NOT_UTF8
    assert outcome.record.finished


async def test_invalid_utf8_in_a_refusal(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer(
        [
            *hello(),
            Expect(MAIL),
            Send(b"250 ok\r\n"),
            Expect(RCPT_TO),
            Send(b"550 5.1.1 " + NOT_UTF8 + b"\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RecipientsRefusedError)
    assert error.reply.lines == (b"5.1.1 " + NOT_UTF8,)
    str(error).encode("utf-8")  # printable, and encodable: no lone surrogates
    assert outcome.record.finished


ESCAPES = b"\x1b[2J\x1b]0;owned\x07\x1b[31m red \xc2\x9b31m \x9b1m \x00 \x7f bell\x07"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\x00", "\x7f")


def assert_printable(text: str) -> None:
    for control in RAW_CONTROLS:
        assert control not in text, (control, text)


async def test_terminal_escapes_in_a_refusal(flavor: Flavor, start_peer: StartPeer) -> None:
    """ESC, BEL, C1 CSI (as UTF-8 and as a raw octet), NUL, DEL in a 550:
    the error's message, the failure description and the transcript show
    them escaped; the reply itself keeps the octets."""
    peer = start_peer(
        [
            *greet(b"220 peer.test " + ESCAPES + b"\r\n"),
            Expect(EHLO),
            Send(b"250-peer.test " + ESCAPES + b"\r\n250 8BITMIME\r\n"),
            Expect(MAIL),
            Send(b"250 ok " + ESCAPES + b"\r\n"),
            Expect(RCPT_TO),
            Send(b"550 5.1.1 " + ESCAPES + b"\r\n"),
            *goodbye(),
        ]
    )
    failures: list[tuple[SMTPError, tuple[TranscriptEntry, ...], str]] = []
    outcome = await attempt(
        flavor,
        peer,
        transaction_log=True,
        on_failure=lambda context, error, transcript, description: failures.append(
            (error, transcript, description)
        ),
    )
    assert outcome.error is None
    assert outcome.result is None  # callbacks given
    [(error, transcript, description)] = failures
    assert isinstance(error, RecipientsRefusedError)
    assert error.reply.lines == (b"5.1.1 " + ESCAPES,)
    assert_printable(str(error))
    assert_printable(repr(error))
    assert_printable(description)
    assert_printable(error.reply.describe())
    assert transcript
    for entry in transcript:
        assert_printable(str(entry))
    assert any(b"\x1b[2J" in entry.data for entry in transcript)
    assert "\\x1b[2J" in "\n".join(str(entry) for entry in transcript)
    assert outcome.record.finished


async def test_terminal_escapes_in_a_protocol_error(flavor: Flavor, start_peer: StartPeer) -> None:
    """The excerpt of a malformed line in RemoteProtocolError is escaped too."""
    peer = start_peer([*greet(), Expect(EHLO), Send(b"2\x1b[2J50 OK\x07\r\n"), AwaitEOF()])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RemoteProtocolError)
    assert_printable(str(error))
    assert "\\x1b" in str(error)
