"""The core is sans-IO: importing it pulls in no I/O, event loop or thread module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("socket", "ssl", "asyncio", "trio", "anyio", "threading", "select", "selectors")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    "statement",
    ["import smtpcore", "import smtpcore; smtpcore.Session(); smtpcore.Connection()"],
)
def test_importing_the_core_imports_no_io_module(statement: str) -> None:
    modules = _imported_after(statement)
    assert "smtpcore" in modules
    leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert leaked == []


def test_the_check_can_fail() -> None:
    # The same probe sees an I/O module when one is imported: the test above
    # is not vacuous.
    assert "socket" in _imported_after("import smtpcore.adapters.blocking")
