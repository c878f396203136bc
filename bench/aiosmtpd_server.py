"""An aiosmtpd server that discards every message: ``python -m
bench.aiosmtpd_server HOST PORT``. Runs until SIGTERM (bounded by
``MAX_LIFETIME`` in any case)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP

#: The server exits by itself after this long, whatever happens to its parent.
MAX_LIFETIME = 3600.0


class _Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok: discarded"


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    server = await loop.create_server(
        # No SIZE limit: S3 sends 50 MB.
        lambda: SMTP(_Discard(), hostname="aiosmtpd", data_size_limit=None),
        host=host,
        port=port,
        backlog=1024,
    )
    async with server:
        await asyncio.wait_for(stop, MAX_LIFETIME)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    with contextlib.suppress(TimeoutError):
        asyncio.run(_serve(host, port))


if __name__ == "__main__":
    main()
