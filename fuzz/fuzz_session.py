"""Fuzz harness: a whole :class:`smtpcore.Session` against a fuzzed server.

The input is a list of records (:func:`fuzz.fuzzlib.records`), in the manner
of curl's ``curl_fuzzer_smtp``: one ``OPTIONS`` record for what the caller
configures, ``BODY`` records for the messages submitted up front, and the
server's side of the conversation, consumed in order as the session asks:

=========  ====  ===============================================================
record     type  meaning
=========  ====  ===============================================================
OPTIONS    0x01  caller options, one octet each (see :class:`Options`)
BODY       0x02  the body of one more message submitted up front (at most 3)
SERVER     0x03  bytes for the next read; an empty value is EOF
TIMEOUT    0x04  the next read (or handshake) times out
TLS_OK     0x05  the next TLS handshake succeeds
TLS_FAIL   0x06  the next TLS handshake fails
CALL       0x07  a caller action at the next read: value[0] % 4 is 0 submit a
                 message (body value[1:]), 1 NOOP, 2 VRFY, 3 quit()
WRITE_FAIL 0x08  the next Write fails partway: value[0] bit 1 a time-out (else
                 a reset); value[1:3] how many octets left, big-endian
                 (0xFFFF: the adapter cannot tell; more than the Write: all);
                 value[3:] what the server had sent, read without waiting and
                 given to the session before the failure
=========  ====  ===============================================================

When the records run out, every further read gets EOF and every handshake
fails, so each input ends. A record that does not fit what the session asks
(a TLS result while it reads) is skipped. The harness never misuses the API:
it starts TLS only when asked, feeds bodies only for the message asked for
(from its first chunk again when ``NeedBody.restart`` says so), and submits
nothing after quit().

Oracle (any exception escaping a public method of the session is a failure
too, LocalProtocolError included, since the harness uses the API correctly):

* the session reaches Close within :data:`MAX_ACTIONS` actions; it never
  answers Idle while it still has work, or after quit();
* :class:`fuzz.fuzzlib.WireMonitor` accepts every byte written (CRLF only,
  exact dot-stuffed data in every transaction, the lone terminator exactly
  when the envelope was refused, exact BDAT sizes, nothing but
  EHLO/STARTTLS/QUIT before TLS when TLS is required, nothing but one QUIT
  after a fatal error, nothing after QUIT, RFC 2920 grouping, only the
  caller's addresses);
* after a failed Write, nothing more is written (not even QUIT);
* after Close, next_action() stays Close and input is ignored;
* every submitted message gets exactly one outcome event (accepted, failed
  or probed) and the session reports SessionClosed exactly once, last, with
  the session's error;
* the password or token (and their base64 forms) appear in no transcript
  line, error message or event repr, unless the fuzzed server sent them.
"""

from __future__ import annotations

import base64
import random
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from fuzz.fuzzlib import OracleError, WireMonitor, encode_records, records, replay
from smtpcore import (
    BodyType,
    Close,
    CommandCompleted,
    Credentials,
    Event,
    Idle,
    MessageAccepted,
    MessageFailed,
    MessageProbed,
    NeedBody,
    Noop,
    Notify,
    OAuth2Token,
    OutgoingMessage,
    Phase,
    QuitAfter,
    Read,
    RecipientResult,
    Ret,
    Session,
    SessionClosed,
    SessionConfig,
    StartTLSAction,
    TLSEstablished,
    TLSPolicy,
    Vrfy,
    Write,
)

NAME = "session"
#: libFuzzer -max_len for this harness.
MAX_LEN = 64 * 1024
#: Actions one input may take before the session counts as hung.
MAX_ACTIONS = 10_000
#: Messages one input may submit, up front and through CALL records.
MAX_MESSAGES = 4

OPTIONS = 0x01
BODY = 0x02
SERVER = 0x03
TIMEOUT = 0x04
TLS_OK = 0x05
TLS_FAIL = 0x06
CALL = 0x07
WRITE_FAIL = 0x08
#: WRITE_FAIL's count for "the adapter cannot tell".
UNKNOWN_COUNT = 0xFFFF

CALL_SUBMIT = 0
CALL_NOOP = 1
CALL_VRFY = 2
CALL_QUIT = 3

