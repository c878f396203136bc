"""Denial of service by stalling: a server that stops talking (or
listening) at every stage.

Each stall ends with SMTPTimeoutError naming the stage whose timeout ran out
(RFC 5321 4.5.3.2 categories plus the ESMTP ones). Every test gives a 0.3 s
timeout to that one stage and 4 s to the rest, so a client that waits under
the wrong category fails the test instead of passing slowly. Only a stall
after the final dot leaves the delivery status unknown.

A server that drips a reply one byte at a time must not hold the client for
longer than the stage's timeout either (slowloris): the timeout is a budget
for the reply, not for each read.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from servers import Flavor, TLSMaterial

from smtpcore import SMTPTimeoutError, Stage

from .conftest import StartPeer, attempt
from .peer import (
    BODY,
    EHLO,
    MAIL,
    RCPT,
    RCPT_TO,
    AwaitEOF,
    Deaf,
    Drip,
    Expect,
    ReadExactly,
    ReadUntil,
    Send,
    StartTLS,
    Step,
    data,
    envelope,
    goodbye,
    greet,
    hello,
)

pytestmark = pytest.mark.anyio

SHORT = 0.2
LONG = 4.0
AUTH_PLAIN = b"AUTH PLAIN AHVzZXIAc2VjcmV0LXB3"  # user / secret-pw

STALLS: dict[str, tuple[list[Step], Stage]] = {
    "greeting": ([], Stage.GREETING),
    "mid-greeting": ([Send(b"220-peer.test\r\n")], Stage.GREETING),
    "ehlo": ([*greet(), Expect(EHLO)], Stage.EHLO),
    "mid-ehlo-reply": ([*greet(), Expect(EHLO), Send(b"250-peer.test\r\n")], Stage.EHLO),
    "half-a-line": ([*greet(), Expect(EHLO), Send(b"250 peer.te")], Stage.EHLO),
    "cr-without-lf": ([*greet(), Expect(EHLO), Send(b"250 peer.test\r")], Stage.EHLO),
    "starttls": ([*hello(b"STARTTLS"), Expect(b"STARTTLS")], Stage.STARTTLS),
    "auth": ([*hello(b"AUTH PLAIN"), Expect(AUTH_PLAIN)], Stage.AUTH),
    "auth-continuation": (
        [
            *hello(b"AUTH LOGIN"),
            Expect(b"AUTH LOGIN"),
            Send(b"334 VXNlcm5hbWU6\r\n"),
            Expect(b"dXNlcg=="),
        ],
        Stage.AUTH,
    ),
    "mail": ([*hello(), Expect(MAIL)], Stage.MAIL),
    "rcpt": ([*hello(), *envelope()[:3]], Stage.RCPT),
    "data": ([*hello(), *envelope(), Expect(b"DATA")], Stage.DATA_INIT),
    "after-dot": ([*hello(), *envelope(), *data()[:3]], Stage.DATA_TERMINATION),
    "after-bdat-last": (
        [
            *hello(b"CHUNKING"),
            *envelope(),
            Expect(b"BDAT %d LAST" % len(BODY)),
            ReadExactly(len(BODY)),
        ],
        Stage.DATA_TERMINATION,
    ),
}


def options(where: str, stage: Stage) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if where.startswith("auth"):
        extra = {"auth": ("user", "secret-pw"), "allow_insecure_auth": True}
    elif where == "starttls":
        extra = {"tls": "opportunistic"}
    return {"timeout": LONG, "timeouts": {stage.value: SHORT}, **extra}


@pytest.mark.parametrize("where", list(STALLS))
async def test_stall(flavor: Flavor, start_peer: StartPeer, where: str) -> None:
    before, stage = STALLS[where]
    peer = start_peer([*before, AwaitEOF()])
    outcome = await attempt(flavor, peer, **options(where, stage))
    error = outcome.failed(SMTPTimeoutError)
    assert error.stage is stage
    assert error.seconds == SHORT
    assert error.status_unknown is (stage is Stage.DATA_TERMINATION)
    assert SHORT <= outcome.elapsed < LONG
    # Closed without QUIT: a late reply must never answer a later command.
    assert outcome.record.finished
    assert bytes(outcome.record.after_script) == b""


async def test_stall_in_the_tls_handshake(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial
) -> None:
    """220 to STARTTLS, then nothing: the handshake's own timeout category
    (Stage.TLS_HANDSHAKE), reported as a timeout like every other stall."""
    peer = start_peer([*hello(b"STARTTLS"), Expect(b"STARTTLS"), Send(b"220 go\r\n"), AwaitEOF()])
    outcome = await attempt(
        flavor,
        peer,
        tls="starttls",
        ssl_context=tls.client_context(),
        timeout=LONG,
        timeouts={"tls-handshake": SHORT},
    )
    assert SHORT <= outcome.elapsed < LONG
    assert outcome.record.verbs()[:2] == [b"EHLO", b"STARTTLS"]
    error = outcome.failed(SMTPTimeoutError)
    assert error.stage is Stage.TLS_HANDSHAKE


async def test_stall_in_the_implicit_tls_handshake(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial
) -> None:
    """Implicit TLS (RFC 8314): the server accepts and never answers the
    ClientHello. The same timeout, at connect time."""
    peer = start_peer([AwaitEOF()])
    outcome = await attempt(
        flavor,
        peer,
        tls="implicit",
        ssl_context=tls.client_context(),
        timeout=LONG,
        timeouts={"tls-handshake": SHORT},
    )
    assert SHORT <= outcome.elapsed < LONG
    error = outcome.failed(SMTPTimeoutError)
    assert error.stage is Stage.TLS_HANDSHAKE
    assert not outcome.record.tls_up


async def test_stall_after_quit(flavor: Flavor, start_peer: StartPeer) -> None:
    """No 221: the message was accepted; the client waits the QUIT timeout
    and closes, without an error."""
    peer = start_peer([*hello(), *envelope(), *data(), Expect(b"QUIT"), AwaitEOF()])
    outcome = await attempt(flavor, peer, timeout=LONG, timeouts={"quit": SHORT})
    assert outcome.sent().accepted == (RCPT,)
    assert SHORT <= outcome.elapsed < LONG


async def test_stall_too_few_rcpt_replies(flavor: Flavor, start_peer: StartPeer) -> None:
    """Two recipients, one RCPT reply (no pipelining): RCPT timeout."""
    peer = start_peer(
        [
            *hello(),
            Expect(MAIL),
            Send(b"250 ok\r\n"),
            Expect(RCPT_TO),
            Send(b"250 ok\r\n"),
            Expect(b"RCPT TO:<carol@example.test>"),
            AwaitEOF(),
        ]
    )
    outcome = await attempt(
        flavor,
        peer,
        recipients=(RCPT, "carol@example.test"),
        timeout=LONG,
        timeouts={"rcpt": SHORT},
    )
    error = outcome.failed(SMTPTimeoutError)
    assert error.stage is Stage.RCPT
    assert b"DATA" not in outcome.record.verbs()


# -- write stalls ------------------------------------------------------------------------------

#: Bigger than what the loopback socket buffers on both sides can hold.
BIG = (b"x" * 998 + b"\r\n") * 40_000


def deaf_after_354() -> list[Step]:
    return [*hello(), *envelope(), Expect(b"DATA"), Send(b"354 go\r\n"), Deaf(0.6), AwaitEOF()]


async def test_stall_reading_the_data(flavor: Flavor, start_peer: StartPeer) -> None:
    """The server stops reading halfway through a 40 MB body held in memory:
    RFC 5321 4.5.3.2.5 ("Data Block", each TCP SEND of a chunk of data). The
    final dot was never written, so the message's fate is known: not
    delivered."""
    peer = start_peer(deaf_after_354())
    outcome = await attempt(flavor, peer, message=BIG, timeout=1.0, timeouts={"data-block": SHORT})
    error = outcome.failed(SMTPTimeoutError)
    assert not error.status_unknown
    assert error.stage is Stage.DATA_BLOCK


async def test_stall_reading_a_streamed_body(flavor: Flavor, start_peer: StartPeer) -> None:
    """The same with the body streamed from a file object."""
    peer = start_peer(deaf_after_354())
    outcome = await attempt(
        flavor,
        peer,
        message=None,
        file_handle=io.BytesIO(BIG),
        timeout=1.0,
        timeouts={"data-block": SHORT},
    )
    error = outcome.failed(SMTPTimeoutError)
    assert error.stage is Stage.DATA_BLOCK
    assert not error.status_unknown


#: 16 MB: more than the loopback socket buffers hold while the server pauses.
LARGE = BIG[: 16_000 * 1000]


def slow_reader(tls: bool) -> list[Step]:
    """Takes the body only after a pause: the client's writes must wait for
    room, more than once, and then finish."""
    start: list[Step] = [*hello(b"STARTTLS")] if tls else [*hello()]
    if tls:
        start += [Expect(b"STARTTLS"), Send(b"220 go ahead\r\n"), StartTLS(), *hello()[1:]]
    return [
        *start,
        *envelope(),
        Expect(b"DATA"),
        Send(b"354 go ahead\r\n"),
        Deaf(0.3),
        ReadUntil(),
        Send(b"250 2.0.0 queued\r\n"),
        *goodbye(),
    ]


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "starttls"])
@pytest.mark.parametrize("source", ["bytes", "file"])
async def test_slow_reader_gets_the_whole_body(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, secure: bool, source: str
) -> None:
    """A server that stops reading for a while is not a stall: a 16 MB body
    fills the socket buffers, the writes wait (TLS ones included) and
    resume, and every octet arrives once, in order."""
    peer = start_peer(slow_reader(secure))
    options: dict[str, Any] = {"tls": "none", "timeout": LONG}
    if secure:
        options.update(tls="starttls", ssl_context=tls.client_context())
    if source == "file":
        options.update(message=None, file_handle=io.BytesIO(LARGE))
    else:
        options.update(message=LARGE)
    outcome = await attempt(flavor, peer, **options)
    outcome.sent()
    assert outcome.record.bodies == [LARGE + b".\r\n"]


# -- slowloris -------------------------------------------------------------------------------


async def test_dripped_reply(flavor: Flavor, start_peer: StartPeer) -> None:
    """A MAIL reply sent one byte every 0.1 s (1 s of it, never complete)
    with a 0.2 s MAIL timeout: the client gives up after about 0.2 s,
    instead of letting each byte restart the clock (RFC 5321 4.5.3.2 times
    the wait for the reply, and a slow server could otherwise hold a client
    for line limit x timeout: 1024 x 5 minutes)."""
    peer = start_peer([*hello(), Expect(MAIL), Drip(b"250-a\r\n250", 0.1), AwaitEOF()])
    outcome = await attempt(flavor, peer, timeout=LONG, timeouts={"mail": SHORT})
    error = outcome.failed(SMTPTimeoutError)
    assert error.stage is Stage.MAIL
    assert outcome.elapsed < 0.8, f"held for {outcome.elapsed:.2f} s by a dripping server"
