"""Whether a benchmark run can back a claim: the rules of ``bench/README.md``.

A speed claim needs a quiet machine: the load under 0.5 when the run
starts, at least five repetitions, and the peers (smtplib, aiosmtplib,
smtpproto, the bare Python loop) running at their usual speed. The last
rule is what catches a slow spell the load average misses: if smtplib runs
at two thirds of its usual speed, so did everything else in that stretch,
unevenly, and the ratios mean nothing.

"Usual" is only meaningful on the same processor: the same code runs at
different speeds on different machines (in this project's history, one
machine ran every peer at 60-80% of another's, which looked like a slow
spell for two sessions). So a run's peers are compared with earlier quiet
runs whose ``meta.cpu`` is the same, from the saved JSON documents
(``bench/results/*.json``). When none exists, the run cannot be judged on
its peers: it may start a baseline, and it says so.

:func:`judge` takes the run's document (as ``python -m bench`` writes it)
and the earlier documents, and returns a :class:`Verdict`; the runner
prints it under the table and stores it in the JSON's ``meta``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The load average (1 minute) under which a run may start.
MAX_START_LOAD = 0.5
#: Repetitions a run needs.
MIN_REPS = 5
#: A peer slower than this fraction of its usual median voids the run.
MIN_PEER_SPEED = 0.75
#: The peers whose speed is checked, scenario S1 against smtp-sink.
PEERS = ("smtplib", "aiosmtplib", "smtpproto-trio", "python-bare")
SCENARIO = "S1"
SERVER = "smtp-sink"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerCheck:
    """One peer's median against its median in earlier quiet runs."""

    client: str
    median: float
    usual: float | None  # the median of earlier quiet runs' medians
    earlier: int  # how many earlier quiet runs had it

    @property
    def speed(self) -> float | None:
        """This run's median as a fraction of the usual one."""
        return None if not self.usual else self.median / self.usual

    @property
    def in_line(self) -> bool | None:
        """None when there is nothing to compare with."""
        speed = self.speed
        return None if speed is None else speed >= MIN_PEER_SPEED


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """Whether the run is valid, and why (or why not)."""

    cpu: str
    start_load: float
    reps: int
    peers: tuple[PeerCheck, ...] = ()
    reasons: tuple[str, ...] = ()  # why it is void; empty if valid
    baseline: bool = False  # no earlier quiet run on this CPU to compare with

    @property
    def valid(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reasons": list(self.reasons),
            "baseline": self.baseline,
            "cpu": self.cpu,
            "start_load": self.start_load,
            "reps": self.reps,
            "peers": [
                {
                    "client": p.client,
                    "median": p.median,
                    "usual": p.usual,
                    "earlier_runs": p.earlier,
                    "speed": p.speed,
                }
                for p in self.peers
            ],
        }

    def describe(self) -> str:
        lines = [f"Validity (a claim needs all of it; see bench/README.md), CPU {self.cpu!r}:"]
        load_ok = "ok" if self.start_load < MAX_START_LOAD else "TOO HIGH"
        lines.append(f"  load at the start {self.start_load:.2f} (< {MAX_START_LOAD}): {load_ok}")
        reps_ok = "ok" if self.reps >= MIN_REPS else "TOO FEW"
        lines.append(f"  repetitions {self.reps} (>= {MIN_REPS}): {reps_ok}")
        for p in self.peers:
            if p.usual is None:
                lines.append(f"  {p.client} {p.median:,.0f}: no earlier quiet run on this CPU")
            else:
                ok = "ok" if p.in_line else "OUT OF LINE"
                lines.append(
                    f"  {p.client} {p.median:,.0f} against {p.usual:,.0f} usual "
                    f"({p.earlier} earlier quiet run(s)): {p.speed:.2f}x, {ok}"
                )
        if self.valid:
            verdict = "valid"
            if self.baseline:
                verdict += " as a first baseline only (no earlier quiet run on this CPU)"
        else:
            verdict = "VOID: " + "; ".join(self.reasons)
        lines.append(f"  verdict: {verdict}")
        return "\n".join(lines)


def _medians(document: Mapping[str, Any]) -> dict[str, float]:
    """The S1 smtp-sink medians of ``document``'s peers."""
    found: dict[str, float] = {}
    for row in document.get("results", ()):
        if (
            row.get("scenario") == SCENARIO
            and row.get("server") == SERVER
            and row.get("client") in PEERS
            and isinstance(row.get("median"), (int, float))
        ):
            found[row["client"]] = float(row["median"])
    return found


def quiet(document: Mapping[str, Any]) -> bool:
    """Whether an earlier run was taken on a quiet machine, by the load and
    repetitions it recorded.

    A run whose peers were out of line still counts: the usual speed is
    the median over every quiet run, which a few slow spells do not move.
    Leaving those runs out would let a fast first baseline void every later
    run, none of which could then correct it.
    """
    meta = document.get("meta", {})
    try:
        load = float(meta["loadavg_start"][0])
        reps = int(meta["reps"])
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return load < MAX_START_LOAD and reps >= MIN_REPS


def judge(document: Mapping[str, Any], earlier: Iterable[Mapping[str, Any]]) -> Verdict:
    """The verdict on ``document`` given the ``earlier`` runs' documents
    (those on another CPU, or not quiet, are left out)."""
    meta = document.get("meta", {})
    cpu = str(meta.get("cpu", ""))
    start_load = float(meta.get("loadavg_start", [0.0])[0])
    reps = int(meta.get("reps", 0))
    reasons: list[str] = []
    if start_load >= MAX_START_LOAD:
        reasons.append(f"load {start_load:.2f} at the start")
    if reps < MIN_REPS:
        reasons.append(f"{reps} repetition(s)")
    usual: dict[str, list[float]] = {}
    for other in earlier:
        if str(other.get("meta", {}).get("cpu", "")) != cpu or not quiet(other):
            continue
        for client, median in _medians(other).items():
            usual.setdefault(client, []).append(median)
    checks = []
    for client, median in sorted(_medians(document).items(), key=lambda kv: PEERS.index(kv[0])):
        before = usual.get(client, [])
        check = PeerCheck(
            client=client,
            median=median,
            usual=statistics.median(before) if before else None,
            earlier=len(before),
        )
        checks.append(check)
        if check.in_line is False:
            reasons.append(f"{client} at {check.speed:.2f}x its usual speed on this CPU")
    return Verdict(
        cpu=cpu,
        start_load=start_load,
        reps=reps,
        peers=tuple(checks),
        reasons=tuple(reasons),
        baseline=bool(checks) and all(c.usual is None for c in checks),
    )


def load_earlier(directory: Path, *, leave_out: Path | None = None) -> list[dict[str, Any]]:
    """The saved documents of ``directory`` (unreadable ones skipped), but
    ``leave_out`` (the file this run is about to replace)."""
    documents = []
    for path in sorted(directory.glob("*.json")):
        if leave_out is not None and path.resolve() == leave_out.resolve():
            continue
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict):
            documents.append(document)
    return documents
