"""Reply/command desynchronisation: unsolicited replies, too many or too few
pipelined replies, and the asynchronous 421.

Every reply is bound to the command it answers (a FIFO). A reply with no
command waiting is RemoteProtocolError (RFC 5321 4.2: the server sends
replies only in answer to commands, 421 excepted, 3.8), and so is a reply of
a class the command cannot get (RFC 5321 4.3.2: DATA is answered 354 or
4yz/5yz, never 2yz; MAIL never 3yz), which is how an extra reply inside a
pipelined group shows. Too few replies are a timeout at the stage of the
first unanswered command. 421 is legal at any time (RFC 5321 3.8): the
client stops at once, TemporaryReplyError with code 421, no further byte.
"""

from __future__ import annotations

import anyio
import pytest
from servers import Flavor

from smtpcore import (
    RemoteProtocolError,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    TemporaryReplyError,
)

from .conftest import StartPeer, attempt
from .peer import (
    BODY,
    EHLO,
    MAIL,
    RCPT,
    RCPT_TO,
    SENDER,
    AwaitEOF,
    Expect,
    Pause,
    ReadUntil,
    Send,
    Step,
    data,
    delivery,
    ehlo_reply,
    envelope,
    goodbye,
    greet,
    hello,
)

pytestmark = pytest.mark.anyio

BODY_MARK = b"Subject: hostile"


# -- unsolicited replies ---------------------------------------------------------------------


async def test_reply_before_ehlo(flavor: Flavor, start_peer: StartPeer) -> None:
    """A second reply in the greeting's segment: nothing asked for it."""
    peer = start_peer([*greet(b"220 peer.test\r\n250 unsolicited\r\n"), AwaitEOF()])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RemoteProtocolError)
    assert "unsolicited" in str(error)
    assert bytes(outcome.record.received) == b""


