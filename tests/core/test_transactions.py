"""Outcome truth, transaction by transaction, byte for byte.

Each test is a conversation a real server had with the client (Exim,
Postfix, Dovecot LMTP, or a broken server), scripted with
:func:`scripted.converse`: the exact client bytes at every step, and every
recipient's reported outcome checked against what the server did. The
broader property (random batches against a model MTA) lives in
``test_outcome_truth.py``.
"""

from __future__ import annotations

import pytest
from scripted import EOF, Step, converse, make_session
from test_session import (
    BOB,
    BODY,
    CAROL,
    DATA,
    DOT,
    GO,
    LHLO,
    OK,
    QUEUED,
    QUIT_STEP,
    RSET,
    WIRE,
    accepted,
    closed,
    config,
    ehlo_reply,
    envelope,
    failed,
    mail,
    message,
    opening,
    rcpt,
)

from smtpcore import (
    BodyEncoder,
    Close,
    ConnectionLostError,
    EncodeMode,
    MessageAccepted,
    MessageFailed,
    Read,
    RecipientsRefusedError,
    RecipientState,
    RemoteProtocolError,
    TemporaryReplyError,
    Write,
)
from smtpcore._session import BIG_BODY, BODY_CHUNK_SIZE

ALICE = "alice@example.com"
BOBS = "bob@example.com"
NOSUCH = "nosuch@example.org"
BDAT_LAST = b"BDAT %d LAST\r\n" % len(BODY) + BODY


def states(result: object) -> dict[str, tuple[RecipientState, int | None]]:
    recipients = getattr(result, "recipients")  # noqa: B009
    return {r.recipient: (r.state, None if r.reply is None else r.reply.code) for r in recipients}


# -- a refused BDAT may leave the server's transaction open ---------------------


@pytest.mark.parametrize(
    "bdat_refusal",
    [
        # Exim 4.96 keeps Alice's MAIL after this (RFC 3030 4.2 allows it).
        b"503-All RCPT commands were rejected with this error:\r\n"
        b"503-550 no such user\r\n"
        b"503 Valid RCPT command must precede BDAT\r\n",
        # Postfix resets the transaction.
        b"554 5.5.1 Error: no valid recipients\r\n",
    ],
    ids=["exim-keeps", "postfix-resets"],
)
def test_refused_bdat_is_followed_by_rset_before_the_next_mail(bdat_refusal: bytes) -> None:
    # Issue: Bob's MAIL got "503 sender already given" and his RCPT and BDAT
    # joined Alice's open transaction: Exim queued his message under Alice.
    # The RSET goes in the same write as Bob's MAIL: no extra round trip.
    script: list[Step] = [
        *opening("PIPELINING", "CHUNKING"),
        (
            mail(ALICE) + rcpt(NOSUCH) + BDAT_LAST + RSET + mail(BOBS) + rcpt(CAROL) + BDAT_LAST,
            OK + b"550 5.1.1 no such user\r\n" + bdat_refusal + OK + OK + OK + QUEUED,
        ),
        QUIT_STEP,
    ]
    run = converse(config(), [message(NOSUCH, sender=ALICE), message(CAROL, sender=BOBS)], script)
    first, second = run.of_type(MessageFailed) + run.of_type(MessageAccepted)
    assert isinstance(first, MessageFailed)
    assert isinstance(first.error, RecipientsRefusedError)
    assert states(first.result) == {NOSUCH: (RecipientState.REFUSED, 550)}
    assert isinstance(second, MessageAccepted)
    assert second.result.sender == BOBS
    assert states(second.result) == {CAROL: (RecipientState.ACCEPTED, 250)}


# -- require_all_recipients -------------------------------------------------------------


def test_require_all_recipients_reports_each_recipient_by_its_own_reply() -> None:
    # Issue: the accepted recipient was reported refused, with the other's 550.
    script: list[Step] = [
        *opening("PIPELINING"),
        (mail() + rcpt(BOB) + rcpt(CAROL), OK + OK + b"550 5.1.1 no carol\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(require_all_recipients=True), [message(BOB, CAROL)], script)
    event = failed(run)
    assert DATA not in run.client
    assert isinstance(event.error, RecipientsRefusedError)
    assert {r: reply.code for r, reply in event.error.replies.items()} == {CAROL: 550}
    # Bob said 250 but got nothing: the client withheld the message.
    assert states(event.result) == {
        BOB: (RecipientState.NOT_SENT, 250),
        CAROL: (RecipientState.REFUSED, 550),
    }
    assert event.error.result == event.result
    assert event.retry_safe


# -- after the dot, only a well-formed final reply settles the outcome -----------------


def test_malformed_final_reply_leaves_the_status_unknown() -> None:
    # RFC 5321 4.2.5 / 4.5.3.2.6: the server may have queued the message.
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB), OK + OK + GO),
        (WIRE, b"250-2.0.0 queued\r\n550 5.0.0 or not\r\n"),
    ]
    run = converse(config(), [message(BOB)], script)
    event = failed(run)
    assert isinstance(event.error, RemoteProtocolError)
    assert event.error.status_unknown
    assert not event.result.status_known
    assert states(event.result) == {BOB: (RecipientState.UNKNOWN, 250)}
    assert event.error.result == event.result
    assert closed(run).error is not None


