"""A hostile SMTP server for the soak test, run as its own process.

``python soak_server.py SEED`` listens on 127.0.0.1 (an ephemeral port,
printed as ``PORT <n>`` on the first line of stdout), serves until its stdin
closes, then prints one JSON line of statistics and exits.

It speaks just enough ESMTP (PIPELINING, 8BITMIME) and misbehaves on purpose:
each fault is chosen by a hash of (seed, what, key), so a run is reproducible
from its seed whatever the timing. Faults per connection, at accept time:
close before the greeting, greet with 421 and close, or stall. Faults per
message attempt, decided at its MAIL (the sender ``s<seq>@soak.test`` names
the message, the n-th MAIL for it is its attempt n): close or reset after
MAIL, 421 to MAIL, stall at MAIL, 451 to RCPT, close in the middle of the
data, close after the final dot with or without having taken the message,
take it and stall, 451 or 421 to the final dot. After a message is taken the
server may also drop the connection if the client stays idle for a moment,
with a 421 or without a word.

The statistics say how many times each message was taken ("accepted": the
server took responsibility for it, whether or not its 250 reached the
client) and how often each fault fired. A separate process keeps the
server's sockets out of the client's file-descriptor count and lets it use
the second core.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import re
import sys
from collections import Counter
from typing import Final, TypeVar

HOST: Final = "127.0.0.1"
#: A stall lasts until the client gives up, or this long at most.
STALL_LIMIT: Final = 5.0
#: How long an "idle" connection waits for the client's next command.
IDLE_WINDOW: Final = 0.002
#: The longest command or data line the server buffers.
MAX_LINE: Final = 4096

_SENDER: Final = re.compile(rb"^MAIL FROM:<s(\d+)@soak\.test>", re.IGNORECASE)
_SEQ_HEADER: Final = re.compile(rb"^X-Seq: (\d+)\r\n", re.MULTILINE)

E = TypeVar("E", bound=enum.Enum)


class ConnFault(enum.Enum):
    """What happens to a new connection."""

    NONE = "none"
    DROP_BEFORE_GREETING = "drop-before-greeting"
    GREETING_421 = "greeting-421"
    STALL_GREETING = "stall-greeting"


class Fault(enum.Enum):
    """What happens to one attempt of one message."""

    NONE = "none"
    DROP_AFTER_MAIL = "drop-after-mail"
    RESET_AFTER_MAIL = "reset-after-mail"
    MAIL_421 = "mail-421"
    STALL_MAIL = "stall-mail"
    RCPT_451 = "rcpt-451"
    DROP_MID_DATA = "drop-mid-data"
    DROP_AFTER_DOT = "drop-after-dot"
    ACCEPT_THEN_DROP = "accept-then-drop"
    ACCEPT_THEN_STALL = "accept-then-stall"
    DOT_451 = "dot-451"
    DOT_421 = "dot-421"


class IdleFault(enum.Enum):
    """What happens after a message was taken, if the client pauses."""

    NONE = "none"
    IDLE_421 = "idle-421"
    IDLE_CLOSE = "idle-close"


#: Probabilities. Stalls cost the client its whole timeout: keep them rare.
CONN_FAULTS: Final = (
    (ConnFault.DROP_BEFORE_GREETING, 0.02),
    (ConnFault.GREETING_421, 0.02),
    (ConnFault.STALL_GREETING, 0.002),
)
FAULTS: Final = (
    (Fault.DROP_AFTER_MAIL, 0.003),
    (Fault.RESET_AFTER_MAIL, 0.002),
    (Fault.MAIL_421, 0.003),
    (Fault.STALL_MAIL, 0.0002),
    (Fault.RCPT_451, 0.005),
    (Fault.DROP_MID_DATA, 0.003),
    (Fault.DROP_AFTER_DOT, 0.001),
    (Fault.ACCEPT_THEN_DROP, 0.002),
    (Fault.ACCEPT_THEN_STALL, 0.0003),
    (Fault.DOT_451, 0.005),
    (Fault.DOT_421, 0.002),
)
#: Idle drops fire only when the client pauses (between batches), so they
#: can be frequent.
IDLE_FAULTS: Final = (
    (IdleFault.IDLE_421, 0.1),
    (IdleFault.IDLE_CLOSE, 0.1),
)


def uniform(seed: int, *key: object) -> float:
    """A number in [0, 1) that depends only on ``seed`` and ``key``."""
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def choose(table: tuple[tuple[E, float], ...], default: E, draw: float) -> E:
    """The entry of ``table`` that ``draw`` falls into (cumulatively)."""
    for value, probability in table:
        if draw < probability:
            return value
        draw -= probability
    return default


class Stats:
    """What the server did, reported when it stops."""

    def __init__(self) -> None:
        self.accepted: Counter[int] = Counter()
        self.attempts: Counter[int] = Counter()
        self.data_started: set[int] = set()
        self.faults: Counter[str] = Counter()
        self.connections = 0
        self.mismatches: list[str] = []

    def to_json(self) -> str:
        return json.dumps(
            {
                "accepted": {str(seq): n for seq, n in self.accepted.items()},
                "attempts": sum(self.attempts.values()),
                "data_started": sorted(self.data_started),
                "faults": dict(self.faults),
                "connections": self.connections,
                "message_faults": [f.value for f in Fault if f is not Fault.NONE],
                "mismatches": self.mismatches[:20],
            }
        )


class SoakProtocol(asyncio.Protocol):
    """One connection: a line-based SMTP server with planned faults."""

    def __init__(self, seed: int, stats: Stats) -> None:
        self.seed = seed
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.in_data = False
        self.data = bytearray()
        self.seq: int | None = None
        self.fault = Fault.NONE
        self.rcpt_ok = False
        self.stalled = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.idle_check: asyncio.TimerHandle | None = None

    # -- asyncio callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        number = self.stats.connections
        self.stats.connections += 1
        fault = choose(CONN_FAULTS, ConnFault.NONE, uniform(self.seed, "conn", number))
        if fault is not ConnFault.NONE:
            self.stats.faults[fault.value] += 1
        if fault is ConnFault.DROP_BEFORE_GREETING:
            self.close()
        elif fault is ConnFault.GREETING_421:
            self.reply(b"421 4.3.2 soak.test busy, try later\r\n")
            self.close()
        elif fault is ConnFault.STALL_GREETING:
            self.stall()
        else:
            self.reply(b"220 soak.test ESMTP soak\r\n")

    def data_received(self, data: bytes) -> None:
        if self.stalled or self.closed:
            return
        if self.idle_check is not None:
            self.idle_check.cancel()
            self.idle_check = None
        self.buffer += data
        while not (self.stalled or self.closed):
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_LINE:
                    self.reply(b"500 5.5.2 line too long\r\n")
                    self.close()
                return
            line = bytes(self.buffer[: end + 1])
            del self.buffer[: end + 1]
            if self.in_data:
                self.data_line(line)
            else:
                self.command(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for handle in (self.timer, self.idle_check):
            if handle is not None:
                handle.cancel()

    # -- SMTP ------------------------------------------------------------------

    def command(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"LHLO"):
            self.reply(b"250-soak.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n")
        elif verb == b"HELO":
            self.reply(b"250 soak.test\r\n")
        elif verb == b"MAIL":
            self.mail(line)
        elif verb == b"RCPT":
            if self.seq is None:
                self.reply(b"503 5.5.1 MAIL first\r\n")
            elif self.fault is Fault.RCPT_451:
                self.fire()
                self.reply(b"451 4.3.0 recipient temporarily unavailable\r\n")
            else:
                self.rcpt_ok = True
                self.reply(b"250 2.1.5 OK\r\n")
        elif verb == b"DATA":
            if not self.rcpt_ok:
                self.reply(b"554 5.5.1 no valid recipients\r\n")
                self.reset()
            else:
                assert self.seq is not None
                self.stats.data_started.add(self.seq)
                self.in_data = True
                self.reply(b"354 end with <CRLF>.<CRLF>\r\n")
        elif verb == b"RSET":
            self.reset()
            self.reply(b"250 2.0.0 OK\r\n")
        elif verb == b"NOOP":
            self.reply(b"250 2.0.0 OK\r\n")
        elif verb == b"QUIT":
            self.reply(b"221 2.0.0 bye\r\n")
            self.close()
        else:
            self.reply(b"502 5.5.2 not implemented\r\n")

    def mail(self, line: bytes) -> None:
        match = _SENDER.match(line)
        if match is None:
            self.reply(b"553 5.1.7 soak senders only\r\n")
            return
        seq = int(match.group(1))
        attempt = self.stats.attempts[seq]
        self.stats.attempts[seq] += 1
        self.reset()
        self.seq = seq
        self.fault = choose(FAULTS, Fault.NONE, uniform(self.seed, "msg", seq, attempt))
        if self.fault is Fault.DROP_AFTER_MAIL:
            self.fire()
            self.close()
        elif self.fault is Fault.RESET_AFTER_MAIL:
            self.fire()
            self.close(reset=True)
        elif self.fault is Fault.MAIL_421:
            self.fire()
            self.reply(b"421 4.3.2 shutting down\r\n")
            self.close()
        elif self.fault is Fault.STALL_MAIL:
            self.fire()
            self.stall()
        else:
            self.reply(b"250 2.1.0 OK\r\n")

    def data_line(self, line: bytes) -> None:
        if self.fault is Fault.DROP_MID_DATA:
            self.fire()
            self.close()
            return
        if line != b".\r\n":
            # RFC 5321 4.5.2: the receiver removes the first of leading dots.
            self.data += line[1:] if line.startswith(b".") else line
            return
        self.in_data = False
        seq, fault, data = self.seq, self.fault, bytes(self.data)
        self.reset()
        assert seq is not None
        header = _SEQ_HEADER.search(data)
        if header is None or int(header.group(1)) != seq:
            # The data of another message after this envelope: a client bug.
            self.stats.mismatches.append(f"MAIL for {seq}, data {data[:60]!r}")
            self.reply(b"554 5.6.0 data does not match the envelope\r\n")
            return
        if fault is Fault.DROP_AFTER_DOT:
            self.fire(fault)
            self.close()
        elif fault is Fault.DOT_451:
            self.fire(fault)
            self.reply(b"451 4.3.0 temporary failure, message not taken\r\n")
        elif fault is Fault.DOT_421:
            self.fire(fault)
            self.reply(b"421 4.3.2 shutting down, message not taken\r\n")
            self.close()
        else:
            # The server takes responsibility for the message here, before
            # its reply: RFC 5321 4.5.3.2.6 is why a lost reply leaves the
            # client unsure.
            self.stats.accepted[seq] += 1
            if fault is Fault.ACCEPT_THEN_DROP:
                self.fire(fault)
                self.close()
            elif fault is Fault.ACCEPT_THEN_STALL:
                self.fire(fault)
                self.stall()
            else:
                self.reply(b"250 2.0.0 OK queued\r\n")
                self.maybe_idle_drop(seq)

    def maybe_idle_drop(self, seq: int) -> None:
        """After a taken message, drop the connection if the client does not
        speak within a moment: an idle timeout, with or without a 421."""
        attempt = self.stats.attempts[seq]
        fault = choose(IDLE_FAULTS, IdleFault.NONE, uniform(self.seed, "idle", seq, attempt))
        if fault is IdleFault.NONE or b"\n" in self.buffer:
            return
        loop = asyncio.get_running_loop()
        self.idle_check = loop.call_later(IDLE_WINDOW, self.idle_drop, fault)

    def idle_drop(self, fault: IdleFault) -> None:
        self.idle_check = None
        if self.closed or self.stalled or self.buffer:
            return
        self.stats.faults[fault.value] += 1
        if fault is IdleFault.IDLE_421:
            self.reply(b"421 4.4.2 soak.test idle timeout\r\n")
        self.close()

    # -- plumbing ----------------------------------------------------------------

    def fire(self, fault: Fault | None = None) -> None:
        self.stats.faults[(fault or self.fault).value] += 1

    def reset(self) -> None:
        self.seq = None
        self.fault = Fault.NONE
        self.rcpt_ok = False
        self.in_data = False
        self.data.clear()

    def reply(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def stall(self) -> None:
        """Say nothing more; close only if the client never gives up."""
        self.stalled = True
        self.timer = asyncio.get_running_loop().call_later(STALL_LIMIT, self.close)

    def close(self, *, reset: bool = False) -> None:
        self.closed = True
        if self.transport is not None:
            if reset:
                self.transport.abort()  # RST: pending data is lost.
            else:
                self.transport.close()  # FIN after what was written.


async def serve(seed: int) -> Stats:
    """Serve until stdin closes; returns the statistics."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    server = await loop.create_server(lambda: SoakProtocol(seed, stats), HOST, 0, backlog=128)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # Wait for stdin to close (the test is done) without blocking the loop.
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()
    await asyncio.wait_for(server.wait_closed(), STALL_LIMIT)
    return stats


def main() -> None:
    seed = int(sys.argv[1])
    stats = asyncio.run(serve(seed))
    print(stats.to_json(), flush=True)


if __name__ == "__main__":
    main()
