"""``smtpcore --help``, ``demo``, ``probe`` and ``sink`` as a user runs them."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable

from smtpcore.cli.sink import Sink

Run = Callable[..., "subprocess.CompletedProcess[str]"]
RunMany = Callable[..., "list[subprocess.CompletedProcess[str]]"]

COMMANDS = ["send", "probe", "bulk", "sink", "demo"]


def test_help_documents_every_command_and_the_exit_codes(smtpcore_many: RunMany) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = [(["--help"], {})]
    calls += [([name, "--help"], {}) for name in COMMANDS]
    top, *subs = smtpcore_many(calls)
    assert top.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^  {name}\s+\S", top.stdout, re.MULTILINE), name
    assert "Exit codes:" in top.stdout
    assert "3    temporary failure" in top.stdout
    for name, proc in zip(COMMANDS, subs, strict=False):
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.startswith(f"Usage: smtpcore {name} "), name
        assert "Example" in proc.stdout, name
    send_help = subs[0].stdout
    for option in ("--quit-after", "--auth-password", "SMTPCORE_AUTH_PASSWORD", "--json"):
        assert option in send_help


def test_demo_runs_every_adapter(smtpcore: Run) -> None:
    proc = smtpcore("demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for adapter in ("blocking", "asyncio", "trio", "anyio"):
        assert re.search(rf"^{adapter}\s+ok$", proc.stdout, re.MULTILINE), adapter
        assert f"Subject: Hello from the smtpcore {adapter} adapter" in proc.stdout
    assert proc.stdout.count("-> [TLS established]") == 4
    assert "Traceback" not in proc.stderr


def test_probe_reports_tls_capabilities_and_pipelining(smtpcore: Run, tls_sink: Sink) -> None:
    assert tls_sink.ca_pem_path is not None
    proc = smtpcore(
        "probe", "-s", f"127.0.0.1:{tls_sink.port}", "--tls", "starttls",
        "--ca-file", str(tls_sink.ca_pem_path), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert doc["greeting"]["code"] == 220
    before, after = doc["capabilities"]["before_tls"], doc["capabilities"]["after_tls"]
    assert "STARTTLS" in before
    assert "STARTTLS" not in after
    assert "AUTH" not in before  # the sink offers AUTH only under TLS
    assert sorted(after["AUTH"]) == ["LOGIN", "PLAIN"]
    assert doc["auth"] == ["LOGIN", "PLAIN"]
    assert doc["size"] == 33554432
    assert doc["tls"]["version"].startswith("TLSv1.")
    certificate = doc["tls"]["certificate"]
    assert "IP Address:127.0.0.1" in certificate["san"]
    assert "smtpcore sink throwaway CA" in certificate["issuer"]
    assert re.fullmatch(r"[0-9a-f]{64}", certificate["sha256"])
    assert doc["pipelining"]["works"] is True
    assert doc["chunking"] == {"advertised": False, "tested": False}
    sent = [t["line"] for t in doc["transcript"] if t["dir"] == "->"]
    assert "MAIL FROM:<> SIZE=0" in sent
    assert "RCPT TO:<postmaster>" in sent
    assert not any(line.startswith(("DATA", "BDAT")) for line in sent)
    assert tls_sink.attempts == 0


def test_probe_text_output_and_an_unreachable_server(
    smtpcore_many: RunMany, tls_sink: Sink, closed_port: int
) -> None:
    good, bad = smtpcore_many(
        [
            (["probe", "-s", f"127.0.0.1:{tls_sink.port}", "--insecure"], {}),
            (["probe", "-s", f"127.0.0.1:{closed_port}"], {}),
        ]
    )
    assert good.returncode == 0, good.stderr
    assert re.search(r"^TLS\s+TLSv1\.\d", good.stdout, re.MULTILINE)
    assert re.search(r"^PIPELINING\s+works", good.stdout, re.MULTILINE)
    assert "not verified (--insecure)" in good.stdout
    assert "NOT verified" in good.stderr  # the --insecure warning
    assert bad.returncode == 3
    assert bad.stderr.splitlines() == [
        f"smtpcore: cannot connect to 127.0.0.1:{closed_port}: Connection refused"
    ]


def test_sink_command_receives_until_interrupted(
    smtpcore: Run, start_cli: Callable[..., subprocess.Popen[str]]
) -> None:
    server = start_cli("sink", "--port", "0", "--starttls")
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(STARTTLS\)", banner)
        assert match, banner
        ca = re.search(r"--ca-file (\S+)\)", server.stdout.readline())
        assert ca, "no CA path printed"
        client = smtpcore(
            "send", "-s", f"127.0.0.1:{match.group(1)}", "--tls", "starttls",
            "--ca-file", ca.group(1), "--from", "ann@example.com", "--to", "bob@example.org",
            "--header", "Subject: through the sink command", "-q",
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        line = server.stdout.readline()
        assert "from <ann@example.com> to <bob@example.org>" in line
        assert "TLS: through the sink command" in line
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0
    assert "1 message(s) received" in err
