"""A reference model of an SMTP or LMTP server: bytes in, bytes out, no sockets.

The model keeps a mail transaction the way real MTAs do, and records what it
*queued* (took responsibility for), so that a test can compare what a client
reports against what actually happened on the server.

Theory of operation
-------------------
The model reads its input in order, whatever arrives in one ``feed()`` (a
real server's view of a pipelined client), in one of three framings:
command lines, DATA lines (dot-terminated, unstuffed), or a BDAT chunk of
exactly ``n`` octets. Replies accumulate in the output (``take_output()``).

The transaction is ``None`` (no MAIL) or a :class:`_Transaction`: its sender,
the recipients accepted so far and the data received so far. It ends with
the end of the data (RFC 5321 4.1.1.4: whatever the reply), RSET, EHLO/LHLO,
or, in the POSTFIX variant, with a refused DATA or BDAT. The EXIM and
DOVECOT variants keep it after such a refusal (Exim 4.96 answers ``503 Valid
RCPT command must precede BDAT`` and keeps the MAIL; Dovecot LMTP keeps the
transaction until RSET), and answer a MAIL inside an open transaction with
``503 5.5.1 sender already given``, keeping the transaction: the RCPTs that
follow join it.

LMTP replies follow RFC 2033 4.2 and Dovecot's lib-smtp: the end of the data
(final dot, BDAT LAST) gets one reply per accepted recipient, and so does a
BDAT LAST refused for the message; a refusal for the state of the
transaction (no MAIL, a previous chunk failed) is one reply; and in the
DOVECOT variant a non-empty BDAT LAST with no accepted recipient gets *no*
reply at all ("the BDAT LAST command returns zero replies"), where DATA gets
503.

What the model decides is scripted by a :class:`Policy` (refusals per
sender, recipient, message tag) and at most one :class:`Fault` (421, EOF,
silence or a malformed reply at a chosen point). After the fault the model
answers nothing and queues nothing, but it keeps *reading* what the client
sends (a "dead" parse, no side effects but bookkeeping), so that it knows
which ends of data went out unanswered: only those may leave a message's
fate unknown to the client.

Every reply carries a serial number in its text (``[#17]``): a test can find
out exactly which reply the client attached to which recipient
(:meth:`ModelServer.reply`). Each message a test sends carries a tag header
(:data:`TAG_HEADER`) which the model uses to key end-of-data refusals and
which a test uses to attribute queued copies to messages.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

__all__ = [
    "MALFORMED_REPLY",
    "TAG_HEADER",
    "DataEnd",
    "Failure",
    "Fault",
    "Features",
    "ModelServer",
    "Policy",
    "Queued",
    "ReplyKind",
    "SentReply",
    "Trigger",
    "Variant",
    "reply_serial",
    "tag_of",
]

#: The header a test puts in each message so the model (and the test) can
#: tell messages apart in queued data: ``X-Model-Tag: m3``.
TAG_HEADER: Final = b"X-Model-Tag"
_TAG_RE: Final = re.compile(rb"^X-Model-Tag: ([!-~]+)\r$", re.MULTILINE)
_SERIAL_RE: Final = re.compile(r"\[#(\d+)\]")
#: The broken final reply of a MALFORMED fault: a multi-line reply whose code
#: changes (RFC 5321 4.2.1: every line of a reply carries the same code).
MALFORMED_REPLY: Final = b"250-2.0.0 queued\r\n550 5.0.0 or not\r\n"
_HOST: Final = "model.test"


def tag_of(data: bytes) -> str | None:
    """The message tag in ``data`` (its :data:`TAG_HEADER`), if any."""
    match = _TAG_RE.search(data)
    return None if match is None else match.group(1).decode("ascii")


def reply_serial(text: str) -> int | None:
    """The serial number the model put in a reply's text, if any."""
    match = _SERIAL_RE.search(text)
    return None if match is None else int(match.group(1))


# -- configuration -------------------------------------------------------------------------


class Variant(enum.Enum):
    """How the model treats a transaction after a refused DATA or BDAT."""

    EXIM = "exim"  # keeps it (and 503 to MAIL inside it)
    DOVECOT = "dovecot"  # LMTP; keeps it until RSET
    POSTFIX = "postfix"  # resets it

    @property
    def keeps_transaction(self) -> bool:
        """True when a refused DATA/BDAT leaves the transaction open."""
        return self is not Variant.POSTFIX


