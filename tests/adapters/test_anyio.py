"""What only the anyio adapter does, on both of anyio's event loops.

The adapter suites (``flavor``) run smtpcore.adapters.anyio as the
``anyio-asyncio`` and ``anyio-trio`` flavours; these tests add what the
common facade cannot express: anyio cancellation (``move_on_after`` around a
send), a task group sharing one ``Client``, ``stream=`` with a connected
anyio stream, ``sock=``, and ``abort()`` from another task. Each runs under
``anyio_backend`` asyncio and trio; the servers are real, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from servers import (
    LOOPBACK,
    RecordingHandler,
    SMTPServer,
    TinyServer,
    TLSMaterial,
    free_port,
    wait_until_async,
)
from smtpcore.adapters import anyio as smtp

from smtpcore import ConnectionLostError, MessageResult, SMTPError, Stage

pytestmark = pytest.mark.anyio

SENDER = "alice@example.test"
RCPT = "bob@example.test"
BODY = b"Subject: anyio\r\n\r\nHello.\r\n"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both of anyio's event loops."""
    backend: str = request.param
    return backend


@dataclass
class SlowFirstData(RecordingHandler):
    """Answers the first message's final dot only after ``delay`` seconds."""

    delay: float = 5.0
    slowed: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.slowed:
            self.slowed = True
            await asyncio.sleep(self.delay)  # aiosmtpd runs on asyncio, in its thread
        return await super().handle_DATA(server, session, envelope)


