"""Unit tests of the reference server model (tests/core/model_server.py).

Byte scripts in; replies, the queue and the record of ends of data out. Every
script is also fed one octet at a time: the model must not care how the
client's bytes are cut (a real server reading a pipelined client).
"""

from __future__ import annotations

import re

import pytest
from model_server import (
    MALFORMED_REPLY,
    DataEnd,
    Failure,
    Fault,
    Features,
    ModelServer,
    Policy,
    Queued,
    ReplyKind,
    Trigger,
    Variant,
    reply_serial,
    tag_of,
)

SENDER = b"MAIL FROM:<alice@example.com>\r\n"
BOB = b"MAIL FROM:<bob@example.com>\r\n"
RCPT1 = b"RCPT TO:<rcpt1@example.org>\r\n"
RCPT2 = b"RCPT TO:<rcpt2@example.org>\r\n"
REJECT = b"RCPT TO:<reject@example.org>\r\n"
EHLO = b"EHLO client.test\r\n"
LHLO = b"LHLO client.test\r\n"
BODY = b"X-Model-Tag: m1\r\nSubject: hi\r\n\r\nHello\r\n"
STUFFED = b"X-Model-Tag: m1\r\n\r\n..leading dot\r\n.\r\n"  # dot-stuffed, then the end
UNSTUFFED = b"X-Model-Tag: m1\r\n\r\n.leading dot\r\n"

_SERIAL = re.compile(rb" \[#\d+\]")


def replies(out: bytes) -> list[bytes]:
    """The reply lines, without their serial numbers."""
    return [line for line in _SERIAL.sub(b"", out).split(b"\r\n") if line]


def finals(out: bytes) -> list[bytes]:
    """The last line of each reply, without its serial number."""
    return [line for line in replies(out) if line[3:4] != b"-"]


def codes(out: bytes) -> list[int]:
    """The code of each reply (continuation lines skipped)."""
    return [int(line[:3]) for line in replies(out) if line[3:4] != b"-"]


def run(server: ModelServer, *chunks: bytes) -> bytes:
    """Feed ``chunks`` in order; everything the server said (greeting too)."""
    for chunk in chunks:
        server.feed(chunk)
    return server.take_output()


def smtp(
    variant: Variant = Variant.POSTFIX,
    *,
    features: Features | None = None,
    policy: Policy | None = None,
    fault: Fault | None = None,
) -> ModelServer:
    return ModelServer(variant, features=features, policy=policy, fault=fault)


def lmtp(
    variant: Variant = Variant.DOVECOT, *, policy: Policy | None = None, fault: Fault | None = None
) -> ModelServer:
    return ModelServer(variant, features=Features(lmtp=True), policy=policy, fault=fault)


def bdat(data: bytes, *, last: bool = True) -> bytes:
    return b"BDAT %d%s\r\n%s" % (len(data), b" LAST" if last else b"", data)


# -- greeting and hello ------------------------------------------------------------------------


def test_greeting_and_ehlo_keywords() -> None:
    server = smtp(features=Features(dsn=True, smtputf8=True, size=1000))
    out = replies(run(server, EHLO))
    assert out == [
        b"220 2.0.0 model.test model ready",
        b"250-model.test",
        b"250-PIPELINING",
        b"250-CHUNKING",
        b"250-8BITMIME",
        b"250-SIZE 1000",
        b"250-DSN",
        b"250-SMTPUTF8",
        b"250 ENHANCEDSTATUSCODES",
    ]


def test_no_keywords_and_no_enhanced_codes() -> None:
    server = smtp(
        features=Features(
            pipelining=False, chunking=False, eightbitmime=False, size=None, enhanced=False
        )
    )
    assert replies(run(server, EHLO, SENDER)) == [
        b"220 model.test model ready",
        b"250 model.test",
        b"250 <alice@example.com> ok",
    ]


