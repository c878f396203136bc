"""A scripted server that drives a :class:`smtpcore.Session` to its end.

A :class:`ServerScript` is what a server does, in order: bytes to hand over
at each read, EOF, a read that times out, a TLS handshake that succeeds or
fails. :func:`run_script` plays the adapter: it asks the session what to do,
answers every read and handshake with the next step, and records everything
that crossed the wire (:class:`WireEntry`) and every event.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar, final

from smtpcore import (
    Action,
    Close,
    Event,
    Idle,
    NeedBody,
    Read,
    Session,
    SMTPError,
    StartTLSAction,
    Write,
)

__all__ = [
    "EOF",
    "ScriptRun",
    "ServerScript",
    "ServerSignal",
    "ServerStep",
    "WireEntry",
    "WireKind",
    "WriteFailure",
    "run_script",
]

E = TypeVar("E")


class ServerSignal(enum.Enum):
    """A server step that is not bytes."""

    #: The read (or the handshake) times out: ``timeout_expired()``.
    TIMEOUT = "timeout"
    #: The TLS handshake succeeds: ``tls_established()``.
    TLS_OK = "tls-ok"
    #: The TLS handshake fails: ``tls_failed()``.
    TLS_FAIL = "tls-fail"


#: The server closes the connection (``receive_data(b"")``).
EOF: Final = b""

#: One step of a script: bytes for one read (``b""`` is EOF) or a signal.
ServerStep = bytes | ServerSignal


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class WriteFailure:
    """The client's own connection fails during one of its writes.

    Attributes:
        nth: which Write fails (1: the first, the EHLO).
        written: how many of its leading octets left before the failure (the
            count the session is given); more than the Write holds means
            all of it. None: the adapter cannot tell (over a caller's own
            stream); the session is given no count, and all but the Write's
            last octet go on the record, the most that may have left.
        timeout: the Write times out (``timeout_expired``) rather than
            failing (``connection_lost``, as a reset would).
        received: what the server had sent by then that the adapter read
            without waiting once the Write failed (its replies to what
            went before): given to ``receive_data`` before the failure is
            reported, as the adapters do.
    """

    nth: int
    written: int | None = None
    timeout: bool = False
    received: bytes = b""

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise ValueError(f"nth counts Writes from 1, not {self.nth}")
        if self.written is not None and self.written < 0:
            raise ValueError(f"written is a count of octets, not {self.written}")
        if not isinstance(self.received, bytes):
            raise TypeError(f"received is bytes, not {self.received!r}")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ServerScript:
    """What a server does, step by step.

    Attributes:
        steps: bytes for each read (``b""``: EOF) and :class:`ServerSignal`
            values for time-outs and TLS handshakes.
        notes: what was injected (failures, garbage), for readable
            Hypothesis falsifying examples.
        write_failure: the client's connection fails during one of its
            writes (see :class:`WriteFailure`).
    """

    steps: tuple[ServerStep, ...]
    notes: tuple[str, ...] = ()
    write_failure: WriteFailure | None = None

    def __post_init__(self) -> None:
        for step in self.steps:
            if not isinstance(step, (bytes, ServerSignal)):
                raise TypeError(f"a script step is bytes or a ServerSignal, not {step!r}")
        if self.write_failure is not None and not isinstance(self.write_failure, WriteFailure):
            raise TypeError(f"write_failure is a WriteFailure, not {self.write_failure!r}")

    @property
    def wire(self) -> bytes:
        """Every byte the server sends, in order."""
        return b"".join(step for step in self.steps if isinstance(step, bytes))


class WireKind(enum.Enum):
    """What a :class:`WireEntry` records."""

    SENT = "sent"  # the client wrote ``data`` (of a failed write: what left)
    WRITE_FAILED = "write-failed"  # the write failed (WriteFailure)
    RECEIVED = "received"  # ``data`` was given to receive_data (b"": EOF)
    TIMEOUT = "timeout"  # timeout_expired() was called
    TLS_ESTABLISHED = "tls-established"
    TLS_FAILED = "tls-failed"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class WireEntry:
    """One thing that happened on the connection, with the session's state
    at that moment.

    Attributes:
        kind: what happened.
        data: the octets (SENT, RECEIVED), else ``b""``.
        tls: TLS was active (for TLS_ESTABLISHED: after the handshake).
        after_error: the session's ``error`` was already set.
        pipelining: PIPELINING was in use (offered, and not switched off).
    """

    kind: WireKind
    data: bytes = b""
    tls: bool = False
    after_error: bool = False
    pipelining: bool = False


@dataclass(slots=True)
class ScriptRun:
    """Everything observed while :func:`run_script` drove a session."""

    session: Session
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wire: list[WireEntry] = field(default_factory=list)
    steps_used: int = 0

    @property
    def client(self) -> bytes:
        """Every byte the client wrote, in order."""
        return b"".join(e.data for e in self.wire if e.kind is WireKind.SENT)

    @property
    def server(self) -> bytes:
        """Every byte the client was given, in order."""
        return b"".join(e.data for e in self.wire if e.kind is WireKind.RECEIVED)

    @property
    def closed(self) -> bool:
        """True when the run ended with Close (not Idle)."""
        return bool(self.actions) and isinstance(self.actions[-1], Close)

    @property
    def error(self) -> SMTPError | None:
        """The error that ended the session, if any."""
        return self.session.error

    def of_type(self, cls: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, cls)]


def _fail_write(
    session: Session,
    data: bytes,
    failure: WriteFailure,
    record: Callable[[WireKind, bytes], None],
) -> None:
    """Cut the Write of ``data`` short as ``failure`` says."""
    if failure.written is None:
        written, left = None, len(data) - 1
    else:
        written = left = min(failure.written, len(data))
    record(WireKind.SENT, data[:left])
    record(WireKind.WRITE_FAILED, b"")
    if failure.received:
        record(WireKind.RECEIVED, failure.received)
        session.receive_data(failure.received)
    if failure.timeout:
        session.timeout_expired(None, written=written)
    else:
        session.connection_lost(
            "write", errno.ECONNRESET, "the script's write failure", written=written
        )


def _pipelining(session: Session) -> bool:
    caps = session.capabilities
    return bool(caps is not None and caps.pipelining and session.config.pipelining)


def run_script(
    session: Session,
    script: ServerScript | Sequence[ServerStep],
    *,
    bodies: Mapping[int, Sequence[bytes]] | None = None,
    quit_when_idle: bool = True,
    max_actions: int = 10_000,
    write_failure: WriteFailure | None = None,
) -> ScriptRun:
    """Drive ``session`` against ``script`` until it closes (or idles).

    Each Read takes the next step: bytes go to ``receive_data``,
    :attr:`ServerSignal.TIMEOUT` to ``timeout_expired``; TLS signals met
    while reading are skipped. Each StartTLS takes the next step: TLS_OK,
    TLS_FAIL, TIMEOUT, or bytes (plaintext that arrived before the
    handshake, given to ``receive_data``). When the script runs out, reads
    get EOF and handshakes fail. NeedBody is answered from ``bodies`` (the
    chunks of each message id, then ``b""``). A write failure (given here or
    in the script) cuts its Write short: what left is recorded as SENT,
    then WRITE_FAILED, and the session is told (``connection_lost`` or
    ``timeout_expired``, with ``written=``).

    Args:
        session: a fresh session, with messages already submitted.
        script: the server's steps.
        bodies: chunks of the streamed bodies, by message id.
        quit_when_idle: call ``quit()`` the first time the session is idle
            (the run then ends with Close); otherwise stop at Idle.
        max_actions: give up (AssertionError) after this many actions.
        write_failure: the client's connection fails during a write (in
            place of the script's own ``write_failure``).

    Returns:
        What happened.

    Raises:
        AssertionError: the session neither closed nor idled in time.
        KeyError: the session asked for a body not in ``bodies``.
    """
    steps = list(script.steps if isinstance(script, ServerScript) else script)
    if write_failure is None and isinstance(script, ServerScript):
        write_failure = script.write_failure
    writes = 0
    run = ScriptRun(session=session)
    quit_called = False
    body_pos: dict[int, int] = {}

    def record(kind: WireKind, data: bytes = b"") -> None:
        run.wire.append(
            WireEntry(
                kind=kind,
                data=data,
                tls=session.tls_active,
                after_error=session.error is not None,
                pipelining=_pipelining(session),
            )
        )

    def next_step(*, reading: bool) -> ServerStep | None:
        while run.steps_used < len(steps):
            step = steps[run.steps_used]
            run.steps_used += 1
            if reading and step in (ServerSignal.TLS_OK, ServerSignal.TLS_FAIL):
                continue
            return step
        return None

    def feed(data: bytes) -> None:
        record(WireKind.RECEIVED, data)
        session.receive_data(data)

    for _ in range(max_actions):
        action = session.next_action()
        run.actions.append(action)
        run.events.extend(session.events())
        if isinstance(action, Write):
            writes += 1
            if write_failure is not None and writes == write_failure.nth:
                _fail_write(session, action.data, write_failure, record)
            else:
                record(WireKind.SENT, action.data)
        elif isinstance(action, Read):
            step = next_step(reading=True)
            if step is ServerSignal.TIMEOUT:
                record(WireKind.TIMEOUT)
                session.timeout_expired()
            else:
                feed(step if isinstance(step, bytes) else EOF)
        elif isinstance(action, StartTLSAction):
            step = next_step(reading=False)
            if step is ServerSignal.TLS_OK:
                session.tls_established()
                record(WireKind.TLS_ESTABLISHED)
            elif step is ServerSignal.TIMEOUT:
                record(WireKind.TIMEOUT)
                session.timeout_expired()
            elif isinstance(step, bytes):
                feed(step)
            else:
                record(WireKind.TLS_FAILED)
                session.tls_failed("the script's handshake failed")
        elif isinstance(action, NeedBody):
            chunks = (bodies or {})[action.message_id]
            # A further transaction of the same message (after a 452) needs
            # the body again from its start.
            if action.restart:
                body_pos[action.message_id] = 0
            pos = body_pos.get(action.message_id, 0)
            body_pos[action.message_id] = pos + 1
            session.send_body(action.message_id, chunks[pos] if pos < len(chunks) else b"")
        elif isinstance(action, Idle):
            if not quit_when_idle or quit_called:
                break
            quit_called = True
            session.quit()
        else:
            assert isinstance(action, Close)
            break
    else:
        raise AssertionError(f"the session neither closed nor idled after {max_actions} actions")
    run.events.extend(session.events())
    return run
