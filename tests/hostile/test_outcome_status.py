"""Whether a failed message's fate is known, as each adapter reports it.

RFC 5321 4.5.3.2.6: only once the final dot (or BDAT LAST) went out can the
server have taken a message whose reply never came. Before that the message
was certainly not delivered, and saying "delivery status unknown" would
stop a caller from sending it again.

* A server that resets the connection while the client still writes a big
  body: the dot never left the client, so the error is a write failure with
  the status known. A client that buffers its writes (asyncio's transports
  do) must not count buffered bytes as sent, whether the dot shares the
  body's write or has one of its own, nor a send that failed at once.
* A server that reads the dot and closes without a reply: the status is
  unknown, and the error raised is the very one the session reported in
  ``MessageFailed.error``, whichever of ``send``, ``Client.send_message`` or
  ``Client.send_many`` sent the message.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any, Final

import pytest
from servers import Flavor, TLSMaterial
from smtpcore.adapters._common import ClientOptions
from smtpcore.adapters.asyncio import _Stream, open_stream

from smtpcore import (
    ConnectionLostError,
    Event,
    MessageFailed,
    MessageResult,
    Session,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    TemporaryReplyError,
)

from .conftest import StartPeer, attempt
from .peer import (
    BODY,
    EHLO,
    LOOPBACK,
    MAIL,
    RCPT,
    RCPT_TO,
    SENDER,
    Close,
    Deaf,
    Expect,
    Pause,
    ReadExactly,
    ReadUntil,
    Reset,
    Send,
    StartTLS,
    Step,
    ehlo_reply,
    envelope,
    hello,
)

pytestmark = pytest.mark.anyio

#: 40 MB: far more than the loopback socket buffers of both sides hold.
BIG = (b"x" * 998 + b"\r\n") * 40_000
#: What the server reads of it before the reset.
READ = 64 * 1024


def reset_after_354() -> list[Step]:
    return [Expect(b"DATA"), Send(b"354 go ahead\r\n"), ReadExactly(READ), Reset()]


def starttls() -> list[Step]:
    return [
        *hello(b"STARTTLS"),
        Expect(b"STARTTLS"),
        Send(b"220 go ahead\r\n"),
        StartTLS(),
        Expect(EHLO),
        Send(ehlo_reply()),
    ]


def assert_not_delivered(error: SMTPError) -> None:
    """A write failure before the dot: the status is known."""
    assert isinstance(error, ConnectionLostError), repr(error)
    assert error.operation == "write", str(error)
    assert error.status_unknown is False, str(error)
    assert "status unknown" not in str(error)
    if error.result is not None:
        assert error.result.unknown == ()
        assert error.result.status_known


async def test_reset_while_writing_the_data(flavor: Flavor, start_peer: StartPeer) -> None:
    """The server takes 64 KiB of a 40 MB body, then resets: the dot was
    never written."""
    peer = start_peer([*hello(), *envelope(), *reset_after_354()])
    outcome = await attempt(flavor, peer, message=BIG)
    error = outcome.failed(ConnectionLostError)
    assert_not_delivered(error)
    assert error.errno in (errno.ECONNRESET, errno.EPIPE)
    assert outcome.record.bodies == [BIG[:READ]]


async def test_reset_while_writing_the_data_under_tls(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial
) -> None:
    """The same inside TLS, where the bytes the client buffers are records."""
    peer = start_peer([*starttls(), *envelope(), *reset_after_354()])
    outcome = await attempt(
        flavor, peer, message=BIG, tls="starttls", ssl_context=tls.client_context()
    )
    assert_not_delivered(outcome.failed(ConnectionLostError))
    assert outcome.record.tls_up


# -- asyncio's write, on its own ---------------------------------------------------------------


async def connected() -> tuple[_Stream, socket.socket]:
    """An asyncio stream and the server's end of its connection."""
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = listener.getsockname()[1]
        stream = await open_stream(ClientOptions.build(server=LOOPBACK, port=port, tls="none"))
        server, _ = listener.accept()  # the connection is in the backlog already
    return stream, server


def test_asyncio_small_writes_never_wait() -> None:
    """A write the kernel takes at once returns without a trip through the
    event loop."""

    async def main() -> None:
        stream, server = await connected()
        waits = 0
        wait = stream._wait

        async def counted(timeout: float) -> None:
            nonlocal waits
            waits += 1
            await wait(timeout)

        stream._wait = counted  # type: ignore[method-assign]
        try:
            for _ in range(200):
                await stream.write(b"NOOP\r\n", 1.0)
            assert waits == 0
        finally:
            stream.abort()
            server.close()

    asyncio.run(main())


def test_asyncio_write_after_a_reset_fails() -> None:
    """The send fails at once (the reset is there already): the write must
    fail too, not return as if its bytes had gone."""

    async def main() -> None:
        stream, server = await connected()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server.close()
        time.sleep(0.05)  # the RST arrives; the event loop has not seen it
        try:
            with pytest.raises(OSError):
                await stream.write(b"x" * 100, 1.0)
        finally:
            stream.abort()

    asyncio.run(main())


