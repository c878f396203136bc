"""DATA or BDAT refused: no body byte goes out without the server's go-ahead.

RFC 5321 4.1.1.4: message data follows a 354 reply to DATA, and only that;
a 4yz/5yz to DATA (pipelined or not) means no data at all (and an RSET
before any next MAIL, since the server may keep the transaction).
With CHUNKING (RFC 3030) the body travels with BDAT itself, so a refusal can
only come after it: a refused BDAT LAST fails the message with that reply.
A refused envelope never gets to DATA or BDAT.
"""

from __future__ import annotations

import pytest
from servers import Flavor

from smtpcore import (
    PermanentReplyError,
    RecipientsRefusedError,
    ReplyError,
    TemporaryReplyError,
)

from .conftest import StartPeer, attempt
from .peer import (
    BODY,
    MAIL,
    RCPT_TO,
    Expect,
    ReadExactly,
    Send,
    envelope,
    goodbye,
    hello,
)

pytestmark = pytest.mark.anyio

BODY_MARK = b"Subject: hostile"


@pytest.mark.parametrize(
    ("reply", "error_type"),
    [
        (b"554 5.3.0 no data for you\r\n", PermanentReplyError),
        (b"451 4.3.0 try later\r\n", TemporaryReplyError),
        (b"503 5.5.1 bad sequence\r\n", PermanentReplyError),
    ],
    ids=["554", "451", "503"],
)
@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelined"])
async def test_data_refused(
    flavor: Flavor,
    start_peer: StartPeer,
    reply: bytes,
    error_type: type[ReplyError],
    pipelining: bool,
) -> None:
    if pipelining:
        steps = [
            *hello(b"PIPELINING"),
            Expect(MAIL),
            Expect(RCPT_TO),
            Expect(b"DATA"),
            Send(b"250 ok\r\n250 ok\r\n" + reply),
        ]
    else:
        steps = [*hello(), *envelope(), Expect(b"DATA"), Send(reply)]
    peer = start_peer([*steps, *goodbye()])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(error_type)
    assert error.code == int(reply[:3])
    assert error.command == "DATA"
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert BODY_MARK not in record.received
    # The server may keep the transaction: RSET would go before a next MAIL.
    assert record.verbs()[-2:] == [b"DATA", b"QUIT"]


async def test_bdat_last_refused(flavor: Flavor, start_peer: StartPeer) -> None:
    """CHUNKING: the body goes with BDAT; a 554 to BDAT LAST is the error."""
    peer = start_peer(
        [
            *hello(b"CHUNKING"),
            *envelope(),
            Expect(b"BDAT %d LAST" % len(BODY)),
            ReadExactly(len(BODY)),
            Send(b"554 5.6.0 content refused\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer)
    error = outcome.failed(PermanentReplyError)
    assert error.code == 554
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert record.bodies == [BODY]
    assert b"DATA" not in record.verbs()


async def test_refused_envelope_sends_no_bdat(flavor: Flavor, start_peer: StartPeer) -> None:
    """CHUNKING without PIPELINING: RCPT refused, so no BDAT and no body."""
    peer = start_peer(
        [
            *hello(b"CHUNKING"),
            Expect(MAIL),
            Send(b"250 ok\r\n"),
            Expect(RCPT_TO),
            Send(b"550 5.1.1 no such user\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RecipientsRefusedError)
    assert error.code == 550
    record = outcome.record
    assert record.finished
    assert BODY_MARK not in record.received
    assert b"BDAT" not in record.verbs()


async def test_354_after_refused_recipients_sends_no_body(
    flavor: Flavor, start_peer: StartPeer
) -> None:
    """Pipelined: every RCPT refused but the server still says 354 to DATA
    (RFC 2920 3.1): the client sends the lone dot, never the message."""
    peer = start_peer(
        [
            *hello(b"PIPELINING"),
            Expect(MAIL),
            Expect(RCPT_TO),
            Expect(b"DATA"),
            Send(b"250 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n"),
            Expect(b"."),
            Send(b"554 5.5.1 no valid recipients\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RecipientsRefusedError)
    assert error.code == 550
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert BODY_MARK not in record.received
