"""Smoke runs of the fuzz harnesses without atheris, their crash inputs, and
their oracles tested on hand-made bad client bytes.

Each harness replays its seed corpus and a few hundred random and mutated
inputs with a fixed seed (the same inputs every run), so a change that
breaks a harness, or trips an oracle on ordinary input, fails here in
seconds; ``python -m fuzz.run`` does the real fuzzing. The inputs the
fuzzers crashed on live in ``tests/core/regressions/`` (named
``<harness>-<what>.bin``) and replay through their harness.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fuzz import fuzz_commands, fuzz_replies, fuzz_session, make_corpus
from fuzz.fuzzlib import CORPUS_DIR, OracleError, WireMonitor, corpus_inputs, replay

from smtpcore import RemoteProtocolError, Reply

REGRESSIONS = Path(__file__).resolve().parent / "regressions"

HARNESSES = {
    "replies": (fuzz_replies.TestOneInput, fuzz_replies.random_input, 800),
    "session": (fuzz_session.TestOneInput, fuzz_session.random_input, 1000),
    "commands": (fuzz_commands.TestOneInput, fuzz_commands.random_input, 3000),
}

# Regression inputs of core bugs not fixed yet (none at the moment): strict
# xfail, so that the fix shows up as XPASS and the entry must go (with its
# KNOWN signature).
OPEN: dict[str, str] = {}

# How the open bugs show up in random replay: (exception type name, text).
# The smoke replay tolerates these, and only these.
KNOWN: dict[str, tuple[str, str]] = {}


def _known(error: BaseException) -> bool:
    return any(type(error).__name__ == kind and text in str(error) for kind, text in KNOWN.values())


@pytest.mark.parametrize("name", list(HARNESSES))
def test_harness_replays_corpus_and_random_inputs(name: str) -> None:
    test_one_input, random_input, count = HARNESSES[name]
    seeds = corpus_inputs(name)
    assert seeds, f"no seed corpus for {name}; run python -m fuzz.make_corpus"
    stats = replay(
        name,
        test_one_input,
        random_input=random_input,
        count=count,
        seed=2024,
        stop_on_failure=False,
    )
    assert stats.inputs == len(seeds) + count
    new = [failure for failure in stats.failures if not _known(failure.error)]
    assert not new, "\n".join(str(failure) for failure in new[:3])


def test_seed_corpus_is_what_make_corpus_writes() -> None:
    for name, seeds in (
        ("session", make_corpus.session_seeds()),
        ("replies", make_corpus.reply_seeds()),
        ("commands", make_corpus.command_seeds()),
    ):
        on_disk = {p.name: p.read_bytes() for p in (CORPUS_DIR / name).iterdir()}
        assert on_disk == seeds, f"fuzz/corpus/{name} is stale: run python -m fuzz.make_corpus"


def _regression_params() -> list[object]:
    params: list[object] = []
    for path in sorted(REGRESSIONS.glob("*.bin")):
        marks = []
        if path.name in OPEN:
            marks.append(pytest.mark.xfail(strict=True, reason=f"open core bug: {OPEN[path.name]}"))
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


@pytest.mark.parametrize("path", _regression_params())
def test_regression_input(path: Path) -> None:
    harness = path.name.split("-", 1)[0]
    HARNESSES[harness][0](path.read_bytes())


def test_every_open_regression_exists() -> None:
    assert {p.name for p in REGRESSIONS.glob("*.bin")} >= set(OPEN)


# -- the client-wire oracle catches what it must -------------------------------------

GREETING = b"220 mx ESMTP\r\n"
EHLO = b"EHLO c.example\r\n"
EHLO_OK = b"250-mx\r\n250 PIPELINING\r\n"
MAIL = b"MAIL FROM:<a@example.com>\r\n"
RCPT = b"RCPT TO:<b@example.net>\r\n"
OK = b"250 ok\r\n"
BODY = b"Hi\r\n.dot\r\n"
WIRE = b"Hi\r\n..dot\r\n.\r\n"

# A conversation: ("S", server bytes) / ("C", client bytes) / ("C!", client
# bytes written after the session's error) / ("TLS", b"").
Step = tuple[str, bytes]


def _play(steps: list[Step], *, tls_required: bool = False, pipelining: bool = True) -> None:
    monitor = WireMonitor(
        bodies={"a@example.com": BODY},
        recipients={"b@example.net"},
        tls_required=tls_required,
        pipelining=lambda: pipelining,
    )
    for kind, data in steps:
        if kind == "S":
            monitor.server_bytes(data)
        elif kind == "TLS":
            monitor.tls_established()
        else:
            monitor.write(data, after_error=kind == "C!")
    monitor.close(error=any(kind == "C!" for kind, _ in steps))


GOOD: list[Step] = [
    ("S", GREETING),
    ("C", EHLO),
    ("S", EHLO_OK),
    ("C", MAIL + RCPT + b"DATA\r\n"),
    ("S", OK + OK + b"354 go\r\n"),
    ("C", WIRE),
    ("S", OK),
    ("C", b"QUIT\r\n"),
    ("S", b"221 bye\r\n"),
]


def test_wire_oracle_accepts_a_correct_conversation() -> None:
    _play(GOOD)
    _play([*GOOD[:5], ("C", WIRE[:5]), ("C", WIRE[5:]), *GOOD[6:]])


def _with(index: int, step: Step) -> list[Step]:
    return [*GOOD[:index], step, *GOOD[index + 1 :]]


BAD: list[tuple[str, Callable[[], None], str]] = [
    ("before-greeting", lambda: _play([("C", EHLO), *GOOD[2:]]), "before the reply"),
    ("bare-lf", lambda: _play(_with(1, ("C", b"EHLO c.example\n"))), "bare LF"),
    ("bare-cr", lambda: _play(_with(1, ("C", b"EHLO c.ex\rample\r\n"))), "bare CR"),
    (
        "pipelined-after-ehlo",
        lambda: _play([("S", GREETING), ("C", EHLO + MAIL), *GOOD[2:]]),
        "group-ending",
    ),
    (
        "no-pipelining",
        lambda: _play(GOOD, pipelining=False),
        "group-ending",
    ),
    ("smuggled-dot", lambda: _play(_with(5, ("C", b"Hi\r\n.\r\n"))), "differs"),
    ("lone-terminator", lambda: _play(_with(5, ("C", b".\r\n"))), "lone terminator"),
    ("unstuffed", lambda: _play(_with(5, ("C", b"Hi\r\n.dot\r\n.\r\n"))), "differs"),
    ("bare-lf-in-data", lambda: _play(_with(5, ("C", b"Hi\n..dot\r\n.\r\n"))), "bare LF"),
    (
        "data-for-refused-rcpt",
        lambda: _play(_with(4, ("S", OK + b"550 no\r\n354 go\r\n"))),
        "refused",
    ),
    (
        "unknown-sender",
        lambda: _play(_with(3, ("C", MAIL.replace(b"a@", b"x@") + RCPT + b"DATA\r\n"))),
        "sender",
    ),
    (
        "smuggled-parameter",
        lambda: _play(_with(3, ("C", b"MAIL FROM:<a@example.com> X=1\r\n" + RCPT + b"DATA\r\n"))),
        "unexpected parameter",
    ),
    ("sp-in-path", lambda: _play(_with(3, ("C", b"MAIL FROM:<a @example.com>\r\n"))), "SP or"),
    ("after-quit", lambda: _play([*GOOD[:8], ("C", b"NOOP\r\n")]), "after QUIT"),
    (
        "write-after-error",
        lambda: _play([*GOOD[:4], ("C!", b"RSET\r\n")]),
        "after the session's error",
    ),
    (
        "mail-before-tls",
        lambda: _play(GOOD, tls_required=True),
        "before TLS",
    ),
    (
        "plaintext-after-220",
        lambda: _play(
            [
                ("S", GREETING),
                ("C", EHLO),
                ("S", EHLO_OK),
                ("C", b"STARTTLS\r\n"),
                ("S", b"220 go\r\n"),
                ("C", EHLO),
            ],
            tls_required=True,
        ),
        "plaintext after the 220",
    ),
    (
        "surplus-reply-behind-354",
        lambda: _play(_with(4, ("S", OK + OK + b"354 go\r\n" + OK))),
        "a reply sent before its command",
    ),
    (
        "bdat-short",
        lambda: _play([*GOOD[:3], ("C", MAIL + RCPT + b"BDAT 20 LAST\r\nHi\r\n")]),
        "cut short",
    ),
    (
        "bdat-not-the-message",
        lambda: _play([*GOOD[:3], ("C", MAIL + RCPT + b"BDAT 3 LAST\r\nHi\n"), ("S", OK * 3)]),
        "not the message",
    ),
]


@pytest.mark.parametrize(("check", "message"), [pytest.param(c, m, id=i) for i, c, m in BAD])
def test_wire_oracle_catches(check: Callable[[], None], message: str) -> None:
    with pytest.raises(OracleError, match=message):
        check()


def test_wire_oracle_allows_tls_then_mail() -> None:
    _play(
        [
            ("S", GREETING),
            ("C", EHLO),
            ("S", EHLO_OK),
            ("C", b"STARTTLS\r\n"),
            ("S", b"220 go\r\n"),
            ("TLS", b""),
            ("C", EHLO),
            *GOOD[2:],
        ],
        tls_required=True,
    )


def test_reply_oracle_catches_different_feeds() -> None:
    # The reply harness compares whole, chunked and bytewise feeds.
    reply = fuzz_replies.Outcome(replies=[Reply.build(250, "ok")])
    fuzz_replies.check_same(reply, fuzz_replies.Outcome(replies=[Reply.build(250, "ok")]), "x")
    with pytest.raises(OracleError, match="different replies"):
        fuzz_replies.check_same(reply, fuzz_replies.Outcome(), "x")
    failed = fuzz_replies.Outcome(error=RemoteProtocolError("bad"))
    with pytest.raises(OracleError, match="one feed failed"):
        fuzz_replies.check_same(reply, failed, "x")
