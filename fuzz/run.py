"""Run the fuzz harnesses: with atheris for a given time, or replayed without it.

Usage (from the repository root)::

    python -m fuzz.run                         # every harness, 60 s each, with atheris
    python -m fuzz.run session --time 600      # one harness for ten minutes
    python -m fuzz.run --replay                # no atheris: corpus + random inputs
    python -m fuzz.run --report                # smtpcore line coverage of the corpora

With atheris, each harness runs in a child process under libFuzzer, with the
seed corpus ``fuzz/corpus/<name>/`` and a working corpus ``fuzz/work/<name>/``
(new inputs go there and are kept for the next run); crashing inputs are
written to ``fuzz/crashes/``. The runner echoes libFuzzer's status lines and
ends with a summary: executions, edge coverage (``cov``), features (``ft``),
corpus size and crashes per harness. Only smtpcore is instrumented, so
``cov`` counts edges in smtpcore alone.

A crashing input replays with ``python -m fuzz.run session --replay-file
fuzz/crashes/session-crash-...``; turn it into a regression test under
``tests/core/regressions/``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent
HARNESSES = ("replies", "session", "commands")
DICTIONARY = FUZZ_DIR / "smtp.dict"

_STATUS = re.compile(
    r"#(?P<execs>\d+)\s+\w+\s+cov: (?P<cov>\d+) ft: (?P<ft>\d+) corp: (?P<corp>\d+)/\S+"
    r"(?:.*?exec/s: (?P<speed>\d+))?"
)
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_CRASH = re.compile(r"Uncaught Python exception|ERROR: libFuzzer")


@dataclass
class Summary:
    """What one atheris run reached."""

    name: str
    executions: int = 0
    seconds: float = 0.0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    speed: int = 0
    crashes: int = 0
    artifact: str = ""
    returncode: int = 0

    def line(self) -> str:
        return (
            f"{self.name:<9} {self.executions:>10} execs  {self.seconds:>6.0f}s  "
            f"cov {self.cov:>5}  ft {self.ft:>6}  corpus {self.corpus:>5}  "
            f"exec/s {self.speed:>6}  crashes {self.crashes}"
            + (f"\n          crash input: {self.artifact}" if self.artifact else "")
        )


def _harness(name: str) -> ModuleType:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"fuzz.fuzz_{name}")


def _child(name: str, libfuzzer_args: list[str]) -> None:
    """Run inside the child: instrument smtpcore, then hand over to libFuzzer."""
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed (pip install 'smtpcore[fuzz]', Python < 3.12)")
    if "smtpcore" in sys.modules:
        sys.exit("smtpcore was imported before instrumentation")
    # Only the package under test is instrumented: coverage then measures
    # smtpcore, not the harness or the standard library.
    with atheris.instrument_imports(include=["smtpcore"]):
        import smtpcore  # noqa: F401
    module = _harness(name)
    atheris.Setup([sys.argv[0], *libfuzzer_args], module.TestOneInput)
    atheris.Fuzz()


def fuzz(name: str, seconds: int, extra: list[str]) -> Summary:
    """Fuzz one harness with atheris in a child process for ``seconds``."""
    module = _harness(name)
    seeds = FUZZ_DIR / "corpus" / name
    work = FUZZ_DIR / "work" / name
    crashes = FUZZ_DIR / "crashes"
    work.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    args = [
        f"-max_total_time={seconds}",
        f"-max_len={module.MAX_LEN}",
        f"-artifact_prefix={crashes}/{name}-",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        "-print_pcs=0",
    ]
    if DICTIONARY.exists() and name != "commands":
        args.append(f"-dict={DICTIONARY}")
    args += [*extra, str(work), str(seeds)]
    command = [sys.executable, "-m", "fuzz.run", "--child", name, "--", *args]
    summary = Summary(name=name)
    started = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            sys.stdout.write(f"[{name}] {line}")
            if match := _STATUS.search(line):
                summary.executions = int(match["execs"])
                summary.cov = int(match["cov"])
                summary.ft = int(match["ft"])
                summary.corpus = int(match["corp"])
                if match["speed"]:
                    summary.speed = int(match["speed"])
            elif (match := _DONE.search(line)) or (match := _EXECUTED.search(line)):
                summary.executions = int(match[1])
            elif match := _ARTIFACT.search(line):
                summary.crashes = 1
                summary.artifact = match[1]
            elif _CRASH.search(line):
                # libFuzzer stops at the first crash.
                summary.crashes = 1
        summary.returncode = child.wait()
    summary.seconds = time.monotonic() - started
    if summary.seconds:
        summary.speed = int(summary.executions / summary.seconds)
    return summary


def replay_all(names: list[str], count: int, seconds: float | None) -> int:
    """Replay mode: corpus plus ``count`` random inputs per harness."""
    from fuzz.fuzzlib import ReplayError, replay

    status = 0
    for name in names:
        module = _harness(name)
        try:
            stats = replay(
                name,
                module.TestOneInput,
                random_input=module.random_input,
                count=count,
                time_limit=seconds,
            )
        except ReplayError as failure:
            print(f"{name}: FAILED\n{failure}")
            status = 1
            continue
        print(
            f"{name:<9} {stats.inputs:>7} inputs ({stats.corpus} from the corpus) "
            f"in {stats.seconds:.1f}s: no failure"
        )
    return status


def replay_file(name: str, path: Path) -> int:
    """Run one input (a crash artifact) and show the traceback."""
    module = _harness(name)
    module.TestOneInput(path.read_bytes())
    print(f"{name}: {path} passes")
    return 0


def report(names: list[str]) -> int:
    """smtpcore line and branch coverage reached by the seed and work corpora."""
    try:
        import coverage
    except ImportError:
        sys.exit("coverage is not installed (pip install coverage)")
    cov = coverage.Coverage(source_pkgs=["smtpcore"], branch=True, data_file=None)
    cov.start()
    for name in names:
        module = _harness(name)
        for folder in (FUZZ_DIR / "corpus" / name, FUZZ_DIR / "work" / name):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                try:
                    module.TestOneInput(path.read_bytes())
                except Exception as exc:
                    print(f"{name}: {path.name} fails: {type(exc).__name__}: {exc}")
    cov.stop()
    cov.report(show_missing=False, skip_covered=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if str(ROOT) not in sys.path:
        # Run as a script (python fuzz/run.py): make the fuzz package importable.
        sys.path.insert(0, str(ROOT))
    if args[:1] == ["--child"]:
        rest = args[3:] if args[2:3] == ["--"] else args[2:]
        _child(args[1], rest)
        return 0
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("harness", nargs="*", help=f"any of {', '.join(HARNESSES)} (default: all)")
    parser.add_argument("--time", type=int, default=60, help="seconds per harness (atheris)")
    parser.add_argument("--replay", action="store_true", help="no atheris: corpus + random inputs")
    parser.add_argument(
        "--count", type=int, default=2000, help="random inputs per harness (replay)"
    )
    parser.add_argument("--replay-file", type=Path, help="run one input file and show the error")
    parser.add_argument("--report", action="store_true", help="smtpcore coverage of the corpora")
    parser.add_argument("--libfuzzer", nargs=argparse.REMAINDER, default=[], help="extra flags")
    options = parser.parse_args(args)
    names = list(options.harness) or list(HARNESSES)
    unknown = [name for name in names if name not in HARNESSES]
    if unknown:
        parser.error(f"unknown harness: {', '.join(unknown)}")
    if options.replay_file is not None:
        return replay_file(names[0], options.replay_file)
    if options.report:
        return report(names)
    if options.replay:
        return replay_all(names, options.count, None)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: running in replay mode instead")
        return replay_all(names, options.count, None)
    summaries = [fuzz(name, options.time, options.libfuzzer) for name in names]
    print("\nsummary (cov: edges reached in smtpcore; ft: libFuzzer features)")
    for summary in summaries:
        print(summary.line())
    return 1 if any(s.crashes or s.returncode for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
