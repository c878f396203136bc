"""The README's command-line tour is executed, so that it cannot rot.

Every ``$ smtpcore ...`` line of a ```console block runs against a real
sink on a free port (``localhost:8025`` in the README is replaced by it),
except ``sink`` itself, which the test runs in-process. The output shown in
the README must have been copied from a run: after replacing every number
(ports, sizes, times, message counts) with ``N``, each shown line must equal
the line the command prints now.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from smtpcore.cli.sink import Sink

from .conftest import Run

README = Path(__file__).resolve().parents[2] / "README.md"


def console_examples() -> list[tuple[str, list[str]]]:
    """(command line, shown output lines) for each ``$ smtpcore`` example."""
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), re.S):
        command: str | None = None
        output: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    examples.append((command, output))
                command, output = line[2:], []
            elif command is not None:
                output.append(line)
        if command is not None:
            examples.append((command, output))
    return examples


def _shape(line: str) -> str:
    return re.sub(r"\d+(?:\.\d+)?", "N", line.rstrip())


EXAMPLES = [e for e in console_examples() if not e[0].startswith("smtpcore sink")]


def test_the_readme_has_a_tour_of_each_command() -> None:
    commands = {shlex.split(cmd)[1] for cmd, _ in console_examples()}
    assert {"send", "probe", "bulk", "sink"} <= commands


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[e[0][:40] for e in EXAMPLES])
def test_readme_example_runs_as_shown(
    command: str,
    shown: list[str],
    smtpcore: Run,
    start_sink: Callable[..., Sink],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = start_sink()
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for n in (1, 2, 3):
        (outbox / f"m{n}.eml").write_bytes(
            f"From: alice@example.com\r\nTo: bob{n}@example.com\r\n"
            f"Subject: note {n}\r\n\r\nhello {n}\r\n".encode()
        )
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command.replace("localhost:8025", f"127.0.0.1:{sink.port}"))
    assert argv[0] == "smtpcore"
    done: subprocess.CompletedProcess[str] = smtpcore(*argv[1:])
    assert done.returncode == 0, done.stderr
    printed = [
        _shape(line.replace(f"127.0.0.1:{sink.port}", "localhost:8025"))
        for line in done.stdout.splitlines()
    ]
    expected = [_shape(line) for line in shown]
    assert printed == expected