_POLICIES = (TLSPolicy.NONE, TLSPolicy.OPPORTUNISTIC, TLSPolicy.STARTTLS, TLSPolicy.IMPLICIT)
_QUIT_AFTER = (
    None,
    QuitAfter.CONNECT,
    QuitAfter.EHLO,
    QuitAfter.TLS,
    QuitAfter.AUTH,
    QuitAfter.MAIL,
    QuitAfter.RCPT,
    None,
)
_MECHANISMS: tuple[tuple[str, ...] | None, ...] = (
    None,
    ("PLAIN",),
    ("LOGIN",),
    ("CRAM-MD5",),
    ("SCRAM-SHA-256",),
    ("XOAUTH2",),
    ("OAUTHBEARER",),
    ("PLAIN", "LOGIN"),
)
#: quit_after values that stop before MAIL: Session.submit() refuses messages.
PROBES_WITHOUT_MAIL = (QuitAfter.CONNECT, QuitAfter.EHLO, QuitAfter.TLS, QuitAfter.AUTH)
USERNAME = "fuzz-user@example.com"
# Secrets distinctive enough that finding one in a log means it leaked.
PASSWORDS = ("Zq7-s3cr3t-pw", "Zq7-pässwörd", "Zq7-\ufdd0-refused-by-saslprep")
TOKEN = "Zq7TokenYa29.a0AfH6SMBx"
UTF8_RECIPIENT = "пользователь@пример.рф"


@dataclass(frozen=True)
class Options:
    """The caller's choices, one octet each (a missing octet reads as 0).

    ===  ==================================================================
    0    TLS policy (mod 4): NONE, OPPORTUNISTIC, STARTTLS, IMPLICIT
    1    bits: 1 pipelining, 2 chunking, 4 LMTP, 8 strict line endings,
         16 allow controls, 32 require all recipients, 64 no HELO fallback,
         128 allow insecure AUTH
    2    credentials (mod 5): none, ASCII password, UTF-8 password, a
         password SASLprep refuses, an OAuth2 token
    3    recipients per message: 1 + (octet mod 5)
    4    max_recipients (mod 4): None, 1, 2, 3
    5    quit_after (mod 8): None, CONNECT, EHLO, TLS, AUTH, MAIL, RCPT, None
    6    bits: 1 transaction log, 2 log message data, 4 stream the bodies,
         8 add a non-ASCII recipient, 16 call quit() up front, 32 declare
         BODY=8BITMIME, 64 declare BODY=BINARYMIME, 128 DSN parameters
    7    streamed body chunk size: 1 + octet
    8    SASL allow-list (mod 8): None, PLAIN, LOGIN, CRAM-MD5,
         SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, PLAIN+LOGIN
    9    bit 1: tiny reply limits (64-octet lines, 4 lines, 256 octets)
    10   bits: 1 REQUIRETLS, 2 a size hint for streamed bodies, 4 the
         first message has the null sender <>
    ===  ==================================================================
    """

    raw: bytes = b""

    def octet(self, index: int) -> int:
        return self.raw[index] if index < len(self.raw) else 0

    def flag(self, index: int, bit: int) -> bool:
        return bool(self.octet(index) & bit)

    @property
    def policy(self) -> TLSPolicy:
        return _POLICIES[self.octet(0) % 4]

    @property
    def credentials(self) -> Credentials | OAuth2Token | None:
        kind = self.octet(2) % 5
        if kind == 0:
            return None
        if kind == 4:
            return OAuth2Token(username=USERNAME, token=TOKEN)
        return Credentials(username=USERNAME, password=PASSWORDS[kind - 1])

    @property
    def recipients(self) -> int:
        return 1 + self.octet(3) % 5

    @property
    def streamed(self) -> bool:
        return self.flag(6, 4)

    @property
    def chunk_size(self) -> int:
        return 1 + self.octet(7)

    @property
    def quit_up_front(self) -> bool:
        return self.flag(6, 16)

    def config(self) -> SessionConfig:
        small = self.flag(9, 1)
        return SessionConfig(
            local_hostname="client.example.com",
            tls=self.policy,
            credentials=self.credentials,
            auth_mechanisms=_MECHANISMS[self.octet(8) % 8],
            allow_insecure_auth=self.flag(1, 128),
            helo_fallback=not self.flag(1, 64),
            lmtp=self.flag(1, 4),
            pipelining=self.flag(1, 1),
            chunking=self.flag(1, 2),
            strict_line_endings=self.flag(1, 8),
            allow_controls=self.flag(1, 16),
            require_all_recipients=self.flag(1, 32),
            max_recipients=(None, 1, 2, 3)[self.octet(4) % 4],
            transaction_log=self.flag(6, 1),
            log_message_data=self.flag(6, 2),
            quit_after=_QUIT_AFTER[self.octet(5) % 8],
            max_reply_line=64 if small else 1024,
            max_reply_lines=4 if small else 100,
            max_reply_size=256 if small else 64 * 1024,
        )

    def message(self, index: int, body: bytes) -> OutgoingMessage:
        """The ``index``-th message; each has its own sender."""
        sender = "" if index == 0 and self.flag(10, 4) else f"sender{index}@example.com"
        rcpts = [f"rcpt{j}@example.net" for j in range(self.recipients)]
        if self.flag(6, 8):
            rcpts.append(UTF8_RECIPIENT)
        body_type = None
        if self.flag(6, 64):
            body_type = BodyType.BINARY_MIME
        elif self.flag(6, 32):
            body_type = BodyType.EIGHT_BIT_MIME
        dsn = self.flag(6, 128)
        return OutgoingMessage.build(
            sender=sender,
            recipients=rcpts,
            message=None if self.streamed else body,
            size_hint=len(body) if self.streamed and self.flag(10, 2) else None,
            body_type=body_type,
            ret=Ret.HDRS if dsn else None,
            envid="fuzz+id=1" if dsn else None,
            notify=(Notify.FAILURE, Notify.DELAY) if dsn else None,
            orcpt=dsn,
            requiretls=self.flag(10, 1),
        )

    def secrets(self) -> list[bytes]:
        """The secret and the encodings of it a leak would show."""
        credentials = self.credentials
        if credentials is None:
            return []
        secret = (
            credentials.password if isinstance(credentials, Credentials) else credentials.token
        ).encode()
        user = USERNAME.encode()
        return [
            secret,
            base64.b64encode(secret),
            base64.b64encode(b"\0" + user + b"\0" + secret),
        ]


