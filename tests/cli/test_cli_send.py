"""``smtpcore send`` as a user runs it: exit codes, JSON, probing, redaction, errors."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smtpcore.cli.sink import Sink

Run = Callable[..., "subprocess.CompletedProcess[str]"]
RunMany = Callable[..., "list[subprocess.CompletedProcess[str]]"]

SEND_KEYS = {
    "ok",
    "outcome",
    "server",
    "accepted",
    "rejected",
    "reply",
    "data_sent",
    "error",
    "transcript",
    "elapsed",
}
OUTCOMES = {"accepted", "temporary-failure", "permanent-failure", "probed", "error"}


def check_reply(reply: Any) -> None:
    assert isinstance(reply, dict)
    assert set(reply) == {"code", "enhanced", "text"}
    assert isinstance(reply["code"], int)
    assert 200 <= reply["code"] <= 599
    assert reply["enhanced"] is None or isinstance(reply["enhanced"], str)
    assert isinstance(reply["text"], str)


def check_send_document(doc: Any) -> None:
    """The documented ``send --json`` schema, key by key."""
    assert isinstance(doc, dict)
    assert set(doc) == SEND_KEYS
    assert isinstance(doc["ok"], bool)
    assert doc["outcome"] in OUTCOMES
    server = doc["server"]
    assert set(server) == {"address", "greeting", "tls"}
    assert isinstance(server["address"], str)
    if server["greeting"] is not None:
        check_reply(server["greeting"])
    if server["tls"] is not None:
        assert set(server["tls"]) == {"version", "cipher", "bits"}
    assert isinstance(doc["accepted"], list)
    assert all(isinstance(r, str) for r in doc["accepted"])
    assert isinstance(doc["rejected"], dict)
    for rcpt, reply in doc["rejected"].items():
        assert isinstance(rcpt, str)
        check_reply(reply)
    if doc["reply"] is not None:
        check_reply(doc["reply"])
    assert isinstance(doc["data_sent"], bool)
    error = doc["error"]
    if error is not None:
        assert set(error) == {"type", "message", "code"}
        assert isinstance(error["type"], str)
        assert isinstance(error["message"], str)
        assert error["code"] is None or isinstance(error["code"], int)
    assert (error is None) == (doc["outcome"] in {"accepted", "probed"})
    assert isinstance(doc["transcript"], list)
    for line in doc["transcript"]:
        assert set(line) == {"dir", "line"}
        assert line["dir"] in {"<-", "->"}
        assert isinstance(line["line"], str)
    assert isinstance(doc["elapsed"], float)
    assert doc["elapsed"] >= 0


def test_send_prints_the_transcript_and_delivers(smtpcore: Run, sink: Sink) -> None:
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none",
        "--from", "ann@example.com", "--to", "bob@example.org", "--body", "hello bob",
        entry_point=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("<- 220 ")
    assert "-> MAIL FROM:<ann@example.com> SIZE=" in proc.stdout
    assert "-> RCPT TO:<bob@example.org>" in lines
    assert "-> DATA" in lines
    assert lines[-1].startswith("=== accepted for bob@example.org: 250 ")
    (message,) = sink.messages
    assert message.mail_from == "ann@example.com"
    assert message.rcpt_tos == ("bob@example.org",)
    # swaks-like generated headers around the body.
    assert message.subject.startswith("test ")
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert parsed["From"] == "ann@example.com"
    assert parsed["To"] == "bob@example.org"
    assert parsed["Date"] is not None
    assert parsed["Message-ID"] is not None
    assert parsed.get_content().strip() == "hello bob"


def test_send_json_document_follows_the_schema(smtpcore: Run, sink: Sink) -> None:
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none",
        "--from", "ann@example.com", "--to", "bob@example.org", "--to", "cy@example.org",
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    check_send_document(doc)
    assert doc["ok"] is True
    assert doc["outcome"] == "accepted"
    assert doc["accepted"] == ["bob@example.org", "cy@example.org"]
    assert doc["rejected"] == {}
    assert doc["data_sent"] is True
    assert doc["reply"]["code"] == 250
    assert doc["server"]["address"] == f"127.0.0.1:{sink.port}"
    assert doc["server"]["greeting"]["code"] == 220
    assert {"dir": "->", "line": "DATA"} in doc["transcript"]
    assert len(sink.messages) == 1


def test_send_json_reports_a_temporary_failure(
    smtpcore: Run, start_sink: Callable[..., Sink]
) -> None:
    sink = start_sink(tempfail_every=1)
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--to", "bob@example.org",
        "--json",
    )  # fmt: skip
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    check_send_document(doc)
    assert doc["ok"] is False
    assert doc["outcome"] == "temporary-failure"
    assert doc["error"]["code"] == 451
    assert doc["reply"]["code"] == 451
    assert sink.messages == ()


def test_quit_after_rcpt_sends_no_data(smtpcore: Run, tls_sink: Sink) -> None:
    assert tls_sink.ca_pem_path is not None
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{tls_sink.port}", "--tls", "starttls",
        "--ca-file", str(tls_sink.ca_pem_path),
        "--from", "ann@example.com", "--to", "bob@example.org", "--to", "cy@example.org",
        "--quit-after", "rcpt", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    check_send_document(doc)
    assert doc["outcome"] == "probed"
    assert doc["data_sent"] is False
    assert doc["reply"] is None
    sent = [t["line"] for t in doc["transcript"] if t["dir"] == "->"]
    assert "RCPT TO:<bob@example.org>" in sent
    assert "RCPT TO:<cy@example.org>" in sent
    assert not any(line.startswith(("DATA", "BDAT")) for line in sent)
    assert sent[-1] == "QUIT"
    # The server saw no message data at all.
    assert tls_sink.attempts == 0
    assert tls_sink.messages == ()


def test_quit_after_rcpt_reports_accepted_recipients(smtpcore: Run, sink: Sink) -> None:
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none",
        "--to", "bob@example.org", "--quit-after", "rcpt", "--json",
    )  # fmt: skip
    assert json.loads(proc.stdout)["accepted"] == ["bob@example.org"]


#: For each --quit-after stage: the command sent just before QUIT (None: only QUIT).
LAST_BEFORE_QUIT = {"connect": None, "ehlo": "EHLO", "tls": "EHLO", "auth": "AUTH", "mail": "MAIL"}


def test_quit_after_early_stages(smtpcore_many: RunMany, tls_sink: Sink) -> None:
    assert tls_sink.ca_pem_path is not None
    base = [
        "send", "-s", f"127.0.0.1:{tls_sink.port}", "--tls", "starttls",
        "--ca-file", str(tls_sink.ca_pem_path), "--auth-user", "alice",
        "--to", "bob@example.org", "--json",
    ]  # fmt: skip
    env = {"SMTPCORE_AUTH_PASSWORD": "correct horse"}
    stages = list(LAST_BEFORE_QUIT)
    procs = smtpcore_many([([*base, "--quit-after", stage], env) for stage in stages])
    for stage, proc in zip(stages, procs, strict=False):
        assert proc.returncode == 0, (stage, proc.stderr)
        doc = json.loads(proc.stdout)
        check_send_document(doc)
        assert doc["outcome"] == "probed", stage
        sent = [t["line"] for t in doc["transcript"] if t["dir"] == "->"]
        assert sent[-1] == "QUIT", stage
        expected = LAST_BEFORE_QUIT[stage]
        if expected is None:
            assert sent == ["QUIT"], stage
        else:
            assert sent[-2].startswith(expected), (stage, sent)
        assert ("[TLS established]" in sent) == (stage not in {"connect", "ehlo"}), stage
    assert tls_sink.attempts == 0


SECRET = "s3cr3t-Pa55+w0rd"


def _secret_forms(user: str, password: str) -> list[str]:
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return [password, base64.b64encode(password.encode()).decode(), plain]


def test_secrets_never_appear(smtpcore_many: RunMany, start_sink: Callable[..., Sink]) -> None:
    sink = start_sink(starttls=True, auth=("alice", SECRET))
    assert sink.ca_pem_path is not None
    base = [
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "starttls",
        "--ca-file", str(sink.ca_pem_path), "--auth-user", "alice", "--to", "bob@example.org",
    ]  # fmt: skip
    env = {"SMTPCORE_AUTH_PASSWORD": SECRET}
    cases = [(mech, fmt) for mech in ("PLAIN", "LOGIN") for fmt in ([], ["--json"])]
    procs = smtpcore_many([([*base, "--auth-mech", mech, *fmt], env) for mech, fmt in cases])
    for (mechanism, fmt), proc in zip(cases, procs, strict=False):
        assert proc.returncode == 0, (mechanism, fmt, proc.stderr)
        output = proc.stdout + proc.stderr
        for form in _secret_forms("alice", SECRET):
            assert form not in output, (mechanism, fmt)
        # Not vacuous: the AUTH exchange happened and is shown, redacted.
        assert "<redacted>" in output
        assert f"AUTH {mechanism}" in output
    assert [m.username for m in sink.messages] == ["alice"] * len(cases)


def test_secret_from_the_command_line_is_redacted_too(smtpcore: Run, tls_sink: Sink) -> None:
    assert tls_sink.ca_pem_path is not None
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{tls_sink.port}", "--tls", "starttls",
        "--ca-file", str(tls_sink.ca_pem_path), "--auth-user", "alice",
        "--auth-password", "wrong horse", "--to", "bob@example.org", "--json",
    )  # fmt: skip
    assert proc.returncode == 1
    for form in _secret_forms("alice", "wrong horse"):
        assert form not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    check_send_document(doc)
    assert doc["outcome"] == "permanent-failure"
    assert doc["error"]["type"] == "AuthenticationError"
    assert doc["error"]["code"] == 535


# -- the errors a new user meets first -----------------------------------------


def _new_user_case(case: str, tls_sink: Sink, closed_port: int) -> tuple[list[str], dict[str, str]]:
    ca = str(tls_sink.ca_pem_path)
    at = f"127.0.0.1:{tls_sink.port}"
    if case == "unknown-host":
        return ["-s", "no-such-host.invalid", "--timeout", "10"], {}
    if case == "refused-port":
        return ["-s", f"127.0.0.1:{closed_port}"], {}
    if case == "wrong-password":
        return (
            ["-s", at, "--tls", "starttls", "--ca-file", ca, "--auth-user", "alice"],
            {"SMTPCORE_AUTH_PASSWORD": "wrong horse"},
        )
    assert case == "bad-certificate"
    return ["-s", at, "--tls", "starttls"], {}


#: case -> (exit code, text in the one stderr line)
NEW_USER_ERRORS = {
    "unknown-host": (3, "cannot resolve no-such-host.invalid"),
    "refused-port": (3, "Connection refused"),
    "wrong-password": (1, "535"),
    "bad-certificate": (1, "certificate verify failed"),
}


def test_new_user_errors_are_one_line(
    smtpcore_many: RunMany, tls_sink: Sink, closed_port: int
) -> None:
    cases = list(NEW_USER_ERRORS)
    calls = []
    for case in cases:
        args, env = _new_user_case(case, tls_sink, closed_port)
        calls.append((["send", *args, "--to", "bob@example.org"], env))
    for case, proc in zip(cases, smtpcore_many(calls), strict=False):
        code, expected = NEW_USER_ERRORS[case]
        assert proc.returncode == code, (case, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr, case
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, (case, proc.stderr)
        assert lines[0].startswith("smtpcore: "), case
        assert expected in lines[0], (case, lines[0])
    assert tls_sink.messages == ()


def test_insecure_warns_loudly_and_still_sends(smtpcore: Run, tls_sink: Sink) -> None:
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{tls_sink.port}", "--tls", "starttls", "--insecure",
        "--to", "bob@example.org", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" in proc.stderr
    assert "NOT verified" in proc.stderr
    (message,) = tls_sink.messages
    assert message.tls


def test_attachments_headers_and_stdin_body(smtpcore: Run, sink: Sink, tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 not really\n")
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--to", "bob@example.org",
        "--header", "Subject: quarterly report", "--header", "X-Tag: one",
        "--header", "X-Tag: two", "--attach", str(report), "--body", "-", "-q",
        input="see attached\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (message,) = sink.messages
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed["Subject"] == "quarterly report"
    assert parsed.get_all("X-Tag") == ["one", "two"]
    assert parsed.get_content_type() == "multipart/mixed"
    body, attachment = parsed.iter_parts()
    assert isinstance(body, email.message.EmailMessage)
    assert body.get_content().strip() == "see attached"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "report.pdf"
    assert attachment.get_payload(decode=True) == b"%PDF-1.4 not really\n"


def test_data_file_is_sent_unchanged(smtpcore: Run, sink: Sink, tmp_path: Path) -> None:
    raw = b"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: raw\r\n\r\nas is\r\n"
    path = tmp_path / "message.eml"
    path.write_bytes(raw)
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--from", "ann@example.com",
        "--to", "bob@example.org", "--data", str(path), "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (message,) = sink.messages
    assert message.data == raw


#: case -> (arguments, text expected on stderr)
USAGE_ERRORS = {
    "no-recipient": (["send", "--body", "x"], "Missing option '-t' / '--to'"),
    "two-bodies": (
        ["send", "--to", "a@example.org", "--body", "x", "--body-file", "pyproject.toml"],
        "only one of --body and --body-file",
    ),
    "bad-ipv6": (["send", "--to", "a@example.org", "--server", "[::1"], "is not [address]"),
    "bad-header": (
        ["send", "--to", "a@example.org", "--header", "Bad Header"],
        "is not 'Name: value'",
    ),
    "no-password": (["send", "--to", "a@example.org", "--auth-user", "u"], "needs a password"),
    "bad-address": (
        ["send", "--to", "not an address", "--server", "127.0.0.1:1"],
        "invalid recipient",
    ),
    "csv-without-template": (["bulk", "--csv", "pyproject.toml"], "--csv and --template go"),
    "bad-ca-file": (
        ["probe", "--ca-file", "pyproject.toml", "--server", "127.0.0.1:1"],
        "cannot load",
    ),
}


def test_usage_errors_exit_2(smtpcore_many: RunMany) -> None:
    cases = list(USAGE_ERRORS)
    procs = smtpcore_many([(USAGE_ERRORS[case][0], {}) for case in cases])
    for case, proc in zip(cases, procs, strict=False):
        assert proc.returncode == 2, (case, proc.stderr)
        assert USAGE_ERRORS[case][1] in proc.stderr, (case, proc.stderr)
        assert "Traceback" not in proc.stderr, case
