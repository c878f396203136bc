"""``smtpcore probe``: what a server offers, without sending a message.

Two connections:

1. Greeting, EHLO, STARTTLS (per ``--tls``), EHLO again and AUTH when
   credentials are given; then QUIT. This gives the capabilities before and
   after TLS, the TLS parameters and the peer certificate.
2. When PIPELINING is offered: ``MAIL FROM:<>`` and ``RCPT TO:<postmaster>``
   in one pipelined group, then QUIT (the core's ``quit_after=rcpt``). The
   replies must come back one per command, in order. No DATA is ever sent.

CHUNKING cannot be exercised without message data, so it is only reported as
advertised or not.

The ``--json`` document::

    {"ok": bool, "server": "host:port", "greeting": {reply} | null,
     "capabilities": {"before_tls": {KEYWORD: [params]} | null,
                      "after_tls": {KEYWORD: [params]} | null},
     "tls": {"version", "cipher", "bits",
             "certificate": {"subject", "issuer", "not_before", "not_after",
                             "san": [...], "sha256"} | null} | null,
     "auth": [mechanisms], "size": int | null,
     "pipelining": {"advertised", "tested", "works", "detail"},
     "chunking": {"advertised", "tested": false},
     "error": {...} | null, "transcript": [...], "elapsed": float}
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text
from smtpcore.adapters.blocking import Client

from smtpcore import Capabilities, Direction, Reply, ServerReady, SMTPError, TranscriptEntry

from . import _common as common

if TYPE_CHECKING:
    # Not re-exported by smtpcore.adapters yet (see the CLI report).
    from smtpcore.adapters._common import TLSInfo

__all__ = ["probe"]

_EPILOG = f"""\b
Examples:
  smtpcore probe -s mx.example.net
  smtpcore probe -s smtp.example.com:587 --tls starttls --auth-user me
  smtpcore probe -s smtp.example.com:465 --tls implicit --json
  smtpcore probe -s 127.0.0.1:8025 --tls starttls --ca-file ca.pem

\b
No message is sent: the pipelining test stops after RCPT TO:<postmaster>
and QUITs.

