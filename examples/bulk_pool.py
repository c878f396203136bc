"""Send a newsletter over a pool of connections, retrying what is retryable.

::

    smtpcore sink --port 8025 --tempfail-every 7
    python examples/bulk_pool.py localhost:8025

Every message gets its own outcome. Temporary refusals (4xx) are tried
again, a few times; a message whose status is unknown (the connection died
after its data) is reported and never resent.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from smtpcore.adapters import blocking

from smtpcore import MessageResult, SMTPError


def newsletter(count: int) -> list[dict[str, Any]]:
    return [
        {
            "sender": "news@example.com",
            "recipients": [f"reader{n}@example.com"],
            "message": f"Subject: issue 7\r\n\r\nHello reader {n}.\r\n".encode(),
        }
        for n in range(count)
    ]


def main(address: str = "localhost:8025", count: str = "40") -> int:
    host, _, port = address.rpartition(":")
    todo = newsletter(int(count))
    accepted = unknown = failed = 0
    with blocking.Pool(host, int(port), size=4, timeout=10) as pool:
        for attempt in range(4):
            outcomes = pool.send_many(todo)
            retry = []
            for item, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, MessageResult):
                    accepted += 1
                elif isinstance(outcome, SMTPError) and outcome.status_unknown:
                    unknown += 1  # may have been delivered: never resent blindly
                elif outcome.result is not None and outcome.result.retryable:
                    retry.append({**item, "recipients": list(outcome.result.retryable)})
                elif outcome.result is None and getattr(outcome, "temporary", False):
                    retry.append(item)  # e.g. 451 to the whole message
                else:
                    failed += 1
            todo = retry
            if not todo:
                break
            time.sleep(0.2 * 2**attempt)
    print(
        f"accepted {accepted}, failed {failed}, unknown {unknown}, "
        f"still failing temporarily {len(todo)}"
    )
    return 0 if not (failed or unknown or todo) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
