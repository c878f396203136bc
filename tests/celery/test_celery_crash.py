"""10,000 messages through two real Celery workers, one of them SIGKILLed
in the middle of a batch: nothing is lost, nothing is sent twice.

A real ``redis-server`` (broker, result backend and idempotency keys), two
``celery worker`` processes (solo pool, one SMTP connection each), the
``smtpcore bulk --celery`` command line as the producer, and the counting
sink as the receiving server. When the sink has taken 3,000 messages it
stops answering end of data: both workers are then frozen inside a batch,
each with one message's data sent and unanswered. Worker 0 is killed with
SIGKILL, the sink answers again, and the killed batch comes back (the Redis
broker delivers it again once the visibility timeout has passed) to the
surviving worker, which finds its keys in flight and reports them status
unknown instead of sending them again.

The sink counts a message when its end of data arrives, before replying:
the message held when worker 0 died *was* delivered, but that worker never
learnt it. That one must be reported unknown, and not delivered twice.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from celery_support import CountingSink, RedisServer, Workers

pytestmark = pytest.mark.celery

MESSAGES = 10_000
BATCH = 100
#: Seconds before the broker hands a dead worker's batch out again: far
#: above a batch's run time (under a second), so that only the killed
#: batch is ever delivered twice.
VISIBILITY_TIMEOUT = 8


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _outbox(directory: Path) -> dict[str, str]:
    """Write the messages; returns report key -> Message-ID."""
    directory.mkdir()
    keys = {}
    for n in range(MESSAGES):
        message_id = f"<{n}@crash.test>"
        (directory / f"{n:05d}.eml").write_bytes(
            b"From: bulk@example.org\r\nTo: reader@example.org\r\n"
            + f"Subject: message {n}\r\nMessage-ID: {message_id}\r\n\r\n".encode()
            + b"The same body for everyone.\r\n" * 8
        )
        keys[f"{n:05d}.eml"] = message_id
    return keys


def test_sigkill_mid_batch_loses_nothing_and_sends_nothing_twice(
    redis_server: RedisServer, redis_url: str, sink: CountingSink, tmp_path: Path
) -> None:
    keys = _outbox(tmp_path / "outbox")
    report = tmp_path / "report.jsonl"
    workers = Workers(
        tmp_path,
        {
            "SMTPCORE_CELERY_BROKER": redis_url,
            "SMTPCORE_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "SMTPCORE_SERVER": f"127.0.0.1:{sink.port}",
            "SMTPCORE_TLS": "none",
            # One connection per worker: a held reply then means a frozen worker.
            "SMTPCORE_POOL_SIZE": "1",
        },
    )
    started = time.monotonic()
    try:
        workers.start(2)
        producer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smtpcore",
                "bulk",
                str(tmp_path / "outbox"),
                "--from",
                "bulk@example.org",
                "--to",
                "reader@example.org",
                "--celery",
                redis_url,
                "--celery-batch",
                str(BATCH),
                "--report",
                str(report),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait(lambda: sink.total >= 3_000, 90, "3,000 messages")
            sink.hold.set()
            # Both workers frozen mid-batch: each has a message's end of
            # data at the sink, waiting for its reply.
            _wait(lambda: sink.held >= 2, 30, "both workers to be mid-transaction")
            workers.kill(0)
            sink.hold.clear()
            out, err = producer.communicate(timeout=120)
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            producer.kill()
            out, err = producer.communicate()
            raise AssertionError(
                f"{exc}; the sink took {sink.total}\nproducer: {err[-2000:]}\n"
                f"worker 0: {workers.tail(0, 4)[-1500:]}\nworker 1: {workers.tail(1, 4)[-1500:]}"
            ) from exc
    finally:
        workers.stop()
    elapsed = time.monotonic() - started
    context = (
        f"stdout: {out[-3000:]}\nstderr: {err[-2000:]}\nworker 1:\n{workers.tail(1, 6)[-3000:]}"
    )

    summary = json.loads(out)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    status = {line["key"]: line["status"] for line in lines}

    # The report accounts for every message, once.
    assert len(lines) == MESSAGES, context
    assert set(status) == set(keys), context
    counts = collections.Counter(status.values())
    assert set(counts) <= {"accepted", "unknown"}, (counts, context)
    assert summary["accepted"] == counts["accepted"]
    assert summary["unknown"] == counts["unknown"]
    assert producer.returncode == 3, context  # some unknown: "temporary", check first

    # Delivered exactly once when accepted, at most once when unknown, and
    # nothing delivered that the report does not know about.
    delivered = sink.delivered
    assert set(delivered) <= set(keys.values()), context
    assert max(delivered.values()) == 1, delivered.most_common(3)
    for key, message_id in keys.items():
        if status[key] == "accepted":
            assert delivered[message_id] == 1, (key, context)
    # The killed batch came back and was reported, not resent: all of it is
    # unknown, including the message the sink had taken when the worker died.
    unknown = [key for key, s in status.items() if s == "unknown"]
    assert len(unknown) >= BATCH, counts
    assert any(delivered[keys[key]] == 1 for key in unknown), "the held message"
    assert any(
        "earlier attempt" in line["message"] for line in lines if line["status"] == "unknown"
    )
    assert elapsed < 150, f"took {elapsed:.0f} s"
