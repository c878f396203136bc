"""The benchmark runner: ``python -m bench [--quick] [--reps N] [--json PATH]``.

For each scenario it starts the server(s), then runs every client of the
scenario in its own child process (:mod:`bench.worker`), alternating: one
repetition runs each client once, in an order rotated from one repetition
to the next, so a slow spell of the machine is spread over every client
instead of falling on one. It prints a table of medians, then the
smtpcore/peer ratios against the targets, and writes everything (each run's
raw numbers included) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench.micro  # noqa: F401  (registers the S4 functions)
from bench import servers, validity
from bench.clients import REGISTRY, REQUIRES, Params
from bench.data import write_big_message

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Mode:
    """How big each scenario is."""

    name: str
    reps: int
    s1_messages: int
    s1_slow_messages: int  # against aiosmtpd and Postfix, which are the bottleneck
    rtt_messages: int
    rtt_delay: float
    s2_connections: int
    s2_messages: int
    s3_octets: int
    s4_seconds: float
    s4_octets: int
    s5_connections: int
    run_timeout: float  # one client run, seconds


FULL = Mode(
    name="full",
    reps=3,
    s1_messages=2000,
    s1_slow_messages=1000,
    rtt_messages=500,
    rtt_delay=0.001,
    s2_connections=50,
    s2_messages=40,
    s3_octets=50 * 1000 * 1000,
    s4_seconds=1.0,
    s4_octets=8 * 1000 * 1000,
    s5_connections=1000,
    run_timeout=600.0,
)
QUICK = Mode(
    name="quick",
    reps=1,
    s1_messages=200,
    s1_slow_messages=60,
    rtt_messages=40,
    rtt_delay=0.001,
    s2_connections=50,
    s2_messages=4,
    s3_octets=5 * 1000 * 1000,
    s4_seconds=0.15,
    s4_octets=1000 * 1000,
    s5_connections=100,
    run_timeout=120.0,
)

S1_CLIENTS = (
    "smtplib",
    "aiosmtplib",
    "smtpproto-asyncio",
    "smtpproto-trio",
    "smtp-source",
    "python-bare",
    "smtpcore-blocking",
    "smtpcore-blocking-many",
    "smtpcore-session*",
    "smtpcore-asyncio",
    "smtpcore-asyncio-8tasks",
    "smtpcore-asyncio-many",
    "smtpcore-trio",
    "smtpcore-trio-8tasks",
    "smtpcore-trio-many",
    "smtpcore-anyio-asyncio",
    "smtpcore-anyio-asyncio-8tasks",
    "smtpcore-anyio-asyncio-many",
    "smtpcore-anyio-trio",
    "smtpcore-anyio-trio-8tasks",
    "smtpcore-anyio-trio-many",
)
S2_CLIENTS = (
    "smtplib-threads",
    "aiosmtplib",
    "smtpproto-asyncio",
    "smtpproto-trio",
    "smtp-source",
    "smtpcore-threads",
    "smtpcore-threads-many",
    "smtpcore-pool",
    "smtpcore-asyncio",
    "smtpcore-asyncio-many",
    "smtpcore-asyncio-pool",
    "smtpcore-trio",
    "smtpcore-trio-many",
    "smtpcore-trio-pool",
)
S3_CLIENTS = (
    "smtplib",
    "aiosmtplib",
    "smtpcore-blocking",
    "smtpcore-blocking-mem",
    "smtpcore-asyncio",
    "smtpcore-trio",
)
#: S1-RTT against the private Postfix (CHUNKING) through the delay proxy,
#: beside S1 against the same Postfix without it.
RTT_POSTFIX_CLIENTS = ("smtpcore-blocking-many", "smtpcore-asyncio-many", "smtpcore-trio-many")
S4_CLIENTS = ("smtplib", "aiosmtplib", "smtpcore")
S5_CLIENTS = {
    "S5-asyncio": ("aiosmtplib", "smtpproto-asyncio", "smtpcore-asyncio"),
    "S5-trio": ("smtpproto-trio", "smtpcore-trio"),
    "S5-blocking": ("smtplib", "smtpcore-blocking"),
}

#: How the table lists the servers of a scenario.
SERVER_ORDER = ("smtp-sink", "aiosmtpd", "postfix", "delay-proxy", "postfix-proxy", "-")

#: scenario -> unit of its headline number (the table's order of scenarios).
UNITS = {
    "S1": "msg/s",
    "S1-RTT": "msg/s",
    "S2": "msg/s",
    "S3": "MB/s",
    "S4-encode": "MB/s",
    "S4-parse": "MB/s",
    "S4-ehlo": "MB/s",
    "S5-asyncio": "KiB/conn",
    "S5-trio": "KiB/conn",
    "S5-blocking": "KiB/conn",
}


@dataclass(slots=True, kw_only=True)
class Group:
    """One scenario against one server: the clients run alternately."""

    scenario: str
    server: str  # "smtp-sink", "aiosmtpd", "postfix", "delay-proxy", "postfix-proxy", "-"
    clients: tuple[str, ...]
    params: Params


@dataclass(slots=True, kw_only=True)
class Row:
    """Every run of one client in one group."""

    scenario: str
    server: str
    client: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unavailable: str = ""

    def values(self) -> list[float]:
        """The headline number of each successful run."""
        return [value_of(self.scenario, r) for r in self.runs]

    def median(self) -> float | None:
        v = self.values()
        return statistics.median(v) if v else None

    def median_of(self, key: Callable[[dict[str, Any]], float]) -> float | None:
        v = [key(r) for r in self.runs]
        return statistics.median(v) if v else None


def value_of(scenario: str, run: dict[str, Any]) -> float:
    """The headline number of one run (higher is better except S5)."""
    if scenario.startswith("S5"):
        return float(run["per_connection"]) / 1024
    if scenario == "S3" or scenario.startswith("S4"):
        return float(run["octets"]) / float(run["seconds"]) / 1e6
    return float(run["count"]) / float(run["seconds"])


def cpu_us_per_message(run: dict[str, Any]) -> float:
    return float(run["cpu"]) / max(1, int(run["count"])) * 1e6


def rss_mib(run: dict[str, Any]) -> float:
    return float(run["rss_growth"]) / MiB


# -- targets -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A ratio smtpcore/peer the issue asks for (``at_least`` or ``at_most``)."""

    scenario: str
    server: str
    ours: str
    peer: str
    want: float
    metric: str = "value"  # "value", "cpu" (us/msg) or "rss" (MiB, peer unused)
    at_most: bool = False
    note: str = ""


