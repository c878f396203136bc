"""A scripted SMTP server for driving a :class:`smtpcore.Session` byte by byte.

A script is a list of steps ``(client, server)``. Each time the session asks
to read (or to run a TLS handshake), the driver takes the next step, checks
that the client wrote exactly ``client`` since the previous step, and answers
with ``server``:

* ``bytes``: handed to ``receive_data`` (``b""`` is EOF). In bytewise mode
  every Read gets one octet of it, so a reply is parsed from many calls;
  octets still unread when the session asks for a TLS handshake are handed
  over first (they arrived in plaintext, before the handshake).
* a callable: called with the client bytes of the step, returns the bytes
  (for exchanges that depend on what the client sent, e.g. a SCRAM nonce).
* :data:`TIMEOUT`: ``timeout_expired()`` instead of data.
* :data:`HANDSHAKE_OK` / :data:`HANDSHAKE_FAIL`: only valid when the session
  asks for a TLS handshake: ``tls_established()`` / ``tls_failed()``.

:func:`converse` runs a script twice, with server chunks fed whole and one
octet at a time, and checks that the client bytes, the events and the
transcript are the same both ways.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from smtpcore import (
    Action,
    Close,
    Command,
    Event,
    Idle,
    NeedBody,
    OutgoingMessage,
    Read,
    Session,
    SessionConfig,
    StartTLSAction,
    Write,
)


class Signal(enum.Enum):
    """A server step that is not bytes."""

    TIMEOUT = "timeout"
    HANDSHAKE_OK = "handshake-ok"
    HANDSHAKE_FAIL = "handshake-fail"


TIMEOUT: Final = Signal.TIMEOUT
HANDSHAKE_OK: Final = Signal.HANDSHAKE_OK
HANDSHAKE_FAIL: Final = Signal.HANDSHAKE_FAIL
EOF: Final = b""

ServerInput = bytes | Signal | Callable[[bytes], bytes]
Step = tuple[bytes, ServerInput]
Script = Sequence[Step]
Job = OutgoingMessage | Command


E = TypeVar("E")


class ScriptError(AssertionError):
    """The session did not follow the script."""


@dataclass
class Run:
    """Everything observed while driving one session."""

    session: Session
    actions: list[Action] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    reads: int = 0
    handshakes: int = 0
    steps_used: int = 0
    tail: bytes = b""  # client bytes written after the last step
    ids: list[int] = field(default_factory=list)  # submit()/command() results

    @property
    def client(self) -> bytes:
        """Every byte the client wrote, in order."""
        return b"".join(w.data for w in self.writes)

    @property
    def transcript(self) -> list[str]:
        """The session's transaction log, as text."""
        return [str(entry) for entry in self.session.transcript]

    def of_type(self, cls: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, cls)]

    @property
    def final(self) -> Action:
        """The last action (Close or Idle)."""
        return self.actions[-1]


def _pieces(data: bytes, bytewise: bool) -> list[bytes]:
    if not bytewise:
        return [data]
    return [data[i : i + 1] for i in range(len(data))]


