"""The library API every adapter shares: typed options, callbacks, retries, progress.

Each test runs on the five flavours (blocking, asyncio, trio, anyio on
asyncio and on trio) against aiosmtpd on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from servers import LOOPBACK, Flavor, RecordingHandler, SMTPServer, TLSMaterial
from smtpcore.adapters import ConnectOptions, MessageOptions, Progress, RetryPolicy, SendResult
from smtpcore.adapters._common import ClientOptions, make_message

from smtpcore import (
    ConfigurationError,
    ConnectionLostError,
    MessageResult,
    SMTPError,
    Stage,
    TemporaryReplyError,
    TLSError,
)

pytestmark = pytest.mark.anyio

SENDER = "alice@example.test"
RCPT = "bob@example.test"


def body(subject: str) -> bytes:
    return f"Subject: {subject}\r\n\r\nhello\r\n".encode()


class DeferringHandler(RecordingHandler):
    """Answers the end of data of each message whose subject holds
    ``defer`` with 451 the first ``times`` times, then accepts it."""

    def __init__(self, times: int = 1) -> None:
        super().__init__()
        self.times = times
        self.deferred: dict[bytes, int] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = bytes(envelope.original_content)
        subject = content.split(b"\r\n", 1)[0]
        if b"defer" in subject and self.deferred.get(subject, 0) < self.times:
            self.deferred[subject] = self.deferred.get(subject, 0) + 1
            return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


# -- typed options -----------------------------------------------------------------------------


def test_the_typed_options_are_the_ones_the_adapters_take() -> None:
    """ConnectOptions and MessageOptions list exactly the parameters with
    defaults in ClientOptions.build and make_message: one list, no drift."""
    build = set(inspect.signature(ClientOptions.build).parameters) - {"server", "port"}
    assert set(ConnectOptions.__annotations__) == build
    message = set(inspect.signature(make_message).parameters) - {
        "sender",
        "recipients",
        "message",
        "message_file",
        "file_handle",
    }
    assert set(MessageOptions.__annotations__) == message


async def test_signatures_show_every_option(flavor: Flavor) -> None:
    for entry in (flavor.module.Client, flavor.module.Pool, flavor.module.send):
        parameters = inspect.signature(entry).parameters
        for name in ("timeout", "server_hostname", "helo_fallback", "log_message_data", "ca_file"):
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, (entry, name)
        assert parameters["timeout"].default == 30.0
        assert parameters["helo_fallback"].default is True


async def test_a_misspelt_option_is_a_clear_type_error(flavor: Flavor) -> None:
    with pytest.raises(TypeError, match=r"Client\(\) got .* 'timout'; did you mean 'timeout'\?"):
        flavor.module.Client(LOOPBACK, 25, timout=5)
    with pytest.raises(TypeError, match=r"Pool\(\) got .* 'chunkign'; did you mean 'chunking'\?"):
        flavor.module.Pool(LOOPBACK, 25, chunkign=False)
    with pytest.raises(TypeError, match=r"send\(\) got .* 'pipelinig'"):
        await flavor.send(SENDER, RCPT, message=body("x"), server=LOOPBACK, pipelinig=False)


async def test_a_misspelt_message_option_is_a_clear_type_error(
    flavor: Flavor, smtpd: SMTPServer
) -> None:
    async with flavor.client(**smtpd.client_options()) as client:
        with pytest.raises(TypeError, match=r"'smtputf'; did you mean 'smtputf8'\?"):
            await client.send_message(SENDER, RCPT, message=body("x"), smtputf=True)
        with pytest.raises(TypeError, match=r"send_many item.*'recipient'"):
            await flavor.call(
                client.client.send_many, [{"sender": SENDER, "recipient": RCPT, "message": b""}]
            )
    assert smtpd.messages == []


MYPY_SNIPPET = """
from smtpcore.adapters import {module} as adapter