# -- the dot swallowed -------------------------------------------------------------------------


def swallow_the_dot() -> list[Step]:
    return [*hello(), *envelope(), Expect(b"DATA"), Send(b"354 go\r\n"), ReadUntil(), Close()]


async def send_once(flavor: Flavor, how: str, options: dict[str, Any]) -> SMTPError:
    """Send one message with ``how`` and return the error it failed with."""
    item = {"sender": SENDER, "recipients": [RCPT], "message": BODY}
    try:
        if how == "send":
            await flavor.send(**item, **options)
        else:
            async with flavor.client(**options) as handle:
                if how == "send_message":
                    await handle.send_message(**item)
                else:
                    raise_errors = how == "send_many-raising"
                    [outcome] = await flavor.call(
                        handle.client.send_many, [item], raise_errors=raise_errors
                    )
                    assert isinstance(outcome, SMTPError), outcome
                    return outcome
    except SMTPError as exc:
        return exc
    raise AssertionError("the message was sent")


HOW = ["send", "send_message", "send_many", "send_many-raising"]


@pytest.mark.parametrize("how", HOW)
async def test_swallowed_dot_raises_the_sessions_error(
    flavor: Flavor, start_peer: StartPeer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The server reads the dot and closes without a reply: the status is
    unknown, and the adapter hands over the session's own error object (not
    a copy that would lose its ``result`` or ``status_unknown``)."""
    # Every event the session reports, as the adapter takes it.
    seen: list[object] = []
    events = Session.events

    def spy(self: Session) -> Iterator[Event]:
        for event in events(self):
            seen.append(event)
            yield event

    monkeypatch.setattr(Session, "events", spy)
    peer = start_peer(swallow_the_dot())
    error = await send_once(flavor, how, peer.options())
    await peer.settled()
    failed = [event for event in seen if isinstance(event, MessageFailed)]
    assert len(failed) == 1, failed
    assert error is failed[0].error
    assert isinstance(error, ConnectionLostError)
    assert error.stage is Stage.DATA_TERMINATION
    assert error.status_unknown is True
    assert "delivery status unknown" in str(error)
    assert not failed[0].result.status_known


@pytest.mark.parametrize("how", HOW)
async def test_swallowed_dot_leaves_the_recipient_unknown(
    flavor: Flavor, start_peer: StartPeer, how: str
) -> None:
    """The error raised carries the message's result: its one recipient is
    UNKNOWN (not refused, not sent again)."""
    peer = start_peer(swallow_the_dot())
    error = await send_once(flavor, how, peer.options())
    await peer.settled()
    assert error.status_unknown is True
    result = error.result
    assert isinstance(result, MessageResult), f"no result on {error!r}"
    assert result.unknown == (RCPT,)
    assert result.accepted == ()
    assert result.retryable == ()
    assert not result.status_known
    assert result.data_sent


# -- a write cut short after a final dot -------------------------------------------------------

#: The second message: under 64 KiB, so that it goes in the same write as the
#: first message's end, and far more than the small socket buffers below hold.
SECOND = b"Subject: second\r\n\r\n" + (b"y" * 78 + b"\r\n") * 700
SECOND_RCPT = "carol@example.test"


def small_send_buffer(flavor: Flavor, port: int) -> object:
    """A connected socket whose send buffer is small (the kernel doubles it):
    a large write blocks as soon as the peer stops reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.connect((LOOPBACK, port))
    if flavor.name == "trio":
        import trio

        return trio.socket.from_stdlib_socket(sock)
    return sock


def two_messages() -> list[dict[str, Any]]:
    return [
        {"sender": SENDER, "recipients": [RCPT], "message": BODY},
        {"sender": SENDER, "recipients": [SECOND_RCPT], "message": SECOND},
    ]


#: How long the server below stops reading: longer than the client's 1 s
#: timeout, with room for a loaded machine.
DEAF: Final = Deaf(3.0)


def first_message_then(*after: Step, tls: bool = False) -> list[Step]:
    """With CHUNKING and PIPELINING, the first message's ``BDAT LAST`` chunk
    and the second message's envelope and chunk go out in one write: the
    server reads the first message whole, then does ``after``. ``tls``:
    after STARTTLS."""
    extensions = (b"PIPELINING", b"CHUNKING")
    return [
        *([*starttls()[:-1], Send(ehlo_reply(*extensions))] if tls else hello(*extensions)),
        Expect(MAIL),
        Expect(RCPT_TO),
        Expect(f"BDAT {len(BODY)} LAST".encode()),
        ReadExactly(len(BODY)),
        *after,
    ]


