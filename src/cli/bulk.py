"""``smtpcore bulk``: many messages over N reused connections, resumable.

Sources: a directory of ``.eml`` files (recursively, sorted), an mbox file,
or a CSV of recipients with a ``string.Template`` message (``$name`` fields
from the CSV columns). Each message has a stable key: the ``.eml`` path
relative to the directory, ``mbox:N`` (1-based position), or
``csv:N:ADDRESS`` (1-based data row and its recipient).

The sending is the library's: a blocking ``Pool`` of ``--connections``
reused connections, whose ``send_many`` takes the messages in batches of
at most :data:`BATCH_SIZE`, each pipelined on a free connection, and retries
temporary failures (4xx, timeouts, connection errors) after an exponential
backoff (a ``RetryPolicy`` of ``--retries`` and ``--backoff``), on any
connection. A failure after the final dot whose outcome is unknown is never
retried. Each message is read from its source only when the pool asks for
the next batch; its report line is written by the pool's progress callback
when it has its final outcome (the pool reports a batch's messages once the
whole batch is done, so the lines come a batch at a time).

The report (``--report``) is JSON lines, one per message, flushed as it is
written::

    {"key": "csv:7:ann@example.org", "status": "accepted" | "failed" | "unknown",
     "code": 250 | null, "enhanced": "2.0.0" | null, "message": "...",
     "attempts": 1, "time": "2026-01-31T12:00:00.123Z"}

``--resume REPORT`` skips every key recorded as ``accepted`` or ``unknown``
(``unknown``: the message may have been delivered; it is never resent).

A message is *in flight* from the moment it is handed to the pool until its
report line is written: in a batch on a connection (queued behind the
batch's earlier messages, on the wire, or done and waiting for the rest of
its batch), or waiting out the backoff before a retry. At most
``--connections`` x :data:`BATCH_SIZE` are in batches at once.

Ctrl-C stops handing out messages and retrying, and lets the batches on
the wire finish (a message waiting for a retry is recorded as failed with
its last error: it was not delivered, and ``--resume`` sends it), so the
report says exactly which were accepted; a second
Ctrl-C closes every connection at once and records the messages still in
flight as ``unknown``: the report then has one line for every message handed
out, never two.

With ``--celery BROKER_URL`` the messages go in batches to Celery workers
(``smtpcore.integrations.celery``), which send them with their own settings;
this process follows the batches and writes the same report, so ``--resume``
works across both modes.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import email.parser
import email.policy
import email.utils
import hashlib
import json
import logging
import mailbox
import os
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from pathlib import Path
from typing import IO, Any, Final

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from smtpcore.adapters import Progress as SendProgress
from smtpcore.adapters import RetryPolicy
from smtpcore.adapters.blocking import Pool

from smtpcore import MessageResult, OutgoingMessage, SMTPError, printable

from . import _common as common

__all__ = ["bulk"]

#: Statuses that ``--resume`` skips: sending them again could duplicate them.
DONE_STATUSES: Final = frozenset({"accepted", "unknown"})
#: Seconds between plain progress lines when stderr is not a terminal.
PLAIN_PROGRESS_EVERY: Final = 5.0
#: Messages pipelined at a time on a connection: few, so that Ctrl-C stops
#: soon and what a second Ctrl-C records as unknown stays small.
BATCH_SIZE: Final = 8

_EPILOG = """\b
Examples:
  smtpcore bulk ./outbox -s localhost:8025 --report sent.jsonl
  smtpcore bulk archive.mbox -s smtp.example.com:587 --tls starttls --auth-user me \\
      --connections 8 --report sent.jsonl
  smtpcore bulk --csv people.csv --template welcome.txt --from news@example.com \\
      -s localhost:8025 --report sent.jsonl
  smtpcore bulk --csv people.csv --template welcome.txt --from news@example.com \\
      -s localhost:8025 --resume sent.jsonl --report sent.jsonl   (after Ctrl-C)
  smtpcore bulk ./outbox --celery redis://queue.example.net:6379/0 --report sent.jsonl
      (Celery workers send: see smtpcore.integrations.celery_worker)

\b
The template is a whole message (headers, blank line, body) with $column
fields; the CSV's "email" column (--to-column) is each message's recipient.
Date and Message-ID are added when the template has none.
Ctrl-C finishes the messages in flight and stops; the report then lists
exactly what was accepted, and --resume skips it. With --resume and --report
naming the same file, new lines are appended.

