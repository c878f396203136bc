"""Two SMTP conversations driven by one selectors loop, with the sans-IO core.

The core (:class:`smtpcore.Session`) makes every protocol decision; this file
only moves bytes: it connects, writes and reads without blocking, runs the TLS
handshake when the session asks for it, and keeps one deadline per wait. The
same loop could drive any number of sessions next to your own sockets.

Run it against a local server (``smtpcore sink --port 8025``, or one with
``--starttls`` and ``SSL_CERT_FILE`` set to the CA it prints)::

    python examples/embed_selectors.py localhost:8025
"""

from __future__ import annotations

import selectors
import socket
import ssl
import sys
import time

from smtpcore import (
    Close,
    GreetingReceived,
    Idle,
    MessageAccepted,
    MessageFailed,
    NeedBody,
    OutgoingMessage,
    Read,
    Session,
    SessionClosed,
    SessionConfig,
    StartTLSAction,
    Write,
)

#: Seconds to wait for the server at each step (one value for every stage).
TIMEOUT = 30.0


class Conversation:
    """One socket and the session that decides what to say on it."""

    def __init__(self, selector: selectors.BaseSelector, host: str, port: int, name: str) -> None:
        self.selector = selector
        self.host = host
        self.name = name
        # TLS policy "opportunistic" (the default): STARTTLS when offered,
        # with the certificate verified for `host`.
        self.session = Session(SessionConfig(local_hostname="client.example"))
        self.sock: socket.socket = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.setblocking(False)
        self.selector.register(self.sock, selectors.EVENT_READ, self)
        self.pending = memoryview(b"")  # the rest of the current Write
        self.handshaking = False  # a TLS handshake is under way
        self.deadline = 0.0  # when the current wait times out
        self.reading: tuple[object, int] | None = None  # the reply being waited for
        self.closed = False
        self.accepted = 0

    # -- what the caller asks ----------------------------------------------

    def submit(self, message: OutgoingMessage) -> None:
        self.session.submit(message)

    def finish(self) -> None:
        """QUIT once everything submitted is done."""
        self.session.quit()

    # -- the loop's callbacks ----------------------------------------------

    def step(self) -> None:
        """Do what the session asks until it has to wait for the network."""
        while not self.closed:
            if self.pending and not self._write():
                self._wait(selectors.EVENT_WRITE)
                return
            if self.handshaking and not self._handshake():
                return  # _handshake chose what to wait for
            if self.pending or self.handshaking:
                continue
            action = self.session.next_action()
            self._report()
            if isinstance(action, Write):
                self.pending = memoryview(action.data)
                self.deadline = time.monotonic() + TIMEOUT
            elif isinstance(action, Read):
                # Reads for the same reply share one deadline, so that a
                # server dripping a reply cannot restart the clock.
                if self.reading != (action.stage, action.replies):
                    self.reading = (action.stage, action.replies)
                    self.deadline = time.monotonic() + TIMEOUT
                if not self._read():
                    self._wait(selectors.EVENT_READ)
                    return
            elif isinstance(action, StartTLSAction):
                self._start_tls(action.server_hostname or self.host)
            elif isinstance(action, NeedBody):
                # Only for messages built without data (streamed bodies).
                self.session.send_body(action.message_id, b"")
            elif isinstance(action, Idle):
                self.session.quit()
            else:
                assert isinstance(action, Close)
                self._close()
        self._report()

    def timed_out(self) -> None:
        """The deadline of the current wait passed."""
        self.pending = memoryview(b"")
        self.handshaking = False
        self.session.timeout_expired(TIMEOUT)
        self.step()

    # -- I/O that never blocks ------------------------------------------------

    def _write(self) -> bool:
        """Write what the socket takes; True once the whole Write is out."""
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return False
        except OSError as exc:
            self.pending = memoryview(b"")
            self.session.connection_lost("write", exc.errno, str(exc))
            return True
        self.pending = self.pending[sent:]
        return not self.pending

    def _read(self) -> bool:
        """Hand the session what has arrived; False when nothing has yet."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError as exc:
            self.session.connection_lost("read", exc.errno, str(exc))
            return True
        self.session.receive_data(data)  # b"" is EOF
        return True

    def _start_tls(self, hostname: str) -> None:
        self.selector.unregister(self.sock)
        context = ssl.create_default_context()  # verified, system trust store
        self.sock = context.wrap_socket(
            self.sock, server_hostname=hostname, do_handshake_on_connect=False
        )
        self.selector.register(self.sock, selectors.EVENT_READ, self)
        self.handshaking = True
        self.deadline = time.monotonic() + TIMEOUT

    def _handshake(self) -> bool:
        """Advance the handshake; True once it is over (either way)."""
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:
            self._wait(selectors.EVENT_WRITE)
            return False
        except (ssl.SSLError, OSError) as exc:
            self.handshaking = False
            self.session.tls_failed(str(exc))
            return True
        self.handshaking = False
        self.session.tls_established()
        return True

    def _wait(self, events: int) -> None:
        self.selector.modify(self.sock, events, self)

    def _close(self) -> None:
        self.selector.unregister(self.sock)
        self.sock.close()
        self.closed = True

    def _report(self) -> None:
        for event in self.session.events():
            if isinstance(event, GreetingReceived):
                print(f"{self.name}: greeted: {event.reply.describe()}")
            elif isinstance(event, MessageAccepted):
                self.accepted += 1
                print(f"{self.name}: accepted for {', '.join(event.result.accepted)}")
            elif isinstance(event, MessageFailed):
                # status_unknown: the message may have been delivered; do
                # not send it again blindly.
                print(f"{self.name}: failed: {event.error}")
            elif isinstance(event, SessionClosed) and event.error is not None:
                print(f"{self.name}: session ended: {event.error}")


def run(conversations: list[Conversation]) -> None:
    """The event loop: wait for the sockets or the nearest deadline."""
    selector = conversations[0].selector
    for conversation in conversations:
        conversation.step()
    while any(not c.closed for c in conversations):
        nearest = min(c.deadline for c in conversations if not c.closed)
        for key, _ in selector.select(max(0.0, nearest - time.monotonic())):
            key.data.step()
        now = time.monotonic()
        for conversation in conversations:
            if not conversation.closed and now >= conversation.deadline:
                conversation.timed_out()


def main(address: str = "localhost:8025") -> int:
    host, _, port = address.rpartition(":")
    selector = selectors.DefaultSelector()
    conversations = []
    for n in (1, 2):
        conversation = Conversation(selector, host, int(port), name=f"conversation {n}")
        for m in (1, 2):
            conversation.submit(
                OutgoingMessage.build(
                    sender="alice@example.com",
                    recipients=[f"bob{n}{m}@example.com"],
                    message=f"Subject: message {m} of conversation {n}\r\n\r\nHello.\r\n",
                )
            )
        conversation.finish()
        conversations.append(conversation)
    run(conversations)
    selector.close()
    return 0 if all(c.accepted == 2 for c in conversations) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