def test_lmtp_wants_lhlo() -> None:
    server = lmtp()
    assert codes(run(server, EHLO, LHLO)) == [220, 500, 250]
    assert codes(run(smtp(), LHLO)) == [220, 500]


# -- a plain transaction -------------------------------------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True])
def test_data_is_unstuffed_and_queued(bytewise: bool) -> None:
    server = smtp()
    script = EHLO + SENDER + RCPT1 + RCPT2 + b"DATA\r\n" + STUFFED + b"QUIT\r\n"
    chunks = [script[i : i + 1] for i in range(len(script))] if bytewise else [script]
    out = run(server, *chunks)
    assert codes(out) == [220, 250, 250, 250, 250, 354, 250, 221]
    assert server.queued == [
        Queued("alice@example.com", ("rcpt1@example.org", "rcpt2@example.org"), UNSTUFFED, "Q1")
    ]
    assert b"queued as Q1" in out
    assert server.closed
    assert server.ends == [
        DataEnd(
            sender="alice@example.com",
            recipients=("rcpt1@example.org", "rcpt2@example.org"),
            data=UNSTUFFED,
            answered=frozenset({"rcpt1@example.org", "rcpt2@example.org"}),
            live=True,
        )
    ]
    assert server.ends[0].tag == "m1"


@pytest.mark.parametrize("bytewise", [False, True])
def test_bdat_chunks_are_reassembled(bytewise: bool) -> None:
    server = smtp()
    script = EHLO + SENDER + RCPT1 + bdat(BODY[:10], last=False) + bdat(BODY[10:])
    chunks = [script[i : i + 1] for i in range(len(script))] if bytewise else [script]
    out = run(server, *chunks)
    assert codes(out) == [220, 250, 250, 250, 250, 250]
    assert b"10 octets received" in out
    assert server.queued == [Queued("alice@example.com", ("rcpt1@example.org",), BODY, "Q1")]


def test_empty_last_chunk() -> None:
    server = smtp()
    out = run(server, EHLO, SENDER, RCPT1, bdat(BODY, last=False), b"BDAT 0 LAST\r\n")
    assert codes(out) == [220, 250, 250, 250, 250, 250]
    assert [q.data for q in server.queued] == [BODY]


def test_end_of_data_clears_the_transaction_even_when_refused() -> None:
    # RFC 5321 4.1.1.4.
    server = smtp(policy=Policy(end={"m1": 554}))
    out = run(server, EHLO, SENDER, RCPT1, b"DATA\r\n", BODY + b".\r\n", BOB)
    assert codes(out) == [220, 250, 250, 250, 354, 554, 250]
    assert server.queued == []
    assert server.ends[0].answered == {"rcpt1@example.org"}


def test_rset_noop_and_unknown_commands() -> None:
    server = smtp()
    out = run(server, EHLO, SENDER, b"NOOP\r\n", b"RSET\r\n", RCPT1, b"VRFY x\r\n")
    assert codes(out) == [220, 250, 250, 250, 250, 503, 500]


def test_rcpt_before_mail_is_refused() -> None:
    server = smtp()
    assert codes(run(server, EHLO, RCPT1)) == [220, 250, 503]


# -- out of sequence: the variants ---------------------------------------------------------------


@pytest.mark.parametrize("variant", list(Variant))
def test_mail_inside_a_transaction_keeps_it(variant: Variant) -> None:
    # Exim, Postfix and Dovecot: 503 sender already given; the RCPTs that
    # follow join the open transaction.
    server = smtp(variant)
    out = run(server, EHLO, SENDER, RCPT1, BOB, RCPT2, b"DATA\r\n", BODY + b".\r\n")
    assert finals(out)[4] == b"503 5.5.1 sender already given"
    assert server.queued == [
        Queued("alice@example.com", ("rcpt1@example.org", "rcpt2@example.org"), BODY, "Q1")
    ]


