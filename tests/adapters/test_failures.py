"""The failure taxonomy end to end, on every adapter.

Each failure is provoked with a real server and checked twice: without
callbacks ``send`` raises the typed error; with callbacks ``on_failure`` is
called exactly once with ``(context, error, transcript, description)`` and
``on_success`` never. Where the brief promises it, the server shows that
nothing was sent.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from servers import Flavor, SMTPServer, TinyServer, TLSMaterial, free_port, wait_until_async

from smtpcore import (
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    MessageContentError,
    MessageSourceError,
    PermanentReplyError,
    RecipientsRefusedError,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    TemporaryReplyError,
    TLSError,
    TLSRequiredError,
)

pytestmark = pytest.mark.anyio

SENDER = "alice@example.test"
RCPT = "bob@example.test"
BODY = b"Subject: failures\r\n\r\nbody\r\n"

E = TypeVar("E", bound=SMTPError)


async def fails_with(
    flavor: Flavor, error_type: type[E], make_kwargs: Callable[[], dict[str, Any]]
) -> E:
    """Send twice: the error raised, then the same error through the callback.

    ``make_kwargs`` gives fresh ``send`` arguments each time (a file handle
    can only be read once).
    """
    with pytest.raises(error_type) as info:
        await flavor.send(**make_kwargs())
    raised = info.value

    context = object()
    successes: list[tuple[Any, ...]] = []
    failures: list[tuple[Any, ...]] = []
    returned = await flavor.send(
        context=context,
        on_success=lambda *args: successes.append(args),
        on_failure=lambda *args: failures.append(args),
        **make_kwargs(),
    )
    assert returned is None
    assert successes == []
    assert len(failures) == 1, failures
    got_context, error, transcript, description = failures[0]
    assert got_context is context
    assert type(error) is type(raised)
    assert transcript is None  # transaction_log is off
    assert isinstance(description, str)
    assert "\n" not in description
    assert type(error).__name__ in description
    return raised


def send_args(**kwargs: Any) -> Callable[[], dict[str, Any]]:
    base: dict[str, Any] = {"sender": SENDER, "recipients": [RCPT], "message": BODY}
    return lambda: {**base, **kwargs}


# -- connecting ----------------------------------------------------------------------------


async def test_connection_refused(flavor: Flavor) -> None:
    port = free_port()  # nothing listens there
    error = await fails_with(
        flavor, ConnectionLostError, send_args(server="127.0.0.1", port=port, tls="none")
    )
    assert error.errno == errno.ECONNREFUSED
    assert error.operation == "connect"
    assert error.stage is Stage.CONNECT
    assert not error.status_unknown


async def test_greeting_timeout(flavor: Flavor, start_tiny: Callable[..., TinyServer]) -> None:
    server = start_tiny(greeting=None)
    started = time.monotonic()
    error = await fails_with(
        flavor, SMTPTimeoutError, send_args(timeout=0.5, **server.client_options())
    )
    elapsed = time.monotonic() - started
    assert error.stage is Stage.GREETING
    assert isinstance(error, TimeoutError)
    # Two sends, each waiting 0.5 s for the greeting.
    assert 0.9 <= elapsed < 6
    assert server.connections == 2


async def test_stage_timeout_overrides_default(
    flavor: Flavor, start_tiny: Callable[..., TinyServer]
) -> None:
    server = start_tiny(greeting=None)
    started = time.monotonic()
    with pytest.raises(SMTPTimeoutError) as info:
        await flavor.send(
            **send_args(timeout=30, timeouts={"greeting": 0.3}, **server.client_options())()
        )
    assert info.value.stage is Stage.GREETING
    assert time.monotonic() - started < 5


async def test_timeout_after_the_final_dot(
    flavor: Flavor, start_tiny: Callable[..., TinyServer]
) -> None:
    # The data went out and the server says nothing: the message may have
    # been delivered (RFC 5321 4.5.3.2.6), and the error says so.
    server = start_tiny(after_data="stall")
    with pytest.raises(SMTPTimeoutError) as info:
        await flavor.send(
            **send_args(timeouts={"data-termination": 0.4}, **server.client_options())()
        )
    assert info.value.stage is Stage.DATA_TERMINATION
    assert info.value.status_unknown
    assert server.messages == [BODY]
    assert server.connections == 1


async def test_cancelled_send_closes_the_connection(
    flavor: Flavor, start_tiny: Callable[..., TinyServer]
) -> None:
    if not flavor.is_async:
        pytest.skip("an event loop cannot cancel a blocking call")
    server = start_tiny(greeting=None)
    with anyio.move_on_after(0.3) as scope:
        await flavor.send(**send_args(timeout=30, **server.client_options())())
    assert scope.cancelled_caught
    # The client closed its socket on the way out.
    assert await wait_until_async(lambda: server.open_connections == 0, timeout=2.0)


# -- replies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "error_type", "code"),
    [
        pytest.param(b"554 5.3.2 no service here\r\n", PermanentReplyError, 554, id="554"),
        pytest.param(b"421 4.3.2 too busy, try later\r\n", TemporaryReplyError, 421, id="421"),
    ],
)
async def test_greeting_refused(
    flavor: Flavor,
    start_tiny: Callable[..., TinyServer],
    greeting: bytes,
    error_type: type[PermanentReplyError | TemporaryReplyError],
    code: int,
) -> None:
    server = start_tiny(greeting=greeting)
    error = await fails_with(flavor, error_type, send_args(**server.client_options()))
    assert error.code == code
    assert server.commands in ([], ["QUIT"])  # RFC 5321 3.1: no EHLO after a refusal


async def test_recipient_refused(flavor: Flavor, smtpd: SMTPServer) -> None:
    smtpd.handler.refuse_rcpt[RCPT] = "550 5.1.1 no such user"
    error = await fails_with(flavor, RecipientsRefusedError, send_args(**smtpd.client_options()))
    assert error.code == 550
    assert error.enhanced_code == "5.1.1"
    assert set(error.replies) == {RCPT}
    assert not error.temporary
    assert smtpd.messages == []


async def test_some_recipients_refused(flavor: Flavor, smtpd: SMTPServer) -> None:
    smtpd.handler.refuse_rcpt["gone@example.test"] = "550 5.1.1 gone"
    result = await flavor.send_ok(
        SENDER, [RCPT, "gone@example.test"], message=BODY, **smtpd.client_options()
    )
    assert result.accepted == (RCPT,)
    assert result.result.rejected["gone@example.test"].code == 550
    assert smtpd.handler.last().rcpt_tos == (RCPT,)


@pytest.mark.parametrize(
    ("reply", "error_type", "code"),
    [
        pytest.param("554 5.6.0 content refused", PermanentReplyError, 554, id="554"),
        pytest.param("451 4.3.0 try later", TemporaryReplyError, 451, id="451"),
    ],
)
async def test_data_refused(
    flavor: Flavor,
    smtpd: SMTPServer,
    reply: str,
    error_type: type[PermanentReplyError | TemporaryReplyError],
    code: int,
) -> None:
    smtpd.handler.data_reply = reply
    error = await fails_with(flavor, error_type, send_args(**smtpd.client_options()))
    assert error.code == code
    assert error.temporary is (code < 500)


async def test_message_over_size_limit_is_never_sent(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer]
) -> None:
    server = start_smtpd(data_size_limit=1000)
    body = b"Subject: big\r\n\r\n" + (b"x" * 80 + b"\r\n") * 20
    await fails_with(
        flavor, MessageContentError, send_args(message=body, **server.client_options())
    )
    # RFC 1870: refused before MAIL, not after the data.
    assert server.handler.mail_commands == []


# -- TLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "policy"),
    [
        ("starttls", "starttls"),
        ("starttls", "opportunistic"),
        ("implicit", "implicit"),
    ],
)
async def test_untrusted_certificate(
    flavor: Flavor,
    start_smtpd: Callable[..., SMTPServer],
    tls: TLSMaterial,
    mode: str,
    policy: str,
) -> None:
    server = start_smtpd(mode=mode, tls=tls)
    options = server.client_options(tls=policy)
    del options["ssl_context"]  # the system's CAs do not know ours
    await fails_with(flavor, TLSError, send_args(**options))
    assert server.handler.mail_commands == []


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_wrong_host_name(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer], tls: TLSMaterial, mode: str
) -> None:
    # A certificate the client trusts, but for another name than 127.0.0.1.
    server = start_smtpd(mode=mode, tls=tls.with_cert_for("mx.example.net"))
    error = await fails_with(flavor, TLSError, send_args(**server.client_options()))
    assert not isinstance(error, TLSRequiredError)
    assert server.handler.mail_commands == []


async def test_tls_required_but_not_offered(
    flavor: Flavor, smtpd: SMTPServer, tls: TLSMaterial
) -> None:
    options = smtpd.client_options(tls="starttls", ssl_context=tls.client_context())
    await fails_with(flavor, TLSRequiredError, send_args(**options))
    assert smtpd.handler.mail_commands == []


# -- AUTH ----------------------------------------------------------------------------------


async def test_credentials_without_tls(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer]
) -> None:
    # The server would take AUTH in plaintext; the client must not offer it.
    server = start_smtpd(auth=True, auth_require_tls=False)
    await fails_with(
        flavor, ConfigurationError, send_args(auth=("user", "pw"), **server.client_options())
    )
    assert server.handler.logins == []
    assert server.handler.mail_commands == []


async def test_credentials_but_no_auth_offered(flavor: Flavor, smtpd: SMTPServer) -> None:
    options = smtpd.client_options(auth=("user", "pw"), allow_insecure_auth=True)
    await fails_with(flavor, ConfigurationError, send_args(**options))
    assert smtpd.handler.mail_commands == []


async def test_no_mechanism_in_common(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer], tls: TLSMaterial
) -> None:
    server = start_smtpd(mode="starttls", tls=tls, auth=True)  # offers LOGIN and PLAIN
    options = server.client_options(auth=("user", "pw"), auth_mechanisms=["CRAM-MD5"])
    await fails_with(flavor, ConfigurationError, send_args(**options))
    assert server.handler.logins == []
    assert server.handler.mail_commands == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_wrong_password(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer], tls: TLSMaterial, mechanism: str
) -> None:
    server = start_smtpd(mode="starttls", tls=tls, auth=True)
    server.handler.users = {"user": "right"}
    options = server.client_options(auth=("user", "wrong"), auth_mechanisms=[mechanism])
    error = await fails_with(flavor, AuthenticationError, send_args(**options))
    assert error.reply is not None
    assert error.reply.code == 535
    assert not error.temporary
    assert [(m, ok) for m, _, ok in server.handler.logins] == [(mechanism, False)] * 2
    assert server.handler.mail_commands == []


# -- message sources -----------------------------------------------------------------------


async def test_missing_message_file(
    flavor: Flavor, start_tiny: Callable[..., TinyServer], tmp_path: Path
) -> None:
    # send() builds the message first: no connection is made (so no MAIL is
    # sent) for a message that cannot be read.
    server = start_tiny()
    missing = tmp_path / "no-such-message.eml"
    await fails_with(
        flavor,
        MessageSourceError,
        lambda: {
            "sender": SENDER,
            "recipients": [RCPT],
            "message_file": missing,
            **server.client_options(),
        },
    )
    assert server.connections == 0


async def test_send_many_with_nothing_sendable_does_not_connect(
    flavor: Flavor, start_tiny: Callable[..., TinyServer], tmp_path: Path
) -> None:
    server = start_tiny()
    client = flavor.module.Client(**server.client_options())
    missing = {"sender": SENDER, "recipients": [RCPT], "message_file": tmp_path / "none.eml"}
    results = await flavor.call(client.send_many, [missing, missing])
    await flavor.call(client.close)
    assert [type(r) for r in results] == [MessageSourceError, MessageSourceError]
    assert server.connections == 0


async def test_message_file_is_a_directory(
    flavor: Flavor, smtpd: SMTPServer, tmp_path: Path
) -> None:
    await fails_with(
        flavor,
        MessageSourceError,
        lambda: {
            "sender": SENDER,
            "recipients": [RCPT],
            "message_file": str(tmp_path),
            **smtpd.client_options(),
        },
    )
    assert smtpd.messages == []


async def test_text_mode_file_handle(flavor: Flavor, smtpd: SMTPServer, tmp_path: Path) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(BODY)
    handles = []

    def make_kwargs() -> dict[str, Any]:
        handle = path.open("r", encoding="ascii")
        handles.append(handle)
        return {
            "sender": SENDER,
            "recipients": [RCPT],
            "file_handle": handle,
            **smtpd.client_options(),
        }

    try:
        await fails_with(flavor, MessageSourceError, make_kwargs)
    finally:
        for handle in handles:
            handle.close()
    # Whatever was under way, no message was completed.
    assert smtpd.messages == []
