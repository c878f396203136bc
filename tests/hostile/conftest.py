"""Fixtures and helpers for the hostile-server tests.

* ``start_peer(*scripts)`` starts a :class:`~.peer.Peer` on 127.0.0.1; every
  peer stops at teardown, which also checks that the client closed each
  connection it opened (a connection left open after a test is an adapter
  leak) and made no connection the test did not script.
* :func:`attempt` sends one message through an adapter (the ``flavor``
  fixture of tests/conftest.py runs each test on blocking, asyncio, trio,
  anyio-asyncio and anyio-trio) and returns the outcome, error or result, once the peer is done.
* ``bad_certs``: server contexts whose certificate must be refused.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from servers import Flavor, TLSMaterial
from smtpcore.adapters import SendResult

from smtpcore import SMTPError

from .peer import BODY, LOOPBACK, RCPT, SENDER, ConnRecord, Peer, Step

StartPeer = Callable[..., Peer]
E = TypeVar("E", bound=SMTPError)


@pytest.fixture
def start_peer(tls: TLSMaterial) -> Iterator[StartPeer]:
    """Start scripted peers (one script per connection). StartTLS steps use
    the ``tls`` fixture's certificate unless given another context."""
    started: list[Peer] = []

    def start(
        *scripts: Sequence[Step],
        tls_context: ssl.SSLContext | None = None,
        receive_buffer: int | None = None,
    ) -> Peer:
        peer = Peer(
            *scripts,
            tls_context=tls_context or tls.server_context(),
            receive_buffer=receive_buffer,
        ).start()
        started.append(peer)
        return peer

    yield start
    deadline = time.monotonic() + 3.0
    while not all(peer.idle for peer in started) and time.monotonic() < deadline:
        time.sleep(0.005)
    for peer in started:
        peer.stop()
    for peer in started:
        left = [r for r in peer.records if not (r.client_closed or r.aborted)]
        assert not left, f"the client left {len(left)} connection(s) open"
        assert peer.unexpected_connections == 0, "the client made an unscripted connection"


# -- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one ``send`` did: its error or its result, and how long it took."""

    error: SMTPError | None
    result: SendResult | None
    elapsed: float
    record: ConnRecord

    def failed(self, error_type: type[E]) -> E:
        """The error, which must be an ``error_type``."""
        assert isinstance(self.error, error_type), (
            f"expected {error_type.__name__}, got {self.error!r} (result {self.result!r})"
        )
        return self.error

    def sent(self) -> SendResult:
        """The result of a send that must have succeeded."""
        assert self.error is None, f"send failed: {self.error!r}"
        assert self.result is not None
        return self.result


async def attempt(
    flavor: Flavor,
    peer: Peer,
    *,
    message: bytes | None = BODY,
    recipients: Sequence[str] = (RCPT,),
    **options: Any,
) -> Outcome:
    """Send one message to ``peer`` through ``flavor``'s ``send``; return once
    the peer finished with the (single) connection."""
    started = time.monotonic()
    error: SMTPError | None = None
    result: SendResult | None = None
    try:
        result = await flavor.send(
            SENDER, list(recipients), message=message, **peer.options(**options)
        )
    except SMTPError as exc:
        error = exc
    elapsed = time.monotonic() - started
    await peer.settled()
    return Outcome(error=error, result=result, elapsed=elapsed, record=peer.record)


# -- certificates ------------------------------------------------------------------------------


def _context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as directory:
        cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        context.load_cert_chain(cert, key)
    return context


def _self_signed() -> ssl.SSLContext:
    """A certificate for localhost and 127.0.0.1 that signs itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return _context(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _issued(
    ca: trustme.CA,
    *hosts: str,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts, not_before=not_before, not_after=not_after).configure_cert(context)
    return context


@pytest.fixture(scope="session")
def bad_certs(tls: TLSMaterial) -> dict[str, ssl.SSLContext]:
    """Server contexts a client trusting only ``tls.ca`` must refuse, by
    the reason OpenSSL gives."""
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    here = ("localhost", LOOPBACK)
    return {
        "self-signed certificate": _self_signed(),
        "unable to get local issuer certificate": _issued(trustme.CA(), *here),
        "IP address mismatch": _issued(tls.ca, "other.example"),
        "certificate has expired": _issued(
            tls.ca, *here, not_before=now - 30 * day, not_after=now - day
        ),
        "certificate is not yet valid": _issued(
            tls.ca, *here, not_before=now + day, not_after=now + 30 * day
        ),
    }