async def test_extra_reply_after_ehlo(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer(
        [*greet(), Expect(EHLO), Send(ehlo_reply() + b"250 one too many\r\n"), AwaitEOF()]
    )
    outcome = await attempt(flavor, peer)
    error = outcome.failed(RemoteProtocolError)
    assert "unsolicited" in str(error)
    assert outcome.record.verbs() == [b"EHLO"]


async def test_extra_reply_after_the_final_reply(flavor: Flavor, start_peer: StartPeer) -> None:
    """The message was accepted before the stray reply: it stays accepted,
    but the connection is dropped without QUIT (the stray 250 must not be
    taken for QUIT's answer)."""
    peer = start_peer(
        [*hello(), *envelope(), *data(b"250 queued\r\n250 one too many\r\n"), AwaitEOF()]
    )
    outcome = await attempt(flavor, peer)
    assert outcome.sent().accepted == (RCPT,)
    assert b"QUIT" not in outcome.record.verbs()


async def test_unsolicited_reply_while_idle(flavor: Flavor, start_peer: StartPeer) -> None:
    """A stray reply on an idle connection: the client notices before its
    next transaction, drops that connection (no MAIL on it) and delivers on
    a new one."""
    peer = start_peer(
        [*hello(), Pause(0.05), Send(b"250 surprise\r\n"), AwaitEOF()],
        delivery(),
    )
    async with flavor.client(**peer.options()) as client:
        await anyio.sleep(0.3)
        result = await client.send_message(SENDER, [RCPT], message=BODY)
    await peer.settled()
    assert result.accepted == (RCPT,)
    first, second = peer.records
    assert bytes(first.received) == b"EHLO localhost\r\n"
    assert second.finished
    assert second.failures == []


async def test_421_while_idle(flavor: Flavor, start_peer: StartPeer) -> None:
    """An idle-timeout 421: reconnect, deliver on the new connection."""
    peer = start_peer(
        [*hello(), Pause(0.05), Send(b"421 4.4.2 idle too long\r\n"), AwaitEOF()],
        delivery(),
    )
    async with flavor.client(**peer.options()) as client:
        await anyio.sleep(0.3)
        result = await client.send_message(SENDER, [RCPT], message=BODY)
    await peer.settled()
    assert result.accepted == (RCPT,)
    first, second = peer.records
    assert bytes(first.received) == b"EHLO localhost\r\n"
    assert second.finished


# -- pipelined replies -----------------------------------------------------------------------


def pipelined() -> list[Step]:
    """Hello with PIPELINING, and the pipelined MAIL, RCPT, DATA group."""
    return [*hello(b"PIPELINING"), Expect(MAIL), Expect(RCPT_TO), Expect(b"DATA")]


async def test_pipelined_control(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer(
        [
            *pipelined(),
            Send(b"250 ok\r\n250 ok\r\n354 go\r\n"),
            ReadUntil(),
            Send(b"250 queued\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer)
    outcome.sent()
    assert outcome.record.finished


@pytest.mark.parametrize(
    "replies",
    [
        b"250 ok\r\n250 ok\r\n250 one too many\r\n354 go\r\n",
        b"250 ok\r\n250 one too many\r\n250 ok\r\n354 go\r\n",
        b"250 ok\r\n250 ok\r\n354 go\r\n250 one too many\r\n",
    ],
    ids=["before-354", "before-rcpt-reply", "after-354"],
)
async def test_too_many_pipelined_replies(
    flavor: Flavor, start_peer: StartPeer, replies: bytes
) -> None:
    """One reply too many in the answer to MAIL, RCPT, DATA: the stream is
    out of step. Whichever command the extra reply lands on, the client
    must notice (a 250 to DATA, a 354 to RSET, or a reply before our data)
    and must not send the body."""
    peer = start_peer([*pipelined(), Send(replies), AwaitEOF()])
    outcome = await attempt(flavor, peer)
    assert BODY_MARK not in outcome.record.received
    assert outcome.record.verbs() == [b"EHLO", b"MAIL", b"RCPT", b"DATA"]
    outcome.failed(RemoteProtocolError)


async def test_354_to_mail(flavor: Flavor, start_peer: StartPeer) -> None:
    """A 3yz reply to MAIL cannot be MAIL's (RFC 5321 4.3.2): a stray 354
    meant for a DATA that was never sent. The stream is out of step."""
    peer = start_peer([*hello(), Expect(MAIL), Send(b"354 go ahead\r\n"), AwaitEOF()])
    outcome = await attempt(flavor, peer, timeout=0.5)
    assert BODY_MARK not in outcome.record.received
    outcome.failed(RemoteProtocolError)
    assert outcome.record.verbs() == [b"EHLO", b"MAIL"]


@pytest.mark.parametrize(
    ("replies", "stage"),
    [
        (b"", Stage.MAIL),
        (b"250 ok\r\n", Stage.RCPT),
        (b"250 ok\r\n250 ok\r\n", Stage.DATA_INIT),
        (b"250 ok\r\n250-ok\r\n", Stage.RCPT),
    ],
    ids=["none", "mail-only", "no-354", "half-a-reply"],
)
async def test_too_few_pipelined_replies(
    flavor: Flavor, start_peer: StartPeer, replies: bytes, stage: Stage
) -> None:
    """Missing replies: a timeout at the first unanswered command; no body."""
    steps = [*pipelined(), *([Send(replies)] if replies else []), AwaitEOF()]
    outcome = await attempt(flavor, start_peer(steps), timeout=0.3)
    error = outcome.failed(SMTPTimeoutError)
    assert error.stage is stage
    assert not error.status_unknown
    assert BODY_MARK not in outcome.record.received
    assert outcome.record.verbs() == [b"EHLO", b"MAIL", b"RCPT", b"DATA"]


# -- 421 at every stage ----------------------------------------------------------------------

CLOSING = b"421 4.3.2 peer.test shutting down\r\n"

STAGES_421: dict[str, tuple[list[Step], list[bytes]]] = {
    "greeting": ([], []),
    "ehlo": ([*greet(), Expect(EHLO)], [b"EHLO"]),
    "starttls": (
        [*hello(b"STARTTLS"), Expect(b"STARTTLS")],
        [b"EHLO", b"STARTTLS"],
    ),
    "mail": ([*hello(), Expect(MAIL)], [b"EHLO", b"MAIL"]),
    "rcpt": ([*hello(), *envelope()[:3]], [b"EHLO", b"MAIL", b"RCPT"]),
    "data": ([*hello(), *envelope(), Expect(b"DATA")], [b"EHLO", b"MAIL", b"RCPT", b"DATA"]),
    "after-data": (
        [*hello(), *envelope(), *data()[:3]],
        [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"SUBJECT:", b"", b"BODY", b"."],
    ),
    "pipelined-mail": ([*pipelined()], [b"EHLO", b"MAIL", b"RCPT", b"DATA"]),
}


@pytest.mark.parametrize("where", list(STAGES_421))
async def test_421_at_every_stage(flavor: Flavor, start_peer: StartPeer, where: str) -> None:
    before, verbs = STAGES_421[where]
    peer = start_peer([*before, Send(CLOSING), AwaitEOF()])
    outcome = await attempt(flavor, peer, tls="opportunistic")
    error = outcome.failed(TemporaryReplyError)
    assert error.code == 421
    assert error.enhanced_code == "4.3.2"
    # Nothing after the 421: no RSET, no QUIT.
    assert outcome.record.verbs() == verbs


async def test_421_to_auth(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer(
        [
            *hello(b"AUTH PLAIN"),
            Expect(b"AUTH PLAIN AHVzZXIAc2VjcmV0LXB3"),
            Send(CLOSING),
            AwaitEOF(),
        ]
    )
    outcome = await attempt(flavor, peer, auth=("user", "secret-pw"), allow_insecure_auth=True)
    error = outcome.error
    assert isinstance(error, SMTPError)
    # The 421 ends the session whatever the command: the same error type.
    assert isinstance(error, TemporaryReplyError), repr(error)
    assert error.code == 421
    assert outcome.record.verbs() == [b"EHLO", b"AUTH"]


async def test_421_to_quit_is_harmless(flavor: Flavor, start_peer: StartPeer) -> None:
    peer = start_peer([*hello(), *envelope(), *data(), Expect(b"QUIT"), Send(CLOSING), AwaitEOF()])
    outcome = await attempt(flavor, peer)
    assert outcome.sent().accepted == (RCPT,)