@dataclass
class PipeliningHandler(RecordingHandler):
    """Offers PIPELINING (aiosmtpd reads pipelined commands in order but
    does not say so)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves that to this hook
        responses.insert(-1, "250-PIPELINING")
        return responses


# -- cancellation --------------------------------------------------------------------------


async def test_move_on_after_mid_send_closes_the_connection_and_the_client_reconnects(
    start_smtpd: Callable[..., SMTPServer],
) -> None:
    handler = SlowFirstData()
    server = start_smtpd(handler=handler)
    async with smtp.Client(**server.client_options()) as client:
        # Cancelled while the first message's final dot waits for its reply.
        with anyio.move_on_after(0.5) as scope:
            await client.send_message(SENDER, [RCPT], message=BODY)
        assert scope.cancelled_caught
        assert await wait_until_async(lambda: server.open_connections() == 0, timeout=2.0)
        session = client.session
        assert session is None or session.closed
        # The client is still usable: the next message reconnects.
        result = await client.send_message(SENDER, [RCPT], message=BODY)
        assert result.accepted == (RCPT,)
    assert len(set(handler.peers)) == 2  # one connection each


async def test_cancelled_greeting_wait_closes_the_connection(
    start_tiny: Callable[..., TinyServer],
) -> None:
    server = start_tiny(greeting=None)
    with anyio.move_on_after(0.3) as scope:
        await smtp.send(SENDER, [RCPT], message=BODY, **server.client_options(timeout=30))
    assert scope.cancelled_caught
    assert await wait_until_async(lambda: server.open_connections == 0, timeout=2.0)


@pytest.mark.parametrize("mode", ["plain", "implicit"])
async def test_abort_from_another_task_closes_at_once(
    start_smtpd: Callable[..., SMTPServer], tls: TLSMaterial, mode: str
) -> None:
    # The server holds its reply to the final dot: the sending task waits on
    # the socket (under TLS too) when the main task aborts.
    handler = SlowFirstData()
    server = start_smtpd(mode=mode, tls=tls, handler=handler)
    sock = socket.create_connection((LOOPBACK, server.port))  # to see it closed
    client = smtp.Client(sock=sock, **server.client_options(timeout=30))
    outcome: list[MessageResult | SMTPError] = []

    async def send_one() -> None:
        try:
            outcome.append(await client.send_message(SENDER, [RCPT], message=BODY))
        except SMTPError as exc:
            outcome.append(exc)

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(send_one)
        assert await wait_until_async(lambda: handler.slowed)
        client.abort()
        # Closed before anything else runs: at once (trio, anyio's own
        # sockets) or in the event loop's next turn (asyncio's transports).
        await anyio.lowlevel.checkpoint()
        assert sock.fileno() == -1
        assert await wait_until_async(lambda: server.open_connections() == 0, timeout=2.0)
    # Well before the server's reply, which would have delivered the message.
    assert time.monotonic() - started < handler.delay
    [error] = outcome
    assert isinstance(error, ConnectionLostError), error
    assert error.status_unknown  # the data went out: the server may have it


# -- one client, many tasks ----------------------------------------------------------------


async def test_twenty_tasks_share_one_client_and_one_connection(
    start_smtpd: Callable[..., SMTPServer],
) -> None:
    handler = PipeliningHandler()
    server = start_smtpd(handler=handler)
    results: dict[int, MessageResult] = {}

    async def send_one(client: smtp.Client, index: int) -> None:
        results[index] = await client.send_message(
            f"s{index}@example.test",
            [f"r{index}@example.test"],
            message=b"Subject: %d\r\n\r\nmessage %d\r\n" % (index, index),
        )

    async with smtp.Client(**server.client_options()) as client:
        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(send_one, client, index)
        assert client.server_ready[-1].capabilities.pipelining
    assert sorted(results) == list(range(20))
    for index, result in results.items():
        assert result.sender == f"s{index}@example.test"
        assert result.accepted == (f"r{index}@example.test",)
    received = {m.mail_from: m for m in server.messages}
    assert len(received) == 20
    for index in range(20):
        message = received[f"s{index}@example.test"]
        assert message.rcpt_tos == (f"r{index}@example.test",)
        assert b"message %d\r\n" % index in message.content
    assert len(set(handler.peers)) == 1  # every message over the one connection


# -- a caller's stream or socket -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "starttls", "implicit"])
async def test_send_over_a_connected_anyio_stream(
    start_smtpd: Callable[..., SMTPServer], tls: TLSMaterial, mode: str
) -> None:
    server = start_smtpd(mode=mode, tls=tls)
    stream = await anyio.connect_tcp(LOOPBACK, server.port)
    result = await smtp.send(SENDER, [RCPT], message=BODY, stream=stream, **server.client_options())
    assert result is not None
    assert result.accepted == (RCPT,)
    assert server.handler.last().tls is (mode != "plain")
    assert await wait_until_async(lambda: server.open_connections() == 0, timeout=2.0)


async def test_send_over_a_connected_socket(smtpd: SMTPServer) -> None:
    sock = socket.create_connection((LOOPBACK, smtpd.port))
    result = await smtp.send(SENDER, [RCPT], message=BODY, sock=sock, **smtpd.client_options())
    assert result is not None
    assert result.accepted == (RCPT,)
    await anyio.lowlevel.checkpoint()  # asyncio's transport closes in the next turn
    assert sock.fileno() == -1  # the client took it over, and closed it


async def test_sock_and_stream_together_are_refused(smtpd: SMTPServer) -> None:
    with socket.create_connection((LOOPBACK, smtpd.port)) as sock:
        stream = await anyio.connect_tcp(LOOPBACK, smtpd.port)
        async with stream:
            with pytest.raises(TypeError):
                smtp.Client(sock=sock, stream=stream, **smtpd.client_options())
            # Closed only once the server has them: a connection it accepted
            # after the test (a busy machine) would outlive its event loop.
            assert await wait_until_async(lambda: smtpd.open_connections() == 2, timeout=5.0)


async def test_abort_shuts_a_callers_stream_down(smtpd: SMTPServer) -> None:
    """A caller's anyio stream closes only by awaiting: abort() ends the
    connection (the server sees it at once) and leaves the closing to it."""
    stream = await anyio.connect_tcp(LOOPBACK, smtpd.port)
    async with stream:
        client = smtp.Client(stream=stream, **smtpd.client_options())
        await client.connect()
        client.abort()
        assert await wait_until_async(lambda: smtpd.open_connections() == 0, timeout=2.0)


# -- connecting ----------------------------------------------------------------------------


async def test_bind_address_and_port(smtpd: SMTPServer) -> None:
    port = free_port()
    await smtp.send(
        SENDER, [RCPT], message=BODY, **smtpd.client_options(bind_address=LOOPBACK, bind_port=port)
    )
    assert smtpd.handler.peers == [(LOOPBACK, port)]


async def test_connection_refused_has_its_errno() -> None:
    with pytest.raises(ConnectionLostError) as info:
        await smtp.send(SENDER, [RCPT], message=BODY, server=LOOPBACK, port=free_port(), tls="none")
    assert info.value.errno == errno.ECONNREFUSED
    assert info.value.operation == "connect"
    assert info.value.stage is Stage.CONNECT


async def test_a_name_that_does_not_resolve() -> None:
    with pytest.raises(ConnectionLostError) as info:
        # RFC 6761 6.4: .invalid never resolves.
        await smtp.send(SENDER, [RCPT], message=BODY, server="no-such-host.invalid", tls="none")
    assert info.value.operation == "resolve"
    assert info.value.stage is Stage.CONNECT