adapter.Client("127.0.0.1", 25, timeout=5, server_hostname="mx.test", helo_fallback=False)
adapter.Client("127.0.0.1", 25, timout=5)
adapter.Pool("127.0.0.1", 25, size=2, chunkign=False)
adapter.send("a@example.org", "b@example.org", message=b"", tls=1)
"""


@pytest.mark.parametrize("module", ["blocking", "asyncio", "trio", "anyio"])
def test_mypy_strict_rejects_a_misspelt_option(module: str, tmp_path: Path) -> None:
    # The development install has mypy (make test); the test matrix's plain
    # installs of the package do not.
    pytest.importorskip("mypy")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(MYPY_SNIPPET.format(module=module)))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = {int(line.split(":")[1]) for line in errors}
    # The correct call (line 4) passes; each wrong one is an error.
    assert lines == {5, 6, 7}, proc.stdout
    assert '"timout"' in proc.stdout
    assert '"chunkign"' in proc.stdout


# -- TLS conveniences --------------------------------------------------------------------------


def _write_ca(tls: TLSMaterial, path: Path) -> str:
    tls.ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_ca_file_trusts_a_private_ca(
    flavor: Flavor, start_smtpd: Any, tls: TLSMaterial, tmp_path: Path
) -> None:
    server = start_smtpd(mode="starttls", tls=tls)
    ca_file = _write_ca(tls, tmp_path / "ca.pem")
    options = {"server": LOOPBACK, "port": server.port, "tls": "starttls"}
    result = await flavor.send_ok(SENDER, RCPT, message=body("ca"), ca_file=ca_file, **options)
    assert result.accepted == (RCPT,)
    assert server.handler.last().tls
    # Without it, the system's trust store does not know the test CA.
    with pytest.raises(SMTPError) as failed:
        await flavor.send(SENDER, RCPT, message=body("no ca"), **options)
    assert "certificate" in str(failed.value).lower() or isinstance(failed.value, TLSError)


async def test_server_hostname_is_the_name_tls_verifies(
    flavor: Flavor, start_smtpd: Any, tls: TLSMaterial, tmp_path: Path
) -> None:
    """Connect to 127.0.0.1, verify the certificate of mx.test (SNI too)."""
    named = tls.with_cert_for("mx.test")
    server = start_smtpd(mode="implicit", tls=named)
    options = server.client_options()
    await flavor.send_ok(SENDER, RCPT, message=body("sni"), server_hostname="mx.test", **options)
    with pytest.raises(SMTPError, match=r"(?i)hostname|match|certificate"):
        await flavor.send(SENDER, RCPT, message=body("no sni"), **options)


async def test_client_certificate(
    flavor: Flavor, start_smtpd: Any, tls: TLSMaterial, tmp_path: Path
) -> None:
    """A server that demands a client certificate gets the one given."""
    server = start_smtpd(mode="implicit", tls=tls)
    context = server._controller.ssl_context
    context.verify_mode = ssl.CERT_REQUIRED
    tls.ca.configure_trust(context)
    leaf = tls.ca.issue_cert("client.example.test")
    cert = tmp_path / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    ca_file = _write_ca(tls, tmp_path / "ca.pem")
    options = {"server": LOOPBACK, "port": server.port, "tls": "implicit", "ca_file": ca_file}
    await flavor.send_ok(SENDER, RCPT, message=body("cert"), client_cert=str(cert), **options)
    assert len(server.messages) == 1


async def test_tls_conveniences_are_checked(flavor: Flavor, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="client_key needs client_cert"):
        flavor.module.Client(LOOPBACK, 25, client_key="key.pem")
    with pytest.raises(ConfigurationError, match="not both"):
        flavor.module.Client(LOOPBACK, 25, ssl_context=ssl.create_default_context(), ca_file="x")
    with pytest.raises(ConfigurationError, match="need TLS"):
        flavor.module.Client(LOOPBACK, 25, tls="none", ca_file="x")
    with pytest.raises(ConfigurationError, match="cannot load ca_file"):
        flavor.module.Client(LOOPBACK, 25, ca_file=str(tmp_path / "missing.pem"))
    secret = tmp_path / "key.pem"
    secret.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError) as failed:
        flavor.module.Client(LOOPBACK, 25, client_cert=str(secret))
    assert "c2VjcmV0" not in str(failed.value)


async def test_session_options_are_reachable(flavor: Flavor, smtpd: SMTPServer) -> None:
    options = smtpd.client_options(
        helo_fallback=False, log_message_data=True, transaction_log=True, max_reply_line=2000
    )
    async with flavor.client(**options) as client:
        await client.send_message(SENDER, RCPT, message=body("data in the log"))
        config = client.client.options.config
        assert (config.helo_fallback, config.log_message_data, config.max_reply_line) == (
            False,
            True,
            2000,
        )
        assert any("data in the log" in str(entry) for entry in client.transcript)


# -- callbacks ---------------------------------------------------------------------------------


async def test_async_callbacks_are_awaited(flavor: Flavor, smtpd: SMTPServer) -> None:
    if not flavor.is_async:
        pytest.skip("the blocking adapter refuses async callbacks (next test)")
    seen: list[object] = []

    async def on_success(context: object, result: SendResult) -> None:
        seen.append((context, result.accepted))

    async def on_failure(context: object, error: SMTPError, *rest: object) -> None:
        seen.append((context, type(error).__name__))

    options = smtpd.client_options(on_success=on_success, on_failure=on_failure)
    assert await flavor.send(SENDER, RCPT, message=body("cb"), context="ok", **options) is None
    smtpd.handler.refuse_rcpt[RCPT] = "550 5.1.1 no such user"
    await flavor.send(SENDER, RCPT, message=body("cb"), context="bad", **options)
    assert seen == [("ok", (RCPT,)), ("bad", "RecipientsRefusedError")]


async def test_blocking_refuses_async_callbacks(smtpd: SMTPServer) -> None:
    from smtpcore.adapters import blocking

    async def on_success(context: object, result: SendResult) -> None:
        raise AssertionError("never called")

    with pytest.raises(ConfigurationError, match="on_success is a coroutine function"):
        blocking.send(
            SENDER, RCPT, message=body("x"), on_success=on_success, **smtpd.client_options()
        )
    with (
        pytest.raises(ConfigurationError, match="progress is a coroutine function"),
        blocking.Client(**smtpd.client_options()) as client,
    ):
        client.send_many([], progress=on_success)  # type: ignore[arg-type]
    assert smtpd.messages == []


# -- retries and progress ----------------------------------------------------------------------


def messages(count: int, deferred: set[int]) -> list[dict[str, Any]]:
    return [
        {
            "sender": SENDER,
            "recipients": [RCPT],
            "message": body(f"{'defer' if i in deferred else 'plain'} {i}"),
        }
        for i in range(count)
    ]


async def test_client_send_many_retries_temporary_failures(
    flavor: Flavor, start_smtpd: Any
) -> None:
    server = start_smtpd(handler=DeferringHandler(times=1))
    updates: list[Progress] = []

    async def progress(update: Progress) -> None:
        updates.append(update)

    def progress_sync(update: Progress) -> None:
        updates.append(update)

    policy = RetryPolicy(attempts=3, backoff=0.01)
    async with flavor.client(**server.client_options()) as client:
        results = await flavor.call(
            client.client.send_many,
            messages(10, {2, 5}),
            retry=policy,
            progress=progress if flavor.is_async else progress_sync,
        )
    assert all(isinstance(r, MessageResult) for r in results), results
    assert len(server.messages) == 10
    assert sorted(u.index for u in updates) == list(range(10))
    attempts = {u.index: u.attempts for u in updates}
    assert attempts[2] == attempts[5] == 2
    assert {attempts[i] for i in range(10) if i not in (2, 5)} == {1}
    last = updates[-1]
    assert (last.done, last.accepted, last.failed, last.in_flight, last.retries) == (
        10,
        10,
        0,
        0,
        2,
    )
    assert last.total == 10


class HoldingHandler(RecordingHandler):
    """Holds its reply to the end of data of the message whose subject
    holds ``hold`` until ``release`` is set (at most 5 s), and records
    whether it was set by then."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.released_in_time: bool | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if b"hold" in bytes(envelope.original_content).split(b"\r\n", 1)[0]:
            loop = asyncio.get_running_loop()
            self.released_in_time = await loop.run_in_executor(None, self.release.wait, 5.0)
        return await super().handle_DATA(server, session, envelope)


