"""Tests for smtpcore._message: body encoding, body scanning, message inputs."""

from __future__ import annotations

import email
import email.policy
import re
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpcore._message as message_module
from smtpcore._errors import InvalidInputError, LocalProtocolError, MessageContentError
from smtpcore._message import (
    DEFAULT_MAX_LINE_LENGTH,
    BodyEncoder,
    BodyInfo,
    EncodeMode,
    encode_scanned,
    envelope_from_message,
    scan_body,
    to_bytes_message,
)

DATA = EncodeMode.DATA
BDAT = EncodeMode.BDAT
BINARY = EncodeMode.BINARY

REFUSED_CONTROLS = [*range(0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)]
ALLOWED_CONTROLS = [0x09, 0x0C, 0x1B, 0x7F]


# ---------------------------------------------------------------------------
# Helpers and an independent, byte-at-a-time reference implementation


def encode(body: bytes, mode: EncodeMode = DATA, **options: Any) -> bytes:
    """One-shot encoding."""
    encoder = BodyEncoder(mode=mode, **options)
    return encoder.feed(body) + encoder.end()


def encode_chunks(chunks: list[bytes], mode: EncodeMode = DATA, **options: Any) -> bytes:
    return feed_all(BodyEncoder(mode=mode, **options), chunks)


def feed_all(encoder: BodyEncoder, chunks: list[bytes]) -> bytes:
    return b"".join(encoder.feed(chunk) for chunk in chunks) + encoder.end()


def outcome(chunks: list[bytes], mode: EncodeMode, **options: Any) -> tuple[str, bytes | str]:
    """("ok", wire bytes) or ("error", exception type name + message)."""
    try:
        return "ok", encode_chunks(chunks, mode, **options)
    except MessageContentError as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(body)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(body[start:point])
        start = point
    pieces.append(body[start:])
    return pieces


def ref_canonical(body: bytes, *, final_crlf: bool = True) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        octet = body[i]
        if octet == 0x0D:
            out += b"\r\n"
            i += 2 if body[i + 1 : i + 2] == b"\n" else 1
        elif octet == 0x0A:
            out += b"\r\n"
            i += 1
        else:
            out.append(octet)
            i += 1
    if final_crlf and out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return bytes(out)


def ref_data(body: bytes) -> bytes:
    lines = ref_canonical(body).split(b"\r\n")[:-1]
    stuffed = b"".join((b"." + line if line[:1] == b"." else line) + b"\r\n" for line in lines)
    return stuffed + b".\r\n"


def ref_first_error(body: bytes, mode: EncodeMode, **options: Any) -> tuple[int, str] | None:
    """The offset and kind of the first refused octet, by the documented rules."""
    strict = options.get("strict_line_endings", False) and mode is not BINARY
    allow_8bit = options.get("allow_8bit", True)
    allow_controls = options.get("allow_controls", False)
    limit = options.get("max_line_length", DEFAULT_MAX_LINE_LENGTH)
    if mode is BINARY:
        limit = None
    if not allow_controls:
        refused = set(REFUSED_CONTROLS)
    elif mode is BINARY:
        refused = set()
    else:
        refused = {0}
    line = 0
    for i, octet in enumerate(body):
        if octet >= 0x80 and not allow_8bit:
            return i, "8-bit"
        if octet in refused:
            return i, "control"
        if octet in (0x0D, 0x0A):
            line = 0
            if strict and octet == 0x0D and body[i + 1 : i + 2] != b"\n":
                return i, "bare CR"
            if strict and octet == 0x0A and (i == 0 or body[i - 1] != 0x0D):
                return i, "bare LF"
        else:
            line += 1
            if limit is not None and line > limit:
                return i, "line"
    return None


_KIND_IN_MESSAGE = {
    "8-bit": "8-bit octet",
    "control": "is not allowed in the message body",
    "bare CR": "bare CR",
    "bare LF": "bare LF",
    "line": "line longer than",
}


def error_offset(message: str) -> int:
    found = re.search(r"at body offset (\d+)$", message)
    assert found is not None, message
    return int(found.group(1))


# ---------------------------------------------------------------------------
# Exact outputs

