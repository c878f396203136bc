"""A private Postfix, and a private Dovecot LMTP server, on high loopback
ports, for the interop tests.

Set up as /work/shared/interop/postfix.md describes (``servers.PostfixServer``):
a config directory listed in the system main.cf's
``alternate_config_directories``, a master.cf whose ``smtp inet`` line listens
on a free port without chroot, a main.cf that delivers every recipient in
``example.test`` to one Maildir, and a trustme certificate for STARTTLS. The
instance starts once per session and is stopped and removed at the end.

The tests skip (with the reason) when Postfix is not installed or the suite
does not run as root, unless ``SMTPCORE_REQUIRE_POSTFIX=1`` (set by CI): then
they fail loudly. The same goes for Dovecot (tests/adapters/dovecot_server.py) with
``SMTPCORE_REQUIRE_DOVECOT=1`` and for Exim (tests/adapters/exim_server.py)
with ``SMTPCORE_REQUIRE_EXIM=1``; each of those starts once per test module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import pytest
from dovecot_server import DovecotServer, dovecot_unavailable
from exim_server import EximServer, exim_unavailable
from servers import PostfixServer, TLSMaterial, postfix_unavailable


class _Server(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


def _running(why_not: str | None, required_by: str, make: Callable[[], _S]) -> Iterator[_S]:
    """Start the server ``make`` builds, yield it, stop it. Where it cannot
    run (``why_not``), skip, or fail when CI set ``required_by`` to 1."""
    if why_not is not None:
        if os.environ.get(required_by) == "1":
            pytest.fail(f"{why_not} ({required_by}=1)", pytrace=False)
        pytest.skip(why_not)
    server = make()
    try:
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postfix(tls: TLSMaterial) -> Iterator[PostfixServer]:
    """A private Postfix on 127.0.0.1, started once for the session."""
    yield from _running(
        postfix_unavailable(), "SMTPCORE_REQUIRE_POSTFIX", lambda: PostfixServer(tls)
    )


@pytest.fixture(scope="module")
def dovecot(tls: TLSMaterial) -> Iterator[DovecotServer]:
    """A private Dovecot LMTP server on 127.0.0.1 (STARTTLS offered with
    the test CA's certificate), for one test module."""
    yield from _running(
        dovecot_unavailable(), "SMTPCORE_REQUIRE_DOVECOT", lambda: DovecotServer(tls)
    )


@pytest.fixture(scope="module")
def exim(tls: TLSMaterial) -> Iterator[EximServer]:
    """A private Exim on 127.0.0.1 that only queues (STARTTLS offered with
    the test CA's certificate), for one test module."""
    yield from _running(exim_unavailable(), "SMTPCORE_REQUIRE_EXIM", lambda: EximServer(tls))