@dataclass(frozen=True, kw_only=True)
class Features:
    """What the model speaks and advertises."""

    lmtp: bool = False
    pipelining: bool = True
    chunking: bool = True
    eightbitmime: bool = True
    size: int | None = 10_000_000
    dsn: bool = False
    smtputf8: bool = False
    enhanced: bool = True

    def keywords(self) -> list[str]:
        """The EHLO/LHLO keywords, in the order a server lists them."""
        words = []
        if self.pipelining:
            words.append("PIPELINING")
        if self.chunking:
            words.append("CHUNKING")
        if self.eightbitmime:
            words.append("8BITMIME")
        if self.size is not None:
            words.append(f"SIZE {self.size}")
        if self.dsn:
            words.append("DSN")
        if self.smtputf8:
            words.append("SMTPUTF8")
        if self.enhanced:
            words.append("ENHANCEDSTATUSCODES")
        return words


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The model's decisions, all deterministic.

    Attributes:
        rcpt: recipient -> RCPT reply code (default 250). 452 and 552 are
            "too many recipients" (4.5.3 / 5.5.3, RFC 5321 4.5.3.1.10).
        rcpt_limit: recipients accepted per transaction; RCPTs after that
            many get ``limit_code``.
        limit_code: 452 (``452 4.5.3``) or 552 (``552 5.5.3``).
        mail: sender -> MAIL refusal code.
        data_command: sender -> refusal code for DATA and every BDAT of that
            sender's transactions.
        end: message tag -> final reply code to the end of its data (all
            recipients in LMTP).
        lmtp: recipient -> its LMTP reply after the data (default 250).
    """

    rcpt: Mapping[str, int] = field(default_factory=dict)
    rcpt_limit: int | None = None
    limit_code: int = 452
    mail: Mapping[str, int] = field(default_factory=dict)
    data_command: Mapping[str, int] = field(default_factory=dict)
    end: Mapping[str, int] = field(default_factory=dict)
    lmtp: Mapping[str, int] = field(default_factory=dict)


class Trigger(enum.Enum):
    """Where a fault strikes (the ``nth`` time the model gets there)."""

    COMMAND = "command"  # a command line arrives, before it is acted on
    DATA_GO = "data-go"  # instead of a 354
    MID_DATA = "mid-data"  # after the first octets of a message's data
    END = "end"  # an end of data arrived, before (or while) replying


class Failure(enum.Enum):
    """What the fault does."""

    CLOSE_421 = "421"  # a 421 reply, then close
    EOF = "eof"  # close without a word
    STALL = "stall"  # say nothing more, keep the connection open
    MALFORMED = "malformed"  # MALFORMED_REPLY, then close


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One fault.

    Attributes:
        trigger, nth: where it strikes (1 is the first time).
        verb: with COMMAND, count only the commands with this verb
            (``"MAIL"``...); None counts every command.
        failure: what happens.
        queued: at an END, with EOF, STALL or MALFORMED: whether the model
            had queued the message before failing (both happen in real life:
            that is why the client cannot know).
        lmtp_replies: at an END in LMTP: how many per-recipient replies went
            out before the fault.
    """

    trigger: Trigger
    nth: int = 1
    verb: str | None = None
    failure: Failure = Failure.EOF
    queued: bool = False
    lmtp_replies: int = 0


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """A message the model took responsibility for."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes  # unstuffed (DATA) or reassembled (BDAT), CRLF as sent
    id: str


@dataclass(frozen=True)
class DataEnd:
    """An end of data (final dot, BDAT LAST) the client sent.

    ``recipients`` are those the message could have been delivered to: the
    accepted ones, plus, after a fault, every RCPT that went unanswered.
    ``answered`` are those that got a well-formed final reply. ``live`` is
    False when the model only read it after its fault.
    """

    sender: str | None
    recipients: tuple[str, ...]
    data: bytes
    answered: frozenset[str]
    live: bool
    #: Every RCPT of its transaction as the client saw it (accepted or
    #: not), with the index of the model's reply to it in ``replies``.
    asked: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    @property
    def tag(self) -> str | None:
        return tag_of(self.data)

    @property
    def unanswered(self) -> frozenset[str]:
        """Recipients whose fate the client cannot know."""
        return frozenset(self.recipients) - self.answered


class ReplyKind(enum.Enum):
    """What a reply answered."""

    GREETING = "greeting"
    HELLO = "hello"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # the reply to DATA (354 or a refusal)
    BDAT = "bdat"  # a chunk's reply (not the last chunk's positive one)
    END = "end"  # the final reply to the data (one per recipient in LMTP)
    RSET = "rset"
    NOOP = "noop"
    QUIT = "quit"
    UNKNOWN = "unknown"  # an unknown command
    CLOSING = "closing"  # a fault's 421


@dataclass(frozen=True)
class SentReply:
    """One reply the model sent, with what it was about.

    ``sender`` is the transaction's sender (for MAIL, the sender it named);
    ``recipient`` the recipient of a RCPT or of an LMTP final reply;
    ``recipients`` the transaction's accepted recipients when it was sent;
    ``tag`` the tag of the data it answered (END, BDAT).
    """

    serial: int
    code: int
    kind: ReplyKind
    sender: str | None = None
    recipient: str | None = None
    recipients: tuple[str, ...] = ()
    tag: str | None = None


# -- the model -----------------------------------------------------------------------------


class _Framing(enum.Enum):
    COMMANDS = enum.auto()
    DATA_LINES = enum.auto()
    CHUNK = enum.auto()


class _Verdict(enum.Enum):
    """What a BDAT chunk will be answered once it is read."""

    ACCEPT = enum.auto()
    REFUSE = enum.auto()
    SILENT = enum.auto()  # no reply at all (Dovecot, see _bdat)
    DEAD = enum.auto()  # read after the fault


@dataclass
class _Transaction:
    sender: str
    recipients: list[str] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    data_started: bool = False  # MID_DATA counted for this data
    data_failed: bool = False  # a chunk was refused (Dovecot: RSET first)
    sent: bytearray = field(default_factory=bytearray)  # every chunk octet, even refused


@dataclass
class _Chunk:
    remaining: int
    last: bool
    verdict: _Verdict
    code: int = 250
    enhanced: str = ""
    text: str = ""
    copies: tuple[str, ...] = ()  # LMTP: refused once per recipient


_ADDRESS_RE: Final = re.compile(rb"(?i)^(MAIL FROM|RCPT TO):<([^>]*)>")


class ModelServer:
    """An SMTP (or LMTP) server model; see the module docstring.

    Args:
        variant: how it treats a transaction after a refused DATA/BDAT.
        features: what it speaks and advertises.
        policy: its refusals.
        fault: the one fault it will suffer, if any.
        serial_base: reply serials start after it (several models, one
            client: each its own range).

    Attributes:
        queued: what it took responsibility for, in order.
        ends: every end of data the client sent, answered or not.
        replies: every reply sent; ``replies[n - 1]`` has serial ``n``.
        commands: every command line received before the fault.
        faulted: the fault struck.
    """

    def __init__(
        self,
        variant: Variant = Variant.POSTFIX,
        *,
        features: Features | None = None,
        policy: Policy | None = None,
        fault: Fault | None = None,
        serial_base: int = 0,
    ) -> None:
        self.variant = variant
        self.serial_base = serial_base
        self.features = features if features is not None else Features()
        self.policy = policy if policy is not None else Policy()
        self.fault = fault
        self.queued: list[Queued] = []
        self.ends: list[DataEnd] = []
        # Ends of data and replies that went out in take_output.
        self._ends_told = 0
        self._replies_told = 0
        # The RCPTs of the transaction as the client sees it (since its last
        # MAIL), and the BDAT octets of its message so far, whatever the
        # model made of them.
        self._asked: list[tuple[str, int]] = []
        self._orphans: list[DataEnd] = []  # ends of data with no transaction
        self._orphans_told = 0
        self._chunk_data = bytearray()
        self.replies: list[SentReply] = []
        self.commands: list[bytes] = []
        self.faulted = False
        self._closed = False
        self._stalled = False
        self._quit = False
        self._out = bytearray()
        self._in = bytearray()
        self._framing = _Framing.COMMANDS
        self._txn: _Transaction | None = None
        self._chunk: _Chunk | None = None
        self._counts: dict[Trigger, int] = dict.fromkeys(Trigger, 0)
        self._send(220, "2.0.0", f"{_HOST} model ready", ReplyKind.GREETING)

    # -- the wire ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the model closed the connection (after QUIT or a fault)."""
        return self._closed

    @property
    def stalled(self) -> bool:
        """True once a STALL fault struck: the model will never say more."""
        return self._stalled

    def feed(self, data: bytes) -> None:
        """Bytes from the client, processed in order."""
        if self._quit:
            return  # after QUIT the model closed: nothing is read
        self._in += data
        while self._step():
            pass

    def take_output(self) -> bytes:
        """The bytes the model sent since the last call."""
        out = bytes(self._out)
        self._out.clear()
        self._ends_told = len(self.ends)
        self._replies_told = len(self.replies)
        self._orphans_told = len(self._orphans)
        return out

    def client_gone(self) -> None:
        """The client's connection failed (during a write): it never reads
        what the model said since the last :meth:`take_output`. The ends of
        data answered there are unanswered for the client, which may have
        missed the refusal of any RCPT of theirs too. An end of data the
        model took for none (no transaction) is one to the client."""
        self.ends += self._orphans[self._orphans_told :]
        self._orphans_told = len(self._orphans)
        for i in range(self._ends_told, len(self.ends)):
            end = self.ends[i]
            # RCPTs whose reply the client never read, or read as accepted
            # (a transaction the model no longer had still is one to it).
            missed = tuple(
                r
                for r, reply in end.asked
                if reply >= self._replies_told or self.replies[reply].code < 300
            )
            self.ends[i] = replace(
                end,
                recipients=tuple(dict.fromkeys(end.recipients + missed)),
                answered=frozenset(),
            )
        self._ends_told = len(self.ends)
        self._replies_told = len(self.replies)

    def reply(self, serial: int) -> SentReply | None:
        """The reply with this serial, if this model sent it."""
        index = serial - self.serial_base - 1
        return self.replies[index] if 0 <= index < len(self.replies) else None

    def _next_serial(self) -> int:
        return self.serial_base + len(self.replies) + 1

    # -- framing ---------------------------------------------------------------------------

    def _step(self) -> bool:
        if self._framing is _Framing.CHUNK:
            return self._read_chunk()
        end = self._in.find(b"\r\n")
        if end < 0:
            return False
        line = bytes(self._in[:end])
        del self._in[: end + 2]
        if self._framing is _Framing.DATA_LINES:
            self._data_line(line)
        else:
            self._command(line)
        return True

    def _data_line(self, line: bytes) -> None:
        txn = self._txn
        assert txn is not None
        if line == b".":
            self._framing = _Framing.COMMANDS
            if self.faulted:
                self._dead_end(txn)
                self._txn = None
            else:
                self._end_of_data()
            return
        # RFC 5321 4.5.2: the server deletes the first of leading dots.
        txn.data += (line[1:] if line.startswith(b".") else line) + b"\r\n"
        self._started_data(txn)

    def _read_chunk(self) -> bool:
        chunk = self._chunk
        assert chunk is not None
        if chunk.remaining and not self._in:
            return False
        take = min(chunk.remaining, len(self._in))
        txn = self._txn
        live = not self.faulted
        if (
            live
            and chunk.verdict is _Verdict.ACCEPT
            and take
            and txn is not None
            and not txn.data_started
        ):
            take = 1  # MID_DATA strikes after the first octet
        piece = bytes(self._in[:take])
        del self._in[:take]
        chunk.remaining -= take
        self._chunk_data += piece
        if txn is not None:
            txn.sent += piece
        if txn is not None and chunk.verdict in (_Verdict.ACCEPT, _Verdict.DEAD):
            txn.data += piece
            if take and live:
                self._started_data(txn)
        if chunk.remaining:
            return True
        self._chunk = None
        self._framing = _Framing.COMMANDS
        if self.faulted:
            if chunk.last and txn is not None:
                self._dead_end(txn)
                self._txn = None
            elif chunk.last:
                # The transaction had ended (a refused chunk, the client not
                # told yet) when the fault came: to a client that never
                # reads the refusal, this end went out unanswered.
                self._orphan(live=False)
            if chunk.last:
                self._chunk_data.clear()
            return True
        if chunk.last and (
            chunk.verdict is _Verdict.SILENT or (chunk.verdict is _Verdict.REFUSE and txn is None)
        ):
            # The client sent an end of data the model took for none: with
            # no transaction, nothing was delivered; kept for client_gone
            # (the client may not know that).
            self._orphan(live=True)
        if chunk.last:
            self._chunk_data.clear()
        if chunk.verdict is _Verdict.SILENT:
            if txn is not None:
                txn.sent.clear()
            return True
        if chunk.verdict is _Verdict.REFUSE:
            self._refuse_chunk(chunk, txn)
            return True
        if chunk.last:
            self._end_of_data()
        else:
            assert txn is not None
            self._send(
                250,
                "2.0.0",
                f"{len(txn.data)} octets received",
                ReplyKind.BDAT,
                tag=tag_of(bytes(txn.data)),
            )
        return True

    def _orphan(self, *, live: bool) -> None:
        """Keep the BDAT LAST just read, which ended no transaction of the
        model's, for :meth:`client_gone`."""
        self._orphans.append(
            DataEnd(
                sender=None,
                recipients=(),
                data=bytes(self._chunk_data),
                answered=frozenset(),
                live=live,
                asked=tuple(self._asked),
            )
        )

    def _refuse_chunk(self, chunk: _Chunk, txn: _Transaction | None) -> None:
        rcpts = () if txn is None else tuple(txn.recipients)
        for rcpt in chunk.copies or (None,):
            self._send(
                chunk.code,
                chunk.enhanced,
                chunk.text,
                ReplyKind.BDAT,
                sender=None if txn is None else txn.sender,
                recipient=rcpt,
                recipients=rcpts,
            )
        if txn is None:
            return
        if chunk.last:
            # The end of the data went out, and was answered.
            self.ends.append(
                DataEnd(
                    sender=txn.sender,
                    recipients=rcpts,
                    data=bytes(txn.sent),
                    answered=frozenset(rcpts),
                    live=True,
                    asked=tuple(self._asked),
                )
            )
            txn.sent.clear()
        txn.data.clear()
        txn.data_started = False
        txn.data_failed = True
        if not self.variant.keeps_transaction:
            self._txn = None

    def _started_data(self, txn: _Transaction) -> None:
        if self.faulted or txn.data_started:
            return
        txn.data_started = True
        self._maybe_fault(Trigger.MID_DATA)

    # -- commands --------------------------------------------------------------------------

    def _command(self, line: bytes) -> None:
        if self.faulted:
            self._dead_command(line)
            return
        self.commands.append(line)
        verb = line.split(b" ", 1)[0].upper()
        if self._maybe_fault(Trigger.COMMAND, verb=verb.decode("ascii", "replace")):
            self._dead_command(line)
            return
        handler = _COMMANDS.get(verb)
        if handler is None:
            self._send(500, "5.5.2", "command not recognized", ReplyKind.UNKNOWN)
            return
        handler(self, line)

    def _hello(self, line: bytes) -> None:
        verb = line.split(b" ", 1)[0].upper()
        if (verb == b"LHLO") != self.features.lmtp:
            self._send(500, "5.5.1", "wrong greeting for this protocol", ReplyKind.HELLO)
            return
        # RFC 5321 4.1.4: EHLO (and LHLO) resets the transaction.
        self._txn = None
        if verb == b"HELO":
            self._send(250, "", f"{_HOST}", ReplyKind.HELLO)
            return
        serial = self._next_serial()
        lines = [f"{_HOST} [#{serial}]", *self.features.keywords()]
        text = "".join(f"250-{word}\r\n" for word in lines[:-1]) + f"250 {lines[-1]}\r\n"
        self.replies.append(SentReply(serial=serial, code=250, kind=ReplyKind.HELLO))
        self._out += text.encode("ascii")

    def _mail(self, line: bytes) -> None:
        self._asked = []  # the client starts a transaction, as it sees it
        self._chunk_data.clear()
        sender = _address(line, b"MAIL FROM")
        if sender is None:
            self._send(501, "5.5.4", "syntax: MAIL FROM:<address>", ReplyKind.MAIL)
            return
        if self._txn is not None:
            # RFC 5321 4.1.4: MAIL inside a transaction is out of sequence;
            # Exim, Postfix and Dovecot all keep the open transaction.
            self._send(503, "5.5.1", "sender already given", ReplyKind.MAIL, sender=sender)
            return
        code = self.policy.mail.get(sender)
        if code is not None:
            self._send(code, _enhanced(code), f"<{sender}> refused", ReplyKind.MAIL, sender=sender)
            return
        self._txn = _Transaction(sender=sender)
        self._send(250, "2.1.0", f"<{sender}> ok", ReplyKind.MAIL, sender=sender)

    def _rcpt(self, line: bytes) -> None:
        rcpt = _address(line, b"RCPT TO")
        txn = self._txn
        if rcpt is None:
            self._send(501, "5.5.4", "syntax: RCPT TO:<address>", ReplyKind.RCPT)
            return
        self._asked.append((rcpt, len(self.replies)))  # its reply is the next
        if txn is None:
            self._send(503, "5.5.1", "need MAIL first", ReplyKind.RCPT, recipient=rcpt)
            return
        code = self.policy.rcpt.get(rcpt, 250)
        limit = self.policy.rcpt_limit
        if code == 452 or code == 552:
            self._too_many(txn, rcpt, code)
            return
        if code < 300 and limit is not None and len(txn.recipients) >= limit:
            self._too_many(txn, rcpt, self.policy.limit_code)
            return
        if code < 300:
            txn.recipients.append(rcpt)
            text = f"<{rcpt}> ok"
        else:
            text = f"<{rcpt}> refused"
        self._send(
            code,
            _enhanced(code, rcpt=True),
            text,
            ReplyKind.RCPT,
            sender=txn.sender,
            recipient=rcpt,
            recipients=tuple(txn.recipients),
        )

    def _too_many(self, txn: _Transaction, rcpt: str, code: int) -> None:
        # RFC 5321 4.5.3.1.10: 452 (and, from old servers, 552) too many recipients.
        self._send(
            code,
            "4.5.3" if code == 452 else "5.5.3",
            "Too many recipients",
            ReplyKind.RCPT,
            sender=txn.sender,
            recipient=rcpt,
            recipients=tuple(txn.recipients),
        )

    def _data(self, line: bytes) -> None:
        txn = self._txn
        refusal = self._refuse_data(txn, "DATA")
        if refusal is not None:
            code, enhanced, text, _ = refusal
            self._send(
                code,
                enhanced,
                text,
                ReplyKind.DATA,
                sender=None if txn is None else txn.sender,
                recipients=() if txn is None else tuple(txn.recipients),
            )
            if txn is not None and not self.variant.keeps_transaction:
                self._txn = None
            return
        assert txn is not None
        if self._maybe_fault(Trigger.DATA_GO):
            return
        self._framing = _Framing.DATA_LINES
        self._send(
            354,
            "",
            "end data with <CR><LF>.<CR><LF>",
            ReplyKind.DATA,
            sender=txn.sender,
            recipients=tuple(txn.recipients),
        )

    def _refuse_data(
        self, txn: _Transaction | None, verb: str
    ) -> tuple[int, str, str, bool] | None:
        """The refusal of DATA or BDAT now, if any: code, enhanced code,
        text, and whether it is the policy's (about the message) rather than
        the transaction state's."""
        if txn is None:
            return 503, "5.5.1", "need MAIL first", False
        if not txn.recipients:
            # RFC 2033 4.2: DATA with no accepted recipient gets 503 in LMTP.
            if self.features.lmtp or self.variant.keeps_transaction:
                return 503, "5.5.1", f"valid RCPT command must precede {verb}", False
            return 554, "5.5.1", "no valid recipients", False
        if txn.data_failed and self.variant is Variant.DOVECOT:
            # Dovecot: one reply, even to BDAT LAST.
            return 503, "5.5.0", "previous data chunk failed, issue RSET first", False
        if verb == "DATA" and txn.data:
            return 503, "5.5.1", "BDAT chunks already received", False
        code = self.policy.data_command.get(txn.sender)
        if code is not None:
            return code, _enhanced(code), f"{verb} refused for <{txn.sender}>", True
        return None

    def _bdat(self, line: bytes) -> None:
        if not self.features.chunking:
            # Not offered: an unknown command, and what follows it is read as
            # commands too, as a server without CHUNKING would.
            self._send(500, "5.5.1", "command not recognized", ReplyKind.UNKNOWN)
            return
        words = line.split()
        if len(words) not in (2, 3) or not words[1].isdigit():
            self._send(501, "5.5.4", "syntax: BDAT size [LAST]", ReplyKind.BDAT)
            return
        last = len(words) == 3
        if last and words[2].upper() != b"LAST":
            self._send(501, "5.5.4", "syntax: BDAT size [LAST]", ReplyKind.BDAT)
            return
        size = int(words[1])
        txn = self._txn
        lmtp = self.features.lmtp
        dovecot = self.variant is Variant.DOVECOT
        refusal = self._refuse_data(txn, "BDAT")
        if refusal is None:
            chunk = _Chunk(remaining=size, last=last, verdict=_Verdict.ACCEPT)
        elif lmtp and dovecot and last and size and txn is not None and not txn.recipients:
            # Dovecot LMTP, after RFC 2033 4.2: with no successful RCPT, BDAT
            # LAST (of a non-empty chunk) returns zero replies.
            chunk = _Chunk(remaining=size, last=last, verdict=_Verdict.SILENT)
        else:
            # RFC 3030 2: a refused chunk is still read (and discarded).
            code, enhanced, text, about_message = refusal
            # LMTP: BDAT LAST refused for the message (not for the state of
            # the transaction) gets one reply per recipient, as in Dovecot.
            per_recipient = lmtp and last and about_message
            chunk = _Chunk(
                remaining=size,
                last=last,
                verdict=_Verdict.REFUSE,
                code=code,
                enhanced=enhanced,
                text=text,
                copies=tuple(txn.recipients) if per_recipient and txn is not None else (),
            )
        self._chunk = chunk
        self._framing = _Framing.CHUNK

    def _rset(self, line: bytes) -> None:
        self._txn = None
        self._send(250, "2.0.0", "reset", ReplyKind.RSET)

    def _noop(self, line: bytes) -> None:
        self._send(250, "2.0.0", "ok", ReplyKind.NOOP)

    def _quit_command(self, line: bytes) -> None:
        self._send(221, "2.0.0", "bye", ReplyKind.QUIT)
        self._quit = True
        self._closed = True

    # -- the end of the data ---------------------------------------------------------------

    def _end_of_data(self) -> None:
        txn = self._txn
        assert txn is not None
        # RFC 5321 4.1.1.4: the end of the data clears the transaction,
        # whatever the reply.
        self._txn = None
        data = bytes(txn.data)
        tag = tag_of(data) or ""
        rcpts = tuple(txn.recipients)
        if self.features.lmtp:
            # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
            codes = [self.policy.end.get(tag, self.policy.lmtp.get(r, 250)) for r in rcpts]
        else:
            codes = [self.policy.end.get(tag, 250)] * len(rcpts)
        fault = self.fault
        if not self._maybe_fault(Trigger.END, defer=True) or fault is None:
            count = len(rcpts)
            failure = None
        else:
            # The fault strikes here; in LMTP some replies may go out first.
            count = min(fault.lmtp_replies, len(rcpts)) if self.features.lmtp else 0
            failure = fault.failure
        self._answer_end(txn, codes, count, tag)
        answered = set(rcpts[:count])
        delivered = [r for r, c in zip(rcpts[:count], codes, strict=False) if c < 300]
        if not self.features.lmtp and count:
            answered = set(rcpts)
            delivered = list(rcpts) if codes[0] < 300 else []
        rest = [(r, c) for r, c in zip(rcpts[count:], codes[count:], strict=True)]
        if failure is Failure.CLOSE_421:
            # A well-formed final reply, refusing (in LMTP: the reply of the
            # next recipient only).
            answered.update(r for r, _ in rest[:1] if self.features.lmtp)
            answered.update(r for r, _ in rest if not self.features.lmtp)
        elif failure is not None and fault is not None and fault.queued:
            delivered += [r for r, c in rest if c < 300]
        self.ends.append(
            DataEnd(
                sender=txn.sender,
                recipients=rcpts,
                data=data,
                answered=frozenset(answered),
                live=True,
                asked=tuple(self._asked),
            )
        )
        if delivered:
            self._queue(txn.sender, tuple(delivered), data)
        if failure is not None:
            self._strike(failure)

    def _answer_end(self, txn: _Transaction, codes: list[int], count: int, tag: str) -> None:
        """Send the final replies of the first ``count`` recipients (in
        SMTP, the one final reply if ``count``)."""
        rcpts = tuple(txn.recipients)
        queue_id = f"Q{len(self.queued) + 1}"
        if not self.features.lmtp:
            if count:
                ok = codes[0] < 300
                self._send(
                    codes[0],
                    _enhanced(codes[0]),
                    f"queued as {queue_id}" if ok else "message refused",
                    ReplyKind.END,
                    sender=txn.sender,
                    recipients=rcpts,
                    tag=tag or None,
                )
            return
        for rcpt, code in zip(rcpts[:count], codes[:count], strict=True):
            ok = code < 300
            self._send(
                code,
                _enhanced(code),
                f"<{rcpt}> " + (f"delivered as {queue_id}" if ok else "not delivered"),
                ReplyKind.END,
                sender=txn.sender,
                recipient=rcpt,
                recipients=rcpts,
                tag=tag or None,
            )

    def _queue(self, sender: str, recipients: tuple[str, ...], data: bytes) -> None:
        self.queued.append(Queued(sender, recipients, data, f"Q{len(self.queued) + 1}"))

    # -- faults ----------------------------------------------------------------------------

    def _maybe_fault(
        self, trigger: Trigger, *, verb: str | None = None, defer: bool = False
    ) -> bool:
        """Count ``trigger``; strike (unless ``defer``) if the fault is due."""
        fault = self.fault
        if self.faulted:
            return False
        if fault is not None and fault.verb is not None and verb not in (None, fault.verb):
            return False
        self._counts[trigger] += 1
        if fault is None or fault.trigger is not trigger or fault.nth != self._counts[trigger]:
            return False
        if defer:
            self.faulted = True
        else:
            self._strike(fault.failure)
        return True

    def _strike(self, failure: Failure) -> None:
        self.faulted = True
        if failure is Failure.CLOSE_421:
            self._send(421, "4.3.0", f"{_HOST} closing", ReplyKind.CLOSING)
            self._closed = True
        elif failure is Failure.EOF:
            self._closed = True
        elif failure is Failure.MALFORMED:
            self._out += MALFORMED_REPLY
            self._closed = True
        else:
            self._stalled = True

    # -- after the fault: reading without acting -------------------------------------------

    def _dead_command(self, line: bytes) -> None:
        """A command after the fault: only its framing and envelope count
        (what the client believes it sent)."""
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"MAIL":
            sender = _address(line, b"MAIL FROM")
            self._txn = _Transaction(sender=sender or "")
            self._asked = []  # the client starts a transaction, as it sees it
        elif verb == b"RCPT":
            rcpt = _address(line, b"RCPT TO")
            if self._txn is not None and rcpt is not None:
                self._txn.recipients.append(rcpt)
        elif verb in (b"RSET", b"EHLO", b"LHLO", b"HELO"):
            self._txn = None
        elif verb == b"BDAT":
            words = line.split()
            if len(words) in (2, 3) and words[1].isdigit():
                self._chunk = _Chunk(
                    remaining=int(words[1]), last=len(words) == 3, verdict=_Verdict.DEAD
                )
                self._framing = _Framing.CHUNK
        # DATA after the fault got no 354: the client sends no data after it.

    def _dead_end(self, txn: _Transaction) -> None:
        # ``asked``: the RCPTs the model answered before its fault; a client
        # that never read a refusal among them counts that one too.
        self.ends.append(
            DataEnd(
                sender=txn.sender,
                recipients=tuple(txn.recipients),
                data=bytes(txn.data),
                answered=frozenset(),
                live=False,
                asked=tuple(self._asked),
            )
        )

    # -- replies ---------------------------------------------------------------------------

    def _send(
        self,
        code: int,
        enhanced: str,
        text: str,
        kind: ReplyKind,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        recipients: tuple[str, ...] = (),
        tag: str | None = None,
    ) -> None:
        serial = self._next_serial()
        self.replies.append(
            SentReply(
                serial=serial,
                code=code,
                kind=kind,
                sender=sender,
                recipient=recipient,
                recipients=recipients,
                tag=tag,
            )
        )
        prefix = f"{enhanced} " if enhanced and self.features.enhanced else ""
        self._out += f"{code} {prefix}{text} [#{serial}]\r\n".encode()


def _address(line: bytes, keyword: bytes) -> str | None:
    match = _ADDRESS_RE.match(line)
    if match is None or match.group(1).upper() != keyword:
        return None
    return match.group(2).decode("utf-8", "surrogateescape")


def _enhanced(code: int, *, rcpt: bool = False) -> str:
    """A plausible RFC 3463 code for a reply code."""
    if code < 300:
        return "2.1.5" if rcpt else "2.0.0"
    if code < 500:
        return "4.2.1" if rcpt else "4.3.0"
    return "5.1.1" if rcpt else "5.7.1"


_COMMANDS: Final = {
    b"EHLO": ModelServer._hello,
    b"HELO": ModelServer._hello,
    b"LHLO": ModelServer._hello,
    b"MAIL": ModelServer._mail,
    b"RCPT": ModelServer._rcpt,
    b"DATA": ModelServer._data,
    b"BDAT": ModelServer._bdat,
    b"RSET": ModelServer._rset,
    b"NOOP": ModelServer._noop,
    b"QUIT": ModelServer._quit_command,
}