class HeldBatch:
    """Four messages to a server that holds its reply to the last one until
    the caller has heard of the first, and the progress callback that hears
    (a coroutine function on the async flavours)."""

    def __init__(self, flavor: Flavor, start_smtpd: Any) -> None:
        self.handler = HoldingHandler()
        self.server: SMTPServer = start_smtpd(handler=self.handler)
        self.updates: list[Progress] = []
        self.messages = messages(4, set())
        self.messages[3]["message"] = body("hold 3")
        self.progress: Any = self._heard_async if flavor.is_async else self._heard

    def _heard(self, update: Progress) -> None:
        self.updates.append(update)
        if update.index == 0:
            self.handler.release.set()

    async def _heard_async(self, update: Progress) -> None:
        self._heard(update)

    def check(self, results: list[MessageResult | SMTPError]) -> None:
        assert all(isinstance(r, MessageResult) for r in results), results
        assert self.handler.released_in_time is True
        assert sorted(u.index for u in self.updates) == [0, 1, 2, 3]
        assert self.updates[-1].done == 4


@pytest.mark.parametrize("with_retry", [False, True], ids=["progress", "progress-and-retry"])
async def test_client_send_many_reports_progress_as_messages_finish(
    flavor: Flavor, start_smtpd: Any, with_retry: bool
) -> None:
    """``progress`` hears of each message when it has its final outcome, not
    when the whole call is over."""
    held = HeldBatch(flavor, start_smtpd)
    options: dict[str, Any] = {"progress": held.progress}
    if with_retry:
        options["retry"] = RetryPolicy(attempts=2, backoff=0.01)
    async with flavor.client(**held.server.client_options()) as client:
        results = await flavor.call(client.client.send_many, held.messages, **options)
    held.check(results)


