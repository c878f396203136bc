"""Fixtures for the CLI tests: the real console script against a real server.

Every test runs ``python -m smtpcore ...`` (or the ``smtpcore`` entry point)
in a subprocess, against an in-process :class:`smtpcore.cli.sink.Sink`
(aiosmtpd on 127.0.0.1, on a free port) whose records the test inspects.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from smtpcore.cli.sink import Sink

Run = Callable[..., "subprocess.CompletedProcess[str]"]

#: The environment of every CLI run: no colour, no inherited password.
BASE_ENV = {
    key: value
    for key, value in os.environ.items()
    if key
    not in {"SMTPCORE_AUTH_PASSWORD", "FORCE_COLOR", "SMTPCORE_DEBUG", "PYTHONDONTWRITEBYTECODE"}
}
BASE_ENV["NO_COLOR"] = "1"
BASE_ENV["PYTHONUNBUFFERED"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Let the many CLI subprocesses share compiled bytecode, kept in a
    temporary directory (never next to the sources): each run then starts
    in a fraction of the time."""
    BASE_ENV["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    # Fill the cache once, before tests start CLI runs in parallel (each of
    # which would otherwise compile everything itself).
    modules = ", ".join(f"smtpcore.cli.{name}" for name in ("send", "probe", "bulk", "demo"))
    subprocess.run(
        [sys.executable, "-c", f"import {modules}, smtpcore.adapters.asyncio, trio"],
        env=BASE_ENV,
        check=True,
        timeout=120,
    )


def cli_command(*args: str) -> list[str]:
    """The argv that runs the command line as a user would (``python -m smtpcore``)."""
    return [sys.executable, "-m", "smtpcore", *args]


@pytest.fixture
def smtpcore() -> Run:
    """Run the CLI to completion; returns the CompletedProcess (text mode)."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
        entry_point: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        argv = cli_command(*args)
        if entry_point:
            argv = [os.path.join(os.path.dirname(sys.executable), "smtpcore"), *args]
        return subprocess.run(
            argv,
            env={**BASE_ENV, **(env or {})},
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def start_cli() -> Callable[..., subprocess.Popen[str]]:
    """Start the CLI without waiting (to interrupt it); stdout/stderr piped."""

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            cli_command(*args),
            env=BASE_ENV,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # The tests interrupt it with SIGINT: a suite started in the
            # background (where the shell ignores SIGINT, and children
            # inherit that) must still see Ctrl-C act as it does for a user.
            preexec_fn=_default_sigint,
        )

    return start


@pytest.fixture
def smtpcore_many() -> Callable[..., list[subprocess.CompletedProcess[str]]]:
    """Run several CLI invocations at once (keeps the suite fast); each item
    is ``(args, env)``. Returns the CompletedProcess of each, in order."""

    def run_many(
        calls: list[tuple[list[str], dict[str, str]]], timeout: float = 60
    ) -> list[subprocess.CompletedProcess[str]]:
        procs = []
        for args, env in calls:
            procs.append(
                subprocess.Popen(
                    cli_command(*args),
                    env={**BASE_ENV, **env},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        done = []
        for proc, (args, _) in zip(procs, calls, strict=False):
            out, err = proc.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
        return done

    return run_many


@pytest.fixture
def start_sink() -> Iterator[Callable[..., Sink]]:
    """Start sinks (``Sink`` arguments, on a free port); all stop at teardown."""
    started: list[Sink] = []

    def start(**kwargs: Any) -> Sink:
        sink = Sink(**kwargs)
        sink.start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def sink(start_sink: Callable[..., Sink]) -> Sink:
    """A plain sink: no TLS, no AUTH."""
    return start_sink()


@pytest.fixture
def tls_sink(start_sink: Callable[..., Sink]) -> Sink:
    """A sink offering STARTTLS (throwaway CA at ``ca_pem_path``) and AUTH."""
    return start_sink(starttls=True, auth=("alice", "correct horse"))


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
