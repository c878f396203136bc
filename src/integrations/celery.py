"""Bulk sending on Celery workers, each message sent at most once.

``pip install 'smtpcore[celery]'``. The pieces:

* :func:`register` adds the task ``smtpcore.send_batch`` to a Celery app
  (:func:`make_app` builds an app with the settings it needs and registers
  it). The task sends a batch of messages through a blocking
  :class:`~smtpcore.adapters.blocking.Pool` that each worker process keeps
  across tasks, configured once from the app's ``smtpcore_*`` settings
  (:class:`Settings`); each connection pipelines its share of the batch with
  ``send_many``.
* :func:`message_item` turns a message into a batch item, plain JSON:
  ``{"key", "sender", "recipients", "message" | "message_b64", "options"}``.
  The key is the message's idempotency key: its Message-ID unless given
  (a hash of the envelope and content when it has none).
* :class:`Dispatcher` is the producer's side: it hands batches to the
  workers, a bounded number at a time, and gives back each batch's results.

What the task returns (stored by the result backend as JSON) is
``{"results": [...]}``, one object per message in the batch's order, as
:func:`outcome_json` writes them: ``status``
``accepted`` (with the accepted and refused recipients), ``refused`` (with
the reply), ``temporary`` (still failing after the last retry) or
``unknown``.

Each message is sent at most once, and exactly once unless its status is
unknown (which SMTP itself cannot always avoid). Before the batch goes to
the pool, every key is claimed IN_FLIGHT in Redis (the broker's, or the one
named by ``smtpcore_idempotency_url``); once the pool has the outcomes, each
key is settled as accepted, refused, temporary or unknown. The task is
acknowledged late (``acks_late``) and requeued if its worker dies
(``reject_on_worker_lost``): a redelivered task skips what was accepted
(reporting the stored result) and reports what was in flight as status
unknown, without sending it again. Temporary failures are retried with
Celery's own ``retry``, with exponential backoff, for those messages only;
a message whose status is unknown is never resent automatically.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.parser
import email.policy
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, final

import redis
from celery.app.base import Celery
from celery.backends.base import BaseKeyValueStoreBackend
from celery.signals import worker_process_shutdown, worker_shutdown
from smtpcore.adapters.blocking import Client, Pool

from smtpcore import (
    ConfigurationError,
    InvalidInputError,
    MessageResult,
    OutgoingMessage,
    SMTPError,
)

from ._idempotency import DEFAULT_PREFIX, DEFAULT_TTL, Found, IdempotencyStore, KeyState
from ._results import Status, error_json, outcome_json, status_of

__all__ = [
    "DEFAULT_BATCH",
    "TASK_NAME",
    "Dispatcher",
    "IdempotencyStore",
    "KeyState",
    "Settings",
    "Status",
    "make_app",
    "message_bytes",
    "message_item",
    "message_key",
    "outcome_json",
    "register",
    "send_batch",
    "status_of",
]

#: The name the task is registered under (producers call it by name).
TASK_NAME: Final = "smtpcore.send_batch"
#: Messages per task that keep a pool's connections busy without making a
#: redelivery (which reports the whole in-flight batch unknown) costly.
DEFAULT_BATCH: Final = 100
#: Batches a :class:`Dispatcher` keeps queued or running at once.
DEFAULT_WINDOW: Final = 64

log = logging.getLogger("smtpcore.integrations.celery")

#: The per-message ESMTP options a batch item may carry (JSON values).
_OPTIONS: Final = frozenset(
    {"smtputf8", "dsn_ret", "dsn_envid", "dsn_notify", "dsn_orcpt", "requiretls"}
)
_ITEM_FIELDS: Final = frozenset(
    {"key", "sender", "recipients", "message", "message_b64", "options"}
)
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")


# -- batch items ---------------------------------------------------------------


def _message_id(data: bytes) -> str | None:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data if end < 0 else data[: end + 2]
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    value = parser.parsebytes(head, headersonly=True).get("Message-ID")
    if value is None:
        return None
    text = " ".join(str(value).split())
    # A key goes into JSON, logs and reports: only a plain one is used as is.
    return text if text and text.isascii() and text.isprintable() else None


def message_key(data: bytes, sender: str, recipients: Sequence[str]) -> str:
    """A message's default idempotency key: its Message-ID, or, without one,
    ``sha256:`` and a hash of the envelope and the content."""
    found = _message_id(data)
    if found is not None:
        return found
    digest = hashlib.sha256()
    for part in (sender, *recipients):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(data)
    return "sha256:" + digest.hexdigest()


def _headers_only(message: email.message.Message) -> email.message.Message:
    """The headers of ``message`` with an empty body (cheap to serialise)."""
    head = email.message.EmailMessage(policy=email.policy.default)
    for name, value in message.items():
        head[name] = value
    return head


def message_item(
    message: bytes | str | email.message.Message,
    *,
    sender: str | None = None,
    recipients: str | Iterable[str] | None = None,
    key: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One message as a batch item (plain JSON) for :data:`TASK_NAME`.

    The envelope is derived from an ``EmailMessage``'s headers when not
    given, and the message serialised (Bcc removed) here, so the worker
    sends exactly these octets. ``options`` are per-message ESMTP options
    (``smtputf8``, ``dsn_ret``, ``dsn_envid``, ``dsn_notify``, ``dsn_orcpt``,
    ``requiretls``).

    Raises:
        InvalidInputError: an address, option or message that cannot be sent.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InvalidInputError("options", "unknown message option", ", ".join(unknown))
    if isinstance(message, (bytes, str)) and (sender is None or recipients is None):
        # The envelope comes from the headers, as for an EmailMessage. The
        # octets are sent as they are (signatures stay valid), unless there
        # is a Bcc header: the core then re-serialises without it.
        raw = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else message
        parser = email.parser.BytesParser(policy=email.policy.default)
        parsed = parser.parsebytes(raw, headersonly=True)
        if parsed.get("Bcc") is not None:
            message = parser.parsebytes(raw)
        else:
            derived = OutgoingMessage.build(
                sender=sender, recipients=recipients, message=_headers_only(parsed)
            )
            sender, recipients = derived.sender, derived.recipients
    outgoing = OutgoingMessage.build(
        sender=sender,
        recipients=recipients,
        message=message,
        smtputf8=bool(options.get("smtputf8", False)),
    )
    data = outgoing.data
    assert data is not None
    item: dict[str, Any] = {
        "key": key or message_key(data, outgoing.sender, outgoing.recipients),
        "sender": outgoing.sender,
        "recipients": list(outgoing.recipients),
    }
    if data.isascii():
        item["message"] = data.decode("ascii")
    else:
        item["message_b64"] = base64.b64encode(data).decode("ascii")
    if options:
        item["options"] = dict(options)
    return item


def message_bytes(item: Mapping[str, Any]) -> bytes:
    """The octets a batch item sends (its ``message`` or ``message_b64``).

    Raises:
        InvalidInputError: the item has neither, both, or a malformed one.
    """
    text, encoded = item.get("message"), item.get("message_b64")
    if (text is None) == (encoded is None):
        raise InvalidInputError("batch item", "give exactly one of message or message_b64")
    if text is not None:
        if not isinstance(text, str):
            raise InvalidInputError("message", "must be a string")
        return text.encode("utf-8", "surrogateescape")
    try:
        return base64.b64decode(str(encoded), validate=True)
    except ValueError:
        raise InvalidInputError("message_b64", "is not base64") from None


def _parse_item(raw: object) -> tuple[str, dict[str, Any]]:
    """A batch item's key and the keyword arguments of ``send_message``."""
    if not isinstance(raw, Mapping):
        raise InvalidInputError("batch item", "must be a JSON object")
    extra = sorted(set(raw) - _ITEM_FIELDS)
    if extra:
        raise InvalidInputError("batch item", "unknown field", ", ".join(extra))
    data = message_bytes(raw)
    sender, recipients = raw.get("sender"), raw.get("recipients")
    if not isinstance(sender, str):
        raise InvalidInputError("sender", "must be a string")
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise InvalidInputError("recipients", "must be a list of strings")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping) or not set(options) <= _OPTIONS:
        raise InvalidInputError("options", "unknown message option", options)
    key = raw.get("key") or message_key(data, sender, recipients)
    if not isinstance(key, str):
        raise InvalidInputError("key", "must be a string")
    return key, {"sender": sender, "recipients": recipients, "message": data, **options}


