"""The blocking-socket adapter: ``send()``, ``Client`` and ``Pool``.

The client is the one every adapter shares, generated without ``async``
(:mod:`smtpcore.adapters._sync_client`); this module is its I/O on blocking
sockets: connect, write, read with the stage's timeout, TLS handshake,
close, and threads for ``Pool``. Every protocol decision is the core's.
"""

from __future__ import annotations

import contextlib
import inspect
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar, final

from smtpcore import ConfigurationError, SMTPTimeoutError, Stage, TLSError

from ._common import ClientOptions, TLSInfo, connect_error
from ._sync_client import SyncClient, SyncPool, SyncSend

__all__ = ["Client", "Pool", "send"]

T = TypeVar("T")

_READ_SIZE = 65536


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
    """A connected socket as a :class:`SyncConnection`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # Watches the socket between transactions (made on first use; STARTTLS
        # keeps the file descriptor).
        self._selector: selectors.BaseSelector | None = None
        # The socket's timeout as last set here (None: not known, set it).
        self._timeout: float | None = None

    def write(self, data: bytes, timeout: float) -> None:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout
        self.sock.sendall(data)

    def read(self, timeout: float) -> bytes:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout
        return self.sock.recv(_READ_SIZE)

    def readable_now(self) -> bool:
        if self.sock.fileno() < 0:
            return True  # closed under us: reading says so
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.sock.fileno(), selectors.EVENT_READ)
        return bool(self._selector.select(0))

    def start_tls(self, options: ClientOptions, hostname: str | None) -> None:
        # Nothing is read ahead here: bytes after the 220 reply reach the
        # handshake, which fails on them.
        self.sock = wrap_tls(self.sock, options, hostname)
        self._timeout = None  # the handshake set its own

    def tls_info(self) -> TLSInfo | None:
        sock = self.sock
        return TLSInfo.from_ssl_object(sock) if isinstance(sock, ssl.SSLSocket) else None

    def abort(self) -> None:
        selector, self._selector = self._selector, None
        if selector is not None:
            selector.close()
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