async def test_pool_send_many_reports_progress_as_messages_finish(
    flavor: Flavor, start_smtpd: Any
) -> None:
    """The same through a pool: a batch's messages are reported as the
    connection has their outcomes, not once the batch is done."""
    held = HeldBatch(flavor, start_smtpd)
    async with flavor.pool(**held.server.client_options(), size=1) as pool:
        results = await flavor.call(
            pool.pool.send_many, held.messages, progress=held.progress, batch_size=4
        )
    held.check(results)


async def test_a_failing_progress_callback_lets_the_batch_finish(
    flavor: Flavor, start_smtpd: Any
) -> None:
    """A callback that raises does not abandon the messages in flight: they
    all finish, then its exception is raised."""
    server = start_smtpd()
    calls: list[int] = []

    def broken(update: Progress) -> None:
        calls.append(update.index)
        raise ValueError("callback bug")

    async def broken_async(update: Progress) -> None:
        broken(update)

    async with flavor.client(**server.client_options()) as client:
        with pytest.raises(ValueError, match="callback bug"):
            await flavor.call(
                client.client.send_many,
                messages(5, set()),
                progress=broken_async if flavor.is_async else broken,
            )
        assert len(server.messages) == 5
        assert calls == [0]  # not called again once it failed
        # The connection is still good for the next message.
        await flavor.call(client.client.send_message, SENDER, [RCPT], message=body("after"))
    assert len(server.messages) == 6


async def test_without_a_policy_nothing_is_retried(flavor: Flavor, start_smtpd: Any) -> None:
    server = start_smtpd(handler=DeferringHandler(times=1))
    async with flavor.client(**server.client_options()) as client:
        results = await flavor.call(client.client.send_many, messages(4, {1}))
    assert isinstance(results[1], TemporaryReplyError)
    assert [isinstance(r, MessageResult) for r in results] == [True, False, True, True]


