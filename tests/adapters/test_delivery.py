"""Messages arrive byte for byte, on every adapter, over every transport.

The server (aiosmtpd) records the message data after undoing dot-stuffing;
what it stores must equal what was sent after the documented
canonicalisation (``servers.canonical``: every CR, LF or CRLF is one CRLF
line break, and a final CRLF is added), whatever the message source: bytes,
str, a file path, a file handle or an ``EmailMessage`` (serialised with the
SMTP policy, without Bcc).
"""

from __future__ import annotations

import email.message
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import (
    Flavor,
    SMTPServer,
    TLSMaterial,
    canonical,
    expected_email_bytes,
)

pytestmark = pytest.mark.anyio

SENDER = "alice@example.test"
RCPT = "bob@example.test"

BODIES = [
    pytest.param(b"Subject: hi\r\n\r\nHello, world.\r\n", id="crlf"),
    pytest.param(b"Subject: hi\n\nunix\nline endings\n", id="lf"),
    pytest.param(b"Subject: mix\r\n\r\na\rb\nc\r\nd\r\r\ne\n\rf", id="cr-lf-mixture-no-final-eol"),
    pytest.param(b"Subject: cr\r\n\r\nends with a bare CR\r", id="trailing-cr"),
    pytest.param(
        b".first line starts with a dot\r\n..two dots\r\n.\r\nnot . a dot line\r\n.\r\n",
        id="leading-dots",
    ),
    pytest.param(b"Subject: dots\n\n.\n..\n...\n.end", id="dot-lines-lf"),
    pytest.param(b"Subject: 8bit\r\n\r\ncaf\xc3\xa9 na\xc3\xafve \xe9\xff\r\n", id="8bit"),
    pytest.param("Subject: str\r\n\r\nGrüße, ñandú ✓\n", id="str-non-ascii"),
    pytest.param(b"", id="empty"),
    pytest.param(b"x" * 998 + b"\r\n" + b"." + b"y" * 997, id="998-octet-lines"),
]


def as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


@pytest.mark.parametrize("body", BODIES)
async def test_message_body(flavor: Flavor, smtpd: SMTPServer, body: bytes | str) -> None:
    result = await flavor.send_ok(SENDER, [RCPT], message=body, **smtpd.client_options())
    assert len(smtpd.messages) == 1
    got = smtpd.handler.last()
    assert got.content == canonical(as_bytes(body))
    assert (got.mail_from, got.rcpt_tos) == (SENDER, (RCPT,))
    assert result.accepted == (RCPT,)
    assert result.result.reply is not None
    assert result.result.reply.code == 250