# -- configuration -------------------------------------------------------------


def _host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, None


def _get(conf: Mapping[str, Any], name: str, default: Any) -> Any:
    value = conf.get(name)
    return default if value is None else value


def _redis_url(conf: Mapping[str, Any]) -> str | None:
    for name in ("broker_url", "result_backend"):
        value = conf.get(name)
        if isinstance(value, str) and value.startswith(_REDIS_SCHEMES):
            return value
    return None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How a worker sends: read once from the Celery app's configuration.

    ========================== =================================================
    setting                    meaning (default)
    ========================== =================================================
    smtpcore_server            ``host`` or ``host:port`` (``localhost``)
    smtpcore_port              the port, if not in the server (25; 465 implicit)
    smtpcore_tls               ``none``, ``opportunistic``, ``starttls``,
                               ``implicit`` (``opportunistic``)
    smtpcore_auth              ``(user, password)`` (none)
    smtpcore_timeout           seconds for each step (30)
    smtpcore_client_options    any other ``Client`` keyword (``ssl_context``,
                               ``local_hostname``, ``auth_mechanisms``...)
    smtpcore_pool_size         connections per worker process (4)
    smtpcore_idempotency_url   Redis for the message keys (the broker's, else
                               the result backend's, when Redis)
    smtpcore_idempotency_ttl   seconds a key is remembered (a week)
    smtpcore_max_retries       retries of a temporary failure (5)
    smtpcore_retry_backoff     first retry delay in seconds, doubled for each
                               further retry (30)
    smtpcore_retry_backoff_max the longest retry delay (600); keep it under the
                               broker's visibility timeout
    ========================== =================================================
    """

    server: str = "localhost"
    port: int | None = None
    client_options: Mapping[str, Any] = field(default_factory=dict)
    pool_size: int = 4
    idempotency_url: str
    idempotency_prefix: str = DEFAULT_PREFIX
    idempotency_ttl: int = DEFAULT_TTL
    max_retries: int = 5
    retry_backoff: float = 30.0
    retry_backoff_max: float = 600.0

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> Settings:
        """Read the ``smtpcore_*`` settings (see the table above).

        Raises:
            ConfigurationError: a setting is missing or malformed.
        """
        try:
            server, port = _host_port(str(conf.get("smtpcore_server") or "localhost"))
            if conf.get("smtpcore_port") is not None:
                port = int(conf["smtpcore_port"])
            options: dict[str, Any] = dict(conf.get("smtpcore_client_options") or {})
            options.setdefault("tls", conf.get("smtpcore_tls") or "opportunistic")
            options.setdefault("timeout", float(_get(conf, "smtpcore_timeout", 30.0)))
            auth = conf.get("smtpcore_auth")
            if auth is not None:
                options.setdefault("auth", tuple(auth) if isinstance(auth, list) else auth)
            url = conf.get("smtpcore_idempotency_url") or _redis_url(conf)
            if not url:
                raise ConfigurationError(
                    "smtpcore_idempotency_url is needed: the broker and the result backend "
                    "are not Redis, and the message keys are kept in Redis"
                )
            settings = cls(
                server=server,
                port=port,
                client_options=options,
                pool_size=int(_get(conf, "smtpcore_pool_size", 4)),
                idempotency_url=str(url),
                idempotency_prefix=str(conf.get("smtpcore_idempotency_prefix") or DEFAULT_PREFIX),
                idempotency_ttl=int(_get(conf, "smtpcore_idempotency_ttl", DEFAULT_TTL)),
                max_retries=int(_get(conf, "smtpcore_max_retries", 5)),
                retry_backoff=float(_get(conf, "smtpcore_retry_backoff", 30.0)),
                retry_backoff_max=float(_get(conf, "smtpcore_retry_backoff_max", 600.0)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad smtpcore_* Celery setting: {exc}") from exc
        if (
            settings.pool_size < 1
            or settings.max_retries < 0
            or settings.retry_backoff < 0
            or settings.idempotency_ttl < 1
        ):
            raise ConfigurationError(
                "smtpcore_pool_size and smtpcore_idempotency_ttl must be at least 1, and "
                "smtpcore_max_retries and smtpcore_retry_backoff not negative"
            )
        return settings

    def backoff(self, retries_done: int, first: float | None = None) -> float:
        """Seconds before retry number ``retries_done + 1``."""
        base = self.retry_backoff if first is None else first
        return float(min(base * 2**retries_done, self.retry_backoff_max))


# -- the worker process's pool ---------------------------------------------------


@final
class _WorkerState:
    """One worker process's pool and idempotency store, made on first use
    (in the process that uses them: a prefork child makes its own)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._pool: Pool | None = None
        self._store: IdempotencyStore | None = None

    def pool(self) -> Pool:
        with self._lock:
            if self._pool is None:
                s = self.settings
                self._pool = Pool(
                    s.server,
                    s.port,
                    size=s.pool_size,
                    name=f"celery-{self.pid}",
                    **s.client_options,
                )
            return self._pool

    def store(self) -> IdempotencyStore:
        with self._lock:
            if self._store is None:
                s = self.settings
                self._store = IdempotencyStore.from_url(
                    s.idempotency_url, prefix=s.idempotency_prefix, ttl=s.idempotency_ttl
                )
            return self._store

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            store, self._store = self._store, None
        if pool is not None:
            with contextlib.suppress(SMTPError, OSError):
                pool.close()
        if store is not None:
            store.close()


_states: dict[int, _WorkerState] = {}
_states_lock = threading.Lock()


def _worker_state(app: Any) -> _WorkerState:
    """The calling process's state for ``app`` (made on first use)."""
    with _states_lock:
        state = _states.get(id(app))
        if state is None or state.pid != os.getpid():
            # A state inherited through fork belongs to the parent: its
            # sockets are shared with it, so they are dropped, not closed.
            settings = Settings.from_conf(app.conf)
            try:
                # Check the connection settings now (this connects nowhere):
                # a mistake there must fail the batch before anything is sent.
                Client(settings.server, settings.port, **settings.client_options)
            except (TypeError, ValueError, SMTPError) as exc:
                raise ConfigurationError(f"bad smtpcore_* Celery setting: {exc}") from exc
            state = _states[id(app)] = _WorkerState(settings)
        return state


def close_worker_pools(**_: Any) -> None:
    """QUIT the connections of this process's pools (on worker shutdown)."""
    with _states_lock:
        mine = [s for s in _states.values() if s.pid == os.getpid()]
        _states.clear()
    for state in mine:
        state.close()


# -- the task ------------------------------------------------------------------


def _plain_json(
    key: str, status: Status, error: dict[str, Any], attempts: int | None, *, replayed: bool
) -> dict[str, Any]:
    """The outcome of a message that has no SMTP result to tell."""
    return {
        "key": key,
        "status": status.value,
        "accepted": [],
        "refused": [],
        "unknown": [],
        "not_sent": [],
        "reply": None,
        "error": error,
        "attempts": attempts,
        "replayed": replayed,
    }


def _replay_json(key: str, found: Found) -> dict[str, Any]:
    """The outcome of a message whose key an earlier attempt holds."""
    if found.state is KeyState.IN_FLIGHT or found.result is None:
        # Claimed by an attempt that never settled it: its worker died while
        # sending (or is still sending, if the task was handed out twice).
        error = {
            "type": "InFlightElsewhere",
            "message": "an earlier attempt was sending this message and did not finish: "
            "it may have been delivered, so it is not sent again",
        }
        return _plain_json(key, Status.UNKNOWN, error, None, replayed=True)
    return {**found.result, "key": key, "status": found.state.value, "replayed": True}


def _raw_key(raw: object) -> str:
    key = raw.get("key") if isinstance(raw, Mapping) else None
    return key if isinstance(key, str) else ""


@final
class _Execution:
    """One run of the task on one batch (a retry or a redelivery is another).

    Each message's outcome goes into ``results`` under its position in the
    batch as first sent; a retry carries the settled ones along in its
    arguments, so that the last run returns them all.
    """

    def __init__(self, task: Any, kwargs: Mapping[str, Any]) -> None:
        self.task = task
        self.messages: list[Any] = list(kwargs.get("messages") or [])
        positions = kwargs.get("positions")
        self.positions: list[int] = (
            list(range(len(self.messages))) if positions is None else list(positions)
        )
        self.results: dict[int, dict[str, Any]] = {
            int(pos): result for pos, result in kwargs.get("settled") or []
        }
        self.retries: int | None = kwargs.get("retries")
        self.backoff: float | None = kwargs.get("backoff")
        self.attempt = int(task.request.retries or 0) + 1
        # Unique to this execution: a redelivery of the same attempt is
        # another owner, and cannot settle what this one claimed.
        self.owner = f"{task.request.id}/{self.attempt}/{uuid.uuid4().hex}"

    def run(self) -> dict[str, Any]:
        try:
            state = _worker_state(self.task.app)
        except ConfigurationError as exc:
            # Nothing is claimed or sent: every message fails with the reason,
            # and can be sent again once the workers are configured.
            for pos, raw in zip(self.positions, self.messages, strict=True):
                self.results[pos] = _plain_json(
                    _raw_key(raw), Status.REFUSED, error_json(exc), self.attempt, replayed=False
                )
            return self._done()
        # A key repeated in the batch is claimed and sent once; the other
        # messages with that key get the outcome of the first.
        first: dict[str, int] = {}
        repeats: list[tuple[int, str]] = []
        todo: list[tuple[int, str, dict[str, Any]]] = []
        for pos, raw in zip(self.positions, self.messages, strict=True):
            try:
                key, kwargs = _parse_item(raw)
            except (InvalidInputError, ValueError, TypeError) as exc:
                self.results[pos] = _plain_json(
                    _raw_key(raw), Status.REFUSED, error_json(exc), self.attempt, replayed=False
                )
                continue
            if key in first:
                repeats.append((pos, key))
            else:
                first[key] = pos
                todo.append((pos, key, kwargs))
        store = state.store()
        try:
            claims = store.claim([key for _, key, _ in todo], self.owner)
        except redis.RedisError as exc:
            # Nothing claimed, nothing sent: each message may be sent again
            # later. No retry either: the broker is likely that Redis too.
            log.warning("cannot claim the batch's keys, nothing sent: %s", exc)
            for pos, key in [(pos, key) for pos, key, _ in todo] + repeats:
                self.results[pos] = _plain_json(
                    key, Status.TEMPORARY, error_json(exc), self.attempt, replayed=False
                )
            return self._done()
        claimed = []
        for (pos, key, kwargs), found in zip(todo, claims, strict=True):
            if found is None:
                claimed.append((pos, key, kwargs))
            else:
                self.results[pos] = _replay_json(key, found)
        if claimed:
            self._send(state, store, claimed)
        for pos, key in repeats:
            self.results[pos] = {**self.results[first[key]], "replayed": True}
        return self._retry_or_return(state.settings)

    def _send(
        self,
        state: _WorkerState,
        store: IdempotencyStore,
        claimed: list[tuple[int, str, dict[str, Any]]],
    ) -> None:
        """Send the claimed messages over the pool, then settle their keys."""
        outcomes: list[MessageResult | SMTPError] | None = None
        failure: dict[str, Any] | None = None
        try:
            outcomes = state.pool().send_many([kwargs for _, _, kwargs in claimed])
        except Exception as exc:  # a bug, or something the pool did not expect
            failure = error_json(exc)
        settlements = []
        for i, (pos, key, _) in enumerate(claimed):
            if outcomes is not None:
                result = outcome_json(outcomes[i], key=key, attempts=self.attempt)
            else:
                # Which messages went out before the failure is not known.
                assert failure is not None
                result = _plain_json(key, Status.UNKNOWN, failure, self.attempt, replayed=False)
            self.results[pos] = result
            settlements.append((key, KeyState(result["status"]), result))
        try:
            store.settle(settlements, self.owner)
        except redis.RedisError as exc:
            # The outcomes are known and returned; the keys stay in flight, so
            # a later batch holding these messages reports them unknown.
            log.warning("cannot record the batch's outcomes: %s", exc)

    def _retry_or_return(self, settings: Settings) -> dict[str, Any]:
        """Retry the batch's temporary failures (Celery's ``retry``, with
        backoff) while retries are left; else return every result."""
        limit = settings.max_retries if self.retries is None else self.retries
        again = {
            pos: raw
            for pos, raw in zip(self.positions, self.messages, strict=True)
            if self.results[pos]["status"] == Status.TEMPORARY.value
        }
        if again and self.attempt <= limit:
            raise self.task.retry(
                args=(),
                kwargs={
                    "messages": list(again.values()),
                    "positions": list(again),
                    "settled": [[p, r] for p, r in self.results.items() if p not in again],
                    "retries": self.retries,
                    "backoff": self.backoff,
                },
                countdown=settings.backoff(self.attempt - 1, self.backoff),
                max_retries=limit,
            )
        return self._done()

    def _done(self) -> dict[str, Any]:
        return {"results": [self.results[pos] for pos in sorted(self.results)]}


def send_batch(task: Any, **kwargs: Any) -> dict[str, Any]:
    """The body of the ``smtpcore.send_batch`` task (``bind=True``).

    Keyword arguments: ``messages`` (batch items, see :func:`message_item`),
    and optionally ``retries`` and ``backoff`` to override the worker's
    ``smtpcore_max_retries`` and ``smtpcore_retry_backoff`` for this batch.
    ``positions`` and ``settled`` are the task's own, for its retries.
    """
    return _Execution(task, kwargs).run()


def register(app: Any, *, name: str = TASK_NAME) -> Any:
    """Register the batch-sending task on ``app``; returns the task.

    The task is acknowledged late and requeued when its worker is lost, so a
    crash never loses a batch; the idempotency keys make the redelivery
    harmless. Run the workers with ``worker_prefetch_multiplier = 1`` (as
    :func:`make_app` does) so that no batch waits, unacknowledged, behind
    another.
    """
    worker_process_shutdown.connect(
        close_worker_pools, weak=False, dispatch_uid="smtpcore-close-pools"
    )
    worker_shutdown.connect(
        close_worker_pools, weak=False, dispatch_uid="smtpcore-close-pools-main"
    )
    return app.task(
        name=name,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        serializer="json",
        max_retries=None,  # the execution decides, from the settings
    )(send_batch)


def make_app(
    broker_url: str,
    *,
    backend_url: str | None = None,
    visibility_timeout: float = 3600.0,
    main: str = "smtpcore",
    **conf: Any,
) -> Any:
    """A Celery app set up for :data:`TASK_NAME`, with the task registered.

    JSON only; tasks acknowledged late and one prefetched per worker
    process; the result backend is the broker unless given. With a Redis
    broker, a task whose worker died is delivered again once
    ``visibility_timeout`` seconds have passed since it was handed out: keep
    it above the longest batch and the longest retry delay. ``conf`` adds
    Celery or ``smtpcore_*`` settings.
    """
    app = Celery(main, broker=broker_url, backend=backend_url or broker_url)
    transport: dict[str, Any] = {"visibility_timeout": visibility_timeout}
    if visibility_timeout < 600:
        # Kombu looks for lost tasks every 10 s x 10 by default; look as
        # often as the short timeout needs.
        transport["unacked_restore_interval"] = max(1, int(visibility_timeout // 5))
        transport["unacked_restore_throttle"] = 1
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport,
        **conf,
    )
    register(app)
    return app


# -- the producer's side -------------------------------------------------------


@final
class Dispatcher:
    """Hands batches to the workers and collects their results.

    At most ``window`` batches are queued or running at once, so the broker
    holds a bounded number of messages however large the run. Results are
    read from the result backend and then forgotten there.
    """

    def __init__(
        self,
        app: Any,
        *,
        task_name: str = TASK_NAME,
        window: int = DEFAULT_WINDOW,
        poll_interval: float = 0.2,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.app = app
        self.task_name = task_name
        self.window = window
        self.poll_interval = poll_interval

    def run(
        self,
        batches: Iterable[Sequence[Mapping[str, Any]]],
        on_done: Callable[[int, list[dict[str, Any]]], object],
        *,
        stop: threading.Event | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> int:
        """Send each batch as a task; call ``on_done(batch number, results)``
        as each finishes (results in the batch's order). When ``stop`` is
        set, no further batch is sent and those sent are waited for.
        Returns the number of batches sent.
        """
        pending: dict[str, tuple[int, list[str]]] = {}
        source = iter(batches)
        sent = 0
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.window:
                if stop is not None and stop.is_set():
                    exhausted = True
                    break
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                    break
                items = [dict(item) for item in batch]
                kwargs: dict[str, Any] = {"messages": items}
                if retries is not None:
                    kwargs["retries"] = retries
                if backoff is not None:
                    kwargs["backoff"] = backoff
                result = self.app.send_task(self.task_name, kwargs=kwargs)
                pending[result.id] = (sent, [str(item.get("key") or "") for item in items])
                sent += 1
            if not pending:
                return sent
            for task_id, meta in self._ready(list(pending)):
                number, keys = pending.pop(task_id)
                on_done(number, self._results(meta, keys))
                self.app.AsyncResult(task_id).forget()

    def _ready(self, task_ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """The finished tasks among ``task_ids`` (waiting a little if none)."""
        backend = self.app.backend
        if isinstance(backend, BaseKeyValueStoreBackend):
            # One MGET for all of them, then one nap if some are not done.
            return list(backend.get_many(task_ids, interval=self.poll_interval, max_iterations=1))
        ready = []
        for task_id in task_ids:
            result = self.app.AsyncResult(task_id)
            if result.ready():
                ready.append((task_id, {"status": result.state, "result": result.result}))
        if not ready:
            time.sleep(self.poll_interval)
        return ready

    @staticmethod
    def _results(meta: Mapping[str, Any], keys: list[str]) -> list[dict[str, Any]]:
        """The task's per-message results; for a task that failed (a bug, or
        it was revoked), each message reported status unknown: it may have
        been sent before the failure."""
        value = meta.get("result")
        if meta.get("status") == "SUCCESS" and isinstance(value, Mapping):
            results = value.get("results")
            if isinstance(results, list) and len(results) == len(keys):
                return [dict(r) for r in results]
            why = "the task returned a malformed result"
        else:
            why = f"the task ended {meta.get('status')}: {value!r}"
        error = {"type": "TaskFailed", "message": why}
        return [_plain_json(key, Status.UNKNOWN, error, None, replayed=False) for key in keys]
