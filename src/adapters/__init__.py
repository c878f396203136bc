"""I/O adapters for the smtpcore state machine.

* :mod:`smtpcore.adapters.blocking`: blocking sockets (threads for ``Pool``).
* :mod:`smtpcore.adapters.asyncio`: asyncio.
* :mod:`smtpcore.adapters.trio`: trio (``pip install smtpcore[trio]``).

Each offers the same API, differing only in ``async``: ``send(...)``,
``Client`` (one connection, many messages) and ``Pool`` (many connections).
"""

from __future__ import annotations

from ._common import SendResult as SendResult
from ._common import Timeouts as Timeouts
from ._common import TLSInfo as TLSInfo

__all__ = ["SendResult", "TLSInfo", "Timeouts"]
