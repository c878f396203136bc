"""Real servers on 127.0.0.1 for the adapter and interop tests, and the facade
that runs one test body on every adapter.

* :class:`SMTPServer`: aiosmtpd in a thread, the friendly server: plain,
  STARTTLS or implicit TLS, AUTH PLAIN/LOGIN, recording exactly what it got.
* :class:`TinyServer`: a scripted SMTP server in a thread, for servers that
  misbehave (never greet, refuse the session, stall or drop the connection
  after the data, close idle connections with 421).
* :class:`PostfixServer`: a private Postfix, the real MTA (interop tests).
* :class:`Flavor`: the blocking, asyncio, trio and anyio adapters (anyio on
  both of its event loops) behind one async API, so that a scenario is
  written once: ``await flavor.send(...)``, ``async with flavor.client(...)
  as c: await c.send_message(...)``. The blocking adapter is called directly
  from the async test: it blocks the test's event loop, which is harmless
  because every server runs in its own thread.

Nothing here listens on anything but 127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import copy
import email.message
import email.policy
import fcntl
import importlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal

import anyio
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from smtpcore.adapters import SendResult

from smtpcore import MessageResult, Reply, SMTPError, TranscriptEntry

__all__ = [
    "ADAPTERS",
    "LOOPBACK",
    "POSTFIX_DOMAIN",
    "POSTFIX_SIZE_LIMIT",
    "ClientHandle",
    "Flavor",
    "PoolHandle",
    "PostfixServer",
    "Received",
    "RecordingHandler",
    "SMTPServer",
    "TLSMaterial",
    "TinyServer",
    "canonical",
    "expected_email_bytes",
    "free_port",
    "load_flavor",
    "postfix_unavailable",
    "wait_until",
    "wait_until_async",
]

LOOPBACK: Final = "127.0.0.1"
#: The name aiosmtpd greets with (never ``socket.getfqdn()``, which may ask DNS).
SERVER_NAME: Final = "mx.test"
#: Upper bound on any wait for a thread or a socket in these helpers.
WAIT: Final = 10.0

ServerMode = Literal["plain", "starttls", "implicit"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


async def wait_until_async(
    predicate: Callable[[], bool], timeout: float = WAIT, step: float = 0.02
) -> bool:
    """:func:`wait_until` that lets the test's event loop run meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(step)


# -- expected message bytes ----------------------------------------------------------------

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def canonical(data: bytes) -> bytes:
    """What a server must store for ``data``: the documented canonicalisation.

    Every CRLF, bare CR and bare LF is one line break, sent as CRLF (RFC 5321
    2.3.8); a body that does not end with a line break gets a final CRLF (RFC
    5321 4.1.1.4). Dot-stuffing is undone by the server, so it does not show.
    Written independently of smtpcore's encoder on purpose.
    """
    text = _LINE_BREAK.sub(b"\r\n", data)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def expected_email_bytes(message: email.message.EmailMessage, *, utf8: bool = False) -> bytes:
    """The documented wire form of an ``EmailMessage``: serialised with the SMTP
    (or SMTPUTF8) policy, without ``Bcc``."""
    copied = copy.deepcopy(message)
    del copied["Bcc"]
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    return copied.as_bytes(policy=policy)


# -- TLS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSMaterial:
    """A throwaway CA and a server certificate it issued (trustme)."""

    ca: trustme.CA
    cert: trustme.LeafCert

    @classmethod
    def create(cls, *hosts: str) -> TLSMaterial:
        """A new CA and a certificate for ``hosts`` (default: localhost and 127.0.0.1)."""
        ca = trustme.CA()
        return cls(ca=ca, cert=ca.issue_cert(*(hosts or ("localhost", LOOPBACK))))

    def with_cert_for(self, *hosts: str) -> TLSMaterial:
        """The same CA, with a certificate for other names."""
        return TLSMaterial(ca=self.ca, cert=self.ca.issue_cert(*hosts))

    def write_server_files(self, directory: Path) -> tuple[Path, Path]:
        """The certificate chain and its private key as ``cert.pem`` and
        ``key.pem`` in ``directory`` (the key readable by its owner only),
        for a server that reads them from files."""
        cert, key = directory / "cert.pem", directory / "key.pem"
        cert.write_bytes(b"".join(pem.bytes() for pem in self.cert.cert_chain_pems))
        key.touch(mode=0o600)
        key.write_bytes(self.cert.private_key_pem.bytes())
        return cert, key

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the CA (and nothing else)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context