\b
Exit codes: 0 all accepted, 1 some refused permanently, 2 usage error,
3 some failed temporarily (rerun with --resume), 130 interrupted.
"""


class _SourceError(Exception):
    """A message could not be read or built from its source."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One message to send: its key and how to build it."""

    key: str
    load: Callable[[], tuple[str | None, list[str] | None, bytes | EmailMessage]]


# -- sources -------------------------------------------------------------------


def _parse_headers(data: bytes) -> Message:
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(data, headersonly=True)


def _raw_message(
    data: bytes, sender: str | None, recipients: list[str] | None
) -> tuple[str | None, list[str] | None, bytes | EmailMessage]:
    """A stored message, sent as it is (so signatures stay valid).

    The envelope comes from the headers unless given (the core derives it:
    From/Sender, To/Cc/Bcc, or the Resent-* set). A message with a Bcc
    header is sent re-serialised by the core instead, which removes Bcc:
    sending it raw would show every Bcc recipient to everyone.
    """
    headers = _parse_headers(data)
    if headers.get("Bcc") is not None:
        full = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
        assert isinstance(full, EmailMessage)
        return sender, recipients, full
    if sender is None or recipients is None:
        derived = OutgoingMessage.build(sender=sender, recipients=recipients, message=headers)
        sender, recipients = derived.sender, list(derived.recipients)
    return sender, recipients, data


def eml_jobs(directory: Path, sender: str | None, recipients: list[str] | None) -> list[Job]:
    """Every ``*.eml`` under ``directory``, sorted by relative path."""
    files = sorted(p for p in directory.rglob("*.eml") if p.is_file())

    def loader(path: Path) -> Callable[[], tuple[str | None, list[str] | None, Any]]:
        def load() -> tuple[str | None, list[str] | None, bytes | EmailMessage]:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise _SourceError(f"cannot read {path}: {exc.strerror}") from None
            return _raw_message(data, sender, recipients)

        return load

    return [Job(key=p.relative_to(directory).as_posix(), load=loader(p)) for p in files]


def mbox_jobs(path: Path, sender: str | None, recipients: list[str] | None) -> list[Job]:
    """Every message of an mbox, keyed by position (``mbox:1``...)."""
    box = mailbox.mbox(path, create=False)
    lock = threading.Lock()  # mailbox objects are not thread-safe

    def loader(key: str) -> Callable[[], tuple[str | None, list[str] | None, Any]]:
        def load() -> tuple[str | None, list[str] | None, bytes | EmailMessage]:
            try:
                with lock:
                    data = box.get_bytes(key)
            except (OSError, KeyError) as exc:
                raise _SourceError(f"cannot read message {key} of {path}: {exc}") from None
            return _raw_message(data, sender, recipients)

        return load

    with lock:
        keys = list(box.keys())
    return [Job(key=f"mbox:{n}", load=loader(k)) for n, k in enumerate(keys, 1)]


def _template_fields(template: string.Template) -> set[str]:
    # string.Template.get_identifiers() is Python 3.11+; the pattern is older.
    names: set[str] = set()
    for match in template.pattern.finditer(template.template):
        if match.group("invalid") is not None:
            line = template.template[: match.start()].count("\n") + 1
            raise click.BadParameter(
                f"invalid $ placeholder on line {line} (write $$ for a dollar sign)",
                param_hint="--template",
            )
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names


