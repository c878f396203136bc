"""Message bodies: canonical line endings, dot-stuffing and content checks, streamed.

Theory of operation
-------------------
A message body reaches the server in one of three shapes (:class:`EncodeMode`):

* ``DATA`` (RFC 5321 4.1.1.4): lines end in CRLF, a line starting with ``.``
  gets one more ``.`` in front (RFC 5321 4.5.2), and ``CRLF . CRLF`` ends
  the body.
* ``BDAT`` (RFC 3030 2): the same canonical CRLF text, sent in counted chunks,
  so neither dot-stuffing nor a terminator.
* ``BINARY`` (RFC 3030 3, ``BODY=BINARYMIME``): the octets as they are.

:class:`BodyEncoder` turns a body given in chunks of any size into wire bytes.
Its output is the same however the body is split, and it never loops over
octets in Python: each chunk goes through a small, fixed number of C-speed
passes (``bytes.isascii``, ``bytes.translate``, ``bytes.find``, and regex
searches and splits whose literal prefix lets ``re`` skip ahead, with
``bytes.replace`` where matches are dense). Across chunks it keeps only a
few scalars: whether the last octet was a CR, whether the output is at the
start of a line, and the length of the unfinished line. Chunks larger than
256 KiB are worked through in slices of that size, which keeps each pass in
the CPU cache.

A trailing CR is written out as CRLF at once: a CR ends a line whether or not
an LF follows, so the output is the same either way. When the next chunk then
starts with LF, that LF is the second half of the CRLF and is dropped.

Content checks (8-bit data, control characters, line length, bare CR or LF in
strict mode) run before a chunk's output is returned. A check that fails is
then re-run slowly on that chunk only to find the *earliest* bad octet, so the
error, including its offset, does not depend on how the body was split.
"""

from __future__ import annotations

import copy
import enum
import functools
import io
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn, final

from ._errors import InvalidInputError, LocalProtocolError, MessageContentError
from ._slots import slot_setters

if TYPE_CHECKING:
    import email.message


def _email_message_class() -> type[email.message.Message] | None:
    """``email.message.Message`` if the caller has the email package loaded.

    The stdlib email package imports socket (email.utils), which a sans-IO
    core must not do on import: a caller who built an EmailMessage has loaded
    it already, and one who did not cannot have passed one.
    """
    module = sys.modules.get("email.message")
    return None if module is None else module.Message


__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "BodyEncoder",
    "BodyInfo",
    "EncodeMode",
    "envelope_from_message",
    "scan_body",
    "to_bytes_message",
]

#: RFC 5322 2.1.1: "Each line of characters MUST be no more than 998
#: characters ... excluding the CRLF." RFC 5321 4.5.3.1.6 says the same of
#: SMTP text lines (1000 octets with the CRLF, not counting a stuffed dot).
DEFAULT_MAX_LINE_LENGTH = 998

# feed() works through large chunks in slices of this size (see there).
_SLICE = 256 * 1024

_CR = 0x0D
_LF = 0x0A

