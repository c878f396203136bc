"""The options a swaks user reaches for: recipient lists, --subject, attachment
types and names, client certificates, SNI, a TLS floor, output filters,
--debug; errors in the command line's words; and the extras each command needs.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import trustme
from aiosmtpd.controller import Controller
from servers import free_port
from smtpcore.cli._common import cli_message, split_addresses
from smtpcore.cli._compose import attachments
from smtpcore.cli.sink import Sink

from smtpcore import ConfigurationError, InvalidInputError, SessionConfig

from .conftest import BASE_ENV

Run = Callable[..., "subprocess.CompletedProcess[str]"]
RunMany = Callable[..., "list[subprocess.CompletedProcess[str]]"]


def _parsed(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


# -- recipient lists -------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a@example.org"], ("a@example.org",)),
        (["a@example.org,b@example.org"], ("a@example.org", "b@example.org")),
        (["a@example.org, b@example.org", "c@example.org"],
         ("a@example.org", "b@example.org", "c@example.org")),
        (["a@example.org,,b@example.org,"], ("a@example.org", "b@example.org")),
        (['"x,y"@example.org,b@example.org'], ('"x,y"@example.org', "b@example.org")),
    ],
    ids=["one", "list", "spaces-and-repeats", "empty-items", "quoted-comma"],
)  # fmt: skip
def test_split_addresses(values: list[str], expected: tuple[str, ...]) -> None:
    assert split_addresses(None, None, values) == expected


def test_split_addresses_refuses_an_empty_list() -> None:
    with pytest.raises(click.BadParameter, match="holds no address"):
        split_addresses(None, None, [" , "])


def test_comma_separated_to_cc_and_bcc(smtpcore: Run, sink: Sink) -> None:
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--from", "ann@example.com",
        "--to", "bob@example.org,cy@example.org", "--cc", "dee@example.org, eve@example.org",
        "--bcc", "fay@example.org", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (message,) = sink.messages
    assert message.rcpt_tos == (
        "bob@example.org", "cy@example.org", "dee@example.org", "eve@example.org",
        "fay@example.org",
    )  # fmt: skip
    parsed = _parsed(message.data)
    assert parsed["To"] == "bob@example.org, cy@example.org"
    assert parsed["Cc"] == "dee@example.org, eve@example.org"
    assert parsed["Bcc"] is None
    assert b"fay@example.org" not in message.data


def test_bulk_takes_a_recipient_list(smtpcore: Run, sink: Sink, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "m.eml").write_bytes(
        b"From: ann@example.com\r\nTo: x@example.org\r\nSubject: s\r\n\r\nhi\r\n"
    )
    proc = smtpcore(
        "bulk", str(outbox), "-s", f"127.0.0.1:{sink.port}", "--tls", "none",
        "--to", "bob@example.org,cy@example.org",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (message,) = sink.messages
    assert message.rcpt_tos == ("bob@example.org", "cy@example.org")


# -- --subject and attachments --------------------------------------------------


def test_subject_and_typed_named_attachments(smtpcore: Run, sink: Sink, tmp_path: Path) -> None:
    first = tmp_path / "data.bin"
    first.write_bytes(b"\x00\x01binary")
    second = tmp_path / "notes.txt"
    second.write_bytes(b"plain notes\n")
    proc = smtpcore(
        "send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--to", "bob@example.org",
        "--subject", "Quarterly numbers", "--body", "see attached",
        "--attach", str(first), "--attach", str(second),
        "--attach-type", "application/vnd.example+json", "--attach-type", "",
        "--attach-name", "numbers.json", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (message,) = sink.messages
    parsed = _parsed(message.data)
    assert parsed.get_all("Subject") == ["Quarterly numbers"]
    _, typed, guessed = parsed.iter_parts()
    assert typed.get_content_type() == "application/vnd.example+json"
    assert typed.get_filename() == "numbers.json"
    assert typed.get_payload(decode=True) == b"\x00\x01binary"
    # An empty --attach-type and a missing --attach-name keep the defaults.
    assert guessed.get_content_type() == "text/plain"
    assert guessed.get_filename() == "notes.txt"


def test_attachments_pair_by_position() -> None:
    paired = attachments(["a", "b"], ["text/csv"], ["", "b.dat"])
    assert [(a.path, a.mimetype, a.filename) for a in paired] == [
        ("a", "text/csv", None),
        ("b", None, "b.dat"),
    ]


#: case -> (arguments after the common ones, text expected on stderr)
COMPOSE_ERRORS = {
    "two-subjects": (["--subject", "a", "--header", "Subject: b"], "give the subject once"),
    "subject-with-data": (["--subject", "a", "--data", "pyproject.toml"], "--data sends"),
    "subject-line-break": (["--subject", "a\nBcc: x@example.org"], "line break"),
    "bad-type": (["--attach", "pyproject.toml", "--attach-type", "pdf"], "not a MIME type"),
    "type-without-attach": (["--attach-type", "text/plain"], "the Nth --attach-type"),
    "name-with-directory": (
        ["--attach", "pyproject.toml", "--attach-name", "../etc/passwd"],
        "not a plain file name",
    ),
}


def test_compose_errors_exit_2(smtpcore_many: RunMany) -> None:
    cases = list(COMPOSE_ERRORS)
    base = ["send", "-s", "127.0.0.1:1", "--tls", "none", "--to", "bob@example.org"]
    procs = smtpcore_many([([*base, *COMPOSE_ERRORS[case][0]], {}) for case in cases])
    for case, proc in zip(cases, procs, strict=True):
        assert proc.returncode == 2, (case, proc.stderr)
        assert COMPOSE_ERRORS[case][1] in proc.stderr, (case, proc.stderr)


# -- output filters and --debug ------------------------------------------------------


def _transcript_lines(stdout: str) -> list[str]:
    """The transcript lines, numbers (sizes, message counts) as N."""
    lines = [line for line in stdout.splitlines() if line.startswith(("<- ", "-> "))]
    return [re.sub(r"\d+", "N", line) for line in lines]


def test_output_filters(smtpcore_many: RunMany, sink: Sink) -> None:
    base = ["send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--to", "bob@example.org"]
    flags = [[], ["--hide-send"], ["--hide-receive"], ["--hide-body"], ["--show-result-only"]]
    full, no_send, no_receive, no_body, result_only = smtpcore_many(
        [([*base, *f], {}) for f in flags]
    )
    for proc in (full, no_send, no_receive, no_body, result_only):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[-1].startswith("=== accepted for bob@example.org")
    everything = _transcript_lines(full.stdout)
    assert "-> ." in everything
    assert any(line.startswith("-> [message data: ") for line in everything)
    assert _transcript_lines(no_send.stdout) == [
        line for line in everything if line.startswith("<- ")
    ]
    assert _transcript_lines(no_receive.stdout) == [
        line for line in everything if line.startswith("-> ")
    ]
    assert _transcript_lines(no_body.stdout) == [
        line for line in everything if line != "-> ." and not line.startswith("-> [message data: ")
    ]
    (last,) = result_only.stdout.splitlines()
    assert last.startswith("=== accepted for bob@example.org: 250 ")


def test_debug_prints_the_wire_and_the_library_log(smtpcore_many: RunMany, sink: Sink) -> None:
    base = ["send", "-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--to", "bob@example.org"]
    plain, text, as_json = smtpcore_many(
        [(base, {}), ([*base, "--debug"], {}), ([*base, "--debug", "--json"], {})]
    )
    for proc in (plain, text, as_json):
        assert proc.returncode == 0, proc.stderr
    assert plain.stderr == ""
    # The transcript on stdout is unchanged; the debug output is on stderr.
    assert _transcript_lines(text.stdout) == _transcript_lines(plain.stdout)
    stamp = r"\d\d:\d\d:\d\d\.\d{3}"
    for proc in (text, as_json):
        wire = re.findall(rf"^{stamp} smtpcore\.cli\.wire: (.*)$", proc.stderr, re.MULTILINE)
        assert wire[0].startswith("<- 220 ")
        assert "-> DATA" in wire
        assert wire[-1].startswith("<- 221")
        assert re.search(rf"^{stamp} smtpcore\.client: connected to ", proc.stderr, re.M)
        assert not re.search(rf"^{stamp} smtpcore\.wire: ", proc.stderr, re.M)
    assert as_json.stdout.lstrip().startswith("{")


def test_debug_on_probe_and_bulk(smtpcore_many: RunMany, sink: Sink, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "m.eml").write_bytes(
        b"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: s\r\n\r\nhi\r\n"
    )
    at = ["-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--debug"]
    probe, bulk = smtpcore_many([(["probe", *at], {}), (["bulk", str(outbox), *at], {})])
    assert probe.returncode == 0, probe.stderr
    assert bulk.returncode == 0, bulk.stderr
    assert "smtpcore.cli.wire: -> RCPT TO:<postmaster>" in probe.stderr
    assert "smtpcore.cli.wire: -> RCPT TO:<bob@example.org>" in bulk.stderr


# -- TLS: client certificate, SNI, version floor ------------------------------------


@dataclass
class _TLSRecorder:
    """What a TLS test server saw: SNI names and client certificates."""

    server_names: list[str | None] = field(default_factory=list)
    client_subjects: list[str] = field(default_factory=list)
    messages: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        transport = server.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        if cert:
            names = [value for rdn in cert["subject"] for key, value in rdn if key == "commonName"]
            self.client_subjects += names
        self.messages += 1
        return "250 OK"


@dataclass
class TLSServer:
    port: int
    ca_file: Path
    recorder: _TLSRecorder
    client_pem: Path
    client_cert: Path
    client_key: Path


def _tls_server(
    tmp_path: Path,
    *,
    names: tuple[str, ...] = ("127.0.0.1",),
    require_client_cert: bool = False,
    maximum: ssl.TLSVersion | None = None,
) -> tuple[Controller, TLSServer]:
    ca = trustme.CA()
    leaf = ca.issue_cert(*names)
    client = ca.issue_cert("client.example.org", common_name="client.example.org")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    recorder = _TLSRecorder()
    lock = threading.Lock()

    def remember(sslobj: Any, name: str | None, ctx: Any) -> None:
        with lock:
            recorder.server_names.append(name)

    context.sni_callback = remember
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    if maximum is not None:
        context.maximum_version = maximum
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="mx.test",
        tls_context=context,
        require_starttls=True,
    )
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_pem = tmp_path / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    client_cert = tmp_path / "client-cert.pem"
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client_key = tmp_path / "client-key.pem"
    client.private_key_pem.write_to_path(str(client_key))
    return controller, TLSServer(
        port=controller.port,
        ca_file=ca_file,
        recorder=recorder,
        client_pem=client_pem,
        client_cert=client_cert,
        client_key=client_key,
    )


@pytest.fixture
def start_tls_server(tmp_path: Path) -> Iterator[Callable[..., TLSServer]]:
    """aiosmtpd offering (and requiring) STARTTLS, with a trustme CA; it
    records the SNI names and client certificates it saw."""
    started: list[Controller] = []

    def start(**kwargs: Any) -> TLSServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        controller, server = _tls_server(directory, **kwargs)
        controller.start()
        started.append(controller)
        return server

    yield start
    for controller in started:
        controller.stop()


def _tls_send(server: TLSServer, *extra: str) -> list[str]:
    return [
        "send", "-s", f"127.0.0.1:{server.port}", "--tls", "starttls",
        "--ca-file", str(server.ca_file), "--to", "bob@example.org", "-q", *extra,
    ]  # fmt: skip


def test_client_certificate(
    smtpcore_many: RunMany, start_tls_server: Callable[..., TLSServer]
) -> None:
    server = start_tls_server(require_client_cert=True)
    pair = ["--tls-cert", str(server.client_cert), "--tls-key", str(server.client_key)]
    one_file, two_files, without = smtpcore_many(
        [
            (_tls_send(server, "--tls-cert", str(server.client_pem)), {}),
            (_tls_send(server, *pair), {}),
            (_tls_send(server), {}),
        ]
    )
    assert one_file.returncode == 0, one_file.stderr
    assert two_files.returncode == 0, two_files.stderr
    assert server.recorder.client_subjects == ["client.example.org"] * 2
    # Without a certificate the server refuses: during the handshake (TLS
    # 1.2), or as soon as it reads the certificate the client did not send
    # (TLS 1.3, where the client may already have sent EHLO).
    assert without.returncode in (1, 3), without.stderr
    assert without.stderr.startswith("smtpcore: ")
    assert server.recorder.messages == 2


def test_sni_names_the_certificate_to_verify(
    smtpcore_many: RunMany, start_tls_server: Callable[..., TLSServer]
) -> None:
    server = start_tls_server(names=("mx.test",))
    given, default = smtpcore_many(
        [(_tls_send(server, "--tls-sni", "mx.test"), {}), (_tls_send(server), {})]
    )
    assert given.returncode == 0, given.stderr
    assert "mx.test" in server.recorder.server_names
    # Without it the client verifies 127.0.0.1, which the certificate does not name.
    assert default.returncode == 1
    assert "certificate verify failed" in default.stderr
    assert server.recorder.messages == 1


def test_tls_version_floor(
    smtpcore_many: RunMany, start_tls_server: Callable[..., TLSServer]
) -> None:
    server = start_tls_server(maximum=ssl.TLSVersion.TLSv1_2)
    floor_12, floor_13 = smtpcore_many(
        [
            (_tls_send(server, "--tls-min-version", "1.2", "--json"), {}),
            (_tls_send(server, "--tls-min-version", "1.3"), {}),
        ]
    )
    assert floor_12.returncode == 0, floor_12.stderr
    assert '"version": "TLSv1.2"' in floor_12.stdout
    assert floor_13.returncode == 1
    assert floor_13.stderr.startswith("smtpcore: ")
    assert server.recorder.messages == 1


#: case -> (arguments, text expected on stderr)
TLS_USAGE_ERRORS = {
    "cert-without-tls": (
        ["--tls", "none", "--tls-cert", "pyproject.toml"],
        "--tls-cert needs TLS",
    ),
    "sni-without-tls": (["--tls", "none", "--tls-sni", "mx.test"], "--tls-sni needs TLS"),
    "floor-without-tls": (["--tls", "none", "--tls-min-version", "1.3"], "--tls-min-version"),
    "key-without-cert": (["--tls-key", "pyproject.toml"], "--tls-key needs --tls-cert"),
    "cert-not-pem": (["--tls-cert", "pyproject.toml"], "--tls-cert"),
    "bad-sni": (["--tls-sni", "a b"], "is not a host name"),
    "bad-floor": (["--tls-min-version", "1.1"], "'1.1' is not one of"),
}


def test_tls_usage_errors_exit_2(smtpcore_many: RunMany) -> None:
    cases = list(TLS_USAGE_ERRORS)
    base = ["send", "-s", "127.0.0.1:1", "--to", "bob@example.org"]
    procs = smtpcore_many([([*base, *TLS_USAGE_ERRORS[case][0]], {}) for case in cases])
    for case, proc in zip(cases, procs, strict=True):
        assert proc.returncode == 2, (case, proc.stderr)
        assert TLS_USAGE_ERRORS[case][1] in proc.stderr, (case, proc.stderr)
        assert "Traceback" not in proc.stderr, case


# -- errors speak the command line's language -----------------------------------------

PYTHON_ARGUMENT = re.compile(r"\b[a-z]+_[a-z_]+(=|\(\))")


def test_errors_name_options_not_python_arguments(
    smtpcore_many: RunMany, start_sink: Callable[..., Sink]
) -> None:
    sink = start_sink(auth=("alice", "pw"))
    at = ["-s", f"127.0.0.1:{sink.port}", "--tls", "none", "--to", "bob@example.org"]
    insecure_auth, bad_ehlo, bad_to = smtpcore_many(
        [
            (["send", *at, "--auth-user", "alice"], {"SMTPCORE_AUTH_PASSWORD": "pw"}),
            (["send", *at, "--ehlo", "bad name"], {}),
            (["send", *at, "--to", "bob@@example.org"], {}),
        ]
    )
    assert insecure_auth.returncode == 1
    assert "--allow-insecure-auth" in insecure_auth.stderr
    assert bad_ehlo.returncode == 2
    assert "--ehlo: invalid local hostname" in bad_ehlo.stderr
    assert bad_to.returncode == 2
    assert "--to: invalid recipient" in bad_to.stderr
    for proc in (insecure_auth, bad_ehlo, bad_to):
        assert not PYTHON_ARGUMENT.search(proc.stderr), proc.stderr
    assert sink.messages == ()


def test_cli_message_rewrites_the_library_wording() -> None:
    rewritten = cli_message(
        ConfigurationError("refusing (use a TLS policy, or allow_insecure_auth=True to override)")
    )
    assert rewritten == "refusing (use a TLS policy, or --allow-insecure-auth to override)"
    assert cli_message(ConfigurationError("quit_after=ehlo stops before any message")) == (
        "--quit-after ehlo stops before any message"
    )
    with pytest.raises(InvalidInputError) as info:
        SessionConfig(local_hostname="bad name")
    assert cli_message(info.value).startswith("--ehlo: invalid local hostname")


# -- extras: sending needs no server library; the sink says what it needs --------------

#: What `pip install 'smtpcore[cli]'` does not install.
NOT_IN_CLI_EXTRA = ("aiosmtpd", "trustme", "trio", "anyio", "cryptography", "hypothesis")


def _without_server_libraries(*args: str) -> list[str]:
    """Run the command line with the libraries of other extras unimportable."""
    code = (
        "import sys\n"
        f"for name in {NOT_IN_CLI_EXTRA!r}:\n"
        "    sys.modules[name] = None\n"
        "from smtpcore.__main__ import main\n"
        "main()\n"
    )
    return [sys.executable, "-c", code, *args]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=BASE_ENV, capture_output=True, text=True, timeout=60, check=False, input=""
    )


def test_send_probe_and_bulk_need_only_the_cli_extra(sink: Sink, tmp_path: Path) -> None:
    at = ["-s", f"127.0.0.1:{sink.port}", "--tls", "none"]
    send = _run(_without_server_libraries("send", *at, "--to", "bob@example.org", "-q"))
    assert send.returncode == 0, send.stderr
    probe = _run(_without_server_libraries("probe", *at))
    assert probe.returncode == 0, probe.stderr
    (tmp_path / "m.eml").write_bytes(b"From: a@example.com\r\nTo: b@example.org\r\n\r\nhi\r\n")
    bulk = _run(_without_server_libraries("bulk", str(tmp_path), *at))
    assert bulk.returncode == 0, bulk.stderr
    assert len(sink.messages) == 2


def test_sink_and_demo_say_which_extra_to_install() -> None:
    for command in ("sink", "demo"):
        proc = _run(_without_server_libraries(command, "--port", "0"))
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.splitlines() == [
            f"smtpcore: smtpcore {command} needs the 'sink' extra (trustme is not installed): "
            "pip install 'smtpcore[sink]'"
        ]
    listing = _run(_without_server_libraries("--help"))
    assert listing.returncode == 0, listing.stderr
    sink_line = r"^  sink\s+\(not installed: pip install 'smtpcore\[sink\]'\)"
    assert re.search(sink_line, listing.stdout, re.MULTILINE)
