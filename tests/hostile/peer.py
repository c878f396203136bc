"""A scripted, byte-exact SMTP peer for hostile-server tests.

In the spirit of Exim's test ``server`` program and the EAST fake mail
server: a real TCP server on 127.0.0.1 that plays a script, step by step,
against whatever client connects, and records every byte the client sent.
Tests then assert what the client did, and above all what it never did (no
AUTH, no MAIL, no body byte after a refusal or an attack).

A script is a sequence of steps:

* :class:`Expect`: read one client line; it must end with CRLF and match
  (exact bytes, without the CRLF, or a regex fullmatch). A mismatch is
  recorded in ``failures`` and our side of the connection is closed.
* :class:`Send`: write bytes exactly as given (Python bytes literals carry
  bare CR, LF, NUL, ESC...). Several parts are written separately with a
  short pause between them, so that they land in different segments.
* :class:`Respond`: read one client line and write what a function makes of
  it (for SCRAM, whose server-first depends on the client nonce).
* :class:`Pause`: sleep.
* :class:`StartTLS`: run the server side of a TLS handshake (a memory-BIO
  SSLObject over the raw socket, so every byte stays observable).
* :class:`ReadUntil`: read bytes up to a terminator (message data).
* :class:`ReadExactly`: read a number of bytes (BDAT chunks).
* :class:`Flood`: write the same chunk again and again until the client
  closes (or a cap is reached): an endless line, endless continuations.
* :class:`Drip`: write bytes one at a time, slowly (slowloris replies).
* :class:`Close`: end our side (TLS close_notify first, then FIN) and wait
  for the client's EOF (what it sends meanwhile is in ``after_script``);
  :class:`Reset`: abort with RST.
* :class:`Deaf`: stop reading for a while (the client's writes block).
* :class:`AwaitEOF`: say nothing until the client closes (a stall).

After the last step the peer keeps reading until the client closes: anything
received then is in ``after_script`` (usually it must be empty).

Every wait is bounded (:data:`WAIT`), and the peer only listens on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, NoReturn

import anyio

__all__ = [
    "LOOPBACK",
    "WAIT",
    "AwaitEOF",
    "BODY",
    "EHLO",
    "MAIL",
    "RCPT",
    "RCPT_TO",
    "SENDER",
    "Close",
    "ConnRecord",
    "Deaf",
    "Drip",
    "Expect",
    "Flood",
    "Pause",
    "Peer",
    "ReadExactly",
    "ReadUntil",
    "Reset",
    "Respond",
    "ScramServer",
    "Send",
    "StartTLS",
    "Step",
    "data",
    "delivery",
    "ehlo_reply",
    "envelope",
    "goodbye",
    "greet",
    "hello",
]

LOOPBACK: Final = "127.0.0.1"
#: Upper bound on any single wait for the client.
WAIT: Final = 5.0
#: How often blocking loops look at the stop flag.
_POLL: Final = 0.005
#: The longest client line an Expect accepts (RFC 5321 4.5.3.1.4 says 512).
_MAX_LINE: Final = 64 * 1024


# -- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """Read one client line (CRLF-terminated) and check it.

    ``pattern`` is the exact line without CRLF (bytes) or a regex that must
    fullmatch it.
    """

    pattern: bytes | re.Pattern[bytes]

    def matches(self, line: bytes) -> bool:
        if isinstance(self.pattern, bytes):
            return line == self.pattern
        return self.pattern.fullmatch(line) is not None

    def show(self) -> str:
        if isinstance(self.pattern, bytes):
            return repr(self.pattern)
        return f"/{self.pattern.pattern!r}/"


@dataclass(frozen=True)
class Send:
    """Write ``parts``, each in its own write, ``gap`` seconds apart."""

    parts: tuple[bytes, ...]
    gap: float = 0.05

    def __init__(self, *parts: bytes, gap: float = 0.05) -> None:
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "gap", gap)


@dataclass(frozen=True)
class Respond:
    """Read one client line (without CRLF) and write ``make(line)``."""

    make: Callable[[bytes], bytes]


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class StartTLS:
    """Server side of a TLS handshake (``context``: the peer's default if None).

    Before the handshake the peer looks at the client's first bytes: if they
    are not a TLS handshake record, the client spoke plaintext after the 220
    (recorded as a failure); if the client closes instead, the script ends.
    ``inject`` is written in plaintext once the ClientHello is there, before
    our ServerHello: bytes injected after the handshake began.
    """

    context: ssl.SSLContext | None = None
    inject: bytes = b""


@dataclass(frozen=True)
class ReadUntil:
    """Read up to and including ``terminator``; the bytes go to ``bodies``."""

    terminator: bytes = b"\r\n.\r\n"


@dataclass(frozen=True)
class ReadExactly:
    """Read exactly ``count`` bytes; they go to ``bodies``."""

    count: int


@dataclass(frozen=True)
class Flood:
    """Write ``prefix`` then ``chunk`` over and over until the client closes
    or ``limit`` bytes went out."""

    chunk: bytes
    prefix: bytes = b""
    limit: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class Drip:
    """Write ``data`` one byte at a time, ``interval`` seconds apart (stops
    early if the client closes)."""

    data: bytes
    interval: float


@dataclass(frozen=True)
class Close:
    """Close our side cleanly (close_notify under TLS, then FIN) and wait for
    the client's EOF."""


@dataclass(frozen=True)
class Reset:
    """Abort the connection with a TCP RST."""


@dataclass(frozen=True)
class Deaf:
    """Stop reading for ``seconds`` (or until the client aborts): a server
    that no longer takes data, so that the client's writes block."""

    seconds: float


@dataclass(frozen=True)
class AwaitEOF:
    """Read (and record) until the client closes; say nothing."""


Step = (
    Expect
    | Send
    | Respond
    | Pause
    | StartTLS
    | ReadUntil
    | ReadExactly
    | Flood
    | Drip
    | Close
    | Reset
    | Deaf
    | AwaitEOF
)


# -- what one connection saw -----------------------------------------------------------------


@dataclass
class ConnRecord:
    """Everything one connection saw.

    Attributes:
        received: every application byte the client sent, in order
            (decrypted once TLS is up; TLS records themselves are not here).
        plaintext: the part of ``received`` that came before TLS.
        lines: each line an Expect or Respond step consumed (without CRLF).
        bodies: what ReadUntil/ReadExactly steps consumed.
        after_script: what the client sent after the last step.
        failures: script mismatches (the client did something unscripted).
        tls_up: the handshake completed.
        tls_error: why the handshake failed, if it did.
        finished: the script ran to its end.
        client_closed: the client closed (EOF or RST) before we stopped.
        aborted: a Reset step closed the connection from our side.
        flooded: bytes written by Flood and Drip steps.
    """

    received: bytearray = field(default_factory=bytearray)
    plaintext: bytearray = field(default_factory=bytearray)
    lines: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    after_script: bytearray = field(default_factory=bytearray)
    failures: list[str] = field(default_factory=list)
    tls_up: bool = False
    tls_error: str | None = None
    finished: bool = False
    client_closed: bool = False
    aborted: bool = False
    flooded: int = 0

    def commands(self) -> list[bytes]:
        """Every CRLF line the client sent (message data included)."""
        return bytes(self.received).split(b"\r\n")[:-1]

    def verbs(self) -> list[bytes]:
        """The first word of each line, upper-cased."""
        return [line.split(b" ", 1)[0].upper() for line in self.commands()]


class _Ended(Exception):  # noqa: N818 - control flow, not an error
    """The script cannot go on (client closed, mismatch, stop)."""


class _Channel:
    """A socket, plaintext or through a memory-BIO TLS object."""

    def __init__(self, sock: socket.socket, stop: threading.Event, record: ConnRecord) -> None:
        self.sock = sock
        self.stop = stop
        self.record = record
        self.buffer = bytearray()
        self.tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.eof = False
        self.recording = True

    # -- raw socket ----------------------------------------------------------

    def _raw_recv(self, deadline: float) -> bytes:
        """Raw bytes, b"" at EOF (or RST); _Ended at the deadline or stop."""
        while True:
            if self.stop.is_set():
                raise _Ended("peer stopped")
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Ended("timed out waiting for the client")
            ready, _, _ = select.select([self.sock], [], [], min(left, _POLL))
            if not ready:
                continue
            try:
                data = self.sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                self.record.client_closed = True
            return data

    def _raw_send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Ended(f"client went away while we wrote: {exc}") from None

    def peek(self, deadline: float) -> bytes:
        """The first raw bytes waiting, without consuming them (b"" at EOF)."""
        while True:
            if self.stop.is_set():
                raise _Ended("peer stopped")
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Ended("timed out waiting for the client")
            ready, _, _ = select.select([self.sock], [], [], min(left, _POLL))
            if ready:
                try:
                    return self.sock.recv(16, socket.MSG_PEEK)
                except ConnectionError:
                    return b""

    # -- application bytes ---------------------------------------------------

    def recv(self, deadline: float) -> bytes:
        """Application bytes (decrypted under TLS), b"" at EOF."""
        data = self._raw_recv(deadline) if self.tls is None else self._tls_recv(deadline)
        if not data:
            if self.tls is not None and not self.record.client_closed:
                # TLS ended (close_notify or a broken record): wait for the
                # TCP connection itself to close.
                with contextlib.suppress(_Ended):
                    while self._raw_recv(deadline):
                        pass
            self.eof = True
            return b""
        if self.recording:
            self.record.received += data
            if self.tls is None:
                self.record.plaintext += data
        return data

    def _tls_recv(self, deadline: float) -> bytes:
        tls = self.tls
        assert tls is not None
        while True:
            try:
                return tls.read(65536)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError:
                return b""
            raw = self._raw_recv(deadline)
            if not raw:
                return b""
            self._in.write(raw)

    def send(self, data: bytes) -> None:
        if self.tls is None:
            self._raw_send(data)
            return
        self.tls.write(data)
        self._flush()

    def _flush(self) -> None:
        pending = self._out.read()
        if pending:
            self._raw_send(pending)

    def fill(self, deadline: float) -> None:
        """Receive more into the buffer (_Ended at EOF)."""
        data = self.recv(deadline)
        if not data:
            raise _Ended("client closed the connection")
        self.buffer += data

    def line(self, deadline: float) -> bytes:
        """One line up to LF, LF included."""
        while b"\n" not in self.buffer:
            if len(self.buffer) > _MAX_LINE:
                raise _Ended("client line too long")
            self.fill(deadline)
        end = self.buffer.index(b"\n") + 1
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        return line

    def until(self, terminator: bytes, deadline: float) -> bytes:
        # Each search starts where the last one could not match: a body of
        # many megabytes costs one pass, not one per read.
        start = 0
        while (found := self.buffer.find(terminator, start)) < 0:
            start = max(0, len(self.buffer) - len(terminator) + 1)
            self.fill(deadline)
        end = found + len(terminator)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    def exactly(self, count: int, deadline: float) -> bytes:
        while len(self.buffer) < count:
            self.fill(deadline)
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def drain(self, deadline: float, into: bytearray | None = None) -> None:
        """Read until the client closes (or the deadline); keep what came."""
        if into is not None:
            into += self.buffer
        self.buffer.clear()
        with contextlib.suppress(_Ended):
            while True:
                data = self.recv(deadline)
                if not data:
                    return
                if into is not None:
                    into += data

    # -- TLS -----------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext, deadline: float) -> None:
        tls = context.wrap_bio(self._in, self._out, server_side=True)
        while True:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                raw = self._raw_recv(deadline)
                if not raw:
                    raise _Ended("client closed during the TLS handshake") from None
                self._in.write(raw)
                continue
            except (ssl.SSLError, OSError) as exc:
                with contextlib.suppress(_Ended):
                    self._flush()  # our alert, if any
                self.record.tls_error = str(exc)
                raise _Ended(f"TLS handshake failed: {exc}") from None
            self._flush()
            break
        self.tls = tls
        self.record.tls_up = True

    def close_notify(self) -> None:
        if self.tls is not None:
            with contextlib.suppress(ssl.SSLError, _Ended):
                self.tls.unwrap()
            with contextlib.suppress(_Ended):
                self._flush()


# -- the server ------------------------------------------------------------------------------


class Peer:
    """A scripted server on 127.0.0.1: connection *n* plays ``scripts[n]``.

    Args:
        *scripts: one script per expected connection, in order. A further
            connection is recorded as a failure and closed at once.
        tls_context: the server context StartTLS steps use by default.
        receive_buffer: SO_RCVBUF for every connection (a small one makes
            a client's large write block as soon as the peer stops reading).
    """

    def __init__(
        self,
        *scripts: Sequence[Step],
        tls_context: ssl.SSLContext | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        self.scripts = [tuple(script) for script in scripts]
        self.tls_context = tls_context
        self.records: list[ConnRecord] = []
        self.unexpected_connections = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._active = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if receive_buffer is not None:
            # Before listen(): accepted connections take it, window included.
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(8)
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Peer:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(WAIT)
        for thread in self._threads:
            thread.join(WAIT)
        self._listener.close()

    @property
    def idle(self) -> bool:
        """True when no connection is being served."""
        with self._lock:
            return self._active == 0

    async def settled(self, timeout: float = WAIT) -> None:
        """Wait (letting the event loop run) until every connection ended."""
        deadline = time.monotonic() + timeout
        while not self.idle and time.monotonic() < deadline:
            await anyio.sleep(_POLL)
        assert self.idle, "the peer is still serving a connection"

    @property
    def record(self) -> ConnRecord:
        """The record of the one connection the test made."""
        assert len(self.records) == 1, f"{len(self.records)} connections"
        return self.records[0]

    def options(self, **overrides: object) -> dict[str, object]:
        """Adapter keyword arguments that reach this peer (plaintext, 2 s
        timeouts unless overridden)."""
        options: dict[str, object] = {
            "server": LOOPBACK,
            "port": self.port,
            "tls": "none",
            "timeout": 2.0,
        }
        options.update(overrides)
        return options

    # -- serving -------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                index = len(self.records) + self.unexpected_connections
                if index >= len(self.scripts):
                    self.unexpected_connections += 1
                    conn.close()
                    continue
                record = ConnRecord()
                self.records.append(record)
                self._active += 1
            thread = threading.Thread(
                target=self._serve, args=(conn, self.scripts[index], record), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, script: Iterable[Step], record: ConnRecord) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Writes block at most this long (a client that stopped reading).
            conn.settimeout(WAIT)
            channel = _Channel(conn, self._stop, record)
            try:
                for number, step in enumerate(script, 1):
                    if channel.eof:
                        record.failures.append(f"step {number}: the connection is closed")
                        break
                    self._play(channel, step, number)
                else:
                    record.finished = True
            except _Ended:
                pass
            if not channel.eof:
                channel.drain(time.monotonic() + WAIT, record.after_script)
        finally:
            conn.close()
            with self._lock:
                self._active -= 1

    def _play(self, channel: _Channel, step: Step, number: int) -> None:
        record = channel.record
        deadline = time.monotonic() + WAIT
        if isinstance(step, Expect):
            line = channel.line(deadline)
            record.lines.append(line.rstrip(b"\r\n"))
            if not line.endswith(b"\r\n") or not step.matches(line[:-2]):
                record.failures.append(f"step {number}: expected {step.show()}, got {line!r}")
                self._hang_up(channel)
        elif isinstance(step, Send):
            for i, part in enumerate(step.parts):
                if i:
                    time.sleep(step.gap)
                channel.send(part)
        elif isinstance(step, Respond):
            line = channel.line(deadline)
            record.lines.append(line.rstrip(b"\r\n"))
            if not line.endswith(b"\r\n"):
                record.failures.append(f"step {number}: line without CRLF: {line!r}")
                self._hang_up(channel)
            channel.send(step.make(line[:-2]))
        elif isinstance(step, Pause):
            time.sleep(step.seconds)
        elif isinstance(step, StartTLS):
            self._start_tls(channel, step, number, deadline)
        elif isinstance(step, ReadUntil):
            record.bodies.append(channel.until(step.terminator, deadline))
        elif isinstance(step, ReadExactly):
            record.bodies.append(channel.exactly(step.count, deadline))
        elif isinstance(step, Flood):
            self._flood(channel, step)
        elif isinstance(step, Drip):
            for byte in step.data:
                if self._client_gone(channel):
                    raise _Ended("client closed during the drip")
                channel.send(bytes([byte]))
                record.flooded += 1
                time.sleep(step.interval)
        elif isinstance(step, Close):
            tls = channel.tls is not None
            channel.close_notify()
            with contextlib.suppress(OSError):
                channel.sock.shutdown(socket.SHUT_WR)
            if tls:
                # The client may answer our close_notify with its own: TLS
                # bytes, not application data. Only the TCP EOF matters now.
                channel.tls = None
                channel.recording = False
            channel.drain(deadline, None if tls else record.after_script)
            channel.eof = True
        elif isinstance(step, Reset):
            channel.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            channel.eof = record.aborted = True
        elif isinstance(step, Deaf):
            poller = select.poll()
            poller.register(channel.sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
            end = time.monotonic() + step.seconds
            while time.monotonic() < end and not self._stop.is_set():
                # POLLRDHUP: the client shut down, even with data left unread.
                if poller.poll(_POLL * 1000):
                    break
        else:
            assert isinstance(step, AwaitEOF)
            channel.drain(deadline)

    @staticmethod
    def _hang_up(channel: _Channel) -> NoReturn:
        """The script cannot go on: close our side at once, so the client
        fails fast; what it still sends is kept in ``after_script``."""
        channel.close_notify()
        with contextlib.suppress(OSError):
            channel.sock.shutdown(socket.SHUT_WR)
        raise _Ended("script mismatch")

    def _start_tls(self, channel: _Channel, step: StartTLS, number: int, deadline: float) -> None:
        record = channel.record
        context = step.context or self.tls_context
        assert context is not None, "StartTLS needs a server context"
        if channel.buffer:
            # RFC 3207 4.2 (and CVE-2011-0411 from the other side): the client
            # must send nothing between STARTTLS and the handshake.
            record.failures.append(
                f"step {number}: plaintext pipelined after STARTTLS: {bytes(channel.buffer)!r}"
            )
            raise _Ended("plaintext before the handshake")
        first = channel.peek(deadline)
        if not first:
            channel.recv(deadline)  # consume the EOF
            raise _Ended("client closed instead of starting TLS")
        if first[0] != 0x16:  # not a TLS handshake record
            channel.drain(deadline, bytearray())
            record.failures.append(f"step {number}: plaintext instead of a TLS handshake")
            raise _Ended("plaintext instead of TLS")
        if step.inject:
            channel.send(step.inject)
        channel.start_tls(context, deadline)

    def _flood(self, channel: _Channel, step: Flood) -> None:
        record = channel.record
        channel.send(step.prefix)
        while record.flooded < step.limit:
            if self._client_gone(channel):
                raise _Ended("client closed during the flood")
            channel.send(step.chunk)
            record.flooded += len(step.chunk)

    @staticmethod
    def _client_gone(channel: _Channel) -> bool:
        """True when the client closed (EOF or RST waiting to be read)."""
        ready, _, _ = select.select([channel.sock], [], [], 0)
        if not ready:
            return False
        try:
            data = channel.sock.recv(1, socket.MSG_PEEK)
        except ConnectionError:
            return True
        return not data


# -- script fragments ------------------------------------------------------------------------

SENDER: Final = "alice@example.test"
RCPT: Final = "bob@example.test"
BODY: Final = b"Subject: hostile\r\n\r\nbody\r\n"
#: The client's EHLO (the adapters' default local host name).
EHLO: Final = b"EHLO localhost"
MAIL: Final = f"MAIL FROM:<{SENDER}>".encode()
RCPT_TO: Final = f"RCPT TO:<{RCPT}>".encode()


def greet(text: bytes = b"220 peer.test ESMTP\r\n") -> list[Step]:
    return [Send(text)]


def ehlo_reply(*keywords: bytes) -> bytes:
    """A well-formed EHLO reply offering ``keywords``."""
    lines = [b"peer.test", *keywords]
    out = b"".join(b"250-" + line + b"\r\n" for line in lines[:-1])
    return out + b"250 " + lines[-1] + b"\r\n"


def hello(*keywords: bytes) -> list[Step]:
    """Greeting, EHLO and its reply."""
    return [*greet(), Expect(EHLO), Send(ehlo_reply(*keywords))]


def envelope() -> list[Step]:
    """MAIL and RCPT, one at a time (no PIPELINING offered)."""
    return [Expect(MAIL), Send(b"250 2.1.0 OK\r\n"), Expect(RCPT_TO), Send(b"250 2.1.5 OK\r\n")]


def data(reply: bytes = b"250 2.0.0 queued\r\n") -> list[Step]:
    """DATA, 354, the message data and ``reply`` to the final dot."""
    return [Expect(b"DATA"), Send(b"354 go ahead\r\n"), ReadUntil(), Send(reply)]


def goodbye() -> list[Step]:
    """QUIT, 221, and our side closed."""
    return [Expect(b"QUIT"), Send(b"221 2.0.0 bye\r\n"), Close()]


def delivery(*keywords: bytes) -> list[Step]:
    """A whole successful session, one command at a time (so ``keywords``
    must not offer PIPELINING)."""
    return [*hello(*keywords), *envelope(), *data(), *goodbye()]


class ScramServer:
    """The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) for Respond steps.

    ``first`` answers ``AUTH SCRAM-SHA-256 <client-first>`` with the
    server-first challenge computed from the client's nonce; ``final``
    checks the client proof (``proof_ok``) and answers with the server
    signature, as a 334 challenge or as additional data with 235
    (``via_235``). ``tamper`` flips a bit of the signature: an impostor that
    does not know the password.
    """

    def __init__(
        self,
        password: str,
        *,
        tamper: bool = False,
        via_235: bool = False,
        iterations: int = 4096,
    ) -> None:
        self.password = password.encode()
        self.tamper = tamper
        self.via_235 = via_235
        self.iterations = iterations
        self.salt = b"hostile-peer-salt"
        self.client_first_bare = b""
        self.server_first = b""
        self.proof_ok: bool | None = None

    def first(self, line: bytes) -> bytes:
        verb, mechanism, initial = line.split(b" ")
        assert (verb, mechanism) == (b"AUTH", b"SCRAM-SHA-256"), line
        client_first = base64.b64decode(initial, validate=True)
        assert client_first.startswith(b"n,,"), client_first
        self.client_first_bare = client_first[3:]
        attributes = dict(a.split(b"=", 1) for a in self.client_first_bare.split(b","))
        nonce = attributes[b"r"] + b"PeerNonce"
        salt = base64.b64encode(self.salt)
        self.server_first = b"r=" + nonce + b",s=" + salt + b",i=" + str(self.iterations).encode()
        return b"334 " + base64.b64encode(self.server_first) + b"\r\n"

    def final(self, line: bytes) -> bytes:
        client_final = base64.b64decode(line, validate=True)
        without_proof, _, proof = client_final.rpartition(b",p=")
        auth_message = b",".join((self.client_first_bare, self.server_first, without_proof))
        salted = hashlib.pbkdf2_hmac("sha256", self.password, self.salt, self.iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.proof_ok = base64.b64decode(proof) == expected
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        server_signature = hmac.digest(server_key, auth_message, "sha256")
        if self.tamper:
            server_signature = bytes([server_signature[0] ^ 1]) + server_signature[1:]
        verifier = base64.b64encode(b"v=" + base64.b64encode(server_signature))
        if self.via_235:
            return b"235 2.7.0 " + verifier + b"\r\n"
        return b"334 " + verifier + b"\r\n"