#: The plain "at least this ratio" targets: (scenario, server, ours, peer, ratio).
_RATIOS = (
    # S1: each adapter in a send_message loop, with send_many, and (async)
    # with 8 tasks sharing one Client.
    ("S1", "smtp-sink", "smtpcore-blocking", "smtplib", 1.5),
    ("S1", "smtp-sink", "smtpcore-blocking-many", "smtplib", 2.5),
    ("S1", "smtp-sink", "smtpcore-asyncio-many", "aiosmtplib", 5),
    ("S1", "smtp-sink", "smtpcore-trio-many", "smtpproto-trio", 5),
    ("S1", "smtp-sink", "smtpcore-asyncio", "aiosmtplib", 3),
    ("S1", "smtp-sink", "smtpcore-asyncio-8tasks", "aiosmtplib", 4),
    ("S1", "smtp-sink", "smtpcore-trio", "smtpproto-trio", 5),
    ("S1", "smtp-sink", "smtpcore-trio-8tasks", "smtpproto-trio", 5),
    *(
        ("S1-RTT", "delay-proxy", ours, peer, 5)
        for ours, peer in (
            ("smtpcore-blocking", "smtplib"),
            ("smtpcore-blocking-many", "smtplib"),
            ("smtpcore-asyncio-many", "aiosmtplib"),
            ("smtpcore-trio-many", "smtpproto-trio"),
            ("smtpcore-asyncio", "aiosmtplib"),
            ("smtpcore-asyncio-8tasks", "aiosmtplib"),
            ("smtpcore-trio", "smtpproto-trio"),
            ("smtpcore-trio-8tasks", "smtpproto-trio"),
            ("smtpcore-session*", "smtplib"),
            ("smtpcore-session*", "aiosmtplib"),
            ("smtpcore-session*", "smtpproto-asyncio"),
            ("smtpcore-session*", "smtpproto-trio"),
        )
    ),
    ("S2", "smtp-sink", "smtpcore-asyncio", "aiosmtplib", 2),
    ("S2", "smtp-sink", "smtpcore-asyncio-many", "aiosmtplib", 2),
    ("S2", "smtp-sink", "smtpcore-asyncio-pool", "aiosmtplib", 2),
    ("S2", "smtp-sink", "smtpcore-trio", "smtpproto-trio", 2),
    ("S2", "smtp-sink", "smtpcore-trio-many", "smtpproto-trio", 2),
    ("S2", "smtp-sink", "smtpcore-trio-pool", "smtpproto-trio", 2),
    ("S3", "smtp-sink", "smtpcore-blocking", "smtplib", 2),
    ("S3", "smtp-sink", "smtpcore-asyncio", "aiosmtplib", 2),
    ("S4-encode", "-", "smtpcore", "aiosmtplib", 5),
    ("S4-encode", "-", "smtpcore", "smtplib", 2),
    ("S4-parse", "-", "smtpcore", "aiosmtplib", 2),
)

