"""What the Celery tests run: a private redis-server, Celery workers, a sink.

* :class:`RedisServer`: Debian's ``redis-server`` on a free 127.0.0.1 port,
  configured on its command line (no persistence, no system service),
  started once per session by ``conftest.py``.
* :class:`Workers`: ``celery -A smtpcore.integrations.celery_worker worker``
  processes (solo pool: the process is the one running the task), children
  of the test, configured through ``SMTPCORE_*`` variables.
* :class:`CountingSink`: an SMTP server (asyncio, in a thread) that offers
  PIPELINING, answers as it reads, and counts each message it *takes* by its
  Message-ID when its end of data arrives (before any reply, as an MTA that
  has queued it): ``delivered[message_id]`` is how many times the server got
  that message.

  ``decide(message_id)`` (optional) chooses the answer to each end of data:
  ``"accept"`` (250), ``"tempfail"`` (451: not taken, not counted), or
  ``"drop"`` (taken and counted, then the connection is closed without a
  reply: the client cannot know). While ``hold`` is set, a taken message's
  250 waits until it is cleared: the test can freeze every sender in the
  middle of a transaction.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Literal

import redis

Decision = Literal["accept", "tempfail", "drop"]

_MESSAGE_ID: Final = re.compile(rb"^message-id:[ \t]*(.*?)\r?\n", re.IGNORECASE | re.MULTILINE)
_EHLO: Final = b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"


class CountingSink:
    """Start with :meth:`start`, stop with :meth:`stop` (or use ``with``)."""

    def __init__(self, decide: Callable[[str], Decision] | None = None) -> None:
        self.decide = decide
        self.delivered: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.port = 0
        self.hold = threading.Event()
        self.held = 0  # end-of-data replies waiting for hold to clear
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def total(self) -> int:
        """Messages taken so far (repeats included)."""
        with self.lock:
            return sum(self.delivered.values())

    def start(self) -> CountingSink:
        self._thread = threading.Thread(target=self._run, name="counting-sink", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting sink did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None:
            self.hold.clear()
            loop.call_soon_threadsafe(self._close)
            self._thread.join(10)

    def __enter__(self) -> CountingSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the server --------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=256, limit=1 << 20)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            loop.run_until_complete(self._server.serve_forever())
        except asyncio.CancelledError:
            pass
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _close(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            for task in asyncio.all_tasks():
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            writer.write(b"220 sink.test ESMTP counting sink\r\n")
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(_EHLO)
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP", b"HELO"):
                    writer.write(b"250 2.0.0 OK\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    if not await self._end_of_data(data, writer):
                        return
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 5.5.2 not implemented\r\n")
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _end_of_data(self, data: bytes, writer: asyncio.StreamWriter) -> bool:
        """Take (or not) one message; False when the connection is to close."""
        head = data[: data.find(b"\r\n\r\n") + 2]
        found = _MESSAGE_ID.search(head)
        message_id = found.group(1).decode("ascii", "replace").strip() if found else ""
        decision: Decision = self.decide(message_id) if self.decide is not None else "accept"
        if decision == "tempfail":
            writer.write(b"451 4.3.0 try again later\r\n")
            return True
        with self.lock:
            self.delivered[message_id] += 1
        if decision == "drop":
            writer.transport.abort()
            return False
        if self.hold.is_set():
            with self.lock:
                self.held += 1
            await writer.drain()
            while self.hold.is_set():
                await asyncio.sleep(0.01)
        writer.write(b"250 2.0.0 queued\r\n")
        return True


# -- redis-server ----------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_server_binary() -> str | None:
    """The path of ``redis-server`` (Debian package redis-server), if installed."""
    found = shutil.which("redis-server")
    if found is None and os.path.exists("/usr/bin/redis-server"):
        found = "/usr/bin/redis-server"
    return found


class RedisServer:
    """A private redis-server: loopback only, nothing saved to disk."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        self.port = free_port()
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_timeout=1.0)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)
        finally:
            client.close()

    def flush(self) -> None:
        client = redis.Redis(port=self.port, socket_timeout=5.0)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


# -- Celery workers ----------------------------------------------------------------


class Workers:
    """Celery worker processes (solo pool), each logging to its own file."""

    def __init__(self, directory: Path, environ: Mapping[str, str]) -> None:
        self.directory = directory
        self.environ = {**os.environ, **environ}
        self.procs: list[subprocess.Popen[bytes]] = []

    def log(self, n: int) -> Path:
        return self.directory / f"worker-{n}.log"

    def start(self, count: int) -> Workers:
        for n in range(len(self.procs), len(self.procs) + count):
            command = [
                sys.executable, "-m", "celery",
                "-A", "smtpcore.integrations.celery_worker",
                "worker",
                "--pool", "solo",
                "--hostname", f"w{n}@%h",
                "--without-heartbeat", "--without-mingle", "--without-gossip",
                "--loglevel", "INFO",
                "--logfile", str(self.log(n)),
            ]  # fmt: skip
            self.procs.append(
                subprocess.Popen(
                    command,
                    env=self.environ,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 60
        for n, proc in enumerate(self.procs):
            while not self._ready(n):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"worker {n} exited with {proc.returncode}:\n" + self.tail(n)
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker {n} did not start:\n" + self.tail(n))
                time.sleep(0.1)
        return self

    def _ready(self, n: int) -> bool:
        try:
            return " ready." in self.log(n).read_text(errors="replace")
        except FileNotFoundError:
            return False

    def tail(self, n: int, lines: int = 40) -> str:
        try:
            return "\n".join(self.log(n).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def kill(self, n: int) -> None:
        """SIGKILL worker ``n``: no warm shutdown, no acknowledgement."""
        self.procs[n].send_signal(signal.SIGKILL)
        self.procs[n].wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # warm shutdown: finish the task, QUIT the pool
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