# -- aiosmtpd --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message exactly as the server got it."""

    peer: tuple[str, int]
    host_name: str | None
    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]
    rcpt_options: tuple[str, ...]
    content: bytes
    tls: bool
    authenticated: bool


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that records every MAIL, AUTH and message.

    aiosmtpd inspects its handler: ``handle_*`` methods are hooks and any
    attribute named ``auth_*`` is taken for a SASL mechanism, so no name
    here may start with ``auth_``.

    Attributes:
        refuse_rcpt: recipients to refuse, with the reply to give.
        data_reply: the reply to the end of the data (None: ``250 OK``).
        users: login -> password accepted by :meth:`authenticate`; None
            accepts any credentials.
        messages: every message received.
        mail_commands: the address of every MAIL command, in order.
        logins: every AUTH attempt: (mechanism, login, accepted).
        peers: the client (address, port) of every MAIL command.
    """

    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    users: dict[str, str] | None = None
    messages: list[Received] = field(default_factory=list)
    mail_commands: list[str] = field(default_factory=list)
    logins: list[tuple[str, bytes, bool]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.mail_commands.append(address)
        self.peers.append((session.peer[0], session.peer[1]))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = self.refuse_rcpt.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        self.messages.append(
            Received(
                peer=(session.peer[0], session.peer[1]),
                host_name=session.host_name,
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(envelope.rcpt_options),
                content=bytes(envelope.original_content),
                tls=tls,
                authenticated=bool(session.authenticated),
            )
        )
        return self.data_reply or "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """aiosmtpd's ``authenticator``: checks LOGIN and PLAIN credentials."""
        ok = False
        login = b""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login
            if self.users is None:
                ok = True
            else:
                expected = self.users.get(login.decode("utf-8", "replace"))
                ok = expected is not None and expected.encode() == auth_data.password
        self.logins.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False)

    def last(self) -> Received:
        """The last message received (fails the test if there is none).

        A method, not a property: aiosmtpd inspects every attribute of its
        handler when it starts."""
        assert self.messages, "the server received no message"
        return self.messages[-1]


