"""The ``smtpcore.send_batch`` task, run eagerly in this process (retries
too, through Celery's own ``retry``), against the counting sink and a real
redis-server for the idempotency keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery_support import CountingSink, Decision
from smtpcore.integrations import celery as sc

pytestmark = pytest.mark.celery

Run = Callable[..., list[dict[str, Any]]]


def _message(n: int) -> bytes:
    return (
        f"From: ann@example.org\r\nTo: bob@example.org\r\nSubject: {n}\r\n"
        f"Message-ID: <{n}@task.test>\r\n\r\nmessage {n}\r\n"
    ).encode()


def _items(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [sc.message_item(_message(n)) for n in range(start, start + count)]


@pytest.fixture
def app(redis_url: str, sink: CountingSink) -> Iterator[Any]:
    app = sc.make_app(
        redis_url,
        smtpcore_server=f"127.0.0.1:{sink.port}",
        smtpcore_tls="none",
        smtpcore_pool_size=2,
        smtpcore_timeout=10,
        smtpcore_retry_backoff=0,
        task_always_eager=True,
    )
    yield app
    sc.close_worker_pools()


@pytest.fixture
def run(app: Any) -> Run:
    def run(messages: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        value = app.tasks[sc.TASK_NAME].apply(kwargs={"messages": messages, **kwargs}).get()
        results: list[dict[str, Any]] = value["results"]
        assert len(results) == len(messages)
        return results

    return run


def _statuses(results: list[dict[str, Any]]) -> list[str]:
    return [r["status"] for r in results]


def test_a_batch_goes_over_the_pool_and_each_message_is_reported(
    run: Run, sink: CountingSink, redis_url: str
) -> None:
    results = run(_items(20))
    assert _statuses(results) == ["accepted"] * 20
    assert [r["key"] for r in results] == [f"<{n}@task.test>" for n in range(20)]
    assert results[0]["accepted"] == ["bob@example.org"]
    assert results[0]["reply"] == {"code": 250, "enhanced": "2.0.0", "text": "queued"}
    assert sink.delivered == {f"<{n}@task.test>": 1 for n in range(20)}
    found = sc.IdempotencyStore.from_url(redis_url).lookup("<3@task.test>")
    assert found is not None
    assert found.state is sc.KeyState.ACCEPTED


def test_the_same_batch_again_is_replayed_not_resent(run: Run, sink: CountingSink) -> None:
    first = run(_items(10))
    again = run(_items(10))
    assert sink.total == 10
    assert [r["replayed"] for r in again] == [True] * 10
    assert [{**r, "replayed": False} for r in again] == first


def test_temporary_failures_are_retried_through_celery(run: Run, sink: CountingSink) -> None:
    refused_once: set[str] = set()

    def decide(message_id: str) -> Decision:
        if message_id in ("<2@task.test>", "<5@task.test>") and message_id not in refused_once:
            refused_once.add(message_id)
            return "tempfail"
        return "accept"

    sink.decide = decide
    results = run(_items(8))
    assert _statuses(results) == ["accepted"] * 8
    assert [r["attempts"] for r in results] == [1, 1, 2, 1, 1, 2, 1, 1]
    assert sink.delivered == {f"<{n}@task.test>": 1 for n in range(8)}


def test_retries_run_out_then_the_message_is_reported_temporary(
    run: Run, sink: CountingSink
) -> None:
    sink.decide = lambda mid: "tempfail" if mid == "<1@task.test>" else "accept"
    results = run(_items(3), retries=2)
    assert _statuses(results) == ["accepted", "temporary", "accepted"]
    assert results[1]["attempts"] == 3
    assert results[1]["reply"]["code"] == 451
    # A temporary failure may be sent again by a later batch.
    sink.decide = None
    assert _statuses(run(_items(3))) == ["accepted"] * 3
    assert sink.delivered["<1@task.test>"] == 1
    assert sink.delivered["<0@task.test>"] == 1


def test_a_message_whose_status_is_unknown_is_never_resent(run: Run, sink: CountingSink) -> None:
    # The sink takes message 3, then drops the connection without a reply.
    sink.decide = lambda mid: "drop" if mid == "<3@task.test>" else "accept"
    results = run(_items(6))
    statuses = _statuses(results)
    assert statuses[3] == "unknown"
    assert statuses.count("accepted") == 5  # those behind it on the dropped connection retried
    again = run(_items(6))
    assert again[3]["status"] == "unknown"
    assert again[3]["replayed"]
    assert sink.delivered["<3@task.test>"] == 1
    assert max(sink.delivered.values()) == 1


def test_a_message_left_in_flight_by_a_dead_attempt_is_reported_unknown(
    run: Run, sink: CountingSink, redis_url: str
) -> None:
    store = sc.IdempotencyStore.from_url(redis_url)
    store.claim(["<1@task.test>"], "a worker that was killed")
    results = run(_items(3))
    assert _statuses(results) == ["accepted", "unknown", "accepted"]
    assert results[1]["error"]["type"] == "InFlightElsewhere"
    assert "<1@task.test>" not in sink.delivered
    store.close()


def test_malformed_items_and_repeated_keys(run: Run, sink: CountingSink) -> None:
    items = _items(2)
    items.append({**items[0]})  # the same key again
    items.append({"key": "broken", "sender": "ann@example.org", "recipients": ["bob@example.org"]})
    results = run(items)
    assert _statuses(results) == ["accepted", "accepted", "accepted", "refused"]
    assert results[2]["replayed"]
    assert results[3]["key"] == "broken"
    assert results[3]["error"]["type"] == "InvalidInputError"
    assert sink.delivered["<0@task.test>"] == 1


def test_a_refused_message_is_reported_with_the_reply(run: Run, sink: CountingSink) -> None:
    items = _items(2)
    items[1]["recipients"] = ["bob@example.org", "nobody@example.org"]
    items[0]["sender"] = "not an address"
    results = run(items)
    assert _statuses(results) == ["refused", "accepted"]
    assert results[0]["error"]["type"] == "InvalidInputError"
    assert results[1]["accepted"] == ["bob@example.org", "nobody@example.org"]


def test_misconfigured_workers_send_nothing(sink: CountingSink) -> None:
    app = sc.make_app("memory://", backend_url="cache+memory://", task_always_eager=True)
    try:
        value = app.tasks[sc.TASK_NAME].apply(kwargs={"messages": _items(2)}).get()
    finally:
        sc.close_worker_pools()
    assert _statuses(value["results"]) == ["refused", "refused"]
    assert value["results"][0]["error"]["type"] == "ConfigurationError"
    assert value["results"][0]["key"] == "<0@task.test>"
    assert sink.total == 0


def test_an_unreachable_key_store_sends_nothing(redis_url: str, sink: CountingSink) -> None:
    app = sc.make_app(
        redis_url,
        smtpcore_server=f"127.0.0.1:{sink.port}",
        smtpcore_tls="none",
        smtpcore_idempotency_url="redis://127.0.0.1:1/0",
        task_always_eager=True,
    )
    try:
        items = _items(2)
        value = app.tasks[sc.TASK_NAME].apply(kwargs={"messages": [*items, items[0]]}).get()
    finally:
        sc.close_worker_pools()
    assert _statuses(value["results"]) == ["temporary"] * 3
    assert value["results"][0]["error"]["type"] == "ConnectionError"
    assert sink.total == 0


def test_a_bad_client_option_is_a_configuration_error(redis_url: str, sink: CountingSink) -> None:
    app = sc.make_app(
        redis_url,
        smtpcore_server=f"127.0.0.1:{sink.port}",
        smtpcore_client_options={"no_such_option": 1},
        task_always_eager=True,
    )
    try:
        value = app.tasks[sc.TASK_NAME].apply(kwargs={"messages": _items(1)}).get()
    finally:
        sc.close_worker_pools()
    assert value["results"][0]["status"] == "refused"
    assert value["results"][0]["error"]["type"] == "ConfigurationError"
    assert sink.total == 0
