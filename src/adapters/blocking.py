"""The blocking-socket adapter: ``send()``, ``Client`` and ``Pool``.

The client is the one every adapter shares, generated without ``async``
(:mod:`smtpcore.adapters._sync_client`); this module is its I/O on blocking
sockets: connect, write, read with the stage's timeout, TLS handshake,
close, and threads for ``Pool``. Every protocol decision is the core's.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar, final

from smtpcore import ConfigurationError, SMTPTimeoutError, Stage, TLSError

from ._common import RECORD_SIZE, ClientOptions, TLSInfo, connect_error, received_now
from ._sync_client import SyncClient, SyncPool, SyncSend

__all__ = ["Client", "Pool", "send"]

T = TypeVar("T")

_READ_SIZE = 65536

#: poll()'s event bits (select() stands in for it where there is none).
_IN = getattr(select, "POLLIN", 1)
_OUT = getattr(select, "POLLOUT", 4)


def open_socket(options: ClientOptions) -> socket.socket:
    """Connect (TCP or UNIX socket), binding and wrapping in TLS as asked."""
    timeout = options.timeouts(Stage.CONNECT)
    try:
        if options.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(options.unix_path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(
                (options.server, options.port), timeout, options.source_address
            )
    except socket.gaierror as exc:
        raise connect_error(exc, options.address, "resolve") from exc
    except OSError as exc:
        raise connect_error(exc, options.address) from exc
    if options.unix_path is None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def wrap_tls(sock: socket.socket, options: ClientOptions, hostname: str | None) -> ssl.SSLSocket:
    """Run the TLS handshake on ``sock`` (closed, with TLSError, on failure)."""
    assert options.ssl_context is not None
    seconds = options.timeouts(Stage.TLS_HANDSHAKE)
    sock.settimeout(seconds)
    try:
        return options.ssl_context.wrap_socket(sock, server_hostname=hostname)
    except TimeoutError as exc:
        sock.close()
        raise SMTPTimeoutError(Stage.TLS_HANDSHAKE, seconds) from exc
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        sock.close()
        raise TLSError(f"TLS handshake with {options.address} failed: {exc}") from exc


class _Socket:
    """A connected socket as a :class:`SyncConnection`.

    The socket is non-blocking and the timeouts are kept here: each read
    waits in ``poll()`` for at most what is left of its time, then reads;
    each write is tried at once and waits only when the kernel's buffer is
    full. A Python socket timeout would cost three system calls more a
    message (``settimeout``'s ``ioctl`` before each read and write, whose
    time differs, and the ``poll`` CPython makes before every send).
    """

    written: int | None = None

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self._poll: select.poll | None = None
        if hasattr(select, "poll"):  # not on Windows: select() there
            self._poll = select.poll()
            self._poll.register(sock.fileno(), _IN)

    def write(self, data: bytes, timeout: float) -> None:
        if len(data) > RECORD_SIZE and isinstance(self.sock, ssl.SSLSocket):
            self._write_rest(memoryview(data), time.monotonic() + timeout, 0, wait=False)
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError:
            self.written = 0
            raise
        if sent < len(data):
            self._write_rest(memoryview(data)[sent:], time.monotonic() + timeout, sent)

    def _write_rest(
        self, rest: memoryview, deadline: float, sent: int, *, wait: bool = True
    ) -> None:
        """Write ``rest``, waiting for room in the kernel's buffer (full, when
        ``wait``) up to ``deadline``.

        Under TLS a send writes all of its records or reports none
        (OpenSSL keeps what it encrypted for the retry, which passes the
        same bytes), so each send is of one record's worth at most: the
        sends that completed are then the plain octets that may have left.
        The half-written record of a failed one is dropped with the
        connection, and the server cannot read half of one.
        """
        tls = isinstance(self.sock, ssl.SSLSocket)
        size = RECORD_SIZE if tls else len(rest)
        want = _OUT
        try:
            while rest:
                if wait:
                    self._wait(want, deadline)
                wait, want = True, _OUT
                try:
                    taken = self.sock.send(rest[:size])
                except (BlockingIOError, ssl.SSLWantWriteError):
                    continue
                except ssl.SSLWantReadError:
                    want = _IN  # TLS needs the peer's bytes first
                    continue
                rest = rest[taken:]
                sent += taken
                # A plain send takes all the kernel has room for; a TLS one a
                # record, and the next may fit at once.
                wait = not tls
        except OSError:  # TimeoutError too
            self.written = sent
            raise

    def read(self, timeout: float) -> bytes:
        sock = self.sock
        deadline = 0.0  # set when a wait is first needed
        while True:
            # A reply is often there already (the server answered while the
            # client did its part): try first, wait in poll() only if not.
            # Under TLS this also takes the decrypted bytes OpenSSL holds.
            try:
                return sock.recv(_READ_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError):
                want = _IN  # nothing yet, or a partial TLS record
            except ssl.SSLWantWriteError:
                want = _OUT
            if not deadline:
                deadline = time.monotonic() + timeout
            self._wait(want, deadline)

    def _wait(self, events: int, deadline: float) -> None:
        """Wait until the socket is ready for ``events`` (or has failed);
        TimeoutError at ``deadline``."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if self._ready(events, left):
                return

    def _ready(self, events: int, seconds: float) -> bool:
        poll, fd = self._poll, self.sock.fileno()
        if fd < 0:
            return True  # closed under us (abort): the call says so
        if poll is None:
            reading = events == _IN
            ready = select.select([fd] if reading else [], [] if reading else [fd], [fd], seconds)
            return any(ready)
        if events == _IN:
            return bool(poll.poll(math.ceil(seconds * 1000)))
        poll.modify(fd, events)
        try:
            return bool(poll.poll(math.ceil(seconds * 1000)))
        finally:
            poll.modify(fd, _IN)

    def readable_now(self) -> bool:
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        return self._ready(_IN, 0.0)

    def received_now(self) -> bytes:
        return received_now(self.sock, _READ_SIZE)

    def start_tls(self, options: ClientOptions, hostname: str | None) -> None:
        # Nothing is read ahead here: bytes after the 220 reply reach the
        # handshake, which fails on them.
        self.sock = wrap_tls(self.sock, options, hostname)  # the same descriptor
        self.sock.setblocking(False)

    def tls_info(self) -> TLSInfo | None:
        sock = self.sock
        return TLSInfo.from_ssl_object(sock) if isinstance(sock, ssl.SSLSocket) else None

    def abort(self) -> None:
        # A thread blocked in recv() on this socket wakes at the shutdown
        # (close alone leaves it waiting): abort() from another thread.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def close(self, graceful: bool, timeout: float) -> None:
        self.abort()


