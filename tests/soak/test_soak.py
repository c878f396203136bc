"""Soak: thousands of messages over reused connections to a hostile server.

The server (``soak_server.py``, its own process on 127.0.0.1) drops
connections at every point of a transaction, answers 421 and 451, and stalls
past the client's timeout, each fault chosen by a hash of the seed so that a
run can be replayed (``SOAK_SEED=<n>``). The client sends every message with
``Client.send_many`` in batches over reused connections and retries a
message only when its error proves that none of its data was sent; every
other outcome is final.

Checked at the end:

* every message has exactly one final outcome: a ``MessageResult`` for the
  right envelope, or a typed :class:`smtpcore.SMTPError` of an expected kind;
* the server took each message at most once; it took every message the
  client reports accepted exactly once, and took a message the client reports
  failed only when the client said its status was unknown;
* the server saw each message's data after its own envelope;
* file descriptors, Python objects and RSS are back to their level before
  the run (measured after a warm-up, with the clients closed).

The blocking adapter sends 20,000 messages; asyncio and trio, 5,000 each
(four tasks sharing two clients), to keep the file well under two minutes on
two cores.
"""

from __future__ import annotations

import collections
import gc
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import json
import pytest
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
#: Attempts per message (a retry only ever follows a failure before any data).
MAX_ATTEMPTS: Final = 8
#: Messages sent before the resource baseline is taken (caches, arenas).
WARMUP: Final = 1_000
#: Wall-clock budget for one adapter's run, warm-up included.
RUN_BUDGET: Final = 100.0
#: Allowed growth after the run: a leak of one object per message is far above.
OBJECT_SLACK: Final = 2_000
RSS_SLACK_KIB: Final = 8 * 1024

#: Stages at which a failure proves that none of the message's data was sent.
NO_DATA_STAGES: Final = frozenset(
    {Stage.CONNECT, Stage.GREETING, Stage.EHLO, Stage.MAIL, Stage.RCPT, Stage.DATA_INIT}
)
#: Commands whose 4xx refusal leaves the message unsent ("DATA" is not one:
#: a refusal of the final dot is reported as "DATA" too).
NO_DATA_COMMANDS: Final = frozenset({"greeting", "EHLO", "MAIL", "RCPT"})
#: Stages at which the soak server makes the client time out (pipelining
#: makes a stall at MAIL surface at any envelope stage).
TIMEOUT_STAGES: Final = frozenset(
    {Stage.GREETING, Stage.MAIL, Stage.RCPT, Stage.DATA_INIT, Stage.DATA_TERMINATION}
)

PENDING, ACCEPTED, FAILED = 0, 1, 2


# -- the server process --------------------------------------------------------------------