async def test_retries_are_bounded(flavor: Flavor, start_smtpd: Any) -> None:
    server = start_smtpd(handler=DeferringHandler(times=10))
    async with flavor.client(**server.client_options()) as client:
        results = await flavor.call(
            client.client.send_many,
            messages(3, {0}),
            retry=RetryPolicy(attempts=3, backoff=0.01),
        )
    assert isinstance(results[0], TemporaryReplyError)
    assert server.handler.deferred == {b"Subject: defer 0": 3}


async def test_pool_send_many_retries_and_reports_progress(
    flavor: Flavor, start_smtpd: Any
) -> None:
    server = start_smtpd(handler=DeferringHandler(times=2))
    updates: list[Progress] = []
    deferred = set(range(0, 60, 7))
    policy = RetryPolicy(attempts=4, backoff=0.01, multiplier=1.0)
    async with flavor.pool(**server.client_options(), size=3) as pool:
        results = await flavor.call(
            pool.pool.send_many, messages(60, deferred), retry=policy, progress=updates.append
        )
    assert all(isinstance(r, MessageResult) for r in results), [
        r for r in results if not isinstance(r, MessageResult)
    ]
    assert len(server.messages) == 60
    assert len(updates) == 60
    assert {u.index: u.attempts for u in updates if u.index in deferred} == dict.fromkeys(
        deferred, 3
    )
    assert max(u.done for u in updates) == 60
    assert updates[-1].in_flight == 0


async def test_pool_reads_an_iterator_as_it_goes(flavor: Flavor, smtpd: SMTPServer) -> None:
    """A generator that stops yielding stops the run: the caller's way to
    stop handing out messages (the CLI's Ctrl-C)."""
    taken: list[int] = []

    def feed() -> Any:
        for i, item in enumerate(messages(40, set())):
            if i == 12:
                return
            taken.append(i)
            yield item

    async with flavor.pool(**smtpd.client_options(), size=2) as pool:
        results = await flavor.call(pool.pool.send_many, feed(), batch_size=4)
    assert len(results) == 12 == len(smtpd.messages)


def test_retry_policy_decisions() -> None:
    policy = RetryPolicy(attempts=3, backoff=2, multiplier=3, max_backoff=10)
    assert [policy.delay(n) for n in (1, 2, 3)] == [2, 6, 10]
    lost = ConnectionLostError("reset", stage=Stage.RCPT)
    assert policy.should_retry(lost, 1)
    assert not policy.should_retry(lost, 3)
    unknown = ConnectionLostError("reset after the dot", stage=Stage.DATA_TERMINATION)
    assert unknown.status_unknown
    assert not policy.should_retry(unknown, 1)
    assert RetryPolicy(retry_unknown=True).should_retry(unknown, 1)
    with pytest.raises(ConfigurationError):
        RetryPolicy(attempts=0)


async def test_file_bodies_are_read_again_for_a_retry(
    flavor: Flavor, start_smtpd: Any, tmp_path: Path
) -> None:
    """A message deferred once goes again whole: a file given by name is
    opened again, a file handle is rewound to where its body started."""
    server = start_smtpd(handler=DeferringHandler(times=1))
    by_name, by_handle = tmp_path / "a.eml", tmp_path / "b.eml"
    by_name.write_bytes(body("defer a"))
    by_handle.write_bytes(b"junk before the body" + body("defer b"))
    for run in ("client", "pool"):
        server.handler.deferred.clear()
        server.handler.messages.clear()
        with open(by_handle, "rb") as handle:
            handle.seek(len(b"junk before the body"))
            items = [
                {"sender": SENDER, "recipients": [RCPT], "message_file": os.fspath(by_name)},
                {"sender": SENDER, "recipients": [RCPT], "file_handle": handle},
            ]
            policy = RetryPolicy(backoff=0.01)
            if run == "client":
                async with flavor.client(**server.client_options()) as client:
                    results = await flavor.call(client.client.send_many, items, retry=policy)
            else:
                async with flavor.pool(**server.client_options(), size=1) as pool:
                    results = await flavor.call(pool.pool.send_many, items, retry=policy)
        assert all(isinstance(r, MessageResult) for r in results), (run, results)
        got = sorted(m.content for m in server.messages)
        assert got == [body("defer a"), body("defer b")], run


