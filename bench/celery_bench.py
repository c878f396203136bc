"""Bulk sending on Celery: ``python -m bench.celery_bench [--quick] [--reps N]``.

Messages per second through 1, 2 and 4 Celery worker processes (solo pool)
to Postfix's ``smtp-sink``, for two ways of sending, in the same run and on
the same workers:

* ``smtpcore``: the ``smtpcore.send_batch`` task, batches of 100 messages,
  each worker process keeping a pool of connections across tasks and
  pipelining with ``send_many``; every message's key recorded in Redis.
* ``naive``: the usual first version, one task per message, each opening its
  own connection with ``smtplib`` (``sendmail`` then ``QUIT``).

A run is timed from handing the first task to the broker to having every
result back from the result backend (a private ``redis-server`` for both);
building the messages is outside it, as are starting the workers and a
warm-up round. The variants alternate within each repetition, in an order
rotated from one repetition to the next. The table shows the median and the
smtpcore/naive ratio for each worker count.

Needs the ``celery`` extra, Debian's ``redis-server`` and ``smtp-sink``
(package postfix). This module is also the workers' app:
``celery -A bench.celery_bench worker`` (configured by the runner through
``BENCH_CELERY_*`` variables).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.run import RESULTS, ROOT, machine
from bench.servers import HOST, ServerUnavailableError, SmtpSink, free_port

NAIVE_TASK = "bench.naive_send"
WORKER_COUNTS = (1, 2, 4)
BATCH = 100


# -- the workers' app ------------------------------------------------------------


def naive_send(sender: str, recipients: list[str], message: str) -> bool:
    """One message on its own connection, as a first Celery version would."""
    host, port = os.environ["BENCH_CELERY_SMTP"].rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as client:
        client.sendmail(sender, recipients, message.encode("ascii"))
    return True


def make_bench_app(broker: str, smtp: str, pool_size: int) -> Any:
    """The app with both tasks: smtpcore's batch task and the naive one."""
    from smtpcore.integrations.celery import make_app

    app = make_app(
        broker,
        main="bench",
        smtpcore_server=smtp,
        smtpcore_tls="none",
        smtpcore_pool_size=pool_size,
    )
    app.task(name=NAIVE_TASK)(naive_send)
    return app


_app: Any = None


def __getattr__(name: str) -> Any:
    """``app``, for ``celery -A bench.celery_bench worker``."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = make_bench_app(
            os.environ["BENCH_CELERY_BROKER"],
            os.environ["BENCH_CELERY_SMTP"],
            int(os.environ.get("BENCH_CELERY_POOL", "2")),
        )
    return _app


# -- the runner ---------------------------------------------------------------------


class Redis:
    """A private redis-server on 127.0.0.1, nothing saved to disk."""

    def __init__(self, directory: str) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise ServerUnavailableError("redis-server is not installed (Debian redis-server)")
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        command = [binary, "--port", str(self.port), "--bind", HOST, "--save", ""]
        command += ["--appendonly", "no", "--dir", directory, "--loglevel", "warning"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        import redis

        client = redis.Redis(host=HOST, port=self.port, socket_timeout=1.0)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Workers:
    """``count`` worker processes of this module's app (solo pool)."""

    def __init__(self, app: Any, count: int, environ: dict[str, str]) -> None:
        self.procs = []
        for n in range(count):
            command = [sys.executable, "-m", "celery", "-A", "bench.celery_bench", "worker"]
            command += ["--pool", "solo", "--hostname", f"bench{n}@%h", "--loglevel", "WARNING"]
            command += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
            self.procs.append(
                subprocess.Popen(
                    command,
                    env={**os.environ, **environ},
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5) or []) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                raise RuntimeError(f"{count} worker(s) did not start")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _messages(count: int) -> list[bytes]:
    """``count`` messages of about 1 KB, each with a Message-ID of its own
    (a fresh one every run: the idempotency keys must not replay)."""
    run = uuid.uuid4().hex[:12]
    body = b"".join(b"line %d of a one-kilobyte message body......\r\n" % n for n in range(18))
    return [
        b"From: bench@example.org\r\nTo: reader@example.org\r\n"
        + f"Subject: message {n}\r\nMessage-ID: <{n}.{run}@bench.test>\r\n\r\n".encode()
        + body
        for n in range(count)
    ]


def run_smtpcore(app: Any, count: int, batch: int = BATCH) -> float:
    """Seconds to send ``count`` messages as batch tasks."""
    from smtpcore.integrations.celery import Dispatcher, message_item

    items = [message_item(m) for m in _messages(count)]
    batches = [items[i : i + batch] for i in range(0, count, batch)]
    statuses: list[str] = []
    start = time.perf_counter()
    Dispatcher(app, poll_interval=0.02).run(
        batches, lambda _n, results: statuses.extend(r["status"] for r in results)
    )
    elapsed = time.perf_counter() - start
    if statuses != ["accepted"] * count:
        raise RuntimeError(f"smtpcore: not all accepted: {sorted(set(statuses))}")
    return elapsed


