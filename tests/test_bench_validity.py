"""The benchmark runner's verdict on whether a run can back a claim
(``bench/validity.py``): the rules of ``bench/README.md`` as code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import validity

INTEL = "Intel(R) Xeon(R) Processor @ 2.80GHz"
AMD = "AMD EPYC"


def _run(
    cpu: str = INTEL,
    load: float = 0.2,
    reps: int = 5,
    valid: bool | None = None,
    **medians: float,
) -> dict[str, Any]:
    """A document as ``python -m bench`` writes it, with S1 medians."""
    meta: dict[str, Any] = {"cpu": cpu, "loadavg_start": [load, 1.0, 1.0], "reps": reps}
    if valid is not None:
        meta["validity"] = {"valid": valid}
    results = [
        {"scenario": "S1", "server": "smtp-sink", "client": client.replace("_", "-"), "median": m}
        for client, m in medians.items()
    ]
    # Rows a verdict must not read: other scenarios and servers, our clients.
    results += [
        {"scenario": "S1-RTT", "server": "delay-proxy", "client": "smtplib", "median": 1.0},
        {"scenario": "S1", "server": "postfix", "client": "smtplib", "median": 1.0},
        {"scenario": "S1", "server": "smtp-sink", "client": "smtpcore-blocking", "median": 1.0},
        {"scenario": "S1", "server": "smtp-sink", "client": "aiosmtplib", "median": None},
    ]
    return {"meta": meta, "results": results}


def test_a_quiet_run_with_peers_in_line_is_valid() -> None:
    earlier = [_run(smtplib=1800, python_bare=6000), _run(smtplib=1500, python_bare=5400)]
    verdict = validity.judge(_run(smtplib=1400, python_bare=5000), earlier)
    assert verdict.valid, verdict.reasons
    assert not verdict.baseline
    (smtplib, bare) = verdict.peers
    assert (smtplib.client, smtplib.usual, smtplib.earlier) == ("smtplib", 1650, 2)
    assert (bare.client, bare.usual) == ("python-bare", 5700)
    assert "verdict: valid" in verdict.describe()


def test_a_peer_far_below_its_usual_speed_voids_the_run() -> None:
    earlier = [_run(smtplib=2000, aiosmtplib=900)]
    verdict = validity.judge(_run(smtplib=1400, aiosmtplib=900), earlier)
    assert not verdict.valid
    assert verdict.reasons == ("smtplib at 0.70x its usual speed on this CPU",)
    assert "VOID: smtplib at 0.70x" in verdict.describe()
    assert "OUT OF LINE" in verdict.describe()


def test_the_edge_of_in_line() -> None:
    earlier = [_run(smtplib=2000)]
    assert validity.judge(_run(smtplib=1500), earlier).valid
    assert not validity.judge(_run(smtplib=1499), earlier).valid


def test_only_runs_on_the_same_cpu_count() -> None:
    # Another machine ran every peer faster: that is not a slow spell here.
    earlier = [_run(cpu=AMD, smtplib=2400, python_bare=8100)]
    verdict = validity.judge(_run(smtplib=1500, python_bare=5500), earlier)
    assert verdict.valid
    assert verdict.baseline
    assert all(p.usual is None and p.in_line is None for p in verdict.peers)
    assert "first baseline only" in verdict.describe()
    assert "no earlier quiet run on this CPU" in verdict.describe()


def test_earlier_runs_that_were_not_quiet_do_not_set_the_usual_speed() -> None:
    earlier = [
        _run(load=0.9, smtplib=9000),  # busy machine
        _run(reps=1, smtplib=9000),  # one repetition
        {"meta": {"cpu": INTEL}, "results": []},  # no load recorded
        _run(valid=True, smtplib=1600),
    ]
    verdict = validity.judge(_run(smtplib=1500), earlier)
    assert verdict.valid
    assert (verdict.peers[0].usual, verdict.peers[0].earlier) == (1600, 1)


def test_a_fast_first_baseline_does_not_void_every_later_run() -> None:
    # The first quiet run came in a fast spell; the next ones, at the
    # machine's usual speed, were judged void against it. They still count
    # for the usual speed (a median), so that the baseline corrects itself.
    earlier = [_run(smtplib=1800), _run(valid=False, smtplib=1200)]
    assert not validity.judge(_run(smtplib=1200), earlier[:1]).valid
    earlier.append(_run(valid=False, smtplib=1180))
    verdict = validity.judge(_run(smtplib=1200), earlier)
    assert verdict.valid
    assert verdict.peers[0].usual == 1200
    # A single slow spell among them moves the median little.
    verdict = validity.judge(_run(smtplib=1200), [*earlier, _run(smtplib=400)])
    assert verdict.peers[0].usual == 1190


def test_the_load_and_repetitions_of_the_run_itself() -> None:
    verdict = validity.judge(_run(load=0.5, reps=3, smtplib=1500), [_run(smtplib=1500)])
    assert verdict.reasons == ("load 0.50 at the start", "3 repetition(s)")
    text = verdict.describe()
    assert "TOO HIGH" in text
    assert "TOO FEW" in text


def test_a_run_without_peers_is_judged_on_load_and_repetitions() -> None:
    verdict = validity.judge(_run(), [])
    assert verdict.valid
    assert verdict.peers == ()
    assert not verdict.baseline


def test_as_dict_round_trips_through_json() -> None:
    verdict = validity.judge(_run(smtplib=1000), [_run(smtplib=2000)])
    stored = json.loads(json.dumps(verdict.as_dict()))
    assert stored["valid"] is False
    assert stored["peers"][0] == {
        "client": "smtplib",
        "median": 1000,
        "usual": 2000,
        "earlier_runs": 1,
        "speed": 0.5,
    }
    # Void for its peers only, it was still taken on a quiet machine.
    document = _run(smtplib=1000)
    document["meta"]["validity"] = stored
    assert validity.quiet(document)


def test_load_earlier_skips_unreadable_files_and_the_one_being_replaced(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_run(smtplib=1)))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "latest-full.json").write_text(json.dumps(_run(smtplib=2)))
    (tmp_path / "notes.txt").write_text("not a result")
    found = validity.load_earlier(tmp_path, leave_out=tmp_path / "latest-full.json")
    assert [d["results"][0]["median"] for d in found] == [1]
