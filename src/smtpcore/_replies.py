"""Server replies: the value type and the incremental, bounded reply parser.

Theory of operation
-------------------
RFC 5321 4.2 defines a reply as one or more lines::

    Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
                     Reply-code [ SP textstring ] CRLF
    Reply-code     = %x32-35 %x30-35 %x30-39

Every line of one reply carries the same code; all but the last put ``-``
after it. :class:`ReplyParser` takes bytes in any chunking and hands out
complete :class:`Reply` values in order. It never buffers more than
``max_line_length`` octets of an unfinished line nor more than
``max_reply_size`` octets of an unfinished reply, and it scans every input
octet a bounded number of times, so parsing cost is linear in the input
however it is split.

Line endings
------------
RFC 5321 2.3.8: lines end with CRLF, and only CRLF. A bare LF or a bare CR
inside a reply line is refused with :class:`RemoteProtocolError`. Being lenient
here is what made response-smuggling and injection attacks possible: a client
and a middlebox that disagree on where a line ends disagree on which reply
answers which command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NoReturn

from ._errors import InvalidInputError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_LINES",
    "DEFAULT_MAX_REPLY_SIZE",
    "Reply",
    "ReplyParser",
]

#: RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including the code
#: and CRLF. Real servers exceed it (long EHLO lines, verbose 5xx texts), so
#: the default is twice that; a hostile server cannot make us buffer more.
DEFAULT_MAX_LINE_LENGTH = 1024
#: Lines in one multi-line reply. Large EHLO lists have ~30 lines.
DEFAULT_MAX_LINES = 100
#: Octets in one reply, all lines together.
DEFAULT_MAX_REPLY_SIZE = 64 * 1024

# RFC 3463 2: status-code = class "." subject "." detail, with class = "2" /
# "4" / "5", subject = 1*3digit and detail = 1*3digit, and "Each numeric
# sub-code within the status-code MUST be expressed without leading zero
# digits": a sub-code is "0" or a non-zero digit and up to two more. RFC 2034
# 4: in a reply the code is followed by SP (or ends the text). Text that
# breaks any of these rules ("2.01.0") is not an enhanced code: it stays text.
_SUB_CODE = "(?:0|[1-9][0-9]{0,2})"
_ENHANCED = re.compile(rf"([245])\.{_SUB_CODE}\.{_SUB_CODE}(?: |$)".encode("ascii"))
_ENHANCED_CODE = re.compile(rf"[245]\.{_SUB_CODE}\.{_SUB_CODE}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One complete server reply.

    Attributes:
        code: the three-digit reply code (200-599).
        lines: the text of each line, after the code and its separator,
            without CRLF, as the server sent it (bytes, never decoded).
        enhanced_code: the RFC 3463 enhanced status code (``"2.1.0"``) when
            the first line starts with one whose class matches the code.
    """

    code: int
    lines: tuple[bytes, ...] = (b"",)
    enhanced_code: str | None = field(default=None)

    def __post_init__(self) -> None:
        # RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39
        if not 200 <= self.code <= 559 or self.code % 100 >= 60:
            raise InvalidInputError("reply code", "not a valid SMTP reply code", self.code)
        if not self.lines:
            raise InvalidInputError("reply lines", "a reply has at least one line")
        # RFC 3463 2 and 3.1: class "." subject "." detail, and the class repeats
        # the first digit of the reply code.
        if self.enhanced_code is not None and (
            _ENHANCED_CODE.fullmatch(self.enhanced_code) is None
            or self.enhanced_code[0] != str(self.code)[0]
        ):
            raise InvalidInputError(
                "enhanced status code", "malformed or not of the reply's class", self.enhanced_code
            )

    @classmethod
    def build(cls, code: int, *lines: bytes | str) -> Reply:
        """Build a reply from its code and texts, finding the enhanced code
        the way the parser does. Handy in tests and for scripted servers."""
        try:
            # surrogateescape: the inverse of how `text` decodes, so that
            # build(r.code, *r.text.split("\n")) == r.
            raw = tuple(
                line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
                for line in lines
            ) or (b"",)
        except UnicodeEncodeError as exc:
            raise InvalidInputError("reply text", "cannot be encoded as UTF-8") from exc
        return cls(code=code, lines=raw, enhanced_code=_find_enhanced(code, raw[0]))

    # -- classification (RFC 5321 4.2.1) -------------------------------------

    @property
    def is_positive(self) -> bool:
        """2yz: positive completion."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3yz: positive intermediate (354 to DATA, 334 to AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4yz: transient negative completion."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5yz: permanent negative completion."""
        return self.code >= 500

    # -- views ---------------------------------------------------------------

    @property
    def text(self) -> str:
        """All lines joined by ``\\n``, decoded as UTF-8 losslessly.

        Undecodable octets become lone surrogates (``surrogateescape``), so
        ``text.encode("utf-8", "surrogateescape")`` gives back the bytes and no
        UnicodeDecodeError can ever come out of here.
        """
        return b"\n".join(self.lines).decode("utf-8", "surrogateescape")

    @property
    def message(self) -> str:
        """Like :attr:`text`, with the leading enhanced code removed from each line."""
        if self.enhanced_code is None:
            return self.text
        prefix = self.enhanced_code.encode()
        out = []
        n = len(prefix)
        for line in self.lines:
            # RFC 2034 3: the code is followed by SP; "2.1.05" is not "2.1.0".
            if line.startswith(prefix) and line[n : n + 1] in (b"", b" "):
                line = line[n + 1 :]
            out.append(line)
        return b"\n".join(out).decode("utf-8", "surrogateescape")

    def describe(self) -> str:
        """One printable line: code, enhanced code and text, with control
        characters and undecodable octets escaped (safe for a terminal)."""
        return printable(f"{self.code} " + " / ".join(self.text.split("\n")))

    def to_bytes(self) -> bytes:
        """The reply in wire form (what a server would send)."""
        code = str(self.code).encode()
        last = len(self.lines) - 1
        out = bytearray()
        for i, line in enumerate(self.lines):
            # RFC 5321 2.3.8: CR and LF only end lines; one inside a line would
            # make the peer read extra lines, or a second reply (smuggling).
            if b"\r" in line or b"\n" in line:
                raise InvalidInputError("reply line", "contains CR or LF", line)
            out += code
            if i < last:
                out += b"-"
            elif line:
                out += b" "
            out += line + b"\r\n"
        return bytes(out)


