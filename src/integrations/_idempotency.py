"""Which messages were sent: one record per idempotency key, in Redis.

Theory of operation. Every message of a batch carries a key (its Message-ID
unless the caller gave one). A record moves through these states::

    (none) --claim--> IN_FLIGHT --settle--> ACCEPTED | UNKNOWN
                           ^                    |
                           +------claim---- TEMPORARY | REFUSED

* :meth:`IdempotencyStore.claim` runs before the batch is handed to the
  pool: one Lua script, atomic for the whole batch, moves each key that is
  new, or whose last attempt reached no recipient (refused, or failed
  temporarily: sending it again cannot duplicate it), to IN_FLIGHT, owned
  by this execution of the task, and returns what it found for every other
  key: ACCEPTED (with the stored result), UNKNOWN, or IN_FLIGHT.
* :meth:`IdempotencyStore.settle` runs once the pool has each message's
  outcome: the state and the outcome's JSON, for the keys this execution
  still owns (another owner's record is never overwritten).

A worker killed between the two leaves its keys IN_FLIGHT. The redelivered
task cannot claim them, finds them in flight and reports them as status
unknown: the message may have reached the server, so it is never sent
again automatically. :meth:`IdempotencyStore.release` forgets a key, for an
operator who has checked that the server does not have it.

A record is a Redis hash, ``{prefix}{sha256 of the key}``, with the fields
``state``, ``owner``, ``key``, ``time`` and ``result``; it expires ``ttl``
seconds after its last change. All the keys of a batch are touched by one
script, so on a Redis Cluster give the prefix a hash tag (``{smtpcore}:``).
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, final

import redis

__all__ = ["DEFAULT_PREFIX", "DEFAULT_TTL", "Found", "IdempotencyStore", "KeyState"]

#: Where the records live in Redis.
DEFAULT_PREFIX: Final = "smtpcore:sent:"
#: Seconds a record is kept after its last change: a redelivery or a resent
#: batch within this time is recognised. A week outlives any retry schedule.
DEFAULT_TTL: Final = 7 * 24 * 3600


class KeyState(enum.Enum):
    """Where a message key stands (see the module's docstring)."""

    IN_FLIGHT = "in-flight"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    TEMPORARY = "temporary"
    UNKNOWN = "unknown"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """A key that could not be claimed, and what its record holds.

    Attributes:
        state: the record's state: ACCEPTED, UNKNOWN or IN_FLIGHT (the
            others are claimed).
        result: the JSON of the outcome that settled it; None while in flight.
        owner: the execution that claimed it last.
    """

    state: KeyState
    result: dict[str, Any] | None
    owner: str


# KEYS[i]: the record of the i-th message. ARGV[1]: the owner, ARGV[2]: the
# TTL in seconds, ARGV[3]: the time; ARGV[3 + i]: the i-th message's key.
# Returns three strings per key: "" "" "" when claimed, else the state, the
# result JSON ("" if none) and the owner.
_CLAIM: Final = """
local out = {}
for i, record in ipairs(KEYS) do
  local found = redis.call('HMGET', record, 'state', 'result', 'owner')
  local state = found[1]
  if (not state) or state == 'temporary' or state == 'refused' then
    redis.call('HSET', record, 'state', 'in-flight', 'owner', ARGV[1],
               'key', ARGV[3 + i], 'time', ARGV[3])
    redis.call('HDEL', record, 'result')
    redis.call('EXPIRE', record, ARGV[2])
    out[#out + 1] = ''
    out[#out + 1] = ''
    out[#out + 1] = ''
  else
    out[#out + 1] = state
    out[#out + 1] = found[2] or ''
    out[#out + 1] = found[3] or ''
  end
end
return out
"""

# KEYS[i]: the record of the i-th message. ARGV[1]: the owner, ARGV[2]: the
# TTL, ARGV[3]: the time; ARGV[2 + 2i] and ARGV[3 + 2i]: the i-th message's
# new state and result JSON. Returns how many records were settled.
_SETTLE: Final = """
local settled = 0
for i, record in ipairs(KEYS) do
  local found = redis.call('HMGET', record, 'state', 'owner')
  if found[1] == 'in-flight' and found[2] == ARGV[1] then
    redis.call('HSET', record, 'state', ARGV[2 + 2 * i], 'result', ARGV[3 + 2 * i],
               'time', ARGV[3])
    redis.call('EXPIRE', record, ARGV[2])
    settled = settled + 1
  end
end
return settled
"""


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@final
class IdempotencyStore:
    """The records of message keys in one Redis database."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, ttl: int = DEFAULT_TTL
    ) -> None:
        if ttl < 1:
            raise ValueError("ttl must be at least one second")
        self._client = client
        self.prefix = prefix
        self.ttl = ttl
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, ttl: int = DEFAULT_TTL
    ) -> IdempotencyStore:
        """A store in the Redis database at ``url`` (``redis://host:port/db``)."""
        return cls(redis.Redis.from_url(url), prefix=prefix, ttl=ttl)

    def record_key(self, key: str) -> str:
        """The Redis key of the record of message key ``key``."""
        return self.prefix + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def claim(self, keys: Sequence[str], owner: str) -> list[Found | None]:
        """Claim each key for ``owner``, atomically for all of them.

        Returns, in order, None for each key claimed (the caller may send its
        message) or what the store holds for it. A key given twice is claimed
        once: the second finds it in flight.
        """
        if not keys:
            return []
        records = [self.record_key(k) for k in keys]
        raw = self._claim(keys=records, args=[owner, self.ttl, _now(), *keys])
        out: list[Found | None] = []
        for i in range(len(keys)):
            state, result, holder = (_text(v) for v in raw[3 * i : 3 * i + 3])
            if not state:
                out.append(None)
            else:
                out.append(
                    Found(
                        state=KeyState(state),
                        result=json.loads(result) if result else None,
                        owner=holder,
                    )
                )
        return out

    def settle(
        self, settlements: Sequence[tuple[str, KeyState, dict[str, Any]]], owner: str
    ) -> int:
        """Record each ``(key, state, outcome JSON)`` claimed by ``owner``.

        Returns how many were recorded (a key ``owner`` no longer holds is
        left alone).
        """
        if not settlements:
            return 0
        for _, state, _ in settlements:
            if state is KeyState.IN_FLIGHT:
                raise ValueError("a key is settled to a final or temporary state")
        args: list[str | int] = [owner, self.ttl, _now()]
        for _, state, outcome in settlements:
            args += [state.value, json.dumps(outcome)]
        records = [self.record_key(key) for key, _, _ in settlements]
        return int(self._settle(keys=records, args=args))

    def lookup(self, key: str) -> Found | None:
        """What the store holds for ``key`` (None: nothing)."""
        found = self._client.hmget(self.record_key(key), ["state", "result", "owner"])
        state, result, owner = (None if v is None else _text(v) for v in found)
        if state is None:
            return None
        return Found(
            state=KeyState(state),
            result=json.loads(result) if result else None,
            owner=owner or "",
        )

    def release(self, key: str) -> bool:
        """Forget ``key``, so that the next batch holding it sends it.

        For an operator who has checked that a message reported unknown
        never reached the server. Returns whether there was a record.
        """
        return bool(self._client.delete(self.record_key(key)))

    def close(self) -> None:
        """Close the connections to Redis."""
        self._client.close()


def _now() -> str:
    return f"{time.time():.3f}"
