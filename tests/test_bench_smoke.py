"""Smoke test of the benchmarks: ``python -m bench --quick`` runs end to end.

Timings are not asserted (CI machines are shared and noisy); what is
asserted is that every scenario x client either ran without error or says
why it could not run here, that the table and the ratios are printed, and
that the JSON holds a number for each run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Every scenario the quick mode must cover.
SCENARIOS = {
    "S1",
    "S1-RTT",
    "S2",
    "S3",
    "S4-encode",
    "S4-parse",
    "S4-ehlo",
    "S5-asyncio",
    "S5-trio",
    "S5-blocking",
}
#: Clients whose absence would mean a broken bench, not a missing package.
ALWAYS = {"smtplib", "smtpcore-blocking", "smtpcore-session*", "smtpcore"}


def _smtp_sink() -> bool:
    return shutil.which("smtp-sink") is not None or os.path.exists("/usr/sbin/smtp-sink")


@pytest.mark.slow
def test_quick_mode_runs_every_scenario(tmp_path: Path) -> None:
    if not _smtp_sink():
        if os.environ.get("SMTPCORE_REQUIRE_POSTFIX"):
            pytest.fail("smtp-sink (Debian package postfix) is required but missing")
        pytest.skip("smtp-sink (Debian package postfix) is not installed")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--quiet", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Ratios smtpcore/peer" in proc.stdout
    document = json.loads(out.read_text())
    assert document["meta"]["mode"] == "quick"
    results = document["results"]
    assert {r["scenario"] for r in results} == SCENARIOS
    for r in results:
        label = f"{r['scenario']} {r['server']} {r['client']}"
        assert not r["errors"], f"{label}: {r['errors']}"
        if r["unavailable"]:
            assert r["client"] not in ALWAYS or r["server"] == "postfix", label
            continue
        assert r["runs"], label
        assert r["median"] is not None, label
        assert r["median"] > 0, label
    ran = {(r["scenario"], r["client"]) for r in results if r["runs"]}
    # The S3 memory bound is part of the smoke test's output, not asserted.
    assert ("S3", "smtpcore-blocking") in ran
    assert ("S4-encode", "smtpcore") in ran
    assert document["ratios"], "no ratios computed"
    # One repetition: the run says it cannot back a claim, and why.
    validity = document["meta"]["validity"]
    assert validity["valid"] is False
    assert "1 repetition(s)" in validity["reasons"]
    assert "verdict: VOID" in proc.stdout
    assert document["meta"]["cpu"] in proc.stdout


@pytest.mark.parametrize("queued", [False, True], ids=["one-at-a-time", "queued"])
@pytest.mark.parametrize("shape", ["plain", "dsn", "bdat"])
def test_profile_core_sends_every_shape(shape: str, queued: bool) -> None:
    from bench.profile_core import run

    assert run(20, queued=queued, shape=shape) == 20


def test_profile_core_server_takes_bdat_in_pieces() -> None:
    from bench.profile_core import MiniServer

    server = MiniServer(chunking=True)
    assert b"CHUNKING" not in MiniServer().ehlo
    assert b"CHUNKING" in server.ehlo
    server.feed(b"BDAT 10 LAST\r\nhello")
    assert server.take() == b"220 mini ESMTP\r\n"  # 5 octets of the chunk still due
    server.feed(b" worlNOOP\r\n")
    assert server.take() == b"250 2.0.0 Ok: queued as 4Xk1Lz0mJlz9ry\r\n250 2.1.5 Ok\r\n"


def test_instruction_count_summary_is_read() -> None:
    from bench.instructions import parse_refs

    summary = "==1234== \n==1234== I   refs:      1,166,839,888\n"
    assert parse_refs(summary) == 1_166_839_888
    assert parse_refs("==1234== ERROR SUMMARY: 0 errors") is None


@pytest.mark.parametrize("queued", [False, True], ids=["one-at-a-time", "queued"])
def test_instruction_count_code_sends_the_messages(queued: bool) -> None:
    # What runs under valgrind is plain Python: it must send what it says.
    from bench.instructions import _core_code

    code = _core_code(7, queued=queued, shape="bdat")
    assert "== 7" in code
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_count_of_the_core() -> None:
    from bench.instructions import _core_code, per_message

    per = per_message(20, lambda n: _core_code(n, queued=True, shape="plain"))
    # Tens of thousands of instructions a message at least (a Python call
    # is hundreds); a few million would mean the difference went wrong.
    assert 20_000 < per < 5_000_000
