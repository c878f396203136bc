"""What the subcommands share: exit codes, error lines, output, connection options.

Nothing here speaks SMTP: the options are turned into the keyword arguments
of the adapters' ``Client``, and the adapters' typed errors into an exit code
and one line for a human, worded with the command line's option names (the
library's messages name its Python arguments).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

import click
from rich.console import Console
from rich.text import Text

from smtpcore import (
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    Direction,
    InvalidInputError,
    LocalProtocolError,
    MessageContentError,
    MessageSourceError,
    RecipientsRefusedError,
    RemoteProtocolError,
    Reply,
    ReplyError,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSRequiredError,
    TranscriptEntry,
    printable,
)

if TYPE_CHECKING:
    from smtpcore.adapters.blocking import Client

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PERMANENT",
    "EXIT_TEMPORARY",
    "EXIT_USAGE",
    "EXIT_CODES_HELP",
    "Failure",
    "Target",
    "classify",
    "cli_message",
    "connection_options",
    "error_json",
    "fail",
    "print_entry",
    "reply_json",
    "split_addresses",
    "transcript_json",
    "warn",
]

#: The message was accepted (or the probe found nothing refused).
EXIT_OK: Final = 0
#: The server refused for good (5xx), or TLS/AUTH cannot work as configured.
EXIT_PERMANENT: Final = 1
#: Bad usage or configuration (click's own usage errors exit 2 too).
EXIT_USAGE: Final = 2
#: Try again later: 4xx, timeouts, connection errors.
EXIT_TEMPORARY: Final = 3
#: Interrupted with Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED: Final = 130

EXIT_CODES_HELP: Final = """\b
Exit codes:
  0    success
  1    permanent failure (5xx, TLS or AUTH impossible, bad certificate)
  2    usage or configuration error
  3    temporary failure (4xx, timeout, cannot connect) - try again later
  130  interrupted (Ctrl-C)"""

PASSWORD_ENV: Final = "SMTPCORE_AUTH_PASSWORD"


# -- errors --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """How the CLI reports one error: JSON outcome, exit code, one line."""

    outcome: str
    exit_code: int
    message: str


def _all_transient(error: RecipientsRefusedError) -> bool:
    replies = list(error.replies.values()) or [error.reply]
    return all(r.is_transient for r in replies)


#: What the library's messages call a Python argument, and what the command
#: line calls it. A user of the command line never sees ``allow_insecure_auth``.
_CLI_WORDS: Final = (
    (re.compile(r"\ballow_insecure_auth=True\b"), "--allow-insecure-auth"),
    (re.compile(r"\bquit_after=([a-z]+)"), r"--quit-after \1"),
    (re.compile(r"\brequire_all_recipients(=True)?\b"), "--require-all-recipients"),
    (re.compile(r"\bdangerously_skip_tls_verification(=True)?\b"), "--insecure"),
    (re.compile(r"\bssl_context\b"), "--ca-file"),
    (re.compile(r"\blocal_hostname\b"), "--ehlo"),
    (re.compile(r"\bauth_mechanisms\b"), "--auth-mech"),
    (re.compile(r"\(allow_controls=True lets them through\)"), "(attach the file with --attach)"),
    (re.compile(r":? use connect\(\) to probe"), ""),
)

#: ``InvalidInputError.field`` -> the option that gave the value.
_FIELD_OPTIONS: Final = {
    "sender": "--from",
    "recipient": "--to",
    "recipients": "--to",
    "local hostname": "--ehlo",
    "EHLO domain": "--ehlo",
    "timeout": "--timeout",
    "port": "--port",
    "username": "--auth-user",
    "SCRAM username": "--auth-user",
    "password": "--auth-password",
    "SCRAM password": "--auth-password",
    "allowed SASL mechanism": "--auth-mech",
    "allowed SASL mechanisms": "--auth-mech",
    "auth mechanisms": "--auth-mech",
    "ENVID": "--dsn-envid",
    "NOTIFY": "--dsn-notify",
    "RET": "--dsn-ret",
}


def cli_message(error: SMTPError) -> str:
    """An error's message in the command line's words, on one line.

    Python argument names become option names, and an invalid value says
    which option gave it (``--ehlo: invalid local hostname: ...``).
    """
    text = str(error) or type(error).__name__
    for pattern, replacement in _CLI_WORDS:
        text = pattern.sub(replacement, text)
    if isinstance(error, InvalidInputError):
        option = _FIELD_OPTIONS.get(error.field)
        if option is not None:
            text = f"{option}: {text}"
    return _one_line(text)


def classify(error: SMTPError) -> Failure:
    """Map an adapter error to its outcome, exit code and one-line message."""
    message = cli_message(error)
    permanent = ("permanent-failure", EXIT_PERMANENT)
    temporary = ("temporary-failure", EXIT_TEMPORARY)
    kind: tuple[str, int]
    if isinstance(error, RecipientsRefusedError):
        kind = temporary if _all_transient(error) else permanent
    elif isinstance(error, (ReplyError, AuthenticationError)):
        kind = temporary if error.temporary else permanent
    elif isinstance(error, (SMTPTimeoutError, ConnectionLostError)):
        kind = temporary
    elif isinstance(error, TLSError):
        if not isinstance(error, TLSRequiredError) and "CERTIFICATE_VERIFY_FAILED" in message:
            # The one TLS failure a new user meets first: a private CA or a
            # self-signed test server. Say how to fix it on the same line.
            message += " (to trust a private CA, pass it with --ca-file)"
        kind = permanent
    elif isinstance(error, (InvalidInputError, MessageSourceError)):
        kind = ("error", EXIT_USAGE)
    elif isinstance(error, (MessageContentError, ConfigurationError, RemoteProtocolError)):
        kind = permanent
    elif isinstance(error, LocalProtocolError):
        kind = ("error", EXIT_USAGE)
    else:
        kind = permanent
    return Failure(outcome=kind[0], exit_code=kind[1], message=message)


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def fail(message: str, code: int = EXIT_USAGE) -> click.exceptions.Exit:
    """Print ``smtpcore: message`` on stderr; return the exit to raise."""
    click.echo(f"smtpcore: {_one_line(message)}", err=True)
    return click.exceptions.Exit(code)


def warn(message: str) -> None:
    """A loud warning on stderr (bold yellow on a terminal)."""
    console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    console.print(Text(f"smtpcore: WARNING: {message}", style="bold yellow"))


# -- JSON ----------------------------------------------------------------------


def reply_json(reply: Reply | None) -> dict[str, Any] | None:
    """``{"code": 250, "enhanced": "2.0.0", "text": "..."}`` (text printable)."""
    if reply is None:
        return None
    lines = reply.message.split("\n")
    return {
        "code": reply.code,
        "enhanced": reply.enhanced_code,
        "text": "\n".join(printable(line) for line in lines),
    }


def error_json(error: SMTPError, failure: Failure) -> dict[str, Any]:
    """``{"type": "TLSError", "message": "...", "code": 554 | null}``."""
    code = error.code if isinstance(error, ReplyError) else None
    if isinstance(error, AuthenticationError) and error.reply is not None:
        code = error.reply.code
    return {"type": type(error).__name__, "message": failure.message, "code": code}


def transcript_json(entries: tuple[TranscriptEntry, ...]) -> list[dict[str, str]]:
    """``[{"dir": "<-", "line": "220 ..."}]`` (secrets already redacted by the core)."""
    return [{"dir": e.direction.value, "line": str(e).partition(" ")[2]} for e in entries]


def dump_json(document: Mapping[str, Any], stream: IO[str] | None = None) -> None:
    """Write one JSON document (ASCII only, so any terminal or pipe takes it)."""
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(document, indent=2) + "\n")
    out.flush()


# -- transcript ----------------------------------------------------------------


def entry_style(entry: TranscriptEntry) -> str:
    """The colour of one transcript line: client lines cyan, replies by class."""
    if entry.summary:
        return "dim"
    if entry.direction is Direction.SENT:
        return "cyan"
    first = entry.data[:1]
    if first == b"4":
        return "yellow"
    if first == b"5":
        return "bold red"
    return "green"


def print_entry(console: Console, entry: TranscriptEntry) -> None:
    """Print one transcript line (colour only when the console is a terminal)."""
    console.print(Text(str(entry), style=entry_style(entry)))


class TranscriptFollower:
    """Prints a client's transcript while the session runs.

    The adapters have no per-line callback, so a helper thread polls the
    session's transcript list (appended to by the thread doing the I/O) and
    prints what is new. A reconnect starts a new session: printing starts
    again from its first line.
    """

    def __init__(
        self,
        current: Callable[[], list[TranscriptEntry] | None],
        show: Callable[[TranscriptEntry], None],
        interval: float = 0.02,
    ) -> None:
        self._current = current
        self._show = show
        self._interval = interval
        self._seen: list[TranscriptEntry] | None = None
        self._index = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="transcript", daemon=True)

    def __enter__(self) -> TranscriptFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def poll(self) -> None:
        """Print the lines added since the last poll."""
        entries = self._current()
        if entries is None:
            return
        if entries is not self._seen:
            self._seen, self._index = entries, 0
        new = entries[self._index :]
        self._index += len(new)
        for entry in new:
            self._show(entry)


# -- addresses -----------------------------------------------------------------

# A comma outside double quotes separates addresses (RFC 5321 4.1.2 lets a
# quoted local part hold a comma: "a,b"@example.org stays one address).
_ADDRESS_ITEM = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^,"])+')


def split_addresses(
    ctx: click.Context | None, param: click.Parameter | None, values: Iterable[str]
) -> tuple[str, ...]:
    """A click callback: each value may be a comma-separated list, as in swaks
    (``--to a@example.org,b@example.org``). Spaces around the commas go."""
    addresses: list[str] = []
    for value in values:
        items = [m.group(0).strip() for m in _ADDRESS_ITEM.finditer(value)]
        items = [item for item in items if item]
        if not items:
            raise click.BadParameter(f"{value!r} holds no address", ctx=ctx, param=param)
        addresses += items
    return tuple(addresses)


# -- where to connect ----------------------------------------------------------


def parse_host_port(text: str, what: str, *, allow_zero: bool = False) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    text = text.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise click.BadParameter(
                f"{text!r} is not [address] or [address]:port", param_hint=what
            )
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, an IPv4 address or a bare IPv6 address
    if not host:
        raise click.BadParameter(f"{text!r} has no host", param_hint=what)
    if port_text is None:
        return host, None
    return host, parse_port(port_text, what, allow_zero=allow_zero)


def parse_port(text: str, what: str, *, allow_zero: bool = False) -> int:
    """A port number, 1-65535 (0 too when binding)."""
    low = 0 if allow_zero else 1
    try:
        port = int(text)
    except ValueError:
        raise click.BadParameter(f"port {text!r} is not a number", param_hint=what) from None
    if not low <= port <= 65535:
        raise click.BadParameter(f"port {port} is not in {low}-65535", param_hint=what)
    return port


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where and how to connect: the adapters' ``Client(server, port, **options)``."""

    server: str
    port: int | None
    options: dict[str, Any]
    insecure: bool
    debug: bool = False

    @property
    def address(self) -> str:
        """For messages: ``host:port``, ``[v6]:port`` or the socket path."""
        unix = self.options.get("unix_path")
        if unix:
            return str(unix)
        host = f"[{self.server}]" if ":" in self.server else self.server
        return host if self.port is None else f"{host}:{self.port}"

    def announce(self) -> None:
        """Print the --insecure warning (once per command)."""
        if self.insecure:
            warn(
                "--insecure: the server's TLS certificate is NOT verified; anyone on the "
                "path can read or change this session, including the password"
            )


