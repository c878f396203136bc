"""A local SMTP server for tests and demos, built on aiosmtpd.

:class:`Sink` runs an aiosmtpd server in a background thread on a loopback
address and records every message it accepts. It is what ``smtpcore sink``
runs until Ctrl-C, what ``smtpcore demo`` sends through, and what the CLI
tests use as their server::

    with Sink(starttls=True) as sink:
        send(..., server="127.0.0.1", port=sink.port, tls="starttls",
             ssl_context=sink.client_ssl_context())
        assert sink.messages[0].subject == "hello"

TLS uses a throwaway certificate authority made by trustme; its PEM is written
to :attr:`Sink.ca_pem_path` so that other processes can trust it
(``smtpcore send --ca-file``).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import mailbox
import os
import random
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, final

import click
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from smtpcore import printable

__all__ = ["DEFAULT_PORT", "ReceivedMessage", "Sink", "sink_command"]

#: ``smtpcore sink`` listens here unless told otherwise (aiosmtpd's default).
DEFAULT_PORT: Final = 8025
#: The name the sink gives itself in its greeting and certificate.
SINK_HOSTNAME: Final = "localhost"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMessage:
    """One message the sink accepted.

    Attributes:
        number: 1 for the first message accepted, then 2, 3...
        mail_from: the envelope sender (``""`` for the null reverse-path).
        rcpt_tos: the envelope recipients.
        data: the message as received (CRLF line endings, dot-unstuffed).
        peer: the client's address.
        tls: whether the message came over TLS.
        username: who authenticated, if anyone.
        received_at: ``time.time()`` when it was accepted.
    """

    number: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes = field(repr=False)
    peer: str
    tls: bool
    username: str | None
    received_at: float

    @property
    def size(self) -> int:
        """Octets of message data."""
        return len(self.data)

    def header(self, name: str) -> str | None:
        """The first header ``name``, decoded, or None."""
        parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(self.data)
        value = parsed.get(name)
        return None if value is None else str(value)

    @property
    def subject(self) -> str:
        """The Subject header (``""`` when there is none)."""
        return self.header("Subject") or ""


#: Seconds the sink waits for its server thread to stop.
_STOP_TIMEOUT = 5.0


@final
class Sink:
    """An aiosmtpd server on loopback that records what it receives.

    Args:
        host: the address to listen on (loopback by default; this is a test
            server, never expose it).
        port: the port; 0 picks a free one (read it back from :attr:`port`).
        starttls: offer STARTTLS with a throwaway certificate.
        implicit_tls: speak TLS from the first byte (RFC 8314).
        auth: ``(user, password)``: offer AUTH PLAIN and LOGIN and accept
            exactly these credentials. Offered, not required; over plaintext
            too when there is no TLS, as a test server should let you try.
        maildir: also store each message in this Maildir (created if needed).
        tempfail_every: answer ``451`` to every Nth message (0: never).
        fail_rate: answer ``451`` to this fraction of messages, at random.
        delay: seconds to wait before answering each message (a slow server).
        pipelining: advertise PIPELINING (aiosmtpd answers commands in order,
            so pipelined clients work).
        seed: seed for ``fail_rate``'s random choices (repeatable runs).
        on_message: called (in the server's thread) with each accepted message.
        quiet: silence aiosmtpd's own log (session errors, deprecations).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        maildir: str | os.PathLike[str] | None = None,
        tempfail_every: int = 0,
        fail_rate: float = 0.0,
        delay: float = 0.0,
        pipelining: bool = True,
        seed: int | None = None,
        on_message: Callable[[ReceivedMessage], object] | None = None,
        quiet: bool = True,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("choose STARTTLS or implicit TLS, not both")
        if tempfail_every < 0:
            raise ValueError("tempfail_every must not be negative")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if delay < 0:
            raise ValueError("delay must not be negative")
        self.host = host
        self.port = port
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self._auth = auth
        self._maildir_path = None if maildir is None else Path(maildir)
        self._maildir: mailbox.Maildir | None = None
        self._tempfail_every = tempfail_every
        self._fail_rate = fail_rate
        #: Seconds to wait before answering each message; may be changed
        #: while the sink runs (a test can slow it down, then speed it up).
        self.delay = delay
        self._pipelining = pipelining
        self._random = random.Random(seed)
        self._on_message = on_message
        self._quiet = quiet
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._attempts = 0
        self._tempfailed = 0
        self._controller: _Controller | None = None
        self._tmpdir: str | None = None
        self.ca: trustme.CA | None = None
        #: Where the CA certificate (PEM) was written, when TLS is on.
        self.ca_pem_path: Path | None = None

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> Sink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start listening (returns once the server answers)."""
        if self._controller is not None:
            raise RuntimeError("the sink is already running")
        if self._quiet:
            # aiosmtpd logs every session error (a client that rejects our
            # throwaway certificate, a dropped connection) with a traceback;
            # for a test server that is noise.
            logging.getLogger("mail.log").setLevel(logging.CRITICAL)
        if self._maildir_path is not None:
            self._maildir = mailbox.Maildir(self._maildir_path, create=True)
        tls_context = None
        if self.starttls or self.implicit_tls:
            tls_context = self._make_certificates()
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": SINK_HOSTNAME,
            "ident": "smtpcore sink",
        }
        if self.starttls:
            kwargs["tls_context"] = tls_context
        if self.implicit_tls:
            kwargs["ssl_context"] = tls_context
        if self._auth is not None:
            kwargs["authenticator"] = self._authenticate
            # aiosmtpd only advertises AUTH after STARTTLS when this is True;
            # with implicit TLS or no TLS at all it must be False to offer AUTH.
            kwargs["auth_require_tls"] = self.starttls
        controller = _Controller(_Handler(self), **kwargs)
        try:
            controller.start()
        except BaseException:
            self._cleanup_files()
            raise
        self._controller = controller
        self.port = controller.port

    def stop(self) -> None:
        """Stop the server and remove the throwaway certificate files."""
        controller, self._controller = self._controller, None
        if controller is not None:
            # aiosmtpd's stop() joins its loop's thread, which a connection
            # caught half-way can keep busy: the sink (Ctrl-C, SIGTERM) must
            # end anyway, so the wait is bounded.
            stopper = threading.Thread(target=controller.stop, daemon=True)
            stopper.start()
            stopper.join(_STOP_TIMEOUT)
        self._cleanup_files()

    # -- what the sink saw -----------------------------------------------------

    @property
    def messages(self) -> tuple[ReceivedMessage, ...]:
        """Every message accepted so far, in order."""
        with self._lock:
            return tuple(self._messages)

    @property
    def attempts(self) -> int:
        """Messages whose data was received, accepted or not."""
        with self._lock:
            return self._attempts

    @property
    def tempfailed(self) -> int:
        """Messages answered with 451."""
        with self._lock:
            return self._tempfailed

    @property
    def address(self) -> str:
        """``host:port`` (``[host]:port`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the sink's certificate authority."""
        if self.ca is None:
            raise RuntimeError("the sink was started without TLS")
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    # -- internals -------------------------------------------------------------

    def _make_certificates(self) -> ssl.SSLContext:
        self.ca = trustme.CA(organization_name="smtpcore sink throwaway CA")
        cert = self.ca.issue_cert(SINK_HOSTNAME, "127.0.0.1", "::1")
        self._tmpdir = tempfile.mkdtemp(prefix="smtpcore-sink-")
        self.ca_pem_path = Path(self._tmpdir) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem_path))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    def _cleanup_files(self) -> None:
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self._auth is not None
        user, password = self._auth
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        # handled=False: let aiosmtpd answer 535 itself (its default, True,
        # means "the authenticator already replied" and the client waits forever).
        return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

    def _decide(self) -> str | None:
        """Count one message; return a 451 reply if it is to be refused."""
        with self._lock:
            self._attempts += 1
            number = self._attempts
            refuse = (self._tempfail_every and number % self._tempfail_every == 0) or (
                self._fail_rate and self._random.random() < self._fail_rate
            )
            if refuse:
                self._tempfailed += 1
        if refuse:
            return "451 4.3.0 Temporary failure (smtpcore sink test)"
        return None

    def _accept(self, server: SMTP, session: Session, envelope: Envelope) -> ReceivedMessage:
        content = envelope.original_content or b""
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = session.auth_data if session.authenticated else None
        with self._lock:
            message = ReceivedMessage(
                number=len(self._messages) + 1,
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=content,
                peer=_peer(session.peer),
                tls=bool(tls or session.ssl is not None),
                username=login.decode("utf-8", "replace") if isinstance(login, bytes) else None,
                received_at=time.time(),
            )
            self._messages.append(message)
        if self._maildir is not None:
            headers = f"Return-Path: <{message.mail_from}>\r\n"
            headers += "".join(f"Delivered-To: {r}\r\n" for r in message.rcpt_tos)
            self._maildir.add(headers.encode("utf-8", "surrogateescape") + content)
        if self._on_message is not None:
            self._on_message(message)
        return message


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class _Handler:
    """aiosmtpd's handler hooks, forwarding to the :class:`Sink`."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self._sink._pipelining:
            # RFC 2920: the keyword goes before the last line ("250 HELP").
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        sink = self._sink
        if sink.delay:
            await asyncio.sleep(sink.delay)
        refusal = sink._decide()
        if refusal is not None:
            return refusal
        message = sink._accept(server, session, envelope)
        return f"250 2.0.0 OK: message {message.number} accepted"


class _Controller(Controller):
    """aiosmtpd's controller, able to listen on port 0."""

    def _trigger_server(self) -> None:
        # The base class connects to self.port to start the server; with
        # port 0 that must be the port the OS picked.
        server = self.server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


# -- the command ---------------------------------------------------------------

_EPILOG = """\b
Examples:
  smtpcore sink                                  plain SMTP on 127.0.0.1:8025
  smtpcore sink --port 0 --starttls              a free port, STARTTLS, throwaway CA
  smtpcore sink --auth-user u --auth-password p --maildir ./received
  smtpcore sink --tempfail-every 10              451 to every 10th message

\b
With --starttls or --implicit-tls the CA certificate is written to a temporary
file whose path is printed: give it to clients, e.g.
  smtpcore send -s 127.0.0.1:8025 --tls starttls --ca-file /tmp/.../ca.pem --to a@example.org
The sink listens on loopback only. Ctrl-C stops it.
"""


@click.command("sink", epilog=_EPILOG)
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port, printed).",
)
@click.option("--starttls", is_flag=True, help="Offer STARTTLS with a throwaway certificate.")
@click.option("--implicit-tls", is_flag=True, help="Speak TLS from the first byte.")
@click.option("--auth-user", default=None, metavar="USER", help="Offer AUTH PLAIN/LOGIN for USER.")
@click.option(
    "--auth-password",
    default=None,
    metavar="PASSWORD",
    envvar="SMTPCORE_SINK_PASSWORD",
    show_envvar=True,
    help="The password --auth-user must give.",
)
@click.option(
    "--maildir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also store each message in this Maildir.",
)
@click.option(
    "--tempfail-every",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Answer 451 to every Nth message.",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    metavar="RATE",
    help="Answer 451 to this fraction of messages, at random (0-1).",
)
@click.option(
    "--delay",
    type=click.FloatRange(min=0.0),
    default=0.0,
    metavar="SECONDS",
    help="Wait this long before answering each message (a slow server).",
)
@click.option("--seed", type=int, default=None, help="Random seed for --fail-rate.")
def sink_command(
    port: int,
    starttls: bool,
    implicit_tls: bool,
    auth_user: str | None,
    auth_password: str | None,
    maildir: str | None,
    tempfail_every: int,
    fail_rate: float,
    delay: float,
    seed: int | None,
) -> None:
    """Run a local SMTP server that accepts and shows every message.

    For testing clients (and smtpcore itself): one line per message with its
    sender, recipients, size and subject. Runs until Ctrl-C.
    """
    if starttls and implicit_tls:
        raise click.UsageError("choose --starttls or --implicit-tls, not both")
    if (auth_user is None) != (auth_password is None):
        raise click.UsageError("--auth-user and --auth-password go together")
    auth = None if auth_user is None or auth_password is None else (auth_user, auth_password)

    def show(message: ReceivedMessage) -> None:
        subject = printable(message.subject)
        click.echo(
            f"{time.strftime('%H:%M:%S')} #{message.number} from <{message.mail_from}> "
            f"to {', '.join(f'<{r}>' for r in message.rcpt_tos)} "
            f"{message.size} octets{' TLS' if message.tls else ''}: {subject}"
        )

    sink = Sink(
        port=port,
        starttls=starttls,
        implicit_tls=implicit_tls,
        auth=auth,
        maildir=maildir,
        tempfail_every=tempfail_every,
        fail_rate=fail_rate,
        delay=delay,
        seed=seed,
        on_message=show,
    )
    # ``kill`` (SIGTERM) stops the sink as cleanly as Ctrl-C: the finally
    # clause below removes the throwaway CA files.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        sink.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {sink.address}: {exc.strerror or exc}"
        ) from None
    try:
        mode = "implicit TLS" if implicit_tls else "STARTTLS" if starttls else "plain SMTP"
        click.echo(f"smtpcore sink listening on {sink.address} ({mode}); Ctrl-C stops it")
        if sink.ca_pem_path is not None:
            click.echo(
                f"CA certificate: {sink.ca_pem_path}  (clients: --ca-file {sink.ca_pem_path})"
            )
        if maildir is not None:
            click.echo(f"storing messages in Maildir {maildir}")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo(f"stopped; {len(sink.messages)} message(s) received", err=True)
    finally:
        sink.stop()