async def test_a_final_dot_in_a_write_that_timed_out(flavor: Flavor, start_peer: StartPeer) -> None:
    """The server reads the first message whole (and may queue it), says
    nothing, then stops reading: the write times out partway. The first
    message's data went out with no reply, so its status is unknown (RFC
    5321 4.5.3.2.6); the second one's end never left, so it was not sent.
    Before, both were reported not sent: a caller's retry would send the
    first one twice."""
    peer = start_peer(first_message_then(DEAF), receive_buffer=4096)
    sock = small_send_buffer(flavor, peer.port)
    async with flavor.client(**peer.options(sock=sock, timeout=1.0)) as handle:
        outcomes = await flavor.call(handle.client.send_many, two_messages())
    await peer.settled()
    assert outcome_of(outcomes[0]) == ("unknown", True), outcomes[0]
    assert outcome_of(outcomes[1]) == ("not-sent", False), outcomes[1]
    assert peer.record.bodies[0] == BODY


async def test_a_reply_that_came_before_a_write_timed_out(
    flavor: Flavor, start_peer: StartPeer
) -> None:
    """The server reads the first message, answers it (queued), then stops
    reading: the write times out partway with the answer already in the
    client's socket. The client reads it before it reports the timeout: the
    first message was accepted, the second not sent. Before, the first was
    reported unknown although the server had said it queued it: a caller's
    retry would send it twice."""
    peer = start_peer(
        first_message_then(
            Send(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.0.0 queued as Q1\r\n"), DEAF
        ),
        receive_buffer=4096,
    )
    sock = small_send_buffer(flavor, peer.port)
    async with flavor.client(**peer.options(sock=sock, timeout=1.0)) as handle:
        outcomes = await flavor.call(handle.client.send_many, two_messages())
    await peer.settled()
    assert outcome_of(outcomes[1]) == ("not-sent", False), outcomes[1]
    assert isinstance(outcomes[1], SMTPTimeoutError)
    accepted = outcomes[0]
    assert isinstance(accepted, MessageResult), accepted
    assert accepted.accepted == (RCPT,)
    assert accepted.reply is not None
    assert accepted.reply.message.endswith("queued as Q1")


#: Flavors whose TLS connection can be read without waiting once a write
#: failed: TLS run over memory buffers (asyncio) or a non-blocking SSL socket
#: (blocking). trio's and anyio's TLS streams read only with a checkpoint,
#: which may wait: there the reply is not taken, and the status stays unknown.
READS_UNDER_TLS: Final = frozenset({"blocking", "asyncio", "anyio-asyncio"})


async def test_a_reply_that_came_before_a_write_timed_out_under_tls(
    flavor: Flavor, start_peer: StartPeer, tls: TLSMaterial
) -> None:
    """The same inside TLS: where the adapter can read its TLS connection
    without waiting, the first message is accepted; elsewhere it stays
    unknown (true, if less than the server said). Never "not sent"."""
    peer = start_peer(
        first_message_then(
            Send(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.0.0 queued as Q1\r\n"),
            DEAF,
            tls=True,
        ),
        receive_buffer=4096,
    )
    sock = small_send_buffer(flavor, peer.port)
    options = peer.options(sock=sock, timeout=1.0, tls="starttls", ssl_context=tls.client_context())
    async with flavor.client(**options) as handle:
        outcomes = await flavor.call(handle.client.send_many, two_messages())
    await peer.settled()
    assert peer.record.tls_up
    assert outcome_of(outcomes[1]) == ("not-sent", False), outcomes[1]
    if flavor.name in READS_UNDER_TLS:
        assert isinstance(outcomes[0], MessageResult), outcomes[0]
        assert outcomes[0].accepted == (RCPT,)
    else:
        assert outcome_of(outcomes[0]) == ("unknown", True), outcomes[0]


async def test_a_421_that_came_before_a_reset(flavor: Flavor, start_peer: StartPeer) -> None:
    """RFC 5321 3.8: the server answers the first message's end with 421
    and resets the connection while the client is still writing. The client
    reads the 421 before it reports the failed write: the first message was
    refused (status known, worth retrying), the second not sent, and the
    error says the server closed the service, not only that a write failed."""
    peer = start_peer(
        first_message_then(
            Send(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n421 4.3.2 shutting down\r\n"),
            Pause(0.3),
            Reset(),
        ),
        receive_buffer=4096,
    )
    sock = small_send_buffer(flavor, peer.port)
    async with flavor.client(**peer.options(sock=sock, timeout=5.0)) as handle:
        outcomes = await flavor.call(handle.client.send_many, two_messages())
    await peer.settled()
    assert outcome_of(outcomes[1]) == ("not-sent", False), outcomes[1]
    refused = outcomes[0]
    assert outcome_of(refused) == ("refused", False), refused
    assert isinstance(refused, TemporaryReplyError)
    assert refused.reply.code == 421


def outcome_of(outcome: object) -> tuple[str, bool]:
    """(its one recipient's state, error.status_unknown) of a failed message."""
    assert isinstance(outcome, SMTPError), outcome
    assert outcome.result is not None
    [status] = outcome.result.recipients
    return status.state.value, outcome.status_unknown