@dataclass
class Plan:
    """A decoded input."""

    options: Options
    bodies: list[bytes]
    steps: deque[tuple[int, bytes]]
    server_text: bytes  # everything the server sends, for the leak check


def decode(data: bytes) -> Plan:
    """Turn an input into a plan (never fails)."""
    options = Options()
    bodies: list[bytes] = []
    steps: deque[tuple[int, bytes]] = deque()
    server = bytearray()
    for kind, value in records(data):
        if kind == OPTIONS:
            options = Options(value)
        elif kind == BODY:
            if len(bodies) < 3:
                bodies.append(value)
        elif kind in (SERVER, TIMEOUT, TLS_OK, TLS_FAIL, CALL, WRITE_FAIL):
            steps.append((kind, value))
            if kind == SERVER:
                server += value
            elif kind == WRITE_FAIL:
                server += value[3:]
    return Plan(options, bodies or [b"Subject: fuzz\r\n\r\nHello.\r\n"], steps, bytes(server))


@dataclass
class Run:
    """Everything observed while driving one session."""

    session: Session
    monitor: WireMonitor
    events: list[Event] = field(default_factory=list)
    actions: int = 0
    ids: list[int] = field(default_factory=list)
    tickets: list[int] = field(default_factory=list)
    handshakes_ok: int = 0
    write_failed: bool = False