TARGETS = (
    *(
        Target(scenario=scenario, server=server, ours=ours, peer=peer, want=want)
        for scenario, server, ours, peer, want in _RATIOS
    ),
    Target(
        scenario="S1",
        server="smtp-sink",
        ours="smtpcore-blocking",
        peer="smtplib",
        want=1.0,
        metric="cpu",
        at_most=True,
        note="client CPU per message",
    ),
    Target(
        scenario="S1",
        server="smtp-sink",
        ours="smtpcore-blocking-many",
        peer="smtplib",
        want=1.0,
        metric="cpu",
        at_most=True,
        note="client CPU per message, pipelined",
    ),
    *(
        Target(
            scenario="S1",
            server="smtp-sink",
            ours=f"smtpcore-anyio-{loop}-many",
            peer=f"smtpcore-{loop}-many",
            want=1.2,
            metric="cpu",
            at_most=True,
            note=f"anyio adapter's CPU per message vs the native {loop} one",
        )
        for loop in ("asyncio", "trio")
    ),
    Target(
        scenario="S1",
        server="smtp-sink",
        ours="smtpcore-session*",
        peer="smtplib",
        want=1.5,
        note="core, all messages queued",
    ),
    Target(
        scenario="S2",
        server="smtp-sink",
        ours="smtpcore-threads",
        peer="smtplib-threads",
        want=1.0,
        note="no target in the issue",
    ),
    Target(
        scenario="S3",
        server="smtp-sink",
        ours="smtpcore-blocking",
        peer="",
        want=16,
        metric="rss",
        at_most=True,
        note="peak RSS growth, MiB (50 MB message)",
    ),
    Target(
        scenario="S3",
        server="smtp-sink",
        ours="smtpcore-blocking-mem",
        peer="",
        want=60,
        metric="rss",
        at_most=True,
        note="peak RSS growth, MiB (50 MB message in memory, the 50 MB included)",
    ),
    Target(
        scenario="S4-ehlo",
        server="-",
        ours="smtpcore",
        peer="aiosmtplib",
        want=1.0,
        note="no target in the issue",
    ),
)


# -- planning ------------------------------------------------------------------


def plan(
    mode: Mode, big_file: str, only: set[str] | None, clients: set[str] | None = None
) -> list[Group]:
    """Every group of the run, in order: the groups of one server together,
    so that it starts once; the micro benchmarks last, with no server up."""
    s1 = Params(messages=mode.s1_messages)
    s1_slow = Params(messages=mode.s1_slow_messages)
    s3 = Params(file=big_file)
    s5 = Params(connections=mode.s5_connections)
    groups = [
        Group(scenario="S1", server="smtp-sink", clients=S1_CLIENTS, params=s1),
        Group(
            scenario="S2",
            server="smtp-sink",
            clients=S2_CLIENTS,
            params=Params(messages=mode.s2_messages, connections=mode.s2_connections),
        ),
        Group(scenario="S3", server="smtp-sink", clients=S3_CLIENTS, params=s3),
        *(
            Group(scenario=name, server="smtp-sink", clients=clients, params=s5)
            for name, clients in S5_CLIENTS.items()
        ),
        Group(
            scenario="S1-RTT",
            server="delay-proxy",
            clients=S1_CLIENTS,
            params=Params(messages=mode.rtt_messages),
        ),
        Group(scenario="S1", server="aiosmtpd", clients=S1_CLIENTS, params=s1_slow),
        Group(scenario="S1", server="postfix", clients=S1_CLIENTS, params=s1_slow),
        Group(scenario="S3", server="postfix", clients=S3_CLIENTS, params=s3),
        Group(
            scenario="S1-RTT",
            server="postfix-proxy",
            clients=RTT_POSTFIX_CLIENTS,
            params=s1_slow,
        ),
        Group(
            scenario="S4-encode",
            server="-",
            clients=(*S4_CLIENTS, "smtpcore-64k", "smtpcore-scanned"),
            params=Params(seconds=mode.s4_seconds, octets=mode.s4_octets),
        ),
        *(
            Group(
                scenario=name,
                server="-",
                clients=S4_CLIENTS,
                params=Params(seconds=mode.s4_seconds),
            )
            for name in ("S4-parse", "S4-ehlo")
        ),
    ]
    if only:
        groups = [g for g in groups if _selected(g, only)]
    if clients:
        for g in groups:
            g.clients = tuple(c for c in g.clients if c in clients)
        groups = [g for g in groups if g.clients]
    return groups


