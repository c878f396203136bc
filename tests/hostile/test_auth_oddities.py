"""AUTH against a hostile server (RFC 4954, RFC 4422, RFC 5802).

* A challenge that is not canonical base64: the client cancels with ``*``
  (RFC 4954 4), fails with AuthenticationError and sends no mail.
* Endless 334 challenges: bounded by each mechanism's number of steps; the
  client cancels, and if the server still challenges, it hangs up.
* A SCRAM-SHA-256 impostor (a server that does not know the password, so
  cannot produce the server signature ``v=``): AuthenticationError, no MAIL.
  The same for a server that claims success without the signature, offers
  a nonce that is not ours extended, demands an unknown mandatory extension
  or asks for an absurd PBKDF2 iteration count (a CPU exhaustion attempt).
* Credentials never show in the transcript, in errors or in the logs.

The scripts run in plaintext with ``allow_insecure_auth=True``; the policy
that refuses credentials without TLS is tested in test_starttls.py.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

import pytest
from servers import Flavor

from smtpcore import AuthenticationError, SMTPError, TranscriptEntry

from .conftest import StartPeer, attempt
from .peer import (
    MAIL,
    AwaitEOF,
    Expect,
    Respond,
    ScramServer,
    Send,
    Step,
    data,
    envelope,
    goodbye,
    hello,
)

pytestmark = pytest.mark.anyio

USER, PASSWORD = "user", "secret-pw"
AUTH: dict[str, Any] = {"auth": (USER, PASSWORD), "allow_insecure_auth": True}
#: Every form of the password that must never leak.
SECRETS = (
    PASSWORD.encode(),
    base64.b64encode(PASSWORD.encode()),
    base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()),
)
PLAIN_LINE = b"AUTH PLAIN " + base64.b64encode(b"\0user\0secret-pw")


def auth_lines(received: bytes) -> list[bytes]:
    """The client lines between AUTH (included) and the next command."""
    lines = received.split(b"\r\n")[:-1]
    start = next(i for i, line in enumerate(lines) if line.startswith(b"AUTH "))
    out = [lines[start]]
    for line in lines[start + 1 :]:
        if line.split(b" ", 1)[0].upper() in (b"MAIL", b"QUIT", b"RSET", b"NOOP"):
            break
        out.append(line)
    return out


# -- malformed challenges --------------------------------------------------------------------

NOT_BASE64 = {
    "punctuation": b"!!!",
    "missing-padding": b"VXNlcm5hbWU",
    "trailing-garbage": b"VXNlcm5hbWU6x",
    "non-zero-pad-bits": b"VXNlcm5hbWV=",
    "inner-space": b"VXNl cm5hbWU6",
    "not-utf8": b"\xff\xfe",
    "escape-sequence": b"\x1b[2J",
    "very-long": b"!" * 900,
}


@pytest.mark.parametrize("challenge", list(NOT_BASE64.values()), ids=list(NOT_BASE64))
async def test_bad_base64_challenge(
    flavor: Flavor, start_peer: StartPeer, challenge: bytes
) -> None:
    peer = start_peer(
        [
            *hello(b"AUTH LOGIN"),
            Expect(b"AUTH LOGIN"),
            Send(b"334 " + challenge + b"\r\n"),
            Expect(b"*"),
            Send(b"501 5.7.0 cancelled\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer, **AUTH)
    error = outcome.failed(AuthenticationError)
    assert "malformed base64" in str(error)
    assert "\x1b" not in str(error)
    assert len(str(error)) < 200
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert auth_lines(bytes(record.received)) == [b"AUTH LOGIN", b"*"]
    assert MAIL not in record.received
    for secret in SECRETS:
        assert secret not in record.received


@pytest.mark.parametrize(
    ("mechanism", "first"),
    [
        ("LOGIN", Expect(b"AUTH LOGIN")),
        ("CRAM-MD5", Expect(b"AUTH CRAM-MD5")),
        ("PLAIN", Expect(PLAIN_LINE)),
    ],
    ids=["LOGIN", "CRAM-MD5", "PLAIN"],
)
async def test_endless_challenges(
    flavor: Flavor, start_peer: StartPeer, mechanism: str, first: Step
) -> None:
    """Every client line answered with yet another valid challenge: the
    client stops after its mechanism's steps, cancels with ``*``, and hangs
    up when even that is answered with 334. At most a handful of lines."""
    challenge = b"334 " + base64.b64encode(b"<1896.697170952@peer.test>") + b"\r\n"
    steps: list[Step] = [
        *hello(b"AUTH " + mechanism.encode()),
        first,
        Send(challenge),
        *[Respond(lambda line: challenge) for _ in range(20)],
    ]
    peer = start_peer([*steps, AwaitEOF()])
    outcome = await attempt(flavor, peer, auth_mechanisms=[mechanism], **AUTH)
    outcome.failed(AuthenticationError)
    lines = auth_lines(bytes(outcome.record.received))
    assert 2 <= len(lines) <= 4
    assert lines[-1] == b"*"
    assert MAIL not in outcome.record.received
    assert b"QUIT" not in outcome.record.verbs()


# -- SCRAM -------------------------------------------------------------------------------------


def scram(server: ScramServer) -> list[Step]:
    """The SCRAM exchange up to the server-final message."""
    return [*hello(b"AUTH SCRAM-SHA-256"), Respond(server.first), Respond(server.final)]


@pytest.mark.parametrize("via_235", [False, True], ids=["via-334", "via-235"])
async def test_scram_control(flavor: Flavor, start_peer: StartPeer, via_235: bool) -> None:
    """The peer's SCRAM is right: with the true signature the client
    authenticates (its proof verifies) and delivers."""
    server = ScramServer(PASSWORD, via_235=via_235)
    finish = [] if via_235 else [Expect(b""), Send(b"235 2.7.0 ok\r\n")]
    peer = start_peer([*scram(server), *finish, *envelope(), *data(), *goodbye()])
    outcome = await attempt(flavor, peer, **AUTH)
    outcome.sent()
    assert server.proof_ok is True
    assert outcome.record.finished
    assert outcome.record.failures == []


async def test_scram_impostor_in_a_challenge(flavor: Flavor, start_peer: StartPeer) -> None:
    """A wrong ``v=`` as the final 334: the client cancels (``*``), QUITs,
    never sends MAIL."""
    server = ScramServer(PASSWORD, tamper=True)
    peer = start_peer([*scram(server), Expect(b"*"), Send(b"501 5.7.0 cancelled\r\n"), *goodbye()])
    outcome = await attempt(flavor, peer, **AUTH)
    error = outcome.failed(AuthenticationError)
    assert "signature does not verify" in str(error)
    assert server.proof_ok is True  # the client did its part right
    assert MAIL not in outcome.record.received
    assert outcome.record.finished


async def test_scram_impostor_with_235(flavor: Flavor, start_peer: StartPeer) -> None:
    """A wrong ``v=`` as additional data with 235: success is not believed."""
    server = ScramServer(PASSWORD, tamper=True, via_235=True)
    peer = start_peer([*scram(server), *goodbye()])
    outcome = await attempt(flavor, peer, **AUTH)
    error = outcome.failed(AuthenticationError)
    assert "signature does not verify" in str(error)
    assert MAIL not in outcome.record.received
    assert outcome.record.finished
    assert outcome.record.verbs()[-1] == b"QUIT"


async def test_scram_235_without_signature(flavor: Flavor, start_peer: StartPeer) -> None:
    server = ScramServer(PASSWORD)
    peer = start_peer(
        [
            *hello(b"AUTH SCRAM-SHA-256"),
            Respond(server.first),
            Expect(re.compile(rb"[A-Za-z0-9+/=]+")),
            Send(b"235 2.7.0 trust me\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer, **AUTH)
    outcome.failed(AuthenticationError)
    assert MAIL not in outcome.record.received


async def test_scram_235_at_once(flavor: Flavor, start_peer: StartPeer) -> None:
    """Success before any exchange: no proof at all."""
    peer = start_peer(
        [
            *hello(b"AUTH SCRAM-SHA-256"),
            Expect(re.compile(rb"AUTH SCRAM-SHA-256 \S+")),
            Send(b"235 ok\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer, **AUTH)
    outcome.failed(AuthenticationError)
    assert MAIL not in outcome.record.received


def server_first(text: bytes) -> Respond:
    return Respond(lambda line: b"334 " + base64.b64encode(text) + b"\r\n")


SERVER_FIRST = {
    "foreign-nonce": b"r=not-our-nonce,s=c2FsdA==,i=4096",
    "mandatory-extension": b"m=ext,r=x,s=c2FsdA==,i=4096",
    "huge-iteration-count": None,  # built from the client nonce below
    "no-salt": b"r=x,i=4096",
}


@pytest.mark.parametrize("case", list(SERVER_FIRST))
async def test_scram_hostile_server_first(flavor: Flavor, start_peer: StartPeer, case: str) -> None:
    def reply(line: bytes) -> bytes:
        if case == "huge-iteration-count":
            bare = base64.b64decode(line.split(b" ")[2])[3:]
            nonce = dict(a.split(b"=", 1) for a in bare.split(b","))[b"r"]
            text = b"r=" + nonce + b"x,s=c2FsdA==,i=2000000000"
        else:
            text = SERVER_FIRST[case] or b""
        return b"334 " + base64.b64encode(text) + b"\r\n"

    peer = start_peer(
        [
            *hello(b"AUTH SCRAM-SHA-256"),
            Respond(reply),
            Expect(b"*"),
            Send(b"501 5.7.0 cancelled\r\n"),
            *goodbye(),
        ]
    )
    outcome = await attempt(flavor, peer, **AUTH)
    outcome.failed(AuthenticationError)
    assert outcome.elapsed < 2.0  # no two billion PBKDF2 rounds
    assert MAIL not in outcome.record.received
    assert outcome.record.finished


# -- credentials never leak --------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_credentials_not_in_transcript_errors_or_logs(
    flavor: Flavor, start_peer: StartPeer, caplog: pytest.LogCaptureFixture, mechanism: str
) -> None:
    """AUTH refused (535) after the password went out: the transcript, the
    failure description, the error and DEBUG logs show no form of it."""
    if mechanism == "PLAIN":
        exchange: list[Step] = [Expect(PLAIN_LINE)]
    else:
        exchange = [
            Expect(b"AUTH LOGIN"),
            Send(b"334 VXNlcm5hbWU6\r\n"),
            Expect(base64.b64encode(USER.encode())),
            Send(b"334 UGFzc3dvcmQ6\r\n"),
            Expect(base64.b64encode(PASSWORD.encode())),
        ]
    peer = start_peer(
        [
            *hello(b"AUTH " + mechanism.encode()),
            *exchange,
            Send(b"535 5.7.8 credentials invalid\r\n"),
            *goodbye(),
        ]
    )
    failures: list[tuple[SMTPError, tuple[TranscriptEntry, ...], str]] = []
    with caplog.at_level(logging.DEBUG):
        await attempt(
            flavor,
            peer,
            auth_mechanisms=[mechanism],
            transaction_log=True,
            on_failure=lambda context, error, transcript, description: failures.append(
                (error, transcript, description)
            ),
            **AUTH,
        )
    assert peer.record.finished  # the password did go out, to this server
    [(error, transcript, description)] = failures
    assert isinstance(error, AuthenticationError)
    shown = [str(error), repr(error), description, caplog.text]
    shown += [str(entry) for entry in transcript] + [repr(entry) for entry in transcript]
    shown += [entry.data.decode("latin-1") for entry in transcript]
    for text in shown:
        for secret in SECRETS:
            assert secret.decode() not in text
    assert any("<redacted>" in str(entry) for entry in transcript)
