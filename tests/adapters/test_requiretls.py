"""REQUIRETLS (RFC 8689) only over a TLS session whose certificate was verified.

RFC 8689 4.2.1: a message that demands REQUIRETLS may only go to a server
whose certificate was checked (against a trusted CA, for the right name).
Encryption alone, with verification skipped, is what the message's sender
refused: such a message must fail before MAIL, with a ConfigurationError,
while the same message over a verified session is sent.

The adapters tell the session whether they verify (``tls_verified``): not
with ``dangerously_skip_tls_verification``, nor with a caller's context that
checks no certificate or no host name. The server is aiosmtpd behind
STARTTLS with a trustme certificate, offering REQUIRETLS once TLS is up.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from servers import Flavor, RecordingHandler, SMTPServer, TLSMaterial
from smtpcore.adapters._common import ClientOptions

from smtpcore import ConfigurationError

pytestmark = pytest.mark.anyio

SENDER = "alice@example.test"
RCPT = "bob@example.test"
BODY = b"Subject: requiretls\r\n\r\nbody\r\n"


@dataclass
class RequireTLSHandler(RecordingHandler):
    """Offers REQUIRETLS in the EHLO answer once TLS is up."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves that to this hook
        transport = server.transport
        if transport is not None and transport.get_extra_info("ssl_object") is not None:
            responses.insert(-1, "250-REQUIRETLS")
        return responses


class RequireTLSSMTP(SMTP):
    """aiosmtpd that takes MAIL's REQUIRETLS parameter (it refuses any
    parameter it does not know); the handler still records it."""

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        found = super()._getparams(params)
        if found is not None:
            found.pop("REQUIRETLS", None)
        return found


@pytest.fixture
def server(start_smtpd: Callable[..., SMTPServer], tls: TLSMaterial) -> SMTPServer:
    return start_smtpd(
        mode="starttls", tls=tls, handler=RequireTLSHandler(), smtp_class=RequireTLSSMTP
    )


def no_hostname_check(tls: TLSMaterial) -> ssl.SSLContext:
    """Checks the certificate, not whose it is."""
    context = tls.client_context()
    context.check_hostname = False
    return context


def no_certificate_check(tls: TLSMaterial) -> ssl.SSLContext:
    """Checks nothing."""
    context = tls.client_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


#: Ways to send without verifying the server: the client options for each.
UNVERIFIED: dict[str, Callable[[TLSMaterial], dict[str, Any]]] = {
    "dangerously-skip": lambda tls: {"dangerously_skip_tls_verification": True},
    "dangerously-skip-own-context": lambda tls: {
        "ssl_context": tls.client_context(),
        "dangerously_skip_tls_verification": True,
    },
    "context-without-hostname-check": lambda tls: {"ssl_context": no_hostname_check(tls)},
    "context-without-certificate-check": lambda tls: {"ssl_context": no_certificate_check(tls)},
}


def unverified_options(server: SMTPServer, tls: TLSMaterial, how: str) -> dict[str, Any]:
    options = server.client_options()
    del options["ssl_context"]
    options.update(UNVERIFIED[how](tls))
    return options


async def test_sent_over_a_verified_session(flavor: Flavor, server: SMTPServer) -> None:
    """The control: a trusted CA, the right name: the message goes, with
    REQUIRETLS on its MAIL."""
    result = await flavor.send_ok(
        SENDER,
        [RCPT],
        message=BODY,
        message_options={"requiretls": True},
        **server.client_options(),
    )
    assert result.accepted == (RCPT,)
    received = server.handler.last()
    assert received.tls
    assert "REQUIRETLS" in received.mail_options


@pytest.mark.parametrize("how", list(UNVERIFIED))
async def test_refused_before_mail_without_verification(
    flavor: Flavor, server: SMTPServer, tls: TLSMaterial, how: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        await flavor.send(
            SENDER,
            [RCPT],
            message=BODY,
            message_options={"requiretls": True},
            **unverified_options(server, tls, how),
        )
    text = str(info.value)
    assert "REQUIRETLS" in text
    assert "verif" in text.lower(), f"the error does not say why: {text}"
    assert server.handler.mail_commands == []
    assert server.messages == []


@pytest.mark.parametrize("how", list(UNVERIFIED))
async def test_other_messages_go_without_verification(
    flavor: Flavor, server: SMTPServer, tls: TLSMaterial, how: str
) -> None:
    """Skipping verification refuses only what demands it: a message
    without REQUIRETLS still goes over the same kind of session."""
    result = await flavor.send_ok(
        SENDER, [RCPT], message=BODY, **unverified_options(server, tls, how)
    )
    assert result.accepted == (RCPT,)
    assert server.handler.last().tls


@pytest.mark.parametrize("how", list(UNVERIFIED))
async def test_the_session_is_told_when_nothing_is_verified(
    flavor: Flavor, server: SMTPServer, tls: TLSMaterial, how: str
) -> None:
    """The adapter's half: the SessionConfig it builds says so."""
    client = flavor.module.Client(**unverified_options(server, tls, how))
    assert client.options.config.tls_verified is False


async def test_the_session_is_told_when_the_server_is_verified(
    flavor: Flavor, server: SMTPServer
) -> None:
    client = flavor.module.Client(**server.client_options())
    assert client.options.config.tls_verified is True


@pytest.mark.parametrize(
    ("options", "verified"),
    [
        pytest.param({}, True, id="default-context"),
        pytest.param({"tls": "implicit"}, True, id="implicit-default-context"),
        pytest.param({"dangerously_skip_tls_verification": True}, False, id="skip"),
        pytest.param(
            {"tls": "implicit", "dangerously_skip_tls_verification": True},
            False,
            id="implicit-skip",
        ),
        pytest.param({"tls": "none"}, True, id="no-tls"),
    ],
)
def test_tls_verified_from_the_options(options: dict[str, Any], verified: bool) -> None:
    assert ClientOptions.build(server="mx.example.test", **options).config.tls_verified is verified


def test_a_context_with_optional_verification_verifies(tls: TLSMaterial) -> None:
    """CERT_OPTIONAL means CERT_REQUIRED on a client (the server always shows
    a certificate), and allows the host name check."""
    context = tls.client_context()
    context.verify_mode = ssl.CERT_OPTIONAL
    assert ClientOptions.build(ssl_context=context).config.tls_verified is True
