"""Send one message with the blocking adapter, and say what became of it.

Start a local server first (``pip install 'smtpcore[sink]'``)::

    smtpcore sink --port 8025
    python examples/send_blocking.py localhost:8025

The TLS policy is the default, ``opportunistic``: STARTTLS when the server
offers it, with the certificate verified (trust a test server's CA with
``SSL_CERT_FILE=ca.pem``).
"""

from __future__ import annotations

import sys
from email.message import EmailMessage

from smtpcore.adapters import blocking

from smtpcore import SMTPError


def main(address: str = "localhost:8025") -> int:
    host, _, port = address.rpartition(":")
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "bob@example.com, carol@example.com"
    message["Subject"] = "Hello from smtpcore"
    message.set_content("Sent by examples/send_blocking.py.")
    try:
        sent = blocking.send(message=message, server=host, port=int(port), timeout=10)
    except SMTPError as exc:
        # status_unknown: the message may have arrived; do not resend blindly.
        print(f"failed: {exc}", file=sys.stderr)
        return 3 if exc.status_unknown else 1
    assert sent is not None
    for status in sent.result.recipients:
        reply = status.reply.describe() if status.reply is not None else "no reply"
        print(f"{status.recipient}: {status.state.value} ({reply})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
