"""I/O adapters for the smtpcore state machine.

* :mod:`smtpcore.adapters.blocking`: blocking sockets (threads for ``Pool``).
* :mod:`smtpcore.adapters.asyncio`: asyncio.
* :mod:`smtpcore.adapters.trio`: trio (``pip install smtpcore[trio]``).
* :mod:`smtpcore.adapters.anyio`: anyio, on asyncio or trio
  (``pip install smtpcore[anyio]``).

Each offers the same API, differing only in ``async``: ``send(...)``,
``Client`` (one connection, many messages) and ``Pool`` (many connections),
with the keyword arguments of :class:`ConnectOptions` and
:class:`MessageOptions`, and :class:`RetryPolicy` and :class:`Progress` for
``send_many``. They share one client implementation: the async one, and the
blocking one generated from it.
"""

from __future__ import annotations

from ._common import SendResult as SendResult
from ._common import Timeouts as Timeouts
from ._common import TLSInfo as TLSInfo
from ._options import ConnectOptions as ConnectOptions
from ._options import MessageOptions as MessageOptions
from ._retry import Progress as Progress
from ._retry import RetryPolicy as RetryPolicy

__all__ = [
    "ConnectOptions",
    "MessageOptions",
    "Progress",
    "RetryPolicy",
    "SendResult",
    "TLSInfo",
    "Timeouts",
]
