"""Interop with a real Exim 4.96 on 127.0.0.1 (tests/adapters/exim_server.py).

Exim answers a BDAT that follows refused RCPTs with ``503 Valid RCPT
command must precede BDAT`` and keeps the transaction open (RFC 3030 4.2
lets it; Postfix resets it): the server of issue 11's first bug, where the
next message went out under the previous sender. Exim only queues here, so
every result is checked against its spool: each message queued once, for
exactly the recipients reported accepted, under its own sender.

Exim refuses the local parts ``reject`` and ``nosuch`` at RCPT (550),
``tempfail`` with 451, and a message with an ``X-Refuse`` header after the
data (550).
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import pytest
from daemons import as_stored, assert_hello_again_after_tls, interop_message, plain_options
from exim_server import EximServer, Queued
from servers import Flavor, TLSMaterial

from smtpcore import (
    MessageResult,
    PermanentReplyError,
    RecipientsRefusedError,
    RecipientState,
    SMTPError,
    TLSError,
)

pytestmark = [pytest.mark.anyio, pytest.mark.exim]

ALICE: Final = "alice@example.com"
BOB: Final = "bob@example.com"
CAROL: Final = "carol@example.com"
RCPT1: Final = "rcpt1@example.com"
RCPT2: Final = "rcpt2@example.com"
REJECT: Final = "reject@example.com"  # 550 at RCPT
NOSUCH: Final = "nosuch@example.com"  # 550 at RCPT
TEMPFAIL: Final = "tempfail@example.com"  # 451 at RCPT
REFUSE: Final = "X-Refuse: yes\r\n"  # 550 after the data


def queued(exim: EximServer, token: str) -> list[Queued]:
    """This test's messages in Exim's spool."""
    return [q for q in exim.queued() if token.encode() in q.data]


def body_of(stored: Queued) -> bytes:
    """What was sent, from its first header on (after Exim's Received)."""
    start = stored.data.find(b"Message-ID: <")
    assert start > 0, stored.data
    return stored.data[start:]


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_a_refused_bdat_leaves_the_next_message_its_own_sender(
    flavor: Flavor, exim: EximServer, chunking: bool
) -> None:
    # Issue 11, bug 1, as reported: the session pipelined "BDAT n LAST"
    # behind the refused RCPT; Exim answered it 503 and kept Alice's MAIL
    # open; Bob's MAIL got "503 sender already given", his RCPT and BDAT
    # joined Alice's transaction, and Exim queued Bob's message under
    # Alice's sender while Bob's result said PermanentReplyError.
    token = uuid.uuid4().hex
    sent = [interop_message(token, 0), interop_message(token, 1)]
    async with flavor.client(**plain_options(exim.port, chunking=chunking)) as client:
        first, second = await client.send_many(
            [
                {"sender": ALICE, "recipients": [REJECT], "message": sent[0]},
                {"sender": BOB, "recipients": [CAROL], "message": sent[1]},
            ]
        )
    assert isinstance(first, RecipientsRefusedError), first
    assert first.replies[REJECT].code == 550
    assert not first.status_unknown
    assert isinstance(second, MessageResult), second
    assert second.accepted == (CAROL,)
    [stored] = queued(exim, token)
    assert (stored.sender, stored.recipients) == (BOB, (CAROL,))
    assert body_of(stored) == as_stored(sent[1])


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_require_all_recipients_sends_nothing_when_one_is_refused(
    flavor: Flavor, exim: EximServer, chunking: bool
) -> None:
    # Issue 11, bug 2: the accepted recipient was reported refused, with
    # the other recipient's 550. It is not sent, with its own 250.
    token = uuid.uuid4().hex
    options = plain_options(exim.port, chunking=chunking, require_all_recipients=True)
    async with flavor.client(**options) as client:
        [outcome] = await client.send_many(
            [{"sender": ALICE, "recipients": [RCPT1, REJECT], "message": interop_message(token, 0)}]
        )
    assert isinstance(outcome, RecipientsRefusedError), outcome
    assert outcome.unsent == (RCPT1,)
    assert outcome.result is not None
    statuses = {r.recipient: (r.state, r.reply and r.reply.code) for r in outcome.result.recipients}
    assert statuses == {
        RCPT1: (RecipientState.NOT_SENT, 250),
        REJECT: (RecipientState.REFUSED, 550),
    }
    assert queued(exim, token) == []


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_a_pipelined_batch_of_mixed_outcomes(
    flavor: Flavor, exim: EximServer, chunking: bool
) -> None:
    # One connection, the messages pipelined: refused at RCPT; one
    # recipient refused for now (451); refused after the data; split over
    # two transactions (max_recipients=2) with a refused recipient in the
    # first; accepted. Each message is queued once, for exactly the
    # recipients reported accepted, under its own sender.
    token = uuid.uuid4().hex
    plans = [
        (ALICE, [REJECT], False),
        (BOB, [RCPT1, TEMPFAIL], False),
        (CAROL, [RCPT2], True),
        (ALICE, [NOSUCH, RCPT1, RCPT2], False),
        (BOB, [RCPT2], False),
    ]
    sent = [
        interop_message(token, i, extra=REFUSE if refuse else "")
        for i, (_, _, refuse) in enumerate(plans)
    ]
    options = plain_options(exim.port, chunking=chunking, max_recipients=2)
    async with flavor.client(**options) as client:
        outcomes = await client.send_many(
            [
                {"sender": sender, "recipients": rcpts, "message": body}
                for (sender, rcpts, _), body in zip(plans, sent, strict=True)
            ]
        )
    results = []
    for index, outcome in enumerate(outcomes):
        result = outcome.result if isinstance(outcome, SMTPError) else outcome
        assert result is not None, (index, outcome)
        assert result.status_known, (index, result)
        results.append(result)
    assert [r.accepted for r in results] == [(), (RCPT1,), (), (RCPT1, RCPT2), (RCPT2,)]
    assert isinstance(outcomes[0], RecipientsRefusedError)
    assert results[1].retryable == (TEMPFAIL,)
    assert isinstance(outcomes[2], PermanentReplyError)
    assert outcomes[2].reply.code == 550
    expected = []
    for index, result in enumerate(results):
        # The split message went in two transactions: a spool entry each.
        groups = [(r,) for r in result.accepted] if index == 3 else [result.accepted]
        expected += [(plans[index][0], g, as_stored(sent[index])) for g in groups if g]
    found = [(q.sender, q.recipients, body_of(q)) for q in queued(exim, token)]
    assert sorted(found) == sorted(expected)


# -- over STARTTLS ------------------------------------------------------------------------------


def tls_options(exim: EximServer, tls: TLSMaterial, **overrides: Any) -> dict[str, Any]:
    """STARTTLS required, trusting the test CA (Exim presents its certificate)."""
    options = plain_options(exim.port, tls="starttls", ssl_context=tls.client_context())
    options.update(overrides)
    return options


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_over_starttls_a_refused_message_leaves_the_next_its_own_sender(
    flavor: Flavor, exim: EximServer, tls: TLSMaterial, chunking: bool
) -> None:
    # Bug 1's batch again, after STARTTLS (RFC 3207: EHLO again once TLS
    # is up, then the pipelined transactions), with a third message split
    # over two transactions: each is queued once, under its own sender.
    token = uuid.uuid4().hex
    sent = [interop_message(token, i) for i in range(3)]
    options = tls_options(exim, tls, chunking=chunking, max_recipients=1, transaction_log=True)
    async with flavor.client(**options) as client:
        first, second, third = await client.send_many(
            [
                {"sender": ALICE, "recipients": [REJECT], "message": sent[0]},
                {"sender": BOB, "recipients": [CAROL], "message": sent[1]},
                {"sender": CAROL, "recipients": [RCPT1, RCPT2], "message": sent[2]},
            ]
        )
        lines = [str(entry) for entry in client.transcript]
    assert isinstance(first, RecipientsRefusedError), first
    assert not first.status_unknown
    assert isinstance(second, MessageResult), second
    assert second.accepted == (CAROL,)
    assert isinstance(third, MessageResult), third
    assert third.accepted == (RCPT1, RCPT2)
    assert_hello_again_after_tls(lines)
    found = sorted((q.sender, q.recipients, body_of(q)) for q in queued(exim, token))
    assert found == sorted(
        [
            (BOB, (CAROL,), as_stored(sent[1])),
            (CAROL, (RCPT1,), as_stored(sent[2])),
            (CAROL, (RCPT2,), as_stored(sent[2])),
        ]
    )


async def test_starttls_with_an_untrusted_certificate_sends_nothing(
    flavor: Flavor, exim: EximServer, tls: TLSMaterial
) -> None:
    # The system's CAs do not know the test CA: the handshake fails and
    # no MAIL goes out in the clear (STARTTLS required).
    token = uuid.uuid4().hex
    options = tls_options(exim, tls)
    del options["ssl_context"]
    with pytest.raises(TLSError):
        async with flavor.client(**options) as client:
            await client.send_many(
                [{"sender": ALICE, "recipients": [RCPT1], "message": interop_message(token, 0)}]
            )
    assert queued(exim, token) == []