def test_eof_before_the_dot_reply_is_unknown_only_for_that_message() -> None:
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB), OK + OK + GO),
        (WIRE + envelope(CAROL), EOF),
    ]
    run = converse(config(), [message(BOB), message(CAROL)], script)
    first, second = run.of_type(MessageFailed)
    assert first.error.status_unknown
    assert isinstance(first.error, ConnectionLostError)
    assert states(first.result) == {BOB: (RecipientState.UNKNOWN, 250)}
    assert not second.error.status_unknown
    assert states(second.result) == {CAROL: (RecipientState.NOT_SENT, None)}
    assert second.retry_safe


# -- "too many recipients" --------------------------------------------------------------


@pytest.mark.parametrize(
    "too_many",
    [b"452 4.5.3 Too many recipients\r\n", b"552 5.5.3 Too many recipients\r\n"],
    ids=["452", "552-5.5.3"],
)
def test_too_many_recipients_goes_on_in_a_further_transaction(too_many: bytes) -> None:
    # RFC 5321 4.5.3.1.10: 552 for "too many recipients" is RFC 821's code
    # for 452, and clients treat it as 452.
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL), OK + OK + too_many + GO),
        (WIRE, QUEUED),
        (envelope(CAROL), OK + OK + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL)], script)
    result = accepted(run).result
    assert states(result) == {
        BOB: (RecipientState.ACCEPTED, 250),
        CAROL: (RecipientState.ACCEPTED, 250),
    }


def test_552_for_a_full_mailbox_is_a_refusal() -> None:
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL), OK + OK + b"552 5.2.2 mailbox full\r\n" + GO),
        (WIRE, QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB, CAROL)], script)
    assert states(accepted(run).result) == {
        BOB: (RecipientState.ACCEPTED, 250),
        CAROL: (RecipientState.REFUSED, 552),
    }


def test_split_message_reports_the_recipients_already_delivered() -> None:
    # Issue: one ConnectionLostError saying nothing of Bob, already queued: a
    # caller who retries sends Bob a duplicate.
    script: list[Step] = [
        *opening("PIPELINING"),
        (envelope(BOB, CAROL), OK + OK + b"452 4.5.3 Too many recipients\r\n" + GO),
        (WIRE, QUEUED),
        (envelope(CAROL), EOF),
    ]
    run = converse(config(), [message(BOB, CAROL)], script)
    event = failed(run)
    assert isinstance(event.error, ConnectionLostError)
    assert not event.error.status_unknown
    assert event.error.result == event.result
    assert states(event.result) == {
        BOB: (RecipientState.ACCEPTED, 250),
        CAROL: (RecipientState.NOT_SENT, None),
    }
    assert event.result.accepted == (BOB,)
    assert event.result.retryable == (CAROL,)
    assert not event.retry_safe  # Bob has it: resend to the retryable ones only


# -- LMTP ------------------------------------------------------------------------------


def lmtp_opening(*keywords: str) -> list[Step]:
    from test_session import GREETING

    return [(b"", GREETING), (LHLO, ehlo_reply(*keywords))]


