"""Tests for smtpcore.Session: whole conversations, byte for byte.

Every conversation runs through :func:`scripted.converse`, which drives a
fresh session twice, with the server's chunks fed whole and one octet at a
time, checks the exact client bytes at every step of the script, and checks
that both runs produce the same client bytes, events and transcript.

Expected bytes come from the RFCs (5321, 2920, 3207, 4954, 2033, 3030, 1870,
6152, 6531, 5802), never from the implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from re import compile as re_compile
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted import (
    EOF,
    HANDSHAKE_FAIL,
    HANDSHAKE_OK,
    TIMEOUT,
    Job,
    MiniServer,
    Run,
    Script,
    Step,
    converse,
    drive,
    make_session,
    norm,
    serve,
)

import smtpcore
from smtpcore import (
    Authenticated,
    AuthenticationError,
    BodyType,
    Close,
    CommandCompleted,
    ConfigurationError,
    ConnectionLostError,
    Credentials,
    GreetingReceived,
    Idle,
    LocalProtocolError,
    MessageAccepted,
    MessageContentError,
    MessageFailed,
    MessageProbed,
    NeedBody,
    Noop,
    OutgoingMessage,
    PermanentReplyError,
    QuitAfter,
    Read,
    RecipientResult,
    RecipientsRefusedError,
    RemoteProtocolError,
    Reply,
    ReplyError,
    ServerReady,
    Session,
    SessionClosed,
    SessionConfig,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    StartTLSAction,
    TemporaryReplyError,
    TLSError,
    TLSEstablished,
    TLSPolicy,
    TLSRequiredError,
    Vrfy,
    Write,
)

E = TypeVar("E")


def examples(n: int) -> int:
    """``n`` Hypothesis examples, or more under a longer profile
    (``HYPOTHESIS_PROFILE=long``)."""
    return max(n, settings().max_examples)


# -- the cast ------------------------------------------------------------------

CLIENT = "client.example.com"
SENDER = "alice@example.com"
BOB = "bob@example.org"
CAROL = "carol@example.org"
DAVE = "dave@example.org"

GREETING = b"220 mx.example.org ESMTP ready\r\n"
EHLO = b"EHLO client.example.com\r\n"
HELO = b"HELO client.example.com\r\n"
LHLO = b"LHLO client.example.com\r\n"
STARTTLS = b"STARTTLS\r\n"
QUIT = b"QUIT\r\n"
RSET = b"RSET\r\n"
DATA = b"DATA\r\n"
DOT = b".\r\n"
OK = b"250 2.0.0 ok\r\n"
GO = b"354 go ahead\r\n"
BYE = b"221 2.0.0 bye\r\n"
QUEUED = b"250 2.0.0 queued as 1234\r\n"
READY_TLS = b"220 2.0.0 ready to start TLS\r\n"

BODY = b"Subject: test\r\n\r\nHello\r\n"
WIRE = BODY + DOT  # BODY needs neither canonicalisation nor dot-stuffing

USER = "alice"
PASSWORD = "s3cr3t-Passw0rd"
CREDS = Credentials(username=USER, password=PASSWORD)


def ehlo_reply(*keywords: str, domain: str = "mx.example.org") -> bytes:
    """A 250 reply to EHLO: the domain line, then one line per keyword."""
    lines = [domain, *keywords]
    out = b"".join(b"250-" + line.encode() + b"\r\n" for line in lines[:-1])
    return out + b"250 " + lines[-1].encode() + b"\r\n"


def config(**kwargs: object) -> SessionConfig:
    """A config for tests: our hostname, no TLS unless asked, and every RCPT
    reply reported as it comes (``recipient_events``)."""
    kwargs.setdefault("local_hostname", CLIENT)
    kwargs.setdefault("recipient_events", True)
    kwargs.setdefault("tls", TLSPolicy.NONE)
    return SessionConfig(**kwargs)  # type: ignore[arg-type]


def message(
    *recipients: str, body: bytes | None = BODY, sender: str = SENDER, **kwargs: object
) -> OutgoingMessage:
    return OutgoingMessage.build(
        sender=sender,
        recipients=recipients or (BOB,),
        message=body,
        **kwargs,  # type: ignore[arg-type]
    )


def mail(sender: str = SENDER, params: str = "") -> bytes:
    return f"MAIL FROM:<{sender}>{params}\r\n".encode()


def rcpt(recipient: str) -> bytes:
    return f"RCPT TO:<{recipient}>\r\n".encode()


def envelope(*recipients: str, sender: str = SENDER, params: str = "") -> bytes:
    """MAIL, the RCPTs and DATA, as one pipelined group (RFC 2920 3.1)."""
    return mail(sender, params) + b"".join(rcpt(r) for r in recipients) + DATA


def opening(*keywords: str) -> list[Step]:
    """Greeting and EHLO."""
    return [(b"", GREETING), (EHLO, ehlo_reply(*keywords))]


QUIT_STEP: Step = (QUIT, BYE)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


PLAIN_IR = b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
AUTH_PLAIN = b"AUTH PLAIN " + PLAIN_IR + b"\r\n"


def names(run: Run) -> list[str]:
    return [type(e).__name__ for e in run.events]


def closed(run: Run) -> SessionClosed:
    """The one SessionClosed event, which must be the last event."""
    found = run.of_type(SessionClosed)
    assert len(found) == 1, names(run)
    assert run.events[-1] is found[0]
    assert isinstance(run.final, Close)
    return found[0]


def only(run: Run, cls: type[E]) -> E:
    found = run.of_type(cls)
    assert len(found) == 1, names(run)
    return found[0]


def failed(run: Run) -> MessageFailed:
    return only(run, MessageFailed)


def accepted(run: Run) -> MessageAccepted:
    return only(run, MessageAccepted)


def timeout_stage(run: Run) -> Stage:
    """The stage of the last Read the session asked for."""
    reads = [a for a in run.actions if isinstance(a, Read)]
    return reads[-1].stage


# -- the conversation table: every way a session can end early -----------------

PLAIN_EHLO = ehlo_reply()  # no extensions at all: one command per write
AUTH_EHLO = ehlo_reply("PIPELINING", "AUTH PLAIN LOGIN")
TLS_EHLO = ehlo_reply("PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN")
LOGIN_USER = b64(USER.encode()) + b"\r\n"
LOGIN_PASS = b64(PASSWORD.encode()) + b"\r\n"


@dataclass(frozen=True)
class Case:
    """A conversation that ends with an error (or a clean close)."""

    id: str
    script: Script
    events: tuple[str, ...]
    error: type[SMTPError] | None
    cfg: SessionConfig = field(default_factory=config)
    jobs: tuple[Job, ...] = field(default_factory=lambda: (message(),))
    stage: Stage | None = None
    # Bytes that must never be written in this conversation.
    forbid: tuple[bytes, ...] = ()


FAIL = ("MessageFailed", "SessionClosed")
AFTER_EHLO = ("GreetingReceived", "ServerReady")
NO_TXN = (b"MAIL", b"RCPT", b"DATA")

REQUIRED = config(tls=TLSPolicy.STARTTLS, credentials=CREDS)
OPPORTUNISTIC = config(tls=TLSPolicy.OPPORTUNISTIC)
IMPLICIT_AUTH = config(tls=TLSPolicy.IMPLICIT, credentials=CREDS)
LOGIN_ONLY = config(tls=TLSPolicy.IMPLICIT, credentials=CREDS, auth_mechanisms=("LOGIN",))


def _starttls(reply: bytes, cfg: SessionConfig = REQUIRED) -> Case:
    # RFC 3207 4: anything but 220 means no TLS; with TLS required the session
    # ends before a single AUTH or MAIL byte (and says QUIT, which is safe).
    return Case(
        f"starttls-required-refused-{reply[:3].decode()}",
        [(b"", GREETING), (EHLO, TLS_EHLO), (STARTTLS, reply), QUIT_STEP],
        (*AFTER_EHLO, *FAIL),
        TLSRequiredError,
        cfg=cfg,
        forbid=(*NO_TXN, b"AUTH"),
    )


def _injection(case_id: str, steps: list[Step], cfg: SessionConfig) -> Case:
    # RFC 3207 4.2 / CVE-2011-0411 / "NO STARTTLS" (USENIX Security 2021):
    # plaintext after the 220 to STARTTLS is an injection attempt.
    return Case(
        case_id,
        [(b"", GREETING), (EHLO, TLS_EHLO), *steps],
        (*AFTER_EHLO, *FAIL),
        RemoteProtocolError,
        cfg=cfg,
        forbid=(*NO_TXN, b"AUTH", b"EHLO client.example.com\r\nEHLO"),
    )


def _auth_case(
    case_id: str,
    steps: list[Step],
    error: type[SMTPError],
    cfg: SessionConfig = IMPLICIT_AUTH,
    ehlo: bytes = AUTH_EHLO,
) -> Case:
    tls = ("TLSEstablished",) if cfg.tls is TLSPolicy.IMPLICIT else ()
    return Case(
        case_id,
        [(b"", GREETING), (EHLO, ehlo), *steps],
        (*tls, *AFTER_EHLO, *FAIL),
        error,
        cfg=cfg,
        forbid=NO_TXN,
    )


def _early(
    case_id: str, steps: list[Step], error: type[SMTPError] | None, stage: Stage | None
) -> Case:
    """A message on a server without extensions (one command per write)."""
    rcpt_seen = ("RecipientResult",) if stage in (Stage.DATA_INIT, Stage.DATA_TERMINATION) else ()
    return Case(
        case_id,
        [(b"", GREETING), (EHLO, PLAIN_EHLO), *steps],
        (*AFTER_EHLO, *rcpt_seen, *FAIL),
        error,
        stage=stage,
    )


TO_MAIL: list[Step] = []
TO_RCPT: list[Step] = [(mail(), OK)]
TO_DATA: list[Step] = [(mail(), OK), (rcpt(BOB), OK)]
TO_DOT: list[Step] = [(mail(), OK), (rcpt(BOB), OK), (DATA, GO)]

CASES = [
    # RFC 5321 3.1 / 4.3.2: 220 opens the session; 554 refuses it and the
    # client should send QUIT; 421 means the server closes.
    Case(
        "greeting-554", [(b"", b"554 5.7.1 no service\r\n"), QUIT_STEP], FAIL, PermanentReplyError
    ),
    Case(
        "greeting-554-multiline",
        [(b"", b"554-5.7.1 no service\r\n554 5.7.1 for you\r\n"), QUIT_STEP],
        FAIL,
        PermanentReplyError,
    ),
    Case(
        "greeting-554-then-eof",
        [(b"", b"554 5.7.1 no\r\n"), (QUIT, EOF)],
        FAIL,
        PermanentReplyError,
    ),
    Case(
        "greeting-421",
        [(b"", b"421 4.3.2 too busy\r\n")],
        ("ServiceClosing", *FAIL),
        TemporaryReplyError,
    ),
    Case("greeting-450", [(b"", b"450 4.3.2 later\r\n"), QUIT_STEP], FAIL, TemporaryReplyError),
    Case("greeting-250", [(b"", b"250 hello?\r\n"), QUIT_STEP], FAIL, PermanentReplyError),
    Case("greeting-timeout", [(b"", TIMEOUT)], FAIL, SMTPTimeoutError, stage=Stage.GREETING),
    Case("greeting-eof", [(b"", EOF)], FAIL, ConnectionLostError, stage=Stage.GREETING),
    Case(
        "greeting-partial-then-eof",
        [(b"", b"220 mx"), (b"", EOF)],
        FAIL,
        ConnectionLostError,
        stage=Stage.GREETING,
    ),
    Case("greeting-http", [(b"", b"HTTP/1.1 400 Bad Request\r\n")], FAIL, RemoteProtocolError),
    Case("greeting-bare-lf", [(b"", b"220 mx.example.org\n")], FAIL, RemoteProtocolError),
    Case("greeting-mixed-codes", [(b"", b"220-mx\r\n250 x\r\n")], FAIL, RemoteProtocolError),
    Case("greeting-endless-line", [(b"", b"220 " + b"x" * 3000)], FAIL, RemoteProtocolError),
    # RFC 5321 4.1.4: HELO is only a fallback for 500/502.
    Case(
        "ehlo-554",
        [(b"", GREETING), (EHLO, b"554 5.7.1 go away\r\n"), QUIT_STEP],
        ("GreetingReceived", *FAIL),
        PermanentReplyError,
        forbid=(HELO,),
    ),
    Case(
        "ehlo-451",
        [(b"", GREETING), (EHLO, b"451 4.3.0 try later\r\n"), QUIT_STEP],
        ("GreetingReceived", *FAIL),
        TemporaryReplyError,
        forbid=(HELO,),
    ),
    Case(
        "ehlo-502-fallback-disabled",
        [(b"", GREETING), (EHLO, b"502 5.5.1 what?\r\n"), QUIT_STEP],
        ("GreetingReceived", *FAIL),
        PermanentReplyError,
        cfg=config(helo_fallback=False),
        forbid=(HELO,),
    ),
    Case(
        "ehlo-500-tls-required",
        [(b"", GREETING), (EHLO, b"500 5.5.1 unknown command\r\n"), QUIT_STEP],
        ("GreetingReceived", *FAIL),
        TLSRequiredError,
        cfg=REQUIRED,
        forbid=(HELO, b"AUTH"),
    ),
    Case(
        "helo-refused-too",
        [(b"", GREETING), (EHLO, b"502 5.5.1 no\r\n"), (HELO, b"550 5.7.1 no\r\n"), QUIT_STEP],
        ("GreetingReceived", *FAIL),
        PermanentReplyError,
    ),
    Case(
        "lhlo-502-never-helo",
        [(b"", GREETING), (LHLO, b"502 5.5.1 no\r\n"), QUIT_STEP],
        ("GreetingReceived", *FAIL),
        PermanentReplyError,
        cfg=config(lmtp=True),
        forbid=(HELO, EHLO),
    ),
    Case(
        "ehlo-421",
        [(b"", GREETING), (EHLO, b"421 4.3.2 shutting down\r\n")],
        ("GreetingReceived", "ServiceClosing", *FAIL),
        TemporaryReplyError,
    ),
    Case(
        "ehlo-timeout",
        [(b"", GREETING), (EHLO, TIMEOUT)],
        ("GreetingReceived", *FAIL),
        SMTPTimeoutError,
        stage=Stage.EHLO,
    ),
    Case(
        "ehlo-eof",
        [(b"", GREETING), (EHLO, EOF)],
        ("GreetingReceived", *FAIL),
        ConnectionLostError,
        stage=Stage.EHLO,
    ),
    Case(
        "ehlo-mixed-codes",
        [(b"", GREETING), (EHLO, b"250-mx.example.org\r\n251 PIPELINING\r\n")],
        ("GreetingReceived", *FAIL),
        RemoteProtocolError,
    ),
    # TLS required: no STARTTLS offered, refused, or a failed handshake ends
    # the session before any AUTH or MAIL byte.
    Case(
        "starttls-required-not-offered",
        [(b"", GREETING), (EHLO, AUTH_EHLO), QUIT_STEP],
        (*AFTER_EHLO, *FAIL),
        TLSRequiredError,
        cfg=REQUIRED,
        forbid=(*NO_TXN, b"AUTH", STARTTLS),
    ),
    _starttls(b"454 4.7.0 TLS not available\r\n"),
    _starttls(b"502 5.5.1 not implemented\r\n"),
    _starttls(b"354 nonsense\r\n"),
    _starttls(b"554 5.7.0 no\r\n"),
    Case(
        "starttls-required-handshake-failed",
        [(b"", GREETING), (EHLO, TLS_EHLO), (STARTTLS, READY_TLS), (b"", HANDSHAKE_FAIL)],
        (*AFTER_EHLO, *FAIL),
        TLSError,
        cfg=REQUIRED,
        forbid=(*NO_TXN, b"AUTH"),
    ),
    Case(
        "starttls-opportunistic-handshake-failed",
        [(b"", GREETING), (EHLO, TLS_EHLO), (STARTTLS, READY_TLS), (b"", HANDSHAKE_FAIL)],
        (*AFTER_EHLO, *FAIL),
        TLSError,
        cfg=OPPORTUNISTIC,
        forbid=NO_TXN,
    ),
    Case(
        "starttls-handshake-timeout",
        [(b"", GREETING), (EHLO, TLS_EHLO), (STARTTLS, READY_TLS), (b"", TIMEOUT)],
        (*AFTER_EHLO, *FAIL),
        SMTPTimeoutError,
        cfg=REQUIRED,
        stage=Stage.TLS_HANDSHAKE,
        forbid=(*NO_TXN, b"AUTH"),
    ),
    Case(
        "starttls-timeout",
        [(b"", GREETING), (EHLO, TLS_EHLO), (STARTTLS, TIMEOUT)],
        (*AFTER_EHLO, *FAIL),
        SMTPTimeoutError,
        cfg=REQUIRED,
        stage=Stage.STARTTLS,
        forbid=(*NO_TXN, b"AUTH"),
    ),
    _injection(
        "starttls-injected-reply",
        [(STARTTLS, b"220 2.0.0 go\r\n250 injected\r\n")],
        REQUIRED,
    ),
    _injection("starttls-injected-fragment", [(STARTTLS, b"220 2.0.0 go\r\n2")], REQUIRED),
    _injection(
        "starttls-injected-before-handshake",
        [(STARTTLS, READY_TLS), (b"", b"250 injected\r\n")],
        REQUIRED,
    ),
    _injection(
        "starttls-injected-opportunistic",
        [(STARTTLS, b"220 2.0.0 go\r\n250-mx\r\n250 AUTH PLAIN\r\n")],
        OPPORTUNISTIC,
    ),
    # RFC 4954: authentication failures are fatal, before any MAIL byte.
    _auth_case(
        "auth-535", [(AUTH_PLAIN, b"535 5.7.8 bad credentials\r\n"), QUIT_STEP], AuthenticationError
    ),
    _auth_case(
        "auth-454", [(AUTH_PLAIN, b"454 4.7.0 try later\r\n"), QUIT_STEP], AuthenticationError
    ),
    _auth_case(
        "auth-without-tls",
        [QUIT_STEP],
        ConfigurationError,
        cfg=config(tls=TLSPolicy.NONE, credentials=CREDS),
    ),
    _auth_case(
        "auth-opportunistic-without-starttls",
        [QUIT_STEP],
        ConfigurationError,
        cfg=config(tls=TLSPolicy.OPPORTUNISTIC, credentials=CREDS),
    ),
    _auth_case("auth-not-offered", [QUIT_STEP], ConfigurationError, ehlo=ehlo_reply("PIPELINING")),
    _auth_case(
        "auth-no-common-mechanism",
        [QUIT_STEP],
        ConfigurationError,
        ehlo=ehlo_reply("AUTH GSSAPI NTLM"),
    ),
    _auth_case(
        "auth-mechanism-not-allowed",
        [QUIT_STEP],
        ConfigurationError,
        cfg=config(tls=TLSPolicy.IMPLICIT, credentials=CREDS, auth_mechanisms=("CRAM-MD5",)),
    ),
    # RFC 4954 4: a challenge that is not base64 is answered with "*".
    _auth_case(
        "auth-bad-base64",
        [
            (b"AUTH LOGIN\r\n", b"334 not*base64!\r\n"),
            (b"*\r\n", b"501 5.7.0 cancelled\r\n"),
            QUIT_STEP,
        ],
        AuthenticationError,
        cfg=LOGIN_ONLY,
    ),
    # A server that keeps challenging is cut off after LOGIN's two steps.
    _auth_case(
        "auth-endless-334",
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (LOGIN_USER, b"334 UGFzc3dvcmQ6\r\n"),
            (LOGIN_PASS, b"334 UGFzc3dvcmQ6\r\n"),
            (b"*\r\n", b"501 5.7.0 cancelled\r\n"),
            QUIT_STEP,
        ],
        AuthenticationError,
        cfg=LOGIN_ONLY,
    ),
    _auth_case(
        "auth-334-after-cancel",
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (LOGIN_USER, b"334 UGFzc3dvcmQ6\r\n"),
            (LOGIN_PASS, b"334 UGFzc3dvcmQ6\r\n"),
            (b"*\r\n", b"334 UGFzc3dvcmQ6\r\n"),
        ],
        AuthenticationError,
        cfg=LOGIN_ONLY,
    ),
    _auth_case(
        "auth-max-auth-steps",
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (LOGIN_USER, b"334 UGFzc3dvcmQ6\r\n"),
            (b"*\r\n", b"501 5.7.0 cancelled\r\n"),
            QUIT_STEP,
        ],
        AuthenticationError,
        cfg=config(
            tls=TLSPolicy.IMPLICIT,
            credentials=CREDS,
            auth_mechanisms=("LOGIN",),
            max_auth_steps=1,
        ),
    ),
    _auth_case("auth-timeout", [(AUTH_PLAIN, TIMEOUT)], SMTPTimeoutError),
    _auth_case("auth-eof", [(AUTH_PLAIN, EOF)], ConnectionLostError),
    # RFC 5321 4.5.3.2: each stage has its timeout; after one, no more bytes.
    _early("mail-timeout", [(mail(), TIMEOUT)], SMTPTimeoutError, Stage.MAIL),
    _early("rcpt-timeout", [*TO_RCPT, (rcpt(BOB), TIMEOUT)], SMTPTimeoutError, Stage.RCPT),
    _early("data-timeout", [*TO_DATA, (DATA, TIMEOUT)], SMTPTimeoutError, Stage.DATA_INIT),
    _early("dot-timeout", [*TO_DOT, (WIRE, TIMEOUT)], SMTPTimeoutError, Stage.DATA_TERMINATION),
    _early("mail-eof", [(mail(), EOF)], ConnectionLostError, Stage.MAIL),
    _early("rcpt-eof", [*TO_RCPT, (rcpt(BOB), EOF)], ConnectionLostError, Stage.RCPT),
    _early("data-eof", [*TO_DATA, (DATA, EOF)], ConnectionLostError, Stage.DATA_INIT),
    _early("dot-eof", [*TO_DOT, (WIRE, EOF)], ConnectionLostError, Stage.DATA_TERMINATION),
    _early(
        "dot-partial-reply-eof",
        [*TO_DOT, (WIRE, b"250 2.0.0 que"), (b"", EOF)],
        ConnectionLostError,
        Stage.DATA_TERMINATION,
    ),
    Case(
        "quit-timeout",
        [(b"", GREETING), (EHLO, PLAIN_EHLO), (QUIT, TIMEOUT)],
        (*AFTER_EHLO, "SessionClosed"),
        SMTPTimeoutError,
        jobs=(),
        stage=Stage.QUIT,
    ),
    Case(
        "quit-eof-is-clean",
        [(b"", GREETING), (EHLO, PLAIN_EHLO), (QUIT, EOF)],
        (*AFTER_EHLO, "SessionClosed"),
        None,
        jobs=(),
    ),
    Case(
        "quit-221-is-clean",
        [(b"", GREETING), (EHLO, PLAIN_EHLO), QUIT_STEP],
        (*AFTER_EHLO, "SessionClosed"),
        None,
        jobs=(),
    ),
    # RFC 5321 3.8: 421 to any command: what is in flight fails, temporarily.
    Case(
        "rcpt-421",
        [*opening("PIPELINING"), (envelope(BOB), OK + b"421 4.4.2 closing\r\n")],
        (*AFTER_EHLO, "ServiceClosing", *FAIL),
        TemporaryReplyError,
    ),
    Case(
        "mail-421-without-pipelining",
        [*opening(), (mail(), b"421 4.4.2 closing\r\n")],
        (*AFTER_EHLO, "ServiceClosing", *FAIL),
        TemporaryReplyError,
    ),
    Case(
        "data-421",
        [*opening("PIPELINING"), (envelope(BOB), OK + OK + b"421 4.4.2 closing\r\n")],
        (*AFTER_EHLO, "RecipientResult", "ServiceClosing", *FAIL),
        TemporaryReplyError,
        forbid=(BODY,),
    ),
    # A reply the parser cannot take ends the session, with nothing more sent.
    Case(
        "rcpt-garbage",
        [*opening("PIPELINING"), (envelope(BOB), OK + b"nonsense\r\n")],
        (*AFTER_EHLO, *FAIL),
        RemoteProtocolError,
        forbid=(BODY,),
    ),
    Case(
        "354-bare-lf",
        [*opening("PIPELINING"), (envelope(BOB), OK + OK + b"354 go\n")],
        (*AFTER_EHLO, "RecipientResult", *FAIL),
        RemoteProtocolError,
        forbid=(BODY,),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conversation_ends(case: Case) -> None:
    run = converse(case.cfg, case.jobs, case.script)
    assert names(run) == list(case.events)
    error = closed(run).error
    if case.error is None:
        assert error is None
    else:
        assert isinstance(error, case.error), repr(error)
        assert run.session.error is error
        # Every queued message fails with its own copy of the error that
        # ended the session, carrying its result.
        for event in run.of_type(MessageFailed):
            assert type(event.error) is type(error)
            assert str(event.error).removesuffix(" (delivery status unknown)") == str(
                error
            ).removesuffix(" (delivery status unknown)")
            assert event.error.result == event.result
            assert event.error.status_unknown is not event.result.status_known
            assert event.result.recipients == () or not event.result.accepted
    for forbidden in case.forbid:
        assert forbidden not in run.client, forbidden
    if case.stage is not None:
        assert isinstance(error, (SMTPTimeoutError, ConnectionLostError))
        assert error.stage is case.stage
        assert error.status_unknown is (case.stage is Stage.DATA_TERMINATION)
        if case.stage is not Stage.TLS_HANDSHAKE:
            assert timeout_stage(run) is case.stage
    for event in run.of_type(MessageFailed):
        # RFC 5321 4.5.3.2.6: after the final dot the outcome is unknown.
        assert event.result.status_known is (case.stage is not Stage.DATA_TERMINATION)
    assert run.session.closed


# -- 1. greeting and negotiation -----------------------------------------------


def test_multiline_greeting_then_ehlo_and_quit() -> None:
    # RFC 5321 4.2: a reply may span lines; every line but the last has "-".
    greeting = b"220-mx.example.org ESMTP\r\n220-no UCE\r\n220 ready\r\n"
    run = converse(config(), [], [(b"", greeting), (EHLO, ehlo_reply("PIPELINING")), QUIT_STEP])
    assert names(run) == ["GreetingReceived", "ServerReady", "SessionClosed"]
    reply = only(run, GreetingReceived).reply
    assert reply.code == 220
    assert reply.lines == (b"mx.example.org ESMTP", b"no UCE", b"ready")
    assert closed(run).error is None
    assert run.client == EHLO + QUIT


@pytest.mark.parametrize("code", [500, 502])
def test_helo_fallback_after_ehlo_refused(code: int) -> None:
    # RFC 5321 4.1.4 / 3.2: a server that does not know EHLO answers 500 or
    # 502; the client falls back to HELO, and then has no extensions at all:
    # one command per write (no PIPELINING).
    refusal = f"{code} 5.5.1 command unrecognized\r\n".encode()
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, refusal),
        (HELO, b"250 mx.example.org\r\n"),
        (mail(), OK),
        (rcpt(BOB), OK),
        (DATA, GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message()], script)
    ready = only(run, ServerReady)
    assert not ready.capabilities.esmtp
    assert not ready.capabilities.pipelining
    assert accepted(run).result.accepted == (BOB,)
    assert closed(run).error is None


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    # RFC 2033 4.1: LHLO, never EHLO/HELO. RFC 2033 4.2: after the data, one
    # reply per recipient that was accepted at RCPT, in RCPT order.
    msg = message(BOB, CAROL, DAVE)
    script: list[Step] = [
        (b"", GREETING),
        (LHLO, ehlo_reply("PIPELINING", "ENHANCEDSTATUSCODES")),
        (
            envelope(BOB, CAROL, DAVE),
            OK + OK + b"550 5.1.1 carol: no such user\r\n" + OK + GO,
        ),
        (WIRE, b"250 2.1.5 bob delivered\r\n452 4.2.2 dave over quota\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(lmtp=True), [msg], script)
    assert [r.recipient for r in run.of_type(RecipientResult)] == [BOB, CAROL, DAVE]
    result = accepted(run).result
    assert result.accepted == (BOB,)
    statuses = {s.recipient: (s.accepted, s.reply and s.reply.code) for s in result.recipients}
    assert statuses == {BOB: (True, 250), CAROL: (False, 550), DAVE: (False, 452)}
    assert [s.recipient for s in result.recipients] == [BOB, CAROL, DAVE]
    assert result.rejected[DAVE].lines == (b"4.2.2 dave over quota",)
    assert closed(run).error is None


def test_lmtp_every_recipient_refused_after_data() -> None:
    # Both recipients were accepted at RCPT and both refused after the data:
    # the message failed, and its data was sent.
    script: list[Step] = [
        (b"", GREETING),
        (LHLO, ehlo_reply("PIPELINING")),
        (envelope(BOB, CAROL), OK + OK + OK + GO),
        (WIRE, b"452 4.2.2 bob over quota\r\n550 5.2.1 carol disabled\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(lmtp=True), [message(BOB, CAROL)], script)
    event = failed(run)
    assert isinstance(event.error, ReplyError)
    assert event.result.accepted == ()
    assert {r: reply.code for r, reply in event.result.rejected.items()} == {BOB: 452, CAROL: 550}
    assert event.result.data_sent
    assert not event.retry_safe
    assert closed(run).error is None


def test_lmtp_refused_sender_with_accepted_recipients() -> None:
    # A broken (or hostile) LMTP server refuses MAIL but accepts both RCPTs
    # and says 354: the client sends the lone terminator, and the server
    # then owes one reply per RCPT it accepted (RFC 2033 4.2). Both must be
    # taken, and the session must go on to a clean QUIT, never crash (the end
    # of data closed the transaction: no RSET is due).
    script: list[Step] = [
        (b"", GREETING),
        (LHLO, ehlo_reply("PIPELINING")),
        (envelope(BOB, CAROL), b"550 5.7.1 sender refused\r\n" + OK + OK + GO),
        (DOT, b"554 5.5.1 bob: no transaction\r\n554 5.5.1 carol: no transaction\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(lmtp=True), [message(BOB, CAROL)], script)
    event = failed(run)
    assert isinstance(event.error, PermanentReplyError)
    assert event.error.command == "MAIL"
    assert closed(run).error is None


# -- 2. capabilities -------------------------------------------------------------


def test_server_ready_reports_capabilities() -> None:
    keywords = (
        "PIPELINING",
        "SIZE 35882577",
        "AUTH PLAIN LOGIN CRAM-MD5",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
        "DSN",
    )
    run = converse(config(), [], [*opening(*keywords), QUIT_STEP])
    ready = only(run, ServerReady)
    caps = ready.capabilities
    assert ready.tls is False
    assert caps.pipelining
    assert caps.eightbitmime
    assert caps.smtputf8
    assert caps.chunking
    assert caps.enhancedstatuscodes
    assert caps.dsn
    assert not caps.starttls
    assert caps.size == 35882577
    assert caps.auth == frozenset({"PLAIN", "LOGIN", "CRAM-MD5"})
    assert caps.domain == "mx.example.org"
    assert run.session.capabilities == caps


# -- 3. TLS policy ----------------------------------------------------------------


def test_tls_none_never_starttls() -> None:
    script: list[Step] = [
        *opening("PIPELINING", "STARTTLS"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(tls=TLSPolicy.NONE), [message()], script)
    assert STARTTLS not in run.client
    assert not run.of_type(TLSEstablished)
    assert only(run, ServerReady).tls is False


def test_opportunistic_upgrades_and_forgets_capabilities() -> None:
    # RFC 3207 4.2: after TLS the client forgets what it learnt and sends
    # EHLO again. The first EHLO offered PIPELINING and SIZE 1000; the second
    # offers neither, so the message (over 1000 octets) goes, one command per
    # write, with no SIZE= parameter.
    body = b"Subject: big\r\n\r\n" + (b"0123456789" * 10 + b"\r\n") * 15
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, ehlo_reply("PIPELINING", "SIZE 1000", "STARTTLS")),
        (STARTTLS, READY_TLS),
        (b"", HANDSHAKE_OK),
        (EHLO, ehlo_reply("ENHANCEDSTATUSCODES")),
        (mail(), OK),
        (rcpt(BOB), OK),
        (DATA, GO),
        (body + DOT, QUEUED),
        QUIT_STEP,
    ]
    cfg = config(tls=TLSPolicy.OPPORTUNISTIC, server_hostname="mx.example.org")
    run = converse(cfg, [message(body=body)], script)
    assert names(run) == [
        "GreetingReceived",
        "ServerReady",
        "TLSEstablished",
        "ServerReady",
        "RecipientResult",
        "MessageAccepted",
        "SessionClosed",
    ]
    before, after = run.of_type(ServerReady)
    assert (before.tls, after.tls) == (False, True)
    assert before.capabilities.size == 1000
    assert after.capabilities.size is None
    assert not after.capabilities.pipelining
    assert run.session.capabilities == after.capabilities
    assert run.session.tls_active
    assert run.handshakes == 1
    [tls_action] = [a for a in run.actions if isinstance(a, StartTLSAction)]
    assert tls_action.server_hostname == "mx.example.org"


def test_opportunistic_without_starttls_stays_plaintext() -> None:
    script = [*opening("PIPELINING"), (envelope(BOB), OK + OK + GO), (WIRE, QUEUED), QUIT_STEP]
    run = converse(config(tls=TLSPolicy.OPPORTUNISTIC), [message()], script)
    assert STARTTLS not in run.client
    assert not run.session.tls_active
    accepted(run)


@pytest.mark.parametrize("refusal", [b"454 4.7.0 TLS not available\r\n", b"502 5.5.1 no\r\n"])
def test_opportunistic_refused_goes_on_in_plaintext(refusal: bytes) -> None:
    # RFC 3207 4: a refused STARTTLS leaves the session as it was: no second
    # EHLO, and the pipelining learnt from the first one still holds.
    script: list[Step] = [
        *opening("PIPELINING", "STARTTLS"),
        (STARTTLS, refusal),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(tls=TLSPolicy.OPPORTUNISTIC), [message()], script)
    assert run.client.count(EHLO) == 1
    assert not run.of_type(TLSEstablished)
    accepted(run)


def test_implicit_tls_never_starttls() -> None:
    # RFC 8314 3.3: TLS from the first byte; STARTTLS offered inside it is
    # meaningless and must not be sent.
    script: list[Step] = [
        *opening("PIPELINING", "STARTTLS"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(tls=TLSPolicy.IMPLICIT), [message()], script)
    assert STARTTLS not in run.client
    assert names(run)[:3] == ["TLSEstablished", "GreetingReceived", "ServerReady"]
    assert only(run, ServerReady).tls is True
    assert run.handshakes == 0


def test_starttls_required_then_auth_then_mail() -> None:
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, TLS_EHLO),
        (STARTTLS, READY_TLS),
        (b"", HANDSHAKE_OK),
        (EHLO, AUTH_EHLO),
        (AUTH_PLAIN, b"235 2.7.0 authenticated\r\n"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(REQUIRED, [message()], script)
    assert names(run) == [
        "GreetingReceived",
        "ServerReady",
        "TLSEstablished",
        "ServerReady",
        "Authenticated",
        "RecipientResult",
        "MessageAccepted",
        "SessionClosed",
    ]
    assert only(run, Authenticated).mechanism == "PLAIN"
    # Nothing secret or transactional before the handshake.
    handshake_at = run.client.index(STARTTLS) + len(STARTTLS)
    assert b"AUTH" not in run.client[:handshake_at]
    assert b"MAIL" not in run.client[:handshake_at]


# -- 4. AUTH ------------------------------------------------------------------------


def test_auth_plain_exchange() -> None:
    # RFC 4616 2: authzid NUL authcid NUL passwd; RFC 4954 4: sent as the
    # initial response, base64.
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, AUTH_EHLO),
        (AUTH_PLAIN, b"235 2.7.0 Authentication successful\r\n"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(IMPLICIT_AUTH, [message()], script)
    assert only(run, Authenticated).mechanism == "PLAIN"
    assert AUTH_PLAIN == b"AUTH PLAIN AGFsaWNlAHMzY3IzdC1QYXNzdzByZA==\r\n"
    accepted(run)


def test_auth_login_exchange() -> None:
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, AUTH_EHLO),
        (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
        (b"YWxpY2U=\r\n", b"334 UGFzc3dvcmQ6\r\n"),
        (b"czNjcjN0LVBhc3N3MHJk\r\n", b"235 2.7.0 ok\r\n"),
        QUIT_STEP,
    ]
    run = converse(LOGIN_ONLY, [], script)
    assert only(run, Authenticated).mechanism == "LOGIN"
    assert closed(run).error is None


def test_auth_without_tls_when_explicitly_allowed() -> None:
    cfg = config(tls=TLSPolicy.NONE, credentials=CREDS, allow_insecure_auth=True)
    script = [(b"", GREETING), (EHLO, AUTH_EHLO), (AUTH_PLAIN, b"235 2.7.0 ok\r\n"), QUIT_STEP]
    run = converse(cfg, [], script)
    assert only(run, Authenticated).mechanism == "PLAIN"


def test_auth_failure_error_is_precise() -> None:
    run = converse(
        IMPLICIT_AUTH,
        [message()],
        [(b"", GREETING), (EHLO, AUTH_EHLO), (AUTH_PLAIN, b"454 4.7.0 try later\r\n"), QUIT_STEP],
    )
    error = closed(run).error
    assert isinstance(error, AuthenticationError)
    assert error.temporary
    assert error.reply is not None
    assert error.reply.code == 454
    assert failed(run).retry_safe


# SCRAM-SHA-256 (RFC 5802, RFC 7677), computed here from the RFC's formulas.
SCRAM_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SCRAM_SERVER_NONCE = SCRAM_NONCE + "3rfcNHYJY1ZVvWVs7j"
SCRAM_SALT = b"salt-for-alice!!"
SCRAM_ITERATIONS = 4096
SCRAM_CLIENT_FIRST_BARE = f"n={USER},r={SCRAM_NONCE}".encode()
SCRAM_SERVER_FIRST = (
    f"r={SCRAM_SERVER_NONCE},s=".encode() + b64(SCRAM_SALT) + f",i={SCRAM_ITERATIONS}".encode()
)
SCRAM_WITHOUT_PROOF = f"c=biws,r={SCRAM_SERVER_NONCE}".encode()


def _scram() -> tuple[bytes, bytes]:
    """The client-final-message and the server signature (RFC 5802 3)."""
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SCRAM_SALT, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    auth_message = b",".join((SCRAM_CLIENT_FIRST_BARE, SCRAM_SERVER_FIRST, SCRAM_WITHOUT_PROOF))
    client_signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    server_signature = hmac.new(server_key, auth_message, "sha256").digest()
    return SCRAM_WITHOUT_PROOF + b",p=" + b64(proof), server_signature


SCRAM_CLIENT_FINAL, SCRAM_SIGNATURE = _scram()
SCRAM_GOOD_FINAL = b"v=" + b64(SCRAM_SIGNATURE)
SCRAM_BAD_FINAL = b"v=" + b64(bytes(32))
SCRAM_CFG = config(tls=TLSPolicy.IMPLICIT, credentials=CREDS, auth_mechanisms=("SCRAM-SHA-256",))
SCRAM_OPEN: list[Step] = [
    (b"", GREETING),
    (EHLO, ehlo_reply("PIPELINING", "AUTH SCRAM-SHA-256 PLAIN")),
    (
        b"AUTH SCRAM-SHA-256 " + b64(b"n,," + SCRAM_CLIENT_FIRST_BARE) + b"\r\n",
        b"334 " + b64(SCRAM_SERVER_FIRST) + b"\r\n",
    ),
]


@pytest.fixture
def fixed_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    # The session builds its own ScramSHA256, whose nonce comes from
    # secrets.token_urlsafe: fix it so that the exchange is known in advance.
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: SCRAM_NONCE)


SCRAM_CASES = [
    # RFC 4954 4 / RFC 4422 5: the server-final-message as additional data
    # with success on the 235 line...
    pytest.param(
        [(b64(SCRAM_CLIENT_FINAL) + b"\r\n", b"235 " + b64(SCRAM_GOOD_FINAL) + b"\r\n"), QUIT_STEP],
        None,
        id="signature-in-235",
    ),
    # ...or as one more challenge, answered with an empty line.
    pytest.param(
        [
            (b64(SCRAM_CLIENT_FINAL) + b"\r\n", b"334 " + b64(SCRAM_GOOD_FINAL) + b"\r\n"),
            (b"\r\n", b"235 2.7.0 ok\r\n"),
            QUIT_STEP,
        ],
        None,
        id="signature-in-334",
    ),
    # RFC 5802 5: a wrong server signature means the server does not know
    # the password: fail even though it said 235.
    pytest.param(
        [(b64(SCRAM_CLIENT_FINAL) + b"\r\n", b"235 " + b64(SCRAM_BAD_FINAL) + b"\r\n"), QUIT_STEP],
        AuthenticationError,
        id="wrong-signature-in-235",
    ),
    pytest.param(
        [
            (b64(SCRAM_CLIENT_FINAL) + b"\r\n", b"235 2.7.0 Authentication successful\r\n"),
            QUIT_STEP,
        ],
        AuthenticationError,
        id="235-without-signature",
    ),
    pytest.param(
        [
            (b64(SCRAM_CLIENT_FINAL) + b"\r\n", b"334 " + b64(SCRAM_BAD_FINAL) + b"\r\n"),
            (b"*\r\n", b"501 5.7.0 cancelled\r\n"),
            QUIT_STEP,
        ],
        AuthenticationError,
        id="wrong-signature-in-334",
    ),
]


@pytest.mark.usefixtures("fixed_nonce")
@pytest.mark.parametrize(("steps", "error"), SCRAM_CASES)
def test_scram_sha_256(steps: list[Step], error: type[SMTPError] | None) -> None:
    jobs = [] if error is None else [message()]
    run = converse(SCRAM_CFG, jobs, [*SCRAM_OPEN, *steps])
    if error is None:
        assert only(run, Authenticated).mechanism == "SCRAM-SHA-256"
        assert closed(run).error is None
    else:
        assert not run.of_type(Authenticated)
        assert isinstance(closed(run).error, error)
        assert isinstance(failed(run).error, error)
        assert b"MAIL" not in run.client


def _logged(cfg: SessionConfig) -> SessionConfig:
    return config(
        tls=cfg.tls,
        credentials=cfg.credentials,
        auth_mechanisms=cfg.auth_mechanisms,
        allow_insecure_auth=cfg.allow_insecure_auth,
        transaction_log=True,
        log_message_data=True,
    )


SECRET_CONVERSATIONS = [
    pytest.param(
        IMPLICIT_AUTH,
        [
            (AUTH_PLAIN, b"235 2.7.0 ok\r\n"),
            (envelope(BOB), OK + OK + GO),
            (WIRE, QUEUED),
            QUIT_STEP,
        ],
        id="plain-ok",
    ),
    pytest.param(IMPLICIT_AUTH, [(AUTH_PLAIN, b"535 5.7.8 no\r\n"), QUIT_STEP], id="plain-535"),
    pytest.param(
        LOGIN_ONLY,
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (LOGIN_USER, b"334 UGFzc3dvcmQ6\r\n"),
            (LOGIN_PASS, b"235 2.7.0 ok\r\n"),
            (envelope(BOB), OK + OK + GO),
            (WIRE, QUEUED),
            QUIT_STEP,
        ],
        id="login-ok",
    ),
    pytest.param(
        LOGIN_ONLY,
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (LOGIN_USER, b"334 UGFzc3dvcmQ6\r\n"),
            (LOGIN_PASS, b"535 5.7.8 wrong password\r\n"),
            QUIT_STEP,
        ],
        id="login-535",
    ),
    pytest.param(
        LOGIN_ONLY,
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (LOGIN_USER, b"334 UGFzc3dvcmQ6\r\n"),
            (LOGIN_PASS, b"334 more?\r\n"),
            (b"*\r\n", b"501 5.7.0 cancelled\r\n"),
            QUIT_STEP,
        ],
        id="login-bad-base64",
    ),
    pytest.param(
        SCRAM_CFG,
        [
            SCRAM_OPEN[2],
            (b64(SCRAM_CLIENT_FINAL) + b"\r\n", b"235 " + b64(SCRAM_BAD_FINAL) + b"\r\n"),
            QUIT_STEP,
        ],
        id="scram-bad-signature",
    ),
]


@pytest.mark.usefixtures("fixed_nonce")
@pytest.mark.parametrize(("cfg", "steps"), SECRET_CONVERSATIONS)
def test_secrets_never_shown(cfg: SessionConfig, steps: list[Step]) -> None:
    offered = (
        "AUTH PLAIN LOGIN" if cfg.auth_mechanisms is None else "AUTH PLAIN LOGIN SCRAM-SHA-256"
    )
    ehlo = ehlo_reply("PIPELINING", offered)
    run = converse(_logged(cfg), [message()], [(b"", GREETING), (EHLO, ehlo), *steps])
    hidden = [
        PASSWORD,
        b64(PASSWORD.encode()).decode(),
        PLAIN_IR.decode(),
        b64(SCRAM_CLIENT_FINAL).decode(),
        SCRAM_CLIENT_FINAL.decode(),
    ]
    shown = [*run.transcript, repr(run.session.config), str(run.session.config)]
    shown += [repr(e) for e in run.events] + [repr(a) for a in run.actions]
    for event in run.events:
        error = getattr(event, "error", None)
        while error is not None:
            shown += [str(error), repr(error), repr(error.args)]
            error = error.__cause__ or error.__context__
    for text in shown:
        for secret in hidden:
            assert secret not in text, (secret, text)
    # What the transcript shows instead.
    auth_lines = [t for t in run.transcript if t.startswith("-> AUTH")]
    assert auth_lines
    assert all(t.endswith("<redacted>") or t == "-> AUTH LOGIN" for t in auth_lines)
    continued = [t for t in run.transcript if t.startswith("-> ") and t.endswith("<redacted>")]
    assert any(not t.startswith("-> AUTH") for t in continued) == (cfg is not IMPLICIT_AUTH)


# -- 5. transactions ---------------------------------------------------------------


def test_pipelined_transaction_in_one_write_with_recipient_results() -> None:
    # RFC 2920 3.1: MAIL, every RCPT and DATA go out together; the replies
    # come back in order, each bound to its command.
    rcpt_replies = OK + b"550 5.1.1 carol: no such user\r\n" + b"251 2.1.5 dave forwarded\r\n"
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL, DAVE), OK + rcpt_replies + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL, DAVE)], script)
    # The whole envelope is one write (the data may be split as it likes).
    assert run.writes[1].data == envelope(BOB, CAROL, DAVE)
    results = run.of_type(RecipientResult)
    assert [(r.recipient, r.reply.code, r.accepted) for r in results] == [
        (BOB, 250, True),
        (CAROL, 550, False),
        (DAVE, 251, True),
    ]
    assert all(r.message_id == run.ids[0] for r in results)
    result = accepted(run).result
    assert result.message_id == run.ids[0]
    assert result.sender == SENDER
    assert result.accepted == (BOB, DAVE)
    assert dict(result.rejected) == {CAROL: Reply.build(550, "5.1.1 carol: no such user")}
    assert result.reply == Reply.build(250, "2.0.0 queued as 1234")
    assert result.data_sent
    assert result.status_known
    assert result.size >= len(BODY)
    assert [s.recipient for s in result.recipients] == [BOB, CAROL, DAVE]


def test_every_recipient_refused_but_354_sends_lone_terminator() -> None:
    # RFC 2920 3.1: a server that said 354 although every RCPT failed gets
    # the terminator alone: no message can be created, no body byte leaks.
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL), OK + b"550 5.1.1 no bob\r\n" + b"550 5.1.1 no carol\r\n" + GO),
        (DOT, b"554 5.5.1 no valid recipients\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL)], script)
    assert BODY not in run.client
    event = failed(run)
    assert isinstance(event.error, RecipientsRefusedError), repr(event.error)
    assert set(event.error.replies) == {BOB, CAROL}
    assert event.result.accepted == ()
    assert set(event.result.rejected) == {BOB, CAROL}
    assert closed(run).error is None


def test_every_recipient_refused_and_data_refused() -> None:
    # RFC 2920 3.1: the server refuses DATA when no RCPT succeeded.
    script: list[Step] = [
        *opening("PIPELINING"),
        (
            envelope(BOB, CAROL),
            OK
            + b"550 5.1.1 no bob\r\n"
            + b"450 4.2.1 carol busy\r\n"
            + b"554 5.5.1 no valid recipients\r\n",
        ),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL)], script)
    assert BODY not in run.client
    event = failed(run)
    assert isinstance(event.error, RecipientsRefusedError), repr(event.error)
    assert {r: reply.code for r, reply in event.error.replies.items()} == {BOB: 550, CAROL: 450}
    assert event.retry_safe


def test_partial_acceptance_is_accepted_with_rejected_listed() -> None:
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL), OK + OK + b"550 5.1.1 no carol\r\n" + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL)], script)
    result = accepted(run).result
    assert result.accepted == (BOB,)
    assert set(result.rejected) == {CAROL}


@pytest.mark.parametrize("keywords", [("PIPELINING",), ()], ids=["pipelined", "one-by-one"])
def test_require_all_recipients_fails_partial_acceptance(keywords: tuple[str, ...]) -> None:
    server = MiniServer(*keywords, refuse=[CAROL])
    session, ids = make_session(
        config(require_all_recipients=True), [message(BOB, CAROL)], quit=True
    )
    run = serve(session, server)
    assert not run.of_type(MessageAccepted)
    event = failed(run)
    assert event.result.message_id == ids[0]
    assert isinstance(event.error, RecipientsRefusedError)
    assert CAROL in event.error.replies


REQUIRE_ALL_REFUSED = [
    pytest.param(
        [
            *opening("PIPELINING"),
            (mail() + rcpt(BOB) + rcpt(CAROL), OK + OK + b"550 5.1.1 no carol\r\n"),
        ],
        id="pipelined",
    ),
    pytest.param(
        [*opening(), (mail(), OK), (rcpt(BOB), OK), (rcpt(CAROL), b"550 5.1.1 no carol\r\n")],
        id="one-by-one",
    ),
]


@pytest.mark.parametrize("steps", REQUIRE_ALL_REFUSED)
def test_require_all_recipients_delivers_to_no_one(steps: list[Step]) -> None:
    # A message reported failed must not have been delivered to anyone, or
    # a retry (MessageFailed.retry_safe) would duplicate it for the accepted
    # recipients. So DATA waits for every RCPT reply (after a 354 the message
    # cannot be withheld), and is not sent when one is refused.
    script = [*steps, QUIT_STEP]
    run = converse(config(require_all_recipients=True), [message(BOB, CAROL)], script)
    event = failed(run)
    assert isinstance(event.error, RecipientsRefusedError)
    assert event.retry_safe
    assert DATA not in run.client


def test_require_all_recipients_all_accepted() -> None:
    script: list[Step] = [
        *opening("PIPELINING"),
        (mail() + rcpt(BOB) + rcpt(CAROL), OK + OK + OK),
        (DATA, GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(require_all_recipients=True), [message(BOB, CAROL)], script)
    assert accepted(run).result.accepted == (BOB, CAROL)


def test_452_sends_the_rest_in_another_transaction() -> None:
    # RFC 5321 4.5.3.1.10: "452 too many recipients" asks the client to send
    # the remaining recipients in a later transaction.
    too_many = b"452 4.5.3 too many recipients\r\n"
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL, DAVE), OK + OK + too_many + too_many + GO),
        (WIRE, QUEUED),
        (envelope(CAROL, DAVE), OK + OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL, DAVE)], script)
    assert [(r.recipient, r.reply.code) for r in run.of_type(RecipientResult)] == [
        (BOB, 250),
        (CAROL, 452),
        (DAVE, 452),
        (CAROL, 250),
        (DAVE, 250),
    ]
    result = accepted(run).result
    assert result.accepted == (BOB, CAROL, DAVE)
    assert result.rejected == {}
    assert result.reply is not None
    assert result.reply.code == 250


def test_452_for_every_recipient_does_not_loop() -> None:
    too_many = b"452 4.5.3 too many recipients\r\n"
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL), OK + too_many + too_many + b"554 5.5.1 no valid recipients\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL)], script)
    event = failed(run)
    assert event.error.temporary if isinstance(event.error, ReplyError) else False
    assert {r: reply.code for r, reply in event.result.rejected.items()} == {BOB: 452, CAROL: 452}


def test_max_recipients_splits_into_transactions() -> None:
    rcpts = [f"user{i}@example.org" for i in range(1, 6)]
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(*rcpts[0:2]), OK * 3 + GO),
        (WIRE, QUEUED),
        (envelope(*rcpts[2:4]), OK * 3 + GO),
        (WIRE, QUEUED),
        (envelope(rcpts[4]), OK * 2 + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(max_recipients=2), [message(*rcpts)], script)
    assert accepted(run).result.accepted == tuple(rcpts)
    assert run.client.count(b"MAIL FROM") == 3


def test_many_messages_share_round_trips() -> None:
    # RFC 2920 3.1: the end of one message's data and the next envelope go
    # out in the same write (message content may open a group).
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB), OK + OK + GO),
        (WIRE + envelope(CAROL), QUEUED + OK + OK + GO),
        (WIRE + envelope(DAVE), QUEUED + OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    jobs = [message(BOB), message(CAROL), message(DAVE)]
    run = converse(config(), jobs, script)
    results = [e.result for e in run.of_type(MessageAccepted)]
    assert [r.message_id for r in results] == run.ids
    assert [r.accepted for r in results] == [(BOB,), (CAROL,), (DAVE,)]
    # The dot of message 1 and MAIL/RCPT/DATA of message 2 in ONE write.
    writes = [w.data for w in run.writes]
    assert WIRE + envelope(CAROL) in writes, writes
    assert WIRE + envelope(DAVE) in writes, writes


def test_failed_transaction_is_reset_before_the_next() -> None:
    # RFC 5321 4.1.1.5: RSET aborts the transaction; with PIPELINING the
    # next envelope follows it in the same write.
    script: list[Step] = [
        *opening("PIPELINING"),
        (
            envelope(BOB),
            b"550 5.7.1 sender rejected\r\n"
            + b"503 5.5.1 need MAIL\r\n"
            + b"503 5.5.1 need RCPT\r\n",
        ),
        (RSET + envelope(CAROL), OK + OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB), message(CAROL)], script)
    first = failed(run)
    assert isinstance(first.error, PermanentReplyError)
    assert (first.error.command, first.error.code) == ("MAIL", 550)
    assert first.retry_safe
    assert accepted(run).result.accepted == (CAROL,)


def test_failed_transaction_is_reset_without_pipelining() -> None:
    script: list[Step] = [
        *opening(),
        (mail(), b"451 4.3.0 try later\r\n"),
        (RSET, OK),
        (mail(), OK),
        (rcpt(CAROL), OK),
        (DATA, GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB), message(CAROL)], script)
    first = failed(run)
    assert isinstance(first.error, TemporaryReplyError)
    assert first.error.temporary
    assert first.retry_safe
    assert accepted(run).result.accepted == (CAROL,)


def test_user_commands_between_transactions() -> None:
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        (b"NOOP\r\n", OK),
        (b"VRFY postmaster\r\n", b"252 2.1.5 cannot verify\r\n"),
        (envelope(CAROL), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    jobs: list[Job] = [message(BOB), Noop(), Vrfy(string="postmaster"), message(CAROL)]
    run = converse(config(), jobs, script)
    done = run.of_type(CommandCompleted)
    assert [(c.ticket, c.command, c.reply.code) for c in done] == [
        (run.ids[1], Noop(), 250),
        (run.ids[2], Vrfy(string="postmaster"), 252),
    ]
    assert names(run).index("CommandCompleted") > names(run).index("MessageAccepted")
    assert len(set(run.ids)) == 4


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(smtpcore.Quit(), id="quit"),
        pytest.param(smtpcore.Rset(), id="rset"),
        pytest.param(smtpcore.Mail(sender=SENDER), id="mail"),
        pytest.param(smtpcore.Rcpt(recipient=BOB), id="rcpt"),
        pytest.param(smtpcore.Data(), id="data"),
        pytest.param(smtpcore.StartTLS(), id="starttls"),
        pytest.param(smtpcore.Ehlo(domain=CLIENT), id="ehlo"),
    ],
)
def test_session_refuses_commands_it_sequences_itself(command: smtpcore.Command) -> None:
    session = Session(config())
    with pytest.raises(LocalProtocolError, match=command.verb):
        session.command(command)


def test_no_submit_after_quit() -> None:
    session = Session(config())
    session.quit()
    with pytest.raises(LocalProtocolError):
        session.submit(message())
    with pytest.raises(LocalProtocolError):
        session.command(Noop())


@pytest.mark.parametrize(
    ("cfg", "keywords"),
    [
        pytest.param(config(), (), id="not-offered"),
        pytest.param(config(pipelining=False), ("PIPELINING",), id="disabled-by-config"),
    ],
)
def test_without_pipelining_one_command_per_write(
    cfg: SessionConfig, keywords: tuple[str, ...]
) -> None:
    script: list[Step] = [
        *opening(*keywords),
        (mail(), OK),
        (rcpt(BOB), OK),
        (rcpt(CAROL), OK),
        (DATA, GO),
        (WIRE, QUEUED),
        (mail(), OK),
        (rcpt(DAVE), OK),
        (DATA, GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(cfg, [message(BOB, CAROL), message(DAVE)], script)
    assert len(run.of_type(MessageAccepted)) == 2
    for write in run.writes:
        if not write.data.startswith(BODY):
            assert write.data.count(b"\r\n") == 1, write.data


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(b"421 4.3.2 shutting down\r\n", TemporaryReplyError, id="421"),
        pytest.param(b"250 surprise\r\n", RemoteProtocolError, id="unsolicited-250"),
        pytest.param(b"554 go away\r\n", RemoteProtocolError, id="unsolicited-554"),
    ],
)
def test_unsolicited_reply_while_idle(bytewise: bool, data: bytes, error: type[SMTPError]) -> None:
    # RFC 5321 3.8: a server may send 421 at any time and close; any other
    # reply with nothing outstanding is a protocol violation.
    session, _ = make_session(config(), [], quit=False)
    run = drive(session, opening("PIPELINING"), bytewise=bytewise)
    assert isinstance(run.final, Idle)
    for piece in [data[i : i + 1] for i in range(len(data))] if bytewise else [data]:
        session.receive_data(piece)
    assert isinstance(session.next_action(), Close)
    events = list(session.events())
    expected = ["ServiceClosing", "SessionClosed"] if data.startswith(b"421") else ["SessionClosed"]
    assert [type(e).__name__ for e in events] == expected
    end = events[-1]
    assert isinstance(end, SessionClosed)
    assert isinstance(end.error, error)
    if isinstance(end.error, ReplyError):
        assert end.error.temporary
    # Closed for good: no more bytes, whatever else happens.
    session.receive_data(b"250 ok\r\n")
    assert isinstance(session.next_action(), Close)
    with pytest.raises(LocalProtocolError):
        session.submit(message())


def test_421_while_idle_fails_messages_submitted_meanwhile() -> None:
    session, _ = make_session(config(), [], quit=False)
    drive(session, opening("PIPELINING"))
    session.receive_data(b"421 4.3.2 shutting down\r\n")
    session.submit(message())
    assert isinstance(session.next_action(), Close)
    events = list(session.events())
    assert [type(e).__name__ for e in events] == [
        "ServiceClosing",
        "MessageFailed",
        "SessionClosed",
    ]
    event = events[1]
    assert isinstance(event, MessageFailed)
    assert isinstance(event.error, TemporaryReplyError)
    assert event.connection_dropped
    assert event.retry_safe


def test_421_in_reply_to_the_final_dot() -> None:
    # The server answered the dot: the message's fate is known (refused,
    # temporarily), unlike a timeout or EOF after the dot.
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, b"421 4.3.0 shutting down\r\n"),
    ]
    run = converse(config(), [message()], script)
    event = failed(run)
    assert isinstance(event.error, TemporaryReplyError)
    assert event.result.status_known
    assert names(run)[-3:] == ["ServiceClosing", "MessageFailed", "SessionClosed"]


def test_max_recipients_goes_on_after_a_fully_refused_transaction() -> None:
    # The first transaction's recipients were all refused; the others have
    # not been tried yet and must be, not silently dropped.
    rcpts = [f"user{i}@example.org" for i in range(1, 5)]
    no = b"550 5.1.1 no such user\r\n"
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(*rcpts[0:2]), OK + no + no + b"554 5.5.1 no valid recipients\r\n"),
        (RSET + envelope(*rcpts[2:4]), OK + OK + OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(max_recipients=2), [message(*rcpts)], script)
    result = accepted(run).result
    assert result.accepted == tuple(rcpts[2:])
    assert set(result.rejected) == set(rcpts[:2])


# -- 6. cross-message pipelining and round trips -----------------------------------


def _mail_round_trips(run: Run) -> int:
    """Reads from the first MAIL write to the last message event (whole-fed)."""
    first_mail = next(
        i for i, a in enumerate(run.actions) if isinstance(a, Write) and b"MAIL FROM" in a.data
    )
    return sum(1 for a in run.actions[first_mail:] if isinstance(a, Read)) - 1  # minus QUIT


@pytest.mark.parametrize(
    ("keywords", "trips"),
    [
        pytest.param(("PIPELINING",), 2, id="data"),
        pytest.param(("PIPELINING", "CHUNKING"), 1, id="bdat"),
    ],
)
def test_round_trips_for_one_message(keywords: tuple[str, ...], trips: int) -> None:
    # RFC 2920: MAIL, 3 x RCPT and DATA cost one round trip, the data one
    # more; RFC 3030 with BDAT LAST everything is one round trip.
    server = MiniServer(*keywords)
    session, _ = make_session(config(), [message(BOB, CAROL, DAVE)], quit=True)
    run = serve(session, server)
    assert _mail_round_trips(run) == trips
    assert accepted(run).result.accepted == (BOB, CAROL, DAVE)
    assert closed(run).error is None
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    "keywords", [("PIPELINING",), ("PIPELINING", "CHUNKING")], ids=["data", "bdat"]
)
def test_queue_of_messages_costs_one_round_trip_each(keywords: tuple[str, ...]) -> None:
    n = 5
    server = MiniServer(*keywords)
    jobs = [message(f"rcpt{i}@example.org", BOB) for i in range(n)]
    session, ids = make_session(config(), jobs, quit=True)
    run = serve(session, server)
    results = run.of_type(MessageAccepted)
    assert [e.result.message_id for e in results] == ids
    assert _mail_round_trips(run) <= n + 1
    assert len(server.messages) == n
    assert run.reads == _mail_round_trips(run) + 3  # greeting, EHLO, QUIT


def test_queue_without_pipelining_costs_a_round_trip_per_command() -> None:
    server = MiniServer()
    session, _ = make_session(config(), [message(BOB, CAROL), message(DAVE)], quit=True)
    run = serve(session, server)
    # MAIL, RCPT, RCPT, DATA, data / MAIL, RCPT, DATA, data.
    assert _mail_round_trips(run) == 9
    assert len(run.of_type(MessageAccepted)) == 2


# -- 7. bodies ---------------------------------------------------------------------------

UGLY = b"Subject: dots\n\n.hidden\r\nbare\rcr\n..two\n.\nlast"
# RFC 5321 2.3.8: lines end in CRLF; 4.5.2: a line starting with "." gets one
# more; 4.1.1.4: the body ends with CRLF "." CRLF.
UGLY_CANONICAL = b"Subject: dots\r\n\r\n.hidden\r\nbare\r\ncr\r\n..two\r\n.\r\nlast\r\n"
UGLY_WIRE = b"Subject: dots\r\n\r\n..hidden\r\nbare\r\ncr\r\n...two\r\n..\r\nlast\r\n.\r\n"


def test_data_canonicalises_and_dot_stuffs() -> None:
    size = len(UGLY_CANONICAL)
    script: list[Step] = [
        *opening("PIPELINING", "SIZE"),
        (envelope(BOB, params=f" SIZE={size}"), OK + OK + GO),
        (UGLY_WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(body=UGLY)], script)
    accepted(run)


def test_bdat_canonicalises_without_dot_stuffing() -> None:
    # RFC 3030 2: BDAT carries the canonical message, counted, unstuffed.
    size = len(UGLY_CANONICAL)
    head = mail(params=f" SIZE={size}") + rcpt(BOB) + f"BDAT {size} LAST\r\n".encode()
    script: list[Step] = [
        *opening("PIPELINING", "SIZE", "CHUNKING"),
        (head + UGLY_CANONICAL, OK + OK + QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(body=UGLY)], script)
    assert accepted(run).result.accepted == (BOB,)


def test_chunking_disabled_by_config_uses_data() -> None:
    script: list[Step] = [
        *opening("PIPELINING", "CHUNKING"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(chunking=False), [message()], script)
    assert b"BDAT" not in run.client


EIGHT_BIT = b"Subject: caf\xc3\xa9\r\n\r\nd\xc3\xa9j\xc3\xa0 vu\r\n"


@pytest.mark.parametrize(
    ("cfg", "keywords", "bad"),
    [
        pytest.param(
            config(strict_line_endings=True),
            ("PIPELINING",),
            message(body=b"Subject: x\n\nbare LF\r\n"),
            id="strict-bare-lf",
        ),
        pytest.param(
            config(strict_line_endings=True),
            ("PIPELINING",),
            message(body=b"Subject: x\r\n\r\nbare CR\r"),
            id="strict-bare-cr",
        ),
        pytest.param(
            config(), ("PIPELINING",), message(body=EIGHT_BIT), id="8bit-without-8bitmime"
        ),
        pytest.param(
            config(),
            ("PIPELINING", "8BITMIME"),
            message(sender="jörg@example.com"),
            id="utf8-sender-without-smtputf8",
        ),
        pytest.param(
            config(),
            ("PIPELINING", "8BITMIME"),
            message("josé@example.org"),
            id="utf8-recipient-without-smtputf8",
        ),
        pytest.param(
            config(),
            ("PIPELINING", "SIZE 999"),
            message(body=b"x" * 998 + b"\r\n"),
            id="over-size",
        ),
        pytest.param(
            config(),
            ("PIPELINING",),
            message(body=b"Subject: x\r\n\r\n" + b"y" * 999 + b"\r\n"),
            id="line-over-998",
        ),
        pytest.param(
            config(), ("PIPELINING",), message(body=b"Subject: x\r\n\r\nnul\x00\r\n"), id="nul"
        ),
        pytest.param(
            config(),
            ("PIPELINING", "8BITMIME"),
            message(body=BODY, body_type=BodyType.BINARY_MIME),
            id="binarymime-without-chunking",
        ),
    ],
)
def test_unsendable_body_fails_before_mail(
    cfg: SessionConfig, keywords: tuple[str, ...], bad: OutgoingMessage
) -> None:
    # The message fails with nothing of its transaction sent; the session
    # goes on with the next message.
    size = f" SIZE={len(BODY)}" if any(k.startswith("SIZE") for k in keywords) else ""
    good = [(envelope(BOB, params=size), OK + OK + GO), (WIRE, QUEUED), QUIT_STEP]
    run = converse(cfg, [bad, message()], [*opening(*keywords), *good])
    event = failed(run)
    assert isinstance(event.error, MessageContentError), repr(event.error)
    assert event.result.message_id == run.ids[0]
    assert event.retry_safe
    assert not event.result.data_sent
    assert run.client.count(b"MAIL FROM") == 1
    assert accepted(run).result.message_id == run.ids[1]


@pytest.mark.parametrize(
    ("keywords", "body", "params"),
    [
        pytest.param(
            ("PIPELINING", "SIZE 1000"), b"x" * 998 + b"\r\n", " SIZE=1000", id="size-at-limit"
        ),
        pytest.param(("PIPELINING", "SIZE"), BODY, f" SIZE={len(BODY)}", id="size-no-limit"),
        pytest.param(("PIPELINING", "SIZE 100"), b"a\nb", " SIZE=6", id="size-canonical"),
        pytest.param(("PIPELINING",), b"y" * 998 + b"\r\n", "", id="line-of-998"),
        pytest.param(("PIPELINING", "8BITMIME"), EIGHT_BIT, " BODY=8BITMIME", id="8bitmime"),
        pytest.param(("PIPELINING", "8BITMIME"), BODY, "", id="7bit-with-8bitmime"),
        pytest.param(
            ("PIPELINING", "SIZE", "8BITMIME"),
            EIGHT_BIT,
            f" SIZE={len(EIGHT_BIT)} BODY=8BITMIME",
            id="size-and-8bitmime",
        ),
    ],
)
def test_mail_parameters(keywords: tuple[str, ...], body: bytes, params: str) -> None:
    wire = body.replace(b"a\nb", b"a\r\nb\r\n") + DOT
    script: list[Step] = [
        *opening(*keywords),
        (envelope(BOB, params=params), OK + OK + GO),
        (wire, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(body=body)], script)
    accepted(run)


def test_smtputf8_envelope() -> None:
    # RFC 6531 3.4: non-ASCII addresses need SMTPUTF8 on MAIL, sent as UTF-8.
    sender = "jörg@exämple.com"
    recipient = "josé@example.org"
    head = (
        f"MAIL FROM:<{sender}> SMTPUTF8\r\n".encode() + f"RCPT TO:<{recipient}>\r\n".encode() + DATA
    )
    script: list[Step] = [
        *opening("PIPELINING", "8BITMIME", "SMTPUTF8"),
        (head, OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(recipient, sender=sender)], script)
    assert accepted(run).result.accepted == (recipient,)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param(b"554 5.3.4 message too big\r\n", PermanentReplyError, id="554"),
        pytest.param(b"451 4.3.0 try later\r\n", TemporaryReplyError, id="451"),
    ],
)
def test_data_refused_sends_no_body(reply: bytes, error: type[ReplyError]) -> None:
    # RFC 5321 4.1.1.4: message data only after 354.
    script = [*opening("PIPELINING"), (envelope(BOB), OK + OK + reply), QUIT_STEP]
    run = converse(config(), [message()], script)
    assert BODY not in run.client
    assert b"\r\n.\r\n" not in run.client
    event = failed(run)
    assert isinstance(event.error, error)
    assert event.error.command == "DATA"
    assert event.retry_safe


STREAM = b"line1\n.dot\r\nline3"
STREAM_WIRE = b"line1\r\n..dot\r\nline3\r\n.\r\n"
CHUNKINGS = [
    pytest.param([STREAM], id="whole"),
    pytest.param([STREAM[i : i + 1] for i in range(len(STREAM))], id="bytewise"),
    pytest.param([b"line1\r", b"\n.dot\r", b"\nline3"], id="split-crlf"),
    pytest.param([b"line1\n", b".", b"dot\r\nline3"], id="split-dot"),
    pytest.param([b"line1\n.dot\r\nline", b"3"], id="split-last-line"),
]


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_streamed_body_over_data(chunks: list[bytes]) -> None:
    msg = message(body=None)
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB), OK + OK + GO),
        (STREAM_WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [msg], script, bodies={1: chunks})
    needs = [a for a in run.actions if isinstance(a, NeedBody)]
    assert len(needs) == len(chunks) + 1
    assert all(a.message_id == run.ids[0] and a.size_hint > 0 for a in needs)
    # The body is asked for only after the 354.
    first_need = run.actions.index(needs[0])
    assert any(isinstance(a, Read) for a in run.actions[:first_need])
    assert accepted(run).result.data_sent


def test_streamed_body_declares_size_hint_and_8bitmime() -> None:
    # A streamed body's content is unknown: BODY=8BITMIME whenever offered,
    # SIZE= from the caller's hint.
    msg = message(body=None, size_hint=123)
    head = envelope(BOB, params=" SIZE=123 BODY=8BITMIME")
    script: list[Step] = [
        *opening("PIPELINING", "SIZE", "8BITMIME"),
        (head, OK + OK + GO),
        (STREAM_WIRE, QUEUED),
        QUIT_STEP,
    ]
    converse(config(), [msg], script, bodies={1: [STREAM]})


def test_streamed_8bit_without_8bitmime_aborts_without_terminator() -> None:
    # RFC 5321 4.1.1.4: there is no way to cancel DATA; closing the
    # connection without the final dot makes the server discard the message.
    msg = message(body=None)
    script = [*opening("PIPELINING"), (envelope(BOB), OK + OK + GO)]
    run = converse(
        config(), [msg], script, bodies={1: [b"hello\r\n", b"caf\xc3\xa9\r\n"]}, tail=b"hello\r\n"
    )
    event = failed(run)
    assert isinstance(event.error, MessageContentError)
    assert event.result.data_sent
    assert not event.retry_safe
    assert isinstance(closed(run).error, MessageContentError)


@pytest.mark.parametrize(
    ("chunks", "wire"),
    [
        pytest.param(
            [b"abc\n", b"defg\r\n"],
            b"BDAT 5\r\nabc\r\nBDAT 6\r\ndefg\r\nBDAT 0 LAST\r\n",
            id="ends-with-newline",
        ),
        pytest.param([b"abc"], b"BDAT 3\r\nabcBDAT 2 LAST\r\n\r\n", id="no-final-newline"),
        pytest.param(
            [b"a\r", b"\nb\n"],
            b"BDAT 3\r\na\r\nBDAT 3\r\nb\r\nBDAT 0 LAST\r\n",
            id="crlf-split",
        ),
    ],
)
def test_streamed_body_over_bdat(chunks: list[bytes], wire: bytes) -> None:
    # RFC 3030 2: each chunk is announced with its exact octet count; the
    # last one (possibly empty) carries LAST. A streamed body is only sent
    # once a recipient is known to be accepted.
    n = wire.count(b"BDAT")
    replies = b"".join(f"250 2.0.0 chunk {i} ok\r\n".encode() for i in range(n - 1)) + QUEUED
    script: list[Step] = [
        *opening("PIPELINING", "CHUNKING"),
        (mail() + rcpt(BOB), OK + OK),
        (wire, replies),
        QUIT_STEP,
    ]
    run = converse(config(), [message(body=None)], script, bodies={1: chunks})
    assert accepted(run).result.accepted == (BOB,)


def test_refused_bdat_chunk_stops_the_body() -> None:
    # RFC 3030 4.2: after a refused chunk the client sends no more chunks of
    # the message (and resets before any next MAIL).
    from smtpcore._session import MAX_BDAT_IN_FLIGHT

    chunk = b"line\r\n"
    framed = b"BDAT 6\r\n" + chunk
    script: list[Step] = [
        *opening("PIPELINING", "CHUNKING"),
        (mail() + rcpt(BOB), OK + OK),
        (
            framed * MAX_BDAT_IN_FLIGHT,
            b"554 5.6.0 content rejected\r\n"
            + b"503 5.5.1 no transaction\r\n" * (MAX_BDAT_IN_FLIGHT - 1),
        ),
        QUIT_STEP,
    ]
    run = converse(config(), [message(body=None)], script, bodies={1: [chunk] * 50})
    assert b"LAST" not in run.client
    event = failed(run)
    assert isinstance(event.error, PermanentReplyError)
    assert event.error.code == 554
    assert closed(run).error is None


# -- 9. transcript -------------------------------------------------------------------------


def test_transcript_in_order_with_secrets_redacted() -> None:
    cfg = config(tls=TLSPolicy.IMPLICIT, credentials=CREDS, transaction_log=True)
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, AUTH_EHLO),
        (AUTH_PLAIN, b"235 2.7.0 ok\r\n"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(cfg, [message()], script)
    assert run.transcript[:10] == [
        "<- 220 mx.example.org ESMTP ready",
        "-> EHLO client.example.com",
        "<- 250-mx.example.org",
        "<- 250-PIPELINING",
        "<- 250 AUTH PLAIN LOGIN",
        "-> AUTH PLAIN <redacted>",
        "<- 235 2.7.0 ok",
        "-> MAIL FROM:<alice@example.com>",
        "-> RCPT TO:<bob@example.org>",
        "-> DATA",
    ]
    assert run.transcript[10:13] == ["<- 250 2.0.0 ok", "<- 250 2.0.0 ok", "<- 354 go ahead"]
    # Message data is summarised unless asked for.
    assert run.transcript[13].startswith("-> [")
    assert "octets" in run.transcript[13]
    assert "Hello" not in " ".join(run.transcript)
    assert run.transcript[14:] == [
        "-> .",
        "<- 250 2.0.0 queued as 1234",
        "-> QUIT",
        "<- 221 2.0.0 bye",
    ]
    assert all(t.startswith(("<- ", "-> ")) for t in run.transcript)


def test_transcript_with_message_data() -> None:
    cfg = config(transaction_log=True, log_message_data=True)
    script = [*opening("PIPELINING"), (envelope(BOB), OK + OK + GO), (WIRE, QUEUED), QUIT_STEP]
    run = converse(cfg, [message()], script)
    start = run.transcript.index("<- 354 go ahead") + 1
    assert run.transcript[start : start + 4] == ["-> Subject: test", "-> ", "-> Hello", "-> ."]


def test_no_transcript_by_default() -> None:
    script = [*opening("PIPELINING"), (envelope(BOB), OK + OK + GO), (WIRE, QUEUED), QUIT_STEP]
    run = converse(config(), [message()], script)
    assert run.transcript == []


def test_take_transcript_hands_the_lines_over_once() -> None:
    # What the wire log of a long-lived connection does: each line is
    # handed over once, and the session keeps none of them.
    session = Session(config(transaction_log=True))
    assert isinstance(session.next_action(), Read)
    session.receive_data(GREETING)
    action = session.next_action()
    assert isinstance(action, Write)
    assert action.data == EHLO
    taken = session.take_transcript()
    assert [str(e) for e in taken] == [
        "<- 220 mx.example.org ESMTP ready",
        "-> EHLO client.example.com",
    ]
    assert session.transcript == []
    assert session.take_transcript() == []
    session.receive_data(ehlo_reply("PIPELINING"))
    assert isinstance(session.next_action(), Idle)
    assert [str(e) for e in session.take_transcript()] == [
        "<- 250-mx.example.org",
        "<- 250 PIPELINING",
    ]
    assert [str(e) for e in taken] == [  # what was taken stays as it was
        "<- 220 mx.example.org ESMTP ready",
        "-> EHLO client.example.com",
    ]


def test_take_transcript_without_a_transaction_log() -> None:
    session = Session(config())
    session.next_action()
    session.receive_data(GREETING)
    session.next_action()
    assert session.take_transcript() == []
    assert session.transcript == []


# -- 10. quit_after ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage", [QuitAfter.CONNECT, QuitAfter.EHLO, QuitAfter.TLS, QuitAfter.AUTH], ids=str
)
def test_quit_after_before_mail_refuses_messages(stage: QuitAfter) -> None:
    session = Session(config(quit_after=stage))
    with pytest.raises(ConfigurationError, match="stops before any message"):
        session.submit(message())


def test_quit_after_stages_before_mail() -> None:
    # The core says which stages leave no room for a message; the adapters
    # and the CLI ask it instead of keeping their own list.
    before = {q for q in QuitAfter if q.before_mail}
    assert before == {QuitAfter.CONNECT, QuitAfter.EHLO, QuitAfter.TLS, QuitAfter.AUTH}


def test_quit_after_connect() -> None:
    run = converse(config(quit_after=QuitAfter.CONNECT), [], [(b"", GREETING), QUIT_STEP])
    assert run.client == QUIT
    assert closed(run).error is None


def test_quit_after_ehlo() -> None:
    run = converse(config(quit_after=QuitAfter.EHLO), [], [*opening("PIPELINING"), QUIT_STEP])
    assert run.client == EHLO + QUIT
    assert not run.of_type(MessageProbed)
    assert closed(run).error is None


def test_quit_after_tls() -> None:
    cfg = config(tls=TLSPolicy.OPPORTUNISTIC, quit_after=QuitAfter.TLS)
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, TLS_EHLO),
        (STARTTLS, READY_TLS),
        (b"", HANDSHAKE_OK),
        (EHLO, AUTH_EHLO),
        QUIT_STEP,
    ]
    run = converse(cfg, [], script)
    assert b"MAIL" not in run.client
    assert b"AUTH" not in run.client
    assert closed(run).error is None


def test_quit_after_auth() -> None:
    cfg = config(tls=TLSPolicy.IMPLICIT, credentials=CREDS, quit_after=QuitAfter.AUTH)
    script = [(b"", GREETING), (EHLO, AUTH_EHLO), (AUTH_PLAIN, b"235 2.7.0 ok\r\n"), QUIT_STEP]
    run = converse(cfg, [], script)
    assert only(run, Authenticated).mechanism == "PLAIN"
    assert b"MAIL" not in run.client


@pytest.mark.parametrize("mail_reply", [OK, b"550 5.7.1 sender refused\r\n"], ids=["250", "550"])
def test_quit_after_mail(mail_reply: bytes) -> None:
    script = [*opening("PIPELINING"), (mail(), mail_reply), QUIT_STEP]
    run = converse(config(quit_after=QuitAfter.MAIL), [message(BOB, CAROL)], script)
    assert b"RCPT" not in run.client
    assert DATA not in run.client
    probe = only(run, MessageProbed).result
    assert not probe.data_sent
    assert closed(run).error is None


@pytest.mark.parametrize("keywords", [("PIPELINING",), ()], ids=["pipelined", "one-by-one"])
def test_quit_after_rcpt_reports_each_recipient(keywords: tuple[str, ...]) -> None:
    no = b"550 5.1.1 no such user\r\n"
    if keywords:
        steps: list[Step] = [(mail() + rcpt(BOB) + rcpt(CAROL), OK + OK + no)]
    else:
        steps = [(mail(), OK), (rcpt(BOB), OK), (rcpt(CAROL), no)]
    run = converse(
        config(quit_after=QuitAfter.RCPT),
        [message(BOB, CAROL)],
        [*opening(*keywords), *steps, QUIT_STEP],
    )
    assert DATA not in run.client
    probe = only(run, MessageProbed).result
    # MessageProbed: "The result holds each recipient's RCPT reply."
    assert [(s.recipient, s.accepted, s.reply and s.reply.code) for s in probe.recipients] == [
        (BOB, True, 250),
        (CAROL, False, 550),
    ]
    assert not probe.data_sent
    assert closed(run).error is None


# -- properties: any server behaviour --------------------------------------------------------

MARKER = b"BODYMARKER"
MARKED_BODY = b"Subject: fuzz\r\n\r\n" + MARKER + b"\r\n"
_CODES = st.one_of(
    st.sampled_from(
        [220, 235, 250, 250, 250, 251, 334, 354, 354, 421, 452, 454, 500, 502, 550, 554]
    ),
    st.integers(200, 599),
)
_TEXT = st.text(alphabet="abcXYZ0123 .-=+/", max_size=12)


def _reply_bytes(code: int, texts: list[str]) -> bytes:
    lines = [f"{code}-{t}" for t in texts[:-1]] + [f"{code} {texts[-1]}"]
    return "".join(line + "\r\n" for line in lines).encode()


_KEYWORDS = st.lists(
    st.sampled_from(
        [
            "PIPELINING",
            "STARTTLS",
            "SIZE 100",
            "SIZE",
            "8BITMIME",
            "CHUNKING",
            "AUTH PLAIN LOGIN",
            "SMTPUTF8",
        ]
    ),
    unique=True,
    max_size=5,
)
_ITEM = st.one_of(
    st.builds(_reply_bytes, _CODES, st.lists(_TEXT, min_size=1, max_size=3)),
    st.builds(_reply_bytes, _CODES, st.lists(_TEXT, min_size=1, max_size=1)),
    _KEYWORDS.map(lambda kws: ehlo_reply(*kws)),
    st.binary(min_size=1, max_size=12),
    st.sampled_from([b"\r\n", b"\n", b"250 ok\n", b"354 go\r", b"250-", b"220 go\r\n2"]),
)
# The server's turns: mostly one reply per Read (so that the conversation
# gets somewhere), sometimes several at once, sometimes junk.
_TURNS = st.tuples(
    st.sampled_from([GREETING, GREETING, b"554 no\r\n", b""]),
    st.one_of(_KEYWORDS.map(lambda kws: ehlo_reply(*kws)), st.just(b"")),
    st.lists(
        st.one_of(
            st.sampled_from(
                [OK, OK, OK, OK, OK, GO, GO, b"235 ok\r\n", READY_TLS, b"334 \r\n", BYE]
            ),
            st.sampled_from([OK, OK, OK, OK, GO, QUEUED]),
            _ITEM,
            st.lists(_ITEM, min_size=2, max_size=4).map(b"".join),
        ),
        max_size=20,
    ),
).map(lambda t: [x for x in (t[0], t[1], *t[2]) if x])
_SIZES = st.lists(st.integers(1, 48), max_size=16)


def _split(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """Cut ``data`` into pieces of the given sizes (cycling; whole if none)."""
    if not sizes:
        return [data]
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        pieces.append(data[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return pieces


_354 = re_compile(rb"(?:^|\r\n)354[ \r-]")


def _fuzz(
    cfg: SessionConfig,
    turns: Sequence[bytes],
    sizes: Sequence[int],
    *,
    end_with_eof: bool,
    handshake: str,
) -> tuple[bytes, Session]:
    """Drive a session with one queued message against the server's
    ``turns`` (each cut into pieces of ``sizes``, one piece per Read); check
    the invariants at every step; return everything the client wrote."""
    session, _ = make_session(cfg, [message(BOB, CAROL, body=MARKED_BODY)], quit=True)
    pieces = [piece for turn in turns for piece in _split(turn, sizes)]
    fed = bytearray()
    client = bytearray()
    ended = 0
    for _ in range(10_000):
        action = session.next_action()
        list(session.events())
        if isinstance(action, Write):
            # After a fatal error, at most a QUIT goes out.
            if session.error is not None:
                assert action.data == QUIT, action.data
            before = len(client)
            client += action.data
            at = client.find(MARKER)
            if at >= before or (at >= 0 and at + len(MARKER) > before):
                # RFC 5321 4.1.1.4 / RFC 3030 2: body octets follow a 354
                # to DATA, or a BDAT command.
                data_at = client.find(DATA)
                bdat_at = client.find(b"BDAT ")
                assert (0 <= data_at < at and _354.search(bytes(fed))) or 0 <= bdat_at < at
        elif isinstance(action, Read):
            if pieces:
                piece = pieces.pop(0)
                fed += piece
                session.receive_data(piece)
            else:
                ended += 1
                assert ended <= 2, "the session keeps reading after the end of input"
                if end_with_eof:
                    session.receive_data(b"")
                else:
                    session.timeout_expired()
        elif isinstance(action, StartTLSAction):
            if handshake == "ok":
                session.tls_established()
            elif handshake == "fail":
                session.tls_failed("bad certificate")
            elif pieces:
                piece = pieces.pop(0)
                fed += piece
                session.receive_data(piece)
            else:
                session.timeout_expired()
        elif isinstance(action, NeedBody):
            raise AssertionError("in-memory bodies are never asked for")
        else:
            assert isinstance(action, Close), action
            break
    else:
        raise AssertionError("the session never closed")
    # Closed for good.
    session.receive_data(b"250 more\r\n")
    session.timeout_expired()
    assert isinstance(session.next_action(), Close)
    assert list(session.events()) == []
    return bytes(client), session


_CONFIGS = st.builds(
    config,
    tls=st.sampled_from([TLSPolicy.NONE, TLSPolicy.NONE, *TLSPolicy]),
    credentials=st.sampled_from([None, None, None, CREDS]),
    allow_insecure_auth=st.booleans(),
    pipelining=st.booleans(),
    chunking=st.booleans(),
    lmtp=st.booleans(),
    max_recipients=st.sampled_from([None, 1]),
)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=_CONFIGS,
    turns=_TURNS,
    sizes=_SIZES,
    end_with_eof=st.booleans(),
    handshake=st.sampled_from(["ok", "fail", "data"]),
)
def test_any_server_stream_ends_in_events_not_exceptions(
    cfg: SessionConfig, turns: list[bytes], sizes: list[int], end_with_eof: bool, handshake: str
) -> None:
    client, session = _fuzz(cfg, turns, sizes, end_with_eof=end_with_eof, handshake=handshake)
    if not session.tls_active and cfg.tls.required:
        assert b"MAIL" not in client
        assert b"AUTH" not in client


@settings(max_examples=examples(150), deadline=None)
@given(
    turns=_TURNS,
    sizes=_SIZES,
    end_with_eof=st.booleans(),
    handshake=st.sampled_from(["fail", "data"]),
    credentials=st.sampled_from([None, CREDS]),
)
def test_tls_required_never_sends_mail_or_auth_in_plaintext(
    turns: list[bytes],
    sizes: list[int],
    end_with_eof: bool,
    handshake: str,
    credentials: Credentials | None,
) -> None:
    # RFC 3207 / RFC 8314: with TLS required and no handshake completed, not
    # one byte of AUTH or of a transaction may be written, whatever the
    # server says (a STARTTLS-stripping attacker says anything).
    cfg = config(tls=TLSPolicy.STARTTLS, credentials=credentials, allow_insecure_auth=True)
    client, session = _fuzz(cfg, turns, sizes, end_with_eof=end_with_eof, handshake=handshake)
    assert not session.tls_active
    for forbidden in (b"MAIL", b"RCPT", b"DATA", b"BDAT", b"AUTH", MARKER):
        assert forbidden not in client


@settings(max_examples=examples(50), deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=20))
def test_chunking_of_a_full_conversation_does_not_matter(sizes: list[int]) -> None:
    # The same conversation, with each server chunk cut anywhere: the same
    # client bytes, events and transcript as when fed whole.
    cfg = config(transaction_log=True, lmtp=True)
    script: list[Step] = [
        (b"", b"220-mx.example.org\r\n220 ESMTP\r\n"),
        (LHLO, ehlo_reply("PIPELINING", "SIZE", "ENHANCEDSTATUSCODES")),
        (
            envelope(BOB, CAROL, DAVE, params=f" SIZE={len(BODY)}"),
            OK + OK + b"550 5.1.1 no carol\r\n" + OK + GO,
        ),
        (WIRE, b"250 2.1.5 bob ok\r\n452-4.2.2 dave\r\n452 4.2.2 over quota\r\n"),
        QUIT_STEP,
    ]
    reference = converse(cfg, [message(BOB, CAROL, DAVE)], script)
    session, _ = make_session(cfg, [message(BOB, CAROL, DAVE)], quit=True)
    run = drive(session, script, split=lambda data: _split(data, sizes))
    assert run.client == reference.client
    assert [norm(e) for e in run.events] == [norm(e) for e in reference.events]
    assert run.transcript == reference.transcript


_PLAUSIBLE = st.lists(
    st.sampled_from(
        [
            OK,
            OK,
            OK,
            OK,
            GO,
            GO,
            QUEUED,
            b"550 5.1.1 no\r\n",
            b"452 4.5.3 full\r\n",
            b"554 5.5.1 no valid recipients\r\n",
            b"451 4.3.0 later\r\n",
            b"421 4.3.2 bye\r\n",
            BYE,
        ]
    ),
    max_size=20,
)


@settings(max_examples=examples(150), deadline=None)
@given(
    keywords=st.lists(st.sampled_from(["PIPELINING", "CHUNKING", "SIZE", "8BITMIME"]), unique=True),
    replies=_PLAUSIBLE,
    sizes=_SIZES,
    pipelining=st.booleans(),
    lmtp=st.booleans(),
    max_recipients=st.sampled_from([None, 1]),
    end_with_eof=st.booleans(),
)
def test_plausible_servers_get_no_body_before_354(
    keywords: list[str],
    replies: list[bytes],
    sizes: list[int],
    pipelining: bool,
    lmtp: bool,
    max_recipients: int | None,
    end_with_eof: bool,
) -> None:
    cfg = config(pipelining=pipelining, lmtp=lmtp, max_recipients=max_recipients)
    turns = [GREETING, ehlo_reply(*keywords), *replies]
    _fuzz(cfg, turns, sizes, end_with_eof=end_with_eof, handshake="fail")


def test_command_takes_a_command_object_not_a_string() -> None:
    session = Session(config())
    with pytest.raises(LocalProtocolError, match="command object such as Noop"):
        session.command("NOOP")  # type: ignore[arg-type]


def test_the_starttls_action_is_not_the_starttls_command() -> None:
    action: object = smtpcore.StartTLSAction
    assert action is not smtpcore.StartTLS
    assert smtpcore.StartTLSAction.__name__ == "StartTLSAction"


# -- secrets a server echoes back (paste into tests/core/test_session.py) --------------


def everything_shown(run: Run) -> list[str]:
    """The transcript, the events, and every error with its reply."""
    shown = [*run.transcript, *(repr(e) for e in run.events), *(str(e) for e in run.events)]
    for event in run.events:
        error = getattr(event, "error", None)
        while error is not None:
            shown += [str(error), repr(error), repr(error.args)]
            reply = getattr(error, "reply", None)
            if reply is not None:
                shown += [reply.describe(), repr(reply)]
            error = error.__cause__ or error.__context__
    return shown


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(b"535 5.7.8 rejected: " + AUTH_PLAIN.rstrip(), id="auth-line"),
        pytest.param(b"535 5.7.8 bad password " + PASSWORD.encode(), id="password"),
        pytest.param(
            b"535-5.7.8 you sent " + PLAIN_IR[:10] + b"\r\n535 5.7.8 " + PLAIN_IR[10:],
            id="wrapped",
        ),
    ],
)
def test_a_535_echoing_the_credentials(echo: bytes) -> None:
    cfg = config(tls=TLSPolicy.IMPLICIT, credentials=CREDS, transaction_log=True)
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, AUTH_EHLO),
        (AUTH_PLAIN, echo + b"\r\n"),
        QUIT_STEP,
    ]
    run = converse(cfg, [message()], script)
    error = closed(run).error
    assert isinstance(error, AuthenticationError)
    assert error.reply is not None
    assert error.reply.code == 535
    assert "<redacted>" in str(error)
    for text in everything_shown(run):
        for secret in (PASSWORD, PLAIN_IR.decode(), PLAIN_IR[:10].decode(), PLAIN_IR[10:].decode()):
            assert secret not in text, (secret, text)


def test_a_334_and_a_501_echoing_the_login_password() -> None:
    cfg = config(
        tls=TLSPolicy.IMPLICIT, credentials=CREDS, auth_mechanisms=("LOGIN",), transaction_log=True
    )
    echoed = LOGIN_PASS.rstrip()
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, AUTH_EHLO),
        (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
        (LOGIN_USER, b"334 UGFzc3dvcmQ6\r\n"),
        (LOGIN_PASS, b"334 " + echoed + b"\r\n"),
        (b"*\r\n", b"501 5.7.0 cancelled " + echoed + b"\r\n"),
        QUIT_STEP,
    ]
    run = converse(cfg, [message()], script)
    for text in everything_shown(run):
        for secret in (PASSWORD, echoed.decode()):
            assert secret not in text, (secret, text)


@pytest.mark.parametrize(
    ("steps", "recipients"),
    [
        pytest.param(
            [
                (
                    envelope(BOB),
                    b"553 5.7.1 not with " + PASSWORD.encode() + b"\r\n"
                    b"503 5.5.1 MAIL first\r\n503 5.5.1 RCPT first\r\n",
                )
            ],
            (BOB,),
            id="mail",
        ),
        pytest.param(
            [
                (
                    envelope(BOB, CAROL),
                    OK + OK + b"550 5.1.1 " + AUTH_PLAIN.rstrip() + b" unknown\r\n" + GO,
                ),
                (WIRE, QUEUED),
            ],
            (BOB, CAROL),
            id="rcpt",
        ),
        pytest.param(
            [(envelope(BOB), OK + OK + GO), (WIRE, b"554 5.6.0 you sent " + PLAIN_IR + b"\r\n")],
            (BOB,),
            id="end-of-data",
        ),
    ],
)
def test_a_transaction_reply_echoing_the_credentials_without_a_transcript(
    steps: list[Step], recipients: tuple[str, ...]
) -> None:
    # Without transaction_log, replies take the session's quick path to
    # their handlers: once AUTH has sent a secret, every later reply (a
    # refused MAIL, RCPT or end of data echoing it) must still be scrubbed
    # in the events, the results and the errors (RFC 4954 4).
    cfg = config(tls=TLSPolicy.IMPLICIT, credentials=CREDS, transaction_log=False)
    script: list[Step] = [
        (b"", GREETING),
        (EHLO, AUTH_EHLO),
        (AUTH_PLAIN, b"235 2.7.0 ok\r\n"),
        *steps,
        QUIT_STEP,
    ]
    run = converse(cfg, [message(*recipients)], script)
    shown = everything_shown(run)
    for event in run.events:
        result = getattr(event, "result", None)
        if result is not None:
            shown += [repr(r.reply) for r in result.recipients] + [repr(result.reply)]
    assert any("<redacted>" in text for text in shown)
    for text in shown:
        for secret in (PASSWORD, PLAIN_IR.decode(), b64(PASSWORD.encode()).decode()):
            assert secret not in text, (secret, text)


@pytest.mark.usefixtures("fixed_nonce")
def test_a_scram_transcript_is_no_password_verifier() -> None:
    # RFC 5802 9: salt, iteration count, nonces and a proof or signature let
    # password guesses be checked offline; the transcript keeps the shape only.
    cfg = config(
        tls=TLSPolicy.IMPLICIT,
        credentials=CREDS,
        auth_mechanisms=("SCRAM-SHA-256",),
        transaction_log=True,
    )
    final = b"235 2.7.0 " + b64(SCRAM_GOOD_FINAL) + b"\r\n"
    script: list[Step] = [*SCRAM_OPEN, (b64(SCRAM_CLIENT_FINAL) + b"\r\n", final), QUIT_STEP]
    run = converse(cfg, [], script)
    assert [t for t in run.transcript if "<redacted>" in t] == [
        f"-> AUTH SCRAM-SHA-256 n,,n={USER},r=<redacted>",
        "<- 334 r=<redacted>,s=<redacted>,i=<redacted>",
        "-> c=biws,r=<redacted>,p=<redacted>",
        "<- 235 2.7.0 v=<redacted>",
    ]
    text = "\n".join(run.transcript)
    for value in (SCRAM_SERVER_NONCE, b64(SCRAM_SALT).decode(), b64(SCRAM_SIGNATURE).decode()):
        assert value not in text
    assert f"i={SCRAM_ITERATIONS}" not in text
