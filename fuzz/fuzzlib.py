"""What the harnesses share: the input format, the client-wire oracle and replay mode.

Input format
------------
The harnesses read their input as type-length-value records, the shape of
curl's ``curl_fuzzer`` (which fuzzes curl's SMTP client the same way)::

    record = type (1 octet) | length (2 octets, big-endian) | value (length octets)

A record cut short by the end of the input takes what is left, and unknown
types are skipped, so every input decodes to *something*: mutations stay
meaningful. The same pure-Python decoder runs under atheris and in replay
mode, so a corpus file means the same thing in both (libFuzzer's
``FuzzedDataProvider`` consumes integers from the *end* of the input, an
order that a reproducible, hand-written corpus cannot follow easily).

The client-wire oracle
----------------------
:class:`WireMonitor` reads every byte a session writes, as a server would,
and every byte the server sent. It raises :class:`OracleError` when:

1. a CR or LF is written other than as CRLF (RFC 5321 2.3.8), in command
   lines and in message data alike; only the payload of a ``BDAT`` chunk of a
   ``BODY=BINARYMIME`` transaction may hold any octet (RFC 3030 3);
2. the message data sent after a 354 reply is not exactly the dot-stuffed,
   CRLF-canonical message followed by ``.<CRLF>``: so the only
   ``<CRLF>.<CRLF>`` between 354 and the reply is the terminator. The lone
   ``.<CRLF>`` is required instead when MAIL or every RCPT of the
   transaction was refused (RFC 2920 3.1), and allowed only then;
3. the chunks of one ``BDAT`` transaction do not add up to exactly the
   canonical message (the raw message with BINARYMIME), or a ``BDAT n`` line
   is not followed by n octets;
4. with TLS required (the STARTTLS policy) and no TLS established, anything
   but ``EHLO``, ``LHLO``, ``STARTTLS`` or ``QUIT`` is written (so no ``AUTH``,
   no ``MAIL``, no credentials); ``AUTH`` is written without TLS and without
   ``allow_insecure_auth``; anything is written after a 220 to ``STARTTLS``
   and before the handshake (RFC 3207 4.2);
5. after the session's ``error`` became set, anything but one ``QUIT<CRLF>``
   is written; anything is written after ``QUIT``; a Write comes after Close;
6. the client writes before the reply to a command that ends a pipelined
   group (RFC 2920 3.1: EHLO, DATA, AUTH, STARTTLS, QUIT, NOOP, VRFY, EXPN;
   every command when PIPELINING is not in use), or before the greeting; or
   it writes although the server sent more replies than it was sent
   commands (a reply sent before its command was paired with it);
7. a command line is not a command the client may send, carries a control
   character, or names an address the caller did not give (MAIL, RCPT), or
   its path does not end where the address ends (parameter smuggling).

Replies are counted with a deliberately simple reader (one reply per line
whose fourth octet is not ``-``) and paired with commands in order, one each,
except that in LMTP the end of the data gets one per RCPT answered 2xx
(RFC 2033 4.2). Where the reader disagrees with the real parser the input is
malformed, the session must already have stopped, and rule 5 holds.
"""

from __future__ import annotations

import enum
import random
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

__all__ = [
    "CORPUS_DIR",
    "FUZZ_DIR",
    "ReplayError",
    "ReplayStats",
    "OracleError",
    "WireMonitor",
    "canonical_body",
    "corpus_inputs",
    "data_wire",
    "dot_stuff",
    "encode_records",
    "mutate",
    "path_end",
    "record",
    "records",
    "replay",
]

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"

#: The largest value a record can carry.
MAX_VALUE_LENGTH = 0xFFFF


class OracleError(AssertionError):
    """An oracle found the core misbehaving."""


# -- input format ----------------------------------------------------------------


