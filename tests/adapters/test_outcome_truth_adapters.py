"""Outcome truth through the real adapters, over real sockets.

The reference server model of tests/core/model_server.py, served on
127.0.0.1 by a small threaded server (one model per connection), is driven
by each adapter's ``Client.send_many``; the invariants of
tests/core/test_outcome_truth.py are checked on what ``send_many`` returns (a
``MessageResult`` or the typed ``SMTPError`` per message) against what the
models queued.

A hang shows here as a client that gives up on a server still waiting for it
(the client closes without QUIT while the model is neither closed nor
silenced by an injected fault); the adapters run with a short timeout so
that it costs little.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from servers import LOOPBACK, WAIT, Flavor, wait_until, wait_until_async

# The model and the invariants live with the core tests.
_CORE_TESTS = str(Path(__file__).resolve().parents[1] / "core")
if _CORE_TESTS not in sys.path:
    sys.path.insert(0, _CORE_TESTS)

from model_server import (  # noqa: E402
    DataEnd,
    Failure,
    Fault,
    Features,
    ModelServer,
    Policy,
    Queued,
    SentReply,
    Trigger,
    Variant,
)
from test_outcome_truth import (  # noqa: E402
    Plan,
    Run,
    Scenario,
    config,
    end_faults,
    make_body,
    scenarios,
    verify,
)

from smtpcore import (  # noqa: E402
    MessageAccepted,
    MessageFailed,
    MessageResult,
    RecipientState,
    SMTPError,
)

pytestmark = pytest.mark.anyio

#: Examples per adapter: 25 under the default profile, more under a longer one.
ADAPTER_EXAMPLES: Final = 25 if settings().max_examples <= 50 else settings().max_examples // 8
#: Every adapter timeout, in seconds: what a hang or an injected stall costs.
TIMEOUT: Final = 2.0
#: How often the server threads look at their stop flag.
_POLL: Final = 0.02
#: Each connection's reply serials start here times its index: serials stay
#: unique across the connections of one run.
_SERIALS_PER_CONNECTION: Final = 100_000


# -- the model on a socket -------------------------------------------------------------------


@dataclass
class _Connection:
    model: ModelServer
    wire: list[tuple[str, bytes]] = field(default_factory=list)  # ("C"/"S", bytes)
    quit_seen: bool = False
    client_closed: bool = False
    abandoned: bool = False  # the client left a model that was waiting for it


class ModelTCPServer:
    """:class:`ModelServer` on 127.0.0.1, one model per connection; only the
    first connection suffers the scenario's fault.

    When its model closes, a connection half-closes (FIN after the last
    reply) and keeps reading, so that the model still sees, and records,
    the ends of data the client sends after the fault.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(8)
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> ModelTCPServer:
        self._accept_thread.start()
        return self

    def all_closed(self) -> bool:
        """True once the client closed every connection."""
        return all(c.client_closed for c in self.connections)

    def stop(self) -> int:
        """Stop; returns how many connections the client left open."""
        wait_until(self.all_closed, timeout=2.0)
        left = sum(not c.client_closed for c in self.connections)
        self._stop.set()
        self._accept_thread.join(WAIT)
        for thread in self._threads:
            thread.join(WAIT)
        self._listener.close()
        return left

    # -- what the checks read (ServerRecord) -------------------------------------------------

    @property
    def queued(self) -> list[Queued]:
        return [q for c in self.connections for q in c.model.queued]

    @property
    def ends(self) -> list[DataEnd]:
        return [e for c in self.connections for e in c.model.ends]

    def reply(self, serial: int) -> SentReply | None:
        index = serial // _SERIALS_PER_CONNECTION
        if index >= len(self.connections):
            return None
        return self.connections[index].model.reply(serial)

    # -- serving -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            scenario = self.scenario
            with self._lock:
                first = not self.connections
                model = ModelServer(
                    scenario.variant,
                    features=scenario.features,
                    policy=scenario.policy,
                    fault=scenario.fault if first else None,
                    serial_base=len(self.connections) * _SERIALS_PER_CONNECTION,
                )
                record = _Connection(model)
                self.connections.append(record)
            thread = threading.Thread(target=self._serve, args=(conn, record), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, record: _Connection) -> None:
        model = record.model
        half_closed = False
        with conn, contextlib.suppress(OSError):
            conn.settimeout(_POLL)
            while not self._stop.is_set():
                said = model.take_output()
                if said and not half_closed:
                    record.wire.append(("S", said))
                    conn.sendall(said)
                if model.closed and not half_closed:
                    conn.shutdown(socket.SHUT_WR)
                    half_closed = True
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                record.wire.append(("C", data))
                record.quit_seen |= any(line.upper() == b"QUIT" for line in data.split(b"\r\n"))
                model.feed(data)
        # A client that goes away while the model still waits for it (not
        # closed, no fault silencing it, no QUIT) gave up on a live server.
        record.abandoned = not (model.closed or model.stalled or model.faulted or record.quit_seen)
        record.client_closed = True


# -- the drive -------------------------------------------------------------------------------


def _item(plan: Plan) -> dict[str, Any]:
    item: dict[str, Any] = {"sender": plan.sender, "recipients": list(plan.recipients)}
    if plan.streamed:
        item["file_handle"] = io.BytesIO(plan.body)
    else:
        item["message"] = plan.body
    return item


