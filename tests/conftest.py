"""Suite-wide test configuration.

* Hypothesis profiles: ``default`` (fast, no deadline) for every run, and
  ``long`` for nightly-style runs, chosen with ``HYPOTHESIS_PROFILE=long``.
* The fixtures shared by the adapter and interop tests: ``flavor`` (each test
  runs once per flavour: blocking, asyncio, trio, anyio-asyncio, anyio-trio),
  ``anyio_backend`` (pinned to the flavour's event loop) and ``tls`` (a
  throwaway CA).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# tests/interop shares the server helpers of tests/adapters (servers.py).
_ADAPTER_TESTS = str(Path(__file__).parent / "adapters")
if _ADAPTER_TESTS not in sys.path:
    sys.path.insert(0, _ADAPTER_TESTS)

from servers import ADAPTERS, Flavor, TLSMaterial, load_flavor  # noqa: E402

settings.register_profile(
    "default",
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=ADAPTERS)
def flavor(request: pytest.FixtureRequest) -> Flavor:
    """The adapter under test: every test using it runs on each flavour
    (blocking, asyncio, trio, and anyio on asyncio and on trio)."""
    name: str = request.param
    return load_flavor(name)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test that takes ``flavor`` on its flavour's event loop
    (the blocking adapter runs inside asyncio, blocking it: the servers have
    threads). Other async tests get anyio's default, asyncio only."""
    if "flavor" not in request.fixturenames:
        return "asyncio"
    flavor: Flavor = request.getfixturevalue("flavor")
    return flavor.event_loop


@pytest.fixture(scope="session")
def tls() -> TLSMaterial:
    """A throwaway CA and a certificate for localhost and 127.0.0.1."""
    return TLSMaterial.create()
