"""A loopback TCP proxy that delays each direction by a fixed time (S1-RTT).

``python -m bench.proxy LISTEN_PORT TARGET_PORT DELAY_SECONDS``

Every chunk read from one side is written to the other ``DELAY`` seconds
after it arrived, in order, like a link with that one-way latency and no
bandwidth limit: a 1 ms delay each way is a 2 ms round trip, and a client
that pipelines pays it once per group of commands rather than per command.
Each direction is a reader thread and a writer thread around a queue, so a
chunk's delay does not wait for the previous chunk's.

Only 127.0.0.1; the process exits on SIGTERM, and after ``MAX_LIFETIME``
seconds in any case.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
MAX_LIFETIME = 3600.0
#: Connections served at once (S1-RTT uses one at a time).
MAX_CONNECTIONS = 64

_Item = tuple[float, bytes]


def _reader(src: socket.socket, q: queue.Queue[_Item], delay: float) -> None:
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        q.put((time.monotonic() + delay, data))
        if not data:
            return


def _writer(dst: socket.socket, q: queue.Queue[_Item]) -> None:
    while True:
        due, data = q.get()
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if not data:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            return
        try:
            dst.sendall(data)
        except OSError:
            return


def _serve(
    client: socket.socket, target_port: int, delay: float, slots: threading.Semaphore
) -> None:
    try:
        try:
            server = socket.create_connection((HOST, target_port), timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up: queue.Queue[_Item] = queue.Queue()
        down: queue.Queue[_Item] = queue.Queue()
        threads = [
            threading.Thread(target=_reader, args=(client, up, delay), daemon=True),
            threading.Thread(target=_writer, args=(server, up), daemon=True),
            threading.Thread(target=_reader, args=(server, down, delay), daemon=True),
            threading.Thread(target=_writer, args=(client, down), daemon=True),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(MAX_LIFETIME)
        client.close()
        server.close()
    finally:
        slots.release()


def main() -> None:
    listen_port, target_port, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deadline = time.monotonic() + MAX_LIFETIME
    slots = threading.Semaphore(MAX_CONNECTIONS)
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, listen_port))
        listener.listen(128)
        listener.settimeout(1.0)
        while time.monotonic() < deadline:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            if not slots.acquire(timeout=10):
                client.close()
                continue
            threading.Thread(
                target=_serve, args=(client, target_port, delay, slots), daemon=True
            ).start()


if __name__ == "__main__":
    main()
