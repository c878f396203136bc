"""Tests for smtpcore.Connection: commands out, replies in, bytes only.

Every receive test feeds the server's bytes whole, one octet at a time and
split at every position in two, and checks that the events are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore import (
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Command,
    Connection,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Lhlo,
    LocalProtocolError,
    Mail,
    Noop,
    Quit,
    RawCommand,
    Rcpt,
    RemoteProtocolError,
    Reply,
    ReplyReceived,
    Rset,
    ServiceClosing,
    Stage,
    StartTLS,
    Vrfy,
)
from smtpcore._connection import OneHandler, OnReply, Pending
from smtpcore._state import ConnState


def examples(n: int) -> int:
    """``n`` Hypothesis examples, or more under a longer profile
    (``HYPOTHESIS_PROFILE=long``)."""
    return max(n, settings().max_examples)


CLIENT = "client.example.com"
GREETING = b"220 mx.example.org ESMTP\r\n"
OK = b"250 2.0.0 ok\r\n"
GO = b"354 go ahead\r\n"

EHLO = Ehlo(domain=CLIENT)
MAIL = Mail(sender="alice@example.com")
BOB = Rcpt(recipient="bob@example.org")
CAROL = Rcpt(recipient="carol@example.org")
DAVE = Rcpt(recipient="dave@example.org")

Outcome = object  # an event, or ("raised", exception type)


def state_of(conn: Connection) -> ConnState:
    # A function, so that type checkers do not narrow a property that changes.
    return conn.state


def outstanding(conn: Connection) -> tuple[Command | None, ...]:
    return conn.outstanding


def reply(code: int, *lines: str) -> Reply:
    return Reply.build(code, *lines)


def got(
    command: Command | None, code: int, *lines: str, index: int = 0, final: bool = True
) -> ReplyReceived:
    return ReplyReceived(command=command, reply=reply(code, *lines), index=index, final=final)


def greeted(*, lmtp: bool = False) -> Connection:
    conn = Connection(lmtp=lmtp)
    conn.receive_data(GREETING)
    assert conn.next_event() == got(None, 220, "mx.example.org ESMTP")
    assert conn.next_event() is NEED_DATA
    return conn


def ready(*, pipelining: bool = True, lmtp: bool = False) -> Connection:
    """A connection after the greeting and EHLO (or LHLO)."""
    conn = greeted(lmtp=lmtp)
    conn.send(Lhlo(domain=CLIENT) if lmtp else EHLO)
    conn.receive_data(b"250-mx.example.org\r\n250 PIPELINING\r\n")
    event = conn.next_event()
    assert isinstance(event, ReplyReceived)
    assert event.reply.code == 250
    conn.pipelining = pipelining
    return conn


def after(
    *commands: Command, pipelining: bool = True, lmtp: bool = False
) -> Callable[[], Connection]:
    """A factory: a ready connection with ``commands`` sent."""

    def make() -> Connection:
        conn = ready(pipelining=pipelining, lmtp=lmtp)
        for command in commands:
            conn.send(command)
        return conn

    return make


def drain(conn: Connection, out: list[Outcome]) -> None:
    """Read events into ``out`` until NEED_DATA or ConnectionClosed."""
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return


def collect(conn: Connection, pieces: Iterable[bytes], *, eof: bool = False) -> list[Outcome]:
    """Feed ``pieces``, reading events after each; a RemoteProtocolError ends
    the list (any other exception escapes and fails the test)."""
    out: list[Outcome] = []
    try:
        for piece in pieces:
            assert piece, "b'' is EOF: use eof=True"
            conn.receive_data(piece)
            drain(conn, out)
        if eof:
            conn.receive_data(b"")
            drain(conn, out)
    except RemoteProtocolError:
        out.append(("raised", RemoteProtocolError))
    return out


def chunkings(data: bytes) -> list[list[bytes]]:
    """Whole, one octet at a time, and every two-way split."""
    if not data:
        return [[]]
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    ways += [[data[:i], data[i:]] for i in range(1, len(data))]
    return ways


def receive(make: Callable[[], Connection], data: bytes, *, eof: bool = False) -> list[Outcome]:
    """The events for ``data``, checked identical under every chunking."""
    results = [collect(make(), pieces, eof=eof) for pieces in chunkings(data)]
    for pieces, result in zip(chunkings(data), results, strict=True):
        assert result == results[0], pieces
    return results[0]


def dead(conn: Connection) -> None:
    """After an error the connection produces no more bytes: every call raises."""
    assert not conn.can_send()
    assert state_of(conn) is ConnState.ERROR
    calls: list[Callable[[], object]] = [
        lambda: conn.send(Noop()),
        lambda: conn.send(Quit()),
        lambda: conn.send_body(b"x"),
        lambda: conn.receive_data(b"250 ok\r\n"),
        lambda: conn.receive_data(b""),
        conn.next_event,
        conn.tls_established,
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError):
            call()


# -- replies bound to commands -----------------------------------------------------


def test_greeting_is_bound_to_no_command() -> None:
    events = receive(Connection, b"220-mx.example.org ESMTP\r\n220 hello\r\n")
    assert events == [got(None, 220, "mx.example.org ESMTP", "hello")]


def test_greeting_opens_the_session() -> None:
    conn = greeted()
    assert state_of(conn) is ConnState.HELLO
    assert outstanding(conn) == ()
    assert conn.send(EHLO) == b"EHLO client.example.com\r\n"
    assert outstanding(conn) == (EHLO,)


def test_refused_greeting_allows_only_quit() -> None:
    # RFC 5321 3.1 / 4.3.1: after 554 the client may only QUIT (and keep the
    # server talking with NOOP/RSET).
    conn = Connection()
    conn.receive_data(b"554 5.7.1 no service\r\n")
    assert conn.next_event() == got(None, 554, "5.7.1 no service")
    assert state_of(conn) is ConnState.REFUSED
    for command in (EHLO, Helo(domain=CLIENT), MAIL):
        with pytest.raises(LocalProtocolError, match=rf"{command.verb}.*REFUSED"):
            conn.send(command)
    assert conn.send(Quit()) == b"QUIT\r\n"


def test_reply_bound_to_its_command() -> None:
    events = receive(after(MAIL), b"250 2.1.0 sender ok\r\n")
    assert events == [got(MAIL, 250, "2.1.0 sender ok")]
    assert events[0] != got(BOB, 250, "2.1.0 sender ok")


def test_pipelined_replies_in_one_read_all_delivered_in_order() -> None:
    # RFC 2920 3.1: replies come back in the order of the commands.
    make = after(MAIL, BOB, CAROL, DAVE, Data())
    data = OK + b"250 2.1.5 bob\r\n" + b"550 5.1.1 carol\r\n" + b"251 2.1.5 dave\r\n" + GO
    events = receive(make, data)
    assert events == [
        got(MAIL, 250, "2.0.0 ok"),
        got(BOB, 250, "2.1.5 bob"),
        got(CAROL, 550, "5.1.1 carol"),
        got(DAVE, 251, "2.1.5 dave"),
        got(Data(), 354, "go ahead"),
    ]
    conn = make()
    collect(conn, [data])
    assert outstanding(conn) == ()
    assert state_of(conn) is ConnState.BODY


def test_replies_arrive_before_all_commands_are_answered() -> None:
    conn = after(MAIL, BOB, CAROL)()
    assert collect(conn, [OK + OK]) == [got(MAIL, 250, "2.0.0 ok"), got(BOB, 250, "2.0.0 ok")]
    assert outstanding(conn) == (CAROL,)
    assert conn.buffered == 0
    conn.receive_data(b"250 2.0.0 o")
    assert conn.next_event() is NEED_DATA
    assert conn.buffered == len(b"250 2.0.0 o")


def test_multiline_reply_to_ehlo() -> None:
    make = after(EHLO)
    data = b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
    assert receive(make, data) == [
        got(EHLO, 250, "mx.example.org", "PIPELINING", "SIZE 1000", "8BITMIME")
    ]


# -- replies with nothing outstanding ------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"250 surprise\r\n", b"554 5.0.0 go away\r\n", b"220 hello again\r\n", OK + OK],
    ids=["250", "554", "220", "two"],
)
def test_unsolicited_reply_is_a_protocol_error(data: bytes) -> None:
    assert receive(ready, data) == [("raised", RemoteProtocolError)]
    conn = ready()
    collect(conn, [data])
    dead(conn)


def test_unsolicited_421_is_service_closing() -> None:
    # RFC 5321 3.8: the server may send 421 at any time and close.
    data = b"421 4.3.2 shutting down\r\n"
    assert receive(ready, data) == [ServiceClosing(reply=reply(421, "4.3.2 shutting down"))]
    conn = ready()
    collect(conn, [data])
    assert state_of(conn) is ConnState.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(MAIL)


def test_421_to_a_command_is_its_reply_and_closes() -> None:
    make = after(MAIL, BOB, CAROL)
    data = OK + b"421 4.4.2 timeout\r\n"
    assert receive(make, data) == [got(MAIL, 250, "2.0.0 ok"), got(BOB, 421, "4.4.2 timeout")]
    conn = make()
    collect(conn, [data])
    assert state_of(conn) is ConnState.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(Rset())


def test_extra_reply_after_the_pipelined_group() -> None:
    events = receive(after(MAIL, BOB), OK + OK + OK)
    assert events == [
        got(MAIL, 250, "2.0.0 ok"),
        got(BOB, 250, "2.0.0 ok"),
        ("raised", RemoteProtocolError),
    ]


# -- EOF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "data", "expected"),
    [
        pytest.param(Connection, b"", ConnectionClosed(outstanding=(None,)), id="before-greeting"),
        pytest.param(
            Connection,
            b"220 mx",
            ConnectionClosed(outstanding=(None,), partial_reply=True),
            id="in-greeting",
        ),
        pytest.param(ready, b"", ConnectionClosed(), id="nothing-outstanding"),
        pytest.param(
            after(MAIL, BOB, CAROL),
            OK,
            ConnectionClosed(outstanding=(BOB, CAROL)),
            id="after-one-reply",
        ),
        pytest.param(
            after(MAIL, BOB, CAROL),
            OK + b"250-2.1.5 first line\r\n",
            ConnectionClosed(outstanding=(BOB, CAROL), partial_reply=True),
            id="in-multiline-reply",
        ),
    ],
)
def test_eof_names_the_commands_still_waiting(
    make: Callable[[], Connection], data: bytes, expected: ConnectionClosed
) -> None:
    events = receive(make, data, eof=True)
    assert events[-1] == expected
    assert all(isinstance(e, ReplyReceived) for e in events[:-1])
    described = expected.describe()
    for command in expected.outstanding:
        assert ("greeting" if command is None else command.verb) in described
    conn = make()
    collect(conn, [data] if data else [], eof=True)
    assert outstanding(conn) == ()
    assert not conn.can_send()
    with pytest.raises(LocalProtocolError):
        conn.send(Quit())
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"250 late\r\n")


# -- RFC 2920 grouping ----------------------------------------------------------------------

# Each ender is sent from a state where the follow-up command would be legal,
# so that only the grouping rule can refuse it.
ENDERS = [
    pytest.param((), EHLO, Noop(), id="EHLO"),
    pytest.param((MAIL, BOB), Data(), Rset(), id="DATA"),
    pytest.param((), Vrfy(string="postmaster"), Noop(), id="VRFY"),
    pytest.param((), Expn(string="staff"), Noop(), id="EXPN"),
    pytest.param((), Quit(), Noop(), id="QUIT"),
    pytest.param((), Noop(), Noop(), id="NOOP"),
    pytest.param((), StartTLS(), Noop(), id="STARTTLS"),
    pytest.param((), Auth(mechanism="PLAIN", initial_response=b"\0u\0p"), Noop(), id="AUTH"),
    pytest.param((), RawCommand(verb="XFOO"), Noop(), id="raw-command"),
    pytest.param((MAIL,), Vrfy(string="postmaster"), BOB, id="VRFY-in-transaction"),
]


@pytest.mark.parametrize(("setup", "ender", "follow"), ENDERS)
def test_group_enders_must_be_answered_first(
    setup: tuple[Command, ...], ender: Command, follow: Command
) -> None:
    # RFC 2920 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP (and STARTTLS,
    # RFC 3207 4.2; AUTH, RFC 4954 4) may only be the last command of a group.
    conn = after(*setup)()
    conn.send(ender)
    assert not conn.can_send()
    with pytest.raises(LocalProtocolError, match=follow.verb):
        conn.send(follow)
    assert outstanding(conn) == (*setup, ender)


@pytest.mark.parametrize(
    ("ender", "answer"),
    [
        pytest.param(Noop(), OK, id="NOOP"),
        pytest.param(Vrfy(string="postmaster"), b"252 2.1.5 cannot verify\r\n", id="VRFY"),
        pytest.param(Expn(string="staff"), b"550 5.7.1 no\r\n", id="EXPN"),
        pytest.param(EHLO, b"250 mx.example.org\r\n", id="EHLO"),
        pytest.param(StartTLS(), b"454 4.7.0 not now\r\n", id="STARTTLS-refused"),
        pytest.param(Auth(mechanism="PLAIN", initial_response=b"\0u\0p"), b"535 no\r\n", id="AUTH"),
    ],
)
def test_after_the_enders_reply_the_next_group_may_start(ender: Command, answer: bytes) -> None:
    conn = after(ender)()
    assert collect(conn, [answer])[0] == ReplyReceived(command=ender, reply=_parse(answer))
    assert conn.can_send()
    assert conn.send(MAIL) == b"MAIL FROM:<alice@example.com>\r\n"


def _parse(data: bytes) -> Reply:
    from smtpcore import ReplyParser

    parser = ReplyParser()
    parser.feed(data)
    parsed = parser.next_reply()
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    "commands",
    [
        pytest.param((MAIL, BOB, CAROL, Data()), id="envelope"),
        pytest.param((Rset(), MAIL, BOB, Bdat(size=0, last=True)), id="rset-and-bdat"),
        pytest.param((RawCommand(verb="XFOO", ends_group=False), MAIL), id="raw-pipelinable"),
    ],
)
def test_non_enders_pipeline(commands: tuple[Command, ...]) -> None:
    conn = ready()
    for command in commands:
        assert conn.can_send()
        conn.send(command)
    assert outstanding(conn) == commands


def test_without_pipelining_one_command_at_a_time() -> None:
    conn = ready(pipelining=False)
    conn.send(MAIL)
    assert not conn.can_send()
    with pytest.raises(LocalProtocolError, match="RCPT"):
        conn.send(BOB)
    assert collect(conn, [OK]) == [got(MAIL, 250, "2.0.0 ok")]
    assert conn.can_send()
    conn.send(BOB)
    assert outstanding(conn) == (BOB,)


def test_nothing_before_the_greeting() -> None:
    conn = Connection()
    assert not conn.can_send()
    for command in (EHLO, MAIL, Quit(), Noop()):
        with pytest.raises(LocalProtocolError, match=command.verb):
            conn.send(command)


# -- the state table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "command", "state"),
    [
        pytest.param(ready, BOB, "READY", id="RCPT-before-MAIL"),
        pytest.param(after(MAIL), Data(), "MAIL_SENT", id="DATA-before-RCPT"),
        pytest.param(after(MAIL), Bdat(size=1), "MAIL_SENT", id="BDAT-before-RCPT"),
        pytest.param(greeted, MAIL, "HELLO", id="MAIL-before-EHLO"),
        pytest.param(greeted, StartTLS(), "HELLO", id="STARTTLS-before-EHLO"),
        pytest.param(Connection, EHLO, "GREETING", id="EHLO-before-greeting"),
        pytest.param(Connection, MAIL, "GREETING", id="MAIL-before-greeting"),
        pytest.param(ready, AuthResponse(data=b"x"), "READY", id="AUTH-response-without-334"),
        pytest.param(ready, AuthCancel(), "READY", id="AUTH-cancel-without-334"),
        pytest.param(ready, EndOfData(), "READY", id="end-of-data-without-DATA"),
        pytest.param(after(MAIL), StartTLS(), "MAIL_SENT", id="STARTTLS-in-transaction"),
        pytest.param(
            after(MAIL, BOB), Auth(mechanism="LOGIN"), "RCPT_SENT", id="AUTH-in-transaction"
        ),
        pytest.param(after(MAIL), MAIL, "MAIL_SENT", id="MAIL-twice"),
    ],
)
def test_commands_in_the_wrong_state(
    make: Callable[[], Connection], command: Command, state: str
) -> None:
    conn = make()
    before = conn.outstanding
    with pytest.raises(LocalProtocolError) as info:
        conn.send(command)
    message = str(info.value)
    assert command.verb in message, message
    assert state in message, message
    # A refused command changes nothing.
    assert outstanding(conn) == before
    assert conn.state.name == state


def test_auth_continuation_only_after_334() -> None:
    conn = after(Auth(mechanism="LOGIN"))()
    assert collect(conn, [b"334 VXNlcm5hbWU6\r\n"]) == [
        got(Auth(mechanism="LOGIN"), 334, "VXNlcm5hbWU6")
    ]
    assert state_of(conn) is ConnState.AUTH_CONTINUE
    assert conn.send(AuthResponse(data=b"alice")) == b"YWxpY2U=\r\n"
    with pytest.raises(LocalProtocolError):
        conn.send(AuthResponse(data=b"again"))
    collect(conn, [b"334 UGFzc3dvcmQ6\r\n"])
    assert conn.send(AuthCancel()) == b"*\r\n"
    collect(conn, [b"501 5.7.0 cancelled\r\n"])
    assert state_of(conn) is ConnState.READY


# -- message data ---------------------------------------------------------------------------


def test_body_only_after_354() -> None:
    conn = after(MAIL, BOB, Data())()
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"Subject: x\r\n")
    collect(conn, [OK + OK])
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"Subject: x\r\n")
    collect(conn, [GO])
    assert state_of(conn) is ConnState.BODY
    assert conn.send_body(b"Subject: x\r\n\r\nhi\r\n") == b"Subject: x\r\n\r\nhi\r\n"
    assert conn.send(EndOfData()) == b".\r\n"
    assert collect(conn, [b"250 2.0.0 queued\r\n"]) == [got(EndOfData(), 250, "2.0.0 queued")]
    assert state_of(conn) is ConnState.READY
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"more")


def test_no_body_after_a_refused_data() -> None:
    conn = after(MAIL, BOB, Data())()
    collect(conn, [OK + OK + b"554 5.5.1 no valid recipients\r\n"])
    assert state_of(conn) is ConnState.RCPT_SENT
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"x")
    conn.send(Rset())


def test_body_within_a_bdat_chunk_only() -> None:
    # RFC 3030 2: exactly the announced number of octets follows BDAT.
    conn = after(MAIL, BOB)()
    assert conn.send(Bdat(size=5)) == b"BDAT 5\r\n"
    assert conn.send_body(b"abc") == b"abc"
    with pytest.raises(LocalProtocolError, match="2"):
        conn.send(Rset())
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"def")
    assert conn.send_body(b"de") == b"de"
    assert conn.send(Bdat(size=3, last=True)) == b"BDAT 3 LAST\r\n"
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"wxyz")
    assert conn.send_body(b"xyz") == b"xyz"
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"!")
    assert state_of(conn) is ConnState.READY
    events = collect(conn, [OK + OK + OK + b"250 2.0.0 queued\r\n"])
    assert [e.command for e in events if isinstance(e, ReplyReceived)] == [
        MAIL,
        BOB,
        Bdat(size=5),
        Bdat(size=3, last=True),
    ]
    assert outstanding(conn) == ()


def test_empty_bdat_last() -> None:
    conn = after(MAIL, BOB, Bdat(size=0, last=True))()
    assert state_of(conn) is ConnState.READY
    conn.send(MAIL)  # the next transaction may be pipelined at once


# -- LMTP ---------------------------------------------------------------------------------------


def _lmtp_after_data(rcpt_replies: bytes) -> Callable[[], Connection]:
    def make() -> Connection:
        conn = after(MAIL, BOB, CAROL, DAVE, Data(), lmtp=True)()
        collect(conn, [OK + rcpt_replies + GO])
        conn.send_body(b"hi\r\n")
        conn.send(EndOfData())
        return conn

    return make


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    # RFC 2033 4.2: after the final dot, one reply per RCPT that succeeded,
    # in RCPT order.
    make = _lmtp_after_data(OK + b"550 5.1.1 carol\r\n" + OK)
    data = b"250 2.1.5 bob delivered\r\n452 4.2.2 dave over quota\r\n"
    events = receive(make, data)
    assert events == [
        got(EndOfData(), 250, "2.1.5 bob delivered", index=0, final=False),
        got(EndOfData(), 452, "4.2.2 dave over quota", index=1),
    ]
    conn = make()
    collect(conn, [data])
    assert outstanding(conn) == ()
    assert conn.can_send()
    # One more would be unsolicited.
    assert collect(make(), [data + OK])[-1] == ("raised", RemoteProtocolError)


def test_lmtp_waits_for_every_recipient_reply() -> None:
    conn = _lmtp_after_data(OK + OK + OK)()
    assert len(collect(conn, [OK + OK])) == 2
    assert outstanding(conn) == (EndOfData(),)
    assert len(collect(conn, [OK])) == 1
    assert outstanding(conn) == ()


def test_lmtp_no_recipient_accepted_one_reply() -> None:
    no = b"550 5.1.1 no\r\n"
    conn = _lmtp_after_data(no + no + no)()
    assert collect(conn, [b"554 5.5.1 no valid recipients\r\n"]) == [
        got(EndOfData(), 554, "5.5.1 no valid recipients")
    ]
    assert outstanding(conn) == ()


def test_lhlo_switches_to_lmtp_and_bdat_last_is_per_recipient() -> None:
    conn = greeted()
    lmtp_before = conn.lmtp
    conn.send(Lhlo(domain=CLIENT))
    assert (lmtp_before, conn.lmtp) == (False, True)
    collect(conn, [b"250-mx\r\n250 CHUNKING\r\n"])
    conn.pipelining = True
    for command in (MAIL, BOB, CAROL, Bdat(size=4, last=True)):
        conn.send(command)
    conn.send_body(b"hi\r\n")
    events = collect(conn, [OK + OK + OK + OK + b"451 4.3.0 later\r\n"])
    last = Bdat(size=4, last=True)
    assert events[-2:] == [
        got(last, 250, "2.0.0 ok", index=0, final=False),
        got(last, 451, "4.3.0 later", index=1),
    ]
    assert outstanding(conn) == ()


# -- STARTTLS ---------------------------------------------------------------------------------


def test_starttls_then_handshake_then_ehlo() -> None:
    conn = after(StartTLS())()
    assert collect(conn, [b"220 2.0.0 ready\r\n"]) == [got(StartTLS(), 220, "2.0.0 ready")]
    assert state_of(conn) is ConnState.TLS_PENDING
    with pytest.raises(LocalProtocolError):
        conn.send(MAIL)
    conn.tls_established()
    # RFC 3207 4.2: start over with EHLO, knowing nothing.
    assert state_of(conn) is ConnState.HELLO
    assert not conn.pipelining
    with pytest.raises(LocalProtocolError, match="MAIL"):
        conn.send(MAIL)
    conn.send(EHLO)


def test_tls_established_only_when_pending() -> None:
    with pytest.raises(LocalProtocolError):
        ready().tls_established()
    conn = after(StartTLS())()
    collect(conn, [b"454 4.7.0 no TLS\r\n"])
    with pytest.raises(LocalProtocolError):
        conn.tls_established()
    assert state_of(conn) is ConnState.READY
    conn.send(MAIL)


@pytest.mark.parametrize(
    "data",
    [
        b"220 2.0.0 ready\r\n250 injected\r\n",
        b"220 2.0.0 ready\r\n2",
        b"220 2.0.0 ready\r\n\r\n",
        b"220 2.0.0 ready\r\n250-mx.example.org\r\n250 AUTH PLAIN\r\n",
    ],
    ids=["line", "fragment", "empty-line", "fake-ehlo"],
)
def test_starttls_response_injection(data: bytes) -> None:
    # RFC 3207 4.2 / CVE-2011-0411 / "NO STARTTLS": bytes after the 220 and
    # before the handshake were injected in plaintext. Whether they arrive
    # with the 220 or after it, the connection dies and TLS never starts.
    for pieces in chunkings(data):
        conn = after(StartTLS())()
        events = collect(conn, pieces)
        assert events[-1] == ("raised", RemoteProtocolError), pieces
        assert all(e == got(StartTLS(), 220, "2.0.0 ready") for e in events[:-1]), pieces
        dead(conn)


def test_input_after_220_before_the_handshake() -> None:
    conn = after(StartTLS())()
    collect(conn, [b"220 2.0.0 ready\r\n"])
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"250 injected\r\n")
    dead(conn)


# -- errors are final ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "data"),
    [
        pytest.param(ready, OK, id="unsolicited"),
        pytest.param(after(MAIL), b"250 ok\n", id="bare-lf"),
        pytest.param(after(MAIL), b"25O ok\r\n", id="bad-code"),
        pytest.param(after(MAIL), b"250-a\r\n251 b\r\n", id="mixed-codes"),
        pytest.param(after(MAIL), b"250 " + b"x" * 2000, id="endless-line"),
        pytest.param(after(StartTLS()), b"220 go\r\n250 x\r\n", id="injection"),
    ],
)
def test_after_an_error_every_call_raises(make: Callable[[], Connection], data: bytes) -> None:
    for pieces in chunkings(data)[:3]:
        conn = make()
        assert collect(conn, pieces)[-1] == ("raised", RemoteProtocolError)
        dead(conn)


# -- properties -----------------------------------------------------------------------------------

_LINE_TEXT = st.text(alphabet="abcdefXYZ0123456789 .-", max_size=20)


@st.composite
def _batch(draw: st.DrawFn) -> tuple[list[Command], bytes, list[Outcome]]:
    """A pipelined envelope and the server's replies to it."""
    n = draw(st.integers(1, 5))
    commands: list[Command] = [
        MAIL,
        *(Rcpt(recipient=f"r{i}@example.org") for i in range(n)),
        Data(),
    ]
    data = bytearray()
    expected: list[Outcome] = []
    for command in commands:
        if isinstance(command, Data):
            code = draw(st.sampled_from([354, 554, 451, 503]))
        else:
            code = draw(st.sampled_from([250, 251, 450, 452, 550, 553]))
        texts = draw(st.lists(_LINE_TEXT, min_size=1, max_size=3))
        built = Reply.build(code, *texts)
        data += built.to_bytes()
        expected.append(ReplyReceived(command=command, reply=_parse(built.to_bytes())))
    return commands, bytes(data), expected


