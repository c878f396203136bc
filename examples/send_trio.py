"""Send messages from a trio nursery, with callbacks instead of exceptions.

Needs ``pip install 'smtpcore[trio]'``::

    smtpcore sink --port 8025
    python examples/send_trio.py localhost:8025

Like POE::Component::Client::SMTP's ``SMTP_Success`` and ``SMTP_Failure``,
the callbacks get back a context of yours.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
from smtpcore.adapters import SendResult
from smtpcore.adapters import trio as smtp

from smtpcore import SMTPError, TranscriptEntry

outcomes: dict[str, str] = {}


def on_success(context: Any, sent: SendResult) -> None:
    outcomes[context] = "accepted for " + ", ".join(sent.accepted)


def on_failure(
    context: Any,
    error: SMTPError,
    transcript: tuple[TranscriptEntry, ...] | None,
    description: str,
) -> None:
    outcomes[context] = f"failed: {description}"


async def main(address: str) -> int:
    host, _, port = address.rpartition(":")

    async def notify(order: int) -> None:
        await smtp.send(
            "shop@example.com",
            [f"customer{order}@example.com"],
            message=f"Subject: order {order}\n\nYour order {order} has shipped.\n",
            server=host,
            port=int(port),
            timeout=10,
            context=f"order-{order}",
            on_success=on_success,
            on_failure=on_failure,
        )

    async with trio.open_nursery() as nursery:
        for order in range(1, 4):
            nursery.start_soon(notify, order)
    for context, outcome in sorted(outcomes.items()):
        print(f"{context}: {outcome}")
    return 0 if all(o.startswith("accepted") for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "localhost:8025"))
