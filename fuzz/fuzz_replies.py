"""Fuzz harness: the reply parser (:class:`smtpcore.ReplyParser`).

Input: ``limits (1 octet) | n (1 octet) | n chunk sizes (1 octet each) | stream``.

* ``limits`` picks the parser's ``max_line_length``, ``max_lines`` and
  ``max_reply_size`` (bits 0-1, 2-3, 4-5), from the defaults down to tiny ones.
* The stream is fed three ways: whole, in chunks whose sizes cycle through
  the n sizes (0 counts as 1), and one octet at a time (streams up to 512 octets).

Oracle:

* nothing but :class:`RemoteProtocolError` escapes ``feed``/``next_reply``,
  and once raised, every later call raises it again;
* after ``next_reply()`` returned None, ``buffered`` is at most
  ``max_line_length + max_reply_size`` (the tail after the last line plus
  the unfinished reply), and 0 after an error;
* every reply is well formed: code 200-599, at most ``max_lines`` lines,
  no CR or LF in a line, within the size limits, an enhanced code whose
  class is the reply's, and ``to_bytes()`` parses back to the same reply;
* the three feeds give the same replies and the same verdict (error or not),
  the replies before an error included.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

from fuzz.fuzzlib import OracleError, replay
from smtpcore import RemoteProtocolError, Reply, ReplyParser

NAME = "replies"
#: libFuzzer -max_len for this harness.
MAX_LEN = 16 * 1024

_LINE_LIMITS = (1024, 6, 64, 600)
_LINE_COUNTS = (100, 1, 3, 10)


@dataclass(frozen=True)
class Limits:
    """The parser limits an input selects."""

    max_line_length: int
    max_lines: int
    max_reply_size: int

    @classmethod
    def from_octet(cls, octet: int) -> Limits:
        line = _LINE_LIMITS[octet & 3]
        lines = _LINE_COUNTS[(octet >> 2) & 3]
        size = (64 * 1024, line, 2 * line, 4 * line)[(octet >> 4) & 3]
        return cls(line, lines, size)

    def parser(self) -> ReplyParser:
        return ReplyParser(
            max_line_length=self.max_line_length,
            max_lines=self.max_lines,
            max_reply_size=self.max_reply_size,
        )


@dataclass
class Outcome:
    """What one way of feeding produced."""

    replies: list[Reply] = field(default_factory=list)
    error: RemoteProtocolError | None = None


def decode(data: bytes) -> tuple[Limits, list[int], bytes]:
    """Split an input into limits, chunk sizes and the stream."""
    limits = Limits.from_octet(data[0] if data else 0)
    count = (data[1] & 15) if len(data) > 1 else 0
    sizes = [max(1, octet) for octet in data[2 : 2 + count]]
    return limits, sizes, data[2 + count :]


def split(stream: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``stream`` into chunks whose sizes cycle through ``sizes``."""
    if not sizes:
        return [stream]
    out = []
    pos = index = 0
    while pos < len(stream):
        size = sizes[index % len(sizes)]
        out.append(stream[pos : pos + size])
        pos += size
        index += 1
    return out


def feed(limits: Limits, chunks: list[bytes]) -> Outcome:
    """Feed ``chunks`` to a fresh parser, checking it after every call."""
    parser = limits.parser()
    outcome = Outcome()
    bound = limits.max_line_length + limits.max_reply_size
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (reply := parser.next_reply()) is not None:
                check_reply(reply, limits)
                outcome.replies.append(reply)
            if parser.buffered > bound:
                raise OracleError(f"{parser.buffered} octets buffered after draining, > {bound}")
    except RemoteProtocolError as exc:
        outcome.error = exc
        if parser.buffered != 0:
            raise OracleError(f"{parser.buffered} octets still buffered after an error") from exc
        for call in (lambda: parser.feed(b"250 ok\r\n"), parser.next_reply):
            try:
                call()
            except RemoteProtocolError:
                continue
            raise OracleError("the parser accepted a call after an error") from exc
    return outcome


