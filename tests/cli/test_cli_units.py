"""The CLI's pure helpers, in-process: parsing, error classification, composing."""

from __future__ import annotations

import email.policy
import mailbox
from pathlib import Path
from typing import Any

import click
import pytest
from smtpcore.adapters.blocking import send
from smtpcore.cli._common import classify, parse_host_port, reply_json
from smtpcore.cli._compose import compose, parse_header
from smtpcore.cli.sink import Sink

from smtpcore import (
    AuthenticationError,
    ConnectionLostError,
    InvalidInputError,
    PermanentReplyError,
    RecipientsRefusedError,
    Reply,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    TemporaryReplyError,
    TLSError,
    TLSRequiredError,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mx.example.net", ("mx.example.net", None)),
        ("mx.example.net:587", ("mx.example.net", 587)),
        ("192.0.2.1:25", ("192.0.2.1", 25)),
        ("[2001:db8::1]:465", ("2001:db8::1", 465)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
        ("2001:db8::25", ("2001:db8::25", None)),
    ],
    ids=["name", "name-port", "v4-port", "v6-port", "v6-bracketed", "v6-bare", "v6-bare-long"],
)
def test_parse_host_port(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_host_port(text, "--server") == expected


@pytest.mark.parametrize(
    "text",
    ["[::1", "[::1]x", "host:0", "host:65536", "host:smtp", ":25", "[]:25"],
    ids=["unclosed", "junk", "port-0", "port-big", "port-name", "no-host", "empty-v6"],
)
def test_parse_host_port_refuses(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_host_port(text, "--server")


def test_bind_allows_port_zero() -> None:
    assert parse_host_port("127.0.0.1:0", "--bind", allow_zero=True) == ("127.0.0.1", 0)


def _refused(*codes: int) -> RecipientsRefusedError:
    replies = {f"r{i}@example.org": Reply.build(code, "no") for i, code in enumerate(codes)}
    return RecipientsRefusedError(replies, list(replies.values())[-1])


@pytest.mark.parametrize(
    ("error", "outcome", "code"),
    [
        (TemporaryReplyError(Reply.build(451, "4.3.0 later"), "DATA"), "temporary-failure", 3),
        (PermanentReplyError(Reply.build(554, "5.7.1 no"), "DATA"), "permanent-failure", 1),
        (_refused(450, 451), "temporary-failure", 3),
        (_refused(450, 550), "permanent-failure", 1),
        (AuthenticationError("bad", Reply.build(535, "5.7.8 no")), "permanent-failure", 1),
        (AuthenticationError("later", Reply.build(454, "4.7.0 busy")), "temporary-failure", 3),
        (SMTPTimeoutError(Stage.MAIL, 5.0), "temporary-failure", 3),
        (ConnectionLostError("cannot connect x: refused"), "temporary-failure", 3),
        (TLSError("TLS handshake failed: CERTIFICATE_VERIFY_FAILED"), "permanent-failure", 1),
        (TLSRequiredError("no STARTTLS"), "permanent-failure", 1),
        (InvalidInputError("recipient", "bad"), "error", 2),
    ],
    ids=[
        "451", "554", "rcpt-all-4xx", "rcpt-mixed", "auth-535", "auth-454", "timeout",
        "refused", "bad-cert", "tls-required", "invalid-input",
    ],
)  # fmt: skip
def test_classify(error: SMTPError, outcome: str, code: int) -> None:
    failure = classify(error)
    assert (failure.outcome, failure.exit_code) == (outcome, code)
    assert "\n" not in failure.message


def test_certificate_failure_gets_a_hint() -> None:
    message = classify(TLSError("x: CERTIFICATE_VERIFY_FAILED y")).message
    assert message.endswith("(to trust a private CA, pass it with --ca-file)")
    assert "--ca-file" not in classify(TLSRequiredError("no STARTTLS offered")).message


def test_reply_json_escapes_control_characters() -> None:
    reply = Reply.build(550, "5.1.1 bad\x1b[31m user")
    assert reply_json(reply) == {"code": 550, "enhanced": "5.1.1", "text": "bad\\x1b[31m user"}
    assert reply_json(None) is None


@pytest.mark.parametrize(
    "text",
    ["NoColon", ": empty name", "Bad Name: x", "X-Ok: a\nInjected: b", "X-Ok: a\rb"],
    ids=["no-colon", "empty-name", "space-in-name", "lf", "cr"],
)
def test_parse_header_refuses(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_header(text)


def test_compose_defaults_overrides_and_repeats() -> None:
    message = compose(
        sender="ann@example.com",
        recipients=["bob@example.org", "cy@example.org"],
        body="héllo",
        headers=[("subject", "custom"), ("X-Tag", "1"), ("X-Tag", "2")],
    )
    assert message["From"] == "ann@example.com"
    assert message["To"] == "bob@example.org, cy@example.org"
    assert message.get_all("Subject") == ["custom"]
    assert message.get_all("X-Tag") == ["1", "2"]
    assert str(message["Message-ID"]).endswith("@example.com>")
    assert message["Date"] is not None
    # Non-ASCII text goes quoted-printable: no 8BITMIME needed.
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content() == "héllo\n"
    assert message.as_bytes(policy=email.policy.SMTP).isascii()


# -- the Sink class, driven by the blocking adapter in-process -----------------


def test_sink_stores_in_maildir_and_counts(tmp_path: Path) -> None:
    with Sink(maildir=tmp_path / "md", tempfail_every=2) as sink:
        results = []
        for n in range(4):
            try:
                send(
                    "ann@example.com",
                    [f"r{n}@example.org"],
                    message=f"Subject: n{n}\r\n\r\nbody\r\n".encode(),
                    server="127.0.0.1",
                    port=sink.port,
                    tls="none",
                )
                results.append("ok")
            except TemporaryReplyError as exc:
                results.append(str(exc.code))
        assert results == ["ok", "451", "ok", "451"]
        assert (sink.attempts, sink.tempfailed) == (4, 2)
        assert [m.subject for m in sink.messages] == ["n0", "n2"]
        assert [m.number for m in sink.messages] == [1, 2]
    stored = sorted(
        (m["Subject"], m["Return-Path"], m["Delivered-To"])
        for m in mailbox.Maildir(tmp_path / "md", create=False)
    )
    assert stored == [
        ("n0", "<ann@example.com>", "r0@example.org"),
        ("n2", "<ann@example.com>", "r2@example.org"),
    ]


def test_sink_auth_and_tls(tmp_path: Path) -> None:
    with Sink(starttls=True, auth=("u", "pw")) as sink:
        assert sink.ca_pem_path is not None
        assert sink.ca_pem_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
        context = sink.client_ssl_context()
        common: dict[str, Any] = {"server": "127.0.0.1", "port": sink.port, "tls": "starttls"}
        send("a@example.com", "b@example.org", message=b"x\r\n", ssl_context=context,
             auth=("u", "pw"), **common)  # fmt: skip
        with pytest.raises(AuthenticationError):
            send("a@example.com", "b@example.org", message=b"x\r\n", ssl_context=context,
                 auth=("u", "nope"), timeout=5, **common)  # fmt: skip
        (message,) = sink.messages
        assert message.tls
        assert message.username == "u"
        pem = sink.ca_pem_path
    assert not pem.exists()  # the throwaway CA is removed when the sink stops


def test_sink_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="not both"):
        Sink(starttls=True, implicit_tls=True)
    with pytest.raises(ValueError, match="fail_rate"):
        Sink(fail_rate=1.5)
