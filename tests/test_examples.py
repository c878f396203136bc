"""Every script in ``examples/`` runs, as a user would run it, and does its job.

Each runs in a subprocess (``python examples/NAME.py 127.0.0.1:PORT``)
against an in-process aiosmtpd that offers STARTTLS, with its CA trusted
through ``SSL_CERT_FILE``: the examples use the default TLS policy, so they
start TLS and verify the certificate. ``bulk_pool.py`` runs against a server
that answers 451 to every 7th message, to exercise its retries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers import SMTPServer, TLSMaterial
from smtpcore.cli.sink import Sink

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))

#: script -> messages it sends (to an accepting server).
DELIVERS = {
    "send_blocking.py": 1,
    "send_asyncio.py": 4,
    "send_trio.py": 3,
    "bulk_pool.py": 40,
    "embed_selectors.py": 4,
}


def run_example(
    script: Path, address: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), address],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_example_is_known() -> None:
    assert sorted(p.name for p in SCRIPTS) == sorted(DELIVERS)
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for script in SCRIPTS:
        assert f"`{script.name}`" in readme, f"examples/README.md does not list {script.name}"


@pytest.mark.parametrize(
    "script", [s for s in SCRIPTS if s.name != "bulk_pool.py"], ids=lambda s: s.name
)
def test_example_delivers_over_verified_tls(script: Path, tls: TLSMaterial, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    tls.ca.cert_pem.write_to_path(str(ca))
    with SMTPServer(mode="starttls", tls=tls) as server:
        done = run_example(script, f"127.0.0.1:{server.port}", {"SSL_CERT_FILE": str(ca)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert len(server.messages) == DELIVERS[script.name], done.stdout
        assert all(message.tls for message in server.messages)


def test_bulk_example_retries_temporary_failures() -> None:
    with Sink(tempfail_every=7) as sink:
        done = run_example(EXAMPLES / "bulk_pool.py", f"127.0.0.1:{sink.port}", {})
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == (
            "accepted 40, failed 0, unknown 0, still failing temporarily 0"
        )
        assert sink.tempfailed > 0  # the retries were exercised
        assert len(sink.messages) == DELIVERS["bulk_pool.py"]
