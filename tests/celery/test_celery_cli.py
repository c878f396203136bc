"""``smtpcore bulk --celery``: the same report as the local mode, so that
``--resume`` carries on from either mode in the other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery_support import CountingSink, Workers

pytestmark = pytest.mark.celery

MESSAGES = 30


def _bulk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtpcore", "bulk", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _report(path: Path) -> dict[str, list[str]]:
    """Each key's statuses, in the order the report records them."""
    statuses: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        record: dict[str, Any] = json.loads(line)
        statuses.setdefault(record["key"], []).append(record["status"])
    return statuses


def test_resume_goes_across_local_and_celery_runs(
    redis_url: str, sink: CountingSink, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for n in range(MESSAGES):
        (outbox / f"{n:02d}.eml").write_bytes(
            f"From: ann@example.org\r\nTo: r{n}@example.org\r\nSubject: {n}\r\n"
            f"Message-ID: <{n}@cli.test>\r\n\r\nhello {n}\r\n".encode()
        )
    report = tmp_path / "sent.jsonl"
    workers = Workers(
        tmp_path,
        {
            "SMTPCORE_CELERY_BROKER": redis_url,
            "SMTPCORE_SERVER": f"127.0.0.1:{sink.port}",
            "SMTPCORE_TLS": "none",
            "SMTPCORE_POOL_SIZE": "2",
            "SMTPCORE_RETRY_BACKOFF": "0",
        },
    )
    refusing = {"<0@cli.test>", "<1@cli.test>", "<2@cli.test>"}
    sink.decide = lambda mid: "tempfail" if mid in refusing else "accept"
    try:
        workers.start(1)
        # 1. Locally: three messages fail temporarily.
        local = [str(outbox), "-s", f"127.0.0.1:{sink.port}", "--tls", "none"]
        first = _bulk(*local, "--retries", "0", "--report", str(report))
        assert first.returncode == 3, first.stderr
        assert sum(s == ["accepted"] for s in _report(report).values()) == MESSAGES - 3

        # 2. Through Celery, resuming: only those three are handed out; one
        #    fails again (--retries 0 reaches the workers' retry policy).
        refusing.discard("<1@cli.test>")
        refusing.discard("<2@cli.test>")
        resume = ["--resume", str(report), "--report", str(report)]
        second = _bulk(str(outbox), "--celery", redis_url, "--retries", "0", "--json", *resume)
        assert second.returncode == 3, second.stderr
        summary = json.loads(second.stdout)
        assert (summary["skipped"], summary["sent"], summary["accepted"]) == (27, 3, 2)
        assert summary["celery"] is True
        assert summary["failures"][0]["key"] == "00.eml"
        assert "451" in summary["failures"][0]["message"]

        # 3. Locally again: the last one, and nothing twice.
        refusing.clear()
        third = _bulk(*local, *resume)
        assert third.returncode == 0, third.stderr
        assert "1 of 1 messages" in third.stdout

        # 4. Through Celery once more: nothing left to send.
        fourth = _bulk(str(outbox), "--celery", redis_url, *resume)
        assert fourth.returncode == 0, fourth.stderr
        assert "nothing to send" in fourth.stdout
    finally:
        workers.stop()
    assert sink.delivered == {f"<{n}@cli.test>": 1 for n in range(MESSAGES)}
    statuses = _report(report)
    assert statuses["00.eml"] == ["failed", "failed", "accepted"]
    assert statuses["01.eml"] == ["failed", "accepted"]
    assert statuses["05.eml"] == ["accepted"]


def test_a_celery_run_that_is_started_again_sends_nothing_twice(
    redis_url: str, sink: CountingSink, tmp_path: Path
) -> None:
    """Without --resume (the first run's producer died, say), the same
    messages handed out again are found by their idempotency keys."""
    rows = "email,name\n" + "".join(f"p{n}@example.org,P{n}\n" for n in range(12))
    (tmp_path / "people.csv").write_text(rows)
    (tmp_path / "welcome.txt").write_text("From: news@example.org\nSubject: hi $name\n\nHi $name\n")
    source = ["--csv", str(tmp_path / "people.csv"), "--template", str(tmp_path / "welcome.txt")]
    workers = Workers(
        tmp_path,
        {
            "SMTPCORE_CELERY_BROKER": redis_url,
            "SMTPCORE_SERVER": f"127.0.0.1:{sink.port}",
            "SMTPCORE_TLS": "none",
        },
    )
    try:
        workers.start(1)
        first = _bulk(*source, "--celery", redis_url, "--celery-batch", "5")
        assert first.returncode == 0, first.stderr
        assert "12 of 12 messages" in first.stdout
        assert "over Celery workers" in first.stdout
        # The CSV's Message-IDs are made anew for each run; the keys are not.
        second = _bulk(*source, "--celery", redis_url, "--json")
        assert second.returncode == 0, second.stderr
    finally:
        workers.stop()
    assert json.loads(second.stdout)["accepted"] == 12
    assert sink.total == 12


def test_connection_options_belong_to_the_workers(tmp_path: Path) -> None:
    (tmp_path / "outbox").mkdir()
    result = _bulk(
        str(tmp_path / "outbox"), "--celery", "redis://127.0.0.1:1/0", "-s", "mx.example.net"
    )
    assert result.returncode == 2
    assert "server belong to the workers' configuration" in result.stderr