@pytest.mark.parametrize("body", [p for p in BODIES if isinstance(p.values[0], bytes)])
async def test_message_file(flavor: Flavor, smtpd: SMTPServer, tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(body)
    await flavor.send_ok(SENDER, RCPT, message_file=path, **smtpd.client_options())
    assert [m.content for m in smtpd.messages] == [canonical(body)]


@pytest.mark.parametrize("body", [p for p in BODIES if isinstance(p.values[0], bytes)])
async def test_file_handle(flavor: Flavor, smtpd: SMTPServer, tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(body)
    with path.open("rb") as handle:
        await flavor.send_ok(SENDER, RCPT, file_handle=handle, **smtpd.client_options())
        # The caller's handle is the caller's to close.
        assert not handle.closed
    assert [m.content for m in smtpd.messages] == [canonical(body)]


def big_body() -> bytes:
    """~300 kB over several 64 kB reads, with dot lines and every kind of line
    break landing on read boundaries somewhere."""
    pieces = []
    for i in range(6000):
        pieces.append(b"." if i % 7 == 0 else b"")
        pieces.append(b"line %d \xc3\xa9" % i)
        pieces.append((b"\r\n", b"\n", b"\r", b"\r\n")[i % 4])
    return b"".join(pieces)


@pytest.mark.parametrize("source", ["file", "handle", "bytesio", "bytes"])
async def test_large_streamed_body(
    flavor: Flavor, smtpd: SMTPServer, tmp_path: Path, source: str
) -> None:
    body = big_body()
    path = tmp_path / "big.eml"
    path.write_bytes(body)
    options = smtpd.client_options()
    if source == "file":
        await flavor.send_ok(SENDER, RCPT, message_file=str(path), **options)
    elif source == "handle":
        with path.open("rb") as handle:
            await flavor.send_ok(SENDER, RCPT, file_handle=handle, **options)
    elif source == "bytesio":
        await flavor.send_ok(SENDER, RCPT, file_handle=io.BytesIO(body), **options)
    else:
        await flavor.send_ok(SENDER, RCPT, message=body, **options)
    assert len(smtpd.messages) == 1
    assert smtpd.handler.last().content == canonical(body)


# -- EmailMessage ----------------------------------------------------------------------------


def ascii_email() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "Alice <alice@example.test>"
    msg["To"] = "Bob <bob@example.test>, carol@example.test"
    msg["Cc"] = "dave@example.test"
    msg["Bcc"] = "eve@example.test"
    msg["Subject"] = "Plain ASCII"
    msg.set_content(".a line starting with a dot\nbare LF\nbare CR\rCRLF\r\n.\nlast")
    return msg


def utf8_email() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <jörg@example.test>"
    msg["To"] = "José <josé@example.test>"
    msg["Subject"] = "Grüße aus Köln ✓"
    msg.set_content("Ünïcödé body ✓\n.dot line\n", cte="8bit")
    return msg


def eight_bit_email() -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "alice@example.test"
    msg["To"] = "bob@example.test"
    msg["Subject"] = "8-bit body"
    msg.set_content("café crème\r\nnaïve\n", cte="8bit")
    return msg


def multipart_email() -> email.message.EmailMessage:
    msg = ascii_email()
    msg.add_attachment(b"\x00\x01binary\xff" * 50, maintype="application", subtype="octet-stream")
    # A fixed boundary: otherwise each serialisation draws a random one.
    msg.set_boundary("==smtpcore-test-boundary==")
    return msg


async def test_email_message_derives_envelope_and_drops_bcc(
    flavor: Flavor, smtpd: SMTPServer
) -> None:
    msg = ascii_email()
    await flavor.send_ok(message=msg, **smtpd.client_options())
    got = smtpd.handler.last()
    assert got.mail_from == "alice@example.test"
    assert got.rcpt_tos == (
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
        "eve@example.test",
    )
    assert got.content == expected_email_bytes(msg)
    assert b"eve@example.test" not in got.content
    # The caller's message is left alone.
    assert msg["Bcc"] == "eve@example.test"


@pytest.mark.parametrize(
    ("make", "utf8", "body_option"),
    [
        pytest.param(utf8_email, True, "BODY=8BITMIME", id="smtputf8"),
        pytest.param(eight_bit_email, False, "BODY=8BITMIME", id="8bit-body"),
        pytest.param(multipart_email, False, None, id="multipart"),
    ],
)
async def test_email_message(
    flavor: Flavor,
    smtpd: SMTPServer,
    make: Callable[[], email.message.EmailMessage],
    utf8: bool,
    body_option: str | None,
) -> None:
    msg = make()
    await flavor.send_ok(message=msg, **smtpd.client_options())
    got = smtpd.handler.last()
    assert got.content == expected_email_bytes(msg, utf8=utf8)
    assert ("SMTPUTF8" in got.mail_options) is utf8
    if body_option is not None:
        assert body_option in got.mail_options
    if utf8:
        assert got.mail_from == "jörg@example.test"
        assert got.rcpt_tos == ("josé@example.test",)


async def test_explicit_envelope_overrides_headers(flavor: Flavor, smtpd: SMTPServer) -> None:
    msg = ascii_email()
    await flavor.send_ok(
        "bounce@example.test", ["only@example.test"], message=msg, **smtpd.client_options()
    )
    got = smtpd.handler.last()
    assert (got.mail_from, got.rcpt_tos) == ("bounce@example.test", ("only@example.test",))
    assert got.content == expected_email_bytes(msg)


async def test_non_ascii_envelope_with_bytes_body(flavor: Flavor, smtpd: SMTPServer) -> None:
    body = "From: jörg@example.test\r\nSubject: ✓\r\n\r\nhi\r\n".encode()
    await flavor.send_ok(
        "jörg@example.test", ["josé@example.test"], message=body, **smtpd.client_options()
    )
    got = smtpd.handler.last()
    assert "SMTPUTF8" in got.mail_options
    assert (got.mail_from, got.rcpt_tos) == ("jörg@example.test", ("josé@example.test",))
    assert got.content == body


async def test_size_declared(flavor: Flavor, smtpd: SMTPServer) -> None:
    body = b"Subject: size\n\nfour\nlines\n"
    await flavor.send_ok(SENDER, RCPT, message=body, **smtpd.client_options())
    # RFC 1870: SIZE= is the size of the canonical (CRLF) message.
    assert f"SIZE={len(canonical(body))}" in smtpd.handler.last().mail_options


# -- transports and AUTH ---------------------------------------------------------------------

TRANSPORTS = [
    # (server mode, client tls policy, auth mechanism or None)
    pytest.param("plain", "none", None, id="plain"),
    pytest.param("starttls", "starttls", None, id="starttls"),
    pytest.param("starttls", "opportunistic", None, id="starttls-opportunistic"),
    pytest.param("implicit", "implicit", None, id="implicit-tls"),
    pytest.param("starttls", "starttls", "PLAIN", id="starttls-auth-plain"),
    pytest.param("starttls", "starttls", "LOGIN", id="starttls-auth-login"),
    pytest.param("implicit", "implicit", "PLAIN", id="implicit-auth-plain"),
    pytest.param("implicit", "implicit", "LOGIN", id="implicit-auth-login"),
]


@pytest.mark.parametrize(("mode", "policy", "mechanism"), TRANSPORTS)
async def test_transport(
    flavor: Flavor,
    start_smtpd: Callable[..., SMTPServer],
    tls: TLSMaterial,
    mode: str,
    policy: str,
    mechanism: str | None,
) -> None:
    server = start_smtpd(
        mode=mode,
        tls=tls,
        auth=mechanism is not None,
        # aiosmtpd only counts STARTTLS as TLS when deciding to offer AUTH.
        auth_require_tls=mode != "implicit",
    )
    server.handler.users = {"user@example.test": "correct horse ✓"}
    options = server.client_options(tls=policy)
    if mechanism is not None:
        options.update(auth=("user@example.test", "correct horse ✓"), auth_mechanisms=[mechanism])
    body = b"Subject: over " + mode.encode() + b"\r\n\r\nbody\r\n"
    await flavor.send_ok(SENDER, RCPT, message=body, **options)
    got = server.handler.last()
    assert got.content == body
    assert got.tls is (mode != "plain")
    assert got.authenticated is (mechanism is not None)
    if mechanism is not None:
        assert server.handler.logins == [(mechanism, b"user@example.test", True)]


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
@pytest.mark.parametrize("source", ["bytes", "file"])
async def test_large_body_over_tls(
    flavor: Flavor,
    start_smtpd: Callable[..., SMTPServer],
    tls: TLSMaterial,
    tmp_path: Path,
    mode: str,
    source: str,
) -> None:
    # 3 MB: more than the kernel's socket buffers take at once, so TLS
    # writes wait for room and the server's reads see partial records.
    server = start_smtpd(mode=mode, tls=tls)
    body = b"".join(b"line %06d of a long message over TLS\r\n" % i for i in range(80_000))
    options = server.client_options(tls=mode)
    if source == "file":
        path = tmp_path / "big.eml"
        path.write_bytes(body)
        await flavor.send_ok(SENDER, RCPT, message_file=str(path), **options)
    else:
        await flavor.send_ok(SENDER, RCPT, message=body, **options)
    got = server.handler.last()
    assert got.tls
    assert got.content == body


async def test_insecure_auth_when_allowed(
    flavor: Flavor, start_smtpd: Callable[..., SMTPServer]
) -> None:
    server = start_smtpd(auth=True, auth_require_tls=False)
    await flavor.send_ok(
        SENDER,
        RCPT,
        message=b"hi\r\n",
        **server.client_options(auth=("u", "p"), allow_insecure_auth=True),
    )
    assert server.handler.last().authenticated
    assert not server.handler.last().tls


# -- a property ------------------------------------------------------------------------------

body_text = st.lists(
    st.sampled_from([b"a", b"b", b".", b"..", b"\r", b"\n", b"\r\n", b"\xc3\xa9", b" "]),
    max_size=40,
).map(b"".join)


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=body_text)
async def test_any_body_round_trips(flavor: Flavor, smtpd: SMTPServer, body: bytes) -> None:
    before = len(smtpd.messages)
    await flavor.send_ok(SENDER, RCPT, message=body, **smtpd.client_options())
    assert len(smtpd.messages) == before + 1
    assert smtpd.handler.last().content == canonical(body)
