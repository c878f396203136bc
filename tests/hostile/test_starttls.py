"""STARTTLS under attack: response injection, command injection, stripping.

* Response injection (NO STARTTLS, USENIX Security 2021; the client side of
  CVE-2011-0411): a man in the middle appends replies to the server's 220 so
  that, if the client kept them buffered, they would answer commands sent
  inside TLS. RFC 3207 4.2: nothing may come between the 220 and the
  handshake. Bytes in the same segment as the 220 reach the reply parser:
  RemoteProtocolError. Bytes in a later segment (or once the ClientHello is
  out) reach the TLS layer instead, which refuses them: TLSError. Either way
  the client sends nothing more: no command is ever answered by injected
  bytes, and no MAIL or AUTH goes out in plaintext.
* Command injection: the client must not pipeline anything after STARTTLS,
  even when PIPELINING is offered (the peer fails the script if it does).
* Stripping: STARTTLS not offered, refused (454, 502), answered with 354, or
  an old server that knows only HELO. ``tls="none"`` never says STARTTLS,
  ``"opportunistic"`` goes on in plaintext (but never with credentials),
  ``"starttls"`` fails with TLSRequiredError and sends only QUIT.
"""

from __future__ import annotations

import pytest
from servers import Flavor, TLSMaterial

from smtpcore import (
    ConfigurationError,
    RemoteProtocolError,
    TLSError,
    TLSRequiredError,
)