def _selected(group: Group, only: set[str]) -> bool:
    """``S1`` (with S1-RTT), ``S1-RTT``, a server, or ``S1@smtp-sink``."""
    for item in only:
        scenario, _, server = item.partition("@")
        if server and server != group.server:
            continue
        if scenario in (group.scenario, group.scenario.split("-")[0], group.server):
            return True
    return False


# -- running -------------------------------------------------------------------


class Servers:
    """Starts the server each group needs, and keeps it running for the
    following groups that use the same one (the plan puts them together)."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.name = ""
        self.port = 0
        self.stack = contextlib.ExitStack()

    def port_for(self, name: str) -> int:
        """The port of server ``name`` (0 for "-"), starting it if needed."""
        if name == self.name:
            return self.port
        self.close()
        if name == "-":
            return 0
        self.name = name
        if name == "smtp-sink":
            big_sink = servers.SmtpSink(max_connections=max(1100, self.mode.s5_connections + 100))
            self.port = self.stack.enter_context(big_sink).port
        elif name == "aiosmtpd":
            self.port = self.stack.enter_context(servers.Aiosmtpd()).port
        elif name == "postfix":
            self.port = self.stack.enter_context(servers.Postfix()).port
        elif name == "delay-proxy":
            target = self.stack.enter_context(servers.SmtpSink()).port
            proxy = servers.DelayProxy(target, self.mode.rtt_delay)
            self.port = self.stack.enter_context(proxy).port
        elif name == "postfix-proxy":
            target = self.stack.enter_context(servers.Postfix()).port
            proxy = servers.DelayProxy(target, self.mode.rtt_delay)
            self.port = self.stack.enter_context(proxy).port
        else:
            raise ValueError(name)
        return self.port

    def close(self) -> None:
        """Stop whatever runs."""
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.name = ""
        self.port = 0


def available(client: str) -> str:
    """Why ``client`` cannot run here ("" if it can)."""
    module = REQUIRES.get(client)
    if module is not None:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{module} not installed"
    if client == "smtp-source" and not _which("smtp-source"):
        return "smtp-source not installed"
    return ""


def _which(name: str) -> bool:
    return any(os.access(os.path.join(d, name), os.X_OK) for d in (*_path(), "/usr/sbin"))


def _path() -> list[str]:
    return [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]


def run_one(scenario: str, client: str, params: Params, timeout: float) -> dict[str, Any]:
    """Run one client once in a child process; returns the worker's answer."""
    job = json.dumps({"scenario": scenario, "client": client, "params": _asdict(params)})
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*_path(), "/usr/sbin", "/usr/bin"])
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.worker", job],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return {"ok": False, "error": f"no output (exit {proc.returncode}): {proc.stderr[-500:]}"}
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


def _asdict(params: Params) -> dict[str, Any]:
    return {name: getattr(params, name) for name in Params.__dataclass_fields__}


