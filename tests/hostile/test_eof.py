"""The server goes away at every stage: EOF (FIN, after a clean TLS
close_notify under TLS) or RST.

Each is ConnectionLostError with the stage that was waiting. Only after the
final dot (or BDAT LAST) is the message's fate unknown: RFC 5321 4.5.3.2.6,
the server may have taken it before the connection broke, so
``status_unknown`` is True there and nowhere else. The client sends nothing
after the EOF, and a server closing after QUIT is a clean end.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from servers import Flavor, TLSMaterial

from smtpcore import ConnectionLostError, Stage, TLSError

from .conftest import StartPeer, attempt
from .peer import (
    BODY,
    EHLO,
    MAIL,
    RCPT,
    SENDER,
    Close,
    Expect,
    Pause,
    ReadExactly,
    Reset,
    Send,
    StartTLS,
    Step,
    data,
    ehlo_reply,
    envelope,
    greet,
    hello,
)

pytestmark = pytest.mark.anyio

AUTH_PLAIN = b"AUTH PLAIN AHVzZXIAc2VjcmV0LXB3"  # user / secret-pw

# Where the server stops: (script before the EOF, stage, status unknown).
WHERE: dict[str, tuple[list[Step], Stage, bool]] = {
    "greeting": ([], Stage.GREETING, False),
    "mid-greeting": ([Send(b"220-peer.test\r\n")], Stage.GREETING, False),
    "ehlo": ([*greet(), Expect(EHLO)], Stage.EHLO, False),
    "mid-ehlo-reply": ([*greet(), Expect(EHLO), Send(b"250-peer.test\r\n")], Stage.EHLO, False),
    "starttls": ([*hello(b"STARTTLS"), Expect(b"STARTTLS")], Stage.STARTTLS, False),
    "auth": ([*hello(b"AUTH PLAIN"), Expect(AUTH_PLAIN)], Stage.AUTH, False),
    "mail": ([*hello(), Expect(MAIL)], Stage.MAIL, False),
    "rcpt": ([*hello(), *envelope()[:3]], Stage.RCPT, False),
    "data": ([*hello(), *envelope(), Expect(b"DATA")], Stage.DATA_INIT, False),
    "after-dot": ([*hello(), *envelope(), *data()[:3]], Stage.DATA_TERMINATION, True),
    "after-bdat-last": (
        [
            *hello(b"CHUNKING"),
            *envelope(),
            Expect(b"BDAT %d LAST" % len(BODY)),
            ReadExactly(len(BODY)),
        ],
        Stage.DATA_TERMINATION,
        True,
    ),
}


def options(where: str) -> dict[str, Any]:
    if where == "auth":
        return {"auth": ("user", "secret-pw"), "allow_insecure_auth": True}
    if where == "starttls":
        return {"tls": "opportunistic"}
    return {}


@pytest.mark.parametrize("where", list(WHERE))
async def test_eof(flavor: Flavor, start_peer: StartPeer, where: str) -> None:
    before, stage, unknown = WHERE[where]
    peer = start_peer([*before, Close()])
    outcome = await attempt(flavor, peer, **options(where))
    error = outcome.failed(ConnectionLostError)
    assert error.stage is stage
    assert error.status_unknown is unknown
    assert ("delivery status unknown" in str(error)) is unknown
    assert outcome.record.finished
    assert bytes(outcome.record.after_script) == b""  # not even QUIT


@pytest.mark.parametrize("where", ["greeting", "mail", "data", "after-dot"])
async def test_reset(flavor: Flavor, start_peer: StartPeer, where: str) -> None:
    before, stage, unknown = WHERE[where]
    # A moment first, so that the RST cannot abort the connect itself.
    peer = start_peer([*before, Pause(0.1), Reset()])
    outcome = await attempt(flavor, peer)
    error = outcome.failed(ConnectionLostError)
    assert error.stage is stage
    assert error.status_unknown is unknown
    assert error.errno == errno.ECONNRESET


async def test_eof_after_tls(flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial) -> None:
    """close_notify and FIN while MAIL waits for its reply, inside TLS."""
    peer = start_peer(
        [
            *hello(b"STARTTLS"),
            Expect(b"STARTTLS"),
            Send(b"220 go ahead\r\n"),
            StartTLS(),
            Expect(EHLO),
            Send(ehlo_reply()),
            Expect(MAIL),
            Close(),
        ]
    )
    outcome = await attempt(flavor, peer, tls="starttls", ssl_context=tls.client_context())
    error = outcome.failed(ConnectionLostError)
    assert error.stage is Stage.MAIL
    assert not error.status_unknown
    assert outcome.record.finished


async def test_eof_instead_of_handshake(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial
) -> None:
    """220 to STARTTLS, then EOF: the handshake cannot happen (TLSError),
    and nothing is sent in plaintext."""
    peer = start_peer([*hello(b"STARTTLS"), Expect(b"STARTTLS"), Send(b"220 go\r\n"), Close()])
    outcome = await attempt(flavor, peer, tls="opportunistic", ssl_context=tls.client_context())
    outcome.failed(TLSError)
    assert outcome.record.verbs() == [b"EHLO", b"STARTTLS"]


async def test_eof_instead_of_221(flavor: Flavor, start_peer: StartPeer) -> None:
    """A server that closes at QUIT without its 221: a clean end."""
    peer = start_peer([*hello(), *envelope(), *data(), Expect(b"QUIT"), Close()])
    outcome = await attempt(flavor, peer)
    assert outcome.sent().accepted == (RCPT,)


async def test_eof_at_once_many_times(flavor: Flavor, start_peer: StartPeer) -> None:
    """A server that closes the moment it accepts, 300 times: the EOF
    can beat the adapter's own connection set-up, and must still come out
    as ConnectionLostError, never as a raw OSError."""
    peer = start_peer(*([Close()] for _ in range(300)))
    for _ in range(300):
        with pytest.raises(ConnectionLostError) as info:
            await flavor.send(SENDER, [RCPT], message=BODY, **peer.options())
        assert info.value.stage is Stage.GREETING
    await peer.settled()
    assert len(peer.records) == 300