DATA_CASES = [
    ("empty", b"", b".\r\n"),
    ("one-char", b"a", b"a\r\n.\r\n"),
    ("crlf-line", b"a\r\n", b"a\r\n.\r\n"),
    ("leading-dot-first-line", b".a", b"..a\r\n.\r\n"),
    ("dot-after-lf", b"a\n.b\n", b"a\r\n..b\r\n.\r\n"),
    ("crlf-dot-crlf-inside", b"x\r\n.\r\ny\r\n", b"x\r\n..\r\ny\r\n.\r\n"),
    ("trailing-cr", b"a\r", b"a\r\n.\r\n"),
    ("cr-cr-lf", b"\r\r\n", b"\r\n\r\n.\r\n"),
    ("lf-cr", b"\n\r", b"\r\n\r\n.\r\n"),
    ("two-dots", b"..", b"...\r\n.\r\n"),
    ("dot-crlf-alone", b".\r\n", b"..\r\n.\r\n"),
    ("dot-alone-no-eol", b".", b"..\r\n.\r\n"),
    ("dot-lines", b"a\r\n.\r\n.\r\nb", b"a\r\n..\r\n..\r\nb\r\n.\r\n"),
    ("bare-cr-before-dot", b"a\r.b", b"a\r\n..b\r\n.\r\n"),
    ("dot-not-at-line-start", b"a.b\r\n", b"a.b\r\n.\r\n"),
    ("blank-lines", b"\r\n\r\n", b"\r\n\r\n.\r\n"),
    ("lone-lf", b"\n", b"\r\n.\r\n"),
    ("lone-cr", b"\r", b"\r\n.\r\n"),
    ("mixed", b"a\rb\nc\r\nd", b"a\r\nb\r\nc\r\nd\r\n.\r\n"),
    ("8bit-passes", b"caf\xc3\xa9\n", b"caf\xc3\xa9\r\n.\r\n"),
    ("ht-ff-esc-pass", b"\t\x0c\x1b$B\n", b"\t\x0c\x1b$B\r\n.\r\n"),
    # SMTP smuggling (CVE-2023-51764 and friends): end-of-data look-alikes a
    # lenient server might take for the terminator must reach it as data.
    ("smuggle-lf-dot-crlf", b"a\n.\r\nMAIL FROM:<x>\r\n", b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"),
    ("smuggle-crlf-dot-lf", b"a\r\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    ("smuggle-lf-dot-lf", b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    ("smuggle-cr-dot-cr", b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
    ("smuggle-cr-dot-crlf", b"a\r.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES]
)
def test_data_mode_exact_output(body: bytes, expected: bytes) -> None:
    assert encode(body, DATA) == expected
    assert ref_data(body) == expected
    # The same output one octet at a time.
    assert encode_chunks([body[i : i + 1] for i in range(len(body))], DATA) == expected


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES]
)
def test_data_mode_has_only_one_end_of_data(body: bytes, expected: bytes) -> None:
    wire = encode(body, DATA)
    if body:
        assert wire.count(b"\r\n.\r\n") == 1
        assert wire.endswith(b"\r\n.\r\n")
    else:
        assert wire == b".\r\n"


BDAT_CASES = [
    ("empty", b"", b""),
    ("one-char", b"a", b"a\r\n"),
    ("leading-dot", b".a", b".a\r\n"),
    ("dot-after-lf", b"a\n.b\n", b"a\r\n.b\r\n"),
    ("crlf-dot-crlf", b"x\r\n.\r\ny", b"x\r\n.\r\ny\r\n"),
    ("trailing-cr", b"a\r", b"a\r\n"),
    ("cr-cr-lf", b"\r\r\n", b"\r\n\r\n"),
    ("lf-cr", b"\n\r", b"\r\n\r\n"),
    ("dot-alone", b".", b".\r\n"),
    ("smuggle-lf-dot-lf", b"a\n.\nb", b"a\r\n.\r\nb\r\n"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in BDAT_CASES], ids=[c[0] for c in BDAT_CASES]
)
def test_bdat_mode_exact_output(body: bytes, expected: bytes) -> None:
    assert encode(body, BDAT) == expected
    assert encode_chunks([body[i : i + 1] for i in range(len(body))], BDAT) == expected


BINARY_CASES = [
    ("empty", b""),
    ("no-final-crlf", b"a"),
    ("bare-line-endings", b"a\rb\nc\r\n.\r\n"),
    ("dots", b".\r\n..\n"),
    ("8bit", bytes(range(0x80, 0x100))),
]


@pytest.mark.parametrize("body", [c[1] for c in BINARY_CASES], ids=[c[0] for c in BINARY_CASES])
def test_binary_mode_passes_octets_through(body: bytes) -> None:
    assert encode(body, BINARY) == body
    assert encode(body, BINARY, strict_line_endings=True, max_line_length=1) == body


def test_binary_mode_allows_nul_and_controls_only_when_asked() -> None:
    body = b"\x00\x01\xff" * 10
    assert encode(body, BINARY, allow_controls=True) == body
    with pytest.raises(MessageContentError, match="NUL"):
        encode(body, BINARY)
    with pytest.raises(MessageContentError, match="8-bit"):
        encode(b"\xff", BINARY, allow_8bit=False)


def test_binary_mode_ignores_line_length() -> None:
    body = b"x" * 5000
    assert encode(body, BINARY) == body


# ---------------------------------------------------------------------------
# Strict line endings

STRICT_ERRORS = [
    ("bare-lf", [b"a\nb"], "bare LF", 1),
    ("bare-lf-first", [b"\n"], "bare LF", 0),
    ("bare-cr", [b"a\rb"], "bare CR", 1),
    ("cr-cr-lf", [b"\r\r\n"], "bare CR", 0),
    ("trailing-cr-then-other-chunk", [b"a\r", b"b"], "bare CR", 1),
    ("trailing-cr-then-cr-chunk", [b"a\r", b"\r\n"], "bare CR", 1),
    ("trailing-cr-then-end", [b"a\r"], "bare CR", 1),
    ("trailing-cr-empty-chunks-then-end", [b"a\r", b"", b""], "bare CR", 1),
    ("crlf-split-then-bare-lf", [b"a\r", b"\n\n"], "bare LF", 3),
    ("lf-after-crlf", [b"a\r\n\n"], "bare LF", 3),
    ("lf-starting-second-chunk", [b"a", b"\nb"], "bare LF", 1),
]


@pytest.mark.parametrize("mode", [DATA, BDAT])
@pytest.mark.parametrize(
    ("chunks", "reason", "offset"),
    [c[1:] for c in STRICT_ERRORS],
    ids=[c[0] for c in STRICT_ERRORS],
)
def test_strict_mode_refuses_bare_line_endings(
    mode: EncodeMode, chunks: list[bytes], reason: str, offset: int
) -> None:
    encoder = BodyEncoder(mode=mode, strict_line_endings=True)
    with pytest.raises(MessageContentError) as info:
        feed_all(encoder, chunks)
    assert reason in str(info.value)
    assert error_offset(str(info.value)) == offset
    with pytest.raises(LocalProtocolError):
        encoder.feed(b"x")


@pytest.mark.parametrize(
    "chunks",
    [[b"a\r\nb\r\n"], [b"a\r", b"\nb\r", b"\n"], [b"\r", b"\n", b"\r", b"\n"], [b""]],
    ids=["whole", "split-crlf", "crlf-per-octet", "empty"],
)
def test_strict_mode_accepts_crlf(chunks: list[bytes]) -> None:
    body = b"".join(chunks)
    assert encode_chunks(chunks, DATA, strict_line_endings=True) == encode(body, DATA)


def test_strict_mode_error_comes_before_any_output_of_the_chunk() -> None:
    encoder = BodyEncoder(mode=DATA, strict_line_endings=True)
    assert encoder.feed(b"ok\r\n") == b"ok\r\n"
    with pytest.raises(MessageContentError):
        encoder.feed(b"fine\r\nbad\n")
    assert encoder.octets_out == 4


# ---------------------------------------------------------------------------
# 8-bit data and controls


def test_8bit_is_refused_when_not_allowed() -> None:
    encoder = BodyEncoder(mode=DATA, allow_8bit=False)
    assert encoder.feed(b"plain\r\n") == b"plain\r\n"
    with pytest.raises(MessageContentError, match=r"8-bit octet 0xe9.*offset 10$"):
        encoder.feed(b"caf\xe9")
    assert not encoder.has_8bit


def test_has_8bit_tracks_input() -> None:
    encoder = BodyEncoder(mode=BDAT)
    seen = []
    for chunk in (b"abc", b"\x80", b"abc"):
        encoder.feed(chunk)
        seen.append(encoder.has_8bit)
    assert seen == [False, True, True]


@pytest.mark.parametrize("mode", [DATA, BDAT, BINARY])
@pytest.mark.parametrize("octet", REFUSED_CONTROLS, ids=[f"0x{o:02x}" for o in REFUSED_CONTROLS])
def test_controls_refused_by_default(mode: EncodeMode, octet: int) -> None:
    with pytest.raises(MessageContentError, match=r"offset 2$"):
        encode(b"ab" + bytes([octet]) + b"cd", mode)


@pytest.mark.parametrize("octet", ALLOWED_CONTROLS, ids=[f"0x{o:02x}" for o in ALLOWED_CONTROLS])
def test_allowed_controls_pass_by_default(octet: int) -> None:
    body = b"ab" + bytes([octet]) + b"cd\r\n"
    assert encode(body, DATA) == body + b".\r\n"


@pytest.mark.parametrize("max_line_length", [None, 998], ids=["no-line-check", "line-check"])
@pytest.mark.parametrize("mode", [DATA, BDAT])
def test_allow_controls_still_refuses_nul_in_text_modes(
    mode: EncodeMode, max_line_length: int | None
) -> None:
    options: dict[str, Any] = {"allow_controls": True, "max_line_length": max_line_length}
    body = bytes([o for o in REFUSED_CONTROLS if o]) + b"\r\n"
    assert encode(body, BDAT, **options) == body
    with pytest.raises(MessageContentError, match=r"^NUL .*offset 3$"):
        encode(b"abc\x00", mode, **options)


# ---------------------------------------------------------------------------
# Line length


@pytest.mark.parametrize("mode", [DATA, BDAT])
@pytest.mark.parametrize("chunk_size", [1, 7, 997, 998, 999, 10_000], ids=lambda n: f"chunk{n}")
@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "cr"])
def test_line_of_998_passes_and_999_fails(mode: EncodeMode, chunk_size: int, ending: bytes) -> None:
    ok = b"short" + ending + b"x" * 998 + ending + b"tail"
    chunks = [ok[i : i + chunk_size] for i in range(0, len(ok), chunk_size)]
    assert encode_chunks(chunks, mode) == encode(ok, mode)

    bad = b"short" + ending + b"x" * 999 + ending
    chunks = [bad[i : i + chunk_size] for i in range(0, len(bad), chunk_size)]
    with pytest.raises(MessageContentError, match="line longer than 998") as info:
        encode_chunks(chunks, mode)
    # The 999th octet of the line is the first one too many.
    assert error_offset(str(info.value)) == 5 + len(ending) + 998