def _find_enhanced(code: int, first_line: bytes) -> str | None:
    # RFC 3463 3.1: the class of the enhanced code repeats the first digit of
    # the reply code; a text that merely looks like one (e.g. "4.2.0" in a
    # 250 reply) is kept as text.
    m = _ENHANCED.match(first_line)
    if m is None or m.group(1)[0] != 0x30 + code // 100:
        return None
    return m.group(0).rstrip(b" ").decode("ascii")


def printable(text: str) -> str:
    """Escape what a terminal or a log line should not be given raw, so that
    server text cannot run escape sequences or disguise itself: every
    character Python does not call printable (the space is), i.e. controls
    (C0, DEL, C1), format characters (bidi overrides such as U+202E,
    zero-width characters), lone surrogates, line and paragraph separators,
    other spaces, private-use and unassigned code points. Undecodable octets
    (``surrogateescape``) show as ``\\xNN``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable octet (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


class ReplyParser:
    """Incremental parser: bytes in (any chunking), :class:`Reply` values out.

    Only incomplete input is buffered, and never beyond the limits: the tail
    after the last complete line is at most ``max_line_length`` octets, and an
    unfinished multi-line reply at most ``max_lines`` lines and
    ``max_reply_size`` octets. Exceeding one raises :class:`RemoteProtocolError`
    and releases the buffer. After any error the parser stays broken.
    """

    __slots__ = (
        "_buf",
        "_cached",
        "_code",
        "_error",
        "_lines",
        "_overflow",
        "_pos",
        "_reply_size",
        "_scan",
        "_tail",
        "max_line_length",
        "max_lines",
        "max_reply_size",
    )

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_lines: int = DEFAULT_MAX_LINES,
        max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
    ) -> None:
        if max_line_length < 6 or max_lines < 1 or max_reply_size < max_line_length:
            raise InvalidInputError(
                "reply limits",
                "need max_line_length >= 6, max_lines >= 1, max_reply_size >= max_line_length",
            )
        self.max_line_length = max_line_length
        self._cached = max_line_length >= _CACHED_LINE_MAX
        self.max_lines = max_lines
        self.max_reply_size = max_reply_size
        self._buf = bytearray()
        self._pos = 0  # start of the first unconsumed line in _buf
        self._scan = 0  # where to resume looking for LF: everything before has none
        self._code = 0  # code of the reply being assembled, 0 when none
        self._lines: list[bytes] = []
        self._reply_size = 0
        self._tail = 0  # octets after the last LF received
        self._overflow = False  # the unfinished line is over the limit
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Octets received and not yet handed out as part of a reply."""
        return len(self._buf) - self._pos + self._reply_size

    @property
    def in_reply(self) -> bool:
        """True while part of a reply (a fragment or some lines) is buffered."""
        return self.buffered > 0

    def feed(self, data: bytes) -> None:
        """Add received bytes.

        An unfinished line longer than the line limit is an error. When
        complete lines precede it in the buffer they are still handed out
        first (so the outcome does not depend on how the input was split) and
        :meth:`next_reply` raises on reaching it; otherwise ``feed`` raises at
        once. Either way the excess is dropped on arrival: the buffer never
        holds more than one line's worth of an unfinished line.
        """
        if self._error is not None:
            raise self._error
        if self._overflow:
            # The caller fed more without draining the replies before the
            # over-long line: the error is due now.
            self._fail(f"reply line longer than {self.max_line_length} octets without CRLF")
        if not data:
            return
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = self._scan = 0
        self._buf += data
        # Only the new data needs scanning to know the unfinished line's length.
        last_lf = data.rfind(b"\n")
        self._tail = len(data) - last_lf - 1 if last_lf >= 0 else self._tail + len(data)
        if self._tail > self.max_line_length:
            # RFC 5321 4.5.3.1.5: reply lines are bounded; see max_line_length.
            if len(self._buf) - self._pos == self._tail:
                self._fail(f"reply line longer than {self.max_line_length} octets without CRLF")
            keep = len(self._buf) - self._tail + self.max_line_length
            del self._buf[keep:]
            self._tail = self.max_line_length
            self._overflow = True

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or None if more bytes are needed."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        while True:
            lf = buf.find(b"\n", self._scan)
            if lf < 0:
                self._scan = len(buf)
                if self._overflow or len(buf) - self._pos > self.max_line_length:
                    self._fail(f"reply line longer than {self.max_line_length} octets")
                return None
            line = bytes(buf[self._pos : lf + 1])
            self._pos = self._scan = lf + 1
            # Servers repeat the same short replies ("250 2.1.5 Ok"): one that
            # was parsed and checked before is handed out again (replies are
            # immutable), which makes pipelined streams cheap to parse.
            # (Not for a parser whose line limit is below the cached lines'.)
            reply = _REPLY_CACHE.get(line) if self._cached and not self._lines else None
            if reply is None:
                reply = self._line(line)
            if self._pos > 4096 and self._pos * 2 > len(buf):
                del buf[: self._pos]
                self._pos = self._scan = 0
            if reply is not None:
                return reply

    def _line(self, line: bytes) -> Reply | None:
        # RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including the
        # code and CRLF; we allow max_line_length (see the module docstring).
        if len(line) > self.max_line_length:
            self._fail(f"reply line longer than {self.max_line_length} octets")
        # RFC 5321 2.3.8: lines end with CRLF and only CRLF; a bare CR or LF
        # anywhere in a reply line is a protocol violation.
        if len(line) < 2 or line[-2] != 0x0D:
            self._fail(f"reply line ends with a bare LF: {_excerpt(line)}")
        if b"\r" in line[:-2]:
            self._fail(f"reply line contains a bare CR: {_excerpt(line)}")
        # RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39
        if (
            len(line) < 5
            or not 0x32 <= line[0] <= 0x35
            or not 0x30 <= line[1] <= 0x35
            or not 0x30 <= line[2] <= 0x39
        ):
            self._fail(f"malformed reply code: {_excerpt(line)}")
        code = (line[0] - 0x30) * 100 + (line[1] - 0x30) * 10 + (line[2] - 0x30)
        # RFC 5321 4.2: the code is followed by "-" (more lines follow), SP and
        # text, or CRLF directly (a bare code is a legal last line).
        sep = line[3]
        if sep == 0x0D:
            text, more = b"", False
        elif sep == 0x20:
            text, more = line[4:-2], False
        elif sep == 0x2D:
            text, more = line[4:-2], True
        else:
            self._fail(f"reply code not followed by SP, '-' or CRLF: {_excerpt(line)}")
        # RFC 5321 4.2.1: every line of a multi-line reply carries the same code.
        if self._lines and code != self._code:
            self._fail(f"multi-line reply changes code from {self._code} to {code}")
        self._code = code
        self._lines.append(text)
        self._reply_size += len(line)
        if len(self._lines) > self.max_lines:
            self._fail(f"reply has more than {self.max_lines} lines")
        if self._reply_size > self.max_reply_size:
            self._fail(f"reply larger than {self.max_reply_size} octets")
        if more:
            return None
        lines = tuple(self._lines)
        self._lines = []
        self._reply_size = 0
        self._code = 0
        reply = Reply(code=code, lines=lines, enhanced_code=_find_enhanced(code, lines[0]))
        if len(lines) == 1 and len(line) <= _CACHED_LINE_MAX and len(_REPLY_CACHE) < _CACHE_SIZE:
            _REPLY_CACHE[line] = reply
        return reply

    def _fail(self, message: str) -> NoReturn:
        self._error = RemoteProtocolError(message)
        # Release everything buffered: the connection is unusable anyway.
        self._buf = bytearray()
        self._pos = self._scan = self._tail = 0
        self._lines = []
        self._reply_size = 0
        raise self._error


# Single-line replies already parsed, keyed by their exact wire line. Bounded
# in entries and line length; filled first come, never evicted, so a hostile
# server can only fill it with harmless, valid replies.
_CACHE_SIZE = 256
_CACHED_LINE_MAX = 128
_REPLY_CACHE: dict[bytes, Reply] = {}


def _excerpt(line: bytes, limit: int = 40) -> str:
    shown = line[:limit].decode("utf-8", "surrogateescape")
    return repr(printable(shown) + ("..." if len(line) > limit else ""))
