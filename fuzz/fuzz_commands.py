"""Fuzz harness: argument validation of the command constructors.

Input: ``selector (1 octet) | text``. The selector picks the constructor
(low 4 bits), whether SMTPUTF8 is in use (bit 4), how the text becomes a
``str`` (bit 5: UTF-8 with surrogate escapes, else UTF-16-LE with lone
surrogates allowed, which reaches every BMP code point), and bit 6 splits
the text at its first ``|`` into two arguments where the constructor takes
two.

Oracle: building the command either raises :class:`InvalidInputError` (and
nothing else), or gives a command whose ``to_bytes()`` is exactly one line:
CRLF at the end and nowhere else, no NUL or other control character, no
octet over 0x7F unless SMTPUTF8 is in use, no longer than its
``line_limit``; for MAIL and RCPT the path, read the way an RFC 5321 server
reads it, ends exactly after the address given (no parameter smuggling);
the transcript form is one line too. ``validate_mailbox`` and
``validate_domain`` agree with the constructors.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable

from fuzz.fuzzlib import OracleError, path_end, replay
from smtpcore import (
    Command,
    Ehlo,
    Expn,
    Helo,
    InvalidInputError,
    Lhlo,
    Mail,
    Noop,
    OutgoingMessage,
    RawCommand,
    Rcpt,
    Vrfy,
    validate_domain,
    validate_mailbox,
)

NAME = "commands"
#: libFuzzer -max_len for this harness.
MAX_LEN = 2048

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def decode(data: bytes) -> tuple[int, bool, bool, str]:
    """Split an input into (constructor, utf8, split, text)."""
    selector = data[0] if data else 0
    raw = data[1:]
    if selector & 0x20:
        text = raw.decode("utf-8", "surrogateescape")
    else:
        text = raw[: len(raw) & ~1].decode("utf-16-le", "surrogatepass")
    return selector & 0x0F, bool(selector & 0x10), bool(selector & 0x40), text


def _builders(utf8: bool, a: str, b: str) -> list[Callable[[], Command]]:
    return [
        lambda: Mail(sender=a, smtputf8=utf8),
        lambda: Rcpt(recipient=a, utf8=utf8),
        lambda: Rcpt(recipient="x@example.com", orcpt=a, utf8=utf8),
        lambda: Mail(sender="x@example.com", envid=a, smtputf8=utf8),
        lambda: Mail(sender="x@example.com", auth=a, smtputf8=utf8),
        lambda: Mail(sender="x@example.com", extra=((a, b or None),), smtputf8=utf8),
        lambda: Rcpt(recipient="x@example.com", extra=((a, b or None),), utf8=utf8),
        lambda: Vrfy(string=a, utf8=utf8),
        lambda: Expn(string=a, utf8=utf8),
        lambda: Ehlo(domain=a),
        lambda: Helo(domain=a),
        lambda: Lhlo(domain=a),
        lambda: Noop(text=a),
        lambda: RawCommand(verb=a, argument=b, utf8=utf8),
        lambda: RawCommand(verb="XCLIENT", argument=a, utf8=utf8),
        lambda: Mail(sender=a, smtputf8=utf8, size=len(b)),
    ]


def check_line(command: Command, utf8: bool) -> bytes:
    """The command's line is one clean line; returns it without CRLF."""
    line = command.to_bytes()
    if not line.endswith(b"\r\n"):
        raise OracleError(f"command line does not end with CRLF: {line[:80]!r}")
    body = line[:-2]
    if b"\r" in body or b"\n" in body:
        raise OracleError(f"CR or LF inside a command line: {line[:80]!r}")
    if _CONTROL.search(body):
        raise OracleError(f"control character in a command line: {line[:80]!r}")
    if not utf8 and not body.isascii():
        raise OracleError(f"non-ASCII in a command line without SMTPUTF8: {line[:80]!r}")
    if len(line) > command.line_limit:
        raise OracleError(f"line of {len(line)} octets over its limit {command.line_limit}")
    shown = command.transcript()
    if shown.count(b"\n") != 1 or not shown.endswith(b"\r\n"):
        raise OracleError(f"transcript form is not one line: {shown[:80]!r}")
    return body


def check_path(body: bytes, prefix: bytes, address: str) -> None:
    """The path holds exactly ``address`` and what follows is a parameter
    list or nothing."""
    encoded = address.encode("utf-8")
    end = path_end(body, len(prefix))
    if end < 0 or body[len(prefix) : end] != encoded:
        raise OracleError(f"the path a server reads is not the address: {body[:120]!r}")
    rest = body[end + 1 :]
    if rest and not rest.startswith(b" "):
        raise OracleError(f"text glued to the path: {body[:120]!r}")


def TestOneInput(data: bytes) -> None:
    """The harness entry point (atheris calls it with each input)."""
    which, utf8, two, text = decode(data)
    a, _, b = text.partition("|") if two else (text, "", "")
    build = _builders(utf8, a, b)[which]
    try:
        command = build()
    except InvalidInputError:
        command = None
    if command is not None:
        body = check_line(command, utf8)
        if isinstance(command, Mail) and which in (0, 15):
            check_path(body, b"MAIL FROM:<", a)
        elif isinstance(command, Rcpt) and which == 1 and a.lower() != "postmaster":
            check_path(body, b"RCPT TO:<", a)
    # The validators agree with the constructors that use them.
    try:
        validate_mailbox(a, field="fuzz", utf8=utf8)
        mailbox_ok = True
    except InvalidInputError:
        mailbox_ok = False
    if which == 0 and a and mailbox_ok != (command is not None):
        raise OracleError(f"validate_mailbox and Mail disagree on {a!r}")
    try:
        validate_domain(a, field="fuzz", utf8=utf8)
    except InvalidInputError:
        pass
    else:
        if which == 9 and command is None and a.isascii() and len(a) < 200:
            raise OracleError(f"validate_domain accepts {a!r} but Ehlo refuses it")
    # OutgoingMessage builds only with addresses that can go on the wire.
    try:
        message = OutgoingMessage.build(sender="x@example.com", recipients=[a], message=b"x")
    except InvalidInputError:
        return
    check_line(Rcpt(recipient=message.recipients[0], utf8=message.needs_smtputf8), True)


# -- random inputs for replay mode ---------------------------------------------------------

_PIECES = (
    "user",
    "@",
    "example.com",
    ".",
    '"',
    "\\",
    " ",
    "<",
    ">",
    "\r",
    "\n",
    "\r\n",
    "\x00",
    "\x7f",
    "\x85",
    "\u2028",
    "\ud800",
    "é",
    "пример",
    "[192.0.2.1]",
    "[IPv6:2001:db8::1]",
    " SIZE=1",
    "> NOTIFY=SUCCESS",
    "|",
    "-",
    "=",
    "+",
    "postmaster",
)


def random_input(rng: random.Random) -> bytes:
    """A random selector and a string assembled from tricky pieces."""
    text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
    if rng.random() < 0.1:
        text += "a" * rng.randint(50, 300)
    selector = rng.randrange(256)
    if selector & 0x20:
        return bytes([selector]) + text.encode("utf-8", "surrogatepass")
    return bytes([selector]) + text.encode("utf-16-le", "surrogatepass")


def main() -> int:
    """Replay the corpus and random inputs (no atheris needed)."""
    stats = replay(NAME, TestOneInput, random_input=random_input, count=5000)
    print(f"{NAME}: {stats.inputs} inputs in {stats.seconds:.1f}s, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