def test_unterminated_last_line_is_checked() -> None:
    with pytest.raises(MessageContentError, match=r"offset 998$"):
        encode(b"y" * 999, DATA)
    assert encode(b"y" * 998, DATA) == b"y" * 998 + b"\r\n.\r\n"


def test_stuffed_dot_does_not_count_toward_the_limit() -> None:
    # RFC 5321 4.5.3.1.6: "not counting the leading dot duplicated for transparency".
    line = b"." + b"z" * 997
    assert encode(line + b"\r\n", DATA) == b"." + line + b"\r\n.\r\n"


def test_line_length_limit_is_configurable() -> None:
    assert encode(b"x" * 5000, DATA, max_line_length=None) == b"x" * 5000 + b"\r\n.\r\n"
    assert encode(b"abc\r\n", DATA, max_line_length=3) == b"abc\r\n.\r\n"
    with pytest.raises(MessageContentError, match=r"line longer than 3 octets.*offset 3$"):
        encode(b"abcd", DATA, max_line_length=3)


def test_earliest_error_wins_whatever_the_chunking() -> None:
    # A control character after a long line: the long line is reported, at
    # the same offset, whether or not both are in one chunk.
    body = b"x" * 1000 + b"\x01"
    whole = outcome([body], DATA)
    assert whole[0] == "error"
    assert "line longer" in str(whole[1])
    assert outcome([body[:999], body[999:]], DATA) == whole
    assert outcome([body[:500], body[500:]], DATA) == whole


# ---------------------------------------------------------------------------
# Lifecycle, counters, options


def test_feed_after_end_and_end_twice_are_refused() -> None:
    encoder = BodyEncoder(mode=DATA)
    encoder.feed(b"a")
    assert encoder.end() == b"\r\n.\r\n"
    with pytest.raises(LocalProtocolError, match="after end"):
        encoder.feed(b"b")
    with pytest.raises(LocalProtocolError, match="after end"):
        encoder.end()
    with pytest.raises(LocalProtocolError, match="after end"):
        encoder.feed(b"")


def test_encoder_is_dead_after_an_error() -> None:
    encoder = BodyEncoder(mode=DATA)
    with pytest.raises(MessageContentError):
        encoder.feed(b"\x00")
    with pytest.raises(LocalProtocolError, match="after it raised"):
        encoder.feed(b"a")
    with pytest.raises(LocalProtocolError, match="after it raised"):
        encoder.end()


def test_counters() -> None:
    encoder = BodyEncoder(mode=DATA)
    assert (encoder.octets_in, encoder.octets_out) == (0, 0)
    out = encoder.feed(b".a\nb\r")
    assert out == b"..a\r\nb\r\n"
    assert (encoder.octets_in, encoder.octets_out) == (5, 8)
    assert encoder.feed(b"\n") == b""
    assert (encoder.octets_in, encoder.octets_out) == (6, 8)
    assert encoder.end() == b".\r\n"
    assert (encoder.octets_in, encoder.octets_out) == (6, 11)
    assert encoder.mode is DATA
    assert "DATA" in repr(encoder)


def test_empty_chunks_change_nothing() -> None:
    encoder = BodyEncoder(mode=DATA)
    assert encoder.feed(b"") == b""
    assert encoder.feed(b".x") == b"..x"
    assert encoder.feed(b"") == b""
    assert encoder.end() == b"\r\n.\r\n"