@settings(max_examples=examples(100), deadline=None)
@given(batch=_batch(), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_pipelined_replies_any_chunking(
    batch: tuple[list[Command], bytes, list[Outcome]], cuts: list[int]
) -> None:
    commands, data, expected = batch
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]
    conn = after(*commands)()
    assert collect(conn, pieces) == expected
    assert outstanding(conn) == ()


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in pieces of ``sizes`` (then the rest), empty pieces left out."""
    pieces: list[bytes] = []
    pos = 0
    for size in sizes:
        pieces.append(data[pos : pos + size])
        pos += size
    pieces.append(data[pos:])
    return [p for p in pieces if p]


@settings(max_examples=examples(150), deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=80),
        st.lists(
            st.sampled_from(
                [OK, GO, b"421 bye\r\n", b"250-", b"\r\n", b"\n", b"354 x\r\n", b"220 x\r\n"]
            ),
            max_size=8,
        ).map(b"".join),
    ),
    sizes=st.lists(st.integers(1, 16), max_size=10),
    eof=st.booleans(),
    commands=st.sampled_from([(), (MAIL,), (MAIL, BOB, Data()), (StartTLS(),), (Noop(),)]),
)
def test_any_bytes_raise_only_remote_protocol_error(
    data: bytes, sizes: list[int], eof: bool, commands: tuple[Command, ...]
) -> None:
    # The receive path may raise RemoteProtocolError and nothing else.
    conn = after(*commands)()
    events = collect(conn, _cut(data, sizes), eof=eof)
    if events and events[-1] == ("raised", RemoteProtocolError):
        dead(conn)
    for event in events:
        assert isinstance(event, (ReplyReceived, ServiceClosing, ConnectionClosed)) or event == (
            "raised",
            RemoteProtocolError,
        )


def test_unsolicited_421_is_the_public_service_closing_event() -> None:
    # One ServiceClosing class: what the connection returns is what the
    # package exports.
    import smtpcore

    conn = greeted()
    conn.receive_data(b"421 4.3.2 shutting down\r\n")
    event = conn.next_event()
    assert isinstance(event, smtpcore.ServiceClosing)
    assert event.reply.code == 421


def _pending_view(conn: Connection) -> tuple[object, ...]:
    # What a later reply is matched against: each outstanding command, its
    # tag, and what the connection will make of its replies.
    return (
        state_of(conn),
        conn.can_send(),
        tuple(
            (p.command, p.tag, p.per_recipient, p.final_data, p.ends_group)
            for p in conn._pending  # the FIFO itself is compared
        ),
    )


@pytest.mark.parametrize(
    "before",
    [
        pytest.param((), id="ready"),
        pytest.param((Rset(),), id="after-rset"),
        pytest.param((MAIL,), id="mail-open"),
        pytest.param((Noop(),), id="after-group-ender"),
    ],
)
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-at-a-time"])
@pytest.mark.parametrize("rcpts", [0, 1, 3])
@pytest.mark.parametrize("data", [True, False], ids=["data", "no-data"])
def test_push_envelope_is_its_pushes_or_nothing(
    before: tuple[Command, ...], pipelining: bool, rcpts: int, data: bool
) -> None:
    # push_envelope(MAIL, RCPT, n, DATA) must leave the connection as push()
    # of each of them does, so that every later reply is paired with the
    # same command; where one of them would be refused it refuses with the
    # same error type and records none of them.
    def view(conn: Connection) -> tuple[object, ...]:
        return (*_pending_view(conn), conn._txn.accepted)

    def start() -> Connection:
        conn = ready(pipelining=True)
        for command in before:
            conn.send(command)
        conn.pipelining = pipelining
        return conn

    pushed = start()
    try:
        pushed.push(MAIL, tag="t")
        for _ in range(rcpts):
            pushed.push(BOB, tag="t")
        if data:
            pushed.push(Data(), tag="t")
    except LocalProtocolError as exc:
        refused: type[LocalProtocolError] | None = type(exc)
    else:
        refused = None
    enveloped = start()
    untouched = view(enveloped)
    if refused is not None:
        with pytest.raises(refused) as raised:
            enveloped.push_envelope(MAIL, BOB, rcpts, Data() if data else None, tag="t")
        assert raised.type is refused
        assert view(enveloped) == untouched
    else:
        enveloped.push_envelope(MAIL, BOB, rcpts, Data() if data else None, tag="t")
        assert view(enveloped) == view(pushed)


def test_push_envelope_pairs_each_reply_with_its_command() -> None:
    conn = ready()
    conn.push_envelope(MAIL, BOB, 3, Data(), tag="txn")
    assert state_of(conn) is ConnState.DATA_SENT
    assert not conn.can_send()  # DATA ends the group (RFC 2920 3.1)
    events = collect(conn, [OK + OK + b"550 5.1.1 no\r\n" + OK + GO])
    assert [(e.command, e.reply.code, e.tag) for e in events if isinstance(e, ReplyReceived)] == [
        (MAIL, 250, "txn"),
        (BOB, 250, "txn"),
        (BOB, 550, "txn"),
        (BOB, 250, "txn"),
        (Data(), 354, "txn"),
    ]
    assert state_of(conn) is ConnState.BODY


def test_push_envelope_counts_lmtp_acceptances_for_the_end_of_data() -> None:
    # RFC 2033 4.2: after the data, one reply per RCPT accepted in this
    # transaction: two of the three here.
    conn = ready(lmtp=True)
    conn.push_envelope(MAIL, BOB, 3, Data(), tag="txn")
    collect(conn, [OK + OK + b"550 5.1.1 no\r\n" + OK + GO])
    conn.push(EndOfData(), tag="end")
    events = collect(conn, [OK + b"452 4.2.2 full\r\n"])
    assert [(e.reply.code, e.index, e.final) for e in events if isinstance(e, ReplyReceived)] == [
        (250, 0, False),
        (452, 1, True),
    ]
    assert outstanding(conn) == ()


def test_waiting_stage_is_the_oldest_outstanding_commands() -> None:
    conn = Connection()
    assert conn.waiting_stage() is Stage.GREETING  # the 220 comes first
    collect(conn, [b"220 mx ESMTP\r\n"])
    assert conn.waiting_stage() is None
    conn.send(EHLO)
    assert conn.waiting_stage() is Stage.EHLO
    collect(conn, [b"250-mx\r\n250 PIPELINING\r\n"])
    conn.pipelining = True  # the session's reading of the EHLO reply
    conn.push_envelope(MAIL, BOB, 2, Data())
    assert conn.waiting_stage() is Stage.MAIL
    collect(conn, [OK])
    assert conn.waiting_stage() is Stage.RCPT
    collect(conn, [OK + OK])
    assert conn.waiting_stage() is Stage.DATA_INIT


def _delivered(conn: Connection, pieces: list[bytes], *, eof: bool) -> list[Outcome]:
    """What deliver() hands over for ``pieces``, as ``collect`` reports it."""
    out: list[Outcome] = []

    def on_reply(pending: Pending, reply: Reply, index: int, final: bool) -> bool:
        out.append(
            ReplyReceived(
                command=pending.command, reply=reply, index=index, tag=pending.tag, final=final
            )
        )
        return False

    for piece in [*pieces, *([b""] if eof else [])]:
        conn.receive_data(piece)
        while True:
            try:
                other = conn.deliver(OneHandler(on_reply), on_reply)
            except RemoteProtocolError:
                out.append(("raised", RemoteProtocolError))
                return out
            if other is NEED_DATA:
                break
            out.append(other)
            if isinstance(other, ConnectionClosed):
                return out
    return out


@settings(max_examples=examples(150), deadline=None)
@given(
    data=st.lists(
        st.sampled_from(
            [OK, GO, b"550 5.1.1 no\r\n", b"421 bye\r\n", b"250-", b"\r\n", b"354 x\r\n", b"x\n"]
        ),
        max_size=10,
    ).map(b"".join),
    sizes=st.lists(st.integers(1, 24), max_size=6),
    eof=st.booleans(),
    commands=st.sampled_from(
        [(), (MAIL,), (MAIL, BOB, CAROL, Data()), (Rset(), MAIL, BOB), (Noop(),)]
    ),
    lmtp=st.booleans(),
)
def test_deliver_hands_over_what_next_event_does(
    data: bytes,
    sizes: list[int],
    eof: bool,
    commands: tuple[Command, ...],
    lmtp: bool,
) -> None:
    # The session's loop (deliver) and the one-at-a-time API (next_event)
    # pair every reply with the same command, and fail at the same point.
    pieces = _cut(data, sizes)
    one_by_one = collect(after(*commands, lmtp=lmtp)(), pieces, eof=eof)
    assert _delivered(after(*commands, lmtp=lmtp)(), pieces, eof=eof) == one_by_one


def test_deliver_stops_when_asked_and_keeps_the_rest() -> None:
    conn = after(MAIL, BOB, CAROL)()
    conn.receive_data(OK + OK + OK)
    seen: list[int] = []

    def first_two(pending: Pending, reply: Reply, index: int, final: bool) -> bool:
        seen.append(reply.code)
        return len(seen) == 2

    assert conn.deliver(OneHandler(first_two), first_two) is None
    assert seen == [250, 250]
    assert outstanding(conn) == (CAROL,)
    assert conn.next_event() == got(CAROL, 250, "2.0.0 ok")


def test_deliver_runs_each_handler_before_the_next_reply() -> None:
    # What the handler of one reply does is in place for the next: here it
    # sends the RCPT that the third reply answers (as next_reply, called
    # in a loop, would pair them).
    conn = after(MAIL, BOB)()
    conn.receive_data(OK + OK + OK)
    seen: list[Command | None] = []

    def on_reply(pending: Pending, reply: Reply, index: int, final: bool) -> bool:
        seen.append(pending.command)
        if pending.command == MAIL:
            conn.send(CAROL)
        return False

    assert conn.deliver(OneHandler(on_reply), on_reply) is NEED_DATA
    assert seen == [MAIL, BOB, CAROL]


def test_deliver_goes_by_the_command_class_and_a_421_to_closing() -> None:
    conn = after(MAIL, BOB, CAROL)()
    conn.receive_data(OK + b"550 5.1.1 no\r\n" + b"421 4.3.2 bye\r\n")
    seen: list[tuple[str, int]] = []

    def handler(name: str) -> OnReply:
        def on_reply(pending: Pending, reply: Reply, index: int, final: bool) -> None:
            seen.append((name, reply.code))

        return on_reply

    handlers = {Mail: handler("mail"), Rcpt: handler("rcpt")}
    before = conn.delivered
    assert conn.deliver(handlers, handler("closing")) is NEED_DATA
    assert seen == [("mail", 250), ("rcpt", 550), ("closing", 421)]
    assert conn.delivered == before + 3


def test_deliver_stops_after_the_handler_that_halts() -> None:
    # The session halts the connection when it closes: no reply after that
    # one is handed out (or counted).
    conn = after(MAIL, BOB, CAROL)()
    conn.receive_data(OK + OK + OK)
    seen: list[Command | None] = []
    before = conn.delivered

    def on_reply(pending: Pending, reply: Reply, index: int, final: bool) -> None:
        seen.append(pending.command)
        if pending.command == BOB:
            conn.halt()

    assert conn.deliver(OneHandler(on_reply), on_reply) is None
    assert seen == [MAIL, BOB]
    assert conn.delivered == before + 2
    assert outstanding(conn) == (CAROL,)


# -- seal: a write failed ---------------------------------------------------------------


def _in_body(*, lmtp: bool = False) -> Connection:
    """MAIL, two RCPTs and DATA answered (354): the body is going out."""
    conn = after(MAIL, BOB, CAROL, Data(), lmtp=lmtp)()
    collect(conn, [OK + OK + OK + GO])
    assert state_of(conn) is ConnState.BODY
    return conn


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_seal_drops_the_end_of_data_that_did_not_leave(lmtp: bool) -> None:
    # The end of data was recorded (tagged "m1"), then the write carrying
    # it failed before it left. The server's 421, sent during the data,
    # answers nothing that reached it: it came unasked (RFC 5321 3.8).
    conn = _in_body(lmtp=lmtp)
    conn.send(EndOfData(), tag="m1")
    conn.send(Mail(sender="bob@example.com"), tag="m2")  # pipelined after the dot
    conn.seal(["m1"])
    assert outstanding(conn) == ()
    conn.receive_data(b"421 4.3.2 shutting down\r\n")
    assert conn.next_event() == ServiceClosing(reply=reply(421, "4.3.2 shutting down"))


def test_seal_keeps_what_left_before_the_failure() -> None:
    # Only the commands before the unsent end wait for their replies; an end
    # not named in ``unsent`` (it may have left) still waits for its own.
    conn = after(MAIL, BOB, Data())()
    conn.seal()
    assert outstanding(conn) == (MAIL, BOB, Data())
    collect(conn, [OK + OK + GO])
    conn = _in_body()
    conn.send(EndOfData(), tag="m1")
    conn.seal(["another"])
    assert outstanding(conn) == (EndOfData(),)
    [event] = collect(conn, [b"250 2.0.0 queued\r\n"])
    assert isinstance(event, ReplyReceived)
    assert (event.command, event.reply.code, event.tag) == (EndOfData(), 250, "m1")


def test_after_seal_what_is_sent_waits_for_no_reply() -> None:
    # What the replies read after the failure prompt (here the end of data
    # after a 354) is never written: no reply is due to it, so a later
    # reply cannot be paired with it.
    conn = after(MAIL, BOB, Data())()
    conn.seal()
    collect(conn, [OK + OK + GO])
    conn.send(EndOfData(), tag="m1")
    assert outstanding(conn) == ()
    conn.receive_data(b"250 2.0.0 queued\r\n")
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()


def test_after_seal_a_pipelined_envelope_waits_for_no_reply() -> None:
    # push_envelope records a transaction's commands at once: after the
    # seal none of them is waiting either (a reply then is unsolicited).
    conn = after(Rset())()
    conn.seal()
    conn.push_envelope(MAIL, BOB, 3, Data(), tag="t")
    assert outstanding(conn) == (Rset(),)
    collect(conn, [OK])
    conn.receive_data(OK)
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()