def test_lmtp_bdat_waits_for_an_accepted_recipient() -> None:
    # Dovecot answers a BDAT LAST with no accepted recipient with 503 and
    # keeps the transaction; RFC 2033 4.3 says such a BDAT LAST gets zero
    # replies. Either way the client must not send it: it waits for the RCPT
    # replies, sends no BDAT for a refused envelope, and resets.
    script: list[Step] = [
        *lmtp_opening("PIPELINING", "CHUNKING"),
        (mail() + rcpt(NOSUCH), OK + b"550 5.1.1 no such user\r\n"),
        (RSET + mail() + rcpt(BOB), OK + OK + OK),
        (BDAT_LAST, b"250 2.0.0 <bob@example.org> saved\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(lmtp=True), [message(NOSUCH), message(BOB)], script)
    first = failed(run)
    assert isinstance(first.error, RecipientsRefusedError)
    assert states(first.result) == {NOSUCH: (RecipientState.REFUSED, 550)}
    assert states(accepted(run).result) == {BOB: (RecipientState.ACCEPTED, 250)}
    assert b"BDAT" not in run.client.split(RSET)[0]


def test_lmtp_single_refused_recipient_is_refused_not_timed_out() -> None:
    script: list[Step] = [
        *lmtp_opening("PIPELINING"),
        (
            envelope(NOSUCH),
            OK + b"550 5.1.1 no such user\r\n" + b"503 5.5.1 no valid recipients\r\n",
        ),
        QUIT_STEP,
    ]
    run = converse(config(lmtp=True), [message(NOSUCH)], script)
    event = failed(run)
    assert isinstance(event.error, RecipientsRefusedError)
    assert closed(run).error is None


def test_lmtp_354_with_no_accepted_recipient_closes_instead_of_guessing() -> None:
    # RFC 2033 4.2: DATA MUST fail with 503 when no RCPT succeeded. After a
    # 354 the lone terminator gets zero replies by the RFC, or one from a
    # lenient server: the client cannot pair what comes next, so it closes.
    script: list[Step] = [
        *lmtp_opening("PIPELINING"),
        (envelope(NOSUCH), OK + b"550 5.1.1 no such user\r\n" + GO),
    ]
    run = converse(config(lmtp=True), [message(NOSUCH), message(BOB)], script)
    first, second = run.of_type(MessageFailed)
    assert isinstance(first.error, RecipientsRefusedError)
    assert states(first.result) == {NOSUCH: (RecipientState.REFUSED, 550)}
    assert states(second.result) == {BOB: (RecipientState.NOT_SENT, None)}
    assert second.retry_safe
    assert DOT not in run.client


def test_lmtp_every_recipient_refused_after_the_data_keeps_every_reply() -> None:
    # RFC 2033 4.2: one reply per accepted recipient; the error must say that
    # Carol's 452 is worth a retry although Bob's 552 is not.
    script: list[Step] = [
        *lmtp_opening("PIPELINING"),
        (envelope(BOB, CAROL), OK + OK + OK + GO),
        (WIRE, b"552 5.2.2 bob over quota\r\n452 4.2.2 carol busy\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(lmtp=True), [message(BOB, CAROL)], script)
    event = failed(run)
    assert event.error.result == event.result
    assert states(event.result) == {
        BOB: (RecipientState.REFUSED, 552),
        CAROL: (RecipientState.REFUSED, 452),
    }
    assert event.result.retryable == (CAROL,)


def test_lmtp_reply_count_starts_again_with_each_mail() -> None:
    # Issue: after the first message's DATA got 450 and RSET, the connection
    # still counted its accepted RCPT, so the second message's end of data
    # waited for two replies and took the third message's MAIL reply as one.
    later = b"450 4.3.0 try later\r\n"
    script: list[Step] = [
        *lmtp_opening("PIPELINING"),
        (envelope(BOB), OK + OK + later),
        (RSET + envelope(BOB), OK + OK + OK + GO),
        (WIRE + envelope(BOB), b"250 2.0.0 bob saved\r\n" + OK + OK + later),
        QUIT_STEP,
    ]
    run = converse(config(lmtp=True), [message(BOB), message(BOB), message(BOB)], script)
    first, third = run.of_type(MessageFailed)
    assert isinstance(first.error, TemporaryReplyError)
    assert first.error.command == "DATA"
    assert isinstance(third.error, TemporaryReplyError)
    assert third.error.command == "DATA"
    assert states(accepted(run).result) == {BOB: (RecipientState.ACCEPTED, 250)}
    assert closed(run).error is None


def test_refused_bdat_last_names_bdat() -> None:
    script: list[Step] = [
        *opening("PIPELINING", "CHUNKING"),
        (mail() + rcpt(BOB) + BDAT_LAST, OK + OK + b"554 5.6.0 content rejected\r\n"),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB)], script)
    event = failed(run)
    assert getattr(event.error, "command", None) == "BDAT"
    assert "BDAT" in str(event.error)
    assert states(event.result) == {BOB: (RecipientState.REFUSED, 554)}


# -- large in-memory bodies --------------------------------------------------------------


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
def test_large_in_memory_body_goes_out_uncopied(chunking: bool) -> None:
    # A body that needs no change goes to the adapter as the very object the
    # caller gave, in a Write of its own: no second copy of a large message.
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 200
    if chunking:
        steps: list[Step] = [
            *opening("PIPELINING", "CHUNKING"),
            (mail() + rcpt(BOB) + b"BDAT %d LAST\r\n" % len(body) + body, OK + OK + QUEUED),
        ]
    else:
        steps = [*opening("PIPELINING"), (envelope(BOB), OK + OK + GO), (body + DOT, QUEUED)]
    run = converse(config(), [message(BOB, body=body)], [*steps, QUIT_STEP])
    assert any(write.data is body for write in run.writes)
    assert states(accepted(run).result) == {BOB: (RecipientState.ACCEPTED, 250)}


# -- several transactions in flight -----------------------------------------------------


def test_chunking_keeps_several_transactions_on_the_wire() -> None:
    # With CHUNKING no 354 stands between messages: three messages go out in
    # one write, each MAIL behind an RSET (the BDAT LAST before it is not
    # answered yet, so the server's transaction may still be open).
    one = mail() + rcpt(BOB) + BDAT_LAST
    script: list[Step] = [
        *opening("PIPELINING", "CHUNKING"),
        (one + RSET + one + RSET + one, (OK + OK + QUEUED) + (OK + OK + OK + QUEUED) * 2),
        QUIT_STEP,
    ]
    run = converse(config(), [message(BOB), message(BOB), message(BOB)], script)
    assert len(run.of_type(MessageAccepted)) == 3
    assert sum(1 for write in run.writes if b"MAIL" in write.data) == 1


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
def test_probing_with_pipelining_stops_after_the_envelope(stage: str) -> None:
    from smtpcore import MessageProbed, QuitAfter

    quit_after = QuitAfter(stage)
    sent = mail() if quit_after is QuitAfter.MAIL else mail() + rcpt(BOB) + rcpt(CAROL)
    replies = OK if quit_after is QuitAfter.MAIL else OK + OK + b"550 5.1.1 no carol\r\n"
    script: list[Step] = [*opening("PIPELINING"), (sent, replies), QUIT_STEP]
    run = converse(config(quit_after=quit_after), [message(BOB, CAROL)], script)
    probed = run.of_type(MessageProbed)
    assert len(probed) == 1
    assert DATA not in run.client


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
def test_large_in_memory_body_that_needs_encoding_is_encoded_piece_by_piece(
    chunking: bool,
) -> None:
    # Dot-stuffing and bare line endings change a large body: it is encoded
    # as it goes out, in pieces, never as a second whole copy. What goes on
    # the wire is exactly what the whole-body encoder makes of it.
    line = b".leading dot, then a bare LF\n" + b"y" * 70 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (BIG_BODY // len(line) + 1)
    encoder = BodyEncoder(mode=EncodeMode.BDAT if chunking else EncodeMode.DATA)
    wire = encoder.feed(body) + encoder.end()
    keywords = ("PIPELINING", "CHUNKING") if chunking else ("PIPELINING",)
    session, _ = make_session(config(), [message(BOB, body=body)], quit=True)
    inbox = bytearray(b"220 mx.example.org ESMTP\r\n")
    sent = bytearray()
    biggest = 0
    while not isinstance(action := session.next_action(), Close):
        if isinstance(action, Read):
            session.receive_data(bytes(inbox))
            inbox.clear()
            continue
        assert isinstance(action, Write), action
        data = action.data
        sent += data
        biggest = max(biggest, len(data))
        # A server that takes everything: one reply per command it got.
        if data.startswith(b"EHLO"):
            inbox += ehlo_reply(*keywords)
        inbox += OK * (data.count(b"MAIL FROM") + data.count(b"RCPT TO") + data.count(b"BDAT "))
        if data.endswith(DATA):
            inbox += GO
        if data.endswith(b"\r\n.\r\n") or data == DOT:
            inbox += QUEUED
        if data == b"QUIT\r\n":
            inbox += b"221 2.0.0 bye\r\n"
    assert biggest <= 2 * BODY_CHUNK_SIZE
    events = list(session.events())
    assert [type(e) for e in events].count(MessageAccepted) == 1, events
    after = bytes(sent).split(rcpt(BOB), 1)[1]
    if chunking:
        # Reassemble the chunks: BDAT <size> [LAST] CRLF, then <size> octets.
        data = b""
        while after:
            header, after = after.split(b"\r\n", 1)
            size = int(header.split()[1])
            data, after = data + after[:size], after[size:]
            if header.endswith(b"LAST"):
                break
        assert data == wire
    else:
        assert after.startswith(DATA + wire)


def test_bdat_lines_are_in_the_transcript() -> None:
    script: list[Step] = [
        *opening("PIPELINING", "CHUNKING"),
        (mail() + rcpt(BOB) + BDAT_LAST, OK + OK + QUEUED),
        QUIT_STEP,
    ]
    run = converse(config(transaction_log=True), [message(BOB)], script)
    assert f"-> BDAT {len(BODY)} LAST" in run.transcript