@pytest.mark.parametrize(
    "chunk",
    [bytearray(b".a\n"), memoryview(b".a\n")],
    ids=["bytearray", "memoryview"],
)
def test_bytes_like_chunks_are_accepted(chunk: bytearray | memoryview) -> None:
    encoder = BodyEncoder(mode=DATA)
    out = encoder.feed(chunk)  # type: ignore[arg-type]
    assert type(out) is bytes
    assert out == b"..a\r\n"


@pytest.mark.parametrize("chunk", ["text", 42, None], ids=["str", "int", "none"])
def test_non_bytes_chunks_are_refused(chunk: object) -> None:
    with pytest.raises(InvalidInputError):
        BodyEncoder(mode=DATA).feed(chunk)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "DATA"},
        {"mode": DATA, "max_line_length": 0},
        {"mode": DATA, "max_line_length": -5},
        {"mode": DATA, "max_line_length": True},
        {"mode": DATA, "max_line_length": 99.5},
        {"mode": DATA, "strict_line_endings": 1},
        {"mode": DATA, "allow_8bit": None},
        {"mode": DATA, "allow_controls": "yes"},
    ],
    ids=[
        "mode-str",
        "limit-0",
        "limit-negative",
        "limit-bool",
        "limit-float",
        "strict-int",
        "8bit-none",
        "controls-str",
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        BodyEncoder(**options)


def test_large_chunks_match_small_chunks() -> None:
    # Bigger than the internal slice, with dot lines, bare endings and a
    # trailing CR landing on slice boundaries.
    slice_size = message_module._SLICE
    unit = b"line\r\n.dot\nbare\rcr\r\n"
    body = unit * (3 * slice_size // len(unit))
    body = body[: slice_size - 1] + b"\r\n." + body[slice_size + 2 :]
    body += b".\r"
    expected = ref_data(body)
    assert encode(body, DATA) == expected
    assert encode_chunks([body[i : i + 4093] for i in range(0, len(body), 4093)], DATA) == expected


@pytest.mark.parametrize(
    "body",
    [b".\r\n" * 5000, b"\n" * 5000 + b"\r\n", (b"a\n" * 3000) + b"b\r\n", b".\n" * 4000 + b"\r"],
    ids=["dense-dots", "dense-bare-lf", "mostly-bare-lf", "dense-dots-bare-lf"],
)
def test_dense_inputs_take_the_replace_path(body: bytes) -> None:
    assert encode(body, DATA) == ref_data(body)
    assert encode(body, BDAT) == ref_canonical(body)


@pytest.mark.parametrize("mode", list(EncodeMode))
@pytest.mark.parametrize("size", [10, 3 * 256 * 1024], ids=["small", "sliced"])
def test_canonical_body_without_dot_lines_is_not_copied(mode: EncodeMode, size: int) -> None:
    body = (b"line\r\n" * size)[:size] + b"\r\n"
    assert BodyEncoder(mode=mode).feed(body) is body


def test_failed_large_feed_leaves_counters_at_what_was_returned() -> None:
    encoder = BodyEncoder(mode=DATA)
    assert encoder.feed(b"ok\n") == b"ok\r\n"
    with pytest.raises(MessageContentError, match="NUL"):
        encoder.feed(b"a\r\n" * message_module._SLICE + b"\x00")
    assert (encoder.octets_in, encoder.octets_out) == (3, 4)


def test_line_check_across_slices() -> None:
    slice_size = message_module._SLICE
    filler = b"a" * 99 + b"\n"
    head = filler * ((slice_size - 500) // len(filler))
    body = head + b"b" * 999
    assert len(head) < slice_size < len(body)
    with pytest.raises(MessageContentError) as info:
        encode(body, DATA)
    assert error_offset(str(info.value)) == len(head) + 998
    assert encode(body[:-1], DATA) == ref_data(body[:-1])


# ---------------------------------------------------------------------------
# Properties

# Octets and pieces that stress the encoder's decisions.
_PIECES = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b".",
        b"..",
        b"\r\n.",
        b"\n.",
        b"a",
        b"xyz",
        b" ",
        b"\t",
        b"\x00",
        b"\x01",
        b"\x0b",
        b"\x0c",
        b"\x1b",
        b"\x1c",
        b"\x1e",
        b"\x80",
        b"\x85",
        b"\xff",
    ]
)
BODIES = st.one_of(st.lists(_PIECES, max_size=40).map(b"".join), st.binary(max_size=200))
OPTIONS = st.fixed_dictionaries(
    {
        "strict_line_endings": st.booleans(),
        "allow_8bit": st.booleans(),
        "allow_controls": st.booleans(),
        "max_line_length": st.sampled_from([None, 1, 3, 8, 998]),
    }
)
MODES = st.sampled_from(list(EncodeMode))


@settings(max_examples=200, deadline=None)
@given(body=BODIES, mode=MODES, options=OPTIONS, data=st.data())
def test_chunking_invariance(
    body: bytes, mode: EncodeMode, options: dict[str, Any], data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    whole = outcome([body], mode, **options)
    assert outcome(split_at(body, cuts), mode, **options) == whole
    assert outcome([body[i : i + 1] for i in range(len(body))], mode, **options) == whole


@settings(max_examples=200, deadline=None)
@given(body=BODIES, mode=MODES, options=OPTIONS)
def test_errors_match_reference_rules(
    body: bytes, mode: EncodeMode, options: dict[str, Any]
) -> None:
    expected = ref_first_error(body, mode, **options)
    result = outcome([body], mode, **options)
    if expected is None:
        assert result[0] == "ok"
    else:
        assert result[0] == "error"
        text = str(result[1])
        offset, kind = expected
        assert text.startswith("MessageContentError: ")
        assert _KIND_IN_MESSAGE[kind] in text
        assert error_offset(text) == offset


@settings(max_examples=200, deadline=None)
@given(body=BODIES, data=st.data())
def test_data_wire_properties(body: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    encoder = BodyEncoder(mode=DATA, allow_controls=True, max_line_length=None)
    body = body.replace(b"\x00", b"")
    wire = b"".join(encoder.feed(chunk) for chunk in split_at(body, cuts)) + encoder.end()
    # (e) the counters are exact.
    assert encoder.octets_out == len(wire)
    assert encoder.octets_in == len(body)
    # (b) CR and LF appear only as CRLF.
    assert wire.count(b"\r") == wire.count(b"\n") == wire.count(b"\r\n")
    # (c) the only end-of-data is at the very end; ".\r\n" opens only an empty body.
    if body:
        assert wire.find(b"\r\n.\r\n") == len(wire) - 5
        assert not wire.startswith(b".\r\n")
    else:
        assert wire == b".\r\n"
    # (d) removing the terminator and one leading dot per line gives the
    # canonical body back.
    text = wire[:-3]
    lines = text.split(b"\r\n")[:-1] if text else []
    assert all(line[:1] != b"." or line[:2] == b".." for line in lines)
    decoded = b"".join((line[1:] if line[:1] == b"." else line) + b"\r\n" for line in lines)
    assert decoded == ref_canonical(body)
    assert wire == ref_data(body)


@settings(max_examples=200, deadline=None)
@given(body=BODIES, data=st.data())
def test_bdat_output_is_the_canonical_body(body: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    body = body.replace(b"\x00", b"")
    wire = encode_chunks(split_at(body, cuts), BDAT, allow_controls=True, max_line_length=None)
    assert wire == ref_canonical(body)
    assert wire.count(b"\r") == wire.count(b"\n") == wire.count(b"\r\n")


@settings(max_examples=200, deadline=None)
@given(body=BODIES, limit=st.sampled_from([None, 1, 3, 8, 998]))
def test_scan_body_agrees_with_encoder(body: bytes, limit: int | None) -> None:
    info = scan_body(body, max_line_length=limit)
    permissive: dict[str, Any] = {"allow_controls": True, "max_line_length": None}
    no_nul = body.replace(b"\x00", b"")
    assert info.has_nul == (b"\x00" in body)
    assert info.has_8bit == any(octet >= 0x80 for octet in body)
    encoder = BodyEncoder(mode=BINARY, allow_controls=True)
    encoder.feed(body)
    assert info.has_8bit == encoder.has_8bit
    if not info.has_nul:
        assert info.canonical_size == len(encode(body, BDAT, **permissive))
    else:
        assert scan_body(no_nul).canonical_size == len(encode(no_nul, BDAT, **permissive))
    strict = outcome([no_nul], BDAT, strict_line_endings=True, **permissive)
    assert scan_body(no_nul).has_bare_line_endings == (strict[0] == "error")
    controls = outcome([body], BDAT, max_line_length=None)
    assert info.has_controls == (controls[0] == "error")
    long_lines = outcome([no_nul], BDAT, allow_controls=True, max_line_length=limit)
    assert scan_body(no_nul, max_line_length=limit).over_limit == (long_lines[0] == "error")
    canonical_lines = ref_canonical(body).split(b"\r\n")
    assert info.longest_line == max(map(len, canonical_lines))


# ---------------------------------------------------------------------------
# scan_body tables

SCAN_CASES = [
    ("empty", b"", {"canonical_size": 0, "has_bare_line_endings": False}),
    ("adds-final-crlf", b"abc", {"canonical_size": 5}),
    ("crlf", b"a\r\nb\r\n", {"canonical_size": 6, "has_bare_line_endings": False}),
    ("bare-lf", b"a\nb\n", {"canonical_size": 6, "has_bare_line_endings": True}),
    ("bare-cr", b"a\rb", {"canonical_size": 6, "has_bare_line_endings": True}),
    ("trailing-cr", b"a\r", {"canonical_size": 3, "has_bare_line_endings": True}),
    ("cr-cr-lf", b"\r\r\n", {"canonical_size": 4, "has_bare_line_endings": True}),
    ("dots-not-counted", b".\r\n..\r\n", {"canonical_size": 7}),
    ("8bit", b"\xe9\r\n", {"has_8bit": True, "has_controls": False, "has_nul": False}),
    ("nul", b"a\x00", {"has_nul": True, "has_controls": True}),
    ("control", b"a\x07", {"has_nul": False, "has_controls": True}),
    ("ht-ff-esc", b"\t\x0c\x1b", {"has_controls": False}),
    ("998", b"x" * 998, {"over_limit": False, "longest_line": 998}),
    ("999", b"x" * 999, {"over_limit": True, "longest_line": 999}),
    (
        "999-after-lines",
        b"a\nb\r" + b"x" * 999 + b"\r\n",
        {"over_limit": True, "longest_line": 999},
    ),
    ("longest-not-last", b"abc\r\nab\nx", {"longest_line": 3, "canonical_size": 12}),
    ("empty-lines", b"\r\n\n\r", {"longest_line": 0, "canonical_size": 6}),
    # Only CR and LF end lines: VT, FF, FS, RS and NEL do not.
    ("other-separators", b"a\x0b\x0c\x1c\x1e\x85b", {"longest_line": 7, "canonical_size": 9}),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in SCAN_CASES], ids=[c[0] for c in SCAN_CASES]
)
def test_scan_body(body: bytes, expected: dict[str, object]) -> None:
    info = scan_body(body)
    for name, value in expected.items():
        assert getattr(info, name) == value, name


@pytest.mark.parametrize(
    "unit",
    [b"line\r\n.dot\nbare\rcr\r\n", b"no line feeds\r", b"x" * 999, b"\n"],
    ids=["mixed", "cr-only", "one-long-line", "lf-only"],
)
def test_scan_body_on_bodies_larger_than_a_slice(unit: bytes) -> None:
    body = unit * (2 * message_module._SLICE // len(unit) + 3)
    info = scan_body(body, max_line_length=None)
    assert info.canonical_size == len(ref_canonical(body))
    assert info.longest_line == max(map(len, ref_canonical(body).split(b"\r\n")))
    bare = len(ref_canonical(body, final_crlf=False)) != len(body)
    assert info.has_bare_line_endings == bare
    assert bare == (unit != b"x" * 999)


def test_scan_body_options_and_inputs() -> None:
    assert not scan_body(b"x" * 5000, max_line_length=None).over_limit
    assert scan_body(b"abcd", max_line_length=3).over_limit
    assert scan_body(bytearray(b"ab")).canonical_size == 4  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        scan_body("text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        scan_body(b"", max_line_length=0)


def test_body_info_is_validated() -> None:
    fields: dict[str, Any] = {
        "has_8bit": False,
        "has_bare_line_endings": False,
        "has_nul": False,
        "has_controls": False,
        "longest_line": 0,
        "over_limit": False,
        "canonical_size": 0,
    }
    BodyInfo(**fields)
    with pytest.raises(InvalidInputError):
        BodyInfo(**{**fields, "canonical_size": -1})
    with pytest.raises(InvalidInputError):
        BodyInfo(**{**fields, "has_nul": True})
    with pytest.raises(InvalidInputError):
        BodyInfo(**{**fields, "longest_line": -1})


# ---------------------------------------------------------------------------
# to_bytes_message


def _email(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hello.\nFrom the body.\n")
    return msg


def test_bytes_are_returned_as_is() -> None:
    raw = b"Subject: x\r\n\r\nbody\n"
    assert to_bytes_message(raw) is raw
    assert to_bytes_message(bytearray(raw)) == raw  # type: ignore[arg-type]


def test_str_is_encoded_as_utf8() -> None:
    assert to_bytes_message("Subject: é\r\n\r\nbody") == "Subject: é\r\n\r\nbody".encode()


def test_str_with_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="lone surrogate at index 3"):
        to_bytes_message("abc\udcff")


@pytest.mark.parametrize("value", [42, None, ["a"]], ids=["int", "none", "list"])
def test_unsupported_message_types_are_refused(value: object) -> None:
    with pytest.raises(InvalidInputError):
        to_bytes_message(value)  # type: ignore[arg-type]


def test_bcc_headers_are_stripped_without_touching_the_caller() -> None:
    msg = _email(From="a@example.org", To="b@example.org", Bcc="secret@example.org")
    msg["Resent-Bcc"] = "hidden@example.org"
    before = list(msg.items())
    out = to_bytes_message(msg)
    assert b"secret@example.org" not in out
    assert b"hidden@example.org" not in out
    assert b"\r\nTo: b@example.org\r\n" in out
    assert list(msg.items()) == before
    assert msg["Bcc"] == "secret@example.org"


def test_output_uses_crlf_and_no_from_mangling() -> None:
    out = to_bytes_message(_email(From="a@example.org", To="b@example.org"))
    assert out.count(b"\n") == out.count(b"\r\n")
    assert b"\r\nFrom the body.\r\n" in out
    assert b">From" not in out


def test_non_ascii_headers_follow_smtputf8() -> None:
    msg = _email(From="Jöhn <jö@exämple.org>", To="b@example.org", Subject="héllo")
    encoded = to_bytes_message(msg)
    assert b"=?utf-8?" in encoded
    header_block = encoded.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()
    raw = to_bytes_message(msg, smtputf8=True)
    assert "Subject: héllo\r\n".encode() in raw
    assert "jö@exämple.org".encode() in raw
    # The default-policy message serialises exactly as with email.policy.SMTPUTF8.
    assert raw == msg.as_bytes(policy=email.policy.SMTPUTF8)
    assert encoded == msg.as_bytes(policy=email.policy.SMTP)


def test_compat32_message_with_header_objects() -> None:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["Bcc"] = "secret@example.org"
    msg["Subject"] = Header("héllo", "utf-8")  # type: ignore[assignment]
    msg.set_payload("From here\n")
    out = to_bytes_message(msg, smtputf8=True)
    assert out == (b"From: a@example.org\r\nSubject: =?utf-8?b?aMOpbGxv?=\r\n\r\nFrom here\r\n")
    assert msg["Bcc"] == "secret@example.org"


def test_multipart_without_boundaries_is_not_mutated() -> None:
    inner = MIMEMultipart("alternative")
    inner.attach(MIMEText("plain", "plain"))
    inner.attach(MIMEText("<p>html</p>", "html"))
    outer = MIMEMultipart("mixed")
    outer["From"] = "a@example.org"
    outer.attach(inner)
    assert outer.get_boundary() is None
    assert inner.get_boundary() is None
    out = to_bytes_message(outer)
    assert re.search(rb'multipart/alternative;\s+boundary="', out)
    assert outer.get_boundary() is None
    assert inner.get_boundary() is None


def test_unserialisable_message_is_an_input_error() -> None:
    msg = Message()
    msg.set_payload(42)  # type: ignore[call-overload]
    with pytest.raises(InvalidInputError, match="cannot be serialised"):
        to_bytes_message(msg)


# ---------------------------------------------------------------------------
# envelope_from_message


def _headers(*pairs: tuple[str, str]) -> Message:
    msg = Message()
    for name, value in pairs:
        msg[name] = value
    return msg


ENVELOPE_CASES = [
    ("from-to", [("From", "a@x.org"), ("To", "b@y.org")], ("a@x.org", ["b@y.org"])),
    (
        "sender-wins",
        [("From", "a@x.org"), ("Sender", "s@x.org"), ("To", "b@y.org")],
        ("s@x.org", ["b@y.org"]),
    ),
    (
        "to-cc-bcc-order",
        [("Bcc", "d@y.org"), ("Cc", "c@y.org"), ("From", "a@x.org"), ("To", "b@y.org")],
        ("a@x.org", ["b@y.org", "c@y.org", "d@y.org"]),
    ),
    (
        "display-names-and-lists",
        [("From", '"Doe, A" <a@x.org>'), ("To", "B <b@y.org>, c@y.org")],
        ("a@x.org", ["b@y.org", "c@y.org"]),
    ),
    (
        "group-dropped",
        [("From", "a@x.org"), ("To", "undisclosed-recipients:;"), ("Bcc", "b@y.org")],
        ("a@x.org", ["b@y.org"]),
    ),
    (
        "duplicates-once",
        [("From", "a@x.org"), ("To", "b@y.org, b@y.org"), ("Cc", "b@y.org")],
        ("a@x.org", ["b@y.org"]),
    ),
    (
        "repeated-to-headers",
        [("From", "a@x.org"), ("To", "b@y.org"), ("To", "c@y.org")],
        ("a@x.org", ["b@y.org", "c@y.org"]),
    ),
    (
        "resent-block",
        [
            ("From", "a@x.org"),
            ("To", "b@y.org"),
            ("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
            ("Resent-From", "r@x.org"),
            ("Resent-To", "t@y.org"),
            ("Resent-Bcc", "u@y.org"),
        ],
        ("r@x.org", ["t@y.org", "u@y.org"]),
    ),
    (
        "resent-sender-wins",
        [
            ("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
            ("Resent-From", "r@x.org"),
            ("Resent-Sender", "rs@x.org"),
            ("Resent-Cc", "t@y.org"),
        ],
        ("rs@x.org", ["t@y.org"]),
    ),
    (
        "resent-fields-without-date-ignored",
        [("From", "a@x.org"), ("To", "b@y.org"), ("Resent-From", "r@x.org")],
        ("a@x.org", ["b@y.org"]),
    ),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [c[1:] for c in ENVELOPE_CASES], ids=[c[0] for c in ENVELOPE_CASES]
)
def test_envelope_from_message(
    headers: list[tuple[str, str]], expected: tuple[str, list[str]]
) -> None:
    assert envelope_from_message(_headers(*headers)) == expected


ENVELOPE_ERRORS = [
    ("no-from", [("To", "b@y.org")], "sender"),
    ("empty-from", [("From", "<>"), ("To", "b@y.org")], "sender"),
    ("no-recipients", [("From", "a@x.org")], "recipients"),
    ("only-group", [("From", "a@x.org"), ("To", "list:;")], "recipients"),
    (
        "two-resent-blocks",
        [
            ("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
            ("Resent-From", "r@x.org"),
            ("Resent-Date", "Tue, 2 Jan 2024 00:00:00 +0000"),
            ("From", "a@x.org"),
            ("To", "b@y.org"),
        ],
        "Resent-",
    ),
    (
        "resent-block-without-from",
        [("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"), ("From", "a@x.org"), ("To", "b@y.org")],
        "Resent-Sender or Resent-From",
    ),
]


@pytest.mark.parametrize(
    ("headers", "match"), [c[1:] for c in ENVELOPE_ERRORS], ids=[c[0] for c in ENVELOPE_ERRORS]
)
def test_envelope_errors(headers: list[tuple[str, str]], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        envelope_from_message(_headers(*headers))


def test_envelope_from_email_message_with_non_ascii_addresses() -> None:
    msg = _email(From="Jöhn <jö@exämple.org>", To="Zoë <zoë@exämple.org>", Cc="c@y.org")
    assert envelope_from_message(msg) == ("jö@exämple.org", ["zoë@exämple.org", "c@y.org"])


def test_envelope_refuses_non_messages() -> None:
    with pytest.raises(InvalidInputError):
        envelope_from_message(b"From: a@x.org\r\n\r\n")  # type: ignore[arg-type]


# Every way a caller hands over headers: set on a legacy Message or on an EmailMessage (the
# header registry parses at once), or parsed from bytes with the default or the legacy policy.
def _set_compat32(headers: list[tuple[str, str]]) -> Message:
    return _headers(*headers)


def _set_email_message(headers: list[tuple[str, str]]) -> Message:
    msg = EmailMessage()
    for name, value in headers:
        msg[name] = value
    return msg


def _raw(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode() + b"\r\nbody\r\n"


def _parsed_default(headers: list[tuple[str, str]]) -> Message:
    return email.message_from_bytes(_raw(headers), policy=email.policy.default)


def _parsed_compat32(headers: list[tuple[str, str]]) -> Message:
    return email.message_from_bytes(_raw(headers))


HEADER_SOURCES = [
    pytest.param(_set_compat32, id="message-set"),
    pytest.param(_set_email_message, id="email-message-set"),
    pytest.param(_parsed_default, id="bytes-policy-default"),
    pytest.param(_parsed_compat32, id="bytes-compat32"),
]

# Address headers that are not an RFC 5322 3.4 address-list. Each must be refused as a whole,
# never read as some list of addresses: email.utils.getaddresses turns the first one into two
# recipients, one of them taken from the display name.
MALFORMED_ADDRESS_LISTS = [
    pytest.param("billing@victim.test <b@rcpt.test>", id="unquoted-at-in-display-name"),
    pytest.param("b@y.org, billing@victim.test <c@rcpt.test>", id="unquoted-at-after-a-good-one"),
    pytest.param("billing @ victim.test <b@rcpt.test>", id="unquoted-spaced-at-in-display-name"),
    pytest.param("x@y <a@b.org>", id="addr-spec-as-display-name"),
    pytest.param("a@y.org d@y.org", id="two-addresses-without-comma"),
    pytest.param("B <b@y.org> junk", id="text-after-angle-addr"),
    pytest.param("B <b@y.org", id="unclosed-angle-addr"),
    pytest.param("b@y.org>", id="stray-closing-angle"),
    pytest.param('"unterminated <b@y.org>', id="unclosed-quoted-string"),
    pytest.param("g: b@y.org", id="group-without-semicolon"),
    pytest.param("g: b@y.org, bad@@x.org;", id="group-with-a-bad-member"),
    pytest.param("b@y.org;", id="semicolon-outside-group"),
    pytest.param("<>", id="null-address"),
    pytest.param("B <>", id="null-address-with-name"),
    pytest.param("Bob", id="name-without-address"),
    pytest.param(".b@y.org", id="local-part-leading-dot"),
    pytest.param("b..c@y.org", id="local-part-double-dot"),
]

# Malformed lists that make the stdlib parser itself raise (IndexError, AttributeError). An
# EmailMessage parses when the header is set, so these are only reachable the other ways.
CRASHING_ADDRESS_LISTS = [
    pytest.param("b@", id="no-domain"),
    pytest.param("g: h: b@y.org;;", id="nested-group"),
    pytest.param("g:b@y.org;d@y.org", id="text-after-group"),
]


@pytest.mark.parametrize("build", HEADER_SOURCES)
@pytest.mark.parametrize("value", MALFORMED_ADDRESS_LISTS)
@pytest.mark.parametrize("header", ["To", "Cc", "Bcc"])
def test_envelope_refuses_malformed_recipient_headers(build: Any, value: str, header: str) -> None:
    # A good address in another header: the bad header is not just skipped.
    good = ("Cc", "ok@y.org") if header == "To" else ("To", "ok@y.org")
    msg = build([("From", "a@x.org"), good, (header, value)])
    with pytest.raises(InvalidInputError, match=rf"\b{header} header\b"):
        envelope_from_message(msg)


@pytest.mark.parametrize("build", [p for p in HEADER_SOURCES if p.id != "email-message-set"])
@pytest.mark.parametrize("value", CRASHING_ADDRESS_LISTS)
def test_envelope_refuses_headers_the_stdlib_parser_crashes_on(build: Any, value: str) -> None:
    msg = build([("From", "a@x.org"), ("To", value)])
    with pytest.raises(InvalidInputError, match=r"\bTo header\b"):
        envelope_from_message(msg)


@pytest.mark.parametrize("build", HEADER_SOURCES)
@pytest.mark.parametrize("header", ["From", "Sender"])
def test_envelope_refuses_malformed_sender_headers(build: Any, header: str) -> None:
    bad = "billing@victim.test <s@x.org>"
    senders = [("From", bad)] if header == "From" else [("From", "a@x.org"), (header, bad)]
    msg = build([*senders, ("To", "b@y.org")])
    with pytest.raises(InvalidInputError, match=rf"\b{header} header\b"):
        envelope_from_message(msg)


def test_envelope_refuses_a_line_break_that_is_not_folding() -> None:
    # A legacy Message stores what it is given; RFC 5322 2.2.3 unfolds only CRLF + WSP.
    msg = _headers(("From", "a@x.org"), ("To", "b@y.org\r\nBcc: evil@x.org"))
    with pytest.raises(InvalidInputError, match=r"\bTo header\b"):
        envelope_from_message(msg)
    folded = _headers(("From", "a@x.org"), ("To", "b@y.org,\r\n c@y.org"))
    assert envelope_from_message(folded) == ("a@x.org", ["b@y.org", "c@y.org"])


def test_envelope_refuses_an_empty_address_object() -> None:
    # An EmailMessage also takes Address objects, which the registry does not parse.
    msg = EmailMessage()
    msg["From"] = "a@x.org"
    msg["To"] = [Address("b", "b", "y.org"), Address(display_name="nobody")]
    with pytest.raises(InvalidInputError, match=r"\bTo header\b.*empty"):
        envelope_from_message(msg)


WELL_FORMED_ADDRESS_LISTS = [
    pytest.param('"billing@victim.test" <b@rcpt.test>', ["b@rcpt.test"], id="quoted-at"),
    pytest.param(
        "=?utf-8?q?billing=40victim.test?= <b@rcpt.test>", ["b@rcpt.test"], id="encoded-at"
    ),
    pytest.param("(billing@victim.test) b@rcpt.test", ["b@rcpt.test"], id="at-in-comment"),
    pytest.param('"a@b"@rcpt.test', ['"a@b"@rcpt.test'], id="quoted-local-part"),
    # RFC 5322 4.1: obs-phrase allows "." in a display name; 4.4: obs-addr-list allows
    # empty list elements. Both must be accepted when parsing.
    pytest.param("Joe Q. Public <b@y.org>", ["b@y.org"], id="obs-phrase"),
    pytest.param("b@y.org, , c@y.org", ["b@y.org", "c@y.org"], id="obs-empty-element"),
    pytest.param(
        "team: b@y.org, C <c@y.org>;, d@y.org", ["b@y.org", "c@y.org", "d@y.org"], id="group"
    ),
    pytest.param("b@[192.0.2.1]", ["b@[192.0.2.1]"], id="address-literal"),
]


@pytest.mark.parametrize("build", HEADER_SOURCES)
@pytest.mark.parametrize(("value", "expected"), WELL_FORMED_ADDRESS_LISTS)
def test_envelope_takes_well_formed_recipient_headers(
    build: Any, value: str, expected: list[str]
) -> None:
    msg = build([("From", "A <a@x.org>"), ("To", value)])
    assert envelope_from_message(msg) == ("a@x.org", expected)


@pytest.mark.parametrize("build", [_parsed_default, _parsed_compat32])
def test_envelope_from_utf8_headers_parsed_from_bytes(build: Any) -> None:
    # RFC 6532 3.2: header values may hold raw UTF-8; the email package keeps the octets
    # as surrogate escapes, which must come back as the characters, not as surrogates.
    msg = build([("From", "Jöhn <jö@exämple.org>"), ("To", "Zoë <zoë@exämple.org>")])
    assert envelope_from_message(msg) == ("jö@exämple.org", ["zoë@exämple.org"])


@pytest.mark.parametrize("build", [_parsed_default, _parsed_compat32])
def test_envelope_refuses_header_octets_that_are_not_utf8(build: Any) -> None:
    raw = b"From: a@x.org\r\nTo: B\xff <b@y.org>\r\n\r\nbody\r\n"
    policy = email.policy.default if build is _parsed_default else email.policy.compat32
    msg = email.message_from_bytes(raw, policy=policy)
    with pytest.raises(InvalidInputError, match=r"\bTo header\b.*UTF-8"):
        envelope_from_message(msg)


@settings(max_examples=300, deadline=None)
@given(body=BODIES, mode=MODES)
def test_encode_scanned_equals_the_streaming_encoder(body: bytes, mode: EncodeMode) -> None:
    # The session's one-pass path for in-memory bodies: the same wire bytes
    # as BodyEncoder for every body BodyEncoder accepts with the most
    # permissive options (NUL is refused by both before encoding).
    body = body.replace(b"\x00", b"") if mode is not BINARY else body
    expected = outcome([body], mode, allow_controls=True, max_line_length=None)
    assert expected[0] == "ok"
    assert encode_scanned(body, scan_body(body, max_line_length=None), mode) == expected[1]


@pytest.mark.parametrize(
    ("body", "data_wire", "bdat_wire"),
    [
        (b"", b".\r\n", b""),
        (b".", b"..\r\n.\r\n", b".\r\n"),
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n", b"a\r\n.b\r\n"),
        (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        (b"x\r", b"x\r\n.\r\n", b"x\r\n"),
        (b"\n.\n", b"\r\n..\r\n.\r\n", b"\r\n.\r\n"),
    ],
)
def test_encode_scanned_examples(body: bytes, data_wire: bytes, bdat_wire: bytes) -> None:
    assert encode_scanned(body, scan_body(body), DATA) == data_wire
    assert encode_scanned(body, scan_body(body), BDAT) == bdat_wire
    assert encode_scanned(body, scan_body(body), BINARY) == body
