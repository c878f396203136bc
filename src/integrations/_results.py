"""Each message's outcome as plain JSON, and what it means for a retry.

A message sent through a pool ends as a :class:`smtpcore.MessageResult` (the
server took it, for at least one recipient) or an :class:`smtpcore.SMTPError`
(with, for a message that reached the server, its ``result`` recipient by
recipient). :func:`status_of` sorts either into one of four statuses, and
:func:`outcome_json` writes it as a JSON object that a result backend, a
report or another language can read::

    {"key": "<id@example.org>", "status": "accepted",
     "accepted": ["ann@example.org"], "refused": [], "unknown": [], "not_sent": [],
     "reply": {"code": 250, "enhanced": "2.0.0", "text": "queued as 4F2A"},
     "error": null, "attempts": 1, "replayed": false}

``refused`` lists ``{"recipient", "code", "enhanced", "text"}`` objects; every
text is made printable (control characters and undecodable octets escaped).
"""

from __future__ import annotations

import enum
from typing import Any

from smtpcore import (
    AuthenticationError,
    ConnectionLostError,
    MessageResult,
    RecipientState,
    Reply,
    ReplyError,
    SMTPError,
    SMTPTimeoutError,
    printable,
)

__all__ = ["Status", "error_json", "outcome_json", "reply_json", "status_of"]


class Status(enum.Enum):
    """What became of a message, as far as a retry is concerned.

    * ``ACCEPTED``: the server took it for at least one recipient (those it
      refused are listed with their replies). Never sent again.
    * ``REFUSED``: refused for good (5xx), or it could not be sent as given
      (a bad address, a TLS or AUTH failure). Never sent again as it is.
    * ``TEMPORARY``: refused for now (4xx), or not sent at all (the
      connection failed before its data): worth another try.
    * ``UNKNOWN``: its end of data may have reached the server and no final
      reply came back (RFC 5321 4.5.3.2.6), or the attempt that sent it was
      lost. The server may have queued it: never resent automatically.
    """

    ACCEPTED = "accepted"
    REFUSED = "refused"
    TEMPORARY = "temporary"
    UNKNOWN = "unknown"


def _from_recipients(result: MessageResult) -> Status | None:
    """The status the recipients' states decide, if they decide one."""
    states = {r.state for r in result.recipients}
    if RecipientState.ACCEPTED in states:
        return Status.ACCEPTED
    if RecipientState.UNKNOWN in states:
        return Status.UNKNOWN
    refused = [r for r in result.recipients if r.state is RecipientState.REFUSED]
    if refused:
        # Worth another try only if no refusal was permanent.
        if all(r.reply is not None and r.reply.is_transient for r in refused):
            return Status.TEMPORARY
        return Status.REFUSED
    return None  # nothing was sent to anyone: the error says why


def status_of(outcome: MessageResult | SMTPError) -> Status:
    """The status of one message's outcome."""
    if isinstance(outcome, MessageResult):
        return _from_recipients(outcome) or Status.REFUSED
    if outcome.status_unknown:
        return Status.UNKNOWN
    if outcome.result is not None:
        decided = _from_recipients(outcome.result)
        if decided is not None:
            return decided
    # The message never went to anyone: sending it again cannot duplicate
    # it, but only a transient cause makes that useful (a bad certificate
    # or a refused login fails the same way next time).
    if isinstance(outcome, (ConnectionLostError, SMTPTimeoutError)):
        return Status.TEMPORARY
    if isinstance(outcome, (ReplyError, AuthenticationError)) and outcome.temporary:
        return Status.TEMPORARY
    return Status.REFUSED


def reply_json(reply: Reply | None) -> dict[str, Any] | None:
    """``{"code": 250, "enhanced": "2.0.0", "text": "..."}`` (text printable)."""
    if reply is None:
        return None
    return {
        "code": reply.code,
        "enhanced": reply.enhanced_code,
        "text": "\n".join(printable(line) for line in reply.message.split("\n")),
    }


def error_json(error: BaseException) -> dict[str, Any]:
    """``{"type": "ConnectionLostError", "message": "..."}`` (printable, one line)."""
    return {"type": type(error).__name__, "message": printable(" ".join(str(error).split()))}


def outcome_json(
    outcome: MessageResult | SMTPError, *, key: str, attempts: int, status: Status | None = None
) -> dict[str, Any]:
    """One message's outcome as a JSON object (see the module's docstring)."""
    status = status or status_of(outcome)
    result = outcome if isinstance(outcome, MessageResult) else outcome.result
    reply: Reply | None = None
    error: dict[str, Any] | None = None
    if isinstance(outcome, SMTPError):
        error = error_json(outcome)
        reply = getattr(outcome, "reply", None)
    if reply is None and result is not None:
        reply = result.reply
    where: dict[RecipientState, list[str]] = {state: [] for state in RecipientState}
    refused: list[dict[str, Any]] = []
    for rcpt in result.recipients if result is not None else ():
        if rcpt.state is RecipientState.REFUSED:
            refused.append({"recipient": rcpt.recipient, **(reply_json(rcpt.reply) or {})})
        else:
            where[rcpt.state].append(rcpt.recipient)
    return {
        "key": key,
        "status": status.value,
        "accepted": where[RecipientState.ACCEPTED],
        "refused": refused,
        "unknown": where[RecipientState.UNKNOWN],
        "not_sent": where[RecipientState.NOT_SENT],
        "reply": reply_json(reply),
        "error": error,
        "attempts": attempts,
        "replayed": False,
    }
