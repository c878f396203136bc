"""Certificate validation: a certificate that does not verify is fatal under
every TLS policy that tries TLS, including opportunistic (RFC 7435 allows
falling back to plaintext only when TLS is not offered, not when an offered
TLS fails verification: this client treats a failed handshake as an attack).

Each bad certificate is refused with TLSError naming OpenSSL's reason; the
client sends nothing after STARTTLS (nothing at all with implicit TLS) and
does not reconnect in plaintext.
"""

from __future__ import annotations

import ssl

import pytest
from servers import Flavor, TLSMaterial

from smtpcore import TLSError

from .conftest import StartPeer, attempt
from .peer import Expect, Send, StartTLS, Step, hello

pytestmark = pytest.mark.anyio

REASONS = [
    "self-signed certificate",
    "unable to get local issuer certificate",
    "IP address mismatch",
    "certificate has expired",
    "certificate is not yet valid",
]


def script(policy: str, context: ssl.SSLContext) -> list[Step]:
    if policy == "implicit":
        return [StartTLS(context)]
    return [*hello(b"STARTTLS"), Expect(b"STARTTLS"), Send(b"220 go ahead\r\n"), StartTLS(context)]


@pytest.mark.parametrize("policy", ["starttls", "opportunistic", "implicit"])
@pytest.mark.parametrize("reason", REASONS)
async def test_bad_certificate_is_refused(
    flavor: Flavor,
    start_peer: StartPeer,
    tls: TLSMaterial,
    bad_certs: dict[str, ssl.SSLContext],
    reason: str,
    policy: str,
) -> None:
    peer = start_peer(script(policy, bad_certs[reason]))
    outcome = await attempt(flavor, peer, tls=policy, ssl_context=tls.client_context())
    error = outcome.failed(TLSError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert reason in str(error)
    record = outcome.record
    assert record.failures == []
    assert not record.tls_up
    expected = b"" if policy == "implicit" else b"EHLO localhost\r\nSTARTTLS\r\n"
    assert bytes(record.received) == expected


@pytest.mark.parametrize("policy", ["starttls", "implicit"])
async def test_default_context_refuses_the_test_ca(
    flavor: Flavor, start_peer: StartPeer, policy: str
) -> None:
    """Without ``ssl_context`` the adapters verify against the system store,
    which does not know the throwaway CA: refused too."""
    peer = start_peer(script(policy, TLSMaterial.create().server_context()))
    outcome = await attempt(flavor, peer, tls=policy)
    error = outcome.failed(TLSError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert not outcome.record.tls_up
