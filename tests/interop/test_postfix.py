"""Interop with a real MTA: a private Postfix 3.7 on 127.0.0.1 (see conftest.py).

Postfix advertises what aiosmtpd does not (PIPELINING, CHUNKING, DSN,
ENHANCEDSTATUSCODES) and delivers each accepted message into a Maildir, so
every test here can read back what was really stored. Postfix prepends
``Return-Path``, ``Delivered-To`` and ``Received`` and writes the Maildir file
with LF line endings; the comparisons start at the message's own first
header. Each test runs on every adapter.
"""

from __future__ import annotations

import email.message
import email.utils
import uuid
from pathlib import Path
from typing import Any

import pytest
from daemons import assert_hello_again_after_tls
from servers import (
    POSTFIX_SIZE_LIMIT,
    Flavor,
    PostfixServer,
    canonical,
    expected_email_bytes,
)
from smtpcore.adapters import SendResult

from smtpcore import MessageContentError, TLSError

pytestmark = [pytest.mark.anyio, pytest.mark.postfix]

SENDER = "alice@example.test"
RCPT = "bob@example.test"


def headers(token: str, subject: str = "interop") -> bytes:
    """Complete headers, so that Postfix adds none of its own (it adds Date,
    Message-ID, From or To when missing, for clients on its interfaces)."""
    return (
        f"From: Alice <{SENDER}>\r\n"
        f"To: Bob <{RCPT}>\r\n"
        f"Date: {email.utils.formatdate(localtime=False)}\r\n"
        f"Message-ID: <{token}@example.test>\r\n"
        f"Subject: {subject} {token}\r\n"
    ).encode()


def stored_part(delivered: bytes, sent: bytes) -> bytes:
    """What Postfix stored from the first line that was sent on, and a check
    of what it prepended."""
    expected = canonical(sent).replace(b"\r\n", b"\n")
    first = expected.split(b"\n", 1)[0] + b"\n"
    start = delivered.find(first)
    assert start > 0, "the sent headers are not in the delivered message"
    prefix = delivered[:start]
    assert prefix.startswith(b"Return-Path: <")
    assert b"\nDelivered-To: " in prefix
    assert b"\nReceived: " in prefix
    return delivered[start:]


def transcript_lines(result: SendResult) -> list[str]:
    assert result.transcript is not None
    return [str(entry) for entry in result.transcript]


def containing(token: str) -> Any:
    return lambda message: token.encode() in message and message.startswith(b"Return-Path: <alice@")


def message_bodies(token: str) -> dict[str, bytes | str | email.message.EmailMessage]:
    eml = email.message.EmailMessage()
    eml["From"] = f"Alice <{SENDER}>"
    eml["To"] = f"Bob <{RCPT}>"
    eml["Cc"] = "carol@example.test"
    eml["Bcc"] = "dave@example.test"
    eml["Date"] = email.utils.formatdate()
    eml["Message-ID"] = f"<{token}@example.test>"
    eml["Subject"] = f"EmailMessage {token}"
    eml.set_content("café ✓\n.leading dot\n..two\n", cte="8bit")
    return {
        "bytes": headers(token)
        + b"\r\n.leading dot\r\n..two\r\n.\r\nbare LF\nbare CR\rmixed\r\r\nno final EOL",
        "str": headers(token).decode() + "\nGrüße, ñandú ✓\n",
        "email": eml,
    }


