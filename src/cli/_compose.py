"""Building the message ``smtpcore send`` submits, with the stdlib ``email`` package.

Like swaks: given only a body, the message gets From, To (and Cc), Subject
(``test <date>``), Date and Message-ID headers; ``--subject`` and ``--header``
add or replace headers; ``--attach`` turns the message into multipart/mixed
with each file as an attachment whose type ``mimetypes`` guesses, unless
``--attach-type`` gives it (and ``--attach-name`` the name it is shown with).
"""

from __future__ import annotations

import email.policy
import email.utils
import mimetypes
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Final

import click

from smtpcore import __version__

__all__ = ["DEFAULT_BODY", "Attachment", "attachments", "compose", "parse_header"]

DEFAULT_BODY: Final = "This is a test message sent by smtpcore.\n"

# RFC 5322 2.2: a field name is printable US-ASCII (33-126) except the colon.
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
# RFC 2045 5.1: type "/" subtype, each a token (no spaces, controls or tspecials).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_MIME_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")


def parse_header(text: str, option: str = "--header") -> tuple[str, str]:
    """Split ``"Name: value"``, refusing what would corrupt the message."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _FIELD_NAME.fullmatch(name):
        raise click.BadParameter(f"{text!r} is not 'Name: value'", param_hint=option)
    # RFC 5322 2.2: a header ends at CRLF; a CR or LF inside the value would
    # start a header (or the body) the user did not write.
    if "\r" in value or "\n" in value:
        raise click.BadParameter(f"the value of {name!r} contains a line break", param_hint=option)
    return name, value


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file to attach, with the type and name given on the command line
    (None: guessed from the file's name, and the file's own name)."""

    path: str
    mimetype: str | None = None
    filename: str | None = None


def attachments(
    paths: Sequence[str], types: Sequence[str] = (), names: Sequence[str] = ()
) -> list[Attachment]:
    """Pair each ``--attach`` with the ``--attach-type`` and ``--attach-name``
    of the same position (``""`` keeps the default)."""
    for option, given in (("--attach-type", types), ("--attach-name", names)):
        if len(given) > len(paths):
            raise click.BadParameter(
                f"{len(given)} given for {len(paths)} --attach: the Nth {option} goes with "
                "the Nth --attach",
                param_hint=option,
            )
    for mimetype in types:
        if mimetype and not _MIME_TYPE.fullmatch(mimetype):
            raise click.BadParameter(
                f"{mimetype!r} is not a MIME type like text/plain", param_hint="--attach-type"
            )
    for name in names:
        if any(ord(c) < 32 or c in "/\\\x7f" for c in name):
            raise click.BadParameter(
                f"{name!r} is not a plain file name (no directories, no control characters)",
                param_hint="--attach-name",
            )
    return [
        Attachment(
            path=path,
            mimetype=types[n] if n < len(types) and types[n] else None,
            filename=names[n] if n < len(names) and names[n] else None,
        )
        for n, path in enumerate(paths)
    ]


def _domain_of(address: str) -> str:
    _, _, domain = address.rpartition("@")
    return domain.strip("[]") or "localhost"


def compose(
    *,
    sender: str,
    recipients: Sequence[str],
    body: str | None,
    headers: Sequence[tuple[str, str]] = (),
    attachments: Sequence[Attachment | str] = (),
    cc: Sequence[str] = (),
) -> EmailMessage:
    """The message: default headers, the user's headers, body, attachments.

    ``recipients`` go in the To header and ``cc`` in Cc; Bcc recipients are
    in the envelope only, so they are not given here.
    """
    message = EmailMessage(policy=email.policy.SMTP)
    now = email.utils.formatdate(localtime=True)
    defaults = {
        "From": sender or "<>",
        "To": ", ".join(recipients),
        "Cc": ", ".join(cc),
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
            if name.lower() not in given and value:
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
    for item in attachments:
        _attach(message, item if isinstance(item, Attachment) else Attachment(path=item))
    return message


def _attach(message: EmailMessage, attachment: Attachment) -> None:
    path = attachment.path
    mimetype = attachment.mimetype
    if mimetype is None:
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
    filename = attachment.filename or os.path.basename(path)
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