def csv_jobs(csv_path: Path, template_path: Path, to_column: str, sender: str | None) -> list[Job]:
    """One message per CSV row: the template with the row's fields."""
    try:
        text = template_path.read_text(encoding="utf-8")
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise click.BadParameter(f"cannot read the CSV or template: {exc}") from None
    template = string.Template(text)
    missing = _template_fields(template) - set(columns)
    if missing:
        raise click.BadParameter(
            f"the template uses {', '.join('$' + m for m in sorted(missing))} but the CSV "
            f"columns are {', '.join(columns) or '(none)'}",
            param_hint="--template",
        )
    if to_column not in columns:
        raise click.BadParameter(
            f"the CSV has no {to_column!r} column (columns: {', '.join(columns)})",
            param_hint="--to-column",
        )

    def loader(row: dict[str, str]) -> Callable[[], tuple[str | None, list[str] | None, Any]]:
        def load() -> tuple[str | None, list[str] | None, bytes | EmailMessage]:
            rcpt = (row.get(to_column) or "").strip()
            filled = template.substitute({k: v or "" for k, v in row.items() if k})
            message = email.parser.Parser(policy=email.policy.SMTP).parsestr(filled)
            assert isinstance(message, EmailMessage)
            if message["To"] is None:
                message["To"] = rcpt
            if message["Date"] is None:
                message["Date"] = email.utils.formatdate(localtime=True)
            if message["Message-ID"] is None:
                domain = (sender or str(message["From"] or "")).rpartition("@")[2].strip("<> ")
                message["Message-ID"] = email.utils.make_msgid(domain=domain or "localhost")
            return sender, [rcpt], message

        return load

    return [
        Job(key=f"csv:{n}:{(row.get(to_column) or '').strip()}", load=loader(row))
        for n, row in enumerate(rows, 1)
    ]


def read_done_keys(path: Path) -> set[str]:
    """Keys a report records as accepted or unknown (bad lines are skipped:
    a run killed mid-write can leave a partial last line)."""
    done: set[str] = set()
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("status") in DONE_STATUSES:
                    key = record.get("key")
                    if isinstance(key, str):
                        done.add(key)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="--resume"
        ) from None
    return done


# -- the run -------------------------------------------------------------------


def _now() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Run:
    """The report and the counters of one bulk run, whoever sends.

    A subclass sends in :meth:`_main` (on a thread of its own) and records
    each message's outcome with :meth:`_record`; ``in_flight`` holds the
    messages handed out and not yet recorded, by a number of the
    subclass's, which is what a second Ctrl-C (:meth:`abort`) records as
    ``unknown``.
    """

    def __init__(self, jobs: list[Job], *, connections: int) -> None:
        self.jobs = jobs
        self.connections = connections
        self.report: IO[str] | None = None  # set before start()
        self.stop = threading.Event()  # Ctrl-C: hand out no more messages
        self.finished = threading.Event()  # set when _main returns
        self.aborted = False
        self.lock = threading.Lock()
        self.in_flight: dict[int, Job] = {}
        self.accepted = 0
        self.failed_permanent = 0
        self.failed_temporary = 0
        self.unknown = 0
        self.retried = 0
        self.failures: list[dict[str, Any]] = []

    @property
    def done(self) -> int:
        return self.accepted + self.failed_permanent + self.failed_temporary + self.unknown

    def start(self) -> None:
        """Start sending, on a thread; ``finished`` is set when it is over."""

        def main() -> None:
            try:
                self._main()
            finally:
                self.finished.set()

        threading.Thread(target=main, name="bulk", daemon=True).start()

    def _main(self) -> None:
        raise NotImplementedError

    def _record(
        self,
        job: Job,
        status: str,
        attempts: int | None,
        *,
        message: str,
        code: int | None = None,
        enhanced: str | None = None,
        permanent: bool = False,
        index: int | None = None,
    ) -> None:
        """Count a message's outcome and write its report line; ``index``:
        its number in ``in_flight``, where it is removed (at the same time:
        the line is written once, by this or by :meth:`abort`)."""
        line = {
            "key": job.key,
            "status": status,
            "code": code,
            "enhanced": enhanced,
            "message": printable(message),
            "attempts": attempts,
            "time": _now(),
        }
        with self.lock:
            if self.aborted:
                return  # the abort already recorded this message as unknown
            if index is not None and self.in_flight.pop(index, None) is None:
                return
            self._write(line, permanent=permanent)

    def _write(self, line: dict[str, Any], *, permanent: bool) -> None:
        # Called with the lock held.
        status = line["status"]
        if status == "accepted":
            self.accepted += 1
        elif status == "unknown":
            self.unknown += 1
        elif permanent:
            self.failed_permanent += 1
        else:
            self.failed_temporary += 1
        if status != "accepted":
            self.failures.append(line)
        if self.report is not None:
            # One line per message, flushed at once: whatever happens to
            # this process later, what is written is true.
            self.report.write(json.dumps(line) + "\n")
            self.report.flush()

    def wind_down(self) -> None:
        """First Ctrl-C: hand out no more messages; those in flight finish."""
        self.stop.set()

    def abort(self) -> None:
        """Second Ctrl-C: record what is in flight as unknown and stop writing."""
        with self.lock:
            self.stop.set()
            pending, self.in_flight = self.in_flight, {}
            for job in pending.values():
                line = {
                    "key": job.key,
                    "status": "unknown",
                    "code": None,
                    "enhanced": None,
                    "message": "aborted while in flight; it may have been delivered",
                    "attempts": None,
                    "time": _now(),
                }
                self._write(line, permanent=False)
            self.aborted = True