@pytest.mark.parametrize(
    ("variant", "refusal", "mail_after"),
    [
        (Variant.EXIM, b"503 5.5.1 valid RCPT command must precede DATA", 503),
        (Variant.POSTFIX, b"554 5.5.1 no valid recipients", 250),
    ],
)
def test_data_without_recipients(variant: Variant, refusal: bytes, mail_after: int) -> None:
    server = smtp(variant, policy=Policy(rcpt={"reject@example.org": 550}))
    out = run(server, EHLO, SENDER, REJECT, b"DATA\r\n", BOB)
    assert finals(out)[4] == refusal
    assert codes(out)[5] == mail_after


@pytest.mark.parametrize(("variant", "mail_after"), [(Variant.EXIM, 503), (Variant.POSTFIX, 250)])
def test_bdat_without_recipients_is_read_and_refused(variant: Variant, mail_after: int) -> None:
    # Exim 4.96: 503 Valid RCPT command must precede BDAT, and the MAIL stays.
    server = smtp(variant, policy=Policy(rcpt={"reject@example.org": 550}))
    out = run(server, EHLO, SENDER, REJECT, bdat(BODY), BOB, RCPT1, bdat(BODY))
    assert codes(out) == [
        220,
        250,
        250,
        550,
        503 if variant.keeps_transaction else 554,
        mail_after,
        250,
        250,
    ]
    sender = "alice@example.com" if variant.keeps_transaction else "bob@example.com"
    # The Exim trap: a client that does not RSET sends Bob's message under Alice.
    assert server.queued == [Queued(sender, ("rcpt1@example.org",), BODY, "Q1")]


@pytest.mark.parametrize("variant", [Variant.EXIM, Variant.POSTFIX])
def test_refused_bdat_for_another_reason(variant: Variant) -> None:
    server = smtp(variant, policy=Policy(data_command={"alice@example.com": 452}))
    out = run(server, EHLO, SENDER, RCPT1, bdat(BODY[:5], last=False), bdat(BODY[5:]), BOB)
    # Every chunk is read and refused: for its sender (Exim keeps the
    # transaction), or for want of a MAIL (Postfix reset it).
    if variant.keeps_transaction:
        assert codes(out) == [220, 250, 250, 250, 452, 452, 503]
    else:
        assert codes(out) == [220, 250, 250, 250, 452, 503, 250]
    assert server.queued == []
    # The end of the data went out, and was answered (refused).
    assert [(e.tag, e.unanswered) for e in server.ends] == (
        [("m1", frozenset())] if variant.keeps_transaction else []
    )


def test_refused_data_command() -> None:
    server = smtp(Variant.EXIM, policy=Policy(data_command={"alice@example.com": 450}))
    out = run(server, EHLO, SENDER, RCPT1, b"DATA\r\n", b"RSET\r\n", SENDER)
    assert codes(out) == [220, 250, 250, 250, 450, 250, 250]


# -- the policy ----------------------------------------------------------------------------------


def test_recipient_codes_and_limit() -> None:
    rcpts = [f"r{i}@example.org" for i in range(5)]
    policy = Policy(
        rcpt={rcpts[0]: 450, rcpts[1]: 550, rcpts[4]: 552},
        rcpt_limit=1,
    )
    server = smtp(policy=policy)
    out = run(server, EHLO, SENDER, *(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts))
    assert finals(out)[3:] == [
        b"450 4.2.1 <r0@example.org> refused",
        b"550 5.1.1 <r1@example.org> refused",
        b"250 2.1.5 <r2@example.org> ok",
        b"452 4.5.3 Too many recipients",
        b"552 5.5.3 Too many recipients",
    ]


def test_limit_code_552() -> None:
    server = smtp(policy=Policy(rcpt_limit=1, limit_code=552))
    assert finals(run(server, EHLO, SENDER, RCPT1, RCPT2))[-1] == b"552 5.5.3 Too many recipients"