from .conftest import StartPeer, attempt
from .peer import (
    EHLO,
    Expect,
    Send,
    StartTLS,
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

#: What the client may have said in plaintext when TLS is attempted.
UP_TO_STARTTLS = b"EHLO localhost\r\nSTARTTLS\r\n"
#: Commands that must never go out in plaintext when TLS is required.
FORBIDDEN = (b"MAIL", b"RCPT", b"DATA", b"AUTH", b"BDAT", b"RSET", b"NOOP")

INJECTIONS = {
    "whole-line": b"250 injected\r\n",
    "fake-ehlo-reply": b"250-evil.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
    "pipelined-transaction": b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n",
    "fragment": b"25",
    "continuation-fragment": b"250-evil.test\r\n",
    "empty-line": b"\r\n",
    "fake-handshake-byte": b"\x16",
}


def starttls_hello(*keywords: bytes) -> list[Step]:
    return [*hello(b"STARTTLS", *keywords), Expect(b"STARTTLS")]


def after_tls() -> list[Step]:
    """A whole session after a successful handshake."""
    return [Expect(EHLO), Send(ehlo_reply()), *envelope(), *data(), *goodbye()]


async def test_control_starttls_succeeds(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial
) -> None:
    """The scripts below fail for the reasons they test, not because the peer
    cannot do a handshake: the same peer delivers over STARTTLS."""
    peer = start_peer([*starttls_hello(), Send(b"220 go ahead\r\n"), StartTLS(), *after_tls()])
    outcome = await attempt(flavor, peer, tls="starttls", ssl_context=tls.client_context())
    assert outcome.sent().accepted == ("bob@example.test",)
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert record.tls_up
    assert bytes(record.plaintext) == UP_TO_STARTTLS


@pytest.mark.parametrize("payload", list(INJECTIONS.values()), ids=list(INJECTIONS))
async def test_injection_in_the_220_segment(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, payload: bytes
) -> None:
    """Injected bytes in the same write as the 220: the reply parser holds
    them when the 220 completes, so the core refuses the connection before
    any handshake."""
    peer = start_peer([*starttls_hello(), Send(b"220 go ahead\r\n" + payload), StartTLS()])
    outcome = await attempt(flavor, peer, tls="starttls", ssl_context=tls.client_context())
    error = outcome.failed(RemoteProtocolError)
    assert "response injection" in str(error)
    record = outcome.record
    assert record.failures == []
    assert not record.tls_up
    # Nothing after STARTTLS: no handshake, no command, no QUIT.
    assert bytes(record.received) == UP_TO_STARTTLS


@pytest.mark.parametrize("payload", list(INJECTIONS.values()), ids=list(INJECTIONS))
async def test_injection_in_a_later_segment(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, payload: bytes
) -> None:
    """Injected bytes written 0.05 s after the 220: the client has usually
    started its handshake, so the TLS layer gets them as a record and fails.
    On a loaded machine the client may not have taken the 220 in yet when
    they arrive, and the core refuses them as plaintext after the 220
    (RFC 3207 4.2). Either way the injection is refused, and nothing goes
    out after STARTTLS."""
    peer = start_peer([*starttls_hello(), Send(b"220 go ahead\r\n", payload, gap=0.05), StartTLS()])
    outcome = await attempt(flavor, peer, tls="starttls", ssl_context=tls.client_context())
    error = outcome.error
    assert isinstance(error, (TLSError, RemoteProtocolError)), repr(error)
    if isinstance(error, RemoteProtocolError):
        assert "injection" in str(error) or "before the TLS handshake" in str(error), str(error)
    record = outcome.record
    assert record.failures == []
    assert not record.tls_up
    assert bytes(record.received) == UP_TO_STARTTLS


@pytest.mark.parametrize("payload", list(INJECTIONS.values()), ids=list(INJECTIONS))
async def test_injection_after_the_client_hello(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, payload: bytes
) -> None:
    """Plaintext where the ServerHello should be: the handshake fails."""
    peer = start_peer([*starttls_hello(), Send(b"220 go ahead\r\n"), StartTLS(inject=payload)])
    outcome = await attempt(flavor, peer, tls="starttls", ssl_context=tls.client_context())
    outcome.failed(TLSError)
    record = outcome.record
    assert record.failures == []
    assert not record.tls_up
    assert bytes(record.received) == UP_TO_STARTTLS


@pytest.mark.parametrize("policy", ["starttls", "opportunistic"])
async def test_no_command_pipelined_after_starttls(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, policy: str
) -> None:
    """With PIPELINING offered the client still sends STARTTLS alone and
    waits (RFC 2920 3.1, RFC 3207 4.2): the peer's StartTLS step fails the
    script if anything came after it in plaintext."""
    peer = start_peer(
        [
            *starttls_hello(b"PIPELINING", b"AUTH PLAIN"),
            Send(b"220 go ahead\r\n"),
            StartTLS(),
            Expect(EHLO),
            Send(ehlo_reply(b"PIPELINING", b"AUTH PLAIN")),
            Expect(b"AUTH PLAIN AHVzZXIAc2VjcmV0LXB3"),
            Send(b"235 2.7.0 ok\r\n"),
            Expect(b"MAIL FROM:<alice@example.test>"),
            Expect(b"RCPT TO:<bob@example.test>"),
            Expect(b"DATA"),
            Send(b"250 ok\r\n250 ok\r\n354 go\r\n"),
            *data()[2:],
            *goodbye(),
        ]
    )
    outcome = await attempt(
        flavor,
        peer,
        tls=policy,
        ssl_context=tls.client_context(),
        auth=("user", "secret-pw"),
    )
    outcome.sent()
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert bytes(record.plaintext) == UP_TO_STARTTLS


# -- stripping -------------------------------------------------------------------------------

# Each way a server (or a man in the middle) can keep TLS from happening:
# (greeting and EHLO exchange, the STARTTLS exchange if the client tries).
STRIPPED: dict[str, tuple[list[Step], list[Step]]] = {
    "not-offered": (hello(), []),
    "454": (hello(b"STARTTLS"), [Expect(b"STARTTLS"), Send(b"454 4.7.0 TLS not available\r\n")]),
    "502": (hello(b"STARTTLS"), [Expect(b"STARTTLS"), Send(b"502 5.5.1 unknown command\r\n")]),
    "354": (hello(b"STARTTLS"), [Expect(b"STARTTLS"), Send(b"354 go ahead\r\n")]),
    "helo-only": (
        [
            *greet(),
            Expect(EHLO),
            Send(b"502 5.5.2 what?\r\n"),
            Expect(b"HELO localhost"),
            Send(b"250 peer.test\r\n"),
        ],
        [],
    ),
}


def plaintext_delivery(variant: str, policy: str) -> list[Step]:
    hello_steps, starttls_steps = STRIPPED[variant]
    tries = policy == "opportunistic"
    return [*hello_steps, *(starttls_steps if tries else []), *envelope(), *data(), *goodbye()]


@pytest.mark.parametrize("policy", ["none", "opportunistic"])
@pytest.mark.parametrize("variant", list(STRIPPED))
async def test_stripped_goes_on_in_plaintext(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, variant: str, policy: str
) -> None:
    """``none`` never says STARTTLS; ``opportunistic`` tries it when offered
    and carries on in plaintext when it cannot have TLS."""
    peer = start_peer(plaintext_delivery(variant, policy))
    outcome = await attempt(flavor, peer, tls=policy, ssl_context=tls.client_context())
    outcome.sent()
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert not record.tls_up
    if policy == "none":
        assert b"STARTTLS" not in record.verbs()


@pytest.mark.parametrize("variant", list(STRIPPED))
async def test_stripped_with_tls_required(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, variant: str
) -> None:
    """``starttls``: TLSRequiredError, QUIT, and nothing else: no MAIL, no
    AUTH (credentials are given), no HELO fallback."""
    hello_steps, starttls_steps = STRIPPED[variant]
    if variant == "helo-only":
        # With TLS required the client does not fall back to HELO.
        hello_steps = [*greet(), Expect(EHLO), Send(b"502 5.5.2 what?\r\n")]
    peer = start_peer([*hello_steps, *starttls_steps, *goodbye()])
    outcome = await attempt(
        flavor,
        peer,
        tls="starttls",
        ssl_context=tls.client_context(),
        auth=("user", "secret-pw"),
    )
    error = outcome.failed(TLSRequiredError)
    if variant in ("454", "502", "354"):
        assert error.reply is not None
        assert error.reply.code == int(variant)
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert bytes(record.after_script) == b""
    assert record.verbs()[-1] == b"QUIT"
    assert not set(record.verbs()) & set(FORBIDDEN)
    assert b"HELO" not in record.verbs()


@pytest.mark.parametrize("variant", list(STRIPPED))
async def test_stripped_opportunistic_never_sends_credentials(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial, variant: str
) -> None:
    """Opportunistic TLS stripped away, with credentials: the client refuses
    to send them in plaintext (ConfigurationError), QUITs, sends no AUTH."""
    hello_steps, starttls_steps = STRIPPED[variant]
    peer = start_peer([*hello_steps, *starttls_steps, *goodbye()])
    outcome = await attempt(
        flavor,
        peer,
        tls="opportunistic",
        ssl_context=tls.client_context(),
        auth=("user", "secret-pw"),
    )
    error = outcome.failed(ConfigurationError)
    assert "without TLS" in str(error)
    record = outcome.record
    assert record.failures == []
    assert record.finished
    assert record.verbs()[-1] == b"QUIT"
    assert not set(record.verbs()) & set(FORBIDDEN)
    assert b"secret-pw" not in record.received
    assert b"c2VjcmV0LXB3" not in record.received  # base64("secret-pw")


async def test_plain_delivery_control(flavor: Flavor, start_peer: StartPeer) -> None:
    """The plaintext script helpers describe a working session."""
    outcome = await attempt(flavor, start_peer(delivery()))
    outcome.sent()
    assert outcome.record.finished
    assert outcome.record.failures == []
