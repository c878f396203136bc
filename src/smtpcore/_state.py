"""The send-side state of an SMTP client connection, as a transition table.

Theory of operation
-------------------
The client moves the state when it *sends* a command (so that pipelined
commands are checked in the order they go out), and a few replies move it
where only the server can decide what comes next: the greeting (220 or not),
354 to DATA, 334 to AUTH, 220 to STARTTLS, 421 to anything. Every send-driven
move is a row of ``TRANSITIONS``, keyed by (state, command type); a missing
key is a precise :class:`LocalProtocolError`. Every reply-driven move is a
row of ``_REPLY_TRANSITIONS``, keyed by (command type, whether the reply is
the one that lets the conversation go on); the greeting's command type is
``NoneType``.

States::

    GREETING --220--> HELLO --EHLO/HELO/LHLO--> READY --MAIL--> MAIL_SENT --RCPT--> RCPT_SENT
                 \\--other--> REFUSED (QUIT only)     |                               |
    READY --STARTTLS--> STARTTLS_SENT --220--> TLS_PENDING --(tls_established)--> HELLO
    READY --AUTH--> AUTH_SENT --334--> AUTH_CONTINUE --continuation/*--> AUTH_SENT
    RCPT_SENT --DATA--> DATA_SENT --354--> BODY --end of data--> READY
    RCPT_SENT --BDAT--> BDAT --BDAT LAST--> READY
    any session state --QUIT--> CLOSING;  --RSET--> READY
"""

from __future__ import annotations

import enum

from ._commands import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Lhlo,
    Mail,
    Noop,
    Quit,
    RawCommand,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
)
from ._errors import LocalProtocolError

__all__ = ["TRANSITIONS", "ConnState", "next_state", "state_after_reply"]


class ConnState(enum.Enum):
    """Where the conversation stands, as far as the client has sent."""

    # Members are singletons compared by identity, so identity hashing is
    # equivalent to Enum's own (a hash of the name, run as Python code on
    # every lookup of the transition table).
    __hash__ = object.__hash__

    GREETING = enum.auto()  # waiting for the 220 greeting
    REFUSED = enum.auto()  # the greeting was not 220: only QUIT is allowed
    HELLO = enum.auto()  # EHLO/HELO/LHLO must come first
    READY = enum.auto()  # between transactions
    STARTTLS_SENT = enum.auto()
    TLS_PENDING = enum.auto()  # 220 to STARTTLS received, handshake not done
    AUTH_SENT = enum.auto()
    AUTH_CONTINUE = enum.auto()  # 334 received: a continuation line is due
    MAIL_SENT = enum.auto()
    RCPT_SENT = enum.auto()
    DATA_SENT = enum.auto()  # waiting for 354
    BODY = enum.auto()  # 354 received: message data, then the final dot
    BDAT = enum.auto()  # inside a BDAT transaction, before BDAT LAST
    CLOSING = enum.auto()  # QUIT sent
    CLOSED = enum.auto()
    ERROR = enum.auto()


S = ConnState

# Commands that do not change the state and are allowed wherever a session is
# established (RFC 5321 4.1.4: NOOP, VRFY, EXPN "may be issued at any time").
_ANYTIME: tuple[type[Command], ...] = (Noop, Vrfy, Expn, RawCommand)
_SESSION_STATES = (S.HELLO, S.READY, S.MAIL_SENT, S.RCPT_SENT, S.BDAT)

