"""What the private mail servers of the interop tests share.

:class:`ForegroundDaemon` runs a server (Exim, Dovecot) in the foreground
from a directory of its own, on a free loopback port, and stops it and
removes the directory at the end. The helpers below build the messages the
interop tests send and what a server stores of them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servers import LOOPBACK, WAIT, canonical, free_port, wait_until


class ForegroundDaemon:
    """A server process run in the foreground from ``directory`` (created
    empty), listening on ``port`` (free, on 127.0.0.1).

    Subclasses write their configuration into ``directory`` and call
    :meth:`launch`; ``logs`` names the files (in ``directory``) that
    :meth:`log` shows when something fails.
    """

    name = "the server"
    logs: tuple[str, ...] = ()

    def __init__(self, prefix: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        self.directory.chmod(0o755)  # its worker processes reach their files through it
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def launch(self, argv: list[str]) -> None:
        """Start ``argv``; raises RuntimeError (with the log) unless it is
        listening within :data:`WAIT` seconds."""
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self._listening, timeout=WAIT, step=0.05):
            self.stop(keep=True)
            raise RuntimeError(
                f"{self.name} did not listen on {LOOPBACK}:{self.port} within {WAIT} s:\n"
                f"{self.log()}"
            )

    def stop(self, *, keep: bool = False) -> None:
        """Stop the process (which stops its children) and remove the
        directory (unless ``keep``)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=WAIT)
        if not keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """The end of each log file (for failure messages)."""
        parts = []
        for name in self.logs:
            with contextlib.suppress(OSError):
                parts.append((self.directory / name).read_text(errors="replace")[-3000:])
        return "\n".join(parts) or "(no log)"

    def _listening(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            return False  # it exited: no use waiting
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                return True
        except OSError:
            return False


def interop_message(token: str, index: int, *, extra: str = "") -> bytes:
    """A small message that names its test (``token``) and its place in the
    batch; a line of it needs its dot doubled. ``extra``: header lines put
    first."""
    return (
        f"{extra}Message-ID: <{token}.{index}@example.test>\r\n"
        f"Subject: interop {token} message {index}\r\n"
        "\r\n"
        f"message {index}\r\n"
        ".a line that needs its dot doubled\r\n"
    ).encode()


def as_stored(body: bytes) -> bytes:
    """``body`` as a server that stores LF line endings keeps it."""
    return canonical(body).replace(b"\r\n", b"\n")


def plain_options(port: int, **overrides: Any) -> dict[str, Any]:
    """Client options for a server on ``port`` without TLS."""
    options: dict[str, Any] = {"server": LOOPBACK, "port": port, "tls": "none", "timeout": 10.0}
    options.update(overrides)
    return options


def assert_hello_again_after_tls(lines: Sequence[str], hello: str = "EHLO") -> None:
    """RFC 3207 4.2: in a transcript (``str`` of each entry), the client
    greets again once TLS is up, and only then sends MAIL."""
    starttls = lines.index("-> STARTTLS")
    established = next(i for i, line in enumerate(lines) if "TLS established" in line)
    hellos = [i for i, line in enumerate(lines) if line.startswith(f"-> {hello} ")]
    mail = next(i for i, line in enumerate(lines) if line.startswith("-> MAIL FROM:"))
    assert len(hellos) == 2, hellos
    assert hellos[0] < starttls < established < hellos[1] < mail, lines
