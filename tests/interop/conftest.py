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
from collections.abc import Iterator

import pytest
from dovecot_server import DovecotServer, dovecot_unavailable
from exim_server import EximServer, exim_unavailable
from servers import PostfixServer, TLSMaterial, postfix_unavailable


def _skip_or_fail(reason: str, required_by: str = "SMTPCORE_REQUIRE_POSTFIX") -> None:
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{reason} ({required_by}=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postfix(tls: TLSMaterial) -> Iterator[PostfixServer]:
    """A private Postfix on 127.0.0.1, started once for the session."""
    reason = postfix_unavailable()
    if reason is not None:
        _skip_or_fail(reason)
    server = PostfixServer(tls)
    try:
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    """A private Dovecot LMTP server on 127.0.0.1, for one test module."""
    reason = dovecot_unavailable()
    if reason is not None:
        _skip_or_fail(reason, "SMTPCORE_REQUIRE_DOVECOT")
    server = DovecotServer()
    try:
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def exim() -> Iterator[EximServer]:
    """A private Exim on 127.0.0.1 that only queues, for one test module."""
    reason = exim_unavailable()
    if reason is not None:
        _skip_or_fail(reason, "SMTPCORE_REQUIRE_EXIM")
    server = EximServer()
    try:
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.stop()