@dataclass
class ServerReport:
    """What the soak server says when it stops."""

    accepted: dict[int, int]
    attempts: int
    faults: dict[str, int]
    connections: int
    mismatches: list[str]


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
        first = process.stdout.readline().decode().split()
        assert first[:1] == ["PORT"], f"the soak server did not start: {first!r}"
        yield int(first[1]), reports
        # Closing its stdin (communicate does) stops the server.
        out, _ = process.communicate(timeout=30)
        data = json.loads(out)
        reports.append(
            ServerReport(
                accepted={int(seq): n for seq, n in data["accepted"].items()},
                attempts=data["attempts"],
                faults=data["faults"],
                connections=data["connections"],
                mismatches=data["mismatches"],
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
    """Message ``seq``: its number in the envelope and in an ``X-Seq`` header,
    and a line that needs dot-stuffing."""
    body = (
        f"X-Seq: {seq}\r\nFrom: <{sender(seq)}>\r\nTo: <{recipient(seq)}>\r\n"
        f"Subject: soak {seq}\r\n\r\nHello.\r\n.a line that starts with a dot\r\n"
    ).encode()
    return {"sender": sender(seq), "recipients": [recipient(seq)], "message": body}


def retry_safe(error: SMTPError) -> bool:
    """True when the error says that the server did not take the message and
    may take it later (a 4xx reply, a lost connection, a timeout) and that
    this is known (``status_unknown`` is false): sending it again can then
    not deliver it twice. This is what a real sender retries (RFC 5321
    4.5.4.1), and it trusts ``status_unknown`` more than "retry only what
    sent no data" would: a wrong ``status_unknown`` shows up as a message the
    server took twice."""
    if getattr(error, "status_unknown", False):
        return False
    if isinstance(error, (ConnectionLostError, SMTPTimeoutError)):
        return True
    return isinstance(error, ReplyError) and error.temporary


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
        batch = []
        while self.queue and len(batch) < BATCH:
            seq = self.queue.popleft()
            self.attempts[seq - self.first] += 1
            batch.append(seq)
        return batch

    def violation(self, text: str) -> None:
        if len(self.violations) < 30:
            self.violations.append(text)

    def record(self, batch: Sequence[int], outcomes: Sequence[object]) -> None:
        """File what ``send_many`` returned for ``batch`` (or the one error it
        raised, repeated): final outcomes, or the message back in the queue."""
        if len(outcomes) != len(batch):
            self.violation(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        for seq, outcome in zip(batch, outcomes):
            index = seq - self.first
            if self.final[index] != PENDING:
                self.violation(f"message {seq} reported again after its final outcome")
                continue
            if isinstance(outcome, MessageResult):
                self.accepted(seq, outcome)
            elif isinstance(outcome, SMTPError):
                self.failed(seq, outcome)
            else:
                self.violation(f"message {seq}: not a result or SMTPError: {outcome!r}")
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
        if retry_safe(error) and self.attempts[index] < MAX_ATTEMPTS:
            self.retries += 1
            self.queue.append(seq)
            return
        self.final[index] = FAILED
        self.reports[index] += 1
        self.unknown[index] = bool(getattr(error, "status_unknown", False))
        self.errors[describe(error)] += 1
        self.check_type(seq, error)

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
        if getattr(error, "status_unknown", False) and isinstance(error, ReplyError):
            sensible = False  # A reply to the final dot always settles the status.
        if not sensible:
            self.violation(f"message {seq}: unexpected error {describe(error)}: {error}")


def describe(error: SMTPError) -> str:
    """A short key for the error tally: type, then stage or code."""
    detail = ""
    if isinstance(error, (ConnectionLostError, SMTPTimeoutError)) and error.stage is not None:
        detail = error.stage.value
    elif isinstance(error, ReplyError):
        detail = f"{error.command} {error.code}"
    return f"{type(error).__name__}({detail})"


# -- resources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
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
            except SMTPError as exc:
                tally.raised += 1
                outcomes = [exc] * len(batch)
                client.close()
                client = None
            tally.record(batch, outcomes)
    finally:
        if client is not None:
            client.close()


async def run_async(module_name: str, port: int, tally: Tally, deadline: float) -> None:
    """Four tasks sharing two clients: messages of two batches are
    pipelined on one connection, and a connection's death fails both."""
    module = __import__(f"smtpcore.adapters.{module_name}", fromlist=["Client"])
    clients = [module.Client(HOST, port, **CLIENT_OPTIONS) for _ in range(2)]

    async def worker(client: Any) -> None:
        for _ in range(tally.count * MAX_ATTEMPTS):
            batch = tally.take()
            if not batch or time.monotonic() > deadline:
                return
            try:
                outcomes: Sequence[object] = await client.send_many([message(s) for s in batch])
            except SMTPError as exc:
                tally.raised += 1
                outcomes = [exc] * len(batch)
            tally.record(batch, outcomes)

    try:
        async with anyio.create_task_group() as group:
            for client in clients * 2:
                group.start_soon(worker, client)
    finally:
        for client in clients:
            await client.close()


def drive(adapter: str, port: int, tally: Tally, deadline: float) -> None:
    if adapter == "blocking":
        run_blocking(port, tally, deadline)
        return
    runner: Callable[[], Awaitable[None]] = lambda: run_async(adapter, port, tally, deadline)  # noqa: E731
    anyio.run(runner, backend=adapter)


# -- the test --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("adapter", "count"),
    [
        pytest.param("blocking", 20_000, id="blocking-20000"),
        pytest.param("asyncio", 5_000, id="asyncio-5000"),
        pytest.param("trio", 5_000, id="trio-5000"),
    ],
)
def test_soak(adapter: str, count: int) -> None:
    started = time.monotonic()
    deadline = started + RUN_BUDGET
    warmup = Tally(first=0, count=WARMUP)
    tally = Tally(first=WARMUP, count=count)
    with soak_server(SEED) as (port, reports):
        drive(adapter, port, warmup, deadline)
        before = Resources.now()
        drive(adapter, port, tally, deadline)
        after = Resources.now()
    [report] = reports
    elapsed = time.monotonic() - started

    summary = (
        f"{adapter}, seed {SEED}: {count} messages (+{WARMUP} warm-up) in {elapsed:.1f} s; "
        f"{sum(t.final.count(ACCEPTED) for t in (warmup, tally))} accepted, "
        f"{tally.retries + warmup.retries} retries, {tally.raised + warmup.raised} batches raised, "
        f"{sum(t.unknown.count(1) for t in (warmup, tally))} status unknown; "
        f"server: {report.connections} connections, {report.attempts} MAILs, "
        f"faults {dict(sorted(report.faults.items()))}; errors "
        f"{dict(sorted((tally.errors + warmup.errors).items()))}; "
        f"before: {before}; after: {after}"
    )
    print(summary)

    assert time.monotonic() <= deadline, f"the run overran its budget: {summary}"
    violations = [*warmup.violations, *tally.violations]
    for run in (warmup, tally):
        for index in range(run.count):
            seq = run.first + index
            taken = report.accepted.get(seq, 0)
            if run.reports[index] != 1:
                violations.append(f"message {seq}: {run.reports[index]} final outcomes")
            if taken > 1:
                violations.append(f"message {seq}: the server took it {taken} times")
            if run.final[index] == ACCEPTED and taken != 1:
                violations.append(f"message {seq}: reported accepted, taken {taken} times")
            if run.final[index] == FAILED and taken and not run.unknown[index]:
                violations.append(
                    f"message {seq}: reported failed with a known status, but the server took it"
                )
    violations += [f"server: {text}" for text in report.mismatches]
    assert not violations, "\n".join([summary, *violations[:30]])

    # The hostile server was hostile: the run is not vacuous.
    assert sum(report.faults.values()) >= count // 100, summary
    assert tally.unknown.count(1) > 0, summary
    # Resources are back where they were.
    assert after.fds == before.fds, summary
    assert after.objects - before.objects < OBJECT_SLACK, summary
    assert after.rss_kib - before.rss_kib < RSS_SLACK_KIB, summary