async def test_pool_stop_winds_down_a_run(flavor: Flavor, start_smtpd: Any) -> None:
    """``stop()`` (from another thread here, as on Ctrl-C): the batches on
    the wire finish, nothing more is handed out or retried, and a message
    waiting for a retry ends with its last error, reported to ``progress``,
    without waiting out its backoff."""
    server = start_smtpd(handler=DeferringHandler(times=10))
    updates: list[Progress] = []
    policy = RetryPolicy(attempts=5, backoff=30)
    read: list[int] = []

    def feed() -> Any:
        for index, item in enumerate(messages(40, {0, 1, 2, 3})):
            read.append(index)
            if index >= 8:
                time.sleep(0.2)  # a slow source from here on
            yield item

    async with flavor.pool(**server.client_options(), size=2) as pool:
        timer = threading.Timer(1.0, pool.pool.stop)
        timer.start()
        started = time.monotonic()
        try:
            results = await flavor.call(
                pool.pool.send_many, feed(), retry=policy, progress=updates.append, batch_size=2
            )
        finally:
            timer.cancel()
        took = time.monotonic() - started
    assert took < 10, took  # not the 30 s backoff
    assert len(read) < 40  # the rest was never read
    assert len(results) == len(read) == len(updates)
    assert [type(r) for r in results[:4]] == [TemporaryReplyError] * 4
    assert all(isinstance(r, MessageResult) for r in results[4:])
    assert updates[-1].in_flight == 0
    assert set(server.handler.deferred.values()) == {1}  # tried once, never retried


class SlowHandler(RecordingHandler):
    """Holds each end of data for ``delay`` seconds before accepting."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


async def test_pool_abort_closes_every_connection_at_once(flavor: Flavor, start_smtpd: Any) -> None:
    """``abort()`` from another thread: every connection closes now, the run
    returns well before the server would have answered, each message in
    flight fails with its status unknown (its data went out) or known (it
    had not), and none is left without an outcome."""
    server = start_smtpd(handler=SlowHandler(delay=5))
    updates: list[Progress] = []
    results: list[MessageResult | SMTPError] = []

    async def run(pool: Any) -> None:
        results.extend(
            await flavor.call(
                pool.send_many, messages(6, set()), progress=updates.append, batch_size=3
            )
        )

    async with flavor.pool(**server.client_options(), size=2) as pool:
        started = time.monotonic()
        if flavor.is_async:  # from another task
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run, pool.pool)
                await anyio.sleep(1.0)
                pool.pool.abort()
        else:  # from another thread
            timer = threading.Timer(1.0, pool.pool.abort)
            timer.start()
            try:
                await run(pool.pool)
            finally:
                timer.cancel()
        took = time.monotonic() - started
    assert took < 4, took
    assert len(results) == 6 == len(updates)
    assert all(isinstance(r, ConnectionLostError) for r in results), results
    assert any(r.status_unknown for r in results if isinstance(r, SMTPError))
    assert server.messages == []


async def test_client_abort_ends_its_session(flavor: Flavor, smtpd: SMTPServer) -> None:
    """``abort()`` ends the session too (the hand-written blocking client left
    it open, with no error), and the next message opens a new connection."""
    client = flavor.module.Client(**smtpd.client_options())
    await flavor.call(client.connect)
    session = client.session
    client.abort()
    assert session.closed
    assert isinstance(session.error, ConnectionLostError)
    await flavor.call(client.send_message, SENDER, RCPT, message=body("after abort"))
    assert client.session is not session
    await flavor.call(client.close)
    assert len(smtpd.messages) == 1