{common.EXIT_CODES_HELP}
"""


@click.command(epilog=_EPILOG)
@common.connection_options
@click.option(
    "--no-pipelining-test",
    "skip_pipelining",
    is_flag=True,
    help="Do not open the second connection that tests PIPELINING.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("-v", "--verbose", is_flag=True, help="Also print the transcripts.")
@click.pass_context
def probe(
    ctx: click.Context, /, skip_pipelining: bool, as_json: bool, verbose: bool, **params: Any
) -> None:
    """Report what a server offers: greeting, capabilities, TLS, AUTH, SIZE.

    Connects, reads the greeting, says EHLO, starts TLS as --tls asks, and
    shows the capabilities before and after TLS, the TLS version, cipher and
    certificate, the AUTH mechanisms and the SIZE limit. Then it checks that
    PIPELINING works with a pipelined MAIL/RCPT pair that is never followed by
    DATA.
    """
    target = common.make_target(params)
    target.announce()
    start = time.perf_counter()
    report = _Report(target.address)
    client = Client(target.server, target.port, transaction_log=True, **target.options)
    try:
        with common.wire_log(client, target.debug):
            client.connect()
            report.tls = client.tls_info
            client.close()
    except SMTPError as exc:
        client.abort()
        report.fail(exc)
    report.greeting = client.greeting
    report.ready = list(client.server_ready)
    report.transcript += client.transcript
    caps = report.final_capabilities
    if report.error is None and caps is not None and caps.pipelining and not skip_pipelining:
        report.pipelining = _test_pipelining(target, report)
    report.elapsed = time.perf_counter() - start
    if as_json:
        common.dump_json(report.document())
    else:
        report.show(Console(highlight=False, soft_wrap=True, markup=False), verbose)
    ctx.exit(report.code)


def _test_pipelining(target: common.Target, report: _Report) -> dict[str, Any]:
    """MAIL FROM:<> and RCPT TO:<postmaster> pipelined, then QUIT."""
    client = Client(
        target.server, target.port, transaction_log=True, quit_after="rcpt", **target.options
    )
    result: dict[str, Any] = {"advertised": True, "tested": True, "works": False, "detail": ""}
    try:
        with common.wire_log(client, target.debug), client:
            client.send_message("", ["postmaster"], message=b"")
    except SMTPError as exc:
        result["detail"] = f"the pipelined MAIL/RCPT failed: {common.classify(exc).message}"
        report.transcript += client.transcript
        return result
    transcript = client.transcript
    report.transcript += transcript
    # What went on the wire, in order: both commands written before the
    # first reply means they were pipelined; the core paired each reply with
    # its command (or failed above).
    order = [
        ("cmd" if e.direction is Direction.SENT else "reply", str(e).partition(" ")[2])
        for e in transcript
        if not e.summary
    ]
    try:
        mail = next(
            i
            for i, (kind, line) in enumerate(order)
            if kind == "cmd" and line.upper().startswith("MAIL")
        )
    except StopIteration:
        result["detail"] = "no MAIL command was sent"
        return result
    following = order[mail + 1 :]
    pipelined = bool(following) and following[0][0] == "cmd"
    replies = [line for kind, line in following if kind == "reply"]
    result["works"] = pipelined and len(replies) >= 2
    result["detail"] = (
        "MAIL and RCPT sent together; replies came back in order: " + "; ".join(replies[:2])
        if result["works"]
        else "the commands were not pipelined"
    )
    return result


def _capabilities_json(caps: Capabilities | None) -> dict[str, list[str]] | None:
    if caps is None:
        return None
    return {keyword: list(params) for keyword, params in caps.keywords.items()}


def _name(parts: Any) -> str:
    """``subject``/``issuer`` of ``getpeercert()``: ((("commonName", "x"),), ...)."""
    out = []
    for rdn in parts or ():
        for key, value in rdn:
            out.append(f"{_SHORT.get(key, key)}={value}")
    return ", ".join(out)


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


def _certificate_json(info: TLSInfo) -> dict[str, Any] | None:
    cert: Mapping[str, Any] = info.peer_certificate or {}
    der = info.peer_certificate_der
    if not cert and der is None:
        return None
    return {
        # The stdlib decodes the certificate only once it is verified; with
        # --insecure only the fingerprint is known.
        "subject": _name(cert.get("subject")) or None,
        "issuer": _name(cert.get("issuer")) or None,
        "not_before": cert.get("notBefore"),
        "not_after": cert.get("notAfter"),
        "san": [f"{kind}:{value}" for kind, value in cert.get("subjectAltName", ())],
        "sha256": hashlib.sha256(der).hexdigest() if der is not None else None,
    }


class _Report:
    def __init__(self, address: str) -> None:
        self.address = address
        self.greeting: Reply | None = None
        self.ready: list[ServerReady] = []
        self.tls: TLSInfo | None = None
        self.error: SMTPError | None = None
        self.failure: common.Failure | None = None
        self.transcript: tuple[TranscriptEntry, ...] = ()
        self.pipelining: dict[str, Any] | None = None
        self.elapsed = 0.0

    def fail(self, error: SMTPError) -> None:
        self.error = error
        self.failure = common.classify(error)

    @property
    def code(self) -> int:
        if self.failure is not None:
            return self.failure.exit_code
        if self.pipelining is not None and not self.pipelining["works"]:
            return common.EXIT_PERMANENT  # advertised but broken
        return common.EXIT_OK

    def _caps(self, tls: bool) -> Capabilities | None:
        found = [r.capabilities for r in self.ready if r.tls is tls]
        return found[-1] if found else None

    @property
    def final_capabilities(self) -> Capabilities | None:
        return self.ready[-1].capabilities if self.ready else None

    def _pipelining(self) -> dict[str, Any]:
        if self.pipelining is not None:
            return self.pipelining
        caps = self.final_capabilities
        advertised = bool(caps and caps.pipelining)
        return {
            "advertised": advertised,
            "tested": False,
            "works": None,
            "detail": "not tested" if advertised else "not advertised",
        }

    def document(self) -> dict[str, Any]:
        caps = self.final_capabilities
        tls = None
        if self.tls is not None:
            tls = {
                "version": self.tls.version,
                "cipher": self.tls.cipher,
                "bits": self.tls.bits,
                "certificate": _certificate_json(self.tls),
            }
        return {
            "ok": self.code == common.EXIT_OK,
            "server": self.address,
            "greeting": common.reply_json(self.greeting),
            "capabilities": {
                "before_tls": _capabilities_json(self._caps(False)),
                "after_tls": _capabilities_json(self._caps(True)),
            },
            "tls": tls,
            "auth": sorted(caps.auth) if caps else [],
            "size": caps.size if caps else None,
            "pipelining": self._pipelining(),
            "chunking": {"advertised": bool(caps and caps.chunking), "tested": False},
            "error": None
            if self.error is None or self.failure is None
            else common.error_json(self.error, self.failure),
            "transcript": common.transcript_json(self.transcript),
            "elapsed": round(self.elapsed, 6),
        }

    def show(self, console: Console, verbose: bool) -> None:
        if verbose:
            for entry in self.transcript:
                common.print_entry(console, entry)
            console.print()
        doc = self.document()

        def row(label: str, value: str, style: str = "") -> None:
            line = Text(f"{label:<13}", style="bold")
            line.append(value, style=style)
            console.print(line)

        row("server", self.address)
        if self.greeting is not None:
            row("greeting", self.greeting.describe())
        for key, label in (("before_tls", "before TLS"), ("after_tls", "after TLS")):
            caps = doc["capabilities"][key]
            if caps is not None:
                row(label, ", ".join(" ".join([k, *v]) for k, v in caps.items()) or "(none)")
        tls = doc["tls"]
        if tls is not None:
            row("TLS", f"{tls['version']} {tls['cipher']} ({tls['bits']} bits)", "green")
            cert = tls["certificate"]
            if cert is not None:
                if cert["subject"]:
                    row("certificate", f"subject {cert['subject']}")
                    row("", f"issuer {cert['issuer']}")
                    row("", f"valid {cert['not_before']} to {cert['not_after']}")
                    row("", f"SANs {', '.join(cert['san']) or '(none)'}")
                else:
                    row("certificate", "not verified (--insecure): details unavailable")
                row("", f"SHA-256 {cert['sha256']}")
                row("", "chain: only the peer certificate is exposed by Python's ssl module")
        elif self.ready:
            row("TLS", "not in use", "yellow")
        if self.ready:
            row("AUTH", " ".join(doc["auth"]) or "not offered")
            row("SIZE", "no limit given" if doc["size"] is None else f"{doc['size']} octets")
            pipe = doc["pipelining"]
            status = "works" if pipe["works"] else "FAILED" if pipe["tested"] else pipe["detail"]
            style = "green" if pipe["works"] else "red" if pipe["tested"] else ""
            row("PIPELINING", status + (f" ({pipe['detail']})" if pipe["tested"] else ""), style)
            chunking = doc["chunking"]["advertised"]
            row(
                "CHUNKING",
                "advertised (not exercised: it needs message data)"
                if chunking
                else "not advertised",
            )
        if self.failure is not None:
            click.echo(f"smtpcore: {self.failure.message}", err=True)
