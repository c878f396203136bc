"""Count the machine instructions the core runs per message.

``python -m bench.instructions [--messages N] [--queued] [--shape S]``
``python -m bench.instructions --client NAME --port P [--messages N]``

Timings on a shared machine move by 10-30% from one run to the next, more
than most changes to the core's speed. An instruction count does not: it
depends on the code and its input, not on the machine's load, so two runs of
the same code agree to within 0.1%. That makes it the measure for an A/B of
a change to the core (run it once on each side); timings (``python -m
bench``) remain the measure of speed itself.

What is counted is :func:`bench.profile_core.run`: a ``Session`` against the
in-memory server, as ``python -m bench.profile_core`` times it (the same
``--queued`` and ``--shape``). With ``--client``, it is instead one S1 client
of ``bench.clients`` (e.g. ``smtpcore-blocking-many`` or ``smtplib``) sending
to a server already listening on ``--port`` (``smtp-sink``): the client
process only, its system calls counted as one instruction each. How the
server's replies fall into reads moves that count by a little (about 1%).

The count runs under valgrind's cachegrind (``apt-get install valgrind``),
twice, with ``N`` messages more the second time; the difference, divided by
``N``, leaves out the interpreter's start and the imports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

#: Messages in both runs: the warm-up, so that caches and the EHLO are done.
_BASE = 200

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _core_code(messages: int, *, queued: bool, shape: str) -> str:
    return (
        "from bench.profile_core import run\n"
        f"assert run(50, queued={queued}, shape={shape!r}) == 50\n"
        f"assert run({messages}, queued={queued}, shape={shape!r}) == {messages}\n"
    )


def _client_code(messages: int, *, client: str, port: int) -> str:
    job = {"scenario": "S1", "client": client, "params": {"port": port, "messages": messages}}
    return (
        "import sys\n"
        "from bench.worker import main\n"
        f"sys.argv[1:] = [{json.dumps(job)!r}]\n"
        "if main():\n"
        "    raise SystemExit(1)\n"
    )


def parse_refs(output: str) -> int | None:
    """The instruction total in cachegrind's summary, or None."""
    found = _REFS.search(output)
    return None if found is None else int(found.group(1).replace(",", ""))


def count(code: str) -> int:
    """Instructions for a whole process that runs ``code``."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    refs = parse_refs(proc.stderr)
    if proc.returncode != 0 or refs is None:
        raise SystemExit(
            f"valgrind failed ({proc.returncode}):\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}"
        )
    return refs


def per_message(messages: int, code: Callable[[int], str]) -> float:
    """Instructions per message: the difference of two runs, ``code(n)``
    sending ``n`` messages."""
    small = count(code(_BASE))
    large = count(code(_BASE + messages))
    return (large - small) / messages


def main() -> None:
    from bench.profile_core import SHAPES

    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--queued", action="store_true")
    parser.add_argument("--shape", choices=SHAPES, default="plain")
    parser.add_argument("--client", help="an S1 client of bench.clients, e.g. smtplib")
    parser.add_argument("--port", type=int, default=2526, help="the server for --client")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    n = max(1, min(args.messages, 100_000))
    import smtpcore

    where = Path(smtpcore.__file__).parent
    if args.client:
        client, port = args.client, args.port
        result = per_message(n, lambda m: _client_code(m, client=client, port=port))
        what = f"S1 client {client} against port {port}"
    else:
        queued, shape = args.queued, args.shape
        result = per_message(n, lambda m: _core_code(m, queued=queued, shape=shape))
        how = "queued" if queued else "one at a time"
        what = f"core + mini server, {shape} messages ({how})"
    print(f"{what}, smtpcore from {where}: {result:,.0f} instructions/message")


if __name__ == "__main__":
    main()
