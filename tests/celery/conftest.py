"""Fixtures of the Celery tests: a private redis-server and the counting sink.

The tests need Debian's ``redis-server``: without it they skip with the
reason, unless ``SMTPCORE_REQUIRE_REDIS=1`` (set by CI, which installs it):
then they fail loudly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helpers live in support/ (a directory of their own, so that mypy maps
# them to one module name); the test modules import them by that name.
_SUPPORT = str(Path(__file__).parent / "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

from celery_support import CountingSink, RedisServer, redis_server_binary  # noqa: E402


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("SMTPCORE_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason} (SMTPCORE_REQUIRE_REDIS=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on 127.0.0.1, started once for the session."""
    binary = redis_server_binary()
    if binary is None:
        _skip_or_fail("redis-server is not installed (Debian package redis-server)")
        raise AssertionError("unreachable")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty Redis database (emptied for each test)."""
    redis_server.flush()
    return redis_server.url()


@pytest.fixture
def sink() -> Iterator[CountingSink]:
    """A counting SMTP sink on 127.0.0.1 that accepts everything."""
    with CountingSink() as server:
        yield server
