"""Soak: thousands of messages over reused connections to a hostile server.

The server (``soak_server.py``, its own process on 127.0.0.1) drops
connections at every point of a transaction, answers 421 and 451, and stalls
past the client's timeout, each fault chosen by a hash of the seed so that a
run can be replayed (``SOAK_SEED=<n>``). The client sends every message with
``Client.send_many`` in batches over reused connections, and sends a message
again only when its error says that the server did not take it; every other
outcome is final.

Checked at the end of each run:

* every message has exactly one final outcome: a ``MessageResult`` for its
  own envelope, or a typed :class:`smtpcore.SMTPError` of a kind this server
  can cause;
* the server took each message at most once; it took every message the
  client reports accepted exactly once, and took a message the client reports
  failed only when the client said that its status was unknown;
* the client says "status unknown" only for messages whose data it sent (the
  server said 354 to them), never for one it did not send;
* the server saw each message's data after that message's own envelope;
* file descriptors, Python objects and RSS are back to their level before
  the run (measured after a warm-up, with the clients closed).

Each flavour (blocking, asyncio, trio, and anyio on asyncio and on trio)
sends 20,000 messages (the async ones: four tasks sharing two clients). The
file takes about a minute on two cores.

Below the soak, short deterministic tests pin down the bugs it found.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import pytest
from servers import ADAPTERS, Flavor, load_flavor
from smtpcore.adapters import blocking

from smtpcore import (
    ConnectionLostError,
    MessageResult,
    RecipientsRefusedError,
    ReplyError,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    TemporaryReplyError,
)

HOST: Final = "127.0.0.1"
SERVER_SCRIPT: Final = Path(__file__).with_name("soak_server.py")
SEED: Final = int(os.environ.get("SOAK_SEED", "20240611"))
#: Seconds the client waits at any stage; the server's stalls outlast it.
CLIENT_TIMEOUT: Final = 0.5
CLIENT_OPTIONS: Final[Mapping[str, Any]] = {"tls": "none", "timeout": CLIENT_TIMEOUT}
BATCH: Final = 100
#: Attempts per message before its last failure is final.
MAX_ATTEMPTS: Final = 8
#: Every this many batches the client pauses, long enough for the server's
#: idle drops (its IDLE_WINDOW) to fire.
PAUSE_EVERY: Final = 4
PAUSE: Final = 0.005
#: Messages sent before the resource baseline is taken (caches, arenas).
WARMUP: Final = 1_000
#: Wall-clock budget for one adapter's run, warm-up included.
RUN_BUDGET: Final = 90.0
#: Allowed growth after the run: a leak of one object per message is far above.
OBJECT_SLACK: Final = 2_000
RSS_SLACK_KIB: Final = 8 * 1024
#: Stages at which the soak server makes the client time out (pipelining
#: makes a stall at MAIL surface at any envelope stage).
TIMEOUT_STAGES: Final = frozenset(
    {Stage.GREETING, Stage.MAIL, Stage.RCPT, Stage.DATA_INIT, Stage.DATA_TERMINATION}
)
#: Upper bound on any wait in the deterministic tests.
WAIT: Final = 5.0

PENDING, ACCEPTED, FAILED = 0, 1, 2


# -- the server process --------------------------------------------------------------------


@dataclass
class ServerReport:
    """What the soak server says when it stops."""

    accepted: dict[int, int]
    attempts: int
    data_started: set[int]
    faults: dict[str, int]
    connections: int
    mismatches: list[str]
    message_faults: list[str]


@contextmanager
def soak_server(seed: int) -> Iterator[tuple[int, list[ServerReport]]]:
    """Run the server process; yields its port and a list that holds its
    report once the block exits."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), str(seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    reports: list[ServerReport] = []
    try:
        ready, _, _ = select.select([process.stdout], [], [], WAIT)
        first = process.stdout.readline().decode().split() if ready else []
        assert first[:1] == ["PORT"], f"the soak server did not start: {first!r}"
        yield int(first[1]), reports
        # Closing its stdin (communicate does) stops the server.
        out, _ = process.communicate(timeout=30)
        data = json.loads(out)
        reports.append(
            ServerReport(
                accepted={int(seq): n for seq, n in data["accepted"].items()},
                attempts=data["attempts"],
                data_started=set(data["data_started"]),
                faults=data["faults"],
                connections=data["connections"],
                mismatches=data["mismatches"],
                message_faults=data["message_faults"],
            )
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdout.close()
        if not process.stdin.closed:
            process.stdin.close()


# -- messages and outcomes -----------------------------------------------------------------


def sender(seq: int) -> str:
    return f"s{seq}@soak.test"


def recipient(seq: int) -> str:
    return f"r{seq}@soak.test"


def message(seq: int) -> dict[str, Any]:
    """Message ``seq``: its number in the envelope (the server reads it from
    MAIL) and in an ``X-Seq`` header, and a line that needs dot-stuffing."""
    body = (
        f"X-Seq: {seq}\r\nFrom: <{sender(seq)}>\r\nTo: <{recipient(seq)}>\r\n"
        f"Subject: soak {seq}\r\n\r\nHello.\r\n.a line that starts with a dot\r\n"
    ).encode()
    return {"sender": sender(seq), "recipients": [recipient(seq)], "message": body}


def retry_safe(error: SMTPError) -> bool:
    """True when the error says that the server did not take the message but
    may take it later (a 4xx reply, a lost connection, a timeout), and that
    this is known (``status_unknown`` is false): sending it again cannot
    deliver it twice.

    This is what a real sender retries (RFC 5321 4.5.4.1). It relies on
    ``status_unknown`` more than "retry only what sent no data" would (the
    errors ``send_many`` returns do not say whether data was sent): a wrong
    ``status_unknown`` shows up as a message the server took twice.
    """
    if getattr(error, "status_unknown", False):
        return False
    if isinstance(error, (ConnectionLostError, SMTPTimeoutError)):
        return True
    return isinstance(error, ReplyError) and error.temporary


def where(outcome: object) -> str:
    """An outcome, and for an exception the last line of smtpcore it went
    through."""
    text = repr(outcome)
    if isinstance(outcome, BaseException):
        frames = traceback.extract_tb(outcome.__traceback__)
        ours = [f for f in frames if "smtpcore" in f.filename] or frames[-1:]
        if ours:
            text += f" raised at {ours[-1].filename}:{ours[-1].lineno} ({ours[-1].line})"
    return text


def describe(error: SMTPError) -> str:
    """A short key for the error tally: type, then stage or command and code."""
    detail = ""
    if isinstance(error, (ConnectionLostError, SMTPTimeoutError)) and error.stage is not None:
        detail = error.stage.value
    elif isinstance(error, ReplyError):
        detail = f"{error.command} {error.code}"
    return f"{type(error).__name__}({detail})"


@dataclass
class Tally:
    """One final outcome per message, kept in flat arrays allocated before
    the resource baseline (so that the bookkeeping itself does not grow)."""

    first: int
    count: int
    queue: collections.deque[int] = field(default_factory=collections.deque)
    attempts: list[int] = field(default_factory=list)
    final: bytearray = field(default_factory=bytearray)
    reports: bytearray = field(default_factory=bytearray)
    unknown: bytearray = field(default_factory=bytearray)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    batches: int = 0
    retries: int = 0
    raised: int = 0
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue.extend(range(self.first, self.first + self.count))
        self.attempts = [0] * self.count
        self.final = bytearray(self.count)
        self.reports = bytearray(self.count)
        self.unknown = bytearray(self.count)

    def take(self) -> list[int]:
        """The next batch (empty when nothing is left to send)."""
        batch: list[int] = []
        while self.queue and len(batch) < BATCH:
            seq = self.queue.popleft()
            self.attempts[seq - self.first] += 1
            batch.append(seq)
        self.batches += 1
        return batch

    @property
    def pause_now(self) -> bool:
        return self.batches % PAUSE_EVERY == 0

    def violation(self, text: str) -> None:
        if len(self.violations) < 30:
            self.violations.append(text)

    def record(self, batch: Sequence[int], outcomes: Sequence[object]) -> None:
        """File what ``send_many`` returned for ``batch`` (or the one error it
        raised, repeated): final outcomes, or the message back in the queue."""
        if len(outcomes) != len(batch):
            self.violation(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        for seq, outcome in zip(batch, outcomes, strict=False):
            index = seq - self.first
            if self.final[index] != PENDING:
                self.violation(f"message {seq} reported again after its final outcome")
            elif isinstance(outcome, MessageResult):
                self.accepted(seq, outcome)
            elif isinstance(outcome, SMTPError):
                self.failed(seq, outcome)
            else:
                self.violation(f"message {seq}: not a result or SMTPError: {where(outcome)}")
                self.final[index] = FAILED
                self.reports[index] += 1

    def accepted(self, seq: int, result: MessageResult) -> None:
        index = seq - self.first
        if result.sender != sender(seq) or result.accepted != (recipient(seq),):
            self.violation(f"message {seq}: the result of another envelope: {result!r}")
        if not result.status_known:
            self.violation(f"message {seq}: accepted with an unknown status")
        self.final[index] = ACCEPTED
        self.reports[index] += 1

    def failed(self, seq: int, error: SMTPError) -> None:
        index = seq - self.first
        if isinstance(error, RecipientsRefusedError) and recipient(seq) not in error.replies:
            self.violation(f"message {seq}: the refusal of another envelope: {error!r}")
        self.check_type(seq, error)
        if retry_safe(error) and self.attempts[index] < MAX_ATTEMPTS:
            self.retries += 1
            self.queue.append(seq)
            return
        self.final[index] = FAILED
        self.reports[index] += 1
        self.unknown[index] = bool(getattr(error, "status_unknown", False))
        self.errors[describe(error)] += 1

    def check_type(self, seq: int, error: SMTPError) -> None:
        """Only the failures this server can cause, each with a sensible type."""
        if isinstance(error, SMTPTimeoutError):
            sensible = error.stage in TIMEOUT_STAGES
        elif isinstance(error, ConnectionLostError):
            sensible = error.stage is not None
        elif isinstance(error, (TemporaryReplyError, RecipientsRefusedError)):
            sensible = error.code in (421, 451)
        else:
            sensible = False
        if not sensible:
            self.violation(f"message {seq}: unexpected error {describe(error)}: {error}")


# -- resources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """What the client process holds: file descriptors, objects, memory."""

    fds: int
    objects: int
    rss_kib: int

    @classmethod
    def now(cls) -> Resources:
        gc.collect()
        gc.collect()
        return cls(
            fds=len(os.listdir("/proc/self/fd")),
            objects=len(gc.get_objects()),
            rss_kib=_rss_kib(),
        )

    def __str__(self) -> str:
        return f"{self.fds} fds, {self.objects} objects, {self.rss_kib / 1024:.1f} MiB RSS"


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


# -- the drivers ---------------------------------------------------------------------------


def run_blocking(port: int, tally: Tally, deadline: float) -> None:
    """One client at a time, batch after batch; a client whose
    ``send_many`` raised is closed and replaced."""
    client: blocking.Client | None = None
    try:
        for _ in range(tally.count * MAX_ATTEMPTS):
            batch = tally.take()
            if not batch or time.monotonic() > deadline:
                break
            if client is None:
                client = blocking.Client(HOST, port, **CLIENT_OPTIONS)
            try:
                outcomes: Sequence[object] = client.send_many([message(s) for s in batch])
            except Exception as exc:  # An untyped one is a violation (Tally.record).
                tally.raised += 1
                outcomes = [exc] * len(batch)
                client.close()
                client = None
            tally.record(batch, outcomes)
            if tally.pause_now:
                time.sleep(PAUSE)
    finally:
        if client is not None:
            client.close()


async def run_async(flavor: Flavor, port: int, tally: Tally, deadline: float) -> None:
    """Four tasks sharing two clients: two batches are pipelined on one
    connection at a time, and a connection's death fails both."""
    clients = [flavor.module.Client(HOST, port, **CLIENT_OPTIONS) for _ in range(2)]

    async def worker(client: Any) -> None:
        for _ in range(tally.count * MAX_ATTEMPTS):
            batch = tally.take()
            if not batch or time.monotonic() > deadline:
                return
            try:
                outcomes: Sequence[object] = await client.send_many([message(s) for s in batch])
            except Exception as exc:  # An untyped one is a violation (Tally.record).
                tally.raised += 1
                outcomes = [exc] * len(batch)
            tally.record(batch, outcomes)
            if tally.pause_now:
                await anyio.sleep(PAUSE)

    try:
        async with anyio.create_task_group() as group:
            for client in clients * 2:
                group.start_soon(worker, client)
    finally:
        for client in clients:
            await client.close()


def drive(flavor: Flavor, port: int, tally: Tally, deadline: float) -> None:
    """Send every message of ``tally`` with ``flavor``, on its event loop."""
    if flavor.is_async:
        anyio.run(run_async, flavor, port, tally, deadline, backend=flavor.event_loop)
    else:
        run_blocking(port, tally, deadline)


def check(report: ServerReport, tallies: Sequence[Tally]) -> list[str]:
    """Every way the outcomes and the server's records disagree."""
    violations = [text for tally in tallies for text in tally.violations]
    for tally in tallies:
        for index in range(tally.count):
            seq = tally.first + index
            taken = report.accepted.get(seq, 0)
            final = tally.final[index]
            if tally.reports[index] != 1:
                violations.append(f"message {seq}: {tally.reports[index]} final outcomes")
            if taken > 1:
                violations.append(f"message {seq}: the server took it {taken} times")
            if final == ACCEPTED and taken != 1:
                violations.append(f"message {seq}: reported accepted, taken {taken} times")
            if final == FAILED and taken and not tally.unknown[index]:
                violations.append(
                    f"message {seq}: reported failed with a known status, but the server took it"
                )
            # The client sends a body only after 354: a message the server
            # never said 354 to cannot have a final dot in doubt.
            if tally.unknown[index] and seq not in report.data_started:
                violations.append(f"message {seq}: status unknown, but its data was never sent")
    violations += [f"server: {text}" for text in report.mismatches]
    return violations


# -- the soak --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_soak(adapter: str) -> None:
    flavor = load_flavor(adapter)
    count = 20_000
    started = time.monotonic()
    deadline = started + RUN_BUDGET
    warmup = Tally(first=0, count=WARMUP)
    tally = Tally(first=WARMUP, count=count)
    with soak_server(SEED) as (port, reports):
        drive(flavor, port, warmup, deadline)
        before = Resources.now()
        drive(flavor, port, tally, deadline)
        after = Resources.now()
    [report] = reports
    elapsed = time.monotonic() - started
    runs = (warmup, tally)
    summary = (
        f"{adapter}, seed {SEED}: {count} messages (+{WARMUP} warm-up) in {elapsed:.1f} s: "
        f"{sum(t.final.count(ACCEPTED) for t in runs)} accepted, "
        f"{sum(t.final.count(FAILED) for t in runs)} failed "
        f"({sum(t.unknown.count(1) for t in runs)} with status unknown), "
        f"{sum(t.retries for t in runs)} retries, {sum(t.raised for t in runs)} batches raised; "
        f"errors {dict(sorted((warmup.errors + tally.errors).items()))}; "
        f"server: {report.connections} connections, {report.attempts} MAILs, "
        f"faults {dict(sorted(report.faults.items()))}; before: {before}; after: {after}"
    )
    print(summary)

    violations = check(report, runs)
    assert not violations, "\n".join([summary, *violations[:30]])
    assert time.monotonic() <= deadline, f"the run overran its budget: {summary}"
    # The hostile server was hostile: the run is not vacuous. (Each kind of
    # message fault is planned for some first attempt: it fires whatever the
    # timing.)
    assert sum(report.faults.values()) >= count // 50, summary
    assert set(report.message_faults) <= set(report.faults), summary
    assert tally.unknown.count(1) > 0, summary
    # Resources are back where they were.
    assert after.fds == before.fds, summary
    assert after.objects - before.objects < OBJECT_SLACK, summary
    assert after.rss_kib - before.rss_kib < RSS_SLACK_KIB, summary


# -- the bugs the soak found, one at a time --------------------------------------------------


class PipeliningServer:
    """A scripted ESMTP server with PIPELINING, in a thread on 127.0.0.1.

    On its first connection it takes ``take`` messages (250 to each final
    dot), then ``then``: ``"drop-after-dot"`` takes the next message and
    closes without a reply; ``"421-to-mail"`` answers the next MAIL with 421
    and closes. Every later connection (every connection, if not ``greet``)
    is closed before the greeting. The first greeting comes after
    ``greeting_delay`` seconds.

    Attributes:
        taken: the data of every message the server took.
        connections: connections accepted.
    """

    def __init__(
        self,
        *,
        take: int = 0,
        then: Literal["drop-after-dot", "421-to-mail"] = "drop-after-dot",
        greet: bool = True,
        greeting_delay: float = 0.0,
    ) -> None:
        self.take = take
        self.then = then
        self.greet = greet
        self.greeting_delay = greeting_delay
        self.taken: list[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> PipeliningServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                if self.connections == 1 and self.greet:
                    conn.settimeout(WAIT)
                    # The client going away is not the server's problem.
                    with suppress(OSError):
                        self._converse(conn)

    def _converse(self, conn: socket.socket) -> None:
        lines = conn.makefile("rb")
        time.sleep(self.greeting_delay)
        conn.sendall(b"220 scripted.test ESMTP\r\n")
        data: bytearray | None = None
        while line := lines.readline(4096):
            if data is not None:
                if line != b".\r\n":
                    data += line
                    continue
                self.taken.append(bytes(data))
                data = None
                if len(self.taken) > self.take and self.then == "drop-after-dot":
                    return
                conn.sendall(b"250 2.0.0 taken\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-scripted.test\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL" and len(self.taken) >= self.take and self.then == "421-to-mail":
                conn.sendall(b"421 4.3.2 closing\r\n")
                return
            elif verb == b"DATA":
                data = bytearray()
                conn.sendall(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")


async def send_many(flavor: Flavor, client: Any, seqs: Sequence[int]) -> list[object]:
    outcomes: list[object] = await flavor.call(client.send_many, [message(s) for s in seqs])
    return outcomes


@pytest.mark.anyio
async def test_lost_reply_to_a_pipelined_final_dot_leaves_the_status_unknown(
    flavor: Flavor,
) -> None:
    # The server takes message 0 and closes before answering its dot; the
    # client has pipelined message 1's envelope behind that dot.
    with PipeliningServer(take=0, then="drop-after-dot") as server:
        async with flavor.client(HOST, server.port, **CLIENT_OPTIONS) as handle:
            outcomes = await send_many(flavor, handle.client, [0, 1])
    assert len(server.taken) == 1
    first = outcomes[0]
    assert isinstance(first, ConnectionLostError)
    assert first.stage is Stage.DATA_TERMINATION
    assert first.status_unknown  # Else a careful caller sends it again: twice delivered.


@pytest.mark.anyio
async def test_message_behind_a_lost_final_dot_has_a_known_status(flavor: Flavor) -> None:
    with PipeliningServer(take=0, then="drop-after-dot") as server:
        async with flavor.client(HOST, server.port, **CLIENT_OPTIONS) as handle:
            outcomes = await send_many(flavor, handle.client, [0, 1])
    assert len(server.taken) == 1  # Message 1's data was never sent.
    first, second = outcomes
    assert isinstance(first, ConnectionLostError)
    assert isinstance(second, ConnectionLostError)
    assert first.status_unknown
    assert not second.status_unknown  # Else it can never be sent again safely.


@pytest.mark.anyio
async def test_failed_reconnect_keeps_the_outcomes_of_the_batch(flavor: Flavor) -> None:
    # Connection 1 takes messages 0 and 1, answers the MAIL of message 2 with
    # 421 and closes; the reconnect for message 2 is closed before the greeting.
    with PipeliningServer(take=2, then="421-to-mail") as server:
        async with flavor.client(HOST, server.port, **CLIENT_OPTIONS) as handle:
            first = await send_many(flavor, handle.client, [0])
            assert isinstance(first[0], MessageResult)
            outcomes = await send_many(flavor, handle.client, [1, 2])
    assert len(server.taken) == 2
    assert server.connections == 2  # The retry of message 2 did reconnect.
    assert isinstance(outcomes[0], MessageResult)  # The server took it: say so.
    assert isinstance(outcomes[1], SMTPError)
    assert not getattr(outcomes[1], "status_unknown", False)


@pytest.mark.anyio
async def test_connection_closed_before_the_greeting_is_a_typed_error(flavor: Flavor) -> None:
    # The race is lost almost every time; twenty tries make it certain.
    with PipeliningServer(greet=False) as server:
        for _ in range(20):
            client = flavor.module.Client(HOST, server.port, **CLIENT_OPTIONS)
            try:
                with pytest.raises(ConnectionLostError) as info:
                    await flavor.call(client.connect)
            finally:
                client.abort()
            assert info.value.stage is Stage.GREETING


@pytest.mark.anyio
async def test_a_task_that_connects_does_not_raise_the_failure_of_another(
    flavor: Flavor,
) -> None:
    if not flavor.is_async:
        pytest.skip("only an async client is shared by tasks")
    # Task b connects (the greeting is slow); meanwhile task a queues its
    # message on that connection. The server takes a's message and closes
    # before answering its dot: a's status is unknown, b's message was never
    # sent, and b must not be told otherwise.
    with PipeliningServer(greeting_delay=0.3) as server:
        client = flavor.module.Client(HOST, server.port, tls="none", timeout=WAIT)
        outcomes: dict[str, object] = {}

        async def send(name: str, seq: int, delay: float) -> None:
            await anyio.sleep(delay)
            try:
                [outcomes[name]] = await client.send_many([message(seq)])
            except SMTPError as exc:
                outcomes[name] = exc

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(send, "b", 1, 0.0)
                group.start_soon(send, "a", 0, 0.1)
        finally:
            await client.close()
    assert [data.startswith(b"X-Seq: 0\r\n") for data in server.taken] == [True]
    a, b = outcomes["a"], outcomes["b"]
    assert isinstance(a, ConnectionLostError)
    assert a.status_unknown
    assert isinstance(b, SMTPError)
    assert not getattr(b, "status_unknown", False), b