def run_naive(app: Any, count: int) -> float:
    """Seconds to send ``count`` messages as one task each."""
    args = [
        {"sender": "bench@example.org", "recipients": ["reader@example.org"], "message": m.decode()}
        for m in _messages(count)
    ]
    start = time.perf_counter()
    ids = [app.send_task(NAIVE_TASK, kwargs=kw).id for kw in args]
    done = dict(app.backend.get_many(ids, interval=0.02, timeout=600))
    elapsed = time.perf_counter() - start
    if len(done) != count or any(meta["status"] != "SUCCESS" for meta in done.values()):
        raise RuntimeError("naive: some tasks failed")
    for task_id in ids:
        app.AsyncResult(task_id).forget()
    return elapsed


VARIANTS = {"smtpcore": run_smtpcore, "naive": run_naive}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="800 messages, 1 and 2 workers, once")
    parser.add_argument("--messages", type=int, default=None, help="messages per run (2,000)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (3)")
    parser.add_argument("--workers", default=None, help="worker counts, e.g. 1,2,4")
    parser.add_argument("--pool-size", type=int, default=2, help="connections per worker (2)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    args = parser.parse_args(argv)
    count = args.messages or (800 if args.quick else 2000)
    reps = args.reps or (1 if args.quick else 3)
    counts = (
        [int(x) for x in args.workers.split(",")]
        if args.workers
        else ([1, 2] if args.quick else list(WORKER_COUNTS))
    )
    out = args.json or RESULTS / f"celery-{'quick' if args.quick else 'full'}.json"
    meta = machine()
    meta.update(messages=count, reps=reps, batch=BATCH, pool_size=args.pool_size)
    started = time.monotonic()
    runs: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="smtpcore-celery-bench-") as tmp:
        try:
            redis = Redis(tmp)
        except (ServerUnavailableError, RuntimeError) as exc:
            print(f"celery bench: n/a: {exc}", file=sys.stderr)
            return 1
        sink = SmtpSink()
        try:
            sink.start()
            smtp = f"{HOST}:{sink.port}"
            environ = {
                "BENCH_CELERY_BROKER": redis.url,
                "BENCH_CELERY_SMTP": smtp,
                "BENCH_CELERY_POOL": str(args.pool_size),
            }
            app = make_bench_app(redis.url, smtp, args.pool_size)
            for workers in counts:
                pool = Workers(app, workers, environ)
                try:
                    # Warm-up: every worker imports, connects and runs both tasks.
                    run_smtpcore(app, 20 * workers, batch=5)
                    run_naive(app, 20 * workers)
                    for rep in range(reps):
                        names = list(VARIANTS)
                        names = names[rep % 2 :] + names[: rep % 2]
                        for name in names:
                            seconds = VARIANTS[name](app, count)
                            runs.setdefault((name, workers), []).append(count / seconds)
                            print(
                                f"  {workers} worker(s) {name:9s} {count / seconds:8.1f} msg/s",
                                file=sys.stderr,
                                flush=True,
                            )
                finally:
                    pool.stop()
        finally:
            sink.stop()
            redis.stop()
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["loadavg_end"] = os.getloadavg()
    lines = [
        f"smtpcore on Celery ({count} messages, {reps} repetition(s), {meta['seconds']} s, "
        f"load {meta['loadavg_start'][0]:.1f} -> {meta['loadavg_end'][0]:.1f} "
        f"on {meta['cpus']} CPUs)",
        f"{'workers':>7}  {'smtpcore msg/s':>14}  {'naive msg/s':>11}  {'ratio':>6}  "
        f"{'smtpcore vs 1 worker':>20}",
    ]
    table = []
    base = statistics.median(runs[("smtpcore", counts[0])])
    for workers in counts:
        ours = statistics.median(runs[("smtpcore", workers)])
        naive = statistics.median(runs[("naive", workers)])
        table.append({"workers": workers, "smtpcore": ours, "naive": naive, "ratio": ours / naive})
        lines.append(
            f"{workers:>7}  {ours:>14,.1f}  {naive:>11,.1f}  {ours / naive:>5.1f}x  "
            f"{ours / base:>19.2f}x"
        )
    text = "\n".join(lines)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "table": table,
        "runs": [{"variant": v, "workers": w, "msg_per_s": r} for (v, w), r in runs.items()],
        "text": text,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