def run_group(
    group: Group, mode: Mode, reps: int, pool: Servers, log: Callable[[str], None]
) -> list[Row]:
    rows = {c: Row(scenario=group.scenario, server=group.server, client=c) for c in group.clients}
    runnable = []
    for client in group.clients:
        if (group.scenario, client) not in REGISTRY:
            rows[client].unavailable = "no such combination"
            continue
        why = available(client)
        if why:
            rows[client].unavailable = why
        else:
            runnable.append(client)
    if not runnable:
        return list(rows.values())
    try:
        port = pool.port_for(group.server)
    except servers.ServerUnavailableError as exc:
        for client in runnable:
            rows[client].unavailable = f"{group.server}: {exc}"
        return list(rows.values())
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        pool.close()
        for client in runnable:
            rows[client].errors.append(f"{group.server} did not start: {exc}")
        return list(rows.values())
    params = Params(**{**_asdict(group.params), "port": port})
    for rep in range(reps):
        # Rotate the order so each client runs early and late.
        shift = rep % len(runnable)
        for client in runnable[shift:] + runnable[:shift]:
            answer = run_one(group.scenario, client, params, mode.run_timeout)
            row = rows[client]
            where = f"  {group.scenario:<10} {group.server:<11} {client:<24} rep {rep + 1}/{reps}:"
            if answer.get("ok"):
                row.runs.append(answer["measure"])
                value = value_of(group.scenario, answer["measure"])
                log(f"{where} {value:,.1f} {UNITS[group.scenario]}")
            else:
                row.errors.append(str(answer.get("error")))
                log(f"{where} FAILED {answer.get('error')}")
                if answer.get("trace"):
                    log(str(answer["trace"]))
    return list(rows.values())


# -- reporting -----------------------------------------------------------------


def find(rows: list[Row], scenario: str, server: str, client: str) -> Row | None:
    for row in rows:
        if (row.scenario, row.server, row.client) == (scenario, server, client):
            return row
    return None


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        ours = find(rows, t.scenario, t.server, t.ours)
        peer = find(rows, t.scenario, t.server, t.peer) if t.peer else None
        entry: dict[str, Any] = {
            "scenario": t.scenario,
            "server": t.server,
            "ours": t.ours,
            "peer": t.peer,
            "metric": t.metric,
            "target": t.want,
            "at_most": t.at_most,
            "note": t.note,
            "ratio": None,
            "met": None,
        }
        ratio: float | None = None
        if ours is not None and ours.runs:
            if t.metric == "rss":
                ratio = ours.median_of(rss_mib)
            elif peer is not None and peer.runs:
                if t.metric == "cpu":
                    a, b = ours.median_of(cpu_us_per_message), peer.median_of(cpu_us_per_message)
                else:
                    a, b = ours.median(), peer.median()
                if a is not None and b:
                    ratio = a / b
        if ratio is not None:
            entry["ratio"] = ratio
            entry["met"] = ratio <= t.want if t.at_most else ratio >= t.want
        out.append(entry)
    return out


