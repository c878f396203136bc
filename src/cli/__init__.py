"""The ``smtpcore`` command line: a swaks-class SMTP tool built on smtpcore.

Subcommands: ``send`` (one message, live transcript), ``probe`` (what a
server offers), ``bulk`` (many messages over reused connections, resumable),
``sink`` (a local test server) and ``demo`` (everything at once, no mail
server needed). ``smtpcore COMMAND --help`` documents each.

Errors are one line on stderr (``smtpcore: ...``), never a traceback; set
``SMTPCORE_DEBUG=1`` to see the traceback of an unexpected error.

``send``, ``probe`` and ``bulk`` need only the ``cli`` extra (click and
rich); ``sink`` and ``demo`` run a server and need the ``sink`` extra
(aiosmtpd and trustme). Without it they say so instead of failing.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Final

import click

from smtpcore import __version__

from . import _common as common

__all__ = ["cli", "main"]

_EPILOG = f"""\b
Examples:
  smtpcore demo                                    sink + every adapter, no setup
  smtpcore sink --port 8025                        a local test server (Ctrl-C stops)
  smtpcore send -s localhost:8025 --to you@example.org --body "hello"
  smtpcore probe -s smtp.example.com:587 --tls starttls
  smtpcore bulk ./outbox -s localhost:8025 --connections 4 --report sent.jsonl
  smtpcore bulk ./outbox --celery redis://queue:6379/0 --report sent.jsonl   (on Celery workers)

{common.EXIT_CODES_HELP}
"""


#: Subcommand name -> module defining it. Modules are imported on first use,
#: so ``smtpcore send`` does not need aiosmtpd and trustme (the sink's).
_COMMANDS: Final = {
    "send": "send",
    "probe": "probe",
    "bulk": "bulk",
    "sink": "sink",
    "demo": "demo",
}

#: Libraries only some commands need -> the extra that installs them.
_EXTRAS: Final = {"aiosmtpd": "sink", "trustme": "sink"}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = _COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in _EXTRAS:
                raise
            return _needs_extra(cmd_name, missing, _EXTRAS[missing])
        command = getattr(module, f"{module_name}_command", None) or getattr(module, cmd_name)
        assert isinstance(command, click.Command)
        return command


def _needs_extra(name: str, missing: str, extra: str) -> click.Command:
    """A stand-in for a command whose libraries are not installed: it says
    which extra to install, and exits with the usage/configuration code."""
    install = f"pip install 'smtpcore[{extra}]'"
    message = f"smtpcore {name} needs the '{extra}' extra ({missing} is not installed): {install}"

    def refuse() -> None:
        raise common.fail(message, common.EXIT_USAGE)

    return click.Command(
        name,
        callback=refuse,
        help=f"Not available here: {message}.",
        short_help=f"(not installed: {install})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(
    cls=_LazyGroup,
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="smtpcore")
def cli() -> None:
    """smtpcore: send, probe and test SMTP servers from the command line.

    Built on the smtpcore sans-IO SMTP client. Each command prints the SMTP
    conversation (passwords redacted) or, with --json, one machine-readable
    result.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the ``smtpcore`` console script)."""
    try:
        code = cli.main(args=argv, prog_name="smtpcore", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("smtpcore: interrupted", err=True)
        code = common.EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("smtpcore: interrupted", err=True)
        code = common.EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``smtpcore ... | head``): stop quietly, and
        # keep Python from complaining again while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = common.EXIT_OK
    except Exception as exc:
        if os.environ.get("SMTPCORE_DEBUG"):
            traceback.print_exc()
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        click.echo(
            f"smtpcore: internal error: {detail} (set SMTPCORE_DEBUG=1 for details)", err=True
        )
        code = common.EXIT_PERMANENT
    sys.exit(code if isinstance(code, int) else common.EXIT_OK)
