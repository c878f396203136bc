"""``smtpcore demo``: a real message through a real server, with each adapter.

Starts the :class:`~smtpcore.cli.sink.Sink` on a free loopback port with
STARTTLS and a throwaway CA, then sends one message with the blocking, the
asyncio, the trio and the anyio adapter (TLS verified against that CA), printing each
transcript and what the server stored. Needs no mail server and no network.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import importlib
import ssl
import time
from collections.abc import Callable
from typing import Any, Final

import click
from rich.console import Console
from rich.rule import Rule
from rich.text import Text
from smtpcore.adapters import SendResult

from smtpcore import SMTPError

from . import _common as common
from .sink import ReceivedMessage, Sink

__all__ = ["demo"]

ADAPTERS: Final = ("blocking", "asyncio", "trio", "anyio")
SENDER: Final = "demo@example.com"
RECIPIENT: Final = "you@example.org"
EXCERPT_LINES: Final = 6

_EPILOG = """\b
Example:
  smtpcore demo           exit status 0 when every adapter delivered its message

\b
Then try the pieces yourself:
  smtpcore sink --port 0 --starttls
  smtpcore send -s 127.0.0.1:PORT --tls starttls --ca-file CA.pem --to you@example.org
"""


def _message(adapter: str) -> email.message.EmailMessage:
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"smtpcore demo <{SENDER}>"
    message["To"] = RECIPIENT
    message["Subject"] = f"Hello from the smtpcore {adapter} adapter"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain="example.com")
    message.set_content(
        f"This message was sent by smtpcore's {adapter} adapter over STARTTLS,\n"
        "verified against the sink's throwaway certificate authority.\n"
        "The sans-IO core made every protocol decision; the adapter only moved bytes.\n"
    )
    return message


def _send_with(adapter: str, **kwargs: Any) -> SendResult | None:
    """Run the adapter's ``send`` (awaiting it on its own event loop)."""
    module = importlib.import_module(f"smtpcore.adapters.{adapter}")
    send: Callable[..., Any] = module.send
    if adapter == "blocking":
        result: SendResult | None = send(**kwargs)
        return result
    if adapter == "asyncio":
        import asyncio

        return asyncio.run(send(**kwargs))  # type: ignore[no-any-return]
    if adapter == "anyio":
        import anyio

        async def run_anyio() -> SendResult | None:
            return await send(**kwargs)  # type: ignore[no-any-return]

        return anyio.run(run_anyio)  # on asyncio, anyio's default
    import trio

    async def run() -> SendResult | None:
        return await send(**kwargs)  # type: ignore[no-any-return]

    return trio.run(run)


def _show_stored(console: Console, message: ReceivedMessage) -> None:
    console.print(
        Text(
            f"stored by the sink: #{message.number} from <{message.mail_from}> to "
            f"{', '.join(message.rcpt_tos)}, {message.size} octets"
            f"{', over TLS' if message.tls else ''}",
            style="bold",
        )
    )
    head, _, body = message.data.partition(b"\r\n\r\n")
    for line in head.decode("utf-8", "replace").split("\r\n"):
        console.print(Text(f"  | {line}", style="dim"))
    console.print(Text("  |", style="dim"))
    lines = body.decode("utf-8", "replace").rstrip("\r\n").split("\r\n")
    for line in lines[:EXCERPT_LINES]:
        console.print(Text(f"  | {line}", style="dim"))


@click.command(epilog=_EPILOG)
@click.option(
    "--adapter",
    "adapters",
    multiple=True,
    type=click.Choice(ADAPTERS),
    help="Only this adapter (repeatable; default: all four).",
)
@click.pass_context
def demo(ctx: click.Context, /, adapters: tuple[str, ...]) -> None:
    """Send a real message through a local server with each adapter.

    Starts an in-process SMTP server (aiosmtpd) on a free loopback port with
    STARTTLS and a throwaway certificate authority, then sends one message
    with the blocking, asyncio, trio and anyio adapters, showing each SMTP
    conversation and what the server stored. No mail server needed.
    """
    console = Console(highlight=False, soft_wrap=True, markup=False)
    chosen = adapters or ADAPTERS
    outcomes: dict[str, str] = {}
    with Sink(starttls=True) as sink:
        console.print(
            Text(
                f"smtpcore sink listening on {sink.address} with STARTTLS; "
                f"its throwaway CA is {sink.ca_pem_path}",
                style="bold",
            )
        )
        for adapter in chosen:
            console.print(Rule(f"{adapter} adapter"))
            before = len(sink.messages)
            context: ssl.SSLContext = sink.client_ssl_context()
            start = time.perf_counter()
            try:
                result = _send_with(
                    adapter,
                    sender=SENDER,
                    recipients=[RECIPIENT],
                    message=_message(adapter),
                    server="127.0.0.1",
                    port=sink.port,
                    tls="starttls",
                    ssl_context=context,
                    local_hostname="demo.example.com",
                    transaction_log=True,
                    timeout=10,
                )
            except ImportError as exc:
                console.print(
                    Text(
                        f"{adapter}: skipped: the adapter cannot be imported ({exc})",
                        style="yellow",
                    )
                )
                outcomes[adapter] = "skipped"
                continue
            except SMTPError as exc:
                click.echo(f"smtpcore: {adapter}: {common.classify(exc).message}", err=True)
                outcomes[adapter] = "FAILED"
                continue
            took = time.perf_counter() - start
            assert result is not None
            for entry in result.transcript or ():
                common.print_entry(console, entry)
            stored = sink.messages[before:]
            if not stored:
                click.echo(f"smtpcore: {adapter}: the sink stored nothing", err=True)
                outcomes[adapter] = "FAILED"
                continue
            _show_stored(console, stored[-1])
            final = result.result.reply.describe() if result.result.reply else "?"
            console.print(Text(f"{adapter}: accepted ({final}) in {took:.3f}s", style="green"))
            outcomes[adapter] = "ok"
    console.print(Rule("summary"))
    for adapter, outcome in outcomes.items():
        style = "green" if outcome == "ok" else "yellow" if outcome == "skipped" else "bold red"
        console.print(Text(f"{adapter:<9} {outcome}", style=style))
    failed = [a for a, o in outcomes.items() if o == "FAILED"]
    ctx.exit(common.EXIT_PERMANENT if failed else common.EXIT_OK)