def format_table(rows: list[Row], ratio_rows: list[dict[str, Any]]) -> str:
    lines = []
    header = (
        f"{'scenario':<12}{'server':<12}{'client':<24}{'median':>11} {'unit':<9}"
        f"{'min..max':>19}{'CPU us/msg':>11}{'RSS+ MiB':>10}  n"
    )
    lines.append(header)
    lines.append("-" * len(header))
    last = None
    for row in rows:
        key = (row.scenario, row.server)
        if last is not None and key != last:
            lines.append("")
        last = key
        unit = UNITS[row.scenario]
        prefix = f"{row.scenario:<12}{row.server:<12}{row.client:<24}"
        if row.unavailable:
            lines.append(f"{prefix}{'n/a':>11} ({row.unavailable})")
            continue
        values = row.values()
        if not values:
            error = row.errors[0][:60] if row.errors else "no run"
            lines.append(f"{prefix}{'FAILED':>11} ({error})")
            continue
        med = statistics.median(values)
        spread = f"{min(values):,.1f}..{max(values):,.1f}"
        cpu = ""
        if row.scenario in ("S1", "S1-RTT", "S2"):
            cpu_value = row.median_of(cpu_us_per_message)
            cpu = f"{cpu_value:,.0f}" if cpu_value is not None else ""
        rss = ""
        if row.scenario == "S3":
            rss_value = row.median_of(rss_mib)
            rss = f"{rss_value:,.1f}" if rss_value is not None else ""
        failed = f" ({len(row.errors)} failed)" if row.errors else ""
        lines.append(
            f"{prefix}{med:>11,.1f} {unit:<9}{spread:>19}{cpu:>11}{rss:>10}  {len(values)}{failed}"
        )
    lines.append("")
    lines.append("Ratios smtpcore/peer (same run, medians):")
    lines.append(
        f"{'scenario':<12}{'server':<12}{'smtpcore':<24}{'peer':<19}{'ratio':>8}"
        f"{'target':>10}  result"
    )
    for r in ratio_rows:
        sign = "<=" if r["at_most"] else ">="
        metric = {"value": "", "cpu": " (CPU/msg)", "rss": " (MiB)"}[r["metric"]]
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
        met = {True: "met", False: "MISSED", None: "-"}[r["met"]]
        note = f"  [{r['note']}]" if r["note"] else ""
        lines.append(
            f"{r['scenario']:<12}{r['server']:<12}{r['ours']:<24}{(r['peer'] or '-'):<19}"
            f"{ratio:>8}{sign + format(r['target'], 'g'):>10}  {met}{metric}{note}"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the numbers were taken on."""
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for dist in ("smtpcore", "aiosmtplib", "smtpproto", "aiosmtpd", "trio", "anyio"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        postfix = subprocess.run(
            ["postconf", "-d", "-h", "mail_version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except OSError:
        postfix = ""
    versions["postfix"] = postfix or None
    try:
        git = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=ROOT,
            check=False,
        ).stdout.strip()
    except OSError:
        git = ""
    versions["smtpcore_git"] = git or None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per client")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios or servers (S1,S1-RTT,S2,S3,S4,S5,postfix...);"
        " S1@smtp-sink for one scenario on one server",
    )
    parser.add_argument(
        "--clients",
        default="",
        help="comma-separated clients to run (default: every client of each scenario)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    reps = max(1, min(args.reps or mode.reps, 50))
    only = {x.strip() for x in args.only.split(",") if x.strip()} or None
    clients = {x.strip() for x in args.clients.split(",") if x.strip()} or None
    out = args.json or RESULTS / f"latest-{mode.name}.json"

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    meta = machine()
    meta.update(mode=mode.name, reps=reps)
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="smtpcore-bench-") as tmp:
        big = Path(tmp) / "big.eml"
        groups = plan(mode, str(big), only, clients)
        if any(g.scenario == "S3" for g in groups):
            meta["s3_octets"] = write_big_message(big, mode.s3_octets)
        pool = Servers(mode)
        try:
            for group in groups:
                log(f"{group.scenario} against {group.server}:")
                rows += run_group(group, mode, reps, pool, log)
        finally:
            pool.close()
    order = {name: i for i, name in enumerate(UNITS)}
    servers_order = {name: i for i, name in enumerate(SERVER_ORDER)}
    rows.sort(key=lambda r: (order[r.scenario], servers_order[r.server]))
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["loadavg_end"] = os.getloadavg()
    ratio_rows = ratios(rows)
    table = format_table(rows, ratio_rows)
    print(
        f"smtpcore benchmarks ({mode.name}, {reps} repetition(s), "
        f"{meta['seconds']} s, load {meta['loadavg_start'][0]:.1f} -> "
        f"{meta['loadavg_end'][0]:.1f} on {meta['cpus']} CPUs: {meta['cpu'] or 'unknown CPU'})"
    )
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "results": [
            {
                "scenario": r.scenario,
                "server": r.server,
                "client": r.client,
                "unit": UNITS[r.scenario],
                "median": r.median(),
                "cpu_us_per_message": r.median_of(cpu_us_per_message),
                "rss_growth_mib": r.median_of(rss_mib),
                "runs": r.runs,
                "errors": r.errors,
                "unavailable": r.unavailable or None,
            }
            for r in rows
        ],
        "ratios": ratio_rows,
        "table": table,
    }
    # Whether the run can back a claim: judged against the earlier quiet
    # runs on the same CPU (the ones saved beside it and in bench/results).
    earlier = validity.load_earlier(RESULTS, leave_out=out)
    if out.parent.resolve() != RESULTS.resolve() and out.parent.is_dir():
        earlier += validity.load_earlier(out.parent, leave_out=out)
    verdict = validity.judge(document, earlier)
    meta["validity"] = verdict.as_dict()
    print()
    print(verdict.describe())
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON: {out}")
    failed = [r for r in rows if r.errors]
    return 1 if failed else 0
