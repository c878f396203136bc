"""Profile the core alone: a ``Session`` against an in-memory server.

``python -m bench.profile_core [--messages N] [--queued] [--shape S] [--top N] [--no-profile]``

No socket, no adapter: what is left is the core's own CPU per message (plus
a few microseconds for the tiny in-memory server, :class:`MiniServer`). Two
shapes, as in S1:

* the default, one message at a time (what ``Client.send_message`` in a
  loop makes the session do: submit, run until its result, repeat);
* ``--queued``: every message submitted up front (what the session does
  when it may pipeline across messages).

``--shape`` picks the message: ``plain`` (S1's), ``dsn`` (the same with
RET, ENVID, NOTIFY and ORCPT) or ``bdat`` (the server offers CHUNKING, so
the body goes as ``BDAT n LAST``). The issue's bound: a DSN or BDAT message
costs at most 1.3x a plain one.

Prints the CPU per message without the profiler, then cProfile's top lines.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from typing import Any

from bench.data import EHLO_REPLY, RECIPIENTS, SENDER, small_message
from smtpcore import (
    Close,
    Idle,
    MessageAccepted,
    MessageFailed,
    Notify,
    OutgoingMessage,
    Read,
    Ret,
    Session,
    SessionConfig,
    TLSPolicy,
    Write,
)

#: smtp-sink's EHLO answer without CHUNKING, like S1's server.
_EHLO = EHLO_REPLY.replace(b"250-CHUNKING\r\n", b"").replace(b"250 CHUNKING", b"250 DSN")

#: The message shapes of ``--shape``.
SHAPES = ("plain", "dsn", "bdat")


class MiniServer:
    """Just enough of an SMTP server, on bytes: every command succeeds.
    With ``chunking`` it offers CHUNKING and takes BDAT."""

    def __init__(self, *, chunking: bool = False) -> None:
        self.buf = bytearray()
        self.in_data = False
        self.chunk = 0  # BDAT octets still to skip
        self.ehlo = EHLO_REPLY if chunking else _EHLO
        self.out = bytearray(b"220 mini ESMTP\r\n")

    def feed(self, data: bytes) -> None:
        self.buf += data
        buf = self.buf
        pos = 0
        while True:
            if self.chunk:
                take = min(self.chunk, len(buf) - pos)
                self.chunk -= take
                pos += take
                if self.chunk:
                    break
                self.out += b"250 2.0.0 Ok: queued as 4Xk1Lz0mJlz9ry\r\n"
                continue
            if self.in_data:
                end = buf.find(b"\r\n.\r\n", pos - 2 if pos >= 2 else 0)
                if buf.startswith(b".\r\n", pos):
                    end, skip = pos, 3
                elif end < 0:
                    break
                else:
                    skip = end - pos + 5
                    end = pos
                pos = end + skip
                self.in_data = False
                self.out += b"250 2.0.0 Ok: queued as 4Xk1Lz0mJlz9ry\r\n"
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            verb = bytes(buf[pos : pos + 4]).upper()
            line = bytes(buf[pos:eol])
            pos = eol + 2
            if verb == b"EHLO":
                self.out += self.ehlo
            elif verb == b"BDAT":
                self.chunk = int(line.split()[1])  # the session sends LAST only
                if not self.chunk:
                    self.out += b"250 2.0.0 Ok: queued as 4Xk1Lz0mJlz9ry\r\n"
            elif verb == b"DATA":
                self.in_data = True
                self.out += b"354 End data with <CR><LF>.<CR><LF>\r\n"
            elif verb == b"QUIT":
                self.out += b"221 2.0.0 Bye\r\n"
            elif verb == b"MAIL":
                self.out += b"250 2.1.0 Ok\r\n"
            else:
                self.out += b"250 2.1.5 Ok\r\n"
        del buf[:pos]

    def take(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out


def run(messages: int, *, queued: bool, shape: str = "plain") -> int:
    """Send ``messages`` of ``shape`` through a session and the mini server;
    returns how many were accepted."""
    server = MiniServer(chunking=shape == "bdat")
    session = Session(SessionConfig(local_hostname="localhost", tls=TLSPolicy.NONE))
    body = small_message()
    dsn: dict[str, Any] = {}
    if shape == "dsn":
        dsn = {
            "ret": Ret.HDRS,
            "envid": "bench-0001",
            "notify": (Notify.SUCCESS, Notify.FAILURE),
            "orcpt": True,
        }

    def build() -> OutgoingMessage:
        return OutgoingMessage.build(sender=SENDER, recipients=RECIPIENTS, message=body, **dsn)

    outgoing = build()
    accepted = 0

    def drive(until: int) -> None:
        nonlocal accepted
        # Bounded: each pass writes, reads what the server answered, or ends.
        for _ in range(20 * messages + 100):
            action = session.next_action()
            if isinstance(action, Write):
                server.feed(action.data)
            elif isinstance(action, Read):
                session.receive_data(server.take())
            for event in session.events():
                if isinstance(event, MessageAccepted):
                    accepted += 1
                elif isinstance(event, MessageFailed):
                    raise event.error
            if isinstance(action, (Idle, Close)) or accepted >= until:
                return

    if queued:
        for _ in range(messages):
            session.submit(outgoing)
        drive(messages)
    else:
        drive(0)  # greeting and EHLO
        for i in range(messages):
            # What Client.send_message does: build the message, submit it,
            # run until its result.
            outgoing = build()
            session.submit(outgoing)
            drive(i + 1)
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_core", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--queued", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--shape", choices=SHAPES, default="plain")
    args = parser.parse_args()
    n = max(1, min(args.messages, 1_000_000))
    run(50, queued=args.queued, shape=args.shape)  # warm up
    t0, c0 = time.perf_counter(), time.process_time()
    got = run(n, queued=args.queued, shape=args.shape)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert got == n, (got, n)
    how = "queued" if args.queued else "one at a time"
    print(
        f"core + mini server, {n} {args.shape} messages ({how}): "
        f"{cpu / n * 1e6:.0f} us CPU/message, {n / wall:,.0f} msg/s"
    )
    if args.no_profile:
        return
    profiler = cProfile.Profile()
    profiler.enable()
    run(n, queued=args.queued, shape=args.shape)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