class _Threads:
    """The :class:`SyncBackend` for blocking sockets: threads where the
    async backends have tasks."""

    def connect(self, options: ClientOptions, given: socket.socket | None) -> _Socket:
        sock = open_socket(options) if given is None else given
        if options.implicit_tls:
            sock = wrap_tls(sock, options, options.tls_hostname)
        return _Socket(sock)

    def lock(self) -> threading.Lock:
        return threading.Lock()

    def semaphore(self, value: int) -> threading.Semaphore:
        return threading.Semaphore(value)

    def to_thread(self, function: Callable[..., T], *args: Any) -> T:
        return function(*args)

    def gather(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        if len(calls) == 1:
            return [calls[0]()]
        with ThreadPoolExecutor(max_workers=max(len(calls), 1)) as executor:
            futures = [executor.submit(call) for call in calls]
            return [future.result() for future in futures]

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def check_callback(self, name: str, callback: object) -> None:
        if callback is not None and _is_async(callback):
            _refuse(name)

    def call(self, callback: Callable[..., object], *args: Any) -> None:
        result = callback(*args)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()  # no "never awaited" warning: the error says it
            _refuse(getattr(callback, "__name__", "callback"))


def _is_async(callback: object) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - a callable object's method
    )


def _refuse(name: str) -> NoReturn:
    raise ConfigurationError(
        f"{name} is a coroutine function: the blocking adapter cannot await it "
        "(use a plain function, or the asyncio, trio or anyio adapter)"
    )


@final
class Client(SyncClient[socket.socket, NoReturn]):
    """One SMTP connection for many messages, over a blocking socket.

    ``with Client("mx.example.net", tls="starttls", auth=("user", "pw")) as c:
    c.send_message("a@example.net", ["b@example.org"], message=b"...")``.
    Keyword arguments: :class:`~smtpcore.adapters.ConnectOptions`; ``sock``
    is a connected socket to use first (e.g. through a proxy). Threads may
    share a client: their messages are pipelined on the one connection. If
    the server closed the connection while it was idle, the next message
    reconnects transparently; a message whose data was sent is never resent.
    """

    _backend = _Threads()


@final
class Pool(SyncPool[socket.socket, NoReturn]):
    """Send many messages over up to ``size`` reused connections, one thread
    per connection. Thread-safe; each message's result is reported on its own."""

    _backend = _Threads()
    _client_class = Client


#: Send one message over one connection (see :class:`SyncSend`).
send = SyncSend(Client, __name__)