def drive(
    session: Session,
    script: Script,
    *,
    bytewise: bool = False,
    bodies: Mapping[int, Sequence[bytes]] | None = None,
    max_actions: int = 100_000,
    allow_unused_steps: bool = False,
    split: Callable[[bytes], list[bytes]] | None = None,
) -> Run:
    """Drive ``session`` through ``script`` until it closes or idles.

    ``bodies`` maps a message id to the chunks given to ``send_body`` when
    the session asks for that message's body (``b""`` is sent after them).
    ``split`` cuts each server chunk into the pieces fed one per Read
    (default: whole, or one octet each when ``bytewise``).
    """
    cut = split if split is not None else (lambda data: _pieces(data, bytewise))
    run = Run(session=session)
    steps = list(script)
    pending: list[bytes] = []  # pieces of the current step not fed yet
    client = bytearray()
    body_pos: dict[int, int] = {}

    def take_step(kind: str) -> bytes | Signal:
        if run.steps_used == len(steps):
            raise ScriptError(
                f"session wants a {kind} after the script ended; client sent {bytes(client)!r}"
            )
        expected, server = steps[run.steps_used]
        run.steps_used += 1
        if bytes(client) != expected:
            raise ScriptError(
                f"step {run.steps_used}: client sent {bytes(client)!r}, expected {expected!r}"
            )
        client.clear()
        if isinstance(server, (bytes, Signal)):
            return server
        return server(expected)

    for _ in range(max_actions):
        action = session.next_action()
        run.actions.append(action)
        run.events.extend(session.events())
        if isinstance(action, Write):
            run.writes.append(action)
            client += action.data
        elif isinstance(action, Read):
            run.reads += 1
            if pending:
                session.receive_data(pending.pop(0))
                continue
            server = take_step("read")
            if server is TIMEOUT:
                session.timeout_expired()
            elif isinstance(server, Signal):
                raise ScriptError(f"step {run.steps_used}: {server} while the session reads")
            elif server == EOF:
                session.receive_data(EOF)
            else:
                pending = [piece for piece in cut(server) if piece]
                session.receive_data(pending.pop(0))
        elif isinstance(action, StartTLSAction):
            if pending:
                # Octets the server sent before the handshake: the adapter
                # already holds them in plaintext.
                while pending:
                    session.receive_data(pending.pop(0))
                continue
            run.handshakes += 1
            server = take_step("TLS handshake")
            if server is HANDSHAKE_OK:
                session.tls_established()
            elif server is HANDSHAKE_FAIL:
                session.tls_failed("certificate verify failed")
            elif server is TIMEOUT:
                session.timeout_expired()
            else:
                # Data where a handshake should be: hand it over as read.
                for piece in cut(server):
                    session.receive_data(piece)
        elif isinstance(action, NeedBody):
            chunks = (bodies or {}).get(action.message_id)
            if chunks is None:
                raise ScriptError(f"no body given for message {action.message_id}")
            pos = body_pos.get(action.message_id, 0)
            body_pos[action.message_id] = pos + 1
            session.send_body(action.message_id, chunks[pos] if pos < len(chunks) else b"")
        else:
            assert isinstance(action, (Idle, Close))
            break
    else:
        raise ScriptError(f"no Close or Idle after {max_actions} actions")
    run.events.extend(session.events())
    run.tail = bytes(client)
    if not allow_unused_steps and run.steps_used != len(steps):
        raise ScriptError(
            f"session stopped ({run.final}) after {run.steps_used} of {len(steps)} steps; "
            f"unused: {steps[run.steps_used]!r}"
        )
    return run


def norm(value: object) -> object:
    """A comparable rendering of an event field.

    Exceptions compare by type and key attributes, not by message: the same
    failure may be worded differently depending on which octet revealed it.
    """
    if isinstance(value, BaseException):
        attrs = tuple(
            (name, norm(getattr(value, name)))
            for name in ("stage", "status_unknown", "reply", "command", "replies")
            if hasattr(value, name)
        )
        return (type(value).__name__, attrs)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple((f.name, norm(getattr(value, f.name))) for f in dataclasses.fields(value)),
        )
    if isinstance(value, dict):
        return tuple((k, norm(v)) for k, v in value.items())
    if isinstance(value, tuple):
        return tuple(norm(v) for v in value)
    return value


def make_session(
    config: SessionConfig, jobs: Sequence[Job], *, quit: bool
) -> tuple[Session, list[int]]:
    """A session with ``jobs`` queued (and QUIT after them if ``quit``)."""
    session = Session(config)
    ids = []
    for job in jobs:
        if isinstance(job, OutgoingMessage):
            ids.append(session.submit(job))
        else:
            ids.append(session.command(job))
    if quit:
        session.quit()
    return session, ids


def converse(
    config: SessionConfig,
    jobs: Sequence[Job],
    script: Script,
    *,
    quit: bool = True,
    tail: bytes = b"",
    bodies: Mapping[int, Sequence[bytes]] | None = None,
    prepare: Callable[[Session], None] | None = None,
) -> Run:
    """Run ``script`` fed whole and fed one octet at a time; check both runs
    agree (client bytes, events, transcript) and return the whole-fed run.

    ``tail`` is what the client must write after the last step.
    """
    runs = []
    for bytewise in (False, True):
        session, ids = make_session(config, jobs, quit=quit)
        if prepare is not None:
            prepare(session)
        run = drive(session, script, bytewise=bytewise, bodies=bodies)
        run.ids = ids
        if run.tail != tail:
            mode = "bytewise" if bytewise else "whole"
            raise ScriptError(f"{mode}: client sent {run.tail!r} after the script, not {tail!r}")
        runs.append(run)
    whole, bytewise_run = runs
    _same("client bytes", whole.client, bytewise_run.client)
    _same("events", [norm(e) for e in whole.events], [norm(e) for e in bytewise_run.events])
    _same("transcript", whole.transcript, bytewise_run.transcript)
    _same("final action", type(whole.final), type(bytewise_run.final))
    return whole