class _Bulk(_Run):
    """Sending from here: the library's pool, its retries and its progress.

    Each job is built as the pool asks for the next batch and numbered in
    the order it is handed out (the pool's ``Progress.index``); the
    progress callback, called from the pool's threads as each message has
    its final outcome, writes its report line.
    """

    def __init__(
        self,
        jobs: list[Job],
        target: common.Target,
        *,
        connections: int,
        retries: int,
        backoff: float,
    ) -> None:
        super().__init__(jobs, connections=min(connections, max(len(jobs), 1)))
        self.debug = target.debug
        # Raises SMTPError for an option the core refuses (an EHLO name...).
        self.pool = Pool(
            target.server, target.port, size=self.connections, name="bulk", **target.options
        )
        self.retry = RetryPolicy(attempts=retries + 1, backoff=backoff, multiplier=2)
        # Smaller batches for a short run, so that every connection gets some.
        self.batch_size = max(1, min(BATCH_SIZE, -(-len(jobs) // self.connections)))

    def _main(self) -> None:
        with _wire_debug(self.debug):
            try:
                self.pool.send_many(
                    self._messages(),
                    retry=self.retry,
                    progress=self._progress,
                    batch_size=self.batch_size,
                )
            except Exception as exc:
                if self.aborted:
                    return  # the abort broke the connections under the pool
                # A bug, or the report could not be written: what was
                # handed out may have been sent.
                why = " ".join(f"{type(exc).__name__}: {exc}".split())
                click.echo(f"smtpcore: bulk: {why}", err=True)
                self.stop.set()
                with self.lock:
                    left = list(self.in_flight.items())
                with contextlib.suppress(OSError):
                    for index, job in left:
                        self._record(job, "unknown", None, message=f"stopped: {why}", index=index)
            finally:
                if not self.aborted:
                    with contextlib.suppress(SMTPError, OSError):
                        self.pool.close()

    def _messages(self) -> Iterator[dict[str, Any]]:
        """The pool's messages: each job built as it is handed out, until
        Ctrl-C; a job that cannot be built is recorded here as failed."""
        index = 0
        for job in self.jobs:
            if self.stop.is_set():
                return
            try:
                sender, recipients, message = job.load()
            except (_SourceError, ValueError) as exc:
                # ValueError: the core's InvalidInputError (no sender, a bad
                # address in the headers) or a template field left unfilled.
                self._record(job, "failed", 1, message=str(exc), permanent=True)
                continue
            with self.lock:
                # Checked with the lock that abort() holds: a job is either
                # in flight when it records them, or never handed out.
                if self.stop.is_set():
                    return
                self.in_flight[index] = job
            yield {"sender": sender, "recipients": recipients, "message": message}
            index += 1

    def _progress(self, update: SendProgress) -> None:
        """A message's final outcome, from one of the pool's threads."""
        with self.lock:
            self.retried = max(self.retried, update.retries)
            job = self.in_flight.get(update.index)
        if job is None:
            return  # aborted: recorded as unknown already
        outcome = update.outcome
        if isinstance(outcome, MessageResult):
            self._accepted(job, update.attempts, outcome, update.index)
            return
        failure = common.classify(outcome)
        reply = getattr(outcome, "reply", None)
        self._record(
            job,
            # Lost after the final dot: the server may have it. Never resent.
            "unknown" if outcome.status_unknown else "failed",
            update.attempts,
            message=failure.message,
            code=getattr(reply, "code", None),
            enhanced=getattr(reply, "enhanced_code", None),
            permanent=failure.exit_code != common.EXIT_TEMPORARY,
            index=update.index,
        )

    def _accepted(self, job: Job, attempts: int, result: MessageResult, index: int) -> None:
        reply = result.reply
        refused = "; ".join(f"{r}: {rep.describe()}" for r, rep in result.rejected.items())
        text = reply.describe() if reply is not None else ""
        if refused:
            text += f" (refused: {refused})"
        self._record(
            job,
            "accepted",
            attempts,
            message=text,
            code=reply.code if reply is not None else None,
            enhanced=reply.enhanced_code if reply is not None else None,
            index=index,
        )

    def wind_down(self) -> None:
        """First Ctrl-C: no more messages and no more retries (a message
        waiting for one is recorded with its last error, not sent)."""
        super().wind_down()
        self.pool.stop()

    def abort(self) -> None:
        """Second Ctrl-C: record what is in flight as unknown, then close
        every connection at once."""
        super().abort()
        self.pool.abort()


class _WireRelay(logging.Handler):
    """``--debug``: the wire lines the pool's connections log on
    ``smtpcore.wire`` as they happen, under ``smtpcore.cli.wire`` as the
    other commands print theirs (from the transcript of the one client they
    hold; the pool's are its own)."""

    def emit(self, record: logging.LogRecord) -> None:
        common.WIRE_LOG.handle(
            logging.makeLogRecord({**record.__dict__, "name": common.WIRE_LOG.name})
        )


@contextlib.contextmanager
def _wire_debug(debug: bool) -> Iterator[None]:
    """With ``--debug``, relay the library's wire log (see :class:`_WireRelay`)."""
    if not debug:
        yield
        return
    wire = logging.getLogger("smtpcore.wire")
    relay = _WireRelay()
    level, propagate = wire.level, wire.propagate
    # Each line once: relayed, not also printed under the library's name.
    wire.setLevel(logging.DEBUG)
    wire.propagate = False
    wire.addHandler(relay)
    try:
        yield
    finally:
        wire.removeHandler(relay)
        wire.setLevel(level)
        wire.propagate = propagate


# -- --celery: the workers send, this process follows ---------------------------

#: Connection options that belong to the workers' configuration with --celery.
_WORKER_SETTINGS: Final = (
    "server",
    "port",
    "tls",
    "ca_file",
    "insecure",
    "auth_user",
    "auth_password",
    "auth_mechs",
    "allow_insecure_auth",
    "ehlo",
    "lmtp",
    "unix_path",
    "timeout",
    "bind",
    "connections",
)


class _CeleryBulk(_Run):
    """``--celery``: Celery workers send (``smtpcore.integrations.celery``);
    this process hands them the messages in batches, follows them and
    writes the same report as the local mode.

    Each message's idempotency key is its report key plus a hash of its
    envelope and body, so it stays the same from one run to the next even
    when the headers are generated (CSV): a message that a worker accepted
    after this process stopped is not sent again by ``--resume``.
    """

    def __init__(self, jobs: list[Job], *, integration: Any, app: Any, batch: int) -> None:
        super().__init__(jobs, connections=1)
        self.integration = integration
        self.app = app
        self.batch = batch
        self.overrides: dict[str, Any] = {}  # --retries/--backoff, when given
        self._batches: list[list[tuple[int, Job]]] = []  # the jobs of each batch handed out
        self._unsent = 0  # the first job not handed out
        self._unreadable: set[int] = set()  # jobs recorded as failed before handing out

    @staticmethod
    def connect(ctx: click.Context, broker_url: str) -> tuple[Any, Any]:
        """The integration module and a Celery app for ``broker_url``, once
        the options are checked and the broker answers."""
        given = [
            name
            for name in _WORKER_SETTINGS
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                f"with --celery, {', '.join(given)} belong to the workers' configuration"
            )
        if not broker_url.startswith(("redis://", "rediss://", "unix://")):
            raise click.BadParameter(
                "give a Redis URL (redis://HOST:6379/0): the results and the message keys "
                "are kept there too",
                param_hint="--celery",
            )
        try:
            from smtpcore.integrations import celery as integration
        except ImportError as exc:
            raise common.fail(
                f"--celery needs the 'celery' extra ({exc.name} is not installed): "
                "pip install 'smtpcore[celery]'"
            ) from None
        app = integration.make_app(broker_url)
        try:
            app.backend.client.ping()
        except Exception as exc:
            where = broker_url.partition("@")[2] or broker_url
            raise common.fail(
                f"cannot reach the Celery broker at {where}: {exc}", common.EXIT_TEMPORARY
            ) from None
        return integration, app

    def _main(self) -> None:
        try:
            self.integration.Dispatcher(self.app).run(
                self._items(), self._done, stop=self.stop, **self.overrides
            )
        except Exception as exc:
            # The broker or the result backend failed: what was handed out
            # may yet be sent (unknown); the rest was not (failed, resendable).
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            click.echo(f"smtpcore: lost the Celery broker or result backend: {why}", err=True)
            with self.lock:
                handed = list(self.in_flight.items())
            for n, job in handed:
                self._record(
                    job, "unknown", 1, message=f"handed to the workers, then: {why}", index=n
                )
            for n in range(self._unsent, len(self.jobs)):
                if n not in self._unreadable:
                    self._record(self.jobs[n], "failed", 0, message=f"not sent: {why}")

    def _items(self) -> Iterator[list[dict[str, Any]]]:
        numbered: list[tuple[int, Job]] = []
        items: list[dict[str, Any]] = []
        for n, job in enumerate(self.jobs):
            if self.stop.is_set():
                return
            try:
                sender, recipients, message = job.load()
                item = self.integration.message_item(message, sender=sender, recipients=recipients)
            except (_SourceError, ValueError) as exc:
                self._unreadable.add(n)
                self._record(job, "failed", 1, message=str(exc), permanent=True)
                continue
            digest = hashlib.sha256()
            for part in (item["sender"], *item["recipients"]):
                digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
            digest.update(self.integration.message_bytes(item).partition(b"\r\n\r\n")[2])
            item["key"] = f"bulk:{job.key}:{digest.hexdigest()[:32]}"
            numbered.append((n, job))
            items.append(item)
            if len(items) == self.batch:
                yield self._hand_out(numbered, items, n + 1)
                numbered, items = [], []
        if items:
            yield self._hand_out(numbered, items, len(self.jobs))

    def _hand_out(
        self, numbered: list[tuple[int, Job]], items: list[dict[str, Any]], unsent: int
    ) -> list[dict[str, Any]]:
        with self.lock:
            self.in_flight.update(numbered)
            self._batches.append(numbered)
            self._unsent = unsent
        return items

    def _done(self, number: int, results: list[dict[str, Any]]) -> None:
        numbered, self._batches[number] = self._batches[number], []
        for (n, job), result in zip(numbered, results, strict=True):
            attempts = result.get("attempts") or 1
            if attempts > 1:
                with self.lock:
                    self.retried += attempts - 1
            reply = result.get("reply") or {}
            error = result.get("error") or {}
            text = error.get("message") or f"{reply.get('code', '')} {reply.get('text', '')}"
            refused = "; ".join(
                f"{r['recipient']}: {r.get('code')} {r.get('text', '')}"
                for r in result.get("refused") or []
            )
            if refused:
                text += f" (refused: {refused})"
            if result.get("replayed"):
                text += " (an earlier attempt's outcome)"
            status = result.get("status")
            self._record(
                job,
                status if status in ("accepted", "unknown") else "failed",
                attempts,
                message=text.strip(),
                code=reply.get("code"),
                enhanced=reply.get("enhanced"),
                permanent=status == "refused",
                index=n,
            )


# -- the command ---------------------------------------------------------------


@click.command(epilog=_EPILOG)
@click.argument("source", type=click.Path(exists=True, path_type=Path), required=False)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV of recipients (one message per row); needs --template.",
)
@click.option(
    "--template",
    "template_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Message template with $column fields (for --csv).",
)
@click.option(
    "--to-column",
    default="email",
    metavar="NAME",
    show_default=True,
    help="The CSV column holding each message's recipient.",
)
@click.option(
    "-f",
    "--from",
    "sender",
    default=None,
    metavar="ADDRESS",
    help="Envelope sender (default: from each message's headers).",
)
@click.option(
    "-t",
    "--to",
    "recipients",
    multiple=True,
    metavar="ADDRESS[,ADDRESS...]",
    callback=common.split_addresses,
    help="Envelope recipient for every .eml/mbox message (repeatable, or a comma-separated "
    "list; default: its headers).",
)
@click.option(
    "-c",
    "--connections",
    type=click.IntRange(1, 256),
    metavar="N",
    default=4,
    show_default=True,
    help="Concurrent connections.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    metavar="N",
    default=3,
    show_default=True,
    help="Retries of a temporary failure.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="First retry delay; doubled for each further retry (up to 300 seconds).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write one JSON line per message here.",
)
@click.option(
    "--resume",
    "resume_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Skip the messages this report records as accepted (or unknown).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--celery",
    "celery_url",
    default=None,
    metavar="BROKER_URL",
    help="Hand the messages to Celery workers through this broker (redis://HOST:6379/0) "
    "instead of sending from here; where and how to send is the workers' configuration "
    "(needs the 'celery' extra).",
)
@click.option(
    "--celery-batch",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    metavar="N",
    help="With --celery: messages per task.",
)
@common.connection_options
@click.pass_context
def bulk(
    ctx: click.Context,
    /,
    source: Path | None,
    csv_path: Path | None,
    template_path: Path | None,
    to_column: str,
    sender: str | None,
    recipients: tuple[str, ...],
    connections: int,
    retries: int,
    backoff: float,
    report_path: Path | None,
    resume_path: Path | None,
    as_json: bool,
    celery_url: str | None,
    celery_batch: int,
    **params: Any,
) -> None:
    """Send many messages over several reused connections.

    SOURCE is a directory of .eml files or an mbox file; or use --csv with
    --template. Temporary failures are retried; --report records each
    message's outcome, and --resume skips what an earlier run delivered.
    """
    jobs = _jobs(source, csv_path, template_path, to_column, sender, list(recipients) or None)
    total = len(jobs)
    skipped = 0
    if resume_path is not None:
        done = read_done_keys(resume_path)
        jobs = [job for job in jobs if job.key not in done]
        skipped = total - len(jobs)
    celery = None if celery_url is None else _CeleryBulk.connect(ctx, celery_url)
    target = common.make_target(params)
    target.announce()
    run: _Run
    if celery is None:
        try:
            run = _Bulk(jobs, target, connections=connections, retries=retries, backoff=backoff)
        except SMTPError as exc:  # an option the core refuses (an EHLO name...)
            failure = common.classify(exc)
            raise common.fail(failure.message, failure.exit_code) from None
    else:
        celery_run = _CeleryBulk(jobs, integration=celery[0], app=celery[1], batch=celery_batch)
        for name, value in (("retries", retries), ("backoff", backoff)):
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
                celery_run.overrides[name] = value
        run = celery_run
    # Opened once the run could be set up: a refused option leaves it alone.
    report = run.report = _open_report(report_path, resume_path)
    start = time.perf_counter()
    try:
        interrupted = _drive(run, total, skipped)
    finally:
        if report is not None and not run.aborted:
            report.close()
    elapsed = time.perf_counter() - start
    code = _exit_code(run, interrupted)
    summary = {
        "ok": code == common.EXIT_OK,
        "total": total,
        "sent": run.done,
        "accepted": run.accepted,
        "failed": run.failed_permanent + run.failed_temporary,
        "unknown": run.unknown,
        "skipped": skipped,
        "retries": run.retried,
        "connections": run.connections,
        "interrupted": interrupted,
        "elapsed": round(elapsed, 3),
        "report": None if report_path is None else str(report_path),
        "failures": run.failures[:100],
    }
    if celery_url is not None:
        summary["celery"] = True
    if as_json:
        common.dump_json(summary)
    else:
        _print_summary(summary, len(jobs))
    if run.aborted:
        # Worker threads may still hold sockets; do not wait for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    ctx.exit(code)


def _jobs(
    source: Path | None,
    csv_path: Path | None,
    template_path: Path | None,
    to_column: str,
    sender: str | None,
    recipients: list[str] | None,
) -> list[Job]:
    if csv_path is not None or template_path is not None:
        if csv_path is None or template_path is None:
            raise click.UsageError("--csv and --template go together")
        if source is not None:
            raise click.UsageError("give a SOURCE or --csv/--template, not both")
        if recipients:
            raise click.UsageError("with --csv the recipients come from the CSV (--to-column)")
        return csv_jobs(csv_path, template_path, to_column, sender)
    if source is None:
        raise click.UsageError("give a directory of .eml files, an mbox file, or --csv/--template")
    if source.is_dir():
        return eml_jobs(source, sender, recipients)
    try:
        return mbox_jobs(source, sender, recipients)
    except (OSError, mailbox.Error) as exc:
        raise click.BadParameter(f"cannot read {source} as an mbox: {exc}") from None


def _open_report(report_path: Path | None, resume_path: Path | None) -> IO[str] | None:
    if report_path is None:
        return None
    same = (
        resume_path is not None
        and report_path.exists()
        and os.path.samefile(report_path, resume_path)
    )
    try:
        # Appending to the report being resumed keeps one complete history.
        return open(report_path, "a" if same else "w", encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {report_path}: {exc.strerror}", param_hint="--report"
        ) from None


def _drive(run: _Run, total: int, skipped: int) -> bool:
    """Run the sending, showing progress; True if interrupted."""
    err = Console(stderr=True, highlight=False, markup=False)
    progress: Progress | None = None
    if err.is_terminal:
        progress = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
    interrupted = False
    started = time.monotonic()
    last_plain = started
    with progress if progress is not None else contextlib.nullcontext():
        task = None
        if progress is not None:
            task = progress.add_task("bulk", total=len(run.jobs), rate="")
        run.start()
        while True:
            try:
                alive = not run.finished.wait(0.1)
                done = run.done
                rate = done / max(time.monotonic() - started, 1e-6)
                if progress is not None and task is not None:
                    progress.update(task, completed=done, rate=f"{rate:.1f} msg/s")
                elif time.monotonic() - last_plain >= PLAIN_PROGRESS_EVERY and alive:
                    last_plain = time.monotonic()
                    click.echo(f"bulk: {done}/{len(run.jobs)} done ({rate:.1f} msg/s)", err=True)
                if not alive:
                    break
            except KeyboardInterrupt:
                if not run.stop.is_set():
                    interrupted = True
                    run.wind_down()
                    click.echo(
                        "smtpcore: interrupted: finishing the messages in flight "
                        "(Ctrl-C again to abort them)",
                        err=True,
                    )
                else:
                    run.abort()
                    click.echo("smtpcore: aborted", err=True)
                    break
    return interrupted


def _exit_code(run: _Run, interrupted: bool) -> int:
    if interrupted or run.aborted:
        return common.EXIT_INTERRUPTED
    if run.failed_permanent:
        return common.EXIT_PERMANENT
    if run.failed_temporary or run.unknown:
        return common.EXIT_TEMPORARY
    return common.EXIT_OK


def _print_summary(summary: dict[str, Any], queued: int) -> None:
    elapsed = summary["elapsed"]
    rate = summary["sent"] / elapsed if elapsed else 0.0
    if not queued:
        click.echo(
            f"bulk: nothing to send: all {summary['total']} message(s) are already done "
            f"({summary['skipped']} skipped)"
        )
        return
    over = "Celery workers" if summary.get("celery") else f"{summary['connections']} connection(s)"
    click.echo(
        f"bulk: {summary['sent']} of {queued} messages in {elapsed:.2f}s ({rate:.1f}/s) over {over}"
    )
    click.echo(
        f"  accepted {summary['accepted']}, failed {summary['failed']}, "
        f"unknown {summary['unknown']}, skipped {summary['skipped']} (already done), "
        f"retries {summary['retries']}"
    )
    if summary["report"]:
        click.echo(f"  report: {summary['report']}")
    for failure in summary["failures"][:10]:
        click.echo(
            f"smtpcore: {failure['status']}: {failure['key']}: {failure['message']}", err=True
        )
    if len(summary["failures"]) > 10:
        click.echo(
            f"smtpcore: ... and {len(summary['failures']) - 10} more (see the report)", err=True
        )
    if summary["unknown"]:
        click.echo(
            f"smtpcore: {summary['unknown']} message(s) may or may not have been delivered; "
            "--resume will not resend them (check the server first)",
            err=True,
        )
    if summary["interrupted"]:
        not_sent = queued - summary["sent"]
        resume = f"--resume {summary['report']}" if summary["report"] else "--report and --resume"
        click.echo(
            f"smtpcore: interrupted; {not_sent} message(s) not sent: rerun with {resume} "
            "to send them",
            err=True,
        )
