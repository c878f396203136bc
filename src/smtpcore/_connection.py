"""The protocol connection: commands out, replies in, each reply bound to its command.

Theory of operation
-------------------
:class:`Connection` is the h11-style protocol layer under the session. It
knows the SMTP grammar and the ordering rules, not the policy:

* ``send(command)`` checks that the command may be sent now (the transition
  table in :mod:`smtpcore._state` and the RFC 2920 grouping rules), pushes the
  reply it expects onto a FIFO, and returns the bytes to write.
* ``send_body(data)`` passes already-encoded message data, legal only after a
  354 reply to DATA or inside a BDAT chunk (exactly the announced size).
* ``receive_data(data)`` buffers server bytes (``b""`` means EOF), and
  ``next_event()`` returns the next :class:`ReplyReceived` (bound to the
  command it answers), :class:`ServiceClosing` (an unsolicited 421),
  :class:`ConnectionClosed` (EOF) or :data:`NEED_DATA`. ``deliver(handlers,
  closing)`` is the same as a loop: each reply goes to the handler of its
  command's class (a 421 to ``closing``) before the next is read (the
  session's reply loop, one call for a whole pipelined group).

Pipelining is bookkeeping, not special cases: every command sent pushes the
reply it expects onto the FIFO and every complete reply pops one, so replies
that arrive together are all delivered, in order, to the right command.

After any protocol error the connection is dead: it raises on every call and
produces no more bytes.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, NoReturn, final

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
from ._errors import LocalProtocolError, RemoteProtocolError, Stage
from ._events import ServiceClosing
from ._replies import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES,
    DEFAULT_MAX_REPLY_SIZE,
    Reply,
    ReplyParser,
)
from ._state import REPLY_MOVES_STATE, TRANSITIONS, ConnState, next_state, state_after_reply

__all__ = [
    "NEED_DATA",
    "Pending",
    "Connection",
    "ConnectionClosed",
    "NeedData",
    "ReplyReceived",
    "ServiceClosing",
]


@final
class NeedData(enum.Enum):
    """Sentinel type: more bytes are needed before the next event."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyReceived:
    """A complete reply, bound to the command it answers.

    ``command`` is None for the server's greeting. ``tag`` is what the
    caller gave with the command (``send(command, tag)``). In LMTP mode the
    end of the data gets one reply per accepted recipient: ``index`` counts
    them and ``final`` is False until the last one.
    """

    command: Command | None
    reply: Reply
    index: int = 0
    tag: object = None
    final: bool = True


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The server closed the connection (EOF).

    ``outstanding`` names the commands whose replies never came (None stands
    for the greeting); ``partial_reply`` is True if EOF cut a reply short.
    """

    outstanding: tuple[Command | None, ...] = ()
    partial_reply: bool = False

    def describe(self) -> str:
        """A one-line description for error messages."""
        if not self.outstanding:
            return "connection closed by the server"
        names = ", ".join("greeting" if c is None else c.verb for c in self.outstanding)
        return f"connection closed by the server with replies outstanding for: {names}"


Event = ReplyReceived | ServiceClosing | ConnectionClosed

# RFC 5321 4.3.2 and RFC 4954 4: the commands with an intermediate (3yz)
# reply, and the one they get (a server that still challenges after "*" is
# left to the session, which fails the AUTH). DATA is never answered 2yz.
_INTERMEDIATE: dict[type[Command], int] = {
    Data: 354,
    Auth: 334,
    AuthResponse: 334,
    AuthCancel: 334,
}


#: Commands answered by 2yz on success and never by 3yz (RFC 5321 4.3.2).
_ANSWERED_2YZ: frozenset[type[Command]] = frozenset(
    {Ehlo, Helo, Lhlo, Mail, Rcpt, EndOfData, Bdat, Rset, Noop, Vrfy, Expn, Quit}
)


#: States every message's path tests (a module constant is much cheaper
#: than an enum member looked up on its class, on Python 3.11).
_TLS_PENDING: Final = ConnState.TLS_PENDING
_BODY: Final = ConnState.BODY


#: Where a pipelined envelope leaves the state: the table's rows for RCPT
#: after MAIL (and after RCPT: the same state) and for DATA after RCPT.
_AFTER_RCPT: Final = TRANSITIONS[(ConnState.MAIL_SENT, Rcpt)]
_AFTER_DATA: Final = TRANSITIONS[(_AFTER_RCPT, Data)]
assert TRANSITIONS[(_AFTER_RCPT, Rcpt)] is _AFTER_RCPT


#: Stand-ins for BDAT commands whose line the caller built (``push_bdat``).
_BDAT_LAST: Final = Bdat(size=0, last=True)
_BDAT_MORE: Final = Bdat(size=0, last=False)


def _can_answer(command: Command | None, code: int) -> bool:
    """Whether ``code`` can be the reply to ``command`` (None: the greeting)."""
    if code >= 400:
        return True  # refusals (and RFC 5321 3.8's 421) can answer anything
    if type(command) in _ANSWERED_2YZ:
        return code < 300
    if isinstance(command, (RawCommand, StartTLS)):
        # An extension we know nothing about; and anything but 220 to
        # STARTTLS is a refusal (RFC 3207 4) the TLS policy deals with.
        return True
    expected = None if command is None else _INTERMEDIATE.get(type(command))
    if expected is not None:
        return code == expected or (code < 300 and not isinstance(command, Data))
    return code < 300


class _Transaction:
    """One mail transaction as the connection counts it: from a MAIL to the
    next MAIL. RFC 2033 4.2: after the data, one reply per RCPT accepted *in
    that transaction* (an RSET in between starts none: the next MAIL does)."""

    __slots__ = ("accepted", "chunk_refused")

    def __init__(self) -> None:
        self.accepted = 0  # RCPTs answered positively so far
        # A BDAT chunk was refused: the server answers a later BDAT LAST
        # once (a refusal of the command), not once per recipient.
        self.chunk_refused = False


class Pending:
    """A command awaiting its reply (or replies): one entry of the FIFO.

    ``tag`` is the caller's; ``final_data`` marks the end of a message's data
    (the final dot, BDAT LAST), which LMTP answers once per accepted
    recipient of ``txn``.
    """

    __slots__ = ("command", "ends_group", "final_data", "per_recipient", "received", "tag", "txn")

    def __init__(
        self,
        command: Command | None,
        tag: object = None,
        txn: _Transaction | None = None,
        per_recipient: bool = False,
        final_data: bool = False,
    ) -> None:
        self.command = command
        self.tag = tag
        self.txn = txn
        self.per_recipient = per_recipient
        self.received = 0
        self.final_data = final_data
        # The greeting, like a command that ends a pipelined group (RFC 2920
        # 3.1), must be answered before anything more is sent.
        self.ends_group = command is None or command.ends_group

    def expected(self) -> int:
        """How many replies this command gets (LMTP: one per accepted RCPT;
        a refusal of the command itself is one reply when none was)."""
        txn = self.txn
        if self.per_recipient and txn is not None and not txn.chunk_refused:
            return txn.accepted or 1
        return 1


#: A reply handler of :meth:`Connection.deliver`: ``(pending, reply, index,
#: final)``; a true result stops the delivery.
OnReply = Callable[[Pending, Reply, int, bool], "bool | None"]


class OneHandler(dict[type[Command] | type[None], OnReply]):
    """A handler table with one handler for every command."""

    def __init__(self, handler: OnReply) -> None:
        super().__init__()
        self.handler = handler

    def __missing__(self, key: type[Command] | type[None]) -> OnReply:
        return self.handler


class _Sealed(deque[Pending]):
    """The FIFO of a connection whose writing ended (:meth:`Connection.seal`):
    a command recorded from then on never leaves, so no reply is due to it."""

    def append(self, pending: Pending) -> None:
        pass

    def extend(self, pendings: Iterable[Pending]) -> None:
        pass


@final
class Connection:
    """The SMTP client protocol layer (see the module docstring).

    Args:
        lmtp: speak LMTP (RFC 2033): LHLO, and one reply per accepted
            recipient after the data.
        max_line_length, max_lines, max_reply_size: reply parser limits.
    """

    def __init__(
        self,
        *,
        lmtp: bool = False,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_lines: int = DEFAULT_MAX_LINES,
        max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
    ) -> None:
        self.lmtp = lmtp
        self._limits = (max_line_length, max_lines, max_reply_size)
        self._parser = ReplyParser(
            max_line_length=max_line_length, max_lines=max_lines, max_reply_size=max_reply_size
        )
        # The greeting is the first reply we wait for (RFC 5321 3.1).
        self._pending: deque[Pending] = deque([Pending(None)])
        self._group_enders = 1  # pending entries whose command ends a pipelined group
        self._state = ConnState.GREETING
        self._pipelining = False
        self._bdat_remaining = 0
        self._txn = _Transaction()  # the transaction being sent (from its MAIL), for LMTP
        self._eof = False
        self._closed_reported = False
        self._error: Exception | None = None
        # Octets were buffered when the last outstanding reply was delivered.
        self._surplus = False
        self._halted = False  # the caller takes no more replies (halt())
        #: Replies handed out so far, each paired with its command.
        self.delivered = 0

    # -- inspection ------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        """Where the conversation stands on the send side."""
        return self._state

    @property
    def pipelining(self) -> bool:
        """Whether commands may be pipelined (RFC 2920); set after EHLO."""
        return self._pipelining

    @pipelining.setter
    def pipelining(self, value: bool) -> None:
        self._pipelining = value

    @property
    def outstanding(self) -> tuple[Command | None, ...]:
        """The commands still waiting for their reply, oldest first."""
        return tuple(p.command for p in self._pending)

    @property
    def waiting(self) -> bool:
        """True while some command (or the greeting) awaits its reply."""
        return bool(self._pending)

    @property
    def oldest(self) -> Command | None:
        """The command whose reply comes next (None: the greeting, or nothing)."""
        return self._pending[0].command if self._pending else None

    def waiting_stage(self) -> Stage | None:
        """The stage of the reply awaited next (the greeting's, or its
        command's), or None when no reply is awaited."""
        if not self._pending:
            return None
        command = self._pending[0].command
        return Stage.GREETING if command is None else command.stage

    @property
    def buffered(self) -> int:
        """Received octets not yet handed out in an event."""
        return self._parser.buffered

    def can_send(self) -> bool:
        """True if a new command may be sent now without breaking RFC 2920.

        Without PIPELINING only one command may be outstanding; with it, a
        command that ends a group (EHLO, DATA, VRFY, EXPN, QUIT, NOOP,
        STARTTLS, AUTH) must get its reply before anything else is sent.
        """
        if self._error is not None or self._eof:
            return False
        if not self._pending:
            return True
        return self._pipelining and self._group_enders == 0

    # -- sending ---------------------------------------------------------------

    def halt(self) -> None:
        """The caller takes no more replies: :meth:`deliver` stops after the
        handler that called this (the session closed)."""
        self._halted = True

    def seal(self, unsent: Container[object] = ()) -> None:
        """The client's writing failed: nothing more will leave.

        A reply can only answer a command the server received. The commands
        recorded from here on (what the replies still to be read prompt) are
        never written, and neither was the end of data tagged with one of
        ``unsent`` (the caller knows it lay beyond what left) nor anything
        recorded after it: none of them is waiting for a reply any more. A
        reply that comes for them answers nothing: a 421 the server sent
        unasked (RFC 5321 3.8), or the server's protocol error.
        """
        kept: list[Pending] = []
        for pending in self._pending:
            if pending.final_data and pending.tag in unsent:
                break
            kept.append(pending)
        self._pending = _Sealed(kept)
        self._group_enders = sum(p.ends_group for p in kept)

    def send(self, command: Command, tag: object = None) -> bytes:
        """Check ``command`` against the state and the grouping rules, record
        the reply it expects (with ``tag``, handed back with the reply), and
        return its bytes.

        Raises:
            LocalProtocolError: the command may not be sent now.
        """
        if type(command) is Bdat:
            assert isinstance(command, Bdat)
            self.push_bdat(command.size, command.last, tag, command)
        else:
            self.push(command, tag)
        return command.to_bytes()

    def push(self, command: Command, tag: object = None) -> None:
        """Record ``command`` as sent, as :meth:`send` does, without building
        its bytes: for a caller that built the line itself (the session's
        MAIL and RCPT lines, from addresses checked when the message was
        made). ``command`` then stands for its type, verb and stage only.
        BDAT goes through :meth:`push_bdat`.

        Raises:
            LocalProtocolError: the command may not be sent now.
        """
        cls = type(command)  # every command class is final
        if self._error is not None or self._bdat_remaining:
            self._refuse_busy(command)
        # The state table first, so that a command that is wrong in this
        # state says so (e.g. "cannot send MAIL in state GREETING"); the
        # table is read here directly, next_state() raising for a missing row.
        new_state = TRANSITIONS.get((self._state, cls)) or next_state(self._state, command)
        # can_send(), inline: this is the path of every command.
        if self._eof or (self._pending and not (self._pipelining and self._group_enders == 0)):
            self._refuse_waiting(command)
        if cls is Mail:
            # RFC 2033 4.2: the replies after the data count the RCPTs
            # accepted in this transaction, which begins with its MAIL.
            self._txn = _Transaction()
        elif cls is Lhlo:
            self.lmtp = True
        self._state = new_state
        if cls is EndOfData:
            # RFC 2033 4.2: after the final dot, one reply for each RCPT that
            # succeeded, in the order of the RCPT commands.
            self._pending.append(Pending(command, tag, self._txn, self.lmtp, True))
        else:
            self._pending.append(Pending(command, tag, self._txn))
        if command.ends_group:
            self._group_enders += 1

    def push_envelope(
        self, mail: Mail, rcpt: Rcpt, rcpts: int, data: Data | None, tag: object = None
    ) -> None:
        """Record a pipelined envelope as sent, as :meth:`push` of ``mail``,
        ``rcpts`` times ``rcpt`` and then ``data`` (when given) would: lines
        the caller built, each command standing for its kind. A transaction
        with PIPELINING goes out as one group (RFC 2920 3.1: MAIL and RCPT
        may be followed without waiting; DATA ends the group), so the checks
        that cannot change between its commands are made once.

        Raises:
            LocalProtocolError: MAIL may not be sent now, or the rest may
                not follow it without a reply (no PIPELINING; DATA with no
                RCPT before it).
        """
        if rcpts or data is not None:
            # All or nothing: nothing is recorded for a group that may not go.
            if not self._pipelining:
                self._refuse_waiting(rcpt if rcpts else data or mail)
            if not rcpts:
                next_state(ConnState.MAIL_SENT, data or mail)  # DATA needs a RCPT: raises
        self.push(mail, tag)
        queue = self._pending
        txn = self._txn
        if rcpts:
            # RFC 2033 4.2 counts the RCPTs accepted: the session's handler
            # reads each reply; a non-LMTP entry changes with none of them.
            queue.extend([Pending(rcpt, tag, txn)] * rcpts)
            self._state = _AFTER_RCPT
        if data is not None:
            self._state = _AFTER_DATA
            queue.append(Pending(data, tag, txn))
            self._group_enders += 1

    def push_bdat(
        self, size: int, last: bool, tag: object = None, command: Bdat | None = None
    ) -> None:
        """Record a BDAT command of ``size`` octets as sent (its line and
        chunk written by the caller); ``command`` is the command object when
        the caller has one.

        Raises:
            LocalProtocolError: BDAT may not be sent now.
        """
        bdat = command if command is not None else (_BDAT_LAST if last else _BDAT_MORE)
        if self._error is not None or self._bdat_remaining:
            self._refuse_busy(bdat)
        new_state = next_state(self._state, bdat)
        if self._eof or (self._pending and not (self._pipelining and self._group_enders == 0)):
            self._refuse_waiting(bdat)
        # RFC 3030 2: "BDAT ... LAST" is the final chunk; the transaction ends.
        self._state = ConnState.READY if last else new_state
        self._bdat_remaining = size
        # RFC 2033 4.2 with RFC 3030: BDAT LAST is answered per recipient.
        self._pending.append(Pending(bdat, tag, self._txn, last and self.lmtp, last))

    def _refuse_busy(self, command: Command) -> NoReturn:
        self._check_usable()
        raise LocalProtocolError(
            f"cannot send {command.verb}: {self._bdat_remaining} octets of the BDAT chunk are due"
        )

    def _refuse_waiting(self, command: Command) -> NoReturn:
        what = "a reply" if not self._pipelining else "the reply that ends the pipelined group"
        raise LocalProtocolError(f"cannot send {command.verb} while waiting for {what}")

    def send_body(self, data: bytes) -> bytes:
        """Pass encoded message data through, checking that it is due now."""
        if self._error is not None:
            self._check_usable()
        if self._state is _BODY:
            return data
        if self._bdat_remaining:
            if len(data) > self._bdat_remaining:
                raise LocalProtocolError(
                    f"BDAT chunk overrun: {len(data)} octets given, {self._bdat_remaining} due"
                )
            self._bdat_remaining -= len(data)
            return data
        if not data:
            return data
        raise LocalProtocolError(
            f"message data may only follow a 354 reply to DATA or a BDAT command "
            f"(state {self._state.name})"
        )

    # -- receiving -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server; ``b""`` signals EOF.

        Raises:
            RemoteProtocolError: bytes arrived where none may (after the 220
                to STARTTLS and before TLS is up), or the line limit is hit.
        """
        if self._error is not None:
            self._check_usable()
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data received after EOF")
        if self._state is _TLS_PENDING:
            # RFC 3207 4.2 and the STARTTLS command injection attacks (CVE-2011-0411,
            # NO STARTTLS 2021): nothing may arrive in plaintext between the 220
            # and the TLS handshake.
            self._fail(
                RemoteProtocolError(
                    "server sent data after its 220 to STARTTLS (response injection)"
                )
            )
        try:
            self._parser.feed(data)
        except RemoteProtocolError as exc:
            self._fail(exc)

    def next_event(self) -> Event | NeedData:
        """Return the next event, or :data:`NEED_DATA`.

        Raises:
            RemoteProtocolError: the server broke the protocol.
        """
        got = self.next_reply()
        if not isinstance(got, tuple):
            return got
        pending, reply, index, final = got
        return ReplyReceived(
            command=pending.command, reply=reply, index=index, tag=pending.tag, final=final
        )

    def next_reply(
        self,
    ) -> tuple[Pending, Reply, int, bool] | ServiceClosing | ConnectionClosed | NeedData:
        """:meth:`next_event` without the event object: a reply comes as
        ``(pending, reply, index, final)``, ``pending`` being the FIFO entry
        (with the caller's ``tag``), ``final`` False while more replies are
        due to the same command (LMTP).

        Raises:
            RemoteProtocolError: the server broke the protocol.
        """
        taken: list[tuple[Pending, Reply, int, bool]] = []

        def take(pending: Pending, reply: Reply, index: int, final: bool) -> bool:
            taken.append((pending, reply, index, final))
            return True  # one at a time

        other = self.deliver(OneHandler(take), take)
        return taken[0] if other is None else other

    def deliver(
        self, handlers: Mapping[type[Command] | type[None], OnReply], closing: OnReply
    ) -> ServiceClosing | ConnectionClosed | NeedData | None:
        """Hand each complete reply buffered to ``handler(pending, reply,
        index, final)``, the handler being ``handlers[type(command)]``
        (``type(None)``: the greeting) or, for a 421, ``closing``; each reply
        as :meth:`next_reply` would return it, in order and each before the
        next is read, so that what the handler does (send a command, say) is
        in place for the next. Stops when a handler returns True or after
        :meth:`halt` (then returns None), or at the first outcome that is no
        reply to a command (returned, :data:`NEED_DATA` included).

        One call for a whole pipelined group's replies: the session's loop,
        with no frame of its own between the connection and each handler.

        Raises:
            RemoteProtocolError: the server broke the protocol (after every
                reply before the fault was handed over).
        """
        queue = self._pending
        while True:
            if self._error is not None:
                self._check_usable()
            try:
                reply = self._parser.next_reply()
            except RemoteProtocolError as exc:
                self._fail(exc)
            if self._surplus:
                self._surplus = False
                if queue:
                    # The server had answered everything when these octets
                    # came, so they were sent before the command now
                    # outstanding and cannot be its reply (RFC 2920 3.1; the
                    # STARTTLS injection of RFC 3207 4.2 generalised).
                    return self._unasked(
                        reply, "server sent a reply before the command it would answer"
                    )
            if reply is None:
                return self._no_reply()
            if not queue:
                return self._unasked(reply, f"unsolicited reply: {reply.describe()}")
            self.delivered += 1
            pending = queue[0]
            command = pending.command
            code = reply.code
            cls = type(command)
            # _can_answer's common cases first, inline: every reply's path.
            if not (code >= 400 or (code < 300 and cls in _ANSWERED_2YZ)) and not _can_answer(
                command, code
            ):
                self._out_of_step(command, code)
            if pending.per_recipient:
                # RFC 2033 4.2: LMTP's end of data gets one reply per recipient.
                index = pending.received
                pending.received = index + 1
                final = code == 421 or index + 1 >= pending.expected()
            else:
                index, final = 0, True
            if final:
                queue.popleft()
                if pending.ends_group:
                    self._group_enders -= 1
                if not queue and self._parser.buffered:
                    self._surplus = True
            if cls is Rcpt and code < 300:
                # RFC 2033 4.2: LMTP's replies after the data count these.
                pending.txn.accepted += 1  # type: ignore[union-attr]
            elif code >= 400 or cls in REPLY_MOVES_STATE:
                self._after_reply(pending, reply)
            handler = handlers[cls] if code != 421 else closing
            if handler(pending, reply, index, final) or self._halted:
                return None

    def _unasked(self, reply: Reply | None, why: str) -> ServiceClosing:
        """A reply no command waits for: only 421 may come unasked (RFC 5321
        3.8: the server is closing); anything else fails with ``why``."""
        if reply is None or reply.code != 421:
            self._fail(RemoteProtocolError(why))
        self._state = ConnState.CLOSED
        return ServiceClosing(reply=reply)

    def _no_reply(self) -> ConnectionClosed | NeedData:
        """No complete reply is buffered: more is needed, or at EOF the
        connection closed (reported once)."""
        if not self._eof:
            return NEED_DATA
        if self._closed_reported:
            raise LocalProtocolError("the connection is closed")
        self._closed_reported = True
        event = ConnectionClosed(outstanding=self.outstanding, partial_reply=self._parser.in_reply)
        self._pending.clear()
        self._group_enders = 0
        self._state = ConnState.CLOSED
        return event

    def _out_of_step(self, command: Command | None, code: int) -> NoReturn:
        # An extra or a missing reply in a pipelined group (or injected bytes)
        # shows as a reply its command cannot get: from here on every reply
        # would be paired with the wrong command.
        name = "the greeting" if command is None else command.verb
        self._fail(
            RemoteProtocolError(
                f"{code} cannot answer {name} (RFC 5321 4.3.2): "
                "replies are out of step with the commands"
            )
        )

    def _after_reply(self, pending: Pending, reply: Reply) -> None:
        """What a refusal, or a reply to a command of REPLY_MOVES_STATE,
        does to the state: replies move it only where the server decides
        what comes next."""
        code = reply.code
        cls = type(pending.command)
        if cls is Bdat and code >= 400 and not pending.final_data:
            # RFC 3030 4.2: after a refused chunk the transaction has failed;
            # an LMTP server refuses the BDAT LAST already on its way once.
            pending.txn.chunk_refused = True  # type: ignore[union-attr]
        if code == 421:
            # RFC 5321 3.8: 421 to any command means the server is closing.
            self._state = ConnState.CLOSED
            return
        if cls not in REPLY_MOVES_STATE:
            return  # a refusal that leaves the state where it is
        new = state_after_reply(cls, code)
        if new is _TLS_PENDING and self._parser.buffered:
            # RFC 3207 4.2 / NO STARTTLS (USENIX Security 2021): anything
            # already buffered after the 220 was injected in plaintext.
            self._fail(
                RemoteProtocolError(
                    "server sent data after its 220 to STARTTLS (response injection)"
                )
            )
        self._state = new

    def tls_established(self) -> None:
        """Tell the connection that the TLS handshake completed.

        RFC 3207 4.2: the client must forget what it learnt before TLS and
        start again with EHLO; the parser starts from a clean buffer.
        """
        self._check_usable()
        if self._state is not ConnState.TLS_PENDING:
            raise LocalProtocolError(f"no STARTTLS is pending (state {self._state.name})")
        max_line_length, max_lines, max_reply_size = self._limits
        self._parser = ReplyParser(
            max_line_length=max_line_length, max_lines=max_lines, max_reply_size=max_reply_size
        )
        self._pipelining = False
        self._state = ConnState.HELLO

    # -- errors ----------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise LocalProtocolError(
                f"the connection is unusable after an earlier error: {self._error}"
            )

    def _fail(self, exc: RemoteProtocolError) -> NoReturn:
        self._error = exc
        self._state = ConnState.ERROR
        self._pending.clear()
        self._parser = ReplyParser()  # release the buffer
        raise exc