def test_refused_mail_opens_no_transaction() -> None:
    server = smtp(policy=Policy(mail={"alice@example.com": 451}))
    assert codes(run(server, EHLO, SENDER, RCPT1, b"DATA\r\n", BOB)) == [
        220,
        250,
        451,
        503,
        503,
        250,
    ]


def test_reply_serials_say_what_was_answered() -> None:
    server = smtp(policy=Policy(rcpt={"reject@example.org": 550}))
    out = run(server, EHLO, SENDER, REJECT, RCPT1)
    serial = reply_serial(out.split(b"\r\n")[-2].decode())
    assert serial is not None
    sent = server.reply(serial)
    assert sent is not None
    assert (sent.kind, sent.code, sent.recipient) == (ReplyKind.RCPT, 250, "rcpt1@example.org")
    refused = server.reply(serial - 1)
    assert refused is not None
    assert (refused.code, refused.recipient, refused.sender) == (
        550,
        "reject@example.org",
        "alice@example.com",
    )


def test_tag_of() -> None:
    assert tag_of(BODY) == "m1"
    assert tag_of(b"Subject: x\r\n\r\nX-Model-Tag: m1\n") is None


# -- LMTP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", [False, True])
def test_lmtp_one_reply_per_accepted_recipient(chunking: bool) -> None:
    policy = Policy(
        rcpt={"reject@example.org": 550},
        lmtp={"rcpt2@example.org": 452},
    )
    server = lmtp(policy=policy)
    end = bdat(BODY) if chunking else b"DATA\r\n" + BODY + b".\r\n"
    out = run(server, LHLO, SENDER, RCPT1, REJECT, RCPT2, end)
    assert codes(out)[-2:] == [250, 452]
    assert len(codes(out)) == 8 + (0 if chunking else 1)
    assert server.queued == [Queued("alice@example.com", ("rcpt1@example.org",), BODY, "Q1")]
    finals = [r for r in server.replies if r.kind is ReplyKind.END]
    assert [(r.recipient, r.code) for r in finals] == [
        ("rcpt1@example.org", 250),
        ("rcpt2@example.org", 452),
    ]


def test_lmtp_data_without_recipients_gets_503() -> None:
    # RFC 2033 4.2.
    for variant in (Variant.DOVECOT, Variant.POSTFIX):
        server = lmtp(variant, policy=Policy(rcpt={"reject@example.org": 550}))
        assert codes(run(server, LHLO, SENDER, REJECT, b"DATA\r\n"))[-1] == 503


def test_lmtp_dovecot_keeps_the_transaction_until_rset() -> None:
    server = lmtp(Variant.DOVECOT, policy=Policy(rcpt={"reject@example.org": 550}))
    out = run(server, LHLO, SENDER, REJECT, bdat(BODY), BOB, b"RSET\r\n", BOB)
    # Dovecot, after RFC 2033 4.2: with no successful RCPT, BDAT LAST gets
    # zero replies; the MAIL stays until RSET.
    assert codes(out) == [220, 250, 250, 550, 503, 250, 250]
    assert finals(out)[4] == b"503 5.5.1 sender already given"


def test_lmtp_generic_server_answers_bdat_last_without_recipients_once() -> None:
    server = lmtp(Variant.POSTFIX, policy=Policy(rcpt={"reject@example.org": 550}))
    out = run(server, LHLO, SENDER, REJECT, bdat(BODY), BOB)
    assert codes(out) == [220, 250, 250, 550, 503, 250]


def test_lmtp_dovecot_after_a_failed_chunk() -> None:
    # "Previous data chunk failed, issue RSET first": one reply, even to LAST.
    server = lmtp(Variant.DOVECOT, policy=Policy(data_command={"alice@example.com": 452}))
    out = run(server, LHLO, SENDER, RCPT1, RCPT2, bdat(BODY[:5], last=False), bdat(BODY[5:]))
    assert codes(out) == [220, 250, 250, 250, 250, 452, 503]
    assert server.queued == []