class SMTPServer:
    """aiosmtpd on 127.0.0.1 in a thread.

    Args:
        mode: ``plain``, ``starttls`` (STARTTLS offered) or ``implicit``
            (TLS from the first byte).
        tls: the certificate material (needed unless ``plain``).
        handler: the recording handler (a fresh one by default).
        auth: offer AUTH (checked by ``handler.authenticate``).
        auth_require_tls: aiosmtpd offers AUTH only after STARTTLS. aiosmtpd
            does not count implicit TLS as TLS, so implicit-TLS servers with
            AUTH need False.
        timeout: seconds after which aiosmtpd closes an idle connection.
        data_size_limit: the SIZE aiosmtpd advertises and enforces.
        smtp_class: the aiosmtpd ``SMTP`` class that serves each connection
            (a subclass can offer more, e.g. REQUIRETLS).
    """

    def __init__(
        self,
        *,
        mode: ServerMode = "plain",
        tls: TLSMaterial | None = None,
        handler: RecordingHandler | None = None,
        auth: bool = False,
        auth_require_tls: bool = True,
        timeout: float | None = None,
        data_size_limit: int | None = None,
        smtp_class: type[SMTP] = SMTP,
    ) -> None:
        if mode != "plain" and tls is None:
            raise ValueError(f"mode {mode} needs TLS material")
        self.mode = mode
        self.tls = tls
        self.handler = handler if handler is not None else RecordingHandler()
        self.port = free_port()
        kwargs: dict[str, Any] = {
            "hostname": LOOPBACK,
            "port": self.port,
            "server_hostname": SERVER_NAME,
            "auth_require_tls": auth_require_tls,
            "ready_timeout": WAIT,
        }
        if auth:
            kwargs["authenticator"] = self.handler.authenticate
        if timeout is not None:
            kwargs["timeout"] = timeout
        if data_size_limit is not None:
            kwargs["data_size_limit"] = data_size_limit
        if mode == "starttls":
            assert tls is not None
            kwargs["tls_context"] = tls.server_context()
        elif mode == "implicit":
            assert tls is not None
            kwargs["ssl_context"] = tls.server_context()
        self._controller = _TrackingController(self.handler, smtp_class=smtp_class, **kwargs)
        self._running = False

    def start(self) -> SMTPServer:
        self._controller.start()
        self._running = True
        return self

    def open_connections(self) -> int:
        """Connections the clients have not closed (yet)."""
        return sum(1 for smtp in self._controller.sessions if smtp.transport is not None)

    def stop(self) -> int:
        """Stop the server; returns how many connections clients left open.

        Clients get a moment to finish closing; whatever is still open is
        then closed from the server side, so that no transport outlives the
        server's event loop (it would surface later as a ResourceWarning).
        """
        if not self._running:
            return 0
        self._running = False
        wait_until(lambda: self.open_connections() == 0, timeout=2.0)
        left = self.open_connections()
        if left:
            loop = self._controller.loop
            done = threading.Event()

            def close_all() -> None:
                for smtp in self._controller.sessions:
                    if smtp.transport is not None:
                        smtp.transport.close()
                loop.call_soon(done.set)

            loop.call_soon_threadsafe(close_all)
            done.wait(WAIT)
            wait_until(lambda: self.open_connections() == 0, timeout=2.0)
        self._controller.stop()
        return left

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def client_options(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments that make any adapter talk to this server
        (TLS policy and a context trusting the CA included)."""
        options: dict[str, Any] = {"server": LOOPBACK, "port": self.port}
        if self.mode == "plain":
            options["tls"] = "none"
        else:
            assert self.tls is not None
            options["tls"] = "starttls" if self.mode == "starttls" else "implicit"
            options["ssl_context"] = self.tls.client_context()
        options.update(overrides)
        return options


class _TrackingController(Controller):
    """A Controller that remembers each connection's SMTP instance."""

    def __init__(self, *args: Any, smtp_class: type[SMTP] = SMTP, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[Any] = []
        self.smtp_class = smtp_class

    def factory(self) -> Any:
        smtp = self.smtp_class(self.handler, **self.SMTP_kwargs)
        self.sessions.append(smtp)
        return smtp


# -- a scripted server -----------------------------------------------------------------------


class TinyServer:
    """Just enough SMTP, in a thread, to misbehave on purpose.

    Args:
        greeting: the greeting line; None: accept connections and never say
            anything.
        after_data: what to do after the final dot: ``"reply"`` (250),
            ``"drop"`` (close with no reply: the client cannot know whether
            the message was taken) or ``"stall"`` (say nothing, keep the
            connection open).
        idle_421: after each accepted message, if the client says nothing
            for this many seconds, send ``421`` and close (an idle timeout).

    Attributes:
        connections: connections accepted so far.
        open_connections: connections the client has not closed yet.
        messages: message data received (up to the final dot, still stuffed).
        commands: every command line received, in order.
    """

    def __init__(
        self,
        *,
        greeting: bytes | None = b"220 tiny.test ESMTP\r\n",
        after_data: Literal["reply", "drop", "stall"] = "reply",
        idle_421: float | None = None,
    ) -> None:
        self.greeting = greeting
        self.after_data = after_data
        self.idle_421 = idle_421
        self.connections = 0
        self.open_connections = 0
        self.messages: list[bytes] = []
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> TinyServer:
        self._accept_thread.start()
        return self

    def stop(self) -> int:
        """Stop the server; returns how many connections clients left open
        (after a moment's grace)."""
        wait_until(lambda: self.open_connections == 0, timeout=2.0)
        left = self.open_connections
        self._stop.set()
        self._accept_thread.join(WAIT)
        for thread in self._threads:
            thread.join(WAIT)
        self._listener.close()
        return left

    def __enter__(self) -> TinyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client_options(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"server": LOOPBACK, "port": self.port, "tls": "none"}
        options.update(overrides)
        return options

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.open_connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.05)
            io = _LineReader(conn, self._stop)
            # The client going away mid-conversation is not the server's problem.
            with contextlib.suppress(OSError):
                self._converse(io)
                if self.after_data == "stall" or self.greeting is None:
                    io.drain()  # silent until the client closes
        with self._lock:
            self.open_connections -= 1

    def _converse(self, io: _LineReader) -> None:
        if self.greeting is None:
            return
        io.send(self.greeting)
        if not self.greeting.startswith(b"220"):
            return
        idle_after: float | None = None
        while True:
            line = io.line(idle_after)
            idle_after = None
            if line is None:
                return
            if line is _IDLE:
                io.send(b"421 4.4.2 tiny.test idle timeout, closing\r\n")
                return
            assert isinstance(line, bytes)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                io.send(b"250-tiny.test\r\n250 8BITMIME\r\n")
            elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                io.send(b"250 OK\r\n")
            elif verb == "DATA":
                io.send(b"354 go ahead\r\n")
                data = bytearray()
                while (chunk := io.line()) != b".\r\n":
                    if not isinstance(chunk, bytes):
                        return
                    data += chunk
                self.messages.append(bytes(data))
                if self.after_data != "reply":
                    return
                io.send(b"250 OK queued\r\n")
                idle_after = self.idle_421
            elif verb == "QUIT":
                io.send(b"221 bye\r\n")
                return
            else:
                io.send(b"502 not implemented\r\n")


_IDLE: Final = object()


class _LineReader:
    """CRLF lines from a socket with a short poll timeout, so that every loop
    notices the server stopping."""

    def __init__(self, conn: socket.socket, stop: threading.Event) -> None:
        self.conn = conn
        self.stop = stop
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def drain(self) -> None:
        """Read and ignore everything until the client closes (or stop)."""
        while self.line() is not None:
            pass

    def line(self, idle: float | None = None) -> bytes | object | None:
        """The next line; None at EOF or stop; ``_IDLE`` after ``idle`` seconds
        of silence."""
        started = time.monotonic()
        while b"\n" not in self.buffer:
            if self.stop.is_set():
                return None
            if idle is not None and time.monotonic() - started > idle:
                return _IDLE
            try:
                data = self.conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


# -- Postfix ---------------------------------------------------------------------------------
# A private instance following /work/shared/interop/postfix.md (Debian 12,
# Postfix 3.7, as root); tests/interop/conftest.py starts one per session.

POSTFIX: Final = "/usr/sbin/postfix"
POSTCONF: Final = "/usr/sbin/postconf"
SYSTEM_MAIN_CF: Final = Path("/etc/postfix/main.cf")
#: Taken around every edit of SYSTEM_MAIN_CF, here and by the benchmarks
#: (bench/servers.py MAIN_CF_LOCK: the same path).
MAIN_CF_LOCK: Final = Path(tempfile.gettempdir()) / "smtpcore-postfix-main-cf.lock"
MASTER_CF_DIST: Final = Path("/usr/share/postfix/master.cf.dist")
#: Fixed, so that the system main.cf lists one directory however often the
#: suite runs.
POSTFIX_DIR: Final = Path("/tmp/smtpcore-postfix-interop")
#: The SIZE Postfix advertises (``message_size_limit``).
POSTFIX_SIZE_LIMIT: Final = 10 * 1024 * 1024
#: Every recipient in this domain is delivered to one Maildir.
POSTFIX_DOMAIN: Final = "example.test"
_NOBODY: Final = 65534

_MAIN_CF: Final = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{nobody}
virtual_gid_maps = static:{nobody}
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
message_size_limit = {size_limit}
maillog_file = {dir}/maillog
maillog_file_prefixes = /var, /tmp
smtpd_tls_cert_file = {dir}/cert.pem
smtpd_tls_key_file = {dir}/key.pem
smtpd_tls_security_level = may
smtputf8_enable = yes
"""


def postfix_unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if not Path(POSTFIX).exists() or not Path(POSTCONF).exists():
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "the Postfix interop tests must run as root"
    return None


class PostfixServer:
    """A private Postfix on 127.0.0.1 delivering ``example.test`` to one Maildir.

    Args:
        tls: the certificate Postfix offers with STARTTLS.
        directory: its config directory (queue, Maildir and log live there too).
    """

    def __init__(self, tls: TLSMaterial, directory: Path = POSTFIX_DIR) -> None:
        self.tls = tls
        self.directory = directory
        self.port = 0
        self._started = False

    @property
    def maildir(self) -> Path:
        return self.directory / "mail" / "box"

    @property
    def maillog(self) -> Path:
        return self.directory / "maillog"

    def client_options(self, **overrides: Any) -> dict[str, Any]:
        """Connect with STARTTLS required, trusting the test CA."""
        options: dict[str, Any] = {
            "server": LOOPBACK,
            "port": self.port,
            "tls": "starttls",
            "ssl_context": self.tls.client_context(),
        }
        options.update(overrides)
        return options

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PostfixServer:
        """Write the configuration and start; raises RuntimeError (with what
        Postfix said) if it does not come up listening."""
        directory = self.directory
        if directory.exists():
            self._stop_master()  # left over from an interrupted run
            shutil.rmtree(directory)
        directory.mkdir(mode=0o755)
        directory.chmod(0o755)  # the daemons reach it through the mode, not the umask
        (directory / "queue").mkdir(mode=0o755)
        data = directory / "data"
        data.mkdir(mode=0o700)
        shutil.chown(data, user="postfix")
        mail = directory / "mail"
        mail.mkdir(mode=0o755)
        os.chown(mail, _NOBODY, _NOBODY)
        self.tls.write_server_files(directory)

        self.port = free_port()
        (directory / "master.cf").write_text(self._master_cf(), encoding="utf-8")
        (directory / "main.cf").write_text(
            _MAIN_CF.format(
                dir=directory, domain=POSTFIX_DOMAIN, nobody=_NOBODY, size_limit=POSTFIX_SIZE_LIMIT
            ),
            encoding="utf-8",
        )
        self._allow_config_dir()

        started = _run(POSTFIX, "-c", str(directory), "start")
        self._started = True
        if started.returncode != 0:
            why = self._syslog_says()
            raise RuntimeError(
                f"postfix -c {directory} start failed ({started.returncode}):\n"
                f"{started.stdout}{started.stderr}\n{why}"
            )
        if not wait_until(self._listening, timeout=WAIT, step=0.1):
            raise RuntimeError(f"Postfix did not listen on {LOOPBACK}:{self.port} within {WAIT} s")
        return self

    def stop(self) -> None:
        """Stop Postfix and remove its directory."""
        if self._started:
            self._started = False
            self._stop_master()
            shutil.rmtree(self.directory, ignore_errors=True)

    def _master_cf(self) -> str:
        # Recipe step 3: the smtp service on our port, without chroot.
        text = MASTER_CF_DIST.read_text(encoding="utf-8")
        line = f"{self.port}      inet  n       -       n       -       -       smtpd"
        text, count = re.subn(r"^smtp\s+inet\s.*$", line, text, count=1, flags=re.MULTILINE)
        if count != 1:
            raise RuntimeError(f"no 'smtp inet' line in {MASTER_CF_DIST}")
        return text

    def _allow_config_dir(self) -> None:
        # Recipe step 2: `postfix -c DIR` needs DIR in the system main.cf's
        # alternate_config_directories. Appended once; later runs find it.
        # The benchmarks' Postfix (bench/servers.py) edits the same file,
        # perhaps at the same time in a parallel run: both take its lock.
        with MAIN_CF_LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._add_config_dir()

    def _add_config_dir(self) -> None:
        current = _run(
            POSTCONF, "-c", str(SYSTEM_MAIN_CF.parent), "-h", "alternate_config_directories"
        )
        listed = [d for d in re.split(r"[\s,]+", current.stdout.strip()) if d]
        if str(self.directory) in listed:
            return
        value = ", ".join([*listed, str(self.directory)])
        with SYSTEM_MAIN_CF.open("a", encoding="utf-8") as main_cf:
            main_cf.write("\n# Added by the smtpcore interop tests.\n")
            main_cf.write(f"alternate_config_directories = {value}\n")

    def _listening(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                return True
        except OSError:
            return False

    def _stop_master(self) -> None:
        pid_file = self.directory / "queue" / "pid" / "master.pid"
        pid = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().split()[0])
        _run(POSTFIX, "-c", str(self.directory), "stop")
        if pid is not None:
            wait_until(lambda: not _alive(pid), timeout=WAIT, step=0.05)

    def _syslog_says(self) -> str:
        # Recipe step 2: Postfix reports start-up failures only to syslog.
        # With no /dev/log, listen there while trying again.
        if Path("/dev/log").exists():
            return "(see the system log)"
        lines: list[str] = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
            log.bind("/dev/log")
            try:
                log.settimeout(0.5)
                _run(POSTFIX, "-c", str(self.directory), "start")
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:
                    try:
                        lines.append(log.recv(4096).decode(errors="replace"))
                    except TimeoutError:
                        break
            finally:
                os.unlink("/dev/log")
        return "\n".join(lines) or "(nothing logged)"

    # -- what was delivered ------------------------------------------------------------------

    def delivered(self) -> list[bytes]:
        """Every message delivered so far (Maildir ``new/``), oldest first."""
        new = self.maildir / "new"
        if not new.is_dir():
            return []
        contents = []
        for path in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns):
            try:
                contents.append(path.read_bytes())
            except FileNotFoundError:  # moved away meanwhile
                continue
        return contents

    def wait_for(
        self, predicate: Callable[[bytes], bool], count: int = 1, timeout: float = WAIT
    ) -> list[bytes]:
        """The delivered messages matching ``predicate``, once there are
        ``count`` of them (polls for up to ``timeout`` seconds)."""
        found: list[bytes] = []

        def ready() -> bool:
            found[:] = [m for m in self.delivered() if predicate(m)]
            return len(found) >= count

        if not wait_until(ready, timeout=timeout, step=0.05):
            log = self.maillog.read_text(errors="replace")[-3000:] if self.maillog.exists() else ""
            raise AssertionError(
                f"{len(found)} of {count} message(s) delivered in {timeout} s; maillog tail:\n{log}"
            )
        return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- one API for every adapter ---------------------------------------------------------------

#: Every flavour the adapter tests run on: an adapter, and for the anyio
#: adapter the event loop under it (``anyio-trio`` is smtpcore.adapters.anyio
#: under ``anyio.run(..., backend="trio")``).
ADAPTERS: Final = ("blocking", "asyncio", "trio", "anyio-asyncio", "anyio-trio")


def load_flavor(name: str) -> Flavor:
    """The flavour ``name`` (one of :data:`ADAPTERS`) behind the common facade.

    An adapter module that does not exist yet skips the test (with the
    reason shown); an adapter that exists but fails to import fails it.
    """
    adapter, _, event_loop = name.partition("-")
    # The blocking adapter is called from an asyncio test (and blocks it).
    event_loop = event_loop or ("trio" if adapter == "trio" else "asyncio")
    module_name = f"smtpcore.adapters.{adapter}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        pytest.skip(f"{module_name} does not exist yet")
    return Flavor(name=name, module=module, event_loop=event_loop)


@dataclass(frozen=True)
class Flavor:
    """One adapter with an async API whatever its own is.

    Attributes:
        name: the flavour, as in :data:`ADAPTERS` (``"anyio-trio"``).
        module: the adapter module (``smtpcore.adapters.anyio``).
        event_loop: ``"asyncio"`` or ``"trio"``: the loop the test runs on.
    """

    name: str
    module: ModuleType
    event_loop: str

    @property
    def module_name(self) -> str:
        """The adapter module's name (``smtpcore.adapters.anyio``)."""
        return self.module.__name__

    @property
    def adapter(self) -> str:
        """The adapter's short name: ``blocking``, ``asyncio``, ``trio`` or ``anyio``."""
        return self.module_name.rsplit(".", 1)[-1]

    @property
    def is_async(self) -> bool:
        return self.adapter != "blocking"

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an adapter function, awaiting it when the adapter is async."""
        result = function(*args, **kwargs)
        if self.is_async:
            result = await result
        return result

    async def send(self, *args: Any, **kwargs: Any) -> SendResult | None:
        """The adapter's ``send``."""
        result: SendResult | None = await self.call(self.module.send, *args, **kwargs)
        return result

    async def send_ok(self, *args: Any, **kwargs: Any) -> SendResult:
        """``send`` without callbacks: the result, which must be there."""
        result = await self.send(*args, **kwargs)
        assert isinstance(result, SendResult), result
        return result

    @asynccontextmanager
    async def client(self, *args: Any, **kwargs: Any) -> AsyncIterator[ClientHandle]:
        """``with Client(...)`` or ``async with Client(...)``."""
        client = self.module.Client(*args, **kwargs)
        if self.is_async:
            async with client:
                yield ClientHandle(self, client)
        else:
            with client:
                yield ClientHandle(self, client)

    @asynccontextmanager
    async def pool(self, *args: Any, size: int, **kwargs: Any) -> AsyncIterator[PoolHandle]:
        """``with Pool(...)`` or ``async with Pool(...)``."""
        pool = self.module.Pool(*args, size=size, **kwargs)
        if self.is_async:
            async with pool:
                yield PoolHandle(self, pool)
        else:
            with pool:
                yield PoolHandle(self, pool)


@dataclass(frozen=True)
class ClientHandle:
    """A connected ``Client`` of any adapter."""

    flavor: Flavor
    client: Any

    async def send_message(self, *args: Any, **kwargs: Any) -> MessageResult:
        result: MessageResult = await self.flavor.call(self.client.send_message, *args, **kwargs)
        return result

    async def send_many(
        self, messages: Iterable[Mapping[str, Any]]
    ) -> list[MessageResult | SMTPError]:
        results: list[MessageResult | SMTPError] = await self.flavor.call(
            self.client.send_many, list(messages)
        )
        return results

    async def noop(self) -> Reply:
        reply: Reply = await self.flavor.call(self.client.noop)
        return reply

    async def close(self) -> None:
        await self.flavor.call(self.client.close)

    @property
    def transcript(self) -> tuple[TranscriptEntry, ...]:
        transcript: tuple[TranscriptEntry, ...] = self.client.transcript
        return transcript


@dataclass(frozen=True)
class PoolHandle:
    """A ``Pool`` of any adapter."""

    flavor: Flavor
    pool: Any

    async def send_message(self, *args: Any, **kwargs: Any) -> MessageResult:
        result: MessageResult = await self.flavor.call(self.pool.send_message, *args, **kwargs)
        return result

    async def send_many(
        self, messages: Iterable[Mapping[str, Any]]
    ) -> list[MessageResult | SMTPError]:
        results: list[MessageResult | SMTPError] = await self.flavor.call(
            self.pool.send_many, list(messages)
        )
        return results
