"""The idempotency store against a real redis-server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from smtpcore.integrations.celery import IdempotencyStore, KeyState

pytestmark = pytest.mark.celery


@pytest.fixture
def store(redis_url: str) -> Iterator[IdempotencyStore]:
    store = IdempotencyStore.from_url(redis_url, ttl=60)
    yield store
    store.close()


def test_claim_settle_and_find(store: IdempotencyStore) -> None:
    assert store.claim(["a", "b", "c"], "one") == [None, None, None]
    settled = store.settle(
        [
            ("a", KeyState.ACCEPTED, {"status": "accepted", "n": 1}),
            ("b", KeyState.TEMPORARY, {"status": "temporary"}),
            ("c", KeyState.UNKNOWN, {"status": "unknown"}),
        ],
        "one",
    )
    assert settled == 3
    found = store.claim(["a", "b", "c", "d"], "two")
    accepted, temporary, unknown, new = found
    assert accepted is not None
    assert (accepted.state, accepted.result, accepted.owner) == (
        KeyState.ACCEPTED,
        {"status": "accepted", "n": 1},
        "one",
    )
    assert temporary is None  # a temporary failure may be sent again
    assert unknown is not None
    assert unknown.state is KeyState.UNKNOWN  # never sent again by itself
    assert new is None


def test_a_refused_message_may_be_sent_again(store: IdempotencyStore) -> None:
    store.claim(["a"], "one")
    store.settle([("a", KeyState.REFUSED, {"status": "refused"})], "one")
    assert store.claim(["a"], "two") == [None]


def test_in_flight_keys_are_not_claimed_again_nor_settled_by_others(
    store: IdempotencyStore,
) -> None:
    store.claim(["a"], "dead worker")
    [found] = store.claim(["a"], "redelivery")
    assert found is not None
    assert (found.state, found.result, found.owner) == (KeyState.IN_FLIGHT, None, "dead worker")
    assert store.settle([("a", KeyState.ACCEPTED, {"x": 1})], "redelivery") == 0
    lookup = store.lookup("a")
    assert lookup is not None
    assert lookup.state is KeyState.IN_FLIGHT
    # Once settled, a late settle from another owner changes nothing.
    assert store.settle([("a", KeyState.ACCEPTED, {"x": 1})], "dead worker") == 1
    assert store.settle([("a", KeyState.UNKNOWN, {"x": 2})], "dead worker") == 0


def test_a_key_repeated_in_one_claim_is_claimed_once(store: IdempotencyStore) -> None:
    first, second = store.claim(["a", "a"], "one")
    assert first is None
    assert second is not None
    assert second.state is KeyState.IN_FLIGHT


def test_concurrent_claims_grant_each_key_once(store: IdempotencyStore) -> None:
    keys = [f"k{n}" for n in range(500)]
    granted: dict[str, list[str]] = {}
    lock = threading.Lock()

    def claim(owner: str) -> None:
        for start in range(0, len(keys), 50):
            chunk = keys[start : start + 50]
            for key, found in zip(chunk, store.claim(chunk, owner), strict=True):
                if found is None:
                    with lock:
                        granted.setdefault(key, []).append(owner)

    threads = [threading.Thread(target=claim, args=(f"owner{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(granted) == sorted(keys)
    assert all(len(owners) == 1 for owners in granted.values())


def test_release_and_expiry(store: IdempotencyStore, redis_url: str) -> None:
    store.claim(["a"], "one")
    store.settle([("a", KeyState.UNKNOWN, {"status": "unknown"})], "one")
    assert store.release("a")
    assert not store.release("a")
    assert store.lookup("a") is None
    assert store.claim(["a"], "two") == [None]
    short = IdempotencyStore.from_url(redis_url, prefix="other:", ttl=1)
    try:
        short.claim(["b"], "one")
        client = short._client
        assert 0 < client.ttl(short.record_key("b")) <= 1
        assert short.record_key("b").startswith("other:")
    finally:
        short.close()


def test_nothing_to_claim_or_settle(store: IdempotencyStore) -> None:
    assert store.claim([], "one") == []
    assert store.settle([], "one") == 0
    with pytest.raises(ValueError, match="final or temporary"):
        store.settle([("a", KeyState.IN_FLIGHT, {})], "one")
    with pytest.raises(ValueError, match="ttl"):
        IdempotencyStore(store._client, ttl=0)
