"""The adapters' loggers: what a client does, and what it says on the wire.

The library logs and never configures logging. The core does no I/O, logging
included, so the ``smtpcore`` logger's NullHandler is added here, where the
loggers are: an application that configured no logging then sees nothing,
not a warning printed on stderr by Python's last-resort handler.

* ``smtpcore.client``: each client's own story at DEBUG (connected,
  reconnecting, the session's end and why). Every record carries the
  client's ``name`` as the attribute ``smtp_client``; the message text does
  not repeat it (a format shows it with ``%(smtp_client)s``).
* ``smtpcore.wire``: each line of the conversation at DEBUG, as the core's
  transcript shows it (``-> MAIL FROM:<a@example.org>``,
  ``<- 250 2.1.0 Ok``): AUTH data, SCRAM values and secrets a server echoes
  are redacted, and message data is a one-line summary unless
  ``log_message_data`` is on. Records carry ``smtp_client`` and
  ``smtp_direction`` (``"->"`` sent, ``"<-"`` received).

The wire is logged from the session's transcript, so that a secret is
redacted in one place only. Whether it is logged is decided as each
connection starts: when ``smtpcore.wire`` is not enabled for DEBUG then, the
session keeps no transcript it was not asked for, and following it costs one
check of a flag.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Final, final

from smtpcore import Direction, Session, SessionConfig

__all__ = ["CLIENT_LOG", "WIRE_LOG", "WireLog", "client_logger"]

logging.getLogger("smtpcore").addHandler(logging.NullHandler())

#: Client-level messages, with the client's name as ``smtp_client``.
CLIENT_LOG: Final = logging.getLogger("smtpcore.client")
#: Each line of the conversation, at DEBUG.
WIRE_LOG: Final = logging.getLogger("smtpcore.wire")


def client_logger(name: str | None) -> logging.LoggerAdapter[logging.Logger]:
    """The logger a client writes to: ``smtpcore.client``, with the client's
    name (POE::Component::Client::SMTP's ``Alias``) in every record as
    ``smtp_client``."""
    # A plain LoggerAdapter sets its extra on each record and leaves the
    # message as it is.
    return logging.LoggerAdapter(CLIENT_LOG, {"smtp_client": name or "smtpcore"})


@final
class WireLog:
    """One client's lines on ``smtpcore.wire``, one session after another.

    Call :meth:`session_config` to build each session's configuration and
    :meth:`follow` whenever the session may have logged lines (after each of
    its actions).

    Args:
        client: the client's logger; its attributes (``smtp_client``) go in
            every wire record too.
    """

    __slots__ = ("_extra", "_keep", "_on", "_seen")

    def __init__(self, client: logging.LoggerAdapter[logging.Logger]) -> None:
        attributes = dict(client.extra or {})
        # Built once: the logging module only reads a record's extra.
        self._extra = {d: {**attributes, "smtp_direction": d.value} for d in Direction}
        self._on = False  # this session's lines are logged
        self._keep = False  # the caller asked for the transcript (transaction_log)
        self._seen = 0  # lines of a kept transcript logged already

    def session_config(self, config: SessionConfig) -> SessionConfig:
        """``config`` for a new session: with ``transaction_log`` on when
        ``smtpcore.wire`` is enabled for DEBUG (now, as the session starts)."""
        self._on = WIRE_LOG.isEnabledFor(logging.DEBUG)
        self._keep = config.transaction_log
        self._seen = 0
        if self._on and not self._keep:
            return dataclasses.replace(config, transaction_log=True)
        return config

    def follow(self, session: Session) -> None:
        """Log the lines ``session`` added to its transcript since the last
        call. Lines the caller did not ask to keep are dropped once logged,
        so that a long-lived connection's transcript stays empty."""
        if not self._on:
            return
        if self._keep:
            lines = session.transcript[self._seen :]
            self._seen += len(lines)
        else:
            lines = session.take_transcript()
        for entry in lines:
            WIRE_LOG.debug("%s", entry, extra=self._extra[entry.direction])
