"""Interop with a real LMTP server: a private Dovecot 2.3 on 127.0.0.1.

LMTP (RFC 2033) answers the end of data once per accepted recipient, and
Dovecot, like Exim, keeps a transaction open after a refused BDAT until
RSET. These are the outcome-truth cases the model server of
tests/core/model_server.py plays as its DOVECOT variant, here against the
real thing, on every adapter: each result is checked against what Dovecot
stored, in which mailbox, under which envelope sender.

Dovecot's users (tests/adapters/dovecot_server.py): ``rcpt1`` and ``rcpt2`` take mail,
``full`` refuses it after the data (552, quota), anyone else is refused at
RCPT (550).
"""

from __future__ import annotations

import uuid
from typing import Final

import pytest
from daemons import as_stored, assert_hello_again_after_tls, plain_options
from daemons import interop_message as message
from dovecot_server import DovecotServer
from servers import Flavor, TLSMaterial

from smtpcore import (
    MessageResult,
    PermanentReplyError,
    RecipientsRefusedError,
    RecipientState,
    SMTPError,
    TLSError,
)

pytestmark = [pytest.mark.anyio, pytest.mark.dovecot]

ALICE: Final = "alice@example.test"
BOB: Final = "bob@example.test"
CAROL: Final = "carol@example.test"
RCPT1: Final = "rcpt1@example.test"
RCPT2: Final = "rcpt2@example.test"
FULL: Final = "full@example.test"  # refused after the data: 552, quota
NOSUCH: Final = "nosuch@example.test"  # refused at RCPT: 550


def lmtp_options(dovecot: DovecotServer, **overrides: object) -> dict[str, object]:
    return plain_options(dovecot.port, lmtp=True, **overrides)


def stored(dovecot: DovecotServer, user: str, token: str) -> list[tuple[str, bytes]]:
    """What ``user``'s mailbox holds of this test's messages: each one's
    Return-Path (the envelope sender Dovecot was given) and what was sent,
    from its first header on (Dovecot stores LF line endings)."""
    found = []
    for data in dovecot.delivered(user):
        start = data.find(b"Message-ID: <" + token.encode())
        if start < 0:
            continue
        first, _, _ = data.partition(b"\n")
        assert first.startswith(b"Return-Path: <"), first
        found.append((first[len(b"Return-Path: <") : -1].decode(), data[start:]))
    return found


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_a_refused_message_leaves_the_next_its_own_sender(
    flavor: Flavor, dovecot: DovecotServer, chunking: bool
) -> None:
    # Issue 11, bug 7: with CHUNKING the session pipelined the first
    # message's BDAT LAST behind its refused RCPT; Dovecot answered it 503
    # and kept the transaction until RSET, so the second message's MAIL got
    # "503 5.5.0 MAIL already given" and it was reported failed, the
    # replies out of step. Now each message says what Dovecot did.
    token = uuid.uuid4().hex
    sent = [message(token, 0), message(token, 1)]
    async with flavor.client(**lmtp_options(dovecot, chunking=chunking)) as client:
        first, second = await client.send_many(
            [
                {"sender": ALICE, "recipients": [NOSUCH], "message": sent[0]},
                {"sender": BOB, "recipients": [RCPT1], "message": sent[1]},
            ]
        )
    assert isinstance(first, RecipientsRefusedError), first
    assert first.replies[NOSUCH].code == 550
    assert not first.status_unknown
    assert isinstance(second, MessageResult), second
    assert second.accepted == (RCPT1,)
    assert second.status_known
    assert stored(dovecot, "rcpt1", token) == [(BOB, as_stored(sent[1]))]


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_a_message_no_recipient_takes_is_refused_at_once(
    flavor: Flavor, dovecot: DovecotServer, chunking: bool
) -> None:
    # Issue 11, bug 8: RFC 2033 4.2 gives one reply per *accepted*
    # recipient after the data, so none here; the session waited for one
    # and ended in a timeout ("delivery status unknown").
    token = uuid.uuid4().hex
    async with flavor.client(**lmtp_options(dovecot, chunking=chunking)) as client:
        with pytest.raises(RecipientsRefusedError) as refused:
            await client.send_message(ALICE, [NOSUCH], message=message(token, 0))
        # The connection is still in step: the next message goes through.
        result = await client.send_message(BOB, [RCPT2], message=message(token, 1))
    assert not refused.value.status_unknown
    assert result.accepted == (RCPT2,)
    assert stored(dovecot, "rcpt2", token) == [(BOB, as_stored(message(token, 1)))]


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_each_recipient_gets_its_own_reply_after_the_data(
    flavor: Flavor, dovecot: DovecotServer, chunking: bool
) -> None:
    # RFC 2033 4.2: Dovecot saves the message for rcpt1 and rcpt2 and
    # refuses it for full (552, after the data): the result says so,
    # recipient by recipient, and only those two mailboxes hold it.
    token = uuid.uuid4().hex
    body = message(token, 0)
    async with flavor.client(**lmtp_options(dovecot, chunking=chunking)) as client:
        result = await client.send_message(ALICE, [RCPT1, FULL, RCPT2], message=body)
    assert result.accepted == (RCPT1, RCPT2)
    assert {rcpt: reply.code for rcpt, reply in result.rejected.items()} == {FULL: 552}
    assert result.status_known
    assert stored(dovecot, "rcpt1", token) == [(ALICE, as_stored(body))]
    assert stored(dovecot, "rcpt2", token) == [(ALICE, as_stored(body))]
    assert stored(dovecot, "full", token) == []