def records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Split ``data`` into (type, value) records (see the module docstring)."""
    pos = 0
    end = len(data)
    while pos < end:
        kind = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")
        value = data[pos + 3 : pos + 3 + length]
        pos += 3 + length
        yield kind, value


def record(kind: int, value: bytes = b"") -> bytes:
    """Encode one record."""
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"record type out of range: {kind}")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"record value too long: {len(value)} octets")
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def encode_records(items: Iterable[tuple[int, bytes]]) -> bytes:
    """Encode a sequence of (type, value) records."""
    return b"".join(record(kind, value) for kind, value in items)


# -- message data, computed independently of smtpcore._message ----------------------

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def canonical_body(body: bytes) -> bytes:
    """The body as SMTP text: every CRLF, bare CR and bare LF becomes CRLF
    (RFC 5321 2.3.8), and non-empty text ends with CRLF (RFC 5321 4.1.1.4)."""
    text = _LINE_BREAK.sub(b"\r\n", body)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def dot_stuff(canonical: bytes) -> bytes:
    """RFC 5321 4.5.2: one more dot before every line that starts with a dot."""
    return b"\r\n".join(
        b"." + line if line.startswith(b".") else line for line in canonical.split(b"\r\n")
    )


def data_wire(body: bytes) -> bytes:
    """What goes on the wire after 354: stuffed canonical text, then ``.<CRLF>``."""
    return dot_stuff(canonical_body(body)) + b".\r\n"


# -- the client-wire oracle ------------------------------------------------------------------

# RFC 2920 3.1: commands after which the client waits for the reply.
_GROUP_ENDERS = frozenset(
    {b"EHLO", b"HELO", b"LHLO", b"STARTTLS", b"AUTH", b"DATA", b"QUIT", b"NOOP", b"VRFY", b"EXPN"}
)
_VERBS = _GROUP_ENDERS | {b"MAIL", b"RCPT", b"BDAT", b"RSET"}
# RFC 3207 4 / the STARTTLS policy: all a client may say before TLS is up.
_PRE_TLS = frozenset({b"EHLO", b"LHLO", b"STARTTLS", b"QUIT"})
_MAIL_PARAMS = frozenset({b"SIZE", b"BODY", b"SMTPUTF8", b"RET", b"ENVID", b"AUTH", b"REQUIRETLS"})
_RCPT_PARAMS = frozenset({b"NOTIFY", b"ORCPT"})
# RFC 4954 4: a continuation line is base64 or "*".
_CONTINUATION = re.compile(rb"[A-Za-z0-9+/]*={0,2}|\*")
_CONTROLS = re.compile(rb"[\x00-\x1f\x7f]")
_BDAT = re.compile(rb"BDAT ([0-9]{1,20})( LAST)?")


class _Mode(enum.Enum):
    COMMAND = "command"
    DATA = "data"  # after a 354: lines up to the terminator
    CHUNK = "chunk"  # inside the payload of a BDAT chunk


class WireMonitor:
    """Checks everything a client session writes (rules in the module docstring).

    Args:
        bodies: the message each envelope sender carries (senders must be
            distinct per message).
        recipients: every recipient address the caller gave.
        tls_required: the STARTTLS policy is in force.
        tls_active: TLS is on from the start (implicit TLS).
        lmtp: the session speaks LMTP (RFC 2033).
        insecure_auth: ``allow_insecure_auth`` is set.
        pipelining: tells, at each write, whether PIPELINING is in use.
    """

    def __init__(
        self,
        *,
        bodies: Mapping[str, bytes],
        recipients: Collection[str],
        tls_required: bool = False,
        tls_active: bool = False,
        insecure_auth: bool = False,
        lmtp: bool = False,
        pipelining: Callable[[], bool] = lambda: False,
    ) -> None:
        # Kept by reference: a caller may submit more messages as it goes.
        self._bodies = bodies
        self._recipients = recipients
        self._tls_required = tls_required
        self._tls = tls_active
        self._insecure_auth = insecure_auth
        self._pipelining = pipelining
        self._lmtp = lmtp
        # Client side.
        self._buf = bytearray()
        self._mode = _Mode.COMMAND
        self._chunk_left = 0
        self._chunk_last = False
        self._region = bytearray()
        self._bdat = bytearray()
        self._sender: str | None = None
        self._binary = False
        self._commands = 0
        # Per command: (verb, transaction number), to pair replies with them.
        self._sent: list[tuple[bytes, int]] = []
        self._txn = 0
        self._must_have = 1  # replies needed before the next unit: the greeting
        self._pending: bytes | None = None  # DATA, AUTH or STARTTLS awaiting its reply
        self._unit: str | None = None  # what the unit being written is, once decided
        self._quit = False
        self._after_error_writes = 0
        self._closed = False
        # Server side.
        self._sbuf = bytearray()
        self._replies = 0
        self._last_code = 0
        self._codes: list[int] = []
        self._w_replies = 0
        self._w_code = 0
        # What was seen, for tests.
        self.client = bytearray()
        self.command_lines: list[bytes] = []
        self.data_regions: list[bytes] = []
        self.bdat_bodies: list[bytes] = []
        self.bdat_sizes: list[int] = []

    # -- inputs ----------------------------------------------------------------

    def server_bytes(self, data: bytes) -> None:
        """Bytes given to ``receive_data``."""
        self._sbuf += data
        while True:
            lf = self._sbuf.find(b"\n")
            if lf < 0:
                return
            line = bytes(self._sbuf[: lf + 1])
            del self._sbuf[: lf + 1]
            if len(line) >= 4 and line[:3].isdigit() and line[3:4] != b"-":
                self._replies += 1
                self._last_code = int(line[:3])
                self._codes.append(self._last_code)

    def tls_established(self) -> None:
        """``tls_established()`` was called: RFC 3207 4.2, the server starts afresh."""
        self._tls = True
        self._sbuf.clear()

    def write(self, data: bytes, *, after_error: bool) -> None:
        """A Write action's bytes; ``after_error``: the session's error is set."""
        if self._closed:
            self._fail("Write after Close")
        if after_error:
            # Rule 5: after a fatal error, at most a QUIT.
            if data != b"QUIT\r\n" or self._after_error_writes:
                self._fail(f"wrote {data[:60]!r} after the session's error was set")
            self._after_error_writes += 1
        self._w_replies, self._w_code = self._replies, self._last_code
        self.client += data
        if data and self._mode is _Mode.COMMAND and not self._buf:
            # A unit (command or message data) starts with this write: decide
            # now, from the replies in, what it is; a partial first line of
            # data must already count as data.
            kind = self._begin_unit(data)
            # Data switched the mode already; a command or continuation line
            # is handled when it is complete.
            self._unit = None if kind == "data" else kind
        self._buf += data
        self._drain()

    def close(self, *, error: bool) -> None:
        """The session asked for Close; ``error``: it ended with an error."""
        self._closed = True
        self.finish(error=error)

    def finish(self, *, error: bool) -> None:
        """No more bytes will be written; check that nothing is left half-done."""
        if self._mode is _Mode.CHUNK:
            self._fail(f"BDAT chunk cut short: {self._chunk_left} octets missing")
        if self._mode is _Mode.DATA:
            # Only a session that failed may stop inside the data, and what it
            # sent must still be a prefix of the message (no smuggled end).
            if not error:
                self._fail("message data not terminated, and the session reported no error")
            sent = bytes(self._region + self._buf)
            if not self._expected_data().startswith(sent):
                self._fail(f"unterminated message data differs from the message: {sent[-80:]!r}")
        elif self._buf:
            self._fail(f"incomplete command line at the end: {bytes(self._buf[:80])!r}")
        self._abort_bdat()

    # -- tokenising ------------------------------------------------------------

    def _drain(self) -> None:
        buf = self._buf
        while buf:
            if self._mode is _Mode.CHUNK:
                take = min(self._chunk_left, len(buf))
                self._bdat += buf[:take]
                del buf[:take]
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_done()
                continue
            lf = buf.find(b"\n")
            if lf < 0:
                return
            line = bytes(buf[: lf + 1])
            del buf[: lf + 1]
            # Rule 1: CR and LF only as CRLF.
            if not line.endswith(b"\r\n"):
                self._fail(f"bare LF written: {line[-60:]!r}")
            if b"\r" in line[:-2]:
                self._fail(f"bare CR written: {line[:60]!r}")
            if self._mode is _Mode.DATA:
                self._data_line(line)
                continue
            kind = self._unit if self._unit is not None else self._begin_unit(line)
            self._unit = None
            if kind == "data":
                self._data_line(line)
            elif kind == "continuation":
                self._continuation(line[:-2])
            else:
                self._command(line[:-2])

    def _begin_unit(self, head: bytes) -> str:
        """Checks before a command line or the start of message data; says
        which of the two it is, from the reply to the command before."""
        if self._quit:
            self._fail("bytes written after QUIT")
        if self._w_replies < self._must_have:
            # Rule 6 (RFC 2920 3.1, RFC 5321 3.1).
            self._fail(
                f"wrote before the reply to a group-ending command "
                f"({self._w_replies} replies seen, {self._must_have} needed); "
                f"last commands: {self.command_lines[-3:]!r}"
            )
        if self._w_replies > self._expected_replies() and not head.startswith(b"QUIT\r\n"):
            # More replies than commands, and the client went on: a reply
            # the server sent before the command (behind a 354 or 334, in
            # the same read) was taken as that command's reply. (Saying QUIT
            # to such a server is fine: nothing depends on its reply.)
            self._fail(
                f"the client went on with {self._w_replies} replies in for "
                f"{self._expected_replies()} expected: a reply sent before its command "
                f"was paired with it; last commands: {self.command_lines[-3:]!r}"
            )
        pending, self._pending = self._pending, None
        if pending == b"DATA" and self._w_code == 354:
            self._mode = _Mode.DATA
            self._region.clear()
            return "data"
        if pending == b"AUTH" and self._w_code == 334:
            return "continuation"
        if pending == b"STARTTLS" and self._w_code == 220 and not self._tls:
            self._fail("wrote in plaintext after the 220 to STARTTLS, before the handshake")
        return "command"

    def _count(self, group_ender: bool, verb: bytes = b"") -> None:
        self._sent.append((verb, self._txn))
        self._commands += 1
        if group_ender or not self._pipelining():
            self._must_have = self._commands + 1

    def _continuation(self, text: bytes) -> None:
        if _CONTINUATION.fullmatch(text) is None:
            self._fail(f"AUTH continuation line is not base64: {text[:60]!r}")
        self.command_lines.append(b"<continuation>")
        self._count(group_ender=True, verb=b"AUTH")
        self._pending = b"AUTH"

    def _command(self, text: bytes) -> None:
        self.command_lines.append(text)
        if _CONTROLS.search(text):
            self._fail(f"control character in a command line: {text[:80]!r}")
        verb = text.split(b" ", 1)[0].upper()
        if verb not in _VERBS:
            self._fail(f"not a command the client may send: {text[:80]!r}")
        # Rule 4.
        if self._tls_required and not self._tls and verb not in _PRE_TLS:
            self._fail(f"{verb.decode()} written before TLS although TLS is required")
        if verb == b"AUTH" and not self._tls and not self._insecure_auth:
            self._fail("AUTH written without TLS and without allow_insecure_auth")
        if verb == b"MAIL":
            self._mail(text)
        elif verb == b"RCPT":
            self._rcpt(text)
        elif verb == b"BDAT":
            self._bdat_line(text)
        elif verb == b"RSET":
            self._abort_bdat()
        elif verb == b"QUIT":
            self._quit = True
            self._abort_bdat()
        final = verb == b"BDAT" and self._chunk_last
        self._count(group_ender=verb in _GROUP_ENDERS, verb=b"FINAL" if final else verb)
        if verb in (b"DATA", b"AUTH", b"STARTTLS"):
            self._pending = verb

    def _mail(self, text: bytes) -> None:
        self._abort_bdat()
        self._txn += 1
        path, params = _split_path(text, b"MAIL FROM:<")
        sender = path.decode("utf-8", "surrogateescape")
        if sender != "" and sender not in self._bodies:
            self._fail(f"MAIL names a sender the caller did not give: {path[:80]!r}")
        _check_params(params, _MAIL_PARAMS)
        self._sender = sender
        self._binary = b"BODY=BINARYMIME" in params.split(b" ")

    def _rcpt(self, text: bytes) -> None:
        path, params = _split_path(text, b"RCPT TO:<")
        rcpt = path.decode("utf-8", "surrogateescape")
        if rcpt not in self._recipients and rcpt.lower() != "postmaster":
            self._fail(f"RCPT names a recipient the caller did not give: {path[:80]!r}")
        _check_params(params, _RCPT_PARAMS)

    def _bdat_line(self, text: bytes) -> None:
        match = _BDAT.fullmatch(text)
        if match is None:
            self._fail(f"malformed BDAT line: {text[:80]!r}")
        self._chunk_left = int(match.group(1))
        self._chunk_last = match.group(2) is not None
        self.bdat_sizes.append(self._chunk_left)
        self._mode = _Mode.CHUNK
        if self._chunk_left == 0:
            self._chunk_done()

    def _chunk_done(self) -> None:
        self._mode = _Mode.COMMAND
        if not self._chunk_last:
            return
        body = bytes(self._bdat)
        self._bdat.clear()
        # Rule 3: the chunks add up to exactly the message.
        if body != self._expected_bdat():
            self._fail(
                f"BDAT chunks ({len(body)} octets) are not the message "
                f"({len(self._expected_bdat())} octets)"
            )
        if not self._binary and canonical_body(body) != body:
            self._fail("BDAT payload has a bare CR or LF")
        self.bdat_bodies.append(body)

    def _abort_bdat(self) -> None:
        if self._bdat:
            sent = bytes(self._bdat)
            self._bdat.clear()
            if not self._expected_bdat().startswith(sent):
                self._fail(
                    "BDAT chunks of an abandoned transaction are not a prefix of the message"
                )

    def _data_line(self, line: bytes) -> None:
        self._region += line
        if line != b".\r\n":
            return
        # Rule 2: the first lone dot is where the server sees the end.
        region = bytes(self._region)
        self._region.clear()
        self._mode = _Mode.COMMAND
        expected = self._expected_data()
        deliverable = self._deliverable()
        if region == b".\r\n" and expected != region:
            if deliverable:
                self._fail("lone terminator although MAIL and a RCPT were accepted")
        elif region != expected:
            self._fail(f"message data differs from the dot-stuffed message: {region[:120]!r}")
        elif deliverable is False and region != b".\r\n":
            self._fail("message data sent although MAIL or every RCPT was refused")
        self.data_regions.append(region)
        self._count(group_ender=False, verb=b"FINAL")

    def _code(self, index: int) -> int | None:
        """The reply code to the ``index``-th command, if it came yet."""
        position = 1  # the greeting is reply 0
        for verb, txn in self._sent[:index]:
            if verb == b"FINAL" and self._lmtp:
                # RFC 2033 4.2: one reply per RCPT the server took.
                position += max(self._taken(txn), 1)
            else:
                position += 1
        return self._codes[position] if position < len(self._codes) else None

    def _expected_replies(self) -> int:
        """Replies the commands sent so far are owed (the greeting included)."""
        total = 1
        for verb, txn in self._sent:
            total += max(self._taken(txn), 1) if verb == b"FINAL" and self._lmtp else 1
        return total

    def _taken(self, txn: int) -> int:
        return sum(
            1
            for index, (verb, number) in enumerate(self._sent)
            if verb == b"RCPT" and number == txn and 200 <= (self._code(index) or 0) < 300
        )

    def _deliverable(self) -> bool | None:
        """Whether the current transaction has MAIL and some RCPT accepted
        (None when a reply is missing)."""
        mail = rcpt = False
        for index, (verb, txn) in enumerate(self._sent):
            if txn != self._txn or verb not in (b"MAIL", b"RCPT"):
                continue
            code = self._code(index)
            if code is None:
                return None
            ok = 200 <= code < 300
            if verb == b"MAIL":
                mail = ok
            else:
                rcpt = rcpt or ok
        return mail and rcpt

    def _body(self) -> bytes:
        if self._sender is None or self._sender not in self._bodies:
            self._fail("message data without a MAIL naming a known sender")
        return self._bodies[self._sender]

    def _expected_data(self) -> bytes:
        return data_wire(self._body())

    def _expected_bdat(self) -> bytes:
        body = self._body()
        return body if self._binary else canonical_body(body)

    def _fail(self, message: str) -> NoReturn:
        raise OracleError(message)


def path_end(line: bytes, start: int) -> int:
    """Where an RFC 5321 server ends the path whose text starts at ``start``
    (just after ``<``): at the first ``>`` outside the quoted local part and
    outside an address literal. -1 if there is none, or if SP or ``<`` come
    first outside both (no server can agree on where such a path ends).

    RFC 5321 4.1.2: Local-part = Dot-string / Quoted-string (so a quote can
    only open the local part); 4.1.3: an address-literal runs from ``[`` to
    ``]`` and its dcontent may hold ``"``, ``<`` and ``>``.
    """
    index = start
    end = len(line)
    if index < end and line[index] == 0x22:
        index += 1
        while index < end and line[index] != 0x22:
            index += 2 if line[index] == 0x5C else 1
        index += 1
    while index < end:
        char = line[index]
        if char == 0x5B:
            close = line.find(b"]", index)
            if close < 0:
                return -1
            index = close + 1
            continue
        if char == 0x3E:
            return index
        if char in b"< ":
            return -1
        index += 1
    return -1


def _split_path(text: bytes, prefix: bytes) -> tuple[bytes, bytes]:
    """Split ``MAIL FROM:<path> params`` the way an RFC 5321 server does."""
    if not text.upper().startswith(prefix.upper()):
        raise OracleError(f"malformed {prefix[:4].decode()} line: {text[:80]!r}")
    end = path_end(text, len(prefix))
    if end < 0:
        raise OracleError(f"no clean end of the path (SP or '<' inside it?): {text[:80]!r}")
    return text[len(prefix) : end], text[end + 1 :]


def _check_params(params: bytes, allowed: frozenset[bytes]) -> None:
    if not params:
        return
    if not params.startswith(b" "):
        raise OracleError(f"text right after the path: {params[:60]!r}")
    for token in params[1:].split(b" "):
        if token.split(b"=", 1)[0].upper() not in allowed:
            raise OracleError(f"unexpected parameter {token[:60]!r}")


# -- replay mode ---------------------------------------------------------------------


class ReplayError(AssertionError):
    """A harness failed on ``data`` in replay mode."""

    def __init__(self, name: str, data: bytes, error: BaseException) -> None:
        self.data = data
        self.error = error
        super().__init__(
            f"{name}: {type(error).__name__}: {error}\n  input ({len(data)} octets): {data[:400]!r}"
        )


@dataclass
class ReplayStats:
    """What a replay run did."""

    harness: str
    inputs: int = 0
    corpus: int = 0
    seconds: float = 0.0
    failures: list[ReplayError] = field(default_factory=list)


def corpus_inputs(name: str) -> list[bytes]:
    """The seed corpus of a harness, in file-name order."""
    folder = CORPUS_DIR / name
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]


def mutate(rng: random.Random, data: bytes, others: Sequence[bytes] = ()) -> bytes:
    """A few random edits of ``data`` (flips, inserts, deletes, duplicates,
    splices with another input), like a very small libFuzzer."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(out))
        if op == 0 and out:
            index = rng.randrange(len(out))
            out[index] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and out:
            del out[pos : pos + rng.randint(1, 16)]
        elif op == 3 and out:
            start = rng.randrange(len(out))
            out[pos:pos] = out[start : start + rng.randint(1, 64)]
        elif op == 4 and others:
            other = rng.choice(others)
            start = rng.randint(0, len(other))
            out[pos:] = other[start:]
        elif op == 5:
            token = rng.choice(_TOKENS)
            out[pos:pos] = token
    return bytes(out)


