"""Bulk sending in the library: which failures to try again, when, and progress.

:class:`RetryPolicy` is the caller's opt-in for ``send_many``: a message
that failed temporarily (a 4xx, a timeout or a lost connection before its
data ended) goes again after a backoff, up to a bound. A message whose
status is unknown (the end of its data went out and no final reply came)
is never sent again unless the policy says so: the server may have queued
it, and a second copy is a duplicate. A split message that some
recipients already got is not resent either.

:class:`Tracker` counts a ``send_many`` run and reports each message's
final outcome to the caller's ``progress`` callback as a :class:`Progress`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import final

from smtpcore import (
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    MessageResult,
    ReplyError,
    SMTPError,
    SMTPTimeoutError,
)

__all__ = ["Progress", "RetryPolicy", "Tracker"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When ``send_many`` tries a failed message again.

    Attributes:
        attempts: the most tries per message, the first included (>= 1).
        backoff: seconds before the first retry.
        multiplier: each further retry waits this many times longer.
        max_backoff: the longest wait between two tries.
        retry_unknown: also resend messages whose status is unknown. Off by
            default: the server may have queued them, so a retry can
            deliver a second copy.
    """

    attempts: int = 3
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 300.0
    retry_unknown: bool = False

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("RetryPolicy.attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ConfigurationError(
                "RetryPolicy: backoff and max_backoff must be >= 0 and multiplier >= 1"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after try number ``attempt`` (1-based) failed."""
        return min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1))

    def should_retry(self, error: SMTPError, attempt: int) -> bool:
        """True when the message that failed with ``error`` on try number
        ``attempt`` should go again."""
        if attempt >= self.attempts:
            return False
        if error.status_unknown and not self.retry_unknown:
            return False
        result = getattr(error, "result", None)
        if isinstance(result, MessageResult) and result.accepted:
            # Part of a split message was delivered: resending the whole
            # message would give those recipients a second copy.
            return False
        if isinstance(error, (ReplyError, AuthenticationError)):
            return error.temporary
        return isinstance(error, (ConnectionLostError, SMTPTimeoutError))


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One message's final outcome in a ``send_many`` run, with the run's counts.

    Attributes:
        index: the message's position in the ``messages`` given.
        outcome: its result, or the typed error it finally failed with.
        attempts: how many times it was tried.
        total: messages in the run (None while an iterable is being consumed).
        done: messages with a final outcome, this one included.
        accepted: of those, accepted by the server.
        failed: of those, failed (refused, or tries used up).
        unknown: of the failed, those whose status is unknown.
        in_flight: messages submitted and not yet done.
        retries: tries after a first one, so far.
    """

    index: int
    outcome: MessageResult | SMTPError
    attempts: int
    total: int | None
    done: int
    accepted: int
    failed: int
    unknown: int
    in_flight: int
    retries: int


@final
class Tracker:
    """The counts of one ``send_many`` run (shared by a pool's connections:
    thread-safe), reporting each final outcome as a :class:`Progress`."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = self.accepted = self.failed = self.unknown = 0
        self.in_flight = self.retries = 0
        self._lock = threading.Lock()

    def started(self, count: int, *, retry: bool = False) -> None:
        """``count`` messages were submitted (again, with ``retry``)."""
        with self._lock:
            self.in_flight += count
            if retry:
                self.retries += count

    def finished(
        self,
        index: int,
        outcome: MessageResult | SMTPError,
        attempts: int,
        *,
        waiting: bool = False,
    ) -> Progress:
        """A message has its final outcome: count it and describe the run
        (``waiting``: it was waiting for a retry, not in flight)."""
        with self._lock:
            self.in_flight -= not waiting
            self.done += 1
            if isinstance(outcome, MessageResult):
                self.accepted += 1
            else:
                self.failed += 1
                self.unknown += outcome.status_unknown
            return Progress(
                index=index,
                outcome=outcome,
                attempts=attempts,
                total=self.total,
                done=self.done,
                accepted=self.accepted,
                failed=self.failed,
                unknown=self.unknown,
                in_flight=self.in_flight,
                retries=self.retries,
            )

    def requeued(self) -> None:
        """A message failed and waits for another try."""
        with self._lock:
            self.in_flight -= 1