async def test_every_recipient_refused_after_the_data(
    flavor: Flavor, dovecot: DovecotServer
) -> None:
    # Issue 11, bug 9's class: every recipient was accepted at RCPT and
    # refused after the data. The error carries each recipient's outcome.
    token = uuid.uuid4().hex
    async with flavor.client(**lmtp_options(dovecot)) as client:
        [outcome] = await client.send_many(
            [{"sender": ALICE, "recipients": [FULL], "message": message(token, 0)}]
        )
    assert isinstance(outcome, PermanentReplyError), outcome
    assert outcome.reply.code == 552
    assert not outcome.status_unknown
    assert outcome.result is not None
    [status] = outcome.result.recipients
    assert (status.recipient, status.state) == (FULL, RecipientState.REFUSED)
    assert stored(dovecot, "full", token) == []


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_a_pipelined_batch_of_mixed_outcomes(
    flavor: Flavor, dovecot: DovecotServer, chunking: bool
) -> None:
    # One connection, the messages pipelined: refused at RCPT, partly
    # refused after the data, refused after the data, split over two
    # transactions (max_recipients=2), accepted. Every result is checked
    # against the mailboxes: each message stored for exactly the
    # recipients reported accepted, under its own sender, once.
    token = uuid.uuid4().hex
    plans = [
        (ALICE, [NOSUCH]),
        (BOB, [RCPT1, FULL]),
        (CAROL, [FULL]),
        (ALICE, [RCPT1, NOSUCH, RCPT2]),
        (BOB, [RCPT2]),
    ]
    sent = [message(token, i) for i in range(len(plans))]
    options = lmtp_options(dovecot, chunking=chunking, max_recipients=2)
    async with flavor.client(**options) as client:
        outcomes = await client.send_many(
            [
                {"sender": sender, "recipients": rcpts, "message": body}
                for (sender, rcpts), body in zip(plans, sent, strict=True)
            ]
        )
    accepted: dict[int, tuple[str, ...]] = {}
    for index, outcome in enumerate(outcomes):
        result = outcome.result if isinstance(outcome, SMTPError) else outcome
        assert result is not None, (index, outcome)
        assert result.status_known, (index, result)
        accepted[index] = result.accepted
    assert accepted == {0: (), 1: (RCPT1,), 2: (), 3: (RCPT1, RCPT2), 4: (RCPT2,)}
    assert isinstance(outcomes[0], RecipientsRefusedError)
    assert isinstance(outcomes[2], PermanentReplyError)
    for user in ("rcpt1", "rcpt2", "full"):
        expected = [
            (plans[i][0], as_stored(sent[i]))
            for i in sorted(accepted)
            if f"{user}@example.test" in accepted[i]
        ]
        assert sorted(stored(dovecot, user, token)) == sorted(expected), user


# -- over STARTTLS ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_over_starttls_each_message_and_recipient_gets_its_own_outcome(
    flavor: Flavor, dovecot: DovecotServer, tls: TLSMaterial, chunking: bool
) -> None:
    # Bug 7's batch after STARTTLS (RFC 3207: LHLO again once TLS is up),
    # with a third message whose recipients get one reply each after the
    # data (RFC 2033 4.2): saved for rcpt1, refused for full (552).
    token = uuid.uuid4().hex
    sent = [message(token, i) for i in range(3)]
    options = lmtp_options(
        dovecot,
        tls="starttls",
        ssl_context=tls.client_context(),
        chunking=chunking,
        transaction_log=True,
    )
    async with flavor.client(**options) as client:
        first, second, third = await client.send_many(
            [
                {"sender": ALICE, "recipients": [NOSUCH], "message": sent[0]},
                {"sender": BOB, "recipients": [RCPT1], "message": sent[1]},
                {"sender": CAROL, "recipients": [FULL, RCPT1], "message": sent[2]},
            ]
        )
        lines = [str(entry) for entry in client.transcript]
    assert_hello_again_after_tls(lines, "LHLO")
    assert isinstance(first, RecipientsRefusedError), first
    assert not first.status_unknown
    assert isinstance(second, MessageResult), second
    assert second.accepted == (RCPT1,)
    assert isinstance(third, MessageResult), third
    assert third.accepted == (RCPT1,)
    assert third.status_known
    assert third.rejected[FULL].code == 552
    assert stored(dovecot, "rcpt1", token) == [
        (BOB, as_stored(sent[1])),
        (CAROL, as_stored(sent[2])),
    ]
    assert stored(dovecot, "full", token) == []


async def test_starttls_with_an_untrusted_certificate_delivers_nothing(
    flavor: Flavor, dovecot: DovecotServer
) -> None:
    # No context given: the system's CAs do not know the test CA, the
    # handshake fails, and nothing goes out in the clear.
    token = uuid.uuid4().hex
    with pytest.raises(TLSError):
        async with flavor.client(**lmtp_options(dovecot, tls="starttls")) as client:
            await client.send_message(ALICE, [RCPT1], message=message(token, 0))
    assert stored(dovecot, "rcpt1", token) == []