# Interesting octets for mutations (a tiny libFuzzer dictionary).
_TOKENS = (
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b".\r\n",
    b"\r\n.\r\n",
    b"250 ",
    b"250-",
    b"354 ",
    b"334 ",
    b"421 ",
    b"220 ",
    b"PIPELINING",
    b"CHUNKING",
    b"STARTTLS",
    b"AUTH PLAIN LOGIN",
    b"\xff\xfe",
)


def replay(
    name: str,
    test_one_input: Callable[[bytes], None],
    *,
    random_input: Callable[[random.Random], bytes],
    corpus: Sequence[bytes] | None = None,
    count: int = 200,
    seed: int = 0,
    time_limit: float | None = None,
    stop_on_failure: bool = True,
) -> ReplayStats:
    """Run a harness without atheris: every corpus input, then ``count``
    random inputs (half generated, half mutated corpus entries).

    Raises:
        ReplayError: with ``stop_on_failure``, on the first failing input.
    """
    seeds = corpus_inputs(name) if corpus is None else list(corpus)
    rng = random.Random(seed)
    stats = ReplayStats(harness=name, corpus=len(seeds))
    started = time.monotonic()

    def inputs() -> Iterator[bytes]:
        yield from seeds
        for index in range(count):
            if seeds and index % 2:
                yield mutate(rng, rng.choice(seeds), seeds)
            else:
                yield random_input(rng)

    for data in inputs():
        if time_limit is not None and time.monotonic() - started > time_limit:
            break
        stats.inputs += 1
        try:
            test_one_input(data)
        except Exception as exc:
            failure = ReplayError(name, data, exc)
            if stop_on_failure:
                raise failure from exc
            stats.failures.append(failure)
    stats.seconds = time.monotonic() - started
    return stats
