"""The ``smtpcore`` command line: a swaks-class SMTP tool built on smtpcore.

Subcommands: ``send`` (one message, live transcript), ``probe`` (what a
server offers), ``bulk`` (many messages over reused connections, resumable),
``sink`` (a local test server) and ``demo`` (everything at once, no mail
server needed). ``smtpcore COMMAND --help`` documents each.

Errors are one line on stderr (``smtpcore: ...``), never a traceback; set
``SMTPCORE_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from smtpcore import __version__

from . import _common as common

__all__ = ["cli", "main"]

_EPILOG = f"""\b
Examples:
  smtpcore demo                                    sink + all three adapters, no setup
  smtpcore sink --port 8025                        a local test server (Ctrl-C stops)
  smtpcore send -s localhost:8025 --to you@example.org --body "hello"
  smtpcore probe -s smtp.example.com:587 --tls starttls
  smtpcore bulk ./outbox -s localhost:8025 --connections 4 --report sent.jsonl

{common.EXIT_CODES_HELP}
"""


@click.group(
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


def _register() -> None:
    # Imported here so that ``smtpcore --help`` stays quick and a broken
    # optional dependency names itself in one line.
    from .bulk import bulk
    from .demo import demo
    from .probe import probe
    from .send import send
    from .sink import sink_command

    for command in (send, probe, bulk, sink_command, demo):
        cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the ``smtpcore`` console script)."""
    try:
        _register()
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