F = TypeVar("F", bound=Callable[..., Any])

_TLS_HELP = (
    "none: never; opportunistic: STARTTLS when offered (default); starttls: require "
    "STARTTLS; implicit: TLS from the first byte (port 465)."
)


def connection_options(f: F) -> F:
    """The options every command that connects shares (server, TLS, AUTH...)."""
    options = [
        click.option(
            "-s",
            "--server",
            default="localhost",
            show_default=True,
            metavar="HOST[:PORT]",
            help="Server to connect to; IPv6 as [addr]:port.",
        ),
        click.option(
            "-p",
            "--port",
            type=int,
            default=None,
            metavar="PORT",
            help="Port (default 25, or 465 with --tls implicit); overrides HOST:PORT.",
        ),
        click.option(
            "--tls",
            "tls",
            type=click.Choice(["none", "opportunistic", "starttls", "implicit"]),
            default="opportunistic",
            show_default=True,
            help=_TLS_HELP,
        ),
        click.option(
            "--ca-file",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Trust the CA certificates in this PEM file (e.g. a test server's).",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Do not verify the server's certificate. Dangerous; for tests only.",
        ),
        click.option(
            "--tls-cert",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="FILE",
            help="Client certificate (PEM) to present; it may hold the key too.",
        ),
        click.option(
            "--tls-key",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="FILE",
            help="Private key (PEM) of --tls-cert, when it is in its own file.",
        ),
        click.option(
            "--tls-sni",
            default=None,
            metavar="NAME",
            help="Name to send in TLS SNI and to verify the certificate against "
            "(default: the --server host); for connecting by address.",
        ),
        click.option(
            "--tls-min-version",
            type=click.Choice(sorted(TLS_VERSIONS)),
            default="1.2",
            show_default=True,
            help="Refuse TLS versions older than this.",
        ),
        click.option("--auth-user", default=None, metavar="USER", help="Authenticate as USER."),
        click.option(
            "--auth-password",
            default=None,
            metavar="PASSWORD",
            envvar=PASSWORD_ENV,
            show_envvar=True,
            help="Password for --auth-user (prefer the environment variable or the prompt: "
            "the command line is visible to other users).",
        ),
        click.option(
            "--auth-mech",
            "auth_mechs",
            multiple=True,
            metavar="MECH",
            help="Allowed SASL mechanism (repeatable; default: the best the server offers).",
        ),
        click.option(
            "--allow-insecure-auth",
            is_flag=True,
            help="Send the password even without TLS (for local test servers).",
        ),
        click.option("--ehlo", default=None, metavar="NAME", help="Name to send with EHLO."),
        click.option("--lmtp", is_flag=True, help="Speak LMTP (RFC 2033) instead of SMTP."),
        click.option(
            "--unix",
            "unix_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Connect to this UNIX socket instead of a TCP server.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            show_default=True,
            metavar="SECONDS",
            help="Time allowed for each step (connect, each reply...).",
        ),
        click.option(
            "--bind",
            default=None,
            metavar="ADDR[:PORT]",
            help="Local address (and port) to connect from.",
        ),
        click.option(
            "--debug",
            is_flag=True,
            help="Also print every line on the wire (timestamped, passwords still redacted) "
            "and the library's DEBUG log on stderr.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def make_target(params: Mapping[str, Any], *, stdin_busy: bool = False, **extra: Any) -> Target:
    """Turn the :func:`connection_options` values into a :class:`Target`.

    ``stdin_busy`` says stdin carries the message, so no password prompt.
    """
    server, port = parse_host_port(params["server"], "--server")
    if params["port"] is not None:
        port = parse_port(str(params["port"]), "--port")
    if params["debug"]:
        start_debug_log()
    options: dict[str, Any] = {
        "tls": params["tls"],
        "timeout": params["timeout"],
        "lmtp": params["lmtp"],
        "allow_insecure_auth": params["allow_insecure_auth"],
    }
    if params["ehlo"]:
        options["local_hostname"] = params["ehlo"]
    if params["unix_path"]:
        options["unix_path"] = params["unix_path"]
    if params["bind"]:
        address, bind_port = parse_host_port(params["bind"], "--bind", allow_zero=True)
        options["bind_address"] = address
        if bind_port:
            options["bind_port"] = bind_port
    context = _ssl_context(params)
    if context is not None:
        options["ssl_context"] = context
    auth = _credentials(params, stdin_busy=stdin_busy)
    if auth is not None:
        options["auth"] = auth
    if params["auth_mechs"]:
        options["auth_mechanisms"] = tuple(m.upper() for m in params["auth_mechs"])
    options.update(extra)
    return Target(
        server=server,
        port=port,
        options=options,
        insecure=params["insecure"],
        debug=params["debug"],
    )


#: ``--tls-min-version`` values.
TLS_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

#: The options that need a context of the command's own.
_TLS_OPTIONS: Final = ("ca_file", "insecure", "tls_cert", "tls_key", "tls_sni")


class _SNIContext(ssl.SSLContext):
    """A client context that sends ``sni`` in TLS SNI, and verifies the
    certificate against it, whatever host name the adapter passes."""

    sni: str = ""

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["server_hostname"] = self.sni
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        kwargs["server_hostname"] = self.sni
        return super().wrap_bio(*args, **kwargs)


def _ssl_context(params: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS context the options ask for (None: the adapters' default,
    the system trust store and TLS >= 1.2)."""
    ca_file: str | None = params["ca_file"]
    cert: str | None = params["tls_cert"]
    key: str | None = params["tls_key"]
    sni: str | None = params["tls_sni"]
    minimum = TLS_VERSIONS[params["tls_min_version"]]
    given = [name for name in _TLS_OPTIONS if params[name]]
    if minimum is not ssl.TLSVersion.TLSv1_2:
        given.append("tls_min_version")
    if not given:
        return None
    pointless = [name for name in given if name.startswith("tls_")]
    if params["tls"] == "none" and pointless:
        option = "--" + pointless[0].replace("_", "-")
        raise click.UsageError(f"{option} needs TLS: it does nothing with --tls none")
    if key is not None and cert is None:
        raise click.UsageError("--tls-key needs --tls-cert")
    if sni is not None and (not sni or any(c.isspace() or c in "/:" for c in sni)):
        raise click.BadParameter(f"{sni!r} is not a host name", param_hint="--tls-sni")
    context: ssl.SSLContext
    if sni is None:
        context = ssl.create_default_context()
    else:
        # The settings of ssl.create_default_context() for a client, in a
        # context that sends the name the user gave.
        context = _SNIContext(ssl.PROTOCOL_TLS_CLIENT)
        context.sni = sni
        context.load_default_certs()
        if sys.version_info >= (3, 13):  # what create_default_context adds there
            context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise click.BadParameter(
                f"cannot load {ca_file!r} as PEM certificates: {exc}", param_hint="--ca-file"
            ) from None
    context.minimum_version = minimum
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            hint = "--tls-cert/--tls-key" if key is not None else "--tls-cert"
            raise click.BadParameter(
                f"cannot load the client certificate and its key: {exc}", param_hint=hint
            ) from None
    if params["insecure"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# -- --debug -------------------------------------------------------------------

#: ``--debug`` logs each transcript line here (a child of the library's logger).
WIRE_LOG: Final = logging.getLogger("smtpcore.cli.wire")


_DEBUG_HANDLER: Final = logging.StreamHandler()
_DEBUG_HANDLER.setFormatter(
    logging.Formatter("%(asctime)s.%(msecs)03d %(name)s: %(message)s", datefmt="%H:%M:%S")
)


def start_debug_log() -> None:
    """``--debug``: the library's DEBUG log, and the wire, on stderr."""
    logger = logging.getLogger("smtpcore")
    # The stream is looked up now: stderr may have been replaced (tests).
    _DEBUG_HANDLER.setStream(sys.stderr)
    if _DEBUG_HANDLER not in logger.handlers:
        logger.addHandler(_DEBUG_HANDLER)
    logger.setLevel(logging.DEBUG)
    # The wire lines come once, from the command's own transcript follower
    # (smtpcore.cli.wire), not a second time from the library's wire log.
    logging.getLogger("smtpcore.wire").setLevel(logging.INFO)


def log_wire(entry: TranscriptEntry) -> None:
    """One transcript line for ``--debug``."""
    WIRE_LOG.debug("%s", entry)


def wire_log(client: Client, debug: bool) -> contextlib.AbstractContextManager[object]:
    """``--debug``: log a blocking client's transcript lines as they happen."""
    if not debug:
        return contextlib.nullcontext()

    def current() -> list[TranscriptEntry] | None:
        session = client.session
        return None if session is None else session.transcript

    return TranscriptFollower(current, log_wire, interval=0.001)


def _credentials(params: Mapping[str, Any], *, stdin_busy: bool) -> tuple[str, str] | None:
    user, password = params["auth_user"], params["auth_password"]
    if user is None:
        if params["auth_password"] is not None and PASSWORD_ENV not in os.environ:
            raise click.UsageError("--auth-password needs --auth-user")
        return None
    if password is None:
        if stdin_busy or not sys.stdin.isatty():
            raise click.UsageError(
                f"--auth-user needs a password: set {PASSWORD_ENV}, pass --auth-password, "
                "or run on a terminal to be prompted"
            )
        password = click.prompt(f"Password for {user}", hide_input=True, err=True)
    return (user, password)