async def deliver(flavor: Flavor, scenario: Scenario) -> Run:
    """Send the scenario's batch with ``flavor``'s ``Client.send_many``."""
    server = ModelTCPServer(scenario).start()
    run = Run(scenario=scenario, server=server, closed=True)
    settings_ = scenario.config
    client = flavor.module.Client(
        LOOPBACK,
        server.port,
        tls="none",
        timeout=TIMEOUT,
        lmtp=settings_.lmtp,
        pipelining=settings_.pipelining,
        chunking=settings_.chunking,
        require_all_recipients=settings_.require_all_recipients,
        max_recipients=settings_.max_recipients,
    )
    outcomes: list[MessageResult | SMTPError] = []
    try:
        try:
            await flavor.call(client.connect)
        except SMTPError:
            # No message was submitted: the session failed before MAIL.
            pass
        else:
            outcomes = await flavor.call(client.send_many, [_item(p) for p in scenario.messages])
        await flavor.call(client.close)
    except Exception as exc:  # every exception out of the adapter is a finding
        run.crash = exc
        client.abort()
    finally:
        # An async client closes its transport on the event loop: let it run.
        await wait_until_async(server.all_closed, timeout=2.0)
        left = server.stop()
    if left:
        run.notes.append(f"the client left {left} connection(s) open")
    run.notes += [
        f"connection {i}: the client gave up on a server still waiting for it (a hang)"
        for i, c in enumerate(server.connections)
        if c.abandoned
    ]
    run.wire = [entry for c in server.connections for entry in c.wire]
    run.ids = list(range(1, len(outcomes) + 1))
    for index, outcome in enumerate(outcomes, start=1):
        if isinstance(outcome, MessageResult):
            run.events.append(MessageAccepted(result=outcome))
        elif outcome.result is not None:
            run.events.append(MessageFailed(result=outcome.result, error=outcome))
        else:
            run.notes.append(f"message {index}: {type(outcome).__name__} without a result")
    return run


# -- the property ----------------------------------------------------------------------------


ADAPTER_PROPERTY: Final = settings(
    max_examples=ADAPTER_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@ADAPTER_PROPERTY
@given(scenario=scenarios())
async def test_outcome_truth_over_tcp(flavor: Flavor, scenario: Scenario) -> None:
    verify(await deliver(flavor, scenario))


@ADAPTER_PROPERTY
@given(scenario=scenarios(fault=end_faults()))
async def test_a_fault_around_the_end_of_data_over_tcp(flavor: Flavor, scenario: Scenario) -> None:
    # The fault where the server's last words and the client's end of data
    # cross, over a real socket: whether the write of the end fails, and
    # what the client read before, is the adapter's and the kernel's doing
    # here (the scenario's writes_fail_after_close only plays it in the
    # core's drive). How the first bug of this kind was found.
    verify(await deliver(flavor, scenario))


# -- regressions ------------------------------------------------------------------------------

ALICE: Final = "alice@example.com"
BOB: Final = "bob@example.com"
REJECT: Final = "reject@example.org"
CAROL_RCPT: Final = "carol@example.org"
RCPT1: Final = "rcpt1@example.org"


def plan(index: int, sender: str, *recipients: str, streamed: bool = False) -> Plan:
    return Plan(
        sender=sender,
        recipients=recipients,
        body=make_body(index, [b"Hello", b".dot needs stuffing"]),
        streamed=streamed,
    )


@pytest.mark.parametrize("streamed", [False, True])
async def test_exim_bdat_refused_then_next_message_keeps_its_sender(
    flavor: Flavor, streamed: bool
) -> None:
    # a) Exim keeps the MAIL after refusing BDAT: Bob's RCPTs must not join
    # Alice's transaction.
    scenario = Scenario(
        config=config(),
        messages=(plan(0, ALICE, REJECT), plan(1, BOB, CAROL_RCPT, streamed=streamed)),
        variant=Variant.EXIM,
        features=Features(chunking=True, pipelining=True),
        policy=Policy(rcpt={REJECT: 550}),
    )
    run = await deliver(flavor, scenario)
    verify(run)
    assert [type(e).__name__ for e in run.events] == ["MessageFailed", "MessageAccepted"]
    assert run.server.queued == [Queued(BOB, (CAROL_RCPT,), scenario.messages[1].body, "Q1")]


@pytest.mark.parametrize("queued", [False, True])
@pytest.mark.parametrize("chunking", [False, True])
async def test_malformed_final_reply_leaves_the_status_unknown(
    flavor: Flavor, chunking: bool, queued: bool
) -> None:
    # g) "250-... 550 ..." to the end of the data: the message may or may not
    # have been queued; the caller must be told so.
    run = await deliver(
        flavor,
        Scenario(
            config=config(),
            messages=(plan(0, ALICE, RCPT1),),
            features=Features(chunking=chunking),
            fault=Fault(trigger=Trigger.END, failure=Failure.MALFORMED, queued=queued),
        ),
    )
    verify(run)
    [event] = run.events
    assert isinstance(event, MessageFailed)
    assert event.error.status_unknown
    assert [(r.recipient, r.state) for r in event.result.recipients] == [
        (RCPT1, RecipientState.UNKNOWN)
    ]
    assert len(run.server.queued) == int(queued)