def test_lmtp_bdat_last_refused_for_the_message_once_per_recipient() -> None:
    server = lmtp(Variant.DOVECOT, policy=Policy(data_command={"alice@example.com": 554}))
    out = run(server, LHLO, SENDER, RCPT1, RCPT2, bdat(BODY))
    assert codes(out) == [220, 250, 250, 250, 250, 554, 554]
    refusals = [r for r in server.replies if r.kind is ReplyKind.BDAT]
    assert [r.recipient for r in refusals] == ["rcpt1@example.org", "rcpt2@example.org"]
    assert [(e.tag, e.answered) for e in server.ends] == [
        ("m1", frozenset({"rcpt1@example.org", "rcpt2@example.org"}))
    ]


def test_lmtp_end_refused_by_tag() -> None:
    server = lmtp(policy=Policy(end={"m1": 451}))
    out = run(server, LHLO, SENDER, RCPT1, RCPT2, bdat(BODY))
    assert codes(out)[-2:] == [451, 451]
    assert server.queued == []


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "tail", "closed"),
    [
        (Failure.CLOSE_421, [421], True),
        (Failure.EOF, [], True),
        (Failure.STALL, [], False),
    ],
)
def test_fault_at_a_command(failure: Failure, tail: list[int], closed: bool) -> None:
    server = smtp(fault=Fault(trigger=Trigger.COMMAND, nth=3, failure=failure))
    out = run(server, EHLO + SENDER + RCPT1 + b"DATA\r\n")
    assert codes(out) == [220, 250, 250, *tail]
    assert server.closed is closed
    assert server.stalled is not closed
    assert server.faulted
    assert server.commands == [EHLO[:-2], SENDER[:-2], RCPT1[:-2]]
    assert server.queued == []
    # Nothing more is said, whatever comes.
    assert run(server, b"DATA\r\n", BODY, b".\r\n", b"QUIT\r\n") == b""


def test_fault_before_354() -> None:
    server = smtp(fault=Fault(trigger=Trigger.DATA_GO, failure=Failure.CLOSE_421))
    out = run(server, EHLO, SENDER, RCPT1, b"DATA\r\n")
    assert codes(out) == [220, 250, 250, 250, 421]
    assert server.queued == []
    assert server.ends == []


@pytest.mark.parametrize("chunking", [False, True])
def test_fault_mid_data_reads_on_to_the_end(chunking: bool) -> None:
    server = smtp(fault=Fault(trigger=Trigger.MID_DATA, failure=Failure.EOF))
    end = bdat(BODY) if chunking else b"DATA\r\n" + BODY + b".\r\n"
    out = run(server, EHLO, SENDER, RCPT1, end)
    assert codes(out) == [220, 250, 250, 250] + ([] if chunking else [354])
    assert server.queued == []
    # The end went out and got no answer: the client cannot know.
    assert server.ends == [
        DataEnd(
            sender="alice@example.com",
            recipients=("rcpt1@example.org",),
            data=BODY,
            answered=frozenset(),
            live=False,
        )
    ]


@pytest.mark.parametrize("queued", [False, True])
@pytest.mark.parametrize("failure", [Failure.EOF, Failure.MALFORMED, Failure.STALL])
def test_fault_after_the_end_may_have_queued(failure: Failure, queued: bool) -> None:
    server = smtp(fault=Fault(trigger=Trigger.END, failure=failure, queued=queued))
    out = run(server, EHLO, SENDER, RCPT1, b"DATA\r\n", BODY + b".\r\n")
    assert out.endswith(MALFORMED_REPLY) is (failure is Failure.MALFORMED)
    assert codes(out.removesuffix(MALFORMED_REPLY)) == [220, 250, 250, 250, 354]
    assert len(server.queued) == int(queued)
    assert server.ends[0].unanswered == {"rcpt1@example.org"}


