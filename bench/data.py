"""The messages and byte streams the benchmarks use (deterministic)."""

from __future__ import annotations

from pathlib import Path

SENDER = "bench@example.test"
RECIPIENTS = ("r1@example.test", "r2@example.test", "r3@example.test")


def small_message(size: int = 1024) -> bytes:
    """A plain-text message of exactly ``size`` octets (S1, S2), CRLF lines."""
    head = (
        b"From: Bench <bench@example.test>\r\n"
        b"To: r1@example.test, r2@example.test, r3@example.test\r\n"
        b"Subject: smtpcore benchmark\r\n"
        b"Message-ID: <bench@example.test>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = bytearray()
    while len(head) + len(body) + len(line) <= size - 2:
        body += line
    body += b"x" * (size - 2 - len(head) - len(body)) + b"\r\n"
    out = head + bytes(body)
    assert len(out) == size
    return out


def big_block() -> bytes:
    """One 64 KiB-ish block of the S3/S4 body: 76-octet lines, one in four
    starting with ``.`` (dot-stuffing), one in fifty ending in a bare LF."""
    lines = []
    for i in range(840):
        text = b"%05d The quick brown fox jumps over the lazy dog; stuffing test line." % i
        if i % 4 == 0:
            text = b"." + text
        eol = b"\n" if i % 50 == 7 else b"\r\n"
        lines.append(text + eol)
    return b"".join(lines)


def big_body(size: int) -> bytes:
    """About ``size`` octets of :func:`big_block` repeated, after a header."""
    head = b"From: Bench <bench@example.test>\r\nSubject: big\r\n\r\n"
    block = big_block()
    count = max(1, (size - len(head)) // len(block))
    return head + block * count


def write_big_message(path: Path, size: int) -> int:
    """Write :func:`big_body` to ``path`` block by block; returns its size."""
    head = b"From: Bench <bench@example.test>\r\nSubject: big\r\n\r\n"
    block = big_block()
    count = max(1, (size - len(head)) // len(block))
    with path.open("wb") as f:
        f.write(head)
        for _ in range(count):
            f.write(block)
    return len(head) + count * len(block)


def reply_stream(messages: int) -> list[bytes]:
    """What a pipelining server (smtp-sink's texts) sends for ``messages``
    transactions of 3 recipients, in the chunks it sends them: after the
    first group, each message's final 250 arrives with the next envelope's
    replies (one round trip per message)."""
    envelope = (
        b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * 3 + b"354 End data with <CR><LF>.<CR><LF>\r\n"
    )
    done = b"250 2.0.0 Ok: queued as 4Xk1Lz0mJlz9ry\r\n"
    chunks = [envelope]
    chunks += [done + envelope] * (messages - 1)
    chunks.append(done)
    return chunks


#: Postfix 3.7's EHLO reply (with STARTTLS, CHUNKING, SMTPUTF8...).
EHLO_REPLY = (
    b"250-bench.localhost\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 104857600\r\n"
    b"250-VRFY\r\n"
    b"250-ETRN\r\n"
    b"250-STARTTLS\r\n"
    b"250-AUTH PLAIN LOGIN\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-SMTPUTF8\r\n"
    b"250 CHUNKING\r\n"
)