def _same(what: str, whole: object, bytewise: object) -> None:
    if whole != bytewise:
        raise ScriptError(f"{what} differ:\n  whole:    {whole!r}\n  bytewise: {bytewise!r}")


class MiniServer:
    """A permissive server that answers whatever the client sent.

    It accepts every command (250) except RCPT for the addresses in
    ``refuse`` (550), answers DATA with 354 and the end of data with 250,
    counts BDAT chunks, and keeps each message as it arrived on the wire.
    Used where the number of round trips matters, not the exact replies.
    """

    def __init__(self, *keywords: str, refuse: Sequence[str] = ()) -> None:
        self.keywords = keywords
        self.refuse = {f"RCPT TO:<{r}>".encode() for r in refuse}
        self.messages: list[bytes] = []
        self.closed = False
        self._buf = bytearray()
        self._greeted = False
        self._in_data = False
        self._bdat = 0
        self._bdat_last = False
        self._msg = bytearray()

    def respond(self, data: bytes) -> bytes:
        """Everything the server says in answer to ``data``."""
        self._buf += data
        out = bytearray()
        if not self._greeted:
            self._greeted = True
            out += b"220 mini.example.org ESMTP\r\n"
        while True:
            if self._bdat:
                take = min(self._bdat, len(self._buf))
                self._msg += self._buf[:take]
                del self._buf[:take]
                self._bdat -= take
                if self._bdat:
                    break
                out += self._end_chunk()
                continue
            if self._in_data:
                if self._buf.startswith(b".\r\n"):
                    end, body_end = 3, 0
                else:
                    i = self._buf.find(b"\r\n.\r\n")
                    if i < 0:
                        break
                    end, body_end = i + 5, i + 2
                self.messages.append(bytes(self._buf[:body_end]))
                del self._buf[:end]
                self._in_data = False
                out += b"250 2.0.0 queued\r\n"
                continue
            i = self._buf.find(b"\r\n")
            if i < 0:
                break
            line = bytes(self._buf[:i])
            del self._buf[: i + 2]
            out += self._command(line)
        return bytes(out)

    def _command(self, line: bytes) -> bytes:
        verb = line.split(b" ", 1)[0].upper()
        if verb in (b"EHLO", b"LHLO"):
            lines = ["mini.example.org", *self.keywords]
            text = "".join(f"250-{kw}\r\n" for kw in lines[:-1]) + f"250 {lines[-1]}\r\n"
            return text.encode()
        if verb == b"DATA":
            self._in_data = True
            return b"354 go ahead\r\n"
        if verb == b"BDAT":
            parts = line.split()
            self._bdat = int(parts[1])
            self._bdat_last = len(parts) > 2
            return self._end_chunk() if self._bdat == 0 else b""
        if verb == b"RCPT" and line in self.refuse:
            return b"550 5.1.1 no such user\r\n"
        if verb == b"QUIT":
            self.closed = True
            return b"221 2.0.0 bye\r\n"
        return b"250 2.0.0 ok\r\n"

    def _end_chunk(self) -> bytes:
        if not self._bdat_last:
            return b"250 2.0.0 chunk ok\r\n"
        self.messages.append(bytes(self._msg))
        self._msg.clear()
        return b"250 2.0.0 queued\r\n"


def serve(session: Session, server: MiniServer, *, max_actions: int = 100_000) -> Run:
    """Drive ``session`` against ``server`` (fed whole) until it closes.

    ``run.reads`` then counts round trips: one Read per server answer.
    """
    run = Run(session=session)
    client = bytearray()
    for _ in range(max_actions):
        action = session.next_action()
        run.actions.append(action)
        run.events.extend(session.events())
        if isinstance(action, Write):
            run.writes.append(action)
            client += action.data
        elif isinstance(action, Read):
            run.reads += 1
            answer = server.respond(bytes(client))
            client.clear()
            if not answer and server.closed:
                answer = EOF
            elif not answer:
                raise ScriptError("the session reads but the server has nothing to say")
            session.receive_data(answer)
        elif isinstance(action, StartTLSAction):
            raise ScriptError("MiniServer does not do TLS")
        elif isinstance(action, NeedBody):
            raise ScriptError("MiniServer runs take in-memory bodies")
        else:
            break
    else:
        raise ScriptError(f"no Close or Idle after {max_actions} actions")
    run.events.extend(session.events())
    run.tail = bytes(client)
    return run
