"""Hypothesis strategies and a scripted server, for testing code that speaks SMTP.

Install with the ``testing`` extra: ``pip install 'smtpcore[testing]'``
(it brings Hypothesis). Importing this module without Hypothesis raises
ImportError.

Strategies:

* :func:`replies`, :func:`reply_streams`: server replies as
  :class:`smtpcore.Reply` values (``.to_bytes()`` for the wire form) and as
  byte streams, optionally hostile (bare LF, over-long lines, garbage).
* :func:`ehlo_replies`: realistic EHLO capability lists.
* :func:`chunkings`: the ways TCP may split some bytes.
* :func:`addresses`: valid RFC 5321 mailboxes, or hostile ones carrying CR,
  LF, NUL, controls, ``<``, ``>`` or smuggled parameters.
* :func:`message_bodies`: bodies with leading dots, bare CR/LF, 8-bit data.
* :func:`server_scripts`: a server's side of a whole conversation, with
  random failures (4xx/5xx at any stage, 421, EOF, garbage, time-outs) and,
  if asked, a write of the client's that fails partway
  (:class:`WriteFailure`); :func:`run_script` drives a
  :class:`smtpcore.Session` through one.

Examples::

    from hypothesis import given, strategies as st
    from smtpcore import (
        MessageAccepted, MessageFailed, OutgoingMessage, ReplyParser, Session,
        SessionConfig, TLSPolicy,
    )
    from smtpcore.testing import chunkings, replies, run_script, server_scripts

    @given(st.lists(replies()), st.data())
    def test_parser_ignores_chunking(reply_list, data):
        wire = b"".join(r.to_bytes() for r in reply_list)
        parser = ReplyParser()
        got = []
        for chunk in data.draw(chunkings(wire)):
            parser.feed(chunk)
            while (reply := parser.next_reply()) is not None:
                got.append(reply)
        assert got == reply_list

    @given(server_scripts(recipients=2))
    def test_every_message_gets_an_outcome(script):
        session = Session(SessionConfig(tls=TLSPolicy.NONE))
        session.submit(OutgoingMessage.build(
            sender="a@example.com", recipients=["b@example.net", "c@example.net"],
            message=b"Subject: hi\\r\\n\\r\\nhello\\r\\n"))
        run = run_script(session, script)
        assert run.closed
        assert len(run.of_type(MessageAccepted) + run.of_type(MessageFailed)) == 1
"""

from __future__ import annotations

try:
    import hypothesis as _hypothesis
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "smtpcore.testing needs Hypothesis; install it with: pip install 'smtpcore[testing]'",
        name="hypothesis",
    ) from exc

from ._driver import EOF as EOF
from ._driver import ScriptRun as ScriptRun
from ._driver import ServerScript as ServerScript
from ._driver import ServerSignal as ServerSignal
from ._driver import ServerStep as ServerStep
from ._driver import WireEntry as WireEntry
from ._driver import WireKind as WireKind
from ._driver import WriteFailure as WriteFailure
from ._driver import run_script as run_script
from ._strategies import KNOWN_EXTENSIONS as KNOWN_EXTENSIONS
from ._strategies import addresses as addresses
from ._strategies import chunkings as chunkings
from ._strategies import ehlo_replies as ehlo_replies
from ._strategies import message_bodies as message_bodies
from ._strategies import replies as replies
from ._strategies import reply_streams as reply_streams
from ._strategies import server_scripts as server_scripts

del _hypothesis

__all__ = [
    "EOF",
    "KNOWN_EXTENSIONS",
    "ScriptRun",
    "ServerScript",
    "ServerSignal",
    "ServerStep",
    "WireEntry",
    "WireKind",
    "WriteFailure",
    "addresses",
    "chunkings",
    "ehlo_replies",
    "message_bodies",
    "replies",
    "reply_streams",
    "run_script",
    "server_scripts",
]
