"""A private Postfix on a high loopback port, for the interop tests.

Set up as /work/shared/interop/postfix.md describes (``servers.PostfixServer``):
a config directory listed in the system main.cf's
``alternate_config_directories``, a master.cf whose ``smtp inet`` line listens
on a free port without chroot, a main.cf that delivers every recipient in
``example.test`` to one Maildir, and a trustme certificate for STARTTLS. The
instance starts once per session and is stopped and removed at the end.

The tests skip (with the reason) when Postfix is not installed or the suite
does not run as root, unless ``SMTPCORE_REQUIRE_POSTFIX=1`` (set by CI): then
they fail loudly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from servers import PostfixServer, TLSMaterial, postfix_unavailable


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("SMTPCORE_REQUIRE_POSTFIX") == "1":
        pytest.fail(f"{reason} (SMTPCORE_REQUIRE_POSTFIX=1)", pytrace=False)
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
