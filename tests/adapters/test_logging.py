"""Logging the way a library should, on every adapter.

* ``smtpcore.wire`` shows each line of the conversation at DEBUG, redacted
  as the transcript is, with the client's ``name`` as ``smtp_client``.
* ``smtpcore.client`` carries the name as that attribute only, never in the
  message text.
* An application that configured no logging sees nothing on stderr (the
  ``smtpcore`` logger has a NullHandler); one that did sees the warnings.
* A session keeps no transcript nobody asked for, wire log or not.
"""

from __future__ import annotations

import base64
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from servers import LOOPBACK, WAIT, Flavor, SMTPServer

from smtpcore import AuthenticationError, SMTPError, TranscriptEntry

pytestmark = pytest.mark.anyio

SENDER = "alice@example.test"
RCPT = "bob@example.test"
BODY = b"Subject: logging\r\n\r\nthe body line\r\n"
NAME = "relay-7"
USER, PASSWORD = "user@example.test", "s3cret-Pa55w0rd"
#: Every form of the password that must never be logged (RFC 4616 PLAIN,
#: LOGIN's base64).
SECRETS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode(),
)


def wire(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "smtpcore.wire"]


async def test_the_wire_at_debug(
    flavor: Flavor, smtpd: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpcore")
    await flavor.send_ok(SENDER, RCPT, message=BODY, **smtpd.client_options(name=NAME))
    records = wire(caplog)
    lines = [r.getMessage() for r in records]
    assert lines[0].startswith("<- 220 ")
    assert lines[1] == "-> EHLO localhost"
    assert any(line.startswith(f"-> MAIL FROM:<{SENDER}>") for line in lines)
    assert f"-> RCPT TO:<{RCPT}>" in lines
    assert any(line.startswith("<- 250 ") for line in lines)
    assert lines[-2] == "-> QUIT"
    assert lines[-1].startswith("<- 221 ")
    # Message data is summarised, as in the transcript.
    assert not any("the body line" in line for line in lines)
    assert any(line.startswith("-> [message data: ") for line in lines)
    assert {r.levelno for r in records} == {logging.DEBUG}
    assert {getattr(r, "smtp_client", None) for r in records} == {NAME}
    assert all(getattr(r, "smtp_direction", None) == r.getMessage()[:2] for r in records)


async def test_the_wire_shows_message_data_when_asked(
    flavor: Flavor, smtpd: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpcore.wire")
    await flavor.send_ok(SENDER, RCPT, message=BODY, **smtpd.client_options(log_message_data=True))
    lines = [r.getMessage() for r in wire(caplog)]
    start = lines.index("-> Subject: logging")
    assert lines[start : start + 4] == ["-> Subject: logging", "-> ", "-> the body line", "-> ."]


@pytest.mark.parametrize("transaction_log", [False, True], ids=["wire-only", "with-transcript"])
async def test_the_wire_log_is_the_transcript(
    flavor: Flavor,
    smtpd: SMTPServer,
    caplog: pytest.LogCaptureFixture,
    transaction_log: bool,
) -> None:
    """The same lines, once each: the transcript the caller asked for stays
    whole; one kept only for the wire log is dropped as it is logged."""
    caplog.set_level(logging.DEBUG, logger="smtpcore.wire")
    options = smtpd.client_options(name=NAME, transaction_log=transaction_log)
    async with flavor.client(**options) as handle:
        for _ in range(2):
            await handle.send_message(SENDER, RCPT, message=BODY)
        kept: tuple[TranscriptEntry, ...] = handle.client.transcript
    logged = [r.getMessage() for r in wire(caplog)]
    assert sum(line.startswith(f"-> MAIL FROM:<{SENDER}>") for line in logged) == 2
    if transaction_log:
        assert logged[:-2] == [str(entry) for entry in kept]  # then QUIT, 221
        assert logged[-2] == "-> QUIT"
    else:
        assert kept == ()
        assert handle.client.transcript == ()


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG], ids=["info", "debug"])
async def test_no_transcript_unless_asked(
    flavor: Flavor, smtpd: SMTPServer, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    caplog.set_level(level, logger="smtpcore")
    async with flavor.client(**smtpd.client_options()) as handle:
        await handle.send_message(SENDER, RCPT, message=BODY)
        assert handle.client.transcript == ()
        assert handle.client.session.transcript == []
    assert handle.client.transcript == ()
    assert bool(wire(caplog)) is (level == logging.DEBUG)


async def test_the_client_name_is_an_attribute_not_text(
    flavor: Flavor, smtpd: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpcore")
    async with flavor.client(**smtpd.client_options(name=NAME)) as handle:
        await handle.send_message(SENDER, RCPT, message=BODY)
    records = [r for r in caplog.records if r.name.startswith("smtpcore.")]
    assert {r.name for r in records} == {"smtpcore.client", "smtpcore.wire"}
    for record in records:
        assert getattr(record, "smtp_client", None) == NAME
        assert NAME not in record.getMessage()
    # The client's own story, not the reprs of the session's events.
    client = [r.getMessage() for r in records if r.name == "smtpcore.client"]
    assert client
    assert not any("Received(" in text or "Accepted(" in text for text in client), client


async def test_a_session_that_ends_in_error_says_why(
    flavor: Flavor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpcore.client")
    with EchoingServer(greeting=b"554 5.3.2 not today\r\n") as server:
        await flavor.send(
            SENDER,
            RCPT,
            message=BODY,
            on_failure=lambda *args: None,
            **server.client_options(name=NAME),
        )
    ended = [r.getMessage() for r in caplog.records if r.name == "smtpcore.client"]
    assert any(text.startswith("session ended: ") and "554" in text for text in ended), ended


# -- secrets -------------------------------------------------------------------


class EchoingServer:
    """One connection's worth of SMTP that refuses AUTH with a 535 quoting
    everything the client sent for it, base64 and decoded (RFC 4954 4 lets
    a server echo; the client must still log none of it)."""

    def __init__(self, *, greeting: bytes = b"220 echo.test ESMTP\r\n") -> None:
        self.greeting = greeting
        self.received: list[bytes] = []
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(WAIT)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> EchoingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(WAIT)
        self._listener.close()

    def client_options(self, **overrides: Any) -> dict[str, Any]:
        return {"server": LOOPBACK, "port": self.port, "tls": "none", **overrides}

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        conn.settimeout(WAIT)
        with conn, conn.makefile("rwb") as stream:
            stream.write(self.greeting)
            stream.flush()
            for reply in self._replies(iter(stream.readline, b"")):
                stream.write(reply)
                stream.flush()

    def _replies(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        auth: list[bytes] = []  # the lines of an AUTH exchange so far
        login = False  # LOGIN sends two responses, PLAIN one
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            self.received.append(line)
            words = line.split(b" ")
            verb = words[0].upper()
            if auth:
                auth.append(line)
            elif verb == b"AUTH":
                auth = [line]
                login = words[1].upper() == b"LOGIN"
            elif verb in (b"EHLO", b"HELO"):
                yield b"250-echo.test\r\n250 AUTH PLAIN LOGIN\r\n"
                continue
            elif verb == b"QUIT":
                yield b"221 2.0.0 bye\r\n"
                return
            else:
                yield b"503 5.5.1 no\r\n"
                continue
            responses = [*auth[0].split(b" ")[2:], *auth[1:]]
            if len(responses) < (2 if login else 1):
                # "Username:" and "Password:" in base64; PLAIN's is empty.
                prompt = (b"UGFzc3dvcmQ6" if responses else b"VXNlcm5hbWU6") if login else b""
                yield b"334 " + prompt + b"\r\n"
                continue
            echo = [b"you sent " + sent for sent in auth]
            echo += [b"decoded " + base64.b64decode(r).replace(b"\0", b" ") for r in responses]
            yield b"".join(b"535-5.7.8 " + text + b"\r\n" for text in echo)
            yield b"535 5.7.8 credentials invalid: " + b" ".join(responses) + b"\r\n"
            auth = []


@pytest.mark.parametrize("transaction_log", [False, True], ids=["wire-only", "with-transcript"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_echoed_credentials_never_reach_the_log(
    flavor: Flavor, caplog: pytest.LogCaptureFixture, mechanism: str, transaction_log: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    failures: list[SMTPError] = []
    with EchoingServer() as server:
        await flavor.send(
            SENDER,
            RCPT,
            message=BODY,
            on_failure=lambda context, error, *rest: failures.append(error),
            **server.client_options(
                auth=(USER, PASSWORD),
                auth_mechanisms=[mechanism],
                allow_insecure_auth=True,
                transaction_log=transaction_log,
                name=NAME,
            ),
        )
    [error] = failures
    assert isinstance(error, AuthenticationError)
    # The password did go out, and came back.
    assert any(line.startswith(b"AUTH " + mechanism.encode()) for line in server.received)
    lines = [r.getMessage() for r in wire(caplog)]
    assert f"-> AUTH {mechanism} <redacted>" in lines or f"-> AUTH {mechanism}" in lines
    assert any(line.startswith("<- 535") and "<redacted>" in line for line in lines), lines
    shown = [caplog.text]
    for record in caplog.records:
        shown += [record.getMessage(), repr(record.args), repr(vars(record))]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text


# -- nothing on stderr unless the application asks ------------------------------


@pytest.mark.parametrize("configured", [False, True], ids=["no-logging", "basicConfig"])
def test_a_library_warning_goes_where_the_application_says(
    flavor: Flavor, configured: bool
) -> None:
    """Without logging configured, a warning must not reach stderr through
    Python's last-resort handler; ``logging.basicConfig()`` shows it."""
    code = "\n".join(
        [
            "import logging",
            "logging.basicConfig()" if configured else "",
            f"import {flavor.module.__name__} as adapter",
            "adapter.Client('127.0.0.1', dangerously_skip_tls_verification=True)",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    if configured:
        assert "WARNING:smtpcore:TLS certificate verification is DISABLED" in done.stderr
    else:
        assert done.stderr == ""
