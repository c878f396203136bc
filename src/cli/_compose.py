"""Building the message ``smtpcore send`` submits, with the stdlib ``email`` package.

Like swaks: given only a body, the message gets From, To, Subject
(``test <date>``), Date and Message-ID headers; ``--header`` adds or replaces
headers; ``--attach`` turns the message into multipart/mixed with each file
as an attachment whose type ``mimetypes`` guesses.
"""

from __future__ import annotations

import email.policy
import email.utils
import mimetypes
import os
import re
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Final

import click

from smtpcore import __version__

__all__ = ["DEFAULT_BODY", "compose", "parse_header"]

DEFAULT_BODY: Final = "This is a test message sent by smtpcore.\n"

# RFC 5322 2.2: a field name is printable US-ASCII (33-126) except the colon.
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")


def parse_header(text: str) -> tuple[str, str]:
    """Split ``"Name: value"``, refusing what would corrupt the message."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _FIELD_NAME.fullmatch(name):
        raise click.BadParameter(f"{text!r} is not 'Name: value'", param_hint="--header")
    # RFC 5322 2.2: a header ends at CRLF; a CR or LF inside the value would
    # start a header (or the body) the user did not write.
    if "\r" in value or "\n" in value:
        raise click.BadParameter(
            f"the value of {name!r} contains a line break", param_hint="--header"
        )
    return name, value


def _domain_of(address: str) -> str:
    _, _, domain = address.rpartition("@")
    return domain.strip("[]") or "localhost"


def compose(
    *,
    sender: str,
    recipients: Sequence[str],
    body: str | None,
    headers: Sequence[tuple[str, str]] = (),
    attachments: Sequence[str] = (),
) -> EmailMessage:
    """The message: default headers, the user's headers, body, attachments."""
    message = EmailMessage(policy=email.policy.SMTP)
    now = email.utils.formatdate(localtime=True)
    defaults = {
        "From": sender or "<>",
        "To": ", ".join(recipients),
        "Subject": f"test {now}",
        "Date": now,
        # make_msgid() without a domain asks DNS for this host's name: slow,
        # and it leaks the name. The sender's domain is what MUAs use.
        "Message-ID": email.utils.make_msgid(domain=_domain_of(sender)),
        "X-Mailer": f"smtpcore {__version__}",
    }
    given = {name.lower() for name, _ in headers}
    text = DEFAULT_BODY if body is None else body
    if not text.endswith("\n"):
        text += "\n"
    try:
        for name, value in defaults.items():
            if name.lower() not in given:
                message[name] = value
        # Quoted-printable keeps non-ASCII text 7-bit: it then needs no 8BITMIME.
        message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
        replaced: set[str] = set()
        for name, value in headers:
            # The first --header of a name replaces the generated one (even
            # Content-Type); repeating a name adds more fields of that name.
            if name.lower() not in replaced:
                del message[name]
                replaced.add(name.lower())
            message[name] = value
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(f"cannot use header: {exc}", param_hint="--header") from None
    for path in attachments:
        _attach(message, path)
    return message


def _attach(message: EmailMessage, path: str) -> None:
    mimetype, encoding = mimetypes.guess_type(path)
    if mimetype is None or encoding is not None:
        # A compressed file (encoding "gzip"...) is opaque bytes to a reader.
        mimetype = "application/octet-stream"
    maintype, _, subtype = mimetype.partition("/")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path!r}: {exc.strerror}", param_hint="--attach"
        ) from None
    message.add_attachment(
        data, maintype=maintype, subtype=subtype, filename=os.path.basename(path)
    )
