"""``smtpcore send``: one message, with a live transcript or one JSON result.

The ``--json`` document (one per run, on stdout)::

    {
      "ok": true,                       # exit code 0
      "outcome": "accepted",            # accepted | temporary-failure |
                                        # permanent-failure | probed | error
      "server": {"address": "mx.example.net:25",
                 "greeting": {reply} | null,
                 "tls": {"version": "TLSv1.3", "cipher": "...", "bits": 256} | null},
      "accepted": ["rcpt@example.org"],
      "rejected": {"other@example.org": {reply}},
      "reply": {reply} | null,          # the final reply to the message data
      "data_sent": true,
      "error": {"type": "TemporaryReplyError", "message": "...", "code": 451} | null,
      "transcript": [{"dir": "<-", "line": "220 mx.example.net ESMTP"}, ...],
      "elapsed": 0.123                  # seconds
    }

where ``{reply}`` is ``{"code": 250, "enhanced": "2.0.0" | null, "text": "..."}``.
Secrets never appear: the core redacts AUTH lines in the transcript.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click
from rich.console import Console
from smtpcore.adapters.blocking import Client

from smtpcore import (
    Direction,
    InvalidInputError,
    MessageResult,
    OutgoingMessage,
    QuitAfter,
    Reply,
    SMTPError,
    TranscriptEntry,
)

from . import _common as common

if TYPE_CHECKING:
    # Not re-exported by smtpcore.adapters yet (see the CLI report).
    from smtpcore.adapters._common import TLSInfo
from ._compose import attachments, compose, parse_header

__all__ = ["send"]

_EPILOG = f"""\b
Examples:
  smtpcore send --server mx.example.net --from me@example.com --to you@example.org
  smtpcore send -s smtp.example.com:587 --tls starttls --auth-user me \\
      --from me@example.com --to you@example.org,boss@example.org \\
      --subject "Q3 report" --body "attached" --attach report.pdf
  echo "body text" | smtpcore send -s localhost:8025 --to a@example.org --body -
  smtpcore send -s mx.example.net --to a@example.org --quit-after rcpt   (probe only)
  smtpcore send -s mx.example.net --to a@example.org --hide-send   (the server's lines)
  smtpcore send -s localhost:8025 --to a@example.org --json | jq .outcome

\b
The transcript shows server lines as "<-" and client lines as "->"; passwords
are shown as <redacted>, and the message data as one "[message data: N octets]"
line. --hide-send, --hide-receive and --hide-body leave out those lines;
--show-result-only (-q) prints only the last line. --json prints one document
instead (keys: ok, outcome, server, accepted, rejected, reply, data_sent,
error, transcript, elapsed). --debug adds the wire, timestamped, and the
library's DEBUG log on stderr.

{common.EXIT_CODES_HELP}
"""


def _default_sender() -> str:
    # swaks' default: the local user at this host (no DNS lookup).
    try:
        import getpass

        user = getpass.getuser()
    except (OSError, KeyError, ImportError):
        user = "smtpcore"
    return f"{user}@{socket.gethostname() or 'localhost'}"


@click.command(epilog=_EPILOG)
@click.option(
    "-f",
    "--from",
    "sender",
    default=None,
    metavar="ADDRESS",
    help='Envelope sender and From header (default: you@this-host; "" for <>).',
)
@click.option(
    "-t",
    "--to",
    "recipients",
    multiple=True,
    required=True,
    metavar="ADDRESS[,ADDRESS...]",
    callback=common.split_addresses,
    help="Recipient, or a comma-separated list (repeatable).",
)
@click.option(
    "--cc",
    "cc",
    multiple=True,
    metavar="ADDRESS[,ADDRESS...]",
    callback=common.split_addresses,
    help="Recipient also named in a Cc header (repeatable; lists too).",
)
@click.option(
    "--bcc",
    "bcc",
    multiple=True,
    metavar="ADDRESS[,ADDRESS...]",
    callback=common.split_addresses,
    help="Recipient named in no header (repeatable; lists too).",
)
@click.option("--subject", default=None, metavar="TEXT", help='The Subject (default: "test DATE").')
@click.option("--body", default=None, metavar="TEXT", help="Message body; '-' reads stdin.")
@click.option(
    "--body-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Read the message body (UTF-8 text) from a file.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Add a header, or replace a generated one (repeatable).",
)
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Attach a file (repeatable); its type is guessed from its name.",
)
@click.option(
    "--attach-type",
    "attach_types",
    multiple=True,
    metavar="TYPE/SUBTYPE",
    help="MIME type of an attachment: the Nth --attach-type is the Nth --attach's "
    "('' keeps the guess).",
)
@click.option(
    "--attach-name",
    "attach_names",
    multiple=True,
    metavar="NAME",
    help="File name an attachment is shown with: the Nth --attach-name is the Nth "
    "--attach's ('' keeps the file's own).",
)
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    default=None,
    metavar="FILE",
    help="Send FILE ('-': stdin) as the complete message, unchanged (no generated headers).",
)
@click.option(
    "--dsn-notify",
    multiple=True,
    type=click.Choice(["never", "success", "failure", "delay"], case_sensitive=False),
    help="DSN: when to send delivery notifications (repeatable; RFC 3461).",
)
@click.option(
    "--dsn-ret",
    type=click.Choice(["full", "hdrs"], case_sensitive=False),
    default=None,
    help="DSN: return the full message or only its headers in a bounce.",
)
@click.option("--dsn-envid", default=None, metavar="ID", help="DSN: envelope identifier.")
@click.option(
    "--quit-after",
    type=click.Choice([q.value for q in QuitAfter]),
    default=None,
    help="Stop after this step and QUIT without sending the message (rcpt: would the "
    "recipients be accepted?).",
)
@click.option(
    "--require-all-recipients",
    is_flag=True,
    help="Fail if any recipient is refused (default: succeed if one is accepted).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON result instead.")
@click.option(
    "-q",
    "--show-result-only",
    "--quiet",
    "quiet",
    is_flag=True,
    help="Print only the result line, not the transcript.",
)
@click.option("--hide-send", is_flag=True, help="Do not print the client's lines (->).")
@click.option("--hide-receive", is_flag=True, help="Do not print the server's lines (<-).")
@click.option(
    "--hide-body",
    is_flag=True,
    help="Do not print the message data lines ([message data: N octets] and the final dot).",
)
@common.connection_options
@click.pass_context
def send(ctx: click.Context, /, **params: Any) -> None:
    """Send one message and show the SMTP conversation.

    Without --body, --body-file, --data or --attach a short test message is
    sent. Headers From, To, Subject ("test DATE"), Date and Message-ID are
    generated unless given with --header.
    """
    body_sources = [params["body"] is not None, params["body_file"] is not None]
    if sum(body_sources) > 1:
        raise click.UsageError("give only one of --body and --body-file")
    composing = ("headers", "attachments", "subject", "attach_types", "attach_names")
    if params["data_file"] is not None and (
        any(body_sources) or any(params[name] for name in composing)
    ):
        raise click.UsageError(
            "--data sends a complete message: no --body/--subject/--header/--attach"
        )
    stdin_busy = params["body"] == "-" or params["data_file"] == "-"
    target = common.make_target(params, stdin_busy=stdin_busy)
    sender = _default_sender() if params["sender"] is None else params["sender"]
    recipients = [*params["recipients"], *params["cc"], *params["bcc"]]
    try:
        # Check the envelope before connecting: a typo in an address is a
        # usage error, not something to learn from the server.
        OutgoingMessage.build(sender=sender, recipients=recipients, message=b"")
    except InvalidInputError as exc:
        hint = (
            " (it was made from this host's name: give --from)" if params["sender"] is None else ""
        )
        message = common.cli_message(exc)
        raise click.UsageError(f"{message}{hint}" if exc.field == "sender" else message) from None
    message_kwargs = _message(params, sender)
    options: dict[str, Any] = {}
    if params["dsn_notify"]:
        options["dsn_notify"] = [n.upper() for n in params["dsn_notify"]]
    if params["dsn_ret"]:
        options["dsn_ret"] = params["dsn_ret"].upper()
    if params["dsn_envid"]:
        options["dsn_envid"] = params["dsn_envid"]
    quit_after = None if params["quit_after"] is None else QuitAfter(params["quit_after"])
    target.announce()
    run = _Run(target, quit_after, params["require_all_recipients"])
    console = Console(highlight=False, soft_wrap=True, markup=False)
    shown = None
    if not (params["as_json"] or params["quiet"]):
        shown = _Filter(
            console=console,
            hide_send=params["hide_send"],
            hide_receive=params["hide_receive"],
            hide_body=params["hide_body"],
        )
    code = run.execute(sender, recipients, message_kwargs, options, shown)
    if params["as_json"]:
        common.dump_json(run.document())
    else:
        run.summarise(console)
    ctx.exit(code)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Filter:
    """Prints the transcript lines the ``--hide-*`` options leave."""

    console: Console
    hide_send: bool = False
    hide_receive: bool = False
    hide_body: bool = False

    def show(self, entry: TranscriptEntry) -> None:
        if entry.direction is Direction.SENT and self.hide_send:
            return
        if entry.direction is Direction.RECEIVED and self.hide_receive:
            return
        if self.hide_body and _is_message_data(entry):
            return
        common.print_entry(self.console, entry)


def _is_message_data(entry: TranscriptEntry) -> bool:
    """The transcript's message data lines: the summary (or the data itself,
    when the session logs it) and the final dot."""
    if entry.direction is not Direction.SENT:
        return False
    if entry.summary:
        return entry.data.startswith(b"[message data")
    return entry.data.rstrip(b"\r\n") == b"."


def _message(params: dict[str, Any], sender: str) -> dict[str, Any]:
    """The ``message=``/``message_file=``/``file_handle=`` argument of send_message."""
    data_file: str | None = params["data_file"]
    if data_file == "-":
        return {"file_handle": sys.stdin.buffer}
    if data_file is not None:
        return {"message_file": data_file}
    body: str | None = params["body"]
    if body == "-":
        body = _read_text(sys.stdin.buffer, "stdin")
    elif params["body_file"] is not None:
        with open(params["body_file"], "rb") as handle:
            body = _read_text(handle, params["body_file"])
    headers = [parse_header(h) for h in params["headers"]]
    if params["subject"] is not None:
        if any(name.lower() == "subject" for name, _ in headers):
            raise click.UsageError("give the subject once: --subject or --header 'Subject: ...'")
        headers.insert(0, parse_header(f"Subject: {params['subject']}", "--subject"))
    message = compose(
        sender=sender,
        recipients=params["recipients"],
        cc=params["cc"],
        body=body,
        headers=headers,
        attachments=attachments(
            params["attachments"], params["attach_types"], params["attach_names"]
        ),
    )
    return {"message": message}


def _read_text(handle: IO[bytes], label: str) -> str:
    data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.UsageError(
            f"the body in {label} is not UTF-8 text; send it with --attach or --data"
        ) from None


class _Run:
    """One send: the client, what it learnt, and the outcome."""

    def __init__(self, target: common.Target, quit_after: QuitAfter | None, require_all: bool):
        self.target = target
        self.quit_after = quit_after
        self.require_all = require_all
        self.client: Client | None = None
        self.greeting: Reply | None = None
        self.tls: TLSInfo | None = None
        self.result: MessageResult | None = None
        self.error: SMTPError | None = None
        self.failure: common.Failure | None = None
        self.transcript: tuple[TranscriptEntry, ...] = ()
        self.elapsed = 0.0
        self.code = common.EXIT_OK

    def execute(
        self,
        sender: str,
        recipients: list[str],
        message: dict[str, Any],
        options: dict[str, Any],
        shown: _Filter | None,
    ) -> int:
        start = time.perf_counter()
        try:
            self.client = Client(
                self.target.server,
                self.target.port,
                transaction_log=True,
                quit_after=self.quit_after,
                require_all_recipients=self.require_all,
                **self.target.options,
            )
        except SMTPError as exc:  # an option the core refuses (EHLO name...)
            self._failed(exc)
            return self.code
        client = self.client

        def current() -> list[TranscriptEntry] | None:
            session = client.session
            return None if session is None else session.transcript

        def show(entry: TranscriptEntry) -> None:
            if self.target.debug:
                common.log_wire(entry)
            if shown is not None:
                shown.show(entry)

        # --debug timestamps each line when it is seen: look often.
        interval = 0.001 if self.target.debug else 0.02
        with common.TranscriptFollower(current, show, interval):
            try:
                client.connect()
                self.greeting = client.greeting
                self.tls = client.tls_info
                if self.quit_after is None or not self.quit_after.before_mail:
                    self.result = client.send_message(sender, recipients, **message, **options)
                    self.tls = client.tls_info or self.tls
                client.close()
            except SMTPError as exc:
                client.abort()
                self._failed(exc)
            except BaseException:
                client.abort()
                raise
        self.greeting = client.greeting or self.greeting
        self.transcript = client.transcript
        self.elapsed = time.perf_counter() - start
        if self.error is None:
            self.code = self._result_code()
        return self.code

    def _failed(self, error: SMTPError) -> None:
        self.error = error
        self.failure = common.classify(error)
        self.code = self.failure.exit_code

    def _result_code(self) -> int:
        result = self.result
        if result is None or not result.rejected:
            return common.EXIT_OK
        if self.quit_after is None:
            return common.EXIT_OK  # accepted for some; the refusals are listed
        # A probe: any refusal is the answer the user asked about.
        replies = list(result.rejected.values())
        transient = all(r.is_transient for r in replies)
        return common.EXIT_TEMPORARY if transient else common.EXIT_PERMANENT

    @property
    def outcome(self) -> str:
        if self.failure is not None:
            return self.failure.outcome
        if self.quit_after is not None:
            return "probed"
        return "accepted"

    def document(self) -> dict[str, Any]:
        """The ``--json`` result (schema in the module docstring)."""
        result, error = self.result, self.error
        rejected: dict[str, Any] = {}
        reply = None
        if result is not None:
            rejected = {r: common.reply_json(rep) for r, rep in result.rejected.items()}
            reply = result.reply
        if error is not None:
            replies = getattr(error, "replies", None)
            if isinstance(replies, dict):
                rejected = {r: common.reply_json(rep) for r, rep in replies.items()}
            reply = getattr(error, "reply", None)
        tls = None
        if self.tls is not None:
            tls = {"version": self.tls.version, "cipher": self.tls.cipher, "bits": self.tls.bits}
        return {
            "ok": self.code == common.EXIT_OK,
            "outcome": self.outcome,
            "server": {
                "address": self.target.address,
                "greeting": common.reply_json(self.greeting),
                "tls": tls,
            },
            "accepted": list(result.accepted) if result is not None else [],
            "rejected": rejected,
            "reply": common.reply_json(reply if isinstance(reply, Reply) else None),
            "data_sent": bool(result is not None and result.data_sent),
            "error": None
            if error is None or self.failure is None
            else common.error_json(error, self.failure),
            "transcript": common.transcript_json(self.transcript),
            "elapsed": round(self.elapsed, 6),
        }

    def summarise(self, console: Console) -> None:
        """The last line(s): what happened, on stdout; an error, on stderr."""
        if self.failure is not None:
            click.echo(f"smtpcore: {self.failure.message}", err=True)
            return
        result = self.result
        took = f"in {self.elapsed:.2f}s"
        if result is None:
            console.print(
                f"=== stopped after {self.quit_after.value if self.quit_after else '?'} "
                f"as asked ({took})"
            )
            return
        for rcpt, reply in result.rejected.items():
            click.echo(f"smtpcore: refused {rcpt}: {reply.describe()}", err=True)
        if self.quit_after is QuitAfter.MAIL:
            console.print(
                f"=== probe ended after MAIL: no message sent; the MAIL reply is above ({took})"
            )
            return
        if self.quit_after is not None:
            accepted = ", ".join(result.accepted) or "none"
            console.print(
                f"=== probe ended after {self.quit_after.value}: no message sent; "
                f"accepted: {accepted} ({took})"
            )
            return
        final = result.reply.describe() if result.reply is not None else "no reply"
        console.print(f"=== accepted for {', '.join(result.accepted)}: {final} ({took})")
