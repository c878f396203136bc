"""Send several messages at once over one asyncio connection.

Tasks share one ``Client``; their messages are pipelined on its connection
when the server offers PIPELINING::

    smtpcore sink --port 8025
    python examples/send_asyncio.py localhost:8025
"""

from __future__ import annotations

import asyncio
import sys

from smtpcore.adapters import asyncio as smtp

from smtpcore import SMTPError


async def main(address: str = "localhost:8025") -> int:
    host, _, port = address.rpartition(":")
    names = ["bob", "carol", "dave", "erin"]
    async with smtp.Client(host, int(port), timeout=10) as client:
        outcomes = await asyncio.gather(
            *(
                client.send_message(
                    "alice@example.com",
                    [f"{name}@example.com"],
                    message=f"Subject: hi {name}\r\n\r\nHello {name}.\r\n",
                )
                for name in names
            ),
            return_exceptions=True,
        )
    failed = 0
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, SMTPError):
            failed += 1
            print(f"{name}: failed: {outcome}")
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            print(f"{name}: accepted for {', '.join(outcome.accepted)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:])))