class _Driver:
    """Drives one session through a plan, playing adapter, caller and server."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        options = plan.options
        self.config = options.config()
        self.session = Session(self.config)
        self.bodies: dict[str, bytes] = {}
        self.streams: dict[int, deque[bytes]] = {}
        self.bodies_by_id: dict[int, bytes] = {}
        self.recipients: set[str] = set()
        self.quit_called = False
        session = self.session
        self.monitor = WireMonitor(
            bodies=self.bodies,
            recipients=self.recipients,
            tls_required=options.policy is TLSPolicy.STARTTLS,
            tls_active=options.policy is TLSPolicy.IMPLICIT,
            insecure_auth=self.config.allow_insecure_auth,
            lmtp=self.config.lmtp,
            pipelining=lambda: bool(
                session.capabilities is not None
                and session.capabilities.pipelining
                and session.config.pipelining
            ),
        )
        self.run = Run(session=session, monitor=self.monitor)

    # -- the caller --------------------------------------------------------------

    def submit(self, body: bytes) -> None:
        index = len(self.run.ids)
        if index >= MAX_MESSAGES or self.config.quit_after in PROBES_WITHOUT_MAIL:
            # A probe that stops before MAIL takes no message (submit() says
            # ConfigurationError); the harness does not misuse the API.
            return
        message = self.plan.options.message(index, body)
        # The monitor looks messages up by sender: it needs every sender before
        # the session can write its MAIL.
        self.bodies[message.sender] = body
        self.recipients.update(message.recipients)
        ident = self.session.submit(message)
        self.run.ids.append(ident)
        if message.data is None:
            self.bodies_by_id[ident] = body
            self.streams[ident] = self.chunk(body)

    def can_call(self) -> bool:
        return not self.quit_called and self.session.phase not in (Phase.QUITTING, Phase.CLOSED)

    def call(self, value: bytes) -> None:
        if not self.can_call():
            return
        what = value[0] % 4 if value else CALL_SUBMIT
        if what == CALL_SUBMIT:
            self.submit(value[1:])
        elif what == CALL_NOOP:
            self.run.tickets.append(self.session.command(Noop()))
        elif what == CALL_VRFY:
            self.run.tickets.append(self.session.command(Vrfy(string="postmaster")))
        else:
            self.quit()

    def quit(self) -> None:
        self.quit_called = True
        self.session.quit()

    # -- the server --------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.monitor.server_bytes(data)
        self.session.receive_data(data)

    def on_read(self) -> None:
        steps = self.plan.steps
        while steps:
            kind, value = steps.popleft()
            if kind == SERVER:
                self.feed(value)
                return
            if kind == TIMEOUT:
                self.session.timeout_expired(30.0)
                return
            if kind == CALL:
                # The caller acted while the adapter was reading; the session
                # is asked again what to do.
                self.call(value)
                return
            # A TLS result or a write failure while the session reads: not
            # applicable, skipped.
        self.feed(b"")

    def on_starttls(self) -> None:
        steps = self.plan.steps
        while steps:
            kind, value = steps.popleft()
            if kind == TLS_OK:
                self.monitor.tls_established()
                self.session.tls_established()
                self.run.handshakes_ok += 1
                return
            if kind == TLS_FAIL:
                self.session.tls_failed("fuzzed handshake failure")
                return
            if kind == SERVER:
                # Plaintext that arrived before the handshake (injection).
                self.feed(value)
                return
            if kind == TIMEOUT:
                self.session.timeout_expired(30.0)
                return
            if kind == CALL:
                self.call(value)
            return  # a write failure during a handshake: not applicable
        self.session.tls_failed("no more input")

    def fail_write(self, action: Write, value: bytes) -> None:
        """The adapter's Write failed partway (WRITE_FAIL): what the server
        had sent goes to the session first, as an adapter reads it without
        waiting, then the failure with the count of octets that left."""
        self.run.write_failed = True
        timeout = bool(value[:1]) and bool(value[0] & 1)
        count = int.from_bytes(value[1:3].ljust(2, b"\0"), "big")
        written = None if count == UNKNOWN_COUNT else min(count, len(action.data))
        received = value[3:]
        if received:
            self.feed(received)
        if timeout:
            self.session.timeout_expired(30.0, written=written)
        else:
            self.session.connection_lost("write", 104, "fuzzed reset", written=written)

    def on_body(self, action: NeedBody) -> None:
        ident = action.message_id
        if ident not in self.streams:
            raise OracleError(f"NeedBody for message {ident}, which has no stream")
        if action.restart:
            # Another transaction of the same message: from the first octet.
            self.streams[ident] = self.chunk(self.bodies_by_id[ident])
        chunks = self.streams[ident]
        self.session.send_body(ident, chunks.popleft() if chunks else b"")

    def chunk(self, body: bytes) -> deque[bytes]:
        size = self.plan.options.chunk_size
        return deque(body[i : i + size] for i in range(0, len(body), size))

    # -- the adapter loop -----------------------------------------------------------

    def drive(self) -> Run:
        session, run = self.session, self.run
        for body in self.plan.bodies:
            self.submit(body)
        if self.plan.options.quit_up_front:
            self.quit()
        for _ in range(MAX_ACTIONS):
            action = session.next_action()
            run.actions += 1
            run.events.extend(session.events())
            if isinstance(action, Write):
                if run.write_failed:
                    raise OracleError(f"a Write after a failed one: {action.data[:60]!r}")
                if self.plan.steps and self.plan.steps[0][0] == WRITE_FAIL:
                    self.fail_write(action, self.plan.steps.popleft()[1])
                else:
                    self.monitor.write(action.data, after_error=session.error is not None)
            elif isinstance(action, Read):
                self.on_read()
            elif isinstance(action, StartTLSAction):
                self.on_starttls()
            elif isinstance(action, NeedBody):
                self.on_body(action)
            elif isinstance(action, Idle):
                if session.busy:
                    raise OracleError("Idle while messages or commands are pending")
                self.check_outcomes(final=False)
                if self.quit_called:
                    raise OracleError("Idle after quit(): the session does not end")
                if self.plan.steps and self.plan.steps[0][0] == CALL:
                    self.call(self.plan.steps.popleft()[1])
                else:
                    self.quit()
            else:
                assert isinstance(action, Close)
                self.on_close()
                return run
        raise OracleError(f"no Close after {MAX_ACTIONS} actions")

    def on_close(self) -> None:
        session, run = self.session, self.run
        error = session.error
        self.monitor.close(error=error is not None)
        # Close is final: asking again, or feeding more, changes nothing.
        if not isinstance(session.next_action(), Close) or not session.closed:
            raise OracleError("next_action() after Close is not Close")
        session.receive_data(b"250 late reply\r\n")
        session.timeout_expired()
        if not isinstance(session.next_action(), Close):
            raise OracleError("input after Close revived the session")
        run.events.extend(session.events())
        closes = [e for e in run.events if isinstance(e, SessionClosed)]
        if len(closes) != 1 or run.events[-1] is not closes[0]:
            raise OracleError(f"SessionClosed reported {len(closes)} times, or not last")
        if closes[0].error is not error:
            raise OracleError("SessionClosed.error is not the session's error")
        self.check_outcomes(final=True)
        self.check_secrets()

    # -- event checks ------------------------------------------------------------------

    def check_outcomes(self, *, final: bool) -> None:
        run = self.run
        outcomes: dict[int, int] = {}
        for event in run.events:
            if isinstance(event, (MessageAccepted, MessageFailed, MessageProbed)):
                ident = event.result.message_id
                if ident not in run.ids:
                    raise OracleError(f"outcome for unknown message {ident}")
                outcomes[ident] = outcomes.get(ident, 0) + 1
                if isinstance(event, MessageAccepted) and not event.result.accepted:
                    raise OracleError("MessageAccepted with no accepted recipient")
                if (
                    isinstance(event, MessageAccepted)
                    and self.config.require_all_recipients
                    and event.result.rejected
                ):
                    raise OracleError("MessageAccepted with a refused recipient, all required")
            elif isinstance(event, RecipientResult):
                if event.message_id not in run.ids or event.recipient not in self.recipients:
                    raise OracleError(f"RecipientResult for unknown {event!r}")
            elif isinstance(event, CommandCompleted) and event.ticket not in run.tickets:
                raise OracleError(f"CommandCompleted for unknown ticket {event.ticket}")
        if any(count > 1 for count in outcomes.values()):
            raise OracleError(f"a message got several outcomes: {outcomes}")
        missing = [ident for ident in run.ids if ident not in outcomes]
        if missing:
            where = "at Close" if final else "at Idle"
            raise OracleError(f"messages {missing} got no outcome {where}")
        expected_tls = run.handshakes_ok + (self.plan.options.policy is TLSPolicy.IMPLICIT)
        if sum(isinstance(e, TLSEstablished) for e in run.events) != expected_tls:
            raise OracleError("TLSEstablished events do not match the handshakes")

    def check_secrets(self) -> None:
        secrets = [s for s in self.plan.options.secrets() if s not in self.plan.server_text]
        if not secrets:
            return
        shown = [str(entry).encode("utf-8", "surrogateescape") for entry in self.session.transcript]
        shown += [repr(event).encode("utf-8", "surrogateescape") for event in self.run.events]
        for event in self.run.events:
            error = getattr(event, "error", None)
            if error is not None:
                shown.append(str(error).encode("utf-8", "surrogateescape"))
        shown.append(repr(self.config).encode())
        for text in shown:
            for secret in secrets:
                if secret in text:
                    raise OracleError(f"a secret leaked into: {text[:120]!r}")


def run_input(data: bytes) -> Run:
    """Decode ``data`` and drive a session through it; raises on a violation."""
    return _Driver(decode(data)).drive()


def TestOneInput(data: bytes) -> None:
    """The harness entry point (atheris calls it with each input)."""
    run_input(data)


# -- building inputs (the corpus generator and replay mode use these) ----------------------


def options(
    *,
    policy: TLSPolicy = TLSPolicy.NONE,
    pipelining: bool = True,
    chunking: bool = True,
    lmtp: bool = False,
    strict: bool = False,
    allow_controls: bool = False,
    require_all: bool = False,
    no_helo_fallback: bool = False,
    insecure_auth: bool = False,
    credentials: int = 0,
    recipients: int = 1,
    max_recipients: int = 0,
    quit_after: int = 0,
    log: bool = False,
    log_data: bool = False,
    streamed: bool = False,
    utf8_recipient: bool = False,
    quit_up_front: bool = True,
    eight_bit: bool = False,
    binary: bool = False,
    dsn: bool = False,
    chunk_size: int = 64,
    mechanisms: int = 0,
    small_limits: bool = False,
    requiretls: bool = False,
    size_hint: bool = False,
    null_sender: bool = False,
) -> bytes:
    """An OPTIONS record (see :class:`Options` for the octets)."""

    def bits(*flags: bool) -> int:
        return sum(1 << i for i, on in enumerate(flags) if on)

    octets = [
        _POLICIES.index(policy),
        bits(
            pipelining,
            chunking,
            lmtp,
            strict,
            allow_controls,
            require_all,
            no_helo_fallback,
            insecure_auth,
        ),
        credentials,
        max(recipients - 1, 0),
        max_recipients,
        quit_after,
        bits(log, log_data, streamed, utf8_recipient, quit_up_front, eight_bit, binary, dsn),
        max(chunk_size - 1, 0),
        mechanisms,
        int(small_limits),
        bits(requiretls, size_hint, null_sender),
    ]
    return encode_records([(OPTIONS, bytes(octets))])


def server(*chunks: bytes) -> bytes:
    """SERVER records, one per read."""
    return encode_records((SERVER, chunk) for chunk in chunks)


def body(data: bytes) -> bytes:
    """A BODY record."""
    return encode_records([(BODY, data)])


EOF = encode_records([(SERVER, b"")])
TLS_UP = encode_records([(TLS_OK, b"")])
TLS_DOWN = encode_records([(TLS_FAIL, b"")])
TIMEOUT_RECORD = encode_records([(TIMEOUT, b"")])


def call(what: int, value: bytes = b"") -> bytes:
    """A CALL record."""
    return encode_records([(CALL, bytes([what]) + value)])


def write_fail(
    *, timeout: bool = False, written: int | None = None, received: bytes = b""
) -> bytes:
    """A WRITE_FAIL record."""
    count = UNKNOWN_COUNT if written is None else min(written, UNKNOWN_COUNT - 1)
    return encode_records([(WRITE_FAIL, bytes([timeout]) + count.to_bytes(2, "big") + received)])


# -- random inputs for replay mode -----------------------------------------------------------

_EHLO_KEYWORDS = (
    b"PIPELINING",
    b"SIZE 10240000",
    b"SIZE",
    b"8BITMIME",
    b"SMTPUTF8",
    b"STARTTLS",
    b"AUTH PLAIN LOGIN CRAM-MD5",
    b"AUTH=LOGIN PLAIN",
    b"AUTH SCRAM-SHA-256 XOAUTH2 OAUTHBEARER",
    b"DSN",
    b"ENHANCEDSTATUSCODES",
    b"CHUNKING",
    b"BINARYMIME",
    b"REQUIRETLS",
    b"PIPE_CONNECT",
    b"PRDR",
    b"X-UNKNOWN foo bar",
)
_BODIES = (
    b"",
    b"Subject: hi\r\n\r\nHello\r\n",
    b".\r\n",
    b"..\r\n.\r\n",
    b"a\r\n.\r\nMAIL FROM:<evil@x>\r\n",
    b"bare\nLF\nand\rCR\r\r\n.",
    b"no newline at end",
    b"8bit \xe9\xff\r\n",
    b"nul \x00 and bell \x07\r\n",
    b"x" * 1200 + b"\r\n",
    b".leading dot\n.\n",
)


def _ehlo(rng: random.Random) -> bytes:
    keywords = rng.sample(_EHLO_KEYWORDS, rng.randint(0, len(_EHLO_KEYWORDS)))
    lines = [b"mx.example.org greets you", *keywords]
    out = b"".join(b"250-" + line + b"\r\n" for line in lines[:-1])
    return out + b"250 " + lines[-1] + b"\r\n"


def _reply(rng: random.Random, good: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.75:
        return good
    if roll < 0.85:
        return rng.choice(
            (b"451 4.3.0 try later\r\n", b"550 5.7.1 no\r\n", b"503 bad sequence\r\n")
        )
    if roll < 0.9:
        return b"421 4.3.2 closing\r\n"
    if roll < 0.95:
        return rng.choice((b"250 ok\n", b"25", b"\x00\xff garbage\r\n", b"2500 x\r\n"))
    return b"334 " + base64.b64encode(bytes(rng.randrange(256) for _ in range(8))) + b"\r\n"


def random_input(rng: random.Random) -> bytes:
    """A random input: random options and a conversation with random faults."""
    parts = [encode_records([(OPTIONS, bytes(rng.randrange(256) for _ in range(11)))])]
    for _ in range(rng.randint(0, 2)):
        parts.append(body(rng.choice(_BODIES)))
    script = [
        b"220 mx.example.org ESMTP\r\n",
        _ehlo(rng),
        b"220 2.0.0 go ahead\r\n",
        b"<tls>",
        _ehlo(rng),
        b"334 \r\n",
        b"235 2.7.0 ok\r\n",
    ]
    for _ in range(rng.randint(1, 3)):
        script += [b"250 2.1.0 ok\r\n"] * rng.randint(1, 4)
        script += [b"354 go\r\n", b"250 2.0.0 queued\r\n", b"250 2.0.0 ok\r\n"]
    script += [b"221 2.0.0 bye\r\n"]
    for item in script:
        roll = rng.random()
        if item == b"<tls>":
            parts.append(TLS_UP if roll < 0.8 else TLS_DOWN)
            continue
        if roll < 0.03:
            parts.append(TIMEOUT_RECORD)
            break
        if roll < 0.06:
            parts.append(EOF)
            break
        if roll < 0.08:
            parts.append(call(rng.randrange(4), rng.choice(_BODIES)))
        elif roll < 0.13:
            # The client's next write fails, after the server answered (or
            # not) what came before it.
            answered = rng.choice((b"", item, _reply(rng, item)))
            written = rng.choice((None, 0, rng.randrange(1, 400), 10_000))
            parts.append(write_fail(timeout=rng.random() < 0.5, written=written, received=answered))
        reply = _reply(rng, item)
        cut = rng.randint(0, len(reply)) if rng.random() < 0.2 else len(reply)
        parts.append(server(*(p for p in (reply[:cut], reply[cut:]) if p)))
    return b"".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Replay the corpus and random inputs (no atheris needed)."""
    del argv
    stats = replay(NAME, TestOneInput, random_input=random_input, count=2000)
    print(f"{NAME}: {stats.inputs} inputs in {stats.seconds:.1f}s, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
