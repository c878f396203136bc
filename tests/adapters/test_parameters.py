"""Each parameter of ``send``/``Client``/``Pool`` has a visible effect, on
every adapter: the server or the caller can see that it was honoured."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from servers import Flavor, SMTPServer, TinyServer, TLSMaterial, canonical, free_port
from smtpcore.adapters import SendResult
from smtpcore.adapters._common import POOL_BATCH, pool_batches

from smtpcore import (
    ConnectionLostError,
    MessageSourceError,
    RecipientsRefusedError,
    SMTPError,
    TranscriptEntry,
)

pytestmark = pytest.mark.anyio

SENDER = "alice@example.test"
RCPT = "bob@example.test"
BODY = b"Subject: parameters\r\n\r\nbody\r\n"


async def test_bind_address_and_port(flavor: Flavor, smtpd: SMTPServer) -> None:
    port = free_port()
    await flavor.send_ok(
        SENDER,
        RCPT,
        message=BODY,
        **smtpd.client_options(bind_address="127.0.0.1", bind_port=port),
    )
    assert smtpd.handler.last().peer == ("127.0.0.1", port)


async def test_local_hostname(flavor: Flavor, smtpd: SMTPServer) -> None:
    await flavor.send_ok(
        SENDER, RCPT, message=BODY, **smtpd.client_options(local_hostname="client.example.test")
    )
    assert smtpd.handler.last().host_name == "client.example.test"


async def test_context_is_returned_untouched(flavor: Flavor, smtpd: SMTPServer) -> None:
    context = {"job": 42}
    result = await flavor.send_ok(
        SENDER, RCPT, message=BODY, context=context, **smtpd.client_options()
    )
    assert result.context is context
    assert context == {"job": 42}


async def test_success_callback_once(flavor: Flavor, smtpd: SMTPServer) -> None:
    context = object()
    successes: list[tuple[Any, ...]] = []
    failures: list[tuple[Any, ...]] = []
    returned = await flavor.send(
        SENDER,
        RCPT,
        message=BODY,
        context=context,
        on_success=lambda *args: successes.append(args),
        on_failure=lambda *args: failures.append(args),
        **smtpd.client_options(),
    )
    assert returned is None
    assert failures == []
    assert len(successes) == 1
    got_context, result = successes[0]
    assert got_context is context
    assert isinstance(result, SendResult)
    assert result.context is context
    assert result.accepted == (RCPT,)
    assert len(smtpd.messages) == 1


@pytest.mark.parametrize("transaction_log", [False, True])
async def test_failure_callback_once(
    flavor: Flavor, smtpd: SMTPServer, transaction_log: bool
) -> None:
    smtpd.handler.refuse_rcpt[RCPT] = "550 5.1.1 no such user"
    context = object()
    successes: list[tuple[Any, ...]] = []
    failures: list[tuple[Any, ...]] = []
    returned = await flavor.send(
        SENDER,
        RCPT,
        message=BODY,
        context=context,
        on_success=lambda *args: successes.append(args),
        on_failure=lambda *args: failures.append(args),
        **smtpd.client_options(transaction_log=transaction_log),
    )
    assert returned is None
    assert successes == []
    assert len(failures) == 1
    got_context, error, transcript, description = failures[0]
    assert got_context is context
    assert isinstance(error, SMTPError)
    assert isinstance(description, str)
    assert "\n" not in description
    assert type(error).__name__ in description
    if transaction_log:
        assert isinstance(transcript, tuple)
        assert all(isinstance(entry, TranscriptEntry) for entry in transcript)
        assert any("RCPT TO:<bob@example.test>" in str(entry) for entry in transcript)
        assert any(str(entry).startswith("<- 550") for entry in transcript)
    else:
        assert transcript is None


async def test_only_a_failure_callback(flavor: Flavor, smtpd: SMTPServer) -> None:
    failures: list[tuple[Any, ...]] = []
    returned = await flavor.send(
        SENDER,
        RCPT,
        message=BODY,
        on_failure=lambda *args: failures.append(args),
        **smtpd.client_options(),
    )
    # Callbacks given: success is silent, nothing is returned.
    assert returned is None
    assert failures == []
    assert len(smtpd.messages) == 1


async def test_transcript(flavor: Flavor, smtpd: SMTPServer) -> None:
    result = await flavor.send_ok(
        SENDER, RCPT, message=BODY, **smtpd.client_options(transaction_log=True)
    )
    assert result.transcript is not None
    lines = [str(entry) for entry in result.transcript]
    assert lines == result.transcript_text.split("\n")
    assert lines[0].startswith("<- 220 ")
    sent = [line[3:] for line in lines if line.startswith("-> ")]
    assert sent[0] == "EHLO localhost"
    assert sent[1].startswith("MAIL FROM:<alice@example.test>")
    assert sent[2].startswith("RCPT TO:<bob@example.test>")
    assert sent[3] == "DATA"
    assert any(line.startswith("<- 354") for line in lines)
    assert any(line.startswith("<- 250") for line in lines)
    # Message data is summarised, not logged.
    assert not any("Subject: parameters" in line for line in lines)


async def test_no_transcript_by_default(flavor: Flavor, smtpd: SMTPServer) -> None:
    result = await flavor.send_ok(SENDER, RCPT, message=BODY, **smtpd.client_options())
    assert result.transcript is None


PASSWORD = "s3cret-Pa55w0rd-✓"
USER = "user@example.test"


def secrets_of(user: str, password: str) -> list[str]:
    """Every form a password takes on the wire (RFC 4616 PLAIN, LOGIN)."""
    pw = password.encode()
    plain = b"\0" + user.encode() + b"\0" + pw
    return [
        password,
        base64.b64encode(pw).decode(),
        base64.b64encode(plain).decode(),
        base64.b64encode(b"\0" + user.encode() + b"\0").decode()[:-4],  # PLAIN prefix
    ]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("password_ok", [True, False], ids=["right-password", "wrong-password"])
async def test_auth_secrets_never_logged(
    flavor: Flavor,
    start_smtpd: Callable[..., SMTPServer],
    tls: TLSMaterial,
    caplog: pytest.LogCaptureFixture,
    mechanism: str,
    password_ok: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = start_smtpd(mode="starttls", tls=tls, auth=True)
    password = PASSWORD if password_ok else PASSWORD + "x"
    server.handler.users = {USER: PASSWORD}
    failures: list[tuple[Any, ...]] = []
    successes: list[tuple[Any, ...]] = []
    await flavor.send(
        SENDER,
        RCPT,
        message=BODY,
        on_success=lambda *args: successes.append(args),
        on_failure=lambda *args: failures.append(args),
        **server.client_options(
            auth=(USER, password),
            auth_mechanisms=[mechanism],
            transaction_log=True,
            name="secretive",
        ),
    )
    if password_ok:
        assert len(successes) == 1
        transcript = successes[0][1].transcript
        assert server.handler.last().authenticated
    else:
        assert len(failures) == 1
        transcript = failures[0][2]
        assert server.messages == []
    text = "\n".join(str(entry) for entry in transcript)
    assert f"-> AUTH {mechanism}" in text
    everything = text + "\n" + caplog.text + "\n" + repr(transcript)
    if failures:
        everything += "\n" + failures[0][3] + "\n" + repr(failures[0][1])
    for secret in secrets_of(USER, password):
        assert secret not in everything
    # The exchange did happen: the server saw the credentials.
    assert [a[:2] for a in server.handler.logins] == [(mechanism, USER.encode())]


async def test_name_in_log_records(
    flavor: Flavor, smtpd: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpcore.client")
    await flavor.send_ok(SENDER, RCPT, message=BODY, **smtpd.client_options(name="relay-7"))
    records = [r for r in caplog.records if r.name == "smtpcore.client"]
    assert records, "the client logged nothing at DEBUG"
    assert {getattr(r, "smtp_client", None) for r in records} == {"relay-7"}


async def test_client_many_messages_and_noop(flavor: Flavor, smtpd: SMTPServer) -> None:
    bodies = [b"Subject: %d\r\n\r\nmessage %d\r\n" % (i, i) for i in range(5)]
    async with flavor.client(**smtpd.client_options()) as client:
        for i, body in enumerate(bodies):
            result = await client.send_message(SENDER, [f"rcpt{i}@example.test"], message=body)
            assert result.accepted == (f"rcpt{i}@example.test",)
            reply = await client.noop()
            assert reply.code == 250
    assert [m.content for m in smtpd.messages] == bodies
    assert [m.rcpt_tos for m in smtpd.messages] == [(f"rcpt{i}@example.test",) for i in range(5)]
    # One connection for all of them.
    assert len({m.peer for m in smtpd.messages}) == 1


async def test_client_survives_a_failed_message(
    flavor: Flavor, smtpd: SMTPServer, tmp_path: Path
) -> None:
    smtpd.handler.refuse_rcpt["gone@example.test"] = "550 5.1.1 gone"
    async with flavor.client(**smtpd.client_options()) as client:
        with pytest.raises(MessageSourceError):
            await client.send_message(SENDER, RCPT, message_file=tmp_path / "missing.eml")
        with pytest.raises(RecipientsRefusedError):
            await client.send_message(SENDER, "gone@example.test", message=BODY)
        result = await client.send_message(SENDER, RCPT, message=BODY)
        assert result.accepted == (RCPT,)
    assert [m.content for m in smtpd.messages] == [BODY]
    # Neither failure cost the connection (the missing file never got a MAIL).
    assert len(smtpd.handler.peers) == 2
    assert len(set(smtpd.handler.peers)) == 1


async def test_client_authenticates_once(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer], tls: TLSMaterial
) -> None:
    server = start_smtpd(mode="starttls", tls=tls, auth=True)
    async with flavor.client(**server.client_options(auth=("user", "pw"))) as client:
        for _ in range(3):
            await client.send_message(SENDER, RCPT, message=BODY)
    assert len(server.messages) == 3
    assert all(m.authenticated and m.tls for m in server.messages)
    assert len(server.handler.logins) == 1


async def test_client_reconnects_after_idle_close(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer]
) -> None:
    # aiosmtpd drops a connection idle for `timeout` seconds, without a word.
    server = start_smtpd(timeout=0.5)
    async with flavor.client(**server.client_options()) as client:
        await client.send_message(SENDER, RCPT, message=b"first\r\n")
        await anyio.sleep(1.0)
        result = await client.send_message(SENDER, RCPT, message=b"second\r\n")
        assert result.accepted == (RCPT,)
    assert [m.content for m in server.messages] == [b"first\r\n", b"second\r\n"]
    first, second = (m.peer for m in server.messages)
    assert first != second


async def test_client_reconnects_after_421(
    flavor: Flavor, start_tiny: Callable[..., TinyServer]
) -> None:
    server = start_tiny(idle_421=0.2)
    async with flavor.client(**server.client_options()) as client:
        await client.send_message(SENDER, RCPT, message=b"first\r\n")
        await anyio.sleep(0.6)
        await client.send_message(SENDER, RCPT, message=b"second\r\n")
    assert server.messages == [b"first\r\n", b"second\r\n"]
    assert server.connections == 2


async def test_client_never_resends_after_data(
    flavor: Flavor, start_tiny: Callable[..., TinyServer]
) -> None:
    # The server takes the data, then drops the connection instead of
    # replying: the message may have been delivered, so it must not be sent
    # again, on this connection or another.
    server = start_tiny(after_data="drop")
    async with flavor.client(**server.client_options()) as client:
        with pytest.raises(ConnectionLostError) as info:
            await client.send_message(SENDER, RCPT, message=b"only once\r\n")
    assert info.value.status_unknown
    assert server.messages == [b"only once\r\n"]
    assert server.connections == 1


async def test_send_never_resends_after_data(
    flavor: Flavor, start_tiny: Callable[..., TinyServer]
) -> None:
    server = start_tiny(after_data="drop")
    with pytest.raises(ConnectionLostError) as info:
        await flavor.send(SENDER, RCPT, message=b"only once\r\n", **server.client_options())
    assert info.value.status_unknown
    assert server.messages == [b"only once\r\n"]
    assert server.connections == 1


async def test_pool_sends_50_messages_over_4_connections(flavor: Flavor, smtpd: SMTPServer) -> None:
    messages = [
        {
            "sender": SENDER,
            "recipients": [f"rcpt{i}@example.test"],
            "message": b"Subject: pooled %d\r\n\r\nbody %d\r\n" % (i, i),
        }
        for i in range(50)
    ]
    async with flavor.pool(size=4, **smtpd.client_options()) as pool:
        results = await pool.send_many(messages)
        single = await pool.send_message(SENDER, RCPT, message=b"one more\r\n")
    assert single.accepted == (RCPT,)
    assert len(results) == 50
    for i, result in enumerate(results):
        assert not isinstance(result, SMTPError), result
        assert result.accepted == (f"rcpt{i}@example.test",)
    received = {m.rcpt_tos[0]: m.content for m in smtpd.messages if m.rcpt_tos != (RCPT,)}
    assert received == {
        f"rcpt{i}@example.test": canonical(messages[i]["message"])  # type: ignore[arg-type]
        for i in range(50)
    }
    connections = {m.peer for m in smtpd.messages}
    assert 1 <= len(connections) <= 4


async def test_pool_batches_consecutive_messages_per_connection(
    flavor: Flavor, smtpd: SMTPServer
) -> None:
    # send_many cuts the list into batches of consecutive messages, one
    # Client.send_many each: every connection carries whole runs of them.
    messages = [
        {"sender": SENDER, "recipients": [f"r{i}@example.test"], "message": BODY} for i in range(12)
    ]
    async with flavor.pool(size=3, **smtpd.client_options()) as pool:
        results = await pool.send_many(messages)
    assert [r.accepted for r in results if not isinstance(r, SMTPError)] == [
        (f"r{i}@example.test",) for i in range(12)
    ]
    by_peer: dict[Any, list[int]] = {}
    for m in smtpd.messages:
        by_peer.setdefault(m.peer, []).append(int(m.rcpt_tos[0][1:].split("@")[0]))
    assert 1 <= len(by_peer) <= 3
    for indexes in by_peer.values():
        runs = [indexes[i : i + 4] for i in range(0, len(indexes), 4)]
        assert all(run == list(range(run[0], run[0] + len(run))) for run in runs), indexes


async def test_pool_without_a_server_reports_every_message(flavor: Flavor) -> None:
    port = free_port()  # nothing listens there
    async with flavor.pool("127.0.0.1", port, size=2, timeout=5, tls="none") as pool:
        results = await pool.send_many(
            [{"sender": SENDER, "recipients": [RCPT], "message": BODY} for _ in range(5)]
        )
    assert len(results) == 5
    assert all(isinstance(r, ConnectionLostError) for r in results), results


def test_pool_batches() -> None:
    assert pool_batches(0, 4) == range(0)
    assert pool_batches(10, 4) == range(0, 10, 3)
    assert pool_batches(2000, 50) == range(0, 2000, 40)
    assert pool_batches(10_000, 4).step == POOL_BATCH
    assert pool_batches(3, 8) == range(0, 3, 1)


async def test_pool_reports_each_failure(flavor: Flavor, smtpd: SMTPServer) -> None:
    smtpd.handler.refuse_rcpt["bad@example.test"] = "550 5.1.1 no such user"
    recipients = ["bad@example.test" if i % 3 == 0 else f"ok{i}@example.test" for i in range(9)]
    async with flavor.pool(size=3, **smtpd.client_options()) as pool:
        results = await pool.send_many(
            [{"sender": SENDER, "recipients": [r], "message": BODY} for r in recipients]
        )
    for rcpt, result in zip(recipients, results, strict=True):
        if rcpt == "bad@example.test":
            assert isinstance(result, SMTPError)
        else:
            assert not isinstance(result, SMTPError)
            assert result.accepted == (rcpt,)
    assert sorted(m.rcpt_tos[0] for m in smtpd.messages) == sorted(
        r for r in recipients if r != "bad@example.test"
    )