# C0 controls the default rule refuses: everything below 0x20 except HT
# (0x09), LF, FF (0x0C), CR and ESC (0x1B). RFC 5322 3.5 would allow most of
# them in a body, but none has a use in mail text except these five (ESC
# switches character sets in ISO-2022-JP mail, RFC 1468), and stray controls
# are how filters and MTAs are made to disagree about a message. RFC 5322 3.5
# and RFC 2045 2.7/2.8: NUL is never allowed in text, 7bit or 8bit data.
_REFUSED_CONTROLS = bytes([*range(0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_NUL_ONLY = b"\x00"
# Every octet to itself but the refused controls (to DEL): a body holds a
# refused control exactly when translating it changes it. A translation is
# one table lookup an octet; deleting octets costs three times that.
_MARK_REFUSED = bytes(0x7F if i in _REFUSED_CONTROLS else i for i in range(256))

# The classification tables map every octet to one of three marks, so that a
# single bytes.translate() pass serves both the control check (is there a
# _BAD mark?) and the line-length check (is there a run of _OK marks longer
# than the limit?).
_OK = ord("x")
_BAD = ord("!")
_BREAK = ord("\n")


@functools.lru_cache(maxsize=16)
def _make_table(*, refused: bytes, breaks: bool) -> bytes:
    # Cached: a session builds an encoder per message, with few option sets.
    table = bytearray([_OK]) * 256
    for octet in refused:
        table[octet] = _BAD
    if breaks:
        table[_CR] = table[_LF] = _BREAK
    return bytes(table)


# Line breaks only, for the line-length check when controls are not checked.
_BREAKS_TABLE = _make_table(refused=b"", breaks=True)

# RFC 5321 2.3.8: "SMTP client implementations MUST NOT transmit these
# characters [bare CR and bare LF] except when they are intended as line
# terminators and then MUST ... transmit them only as a <CRLF> sequence."
# Both patterns start with a literal, so re skips from one CR (or LF) to the
# next quickly; the LF check looks behind *after* matching the LF because a
# leading lookbehind makes re try every position (10x slower). A CR that ends
# the input does not match: the next chunk decides what it is.
_BARE_CR = re.compile(rb"\r[^\n]")
_BARE_LF = re.compile(rb"\n(?<!\r\n)")
# RFC 5321 4.5.2: a line that starts with a period. Only used on canonical
# text; the first line of each chunk is handled apart.
_DOT_LINE = re.compile(rb"\r\n\.")
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


class EncodeMode(enum.Enum):
    """How :class:`BodyEncoder` puts a body on the wire."""

    #: Canonical CRLF lines, dot-stuffed, ended by ``.<CRLF>`` (RFC 5321 4.1.1.4).
    DATA = "data"
    #: Canonical CRLF lines for BDAT chunks: no dot-stuffing, no terminator
    #: (RFC 3030 2).
    BDAT = "bdat"
    #: Octets passed through unchanged, for ``BODY=BINARYMIME`` (RFC 3030 3).
    BINARY = "binary"


#: The modes as module constants, for the per-message paths: on Python 3.11
#: an enum member looked up on its class costs about 15 times a global.
_MODE_DATA: Final = EncodeMode.DATA
_MODE_BDAT: Final = EncodeMode.BDAT
_MODE_BINARY: Final = EncodeMode.BINARY


class _Phase(enum.Enum):
    OPEN = "open"
    ENDED = "ended"
    FAILED = "failed"


@final
class BodyEncoder:
    """Streams a message body into wire bytes for DATA or BDAT.

    Feed the body in chunks of any size with :meth:`feed` and send what it
    returns; then call :meth:`end` once and send that too. The concatenated
    output depends only on the concatenated input, never on the chunking.

    In ``DATA`` and ``BDAT`` mode every bare CR and bare LF becomes CRLF (or
    is refused with ``strict_line_endings``); a body that does not end in a
    line break gets a final CRLF. ``DATA`` mode also doubles a leading dot on
    every line, the first included, and appends the ``.<CRLF>`` terminator, so
    the only ``<CRLF>.<CRLF>`` on the wire is the real end of the body.
    ``BINARY`` mode changes nothing, and the line checks (length, strictness)
    do not apply to it; the 8-bit and control checks do.

    Every check raises :class:`MessageContentError` naming the offset of the
    first bad octet, before the chunk holding it produces any output. After an
    error the encoder is dead: any further call raises
    :class:`LocalProtocolError`.

    Args:
        mode: DATA, BDAT or BINARY.
        strict_line_endings: refuse a bare CR or bare LF instead of turning it
            into CRLF.
        allow_8bit: False refuses any octet >= 0x80 (the server did not offer
            8BITMIME).
        allow_controls: False (the default) refuses NUL and the C0 controls
            other than HT, LF, CR, FF and ESC. True allows them, except NUL
            outside ``BINARY`` mode.
        max_line_length: the longest line allowed, in octets, without its
            line ending and before dot-stuffing; None turns the check off.

    Raises:
        InvalidInputError: an option has the wrong type or value.
    """

    __slots__ = (
        "_allow_8bit",
        "_at_line_start",
        "_check_bad",
        "_has_8bit",
        "_line_len",
        "_long_run",
        "_max_line",
        "_mode",
        "_nul_only",
        "_octets_in",
        "_octets_out",
        "_pending_cr",
        "_phase",
        "_strict",
        "_stuff_dots",
        "_table",
    )

    def __init__(
        self,
        *,
        mode: EncodeMode,
        strict_line_endings: bool = False,
        allow_8bit: bool = True,
        allow_controls: bool = False,
        max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
    ) -> None:
        if not isinstance(mode, EncodeMode):
            raise InvalidInputError("encode mode", "must be an EncodeMode", mode)
        for name, flag in (
            ("strict_line_endings", strict_line_endings),
            ("allow_8bit", allow_8bit),
            ("allow_controls", allow_controls),
        ):
            if not isinstance(flag, bool):
                raise InvalidInputError(name, "must be a bool", flag)
        _check_limit(max_line_length)
        binary = mode is EncodeMode.BINARY
        self._mode = mode
        self._stuff_dots = mode is EncodeMode.DATA
        # Binary data has no lines: neither the length limit nor the
        # line-ending rules mean anything there.
        self._strict = strict_line_endings and not binary
        self._max_line = None if binary else max_line_length
        self._allow_8bit = allow_8bit
        if not allow_controls:
            refused = _REFUSED_CONTROLS
        elif binary:
            refused = b""
        else:
            # RFC 5322 3.5: body text excludes NUL; RFC 2045 2.8: "no NULs
            # are allowed" in 8bit data either. Many servers truncate at it.
            refused = _NUL_ONLY
        # NUL alone is checked with a memchr-speed `in`; anything more, or a
        # line-length check, takes one translate() pass with a table.
        self._nul_only = refused == _NUL_ONLY and self._max_line is None
        self._check_bad = bool(refused)
        self._table: bytes | None = None
        if self._max_line is not None or (refused and not self._nul_only):
            self._table = _make_table(refused=refused, breaks=self._max_line is not None)
        self._long_run = b""
        self._phase = _Phase.OPEN
        self._octets_in = 0
        self._octets_out = 0
        self._has_8bit = False
        self._pending_cr = False
        self._at_line_start = True
        self._line_len = 0

    def __repr__(self) -> str:
        return (
            f"<BodyEncoder mode={self._mode.name} phase={self._phase.value}"
            f" octets_in={self._octets_in} octets_out={self._octets_out}>"
        )

    @property
    def mode(self) -> EncodeMode:
        """The mode given at construction."""
        return self._mode

    @property
    def octets_in(self) -> int:
        """Body octets accepted so far."""
        return self._octets_in

    @property
    def octets_out(self) -> int:
        """Wire octets returned so far, including the terminator after :meth:`end`."""
        return self._octets_out

    @property
    def has_8bit(self) -> bool:
        """True once an octet >= 0x80 has been fed."""
        return self._has_8bit

    def feed(self, chunk: bytes) -> bytes:
        """Encode the next piece of the body.

        Args:
            chunk: the next body octets; any size, possibly empty.

        Returns:
            Wire bytes to send now; may be empty.

        Raises:
            MessageContentError: the chunk holds an octet the options refuse.
            InvalidInputError: ``chunk`` is not bytes-like.
            LocalProtocolError: :meth:`end` was called or an earlier call failed.
        """
        self._require_open("feed")
        data = _as_bytes(chunk, "message body chunk")
        if not data:
            return b""
        counters = self._octets_in, self._octets_out
        try:
            if len(data) <= _SLICE:
                return self._encode(data)
            # Each pass over a slice that fits in the CPU cache is several
            # times faster than the same pass over a 50 MB object, which
            # more than pays for the final join.
            view = memoryview(data)
            outs = []
            unchanged = True
            for i in range(0, len(data), _SLICE):
                piece = bytes(view[i : i + _SLICE])
                out = self._encode(piece)
                unchanged = unchanged and out is piece
                outs.append(out)
            # Already canonical, nothing to stuff: skip building a copy.
            return data if unchanged else b"".join(outs)
        except MessageContentError:
            # Slices encoded before the error were never returned.
            self._octets_in, self._octets_out = counters
            self._phase = _Phase.FAILED
            raise

    def _encode(self, data: bytes) -> bytes:
        if self._mode is EncodeMode.BINARY:
            self._check_octets(data, self._octets_in)
            out = data
        else:
            out = self._encode_text(data)
        self._octets_in += len(data)
        self._octets_out += len(out)
        return out

    def end(self) -> bytes:
        """Finish the body.

        Returns:
            The last wire bytes: a CRLF if the body did not end with a line
            break (``DATA`` and ``BDAT``), then in ``DATA`` mode the terminator
            ``.<CRLF>``. An empty body gives ``b""`` in ``BDAT`` mode and just
            ``.<CRLF>`` in ``DATA`` mode.

        Raises:
            MessageContentError: strict mode and the body ends with a bare CR.
            LocalProtocolError: already ended, or an earlier call failed.
        """
        self._require_open("end")
        if self._pending_cr and self._strict:
            self._phase = _Phase.FAILED
            raise _bare_cr_error(self._octets_in - 1)
        self._phase = _Phase.ENDED
        if self._mode is EncodeMode.BINARY:
            return b""
        # RFC 5321 4.1.1.4: the body must end with CRLF before the terminator,
        # and the server cannot tell a partial last line from a complete one.
        out = b"" if self._at_line_start else b"\r\n"
        if self._stuff_dots:
            # RFC 5321 4.1.1.4: "The mail data are terminated by a line
            # containing only a period". After a CRLF (or at the very start,
            # for an empty body) ".<CRLF>" is exactly that line.
            out += b".\r\n"
        self._octets_out += len(out)
        return out

    def _require_open(self, what: str) -> None:
        if self._phase is _Phase.ENDED:
            raise LocalProtocolError(f"cannot {what} a BodyEncoder after end()")
        if self._phase is _Phase.FAILED:
            raise LocalProtocolError(
                f"cannot {what} a BodyEncoder after it raised MessageContentError"
            )

    def _encode_text(self, data: bytes) -> bytes:
        base = self._octets_in
        if self._pending_cr:
            self._pending_cr = False
            if data[0] == _LF:
                # The LF of a CRLF split across chunks: its CR was already
                # written out as CRLF.
                data = data[1:]
                base += 1
                if not data:
                    return b""
            elif self._strict:
                raise _bare_cr_error(base - 1)
        line_len = self._check_octets(data, base)

        # Canonical line endings. The common shapes cost one or two passes:
        # LF only (one replace), CRLF only (two searches), CRLF with a few
        # bare LFs (two searches and a join); mixed input pays for more.
        trailing_cr = data[-1] == _CR
        if b"\r" not in data:
            if b"\n" in data:
                if self._strict:
                    self._fail(data, base)
                out = data.replace(b"\n", b"\r\n")
            else:
                out = data
        else:
            if _BARE_CR.search(data) is not None:
                if self._strict:
                    self._fail(data, base)
                # "\r\r\n" is a bare CR then a CRLF: two line breaks.
                out = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
            else:
                # Cutting at the bare LFs and joining with CRLF is the fastest
                # fix while they are few; maxsplit bounds the pieces made.
                limit = _split_limit(data)
                parts = _BARE_LF.split(data, limit)
                if len(parts) == 1:
                    out = data + b"\n" if trailing_cr else data
                elif self._strict:
                    self._fail(data, base)
                elif len(parts) <= limit:
                    out = b"\r\n".join(parts)
                    if trailing_cr:
                        out += b"\n"
                else:
                    # Every CR is part of a CRLF (or trailing): drop them all
                    # and put one before every LF.
                    out = data.replace(b"\r", b"").replace(b"\n", b"\r\n")
                    if trailing_cr:
                        out += b"\r\n"
        self._pending_cr = trailing_cr
        self._line_len = line_len

        if self._stuff_dots:
            # RFC 5321 4.5.2: "Before sending a line of mail text, the SMTP
            # client checks the first character of the line. If it is a
            # period, one additional period is inserted at the beginning of
            # the line." That includes the first line of the body.
            out = _stuff_dots(out)
            if self._at_line_start and out[0] == 0x2E:
                out = b"." + out
        self._at_line_start = out[-1] == _LF
        return out

    def _check_octets(self, data: bytes, base: int) -> int:
        """Runs the fast content checks; on any failure, `_fail` finds the first bad octet.

        Returns the length of the unfinished line at the end of `data`, for the
        caller to keep once the chunk has passed every check.
        """
        line_len = self._line_len
        if not self._has_8bit and not data.isascii():
            if not self._allow_8bit:
                self._fail(data, base)
            self._has_8bit = True
        table = self._table
        if table is not None:
            marks = data.translate(table)
            if self._check_bad and _BAD in marks:
                self._fail(data, base)
            limit = self._max_line
            if limit is not None:
                first = marks.find(b"\n")
                if first < 0:
                    line_len += len(marks)
                    if line_len > limit:
                        self._fail(data, base)
                else:
                    if line_len + first > limit or (
                        len(marks) - first > limit
                        and marks.find(self._long_line_marks(limit), first) >= 0
                    ):
                        self._fail(data, base)
                    line_len = len(marks) - 1 - marks.rfind(b"\n")
        elif self._nul_only and b"\x00" in data:
            self._fail(data, base)
        return line_len

    def _long_line_marks(self, limit: int) -> bytes:
        # Built on first use only: with a huge limit and small chunks it is
        # never needed.
        if not self._long_run:
            self._long_run = bytes([_OK]) * (limit + 1)
        return self._long_run

    def _fail(self, data: bytes, base: int) -> NoReturn:
        """Raises for the earliest bad octet of `data` (which starts at offset `base`).

        Slow on purpose: it runs only when a fast check already failed.
        """
        found: list[tuple[int, str]] = []
        if not self._allow_8bit and (m := _EIGHT_BIT.search(data)) is not None:
            found.append(
                (
                    m.start(),
                    f"8-bit octet 0x{data[m.start()]:02x} with allow_8bit=False"
                    " (without 8BITMIME, RFC 6152, a body must be 7-bit)",
                )
            )
        if self._check_bad:
            table = self._table
            pos = data.find(_NUL_ONLY) if table is None else data.translate(table).find(_BAD)
            if pos >= 0:
                what = "NUL" if data[pos] == 0 else f"control character 0x{data[pos]:02x}"
                found.append((pos, f"{what} is not allowed in the message body"))
        limit = self._max_line
        if limit is not None:
            marks = data.translate(_BREAKS_TABLE)
            first = marks.find(b"\n")
            if first < 0:
                first = len(marks)
            pos = -1
            if self._line_len + first > limit:
                # The octet that makes the unfinished line one too long.
                pos = limit - self._line_len
            else:
                start = marks.find(bytes([_OK]) * (limit + 1), first)
                if start >= 0:
                    pos = start + limit
            if pos >= 0:
                found.append(
                    (
                        pos,
                        f"line longer than {limit} octets (RFC 5322 2.1.1, RFC 5321 4.5.3.1.6)",
                    )
                )
        if self._strict:
            if (m := _BARE_CR.search(data)) is not None:
                found.append((m.start(), _BARE_CR_REASON))
            if (m := _BARE_LF.search(data)) is not None:
                found.append((m.start(), "bare LF (RFC 5321 2.3.8) in strict mode"))
        if not found:  # pragma: no cover - the slow checks cover the fast ones
            raise MessageContentError(f"message body refused at body offset {base}")
        pos, reason = min(found, key=lambda item: item[0])
        raise MessageContentError(f"{reason}, at body offset {base + pos}")


def _split_limit(data: bytes) -> int:
    # At most one piece per 64 octets on average: beyond that, replace() wins.
    return 16 + (len(data) >> 6)


def _stuff_dots(text: bytes) -> bytes:
    """Doubles the dot after every CRLF in canonical `text`."""
    # A regex split + join is 2x faster than bytes.replace() while dot lines
    # are sparse, but makes one object per match; maxsplit bounds that, and
    # dense dots (the split then stops early) fall back to replace(), which is
    # 5x faster there.
    if b"\r\n." not in text:
        return text  # the usual body: no line starts with a dot
    limit = _split_limit(text)
    parts = _DOT_LINE.split(text, limit)
    if len(parts) <= limit:
        return b"\r\n..".join(parts)
    return text.replace(b"\r\n.", b"\r\n..")


_BARE_CR_REASON = "bare CR (RFC 5321 2.3.8) in strict mode"


def _bare_cr_error(offset: int) -> MessageContentError:
    return MessageContentError(f"{_BARE_CR_REASON}, at body offset {offset}")


def _check_limit(value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInputError("max_line_length", "must be a positive int or None", value)


def _as_bytes(value: object, field: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidInputError(field, "must be bytes", type(value).__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyInfo:
    """What :func:`scan_body` found in a complete body.

    Attributes:
        has_8bit: an octet >= 0x80 is present (needs 8BITMIME, RFC 6152).
        has_bare_line_endings: a CR not followed by LF, or an LF not preceded
            by CR, is present (a trailing CR counts as bare).
        has_nul: a NUL octet is present.
        has_controls: an octet the default control rule refuses is present:
            NUL or a C0 control other than HT, LF, CR, FF and ESC.
        longest_line: octets in the longest line, without its line ending
            (a bare CR, a bare LF and CRLF each end a line) and before
            dot-stuffing.
        over_limit: ``longest_line`` is over the ``max_line_length`` given
            (always False for None).
        canonical_size: octets after CRLF canonicalisation, including the
            final CRLF added to a body that lacks one, before dot-stuffing:
            the value for ``SIZE=`` (RFC 1870) and the ``BDAT`` total.
    """

    has_8bit: bool
    has_bare_line_endings: bool
    has_nul: bool
    has_controls: bool
    longest_line: int
    over_limit: bool
    canonical_size: int

    def __post_init__(self) -> None:
        if self.longest_line < 0:
            raise InvalidInputError("longest_line", "must not be negative", self.longest_line)
        if self.canonical_size < 0:
            raise InvalidInputError("canonical_size", "must not be negative", self.canonical_size)
        if self.has_nul and not self.has_controls:
            raise InvalidInputError("has_controls", "NUL is a refused control", False)


def scan_body(data: bytes, *, max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH) -> BodyInfo:
    """Inspect a complete body before sending it.

    This lets a session refuse a body (8-bit data without 8BITMIME, a long
    line, a bare line ending in strict mode, a size over the server's SIZE)
    with a typed error before MAIL is sent. It agrees with
    :class:`BodyEncoder`: ``canonical_size`` is the length of its ``BDAT``
    output for the same body.

    Args:
        data: the whole body.
        max_line_length: the limit for ``over_limit``; None skips that check.

    Returns:
        The findings.

    Raises:
        InvalidInputError: ``data`` is not bytes-like or the limit is invalid.
    """
    body = data if type(data) is bytes else _as_bytes(data, "message body")
    if max_line_length is not DEFAULT_MAX_LINE_LENGTH:
        _check_limit(max_line_length)
    # bytes.splitlines() breaks at exactly the canonical line boundaries
    # (CRLF, bare CR, bare LF), so the canonical body is its lines each
    # followed by CRLF. Slices cut just after an LF keep every line, and
    # every CRLF, whole, and keep the work in the CPU cache.
    # A refused control is found by translating a slice with _MARK_REFUSED
    # and comparing: several times faster than a regular expression search,
    # at the cost of one slice-sized copy at a time.
    longest = chars = lines = 0
    start, size = 0, len(body)
    controls = False
    if size <= _SLICE:
        # One slice: no need to cut the body.
        lengths = list(map(len, body.splitlines()))
        if lengths:
            longest, chars, lines = max(lengths), sum(lengths), len(lengths)
        controls = body.translate(_MARK_REFUSED) != body
        start = size
    while start < size:
        end = body.find(b"\n", start + _SLICE)
        end = size if end < 0 else end + 1
        piece = body[start:end]
        lengths = list(map(len, piece.splitlines()))
        if lengths:
            longest = max(longest, max(lengths))
            chars += sum(lengths)
            lines += len(lengths)
        controls = controls or piece.translate(_MARK_REFUSED) != piece
        start = end
    canonical_size = chars + 2 * lines
    # Each bare CR or bare LF grows by one octet as it becomes CRLF, and a
    # last line without an ending gains a CRLF.
    added = 2 if body and body[-1] not in (_CR, _LF) else 0
    # Built without BodyInfo's checks of values given to it: these hold by
    # construction (a NUL is one of the refused controls).
    return _body_info(
        not body.isascii(),
        canonical_size > size + added,
        controls and b"\x00" in body,
        controls,
        longest,
        max_line_length is not None and longest > max_line_length,
        canonical_size,
    )


# Each field set through its slot (smtpcore._slots): half the cost of the
# frozen dataclass's own __init__.
_BODY_INFO_SETTERS = slot_setters(
    BodyInfo,
    "has_8bit",
    "has_bare_line_endings",
    "has_nul",
    "has_controls",
    "longest_line",
    "over_limit",
    "canonical_size",
)


def _body_info(
    has_8bit: bool,
    has_bare_line_endings: bool,
    has_nul: bool,
    has_controls: bool,
    longest_line: int,
    over_limit: bool,
    canonical_size: int,
) -> BodyInfo:
    """``BodyInfo(...)`` with every field given, built field by field."""
    info: BodyInfo = object.__new__(BodyInfo)
    s8, sbare, snul, sctl, slong, sover, ssize = _BODY_INFO_SETTERS
    s8(info, has_8bit)
    sbare(info, has_bare_line_endings)
    snul(info, has_nul)
    sctl(info, has_controls)
    slong(info, longest_line)
    sover(info, over_limit)
    ssize(info, canonical_size)
    return info


def encode_scanned(
    data: bytes, info: BodyInfo, mode: EncodeMode, *, terminator: bool = True
) -> bytes:
    """The wire form of a whole in-memory body that :func:`scan_body` found
    acceptable: exactly what ``BodyEncoder(mode=mode)`` fed ``data`` at once
    would return (``feed`` then ``end``), in fewer passes. With
    ``terminator=False`` the DATA form comes without its final ``.CRLF``
    (and a body that needs no change is returned as it is, uncopied).

    No content check is made here: the caller has already refused what
    ``info`` reports (NUL, controls, 8-bit data, long lines, bare line endings
    in strict mode), as :class:`BodyEncoder` would. The session uses it for
    in-memory messages; streamed bodies go through :class:`BodyEncoder`.
    """
    if mode is _MODE_BINARY:
        return data
    if info.has_bare_line_endings:
        # RFC 5321 2.3.8: bare CRs and LFs become CRLF. The encoder has the
        # fast ways to do that; the checks it makes again cost little.
        encoder = BodyEncoder(mode=mode, allow_controls=True, max_line_length=None)
        wire = encoder.feed(data) + encoder.end()
        return wire if terminator or mode is not _MODE_DATA else wire[:-3]
    out = data
    if out and out[-1] != _LF:
        # RFC 5321 4.1.1.4: the data ends with CRLF before the terminator.
        out += b"\r\n"
    if mode is _MODE_BDAT:
        return out
    # RFC 5321 4.5.2: a leading period is doubled on every line, the first
    # included; then the terminator.
    out = _stuff_dots(out)
    if out[:1] == b".":
        out = b"." + out
    return out + b".\r\n" if terminator else out


# ---------------------------------------------------------------------------
# Message inputs


def to_bytes_message(
    message: bytes | str | email.message.Message,
    *,
    smtputf8: bool = False,
) -> bytes:
    """Turn a message given in any supported form into bytes.

    * ``bytes`` (or another bytes-like object) is returned as is.
    * ``str`` is encoded as UTF-8.
    * An :class:`email.message.Message` (``EmailMessage`` included) is
      serialised with :class:`email.generator.BytesGenerator` and CRLF line
      endings, without its ``Bcc`` and ``Resent-Bcc`` headers, as
      :meth:`smtplib.SMTP.send_message` does. The caller's object is not
      changed. Messages with a modern policy use that policy with
      ``linesep="\\r\\n"`` and ``utf8=smtputf8`` (for the default policy this is
      :data:`email.policy.SMTP` or :data:`email.policy.SMTPUTF8`); legacy
      ``compat32`` messages keep their policy with CRLF line endings, since
      that policy cannot write raw UTF-8 headers.

    Args:
        message: the message.
        smtputf8: the server accepted SMTPUTF8 for this transaction (RFC 6531),
            so headers may be written as raw UTF-8 instead of RFC 2047
            encoded words.

    Returns:
        The message octets (not yet canonicalised or dot-stuffed).

    Raises:
        InvalidInputError: unsupported type, a ``str`` with lone surrogates,
            or a message the email package cannot serialise.
    """
    if isinstance(message, (bytes, bytearray, memoryview)):
        return _as_bytes(message, "message")
    if isinstance(message, str):
        try:
            return message.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                "message", f"lone surrogate at index {exc.start} cannot be encoded as UTF-8"
            ) from exc
    message_class = _email_message_class()
    if message_class is not None and isinstance(message, message_class):
        return _flatten(message, smtputf8=smtputf8)
    raise InvalidInputError(
        "message", "must be bytes, str or email.message.Message", type(message).__name__
    )


def _flatten(message: email.message.Message, *, smtputf8: bool) -> bytes:
    import email.errors
    import email.generator
    import email.policy

    # The generator sets a boundary on any multipart part that lacks one,
    # which would change the caller's object: copy deeply in that case only,
    # since a deep copy duplicates every attachment.
    if any(part.is_multipart() and part.get_boundary() is None for part in message.walk()):
        msg = copy.deepcopy(message)
    else:
        msg = copy.copy(message)
    # RFC 5322 3.6.3: Bcc recipients must not see the Bcc field. `del`
    # rebinds the copy's header list, so the original keeps its headers.
    del msg["Bcc"]
    del msg["Resent-Bcc"]
    policy = msg.policy
    if isinstance(policy, email.policy.EmailPolicy):
        policy = policy.clone(linesep="\r\n", utf8=smtputf8)
    else:
        policy = policy.clone(linesep="\r\n")
    buffer = io.BytesIO()
    # mangle_from_ is an mbox convention (">From "); it has no place on SMTP.
    generator = email.generator.BytesGenerator(buffer, mangle_from_=False, policy=policy)
    try:
        generator.flatten(msg, linesep="\r\n")
    except (
        email.errors.MessageError,
        UnicodeError,
        LookupError,
        ValueError,
        TypeError,
        AttributeError,
    ) as exc:
        raise InvalidInputError(
            "message", f"cannot be serialised ({type(exc).__name__}: {exc})"
        ) from exc
    return buffer.getvalue()


def envelope_from_message(message: email.message.Message) -> tuple[str, list[str]]:
    """Derive the envelope sender and recipients from a message's headers.

    The rules are those of :meth:`smtplib.SMTP.send_message`: if the message
    has one ``Resent-Date`` header, the ``Resent-`` fields are used; the sender
    comes from ``Sender`` if present, else from the first address of ``From``;
    the recipients from ``To``, ``Cc`` and ``Bcc``. Unlike smtplib, every
    occurrence of a recipient field counts (not only the first), empty groups
    (such as ``undisclosed-recipients:;``) give no address, and exact
    duplicates are listed once.

    Unlike smtplib, each header used is read strictly, as an RFC 5322 3.4
    address list, with the email package's header registry: a header that is
    not one is refused as a whole, never read as some list of addresses. A
    display name holding an unquoted ``@`` (``billing@victim.test
    <b@rcpt.test>``) is the case that matters: :func:`email.utils.getaddresses`
    makes two recipients of it, one taken from the display name. Obsolete
    syntax (RFC 5322 4) and UTF-8 (RFC 6532) are accepted.

    Args:
        message: the message.

    Returns:
        ``(sender, recipients)``.

    Raises:
        InvalidInputError: more than one ``Resent-`` block, no sender address,
            no recipient address, or a header used that is not a well-formed
            address list (the error names the header).
    """
    message_class = _email_message_class()
    if message_class is None or not isinstance(message, message_class):
        raise InvalidInputError(
            "message", "must be an email.message.Message", type(message).__name__
        )

    # RFC 5322 3.6.6: each resending adds a block of Resent- fields, and
    # Resent-Date is mandatory in a block. With several blocks there is no
    # reliable way to tell which is the latest, so, like smtplib, refuse.
    resent = message.get_all("Resent-Date")
    if resent is None:
        prefix = ""
    elif len(resent) == 1:
        prefix = "Resent-"
    else:
        raise InvalidInputError("message", "has more than one block of Resent- headers")

    # RFC 5322 3.6.2: Sender names the mailbox responsible for sending when it
    # differs from the author(s) in From.
    if f"{prefix}Sender" in message:
        senders = _header_addresses(message, f"{prefix}Sender", "sender")
        if len(senders) > 1:
            # RFC 5322 3.6.2: sender = "Sender:" mailbox CRLF; one, not a list.
            raise InvalidInputError(
                f"{prefix}Sender header",
                f"holds {len(senders)} addresses; it names one mailbox (RFC 5322 3.6.2)",
            )
    else:
        senders = _header_addresses(message, f"{prefix}From", "sender")
    if not senders:
        raise InvalidInputError(
            "sender", f"message has no address in {prefix}Sender or {prefix}From"
        )

    recipients: list[str] = []
    seen: set[str] = set()
    for name in ("To", "Cc", "Bcc"):
        for addr in _header_addresses(message, f"{prefix}{name}", "recipient"):
            if addr not in seen:
                seen.add(addr)
                recipients.append(addr)
    if not recipients:
        raise InvalidInputError(
            "recipients", f"message has no address in {prefix}To, {prefix}Cc or {prefix}Bcc"
        )
    return senders[0], recipients


# RFC 5322 2.2.3: "Unfolding is accomplished by simply removing any CRLF that
# is immediately followed by WSP." A parsed message may keep bare LF or CR.
_FOLD = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")


def _header_addresses(message: email.message.Message, name: str, role: str) -> list[str]:
    """Every address of every ``name`` header, each header read strictly."""
    wanted = name.lower()
    addresses: list[str] = []
    for key, value in message.raw_items():
        if key.lower() == wanted:
            addresses.extend(_parse_address_header(name, value, role))
    return addresses


def _parse_address_header(name: str, value: object, role: str) -> list[str]:
    """The addresses of one address-list header, or InvalidInputError.

    An ``EmailMessage`` holds the header as the registry parsed it when it was
    set; anything else (raw text from a parser, a legacy message's string or
    :class:`email.header.Header`) is parsed here, the same way.
    """
    import email.errors
    import email.headerregistry
    import email.policy

    field = f"{name} header"
    not_taken = f"no {role} is taken from it"
    header: object = value
    # A registry header is a str, but of the addresses as parsed, which would
    # hide what went wrong; only raw text is worth showing.
    shown: str | None = None
    if not isinstance(value, email.headerregistry.AddressHeader):
        shown = str(value)
        text = _header_text(shown, field, not_taken)
        try:
            header = email.policy.default.header_factory(name, text)
        except Exception as exc:
            # The stdlib parser raises IndexError, AttributeError and others
            # on some malformed lists ("b@", nested groups): all mean the same.
            raise InvalidInputError(
                field,
                f"not an RFC 5322 address list (the email parser fails: {exc!r}); {not_taken}",
                shown,
            ) from exc
    # A registry header is a kind (AddressHeader, which holds the groups) mixed
    # with BaseHeader (which holds the defects); the stubs cannot say both.
    parsed = header if isinstance(header, email.headerregistry.BaseHeader) else None
    address_list = header if isinstance(header, email.headerregistry.AddressHeader) else None
    if parsed is None or address_list is None:
        raise InvalidInputError(field, f"not parsed as an address list; {not_taken}", shown)
    for defect in parsed.defects:
        # RFC 5322 4: obsolete syntax "MUST be accepted and parsed"; RFC 6532
        # 3.2 allows a UTF-8 local part (the session then asks for SMTPUTF8).
        # Anything else is a list the parser had to guess at, such as an
        # unquoted "@" in a display name: "invalid address in address-list".
        if not isinstance(
            defect, (email.errors.ObsoleteHeaderDefect, email.errors.NonASCIILocalPartDefect)
        ):
            raise InvalidInputError(
                field, f"not an RFC 5322 address list ({defect}); {not_taken}", shown
            )
    addresses: list[str] = []
    for group in address_list.groups:
        for address in group.addresses:
            # RFC 5322 3.4.1: addr-spec = local-part "@" domain, neither empty.
            # A null path ("<>") has no place in a header.
            if not address.username or not address.domain:
                raise InvalidInputError(
                    field,
                    f"holds an empty address, or one without a local part or domain; {not_taken}",
                    shown,
                )
            addresses.append(address.addr_spec)
    return addresses


def _header_text(text: str, field: str, not_taken: str) -> str:
    """Unfold a header value and turn its raw octets back into UTF-8 text."""
    text = _FOLD.sub("", text)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A parser keeps octets of a raw header as surrogate escapes; RFC 6532
        # 3.2 allows them when they are UTF-8, and only then.
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8")
        except UnicodeError:
            raise InvalidInputError(
                field, f"holds octets that are not UTF-8 (RFC 6532 3.2); {not_taken}", None
            ) from None
    return text