@pytest.mark.parametrize("form", ["bytes", "str", "email", "file"])
async def test_delivered_byte_for_byte_over_bdat(
    flavor: Flavor, postfix: PostfixServer, tmp_path: Path, form: str
) -> None:
    token = uuid.uuid4().hex
    bodies = message_bodies(token)
    options = postfix.client_options(transaction_log=True)
    body = bodies["bytes" if form == "file" else form]
    if form == "file":
        assert isinstance(body, bytes)
        path = tmp_path / "message.eml"
        path.write_bytes(body)
        result = await flavor.send_ok(SENDER, RCPT, message_file=path, **options)
    elif isinstance(body, email.message.EmailMessage):
        result = await flavor.send_ok(message=body, **options)
    else:
        result = await flavor.send_ok(SENDER, RCPT, message=body, **options)

    # RFC 3030: Postfix offers CHUNKING, so the body went in BDAT chunks.
    lines = transcript_lines(result)
    assert any(line.startswith("-> BDAT ") and line.endswith(" LAST") for line in lines)
    assert "-> DATA" not in lines

    if isinstance(body, email.message.EmailMessage):
        sent = expected_email_bytes(body)
        count = 3  # To, Cc and Bcc each get a copy in the one Maildir
    else:
        sent = body.encode() if isinstance(body, str) else body
        count = 1
    delivered = postfix.wait_for(containing(token), count=count)
    for message in delivered:
        assert stored_part(message, sent) == canonical(sent).replace(b"\r\n", b"\n")


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_large_streamed_message(
    flavor: Flavor, postfix: PostfixServer, tmp_path: Path, chunking: bool
) -> None:
    # ~3 MB read from a file handle in 64 kB pieces: many BDAT chunks in
    # flight (or one long DATA), with line breaks and dots at piece edges.
    token = uuid.uuid4().hex
    lines = [b"%s%06d %s" % (b"." if i % 5 == 0 else b"", i, b"z" * 60) for i in range(45000)]
    body = headers(token) + b"\r\n" + b"\n".join(lines) + b"\n"
    path = tmp_path / "large.eml"
    path.write_bytes(body)
    with path.open("rb") as handle:
        result = await flavor.send_ok(
            SENDER,
            RCPT,
            file_handle=handle,
            **postfix.client_options(chunking=chunking, transaction_log=True),
        )
    bdat = [line for line in transcript_lines(result) if line.startswith("-> BDAT ")]
    assert (len(bdat) > 10) is chunking
    (delivered,) = postfix.wait_for(containing(token))
    assert stored_part(delivered, body) == canonical(body).replace(b"\r\n", b"\n")


async def test_delivered_over_data_without_chunking(flavor: Flavor, postfix: PostfixServer) -> None:
    token = uuid.uuid4().hex
    body = message_bodies(token)["bytes"]
    assert isinstance(body, bytes)
    result = await flavor.send_ok(
        SENDER, RCPT, message=body, **postfix.client_options(chunking=False, transaction_log=True)
    )
    lines = transcript_lines(result)
    assert "-> DATA" in lines
    assert not any(line.startswith("-> BDAT") for line in lines)
    (delivered,) = postfix.wait_for(containing(token))
    assert stored_part(delivered, body) == canonical(body).replace(b"\r\n", b"\n")


@pytest.mark.parametrize("pipelining", [True, False])
async def test_pipelining(flavor: Flavor, postfix: PostfixServer, pipelining: bool) -> None:
    token = uuid.uuid4().hex
    recipients = [f"r{i}-{token}@example.test" for i in range(3)]
    result = await flavor.send_ok(
        SENDER,
        recipients,
        message=headers(token) + b"\r\npipelined\r\n",
        **postfix.client_options(pipelining=pipelining, transaction_log=True),
    )
    assert result.accepted == tuple(recipients)
    lines = transcript_lines(result)
    mail = next(i for i, line in enumerate(lines) if line.startswith("-> MAIL FROM:"))
    first_reply = next(i for i in range(mail, len(lines)) if lines[i].startswith("<- "))
    envelope_sent_before_reply = [
        line for line in lines[mail:first_reply] if line.startswith("-> RCPT TO:")
    ]
    if pipelining:
        # RFC 2920 3.1: MAIL and every RCPT go out before any reply is read.
        assert len(envelope_sent_before_reply) == 3
    else:
        assert envelope_sent_before_reply == []
    postfix.wait_for(containing(token), count=3)


async def test_starttls(flavor: Flavor, postfix: PostfixServer) -> None:
    token = uuid.uuid4().hex
    result = await flavor.send_ok(
        SENDER,
        RCPT,
        message=headers(token) + b"\r\nover TLS\r\n",
        **postfix.client_options(transaction_log=True),
    )
    lines = transcript_lines(result)
    assert lines[lines.index("-> STARTTLS") + 1].startswith("<- 220")
    assert_hello_again_after_tls(lines)
    postfix.wait_for(containing(token))


async def test_starttls_untrusted(flavor: Flavor, postfix: PostfixServer) -> None:
    options = postfix.client_options()
    del options["ssl_context"]  # the system CAs do not know the test CA
    with pytest.raises(TLSError):
        await flavor.send(SENDER, RCPT, message=b"never sent\r\n", **options)