def test_421_after_the_end_is_a_known_refusal() -> None:
    server = smtp(fault=Fault(trigger=Trigger.END, failure=Failure.CLOSE_421, queued=True))
    out = run(server, EHLO, SENDER, RCPT1, bdat(BODY))
    assert codes(out)[-1] == 421
    assert server.queued == []
    assert server.ends[0].unanswered == frozenset()


def test_pipelined_ends_after_the_fault_are_recorded() -> None:
    server = smtp(fault=Fault(trigger=Trigger.COMMAND, nth=3, failure=Failure.EOF))
    script = EHLO + SENDER + RCPT1 + bdat(BODY) + BOB + RCPT2 + bdat(BODY.replace(b"m1", b"m2"))
    out = run(server, script)
    assert codes(out) == [220, 250, 250]
    assert server.queued == []
    assert [(e.sender, e.recipients, e.tag, e.live) for e in server.ends] == [
        ("alice@example.com", ("rcpt1@example.org",), "m1", False),
        ("bob@example.com", ("rcpt2@example.org",), "m2", False),
    ]


@pytest.mark.parametrize("queued", [False, True])
def test_lmtp_fault_between_per_recipient_replies(queued: bool) -> None:
    server = lmtp(
        fault=Fault(trigger=Trigger.END, failure=Failure.MALFORMED, queued=queued, lmtp_replies=1)
    )
    out = run(server, LHLO, SENDER, RCPT1, RCPT2, bdat(BODY))
    assert codes(out.removesuffix(MALFORMED_REPLY))[-1] == 250
    assert out.endswith(MALFORMED_REPLY)
    rcpts = ("rcpt1@example.org", "rcpt2@example.org") if queued else ("rcpt1@example.org",)
    assert server.queued == [Queued("alice@example.com", rcpts, BODY, "Q1")]
    assert server.ends[0].answered == {"rcpt1@example.org"}
    assert server.ends[0].unanswered == {"rcpt2@example.org"}


def test_lmtp_421_answers_one_recipient() -> None:
    server = lmtp(fault=Fault(trigger=Trigger.END, failure=Failure.CLOSE_421))
    out = run(server, LHLO, SENDER, RCPT1, RCPT2, bdat(BODY))
    assert codes(out)[-1] == 421
    assert server.ends[0].answered == {"rcpt1@example.org"}
    assert server.ends[0].unanswered == {"rcpt2@example.org"}
    assert server.queued == []


def test_quit_closes_and_nothing_more_is_read() -> None:
    server = smtp()
    assert codes(run(server, EHLO, b"QUIT\r\n", SENDER)) == [220, 250, 221]
    assert server.closed
    assert not server.faulted


def test_fault_at_the_nth_command_of_a_verb() -> None:
    server = smtp(fault=Fault(trigger=Trigger.COMMAND, verb="MAIL", nth=2))
    script = EHLO + SENDER + RCPT1 + b"DATA\r\n" + BODY + b".\r\n" + BOB + RCPT2
    out = run(server, script)
    assert codes(out) == [220, 250, 250, 250, 354, 250]
    assert server.closed
    assert [q.recipients for q in server.queued] == [("rcpt1@example.org",)]


def test_serial_base() -> None:
    server = ModelServer(serial_base=10_000)
    out = run(server, EHLO)
    assert reply_serial(out.split(b"\r\n")[0].decode()) == 10_001
    assert server.reply(1) is None
    greeting = server.reply(10_001)
    assert greeting is not None
    assert greeting.kind is ReplyKind.GREETING


def test_bdat_without_chunking_is_an_unknown_command() -> None:
    server = smtp(features=Features(chunking=False))
    out = run(server, EHLO, SENDER, RCPT1, b"BDAT 4 LAST\r\nNOOP\r\n")
    assert codes(out) == [220, 250, 250, 250, 500, 250]
    assert server.queued == []
