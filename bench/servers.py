"""The servers the benchmarks talk to, each on 127.0.0.1 only.

* :class:`SmtpSink`: Postfix's ``smtp-sink``, a C server that throws mail
  away and answers pipelined commands at once: what it measures is the client.
* :class:`Aiosmtpd`: an aiosmtpd controller in a child process (a Python
  server: it is slower than every client, and does not offer PIPELINING).
* :class:`Postfix`: a private, real Postfix instance (the recipe of the
  interop tests, ``shared/interop/postfix.md``) that queues each message and
  hands it to the ``discard`` transport, so no mailbox is written.
* :class:`DelayProxy`: a loopback proxy that delays each direction by a fixed
  time (S1-RTT), in a child process.

Every server is a context manager that starts it, waits (bounded) until it
accepts connections, and stops it on exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"

#: How long a server may take to start accepting connections.
START_TIMEOUT = 30.0


class ServerUnavailableError(RuntimeError):
    """The server cannot run here (not installed, not root...)."""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_greeting(port: int, timeout: float = START_TIMEOUT) -> None:
    """Wait until a connection to ``port`` gets a 220 greeting (bounded)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=2.0) as s:
                greeting = s.recv(512)
                if greeting.startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
                last = RuntimeError(f"unexpected greeting {greeting!r}")
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"no SMTP server answered on {HOST}:{port}: {last}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class _Server:
    name = "server"
    port = 0

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class SmtpSink(_Server):
    """``smtp-sink``: PIPELINING, 8BITMIME, DSN; no CHUNKING in 3.7."""

    name = "smtp-sink"

    def __init__(self, max_connections: int = 1100) -> None:
        self.max_connections = max_connections
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str:
        """The path of ``smtp-sink``, or raise :class:`ServerUnavailableError`."""
        path = shutil.which("smtp-sink") or (
            "/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None
        )
        if path is None:
            raise ServerUnavailableError("smtp-sink is not installed (Debian package postfix)")
        return path

    def start(self) -> None:
        self.port = free_port()
        cmd = [self.binary()]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        # -m: simultaneous connections (S5 holds 1,000); the last argument is
        # the listen backlog.
        cmd += ["-m", str(self.max_connections), f"{HOST}:{self.port}", "1024"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_greeting(self.port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


class Aiosmtpd(_Server):
    """An aiosmtpd server in a child process; its handler discards mail."""

    name = "aiosmtpd"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.aiosmtpd_server", HOST, str(self.port)],
            stdout=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            wait_for_greeting(self.port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


_POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
myhostname = bench.localhost
queue_directory = {dir}/queue
data_directory = {dir}/data
inet_interfaces = {host}
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.test
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
# The benchmark measures the SMTP dialogue and the queue, not delivery.
virtual_transport = discard:
message_size_limit = 104857600
maillog_file = {dir}/maillog
maillog_file_prefixes = /var, /tmp
smtpd_tls_security_level = none
smtputf8_enable = yes
smtpd_client_connection_count_limit = 0
"""


class Postfix(_Server):
    """A private Postfix on 127.0.0.1 (PIPELINING, CHUNKING, SIZE, DSN...).

    Needs root (Postfix's own users) and the ``postfix`` Debian package.
    """

    name = "postfix"

    def __init__(self) -> None:
        self.dir: Path | None = None

    @staticmethod
    def check() -> None:
        """Raise :class:`ServerUnavailableError` unless a private Postfix can run."""
        if shutil.which("postfix") is None and not os.path.exists("/usr/sbin/postfix"):
            raise ServerUnavailableError("postfix is not installed")
        if os.geteuid() != 0:
            raise ServerUnavailableError("a private Postfix instance needs root")
        if not os.path.exists("/usr/share/postfix/master.cf.dist"):
            raise ServerUnavailableError("postfix's master.cf.dist is missing")

    def start(self) -> None:
        self.check()
        self.port = free_port()
        self.dir = d = Path(tempfile.mkdtemp(prefix="smtpcore-bench-postfix-"))
        d.chmod(0o755)
        for sub in ("queue", "data", "mail"):
            (d / sub).mkdir()
        shutil.chown(d / "data", "postfix")
        shutil.chown(d / "mail", 65534, 65534)
        (d / "main.cf").write_text(_POSTFIX_MAIN_CF.format(dir=d, host=HOST))
        master = Path("/usr/share/postfix/master.cf.dist").read_text().splitlines()
        lines = []
        for line in master:
            if line.startswith("smtp ") and " inet " in line:
                # A high port, no chroot (shared/interop/postfix.md 3).
                line = f"{HOST}:{self.port} inet n - n - - smtpd"
            lines.append(line)
        (d / "master.cf").write_text("\n".join(lines) + "\n")
        _allow_config_directory(d)
        try:
            _run(["postfix", "-c", str(d), "start"])
            wait_for_greeting(self.port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        d, self.dir = self.dir, None
        if d is None:
            return
        # `postfix stop` returns before master has exited, and master leaves
        # its pid file behind: wait for the process itself (at most 10 s).
        pid = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((d / "queue" / "pid" / "master.pid").read_text().split()[0])
        with contextlib.suppress(Exception):
            _run(["postfix", "-c", str(d), "stop"])
        deadline = time.monotonic() + 10
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(Exception):
            _allow_config_directory(d, remove=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's
    return True


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def _allow_config_directory(d: Path, *, remove: bool = False) -> None:
    """Postfix refuses ``-c DIR`` unless the system main.cf lists DIR in
    ``alternate_config_directories`` (shared/interop/postfix.md 2). Add it
    (or take it out again), keeping what other instances (the interop tests)
    put there. Under :data:`MAIN_CF_LOCK`: the interop tests may edit the
    same file at the same time (a parallel test run)."""
    with _main_cf_lock():
        _edit_config_directories(d, remove=remove)


#: The lock that the benchmarks and the interop tests take around their
#: read-modify-write of the system main.cf (``postconf -e`` replaces the
#: file, so the file itself cannot be locked).
MAIN_CF_LOCK = Path(tempfile.gettempdir()) / "smtpcore-postfix-main-cf.lock"


@contextlib.contextmanager
def _main_cf_lock() -> Iterator[None]:
    with MAIN_CF_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _edit_config_directories(d: Path, *, remove: bool) -> None:
    current = subprocess.run(
        ["postconf", "-h", "alternate_config_directories"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    dirs = [x for x in current.replace(",", " ").split() if x]
    # Drop this benchmark's own leftovers from earlier runs.
    dirs = [x for x in dirs if "smtpcore-bench-postfix-" not in x or Path(x).exists()]
    if remove:
        dirs = [x for x in dirs if x != str(d)]
    elif str(d) not in dirs:
        dirs.append(str(d))
    _run(["postconf", "-e", f"alternate_config_directories = {', '.join(dirs)}"])


class DelayProxy(_Server):
    """Forwards 127.0.0.1:port to a server, delaying each direction."""

    name = "delay-proxy"

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.proxy",
                str(self.port),
                str(self.target_port),
                str(self.delay),
            ],
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            wait_for_greeting(self.port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _stop(self.proc)
        self.proc = None
