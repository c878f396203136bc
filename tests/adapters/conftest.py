"""Fixtures for the adapter tests: aiosmtpd and scripted servers on 127.0.0.1.

Every test here is async and takes ``flavor`` (tests/conftest.py), so it runs
on the blocking, asyncio and trio adapters and on the anyio adapter under
both of its event loops; servers are started per test and
stopped at teardown, so each test sees only its own traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from servers import SMTPServer, TinyServer


@pytest.fixture
def start_smtpd() -> Iterator[Callable[..., SMTPServer]]:
    """Start aiosmtpd servers (``SMTPServer`` arguments); all stop at teardown.

    Teardown also checks that the client closed every connection it opened:
    a connection still open after the test is an adapter leak.
    """
    started: list[SMTPServer] = []

    def start(**kwargs: Any) -> SMTPServer:
        server = SMTPServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    left = sum(server.stop() for server in started)
    assert left == 0, f"the client left {left} connection(s) open after the test"


@pytest.fixture
def smtpd(start_smtpd: Callable[..., SMTPServer]) -> SMTPServer:
    """A plain aiosmtpd server (no TLS, no AUTH)."""
    return start_smtpd()


@pytest.fixture
def start_tiny() -> Iterator[Callable[..., TinyServer]]:
    """Start scripted servers (``TinyServer`` arguments); all stop at teardown,
    which also checks that the client closed every connection."""
    started: list[TinyServer] = []

    def start(**kwargs: Any) -> TinyServer:
        server = TinyServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    left = sum(server.stop() for server in started)
    assert left == 0, f"the client left {left} connection(s) open after the test"