TRANSITIONS: dict[tuple[ConnState, type[Command]], ConnState] = {
    # RFC 5321 3.1 / 4.1.4: the session starts with EHLO (or HELO); RFC 2033: LHLO.
    (S.HELLO, Ehlo): S.READY,
    (S.HELLO, Helo): S.READY,
    (S.HELLO, Lhlo): S.READY,
    # RFC 5321 4.1.4: EHLO may be sent again later; it resets the transaction.
    (S.READY, Ehlo): S.READY,
    (S.READY, Helo): S.READY,
    (S.READY, Lhlo): S.READY,
    (S.READY, StartTLS): S.STARTTLS_SENT,
    (S.READY, Auth): S.AUTH_SENT,
    # RFC 4954 4: after a 334, the client sends a continuation line or "*".
    (S.AUTH_CONTINUE, AuthResponse): S.AUTH_SENT,
    (S.AUTH_CONTINUE, AuthCancel): S.AUTH_SENT,
    # RFC 5321 3.3: MAIL starts a transaction, RCPT follows, then DATA.
    (S.READY, Mail): S.MAIL_SENT,
    (S.MAIL_SENT, Rcpt): S.RCPT_SENT,
    (S.RCPT_SENT, Rcpt): S.RCPT_SENT,
    (S.RCPT_SENT, Data): S.DATA_SENT,
    # RFC 3030 2: BDAT replaces DATA; BDAT LAST ends the transaction.
    (S.RCPT_SENT, Bdat): S.BDAT,
    (S.BDAT, Bdat): S.BDAT,
    (S.BODY, EndOfData): S.READY,
    # RFC 5321 3.5.2 / 4.1.1.10: QUIT at any time, and after a refused greeting.
    (S.REFUSED, Quit): S.CLOSING,
    # After a refused greeting, RSET/NOOP keep the server talking (RFC 5321 3.1).
    (S.REFUSED, Noop): S.REFUSED,
    (S.REFUSED, Rset): S.REFUSED,
    # RFC 5321 4.1.1.5: RSET aborts any transaction.
    (S.HELLO, Rset): S.HELLO,
}
for _state in _SESSION_STATES:
    TRANSITIONS[(_state, Quit)] = S.CLOSING
    for _cls in _ANYTIME:
        TRANSITIONS[(_state, _cls)] = _state
    if _state is not S.HELLO:
        TRANSITIONS[(_state, Rset)] = S.READY
del _state, _cls


#: The reply that lets the conversation go on, per command whose reply moves
#: the state (RFC 5321 3.1 and 4.1.1.4, RFC 4954 4, RFC 3207 4).
_GO_CODES: dict[type[Command] | type[None], int] = {
    type(None): 220,  # the greeting
    Data: 354,
    Auth: 334,
    AuthResponse: 334,
    AuthCancel: 334,
    StartTLS: 220,
    Quit: 221,
}

_REPLY_TRANSITIONS: dict[tuple[type[Command] | type[None], bool], ConnState] = {
    # RFC 5321 3.1 / 4.3.1: only a 220 greeting opens the session; after a
    # 554 the client may only send QUIT.
    (type(None), True): S.HELLO,
    (type(None), False): S.REFUSED,
    # RFC 5321 4.1.1.4: message data follows a 354 only.
    (Data, True): S.BODY,
    (Data, False): S.RCPT_SENT,
    # RFC 4954 4: 334 asks for a continuation line; anything else ends AUTH.
    (Auth, True): S.AUTH_CONTINUE,
    (Auth, False): S.READY,
    (AuthResponse, True): S.AUTH_CONTINUE,
    (AuthResponse, False): S.READY,
    (AuthCancel, True): S.READY,  # a server that still challenges: the session stops
    (AuthCancel, False): S.READY,
    # RFC 3207 4: 220 means the handshake comes next; anything else refuses TLS.
    (StartTLS, True): S.TLS_PENDING,
    (StartTLS, False): S.READY,
    # RFC 5321 4.1.1.10: after QUIT the server closes, whatever it said.
    (Quit, True): S.CLOSED,
    (Quit, False): S.CLOSED,
}

#: The command types whose reply moves the state.
REPLY_MOVES_STATE: frozenset[type[Command] | type[None]] = frozenset(_GO_CODES)


def state_after_reply(command_type: type[Command] | type[None], code: int) -> ConnState:
    """The state after a reply ``code`` to a command of ``command_type``
    (one of :data:`REPLY_MOVES_STATE`); 421 is the caller's (RFC 5321 3.8)."""
    return _REPLY_TRANSITIONS[command_type, code == _GO_CODES[command_type]]


def next_state(state: ConnState, command: Command) -> ConnState:
    """The state after sending ``command`` in ``state``.

    Raises:
        LocalProtocolError: the command is not allowed in this state.
    """
    new = TRANSITIONS.get((state, type(command)))
    if new is None:
        raise LocalProtocolError(f"cannot send {command.verb} in state {state.name}")
    if isinstance(command, Bdat) and command.last:
        # RFC 3030 2: "BDAT ... LAST" is the final chunk; the transaction ends.
        return S.READY
    return new