async def test_smtputf8(flavor: Flavor, postfix: PostfixServer) -> None:
    token = uuid.uuid4().hex
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <jörg@example.test>"
    msg["To"] = f"José <josé-{token}@example.test>"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = f"<{token}@example.test>"
    msg["Subject"] = f"Grüße {token}"
    msg.set_content("Ünïcödé ✓\n", cte="8bit")
    result = await flavor.send_ok(message=msg, **postfix.client_options(transaction_log=True))
    assert result.accepted == (f"josé-{token}@example.test",)
    lines = transcript_lines(result)
    assert any(
        line.startswith("-> MAIL FROM:<jörg@example.test>") and "SMTPUTF8" in line for line in lines
    )
    (delivered,) = postfix.wait_for(lambda m: token.encode() in m)
    sent = expected_email_bytes(msg, utf8=True)
    assert f"Delivered-To: josé-{token}@example.test".encode() in delivered
    assert stored_part(delivered, sent) == sent.replace(b"\r\n", b"\n")


async def test_dsn(flavor: Flavor, postfix: PostfixServer) -> None:
    token = uuid.uuid4().hex
    envid = f"env-{token}"
    result = await flavor.send_ok(
        SENDER,
        RCPT,
        message=headers(token) + b"\r\nplease confirm\r\n",
        message_options={
            "dsn_notify": ["SUCCESS", "FAILURE"],
            "dsn_ret": "HDRS",
            "dsn_envid": envid,
            "dsn_orcpt": True,
        },
        **postfix.client_options(transaction_log=True),
    )
    assert result.accepted == (RCPT,)
    lines = transcript_lines(result)
    mail = next(line for line in lines if line.startswith("-> MAIL FROM:"))
    rcpt = next(line for line in lines if line.startswith("-> RCPT TO:"))
    assert "RET=HDRS" in mail
    assert f"ENVID={envid}" in mail
    assert "NOTIFY=SUCCESS,FAILURE" in rcpt or "NOTIFY=FAILURE,SUCCESS" in rcpt
    assert f"ORCPT=rfc822;{RCPT}" in rcpt
    postfix.wait_for(containing(token))
    # RFC 3464: Postfix honoured NOTIFY=SUCCESS with a report quoting our ENVID.
    (report,) = postfix.wait_for(
        lambda m: (
            m.startswith(b"Return-Path: <>") and f"Original-Envelope-Id: {envid}".encode() in m
        )
    )
    assert b"Action: delivered" in report
    assert f"Original-Recipient: rfc822;{RCPT}".encode() in report


@pytest.mark.parametrize("source", ["bytes", "file"])
async def test_size_limit_refused_before_mail(
    flavor: Flavor, postfix: PostfixServer, tmp_path: Path, source: str
) -> None:
    line = b"x" * 998 + b"\r\n"
    body = headers("too-big") + b"\r\n" + line * (11 * 1024 * 1024 // len(line))
    assert len(body) > POSTFIX_SIZE_LIMIT
    kwargs: dict[str, Any] = {"message": body}
    if source == "file":
        path = tmp_path / "big.eml"
        path.write_bytes(body)
        kwargs = {"message_file": path}
    failures: list[tuple[Any, ...]] = []
    await flavor.send(
        SENDER,
        RCPT,
        on_failure=lambda *args: failures.append(args),
        **kwargs,
        **postfix.client_options(transaction_log=True),
    )
    (failure,) = failures
    assert isinstance(failure[1], MessageContentError)
    lines = [str(entry) for entry in failure[2]]
    # RFC 1870: the server said its limit, and the client sent no MAIL.
    assert f"<- 250-SIZE {POSTFIX_SIZE_LIMIT}" in lines
    assert not any(line.startswith("-> MAIL") for line in lines)
    assert not any(line.startswith("-> BDAT") or line == "-> DATA" for line in lines)


async def test_client_pipelines_several_messages(flavor: Flavor, postfix: PostfixServer) -> None:
    token = uuid.uuid4().hex
    sent = [headers(token, f"part {i}") + b"\r\nmessage %d\r\n" % i for i in range(3)]
    async with flavor.client(**postfix.client_options()) as client:
        for body in sent:
            result = await client.send_message(SENDER, RCPT, message=body)
            assert result.accepted == (RCPT,)
        assert (await client.noop()).code == 250
    delivered = postfix.wait_for(containing(token), count=3)
    stored = sorted(stored_part(m, m[m.find(b"From: Alice") :]) for m in delivered)
    assert stored == sorted(canonical(b).replace(b"\r\n", b"\n") for b in sent)
