"""One function per scenario x client; each runs in its own child process.

A function gets the :class:`Params` of its run, does the work, and returns a
:class:`Measure` of the timed part only (imports and message building stay
outside). The table of functions, :data:`REGISTRY`, is what the runner
walks; :data:`REQUIRES` names the module a client needs, so a client whose
module is missing (the async adapters while they are being written) is
reported as unavailable instead of failing.

Every loop is bounded by its message or connection count, and every socket
operation has a timeout.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import gc
import importlib
import os
import resource
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.data import RECIPIENTS, SENDER, small_message

HOST = "127.0.0.1"
#: Socket timeout of every client, so that a stuck server cannot hang a run.
TIMEOUT = 60.0
#: Connections opened at once in S5 (the rest wait their turn).
CONNECT_CONCURRENCY = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class Params:
    """What one run is asked to do."""

    port: int = 0
    messages: int = 0  # per connection
    connections: int = 1
    size: int = 1024  # octets per message (S1, S2)
    file: str = ""  # S3: the message file
    seconds: float = 0.5  # S4: how long to repeat the operation
    octets: int = 0  # S4: body size


@dataclass(slots=True, kw_only=True)
class Measure:
    """What one run measured (its timed part)."""

    seconds: float = 0.0
    cpu: float = 0.0  # user + system CPU seconds of the client process
    count: int = 0  # messages, connections or operations
    octets: int = 0  # payload octets (S3, S4)
    rss_growth: int = 0  # peak RSS growth in the timed part, octets
    per_connection: float = 0.0  # S5: RSS octets per idle connection
    note: str = ""


Fn = Callable[[Params], Measure]
REGISTRY: dict[tuple[str, str], Fn] = {}
#: Client -> module it needs (checked with importlib before a run).
REQUIRES: dict[str, str] = {
    "aiosmtplib": "aiosmtplib",
    "smtpproto-asyncio": "smtpproto",
    "smtpproto-trio": "smtpproto",
    "smtpcore-asyncio": "smtpcore.adapters.asyncio",
    "smtpcore-trio": "smtpcore.adapters.trio",
    "smtpcore-asyncio-8tasks": "smtpcore.adapters.asyncio",
    "smtpcore-trio-8tasks": "smtpcore.adapters.trio",
    "smtpcore-anyio-asyncio": "smtpcore.adapters.anyio",
    "smtpcore-anyio-trio": "smtpcore.adapters.anyio",
}


#: Client name prefix -> the modules its code imports, loaded by the worker
#: before the run so that no import is timed (the first match wins).
PRELOAD: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("smtplib", ("smtplib",)),
    ("aiosmtplib", ("aiosmtplib",)),
    ("smtpproto-asyncio", ("smtpproto.client", "anyio")),
    ("smtpproto-trio", ("smtpproto.client", "anyio", "trio")),
    ("smtpcore-anyio-asyncio", ("smtpcore.adapters.anyio",)),
    ("smtpcore-anyio-trio", ("smtpcore.adapters.anyio", "trio")),
    ("smtpcore-asyncio", ("smtpcore.adapters.asyncio",)),
    ("smtpcore-trio", ("smtpcore.adapters.trio", "trio")),
    ("smtpcore-", ("smtpcore.adapters.blocking",)),  # blocking, threads, pool, session*
    ("smtpcore", ("smtpcore",)),  # S4
)


def preload(client: str) -> None:
    """Import what ``client`` needs, outside the timed part."""
    for prefix, modules in PRELOAD:
        if client.startswith(prefix):
            for module in modules:
                importlib.import_module(module)
            return


def bench(scenarios: str | tuple[str, ...], client: str) -> Callable[[Fn], Fn]:
    """Register ``fn`` as the code of ``client`` in each scenario."""
    names = (scenarios,) if isinstance(scenarios, str) else scenarios

    def register(fn: Fn) -> Fn:
        for name in names:
            REGISTRY[(name, client)] = fn
        return fn

    return register


# -- measuring -----------------------------------------------------------------


def _status(key: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in octets."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM to the current RSS, so the
    # peak seen afterwards belongs to the timed part alone.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


class Meter:
    """Times a block: wall clock, CPU of this process (every thread) and,
    with ``children=True``, of waited-for child processes, and peak RSS."""

    def __init__(self, *, children: bool = False) -> None:
        self.who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
        self.seconds = self.cpu = 0.0
        self.rss_before = self.rss_growth = 0

    def __enter__(self) -> Meter:
        gc.collect()
        _reset_peak()
        self.rss_before = _status("VmRSS")
        self._cpu0 = _cpu(self.who)
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu = _cpu(self.who) - self._cpu0
        self.rss_growth = max(0, _status("VmHWM") - self.rss_before)

    def measure(self, count: int, octets: int = 0, note: str = "") -> Measure:
        """The result, for ``count`` messages (connections, operations)."""
        return Measure(
            seconds=self.seconds,
            cpu=self.cpu,
            count=count,
            octets=octets,
            rss_growth=self.rss_growth,
            note=note,
        )


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(what)


# -- smtplib -------------------------------------------------------------------


def _smtplib_session(port: int, messages: int, msg: bytes) -> None:
    import smtplib

    s = smtplib.SMTP(HOST, port, local_hostname="localhost", timeout=TIMEOUT)
    try:
        for _ in range(messages):
            refused = s.sendmail(SENDER, list(RECIPIENTS), msg)
            _check(not refused, f"smtplib: refused {refused}")
        s.quit()
    finally:
        s.close()


@bench(("S1", "S1-RTT"), "smtplib")
def s1_smtplib(p: Params) -> Measure:
    msg = small_message(p.size)
    with Meter() as m:
        _smtplib_session(p.port, p.messages, msg)
    return m.measure(p.messages)


@bench("S2", "smtplib-threads")
def s2_smtplib_threads(p: Params) -> Measure:
    msg = small_message(p.size)
    with Meter() as m:
        _threads(p.connections, lambda: _smtplib_session(p.port, p.messages, msg))
    return m.measure(p.connections * p.messages)


@bench("S3", "smtplib")
def s3_smtplib(p: Params) -> Measure:
    import smtplib

    with Meter() as m:
        # smtplib takes the message in memory: reading the file is its cost.
        data = Path(p.file).read_bytes()
        s = smtplib.SMTP(HOST, p.port, local_hostname="localhost", timeout=TIMEOUT)
        try:
            refused = s.sendmail(SENDER, list(RECIPIENTS), data)
            _check(not refused, f"smtplib: refused {refused}")
            s.quit()
        finally:
            s.close()
        del data
    return m.measure(1, os.path.getsize(p.file))


@bench("S5-blocking", "smtplib")
def s5_smtplib(p: Params) -> Measure:
    import smtplib

    _raise_fd_limit(p.connections)
    held: list[smtplib.SMTP] = []
    with Meter() as m:
        for _ in range(p.connections):
            s = smtplib.SMTP(HOST, p.port, local_hostname="localhost", timeout=TIMEOUT)
            s.ehlo()
            held.append(s)
        per = _per_connection(m, p.connections)
    for s in held:
        s.close()
    return _idle_measure(m, p.connections, per)


def _threads(count: int, target: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 10)
    _check(not any(t.is_alive() for t in threads), "threads still running")
    if errors:
        raise errors[0]


# -- aiosmtplib ----------------------------------------------------------------


async def _aiosmtplib_session(port: int, messages: int, msg: bytes) -> None:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(
        hostname=HOST, port=port, local_hostname="localhost", start_tls=False, timeout=TIMEOUT
    )
    async with smtp:
        for _ in range(messages):
            refused, _reply = await smtp.sendmail(SENDER, list(RECIPIENTS), msg)
            _check(not refused, f"aiosmtplib: refused {refused}")


@bench(("S1", "S1-RTT"), "aiosmtplib")
def s1_aiosmtplib(p: Params) -> Measure:
    msg = small_message(p.size)
    with Meter() as m:
        asyncio.run(_aiosmtplib_session(p.port, p.messages, msg))
    return m.measure(p.messages)


@bench("S2", "aiosmtplib")
def s2_aiosmtplib(p: Params) -> Measure:
    msg = small_message(p.size)

    async def main() -> None:
        await asyncio.gather(
            *(_aiosmtplib_session(p.port, p.messages, msg) for _ in range(p.connections))
        )

    with Meter() as m:
        asyncio.run(main())
    return m.measure(p.connections * p.messages)


@bench("S3", "aiosmtplib")
def s3_aiosmtplib(p: Params) -> Measure:
    with Meter() as m:
        data = Path(p.file).read_bytes()
        asyncio.run(_aiosmtplib_session(p.port, 1, data))
        del data
    return m.measure(1, os.path.getsize(p.file))


@bench("S5-asyncio", "aiosmtplib")
def s5_aiosmtplib(p: Params) -> Measure:
    import aiosmtplib

    _raise_fd_limit(p.connections)

    async def one(gate: asyncio.Semaphore) -> aiosmtplib.SMTP:
        async with gate:
            smtp = aiosmtplib.SMTP(
                hostname=HOST,
                port=p.port,
                local_hostname="localhost",
                start_tls=False,
                timeout=TIMEOUT,
            )
            await smtp.connect()
            await smtp.ehlo()
            return smtp

    async def main() -> tuple[Meter, float]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        with Meter() as m:
            held = await asyncio.gather(*(one(gate) for _ in range(p.connections)))
            per = _per_connection(m, len(held))
        for smtp in held:
            smtp.close()
        await asyncio.sleep(0)
        return m, per

    m, per = asyncio.run(main())
    return _idle_measure(m, p.connections, per)


# -- smtpproto (anyio: asyncio and trio) ---------------------------------------


def _email(msg: bytes) -> email.message.EmailMessage:
    # smtpproto sends EmailMessage objects only (it serialises them itself).
    parsed = email.message_from_bytes(msg, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


async def _smtpproto_session(port: int, messages: int, msg: email.message.EmailMessage) -> None:
    from smtpproto.client import AsyncSMTPClient

    client = AsyncSMTPClient(HOST, port, domain="localhost", timeout=TIMEOUT)
    async with client.connect() as session:
        for _ in range(messages):
            reply = await session.send_message(msg, sender=SENDER, recipients=list(RECIPIENTS))
            _check(reply.code == 250, f"smtpproto: {reply}")


def _anyio_run(backend: str, fn: Callable[[], Awaitable[None]]) -> None:
    import anyio

    anyio.run(fn, backend=backend)


def _smtpproto_s1(backend: str) -> Fn:
    def run(p: Params) -> Measure:
        msg = _email(small_message(p.size))
        with Meter() as m:
            _anyio_run(backend, lambda: _smtpproto_session(p.port, p.messages, msg))
        return m.measure(p.messages)

    run.__name__ = f"s1_smtpproto_{backend}"
    return run


def _smtpproto_s2(backend: str) -> Fn:
    def run(p: Params) -> Measure:
        import anyio

        msg = _email(small_message(p.size))

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(p.connections):
                    tg.start_soon(_smtpproto_session, p.port, p.messages, msg)

        with Meter() as m:
            _anyio_run(backend, main)
        return m.measure(p.connections * p.messages)

    run.__name__ = f"s2_smtpproto_{backend}"
    return run


def _smtpproto_s5(backend: str) -> Fn:
    def run(p: Params) -> Measure:
        import anyio
        from smtpproto.client import AsyncSMTPClient

        _raise_fd_limit(p.connections)
        client = AsyncSMTPClient(
            HOST,
            p.port,
            domain="localhost",
            timeout=TIMEOUT,
            max_concurrent_connections=p.connections,
        )
        result: list[tuple[Meter, float]] = []

        async def main() -> None:
            gate = anyio.Semaphore(CONNECT_CONCURRENCY)
            release = anyio.Event()
            ready = 0
            all_ready = anyio.Event()

            async def hold() -> None:
                nonlocal ready
                async with gate:
                    cm = client.connect()
                    await cm.__aenter__()
                ready += 1
                if ready == p.connections:
                    all_ready.set()
                try:
                    await release.wait()
                finally:
                    await cm.__aexit__(None, None, None)

            with Meter() as m:
                async with anyio.create_task_group() as tg:
                    for _ in range(p.connections):
                        tg.start_soon(hold)
                    with anyio.fail_after(TIMEOUT * 5):
                        await all_ready.wait()
                    per = _per_connection(m, p.connections)
                    release.set()
            result.append((m, per))

        _anyio_run(backend, main)
        m, per = result[0]
        return _idle_measure(m, p.connections, per)

    run.__name__ = f"s5_smtpproto_{backend}"
    return run


for _backend in ("asyncio", "trio"):
    bench(("S1", "S1-RTT"), f"smtpproto-{_backend}")(_smtpproto_s1(_backend))
    bench("S2", f"smtpproto-{_backend}")(_smtpproto_s2(_backend))
    bench(f"S5-{_backend}", f"smtpproto-{_backend}")(_smtpproto_s5(_backend))


# -- postfix's smtp-source (a C client, the reference point) -------------------


def _smtp_source(p: Params, sessions: int) -> Measure:
    with tempfile.TemporaryDirectory() as tmp:
        # -F sends a file's lines with CRLF appended: give it the same message
        # with LF line ends.
        path = Path(tmp) / "message.txt"
        path.write_bytes(small_message(p.size).replace(b"\r\n", b"\n"))
        total = p.connections * p.messages if sessions > 1 else p.messages
        cmd = [
            "smtp-source",
            "-d",  # one connection for many messages
            "-s",
            str(sessions),
            "-m",
            str(total),
            "-r",
            str(len(RECIPIENTS)),
            "-f",
            SENDER,
            "-t",
            RECIPIENTS[0],
            "-M",
            "localhost",
            "-F",
            str(path),
            f"{HOST}:{p.port}",
        ]
        with Meter(children=True) as m:
            proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT * 10, check=False)
        _check(proc.returncode == 0, f"smtp-source failed: {proc.stderr!r}")
    return m.measure(total)


@bench(("S1", "S1-RTT"), "smtp-source")
def s1_smtp_source(p: Params) -> Measure:
    return _smtp_source(p, 1)


@bench("S2", "smtp-source")
def s2_smtp_source(p: Params) -> Measure:
    return _smtp_source(p, p.connections)


# -- a bare Python loop (the other reference point) ---------------------------


def _bare_replies(sock: socket.socket, count: int, buf: bytearray) -> None:
    """Read until ``count`` replies (last lines) are in ``buf``, each checked
    to be positive; nothing else of the reply grammar is checked."""
    while True:
        lines = bytes(buf).split(b"\r\n")[:-1]
        last = [line for line in lines if line[3:4] != b"-"]
        if len(last) >= count:
            _check(all(line[:1] in (b"2", b"3") for line in last), f"refused: {last!r}")
            del buf[:]
            return
        data = sock.recv(65536)
        _check(bool(data), "bare loop: the server closed the connection")
        buf += data


@bench("S1", "python-bare")
def s1_python_bare(p: Params) -> Measure:
    """Not a client: a loop with no checks but that every reply is positive,
    sending each message in smtpcore's two round trips (the envelope and
    DATA pipelined, then the data). What any Python client's loop could
    reach at best, against which the adapters' loops are measured."""
    msg = small_message(p.size)
    envelope = (
        f"MAIL FROM:<{SENDER}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in RECIPIENTS) + "DATA\r\n"
    ).encode()
    data = msg.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    buf = bytearray()
    with Meter() as m:
        sock = socket.create_connection((HOST, p.port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _bare_replies(sock, 1, buf)
        sock.sendall(b"EHLO localhost\r\n")
        _bare_replies(sock, 1, buf)
        for _ in range(p.messages):
            sock.sendall(envelope)
            _bare_replies(sock, len(RECIPIENTS) + 2, buf)
            sock.sendall(data)
            _bare_replies(sock, 1, buf)
        sock.sendall(b"QUIT\r\n")
        _bare_replies(sock, 1, buf)
        sock.close()
    return m.measure(p.messages)


# -- smtpcore: blocking adapter ------------------------------------------------


def _smtpcore_blocking_session(port: int, messages: int, msg: bytes) -> None:
    from smtpcore.adapters.blocking import Client

    with Client(HOST, port, tls="none", local_hostname="localhost", timeout=TIMEOUT) as c:
        for _ in range(messages):
            c.send_message(SENDER, RECIPIENTS, message=msg)


@bench(("S1", "S1-RTT"), "smtpcore-blocking")
def s1_smtpcore_blocking(p: Params) -> Measure:
    msg = small_message(p.size)
    with Meter() as m:
        _smtpcore_blocking_session(p.port, p.messages, msg)
    return m.measure(p.messages)


#: Messages per ``send_many`` call in the "-many" S1 variants.
BATCH = 100


@bench(("S1", "S1-RTT"), "smtpcore-blocking-many")
def s1_smtpcore_blocking_many(p: Params) -> Measure:
    """``Client.send_many``: every batch queued on the one session, which
    pipelines across messages (one round trip per message)."""
    from smtpcore.adapters.blocking import Client

    msg = small_message(p.size)
    batch = [{"sender": SENDER, "recipients": RECIPIENTS, "message": msg}] * BATCH
    client = Client(HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT)
    with Meter() as m, client as c:
        left = p.messages
        while left:
            results = c.send_many(batch[: min(left, BATCH)])
            _check(all(not isinstance(r, Exception) for r in results), "send_many failed")
            left -= len(results)
    return m.measure(p.messages)


@bench("S2", "smtpcore-threads")
def s2_smtpcore_threads(p: Params) -> Measure:
    msg = small_message(p.size)
    with Meter() as m:
        _threads(p.connections, lambda: _smtpcore_blocking_session(p.port, p.messages, msg))
    return m.measure(p.connections * p.messages)


@bench("S2", "smtpcore-threads-many")
def s2_smtpcore_threads_many(p: Params) -> Measure:
    """A thread and a blocking ``Client`` per connection, each sending its
    messages with one ``send_many``."""
    from smtpcore.adapters.blocking import Client

    msg = small_message(p.size)
    batch = [{"sender": SENDER, "recipients": RECIPIENTS, "message": msg}] * p.messages

    def session() -> None:
        with Client(HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT) as c:
            results = c.send_many(batch)
            _check(all(not isinstance(r, Exception) for r in results), "send_many failed")

    with Meter() as m:
        _threads(p.connections, session)
    return m.measure(p.connections * p.messages)


@bench("S2", "smtpcore-pool")
def s2_smtpcore_pool(p: Params) -> Measure:
    from smtpcore.adapters.blocking import Pool

    from smtpcore import SMTPError

    msg = small_message(p.size)
    total = p.connections * p.messages
    jobs = [{"sender": SENDER, "recipients": RECIPIENTS, "message": msg}] * total
    with (
        Meter() as m,
        Pool(
            HOST,
            p.port,
            size=p.connections,
            tls="none",
            local_hostname="localhost",
            timeout=TIMEOUT,
        ) as pool,
    ):
        results = pool.send_many(jobs)
    failed = [r for r in results if isinstance(r, SMTPError)]
    _check(not failed, f"smtpcore pool: {failed[:1]}")
    return m.measure(total)


@bench("S3", "smtpcore-blocking")
def s3_smtpcore_blocking(p: Params) -> Measure:
    from smtpcore.adapters.blocking import Client

    client = Client(HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT)
    with Meter() as m, client:
        client.send_message(SENDER, RECIPIENTS, message_file=p.file)
    return m.measure(1, os.path.getsize(p.file))


@bench("S3", "smtpcore-blocking-mem")
def s3_smtpcore_blocking_mem(p: Params) -> Measure:
    from smtpcore.adapters.blocking import Client

    client = Client(HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT)
    with Meter() as m, client:
        # The message in memory, as smtplib takes it: reading the file is
        # its cost, and the peak RSS growth shows what sending it adds.
        data = Path(p.file).read_bytes()
        client.send_message(SENDER, RECIPIENTS, message=data)
        del data
    return m.measure(1, os.path.getsize(p.file))


@bench("S5-blocking", "smtpcore-blocking")
def s5_smtpcore_blocking(p: Params) -> Measure:
    from smtpcore.adapters.blocking import Client

    _raise_fd_limit(p.connections)
    held: list[Client] = []
    with Meter() as m:
        for _ in range(p.connections):
            c = Client(HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT)
            c.connect()
            held.append(c)
        per = _per_connection(m, p.connections)
    for c in held:
        c.abort()
    return _idle_measure(m, p.connections, per)


# -- smtpcore: the core driven by a bare socket loop ---------------------------


@bench(("S1", "S1-RTT"), "smtpcore-session*")
def s1_smtpcore_session(p: Params) -> Measure:
    """The core alone, all messages queued on one ``Session`` up front.

    The adapters hand the session one message at a time and wait for its
    result, so they never let it pipeline across messages; this minimal
    driver (not an adapter: no timeouts per stage, no TLS, no streaming)
    shows what the core does when it can.
    """
    from smtpcore import (
        Close,
        Idle,
        MessageAccepted,
        MessageFailed,
        OutgoingMessage,
        Read,
        Session,
        SessionConfig,
        TLSPolicy,
        Write,
    )

    msg = small_message(p.size)
    config = SessionConfig(local_hostname="localhost", tls=TLSPolicy.NONE)
    with Meter() as m:
        sock = socket.create_connection((HOST, p.port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(config)
        outgoing = OutgoingMessage.build(sender=SENDER, recipients=RECIPIENTS, message=msg)
        for _ in range(p.messages):
            session.submit(outgoing)
        session.quit()
        accepted = 0
        # Bounded: every action is a write, a read that makes progress, or
        # the end; a stalled server times out.
        while True:
            action = session.next_action()
            if isinstance(action, Write):
                sock.sendall(action.data)
            elif isinstance(action, Read):
                session.receive_data(sock.recv(65536))
            for event in session.events():
                if isinstance(event, MessageAccepted):
                    accepted += 1
                elif isinstance(event, MessageFailed):
                    raise event.error
            if isinstance(action, (Idle, Close)):
                break
        sock.close()
    _check(accepted == p.messages, f"smtpcore session: {accepted} of {p.messages} accepted")
    return m.measure(p.messages)


# -- smtpcore: asyncio and trio adapters ---------------------------------------


async def _smtpcore_async_session(
    backend: str, port: int, messages: int, msg: bytes, many: bool = False
) -> None:
    client_cls = _async_client(backend)
    async with client_cls(HOST, port, tls="none", local_hostname="localhost", timeout=TIMEOUT) as c:
        if many:
            batch = [{"sender": SENDER, "recipients": RECIPIENTS, "message": msg}] * messages
            results = await c.send_many(batch)
            _check(all(not isinstance(r, Exception) for r in results), "send_many failed")
            return
        for _ in range(messages):
            await c.send_message(SENDER, RECIPIENTS, message=msg)


def _async_adapter(backend: str) -> Any:
    """The adapter module of ``backend``: ``asyncio``, ``trio``, or
    ``anyio-asyncio``/``anyio-trio`` (the anyio adapter on that loop)."""
    if backend.startswith("anyio"):
        from smtpcore.adapters import anyio as adapter
    elif backend == "asyncio":
        from smtpcore.adapters import asyncio as adapter  # type: ignore[no-redef]
    else:
        from smtpcore.adapters import trio as adapter  # type: ignore[no-redef]
    return adapter


def _async_client(backend: str) -> Any:
    return _async_adapter(backend).Client


def _async_pool(backend: str) -> Any:
    return _async_adapter(backend).Pool


def _run_async(backend: str, fn: Callable[[], Awaitable[None]]) -> None:
    if backend.startswith("anyio-"):
        _anyio_run(backend.removeprefix("anyio-"), fn)
    elif backend == "asyncio":

        async def wrap() -> None:
            await fn()

        asyncio.run(wrap())
    else:
        import trio

        trio.run(fn)


def _smtpcore_async_s1(backend: str) -> Fn:
    def run(p: Params) -> Measure:
        msg = small_message(p.size)
        with Meter() as m:
            _run_async(backend, lambda: _smtpcore_async_session(backend, p.port, p.messages, msg))
        return m.measure(p.messages)

    run.__name__ = f"s1_smtpcore_{backend}"
    return run


#: Tasks sharing one async Client in the "-8tasks" S1 variants.
SHARED_CLIENT_TASKS = 8


def _smtpcore_async_s1_tasks(backend: str) -> Fn:
    """Several tasks call ``send_message`` on one ``Client`` at once: the
    adapter queues their messages on the one session, which pipelines across
    messages (one round trip per message)."""

    def run(p: Params) -> Measure:
        msg = small_message(p.size)
        client_cls = _async_client(backend)
        tasks = SHARED_CLIENT_TASKS
        share = [p.messages // tasks + (1 if i < p.messages % tasks else 0) for i in range(tasks)]

        async def worker(client: Any, count: int) -> None:
            for _ in range(count):
                await client.send_message(SENDER, RECIPIENTS, message=msg)

        async def main() -> None:
            async with client_cls(
                HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT
            ) as client:
                if backend == "asyncio":
                    await asyncio.gather(*(worker(client, n) for n in share))
                elif backend.startswith("anyio-"):
                    import anyio

                    async with anyio.create_task_group() as tasks:
                        for n in share:
                            tasks.start_soon(worker, client, n)
                else:
                    import trio

                    async with trio.open_nursery() as nursery:
                        for n in share:
                            nursery.start_soon(worker, client, n)

        with Meter() as m:
            _run_async(backend, main)
        return m.measure(p.messages)

    run.__name__ = f"s1_smtpcore_{backend}_tasks"
    return run


def _smtpcore_async_s1_many(backend: str) -> Fn:
    """``Client.send_many`` in batches, as the blocking "-many" variant."""

    def run(p: Params) -> Measure:
        msg = small_message(p.size)
        client_cls = _async_client(backend)
        batch = [{"sender": SENDER, "recipients": RECIPIENTS, "message": msg}] * BATCH

        async def main() -> None:
            async with client_cls(
                HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT
            ) as client:
                left = p.messages
                while left:
                    results = await client.send_many(batch[: min(left, BATCH)])
                    _check(all(not isinstance(r, Exception) for r in results), "send_many")
                    left -= len(results)

        with Meter() as m:
            _run_async(backend, main)
        return m.measure(p.messages)

    run.__name__ = f"s1_smtpcore_{backend}_many"
    return run


def _smtpcore_async_s2(backend: str, many: bool = False) -> Fn:
    """One task and one ``Client`` per connection: ``send_message`` in a loop,
    or (``many``) one ``send_many`` of the connection's messages, which
    pipelines across them."""

    def run(p: Params) -> Measure:
        msg = small_message(p.size)

        async def main() -> None:
            if backend == "asyncio":
                await asyncio.gather(
                    *(
                        _smtpcore_async_session(backend, p.port, p.messages, msg, many)
                        for _ in range(p.connections)
                    )
                )
            else:
                import trio

                async with trio.open_nursery() as nursery:
                    for _ in range(p.connections):
                        nursery.start_soon(
                            _smtpcore_async_session, backend, p.port, p.messages, msg, many
                        )

        with Meter() as m:
            _run_async(backend, main)
        return m.measure(p.connections * p.messages)

    run.__name__ = f"s2_smtpcore_{backend}{'_many' if many else ''}"
    return run


def _smtpcore_async_s2_pool(backend: str) -> Fn:
    """``Pool(size=50).send_many`` of every message: batches of consecutive
    messages, one ``Client.send_many`` each, over up to 50 connections."""

    def run(p: Params) -> Measure:
        from smtpcore import SMTPError

        msg = small_message(p.size)
        total = p.connections * p.messages
        jobs = [{"sender": SENDER, "recipients": RECIPIENTS, "message": msg}] * total
        pool_cls = _async_pool(backend)
        results: list[Any] = []

        async def main() -> None:
            async with pool_cls(
                HOST,
                p.port,
                size=p.connections,
                tls="none",
                local_hostname="localhost",
                timeout=TIMEOUT,
            ) as pool:
                results.extend(await pool.send_many(jobs))

        with Meter() as m:
            _run_async(backend, main)
        failed = [r for r in results if isinstance(r, SMTPError)]
        _check(not failed and len(results) == total, f"smtpcore pool: {failed[:1]}")
        return m.measure(total)

    run.__name__ = f"s2_smtpcore_{backend}_pool"
    return run


def _smtpcore_async_s3(backend: str) -> Fn:
    def run(p: Params) -> Measure:
        client_cls = _async_client(backend)

        async def main() -> None:
            async with client_cls(
                HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT
            ) as c:
                await c.send_message(SENDER, RECIPIENTS, message_file=p.file)

        with Meter() as m:
            _run_async(backend, main)
        return m.measure(1, os.path.getsize(p.file))

    run.__name__ = f"s3_smtpcore_{backend}"
    return run


def _smtpcore_async_s5(backend: str) -> Fn:
    def run(p: Params) -> Measure:
        client_cls = _async_client(backend)
        _raise_fd_limit(p.connections)
        held: list[Any] = []
        result: list[tuple[Meter, float]] = []

        async def connect_all(gate: Any) -> None:
            async def one() -> None:
                async with gate:
                    c = client_cls(
                        HOST, p.port, tls="none", local_hostname="localhost", timeout=TIMEOUT
                    )
                    await c.connect()
                    held.append(c)

            if backend == "asyncio":
                await asyncio.gather(*(one() for _ in range(p.connections)))
            else:
                import trio

                async with trio.open_nursery() as nursery:
                    for _ in range(p.connections):
                        nursery.start_soon(one)

        async def main() -> None:
            if backend == "asyncio":
                gate: Any = asyncio.Semaphore(CONNECT_CONCURRENCY)
            else:
                import trio

                gate = trio.Semaphore(CONNECT_CONCURRENCY)
            with Meter() as m:
                await connect_all(gate)
                per = _per_connection(m, len(held))
            result.append((m, per))
            for c in held:
                aborted = c.abort()
                if asyncio.iscoroutine(aborted):
                    await aborted

        _run_async(backend, main)
        m, per = result[0]
        return _idle_measure(m, p.connections, per)

    run.__name__ = f"s5_smtpcore_{backend}"
    return run


for _backend in ("asyncio", "trio"):
    bench(("S1", "S1-RTT"), f"smtpcore-{_backend}")(_smtpcore_async_s1(_backend))
    bench(("S1", "S1-RTT"), f"smtpcore-{_backend}-8tasks")(_smtpcore_async_s1_tasks(_backend))
    bench(("S1", "S1-RTT"), f"smtpcore-{_backend}-many")(_smtpcore_async_s1_many(_backend))
    bench("S2", f"smtpcore-{_backend}")(_smtpcore_async_s2(_backend))
    bench("S2", f"smtpcore-{_backend}-many")(_smtpcore_async_s2(_backend, many=True))
    bench("S2", f"smtpcore-{_backend}-pool")(_smtpcore_async_s2_pool(_backend))
    bench("S3", f"smtpcore-{_backend}")(_smtpcore_async_s3(_backend))
    bench(f"S5-{_backend}", f"smtpcore-{_backend}")(_smtpcore_async_s5(_backend))

# The anyio adapter on each of its backends, beside the native adapters.
for _backend in ("anyio-asyncio", "anyio-trio"):
    bench(("S1", "S1-RTT"), f"smtpcore-{_backend}")(_smtpcore_async_s1(_backend))
    bench(("S1", "S1-RTT"), f"smtpcore-{_backend}-8tasks")(_smtpcore_async_s1_tasks(_backend))
    bench(("S1", "S1-RTT"), f"smtpcore-{_backend}-many")(_smtpcore_async_s1_many(_backend))


# -- S5 helpers ----------------------------------------------------------------


def _raise_fd_limit(connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def _per_connection(m: Meter, connections: int) -> float:
    """RSS growth per connection, now, while they are all held open."""
    gc.collect()
    return max(0, _status("VmRSS") - m.rss_before) / max(1, connections)


def _idle_measure(m: Meter, connections: int, per: float) -> Measure:
    out = m.measure(connections)
    out.per_connection = per
    return out