def check_reply(reply: Reply, limits: Limits) -> None:
    """A reply handed out by the parser is well formed and round-trips."""
    if not 200 <= reply.code <= 599:
        raise OracleError(f"reply code out of range: {reply.code}")
    if not reply.lines or len(reply.lines) > limits.max_lines:
        raise OracleError(f"reply has {len(reply.lines)} lines (limit {limits.max_lines})")
    for line in reply.lines:
        if b"\r" in line or b"\n" in line:
            raise OracleError(f"CR or LF inside a reply line: {line!r}")
        # code + separator + text + CRLF
        if len(line) + 6 > limits.max_line_length:
            raise OracleError(f"reply line over the limit: {len(line) + 6} octets")
    if reply.enhanced_code is not None and reply.enhanced_code[0] != str(reply.code)[0]:
        raise OracleError(f"enhanced code {reply.enhanced_code} in a {reply.code} reply")
    wire = reply.to_bytes()
    if len(wire) > limits.max_reply_size:
        raise OracleError(f"reply of {len(wire)} octets over the limit {limits.max_reply_size}")
    again = limits.parser()
    again.feed(wire)
    if again.next_reply() != reply or again.buffered:
        raise OracleError(f"to_bytes() does not parse back to the reply: {wire[:120]!r}")
    # The views never raise and describe() is terminal-safe.
    shown = reply.describe()
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in shown):
        raise OracleError(f"describe() shows a control character: {shown[:80]!r}")
    reply.text.encode("utf-8", "surrogateescape")
    reply.message.encode("utf-8", "surrogateescape")


def check_same(a: Outcome, b: Outcome, what: str) -> None:
    """Two feeds of one stream gave the same replies and the same verdict
    (the replies before an error included: what a session does with them must
    not depend on how TCP split the stream)."""
    if (a.error is None) != (b.error is None):
        raise OracleError(f"{what}: one feed failed and the other did not: {a.error} / {b.error}")
    if a.replies != b.replies:
        raise OracleError(f"{what}: different replies: {a.replies[:3]} / {b.replies[:3]}")


def TestOneInput(data: bytes) -> None:
    """The harness entry point (atheris calls it with each input)."""
    limits, sizes, stream = decode(data)
    whole = feed(limits, [stream])
    check_same(whole, feed(limits, split(stream, sizes)), "whole vs chunked")
    if len(stream) <= 512:
        check_same(whole, feed(limits, split(stream, [1])), "whole vs bytewise")


# -- inputs for replay mode ----------------------------------------------------------

_LINES = (
    b"220 mx.example.org ESMTP\r\n",
    b"220-mx.example.org ESMTP\r\n",
    b"250-PIPELINING\r\n",
    b"250-SIZE 35882577\r\n",
    b"250 CHUNKING\r\n",
    b"250 2.1.0 Ok\r\n",
    b"250\r\n",
    b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"421 4.3.2 Service shutting down\r\n",
    b"550-5.1.1 no such user\r\n",
    b"550 5.1.1 no such user\r\n",
    b"334 \r\n",
    b"451 4.7.1 \xff\xfe 8-bit\r\n",
    b"250 ok\n",
    b"250 o\rk\r\n",
    b"2500 bad\r\n",
    b"600 bad\r\n",
    b"25",
    b"\r\n",
)


def random_input(rng: random.Random) -> bytes:
    """A random input: limits, chunk sizes and a stream of reply-like lines."""
    header = bytes([rng.randrange(64), rng.randrange(16)])
    sizes = bytes(rng.randrange(256) for _ in range(header[1] & 15))
    parts = []
    for _ in range(rng.randint(0, 20)):
        if rng.random() < 0.1:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 30))))
        elif rng.random() < 0.05:
            parts.append(b"250-" + b"x" * rng.randint(0, 1200) + b"\r\n")
        else:
            parts.append(rng.choice(_LINES))
    return header + sizes + b"".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Replay the corpus and random inputs (no atheris needed)."""
    del argv
    stats = replay(NAME, TestOneInput, random_input=random_input, count=2000)
    print(f"{NAME}: {stats.inputs} inputs in {stats.seconds:.1f}s, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
