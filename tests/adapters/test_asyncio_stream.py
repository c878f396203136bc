"""The asyncio adapter's stream waits with one timer for many waits: each
wait must still end at its own deadline, whether the timer was armed for an
earlier or a later one."""

from __future__ import annotations

import asyncio

import pytest
from smtpcore.adapters.asyncio import _Stream


def test_wait_ends_when_woken() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream = _Stream(loop)
        loop.call_soon(stream._wake)
        await stream._wait(5.0)
        assert stream._waiter is None

    asyncio.run(main())


def test_a_shorter_deadline_moves_the_timer_earlier() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream = _Stream(loop)
        loop.call_soon(stream._wake)
        await stream._wait(60.0)  # arms the timer a minute out
        start = loop.time()
        with pytest.raises(TimeoutError):
            await stream._wait(0.05)
        assert loop.time() - start < 5.0
        stream.abort()

    asyncio.run(main())


def test_a_timer_that_fires_early_is_rearmed_for_the_later_deadline() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream = _Stream(loop)
        loop.call_later(0.01, stream._wake)
        await stream._wait(0.1)  # the timer stays armed for 0.1 s
        start = loop.time()
        with pytest.raises(TimeoutError):
            await stream._wait(0.4)  # the old timer fires first: not a timeout yet
        elapsed = loop.time() - start
        assert elapsed >= 0.39
        assert elapsed < 5.0
        stream.abort()

    asyncio.run(main())


def test_abort_cancels_the_timer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream = _Stream(loop)
        loop.call_soon(stream._wake)
        await stream._wait(60.0)
        timer = stream._timer
        assert timer is not None
        stream.abort()
        assert timer.cancelled()
        assert stream._timer is None

    asyncio.run(main())
