"""Keeping SASL secrets out of logs, transcripts, reprs and exceptions.

Theory of operation
-------------------
The client never prints a secret itself (commands redact their SASL data, see
``Auth.transcript``), but a server may echo one back: a ``535`` that quotes
the AUTH line it refused, a ``334`` that repeats the base64 it was sent, a
JSON error holding the bearer token. Anything built from such a reply (its
``describe()``, an exception message, a transcript line, a DEBUG log of an
event) would then carry the secret. A :class:`Redactor` is the one place that
knows what the session sent and hides it, in every encoding it could come
back in.

The session registers each secret as the client sent it, raw (what a SASL
mechanism's :meth:`~smtpcore._auth.SASLMechanism.secrets` returns), with
:meth:`Redactor.add`. From each the redactor derives the forms worth hiding:

* verbatim forms: the octets themselves (UTF-8 text for a password), their
  hex, percent-encoding (RFC 3986 2.1) and xtext (RFC 3461 4), and the
  escaped forms Python and JSON give them (``repr``, ``printable``, JSON with
  and without ``\\/``);
* encoded forms: base64 (RFC 4648 4) and base64url (RFC 4648 5). A secret
  inside a larger message (the password inside PLAIN's ``\\0user\\0pass``, a
  token inside an XOAUTH2 response) is base64-encoded at one of three
  alignments, and at each alignment the characters that depend on the secret
  alone form a fixed "core". Every core is registered, so the secret is found
  in the base64 of any message holding it, and a match of an encoded form is
  widened to the whole run of base64 characters around it: the neighbouring
  characters hold a few bits of the secret, and the rest of the run is the
  message the secret came in.

The length rule: a secret shorter than :data:`MIN_FORM_LENGTH` characters
is not hidden verbatim (nor in hex, percent-encoding or an escaped form of
it), and no form shorter than that is hidden at all. A one- to
three-character password would otherwise scrub ``"ok"``, ``"250"`` and half
the words of every log, and a password that short is guessed faster than it
is read from a log. Its base64 with padding (four characters at least) is
still hidden, and so is any message holding it (PLAIN's, for one).

Every occurrence is replaced by :data:`MARKER`, overlapping ones included. In
a multi-line reply the lines are also searched as one text (the enhanced
status code and its space taken off each line), so a secret a server wrapped
over two lines is found too.

Error messages show bounded excerpts of what a server sent, cut off with
``...``; :meth:`Redactor.error` also hides the start of a form (four
characters or more) cut off there, since no whole form is left to find.

Not covered: base64 re-wrapped *inside* one line (with spaces or other
separators between the pieces) unless a piece holds a whole core; other
encodings (quoted-printable, base32, UTF-16, a different Unicode
normalization of the password than the one sent); a secret truncated other
than at ``...`` or at the end of an error message, or folded into something
else (hashed, case-changed). The redactor keeps the forms it hides, and the
reply parser its cache of short replies as received, in memory: neither is
a log.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import operator
import re
import urllib.parse
from collections.abc import Container, Iterable, Sequence
from typing import AnyStr, Final, TypeVar, final

from ._replies import Reply, printable

__all__ = ["MARKER", "MIN_FORM_LENGTH", "Redactor", "secret_forms"]

#: What replaces a secret, in every form. The same text commands show in
#: place of SASL data (``AUTH PLAIN <redacted>``).
MARKER: Final = "<redacted>"
_MARKER_BYTES: Final = MARKER.encode("ascii")

#: Forms shorter than this (in characters) are not hidden: see the module
#: docstring.
MIN_FORM_LENGTH: Final = 4

# RFC 4648 4 and 5: the base64 and base64url alphabets. A run of these
# characters, then "=" padding, is what an encoded match widens to.
_RUN_TEXT: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
_RUN_BYTES: Final = _RUN_TEXT.encode("ascii")

# How far error() follows __cause__ / __context__.
_MAX_CHAIN = 16

_E = TypeVar("_E", bound=BaseException)


def _cores(encoded: Sequence[str], secret: bytes) -> Iterable[str]:
    """The base64 characters that depend on ``secret`` alone, at each of the
    three alignments it can have inside a longer message.

    ``encoded[k]`` is the unpadded encoding of ``k`` zero octets followed by
    the secret. Its 6-bit character ``j`` covers bits ``6j`` to ``6j + 5``;
    the secret covers bits ``8k`` to ``8(k + n)``, so the characters wholly
    inside it are ``ceil(8k / 6)`` up to ``floor(8(k + n) / 6)``.
    """
    n = len(secret)
    for k, text in enumerate(encoded):
        yield text[-(-8 * k // 6) : 8 * (k + n) // 6]


def secret_forms(secret: bytes) -> tuple[frozenset[str], frozenset[str]]:
    """Every form of ``secret`` worth hiding, as text.

    Args:
        secret: the secret as the client sent it (before base64).

    Returns:
        ``(verbatim, encoded)``: forms to hide where they stand, and base64
        forms whose surrounding run of base64 characters is hidden with them.
        Forms shorter than :data:`MIN_FORM_LENGTH` are left out.
    """
    # surrogateescape: the same decoding as Reply.text, so a secret that is
    # not UTF-8 is still found in a reply's text.
    text = secret.decode("utf-8", "surrogateescape")
    percent = urllib.parse.quote_from_bytes(secret, safe="")
    verbatim = {
        text,
        printable(text),
        repr(text)[1:-1],
        repr(secret)[2:-1],
        json.dumps(text)[1:-1],
        json.dumps(text)[1:-1].replace("/", "\\/"),
        json.dumps(text, ensure_ascii=False)[1:-1],
        secret.hex(),
        secret.hex().upper(),
        # RFC 3986 2.1: percent-encoding; upper-case hex digits are
        # recommended, lower-case ones are equivalent.
        percent,
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), percent),
        urllib.parse.quote_plus(secret, safe=""),
        # RFC 3461 4: xtext = *( xchar / hexchar ); xchar is "!" to "~"
        # except "+" and "=", hexchar is "+" and two upper-case hex digits.
        "".join(
            chr(b) if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D) else f"+{b:02X}" for b in secret
        ),
    }
    encoded: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded.add(encode(secret).decode("ascii"))
        aligned = [encode(bytes(k) + secret).decode("ascii").rstrip("=") for k in range(3)]
        encoded.update(_cores(aligned, secret))
    # The length rule: a secret shorter than MIN_FORM_LENGTH characters is
    # not hidden verbatim, however it is escaped ("\\x1f" is still the
    # one-character secret, shown), only in base64.
    if len(text) < MIN_FORM_LENGTH:
        verbatim.clear()
    return (
        frozenset(f for f in verbatim - encoded if len(f) >= MIN_FORM_LENGTH),
        frozenset(f for f in encoded if len(f) >= MIN_FORM_LENGTH),
    )


def _trie(forms: Iterable[str]) -> str:
    """A regular expression matching exactly ``forms``, the longest first.

    Written as a trie (forms sharing a prefix share its branch), so the regex
    engine tests each position against the first characters once instead of
    against every form in turn: several times faster than a plain
    alternation with a few dozen forms, and it is run on every reply. For a
    bytes pattern, give the forms decoded as Latin-1 and encode the result
    as Latin-1.
    """

    def emit(group: list[str]) -> str:
        # ``group`` is sorted and holds distinct strings, perhaps "".
        branches = []
        for _, same_first in itertools.groupby(filter(None, group), key=operator.itemgetter(0)):
            members = list(same_first)
            prefix = _common_prefix(members[0], members[-1])
            branches.append(re.escape(prefix) + emit([m[len(prefix) :] for m in members]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # Greedy: the longer forms are tried before the one that ends here.
        return f"(?:{body})?" if "" in group else body

    return emit(sorted(set(forms)))


def _common_prefix(first: str, last: str) -> str:
    """The common prefix of the first and last of sorted strings, which is
    that of all of them; by bisection, comparing slices."""
    low, high = 0, min(len(first), len(last))
    while low < high:
        middle = (low + high + 1) // 2
        if first[:middle] == last[:middle]:
            low = middle
        else:
            high = middle - 1
    return first[:low]


def _spans(
    pattern: re.Pattern[AnyStr],
    encoded: Container[AnyStr],
    data: AnyStr,
    starts: Sequence[int],
    ends: Sequence[int],
) -> list[tuple[int, int]]:
    """Where ``data`` holds a secret, as sorted, merged ``(start, end)`` spans.

    ``pattern`` is a lookahead around the trie of every form, so it matches
    (empty) at every position where a form starts, overlaps included.
    ``starts`` and ``ends`` delimit the lines ``data`` was joined from: an
    encoded match widens to its base64 run but not past the line where it
    starts or the one where it ends. A match inside a marker already there
    (a password such as ``"dact"``) is left alone, so scrubbing twice
    changes nothing.
    """
    run, pad, marker = _syntax(data)
    inside = _occurrences(data, marker)
    found: list[tuple[int, int]] = []
    for match in pattern.finditer(data):
        a, b = match.start(), match.end(1)
        if any(m <= a and b <= m + len(marker) for m in inside):
            continue
        if match.group(1) in encoded:
            low = starts[bisect.bisect_right(starts, a) - 1]
            while a > low and data[a - 1 : a] in run:
                a -= 1
            high = ends[bisect.bisect_right(starts, b - 1) - 1]
            while b < high and data[b : b + 1] in run:
                b += 1
            while b < high and data[b : b + 1] == pad:
                b += 1
        found.append((a, b))
    return _merge(found)


def _syntax(data: AnyStr) -> tuple[AnyStr, AnyStr, AnyStr]:
    """The base64 run characters, the pad and the marker, in ``data``'s type."""
    if isinstance(data, str):
        return _RUN_TEXT, "=", MARKER
    return _RUN_BYTES, b"=", _MARKER_BYTES


def _occurrences(data: AnyStr, needle: AnyStr) -> list[int]:
    found = []
    at = data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def _replace(data: AnyStr, spans: Iterable[tuple[int, int]], marker: AnyStr) -> AnyStr:
    pieces: list[AnyStr] = []
    last = 0
    for a, b in spans:
        pieces += (data[last:a], marker)
        last = b
    pieces.append(data[last:])
    return marker[:0].join(pieces)


@final
class Redactor:
    """Hides registered secrets, in every encoding, from bytes, text,
    replies and exceptions.

    Empty until :meth:`add` is called, and then cheap: a reply, text or
    exception without a secret comes back as the same object, after one
    regular-expression search per line.
    """

    __slots__ = (
        "_all_bytes",
        "_bytes_trie",
        "_encoded_bytes",
        "_encoded_text",
        "_find_bytes",
        "_forms",
        "_text",
        "active",
    )

    def __init__(self) -> None:
        self._forms: dict[str, bool] = {}  # form -> is it an encoded form
        self._encoded_text: frozenset[str] = frozenset()
        self._encoded_bytes: frozenset[bytes] = frozenset()
        # The search run on every reply, compiled by add(). The rest is
        # compiled when first needed: most sessions never find a secret, and
        # never scrub text.
        self._find_bytes: re.Pattern[bytes] | None = None
        self._bytes_trie = b""
        self._all_bytes: re.Pattern[bytes] | None = None
        self._text: tuple[re.Pattern[str], re.Pattern[str]] | None = None
        #: True once a secret with a form long enough to hide was added (an
        #: attribute, not a property: the session reads it for every reply).
        self.active = False

    def __repr__(self) -> str:
        return f"<Redactor: {len(self._forms)} form(s) hidden>"

    def add(self, *secrets: bytes) -> None:
        """Register secrets, as the client sent them (before base64).

        Adding a secret again, or one whose forms are all shorter than
        :data:`MIN_FORM_LENGTH`, changes nothing.

        Raises:
            TypeError: a secret is not bytes (its value is not shown).
        """
        changed = False
        for secret in secrets:
            if not isinstance(secret, (bytes, bytearray, memoryview)):
                raise TypeError(f"a secret must be bytes, not {type(secret).__name__}")
            verbatim, encoded = secret_forms(bytes(secret))
            for form in verbatim:
                if form not in self._forms:
                    self._forms[form] = False
                    changed = True
            for form in encoded:
                if not self._forms.get(form):
                    self._forms[form] = True
                    changed = True
        if changed:
            self._compile()

    def _compile(self) -> None:
        raw: list[str] = []
        for form in self._forms:
            # Every form comes from surrogateescape-decoded octets or is
            # printable text, so it encodes back; one that did not would
            # still be hidden in text.
            try:
                raw.append(form.encode("utf-8", "surrogateescape").decode("latin-1"))
            except UnicodeEncodeError:
                continue
        self._encoded_text = frozenset(f for f, enc in self._forms.items() if enc)
        self._encoded_bytes = frozenset(f.encode("ascii") for f in self._encoded_text)
        self._bytes_trie = _trie(raw).encode("latin-1")
        self._find_bytes = re.compile(self._bytes_trie)
        self.active = True
        self._all_bytes = None
        self._text = None

    def _every_bytes(self) -> re.Pattern[bytes]:
        # A lookahead matches (empty) at every position where a form starts,
        # so finditer sees overlapping occurrences too.
        if self._all_bytes is None:
            self._all_bytes = re.compile(b"(?=(" + self._bytes_trie + b"))")
        return self._all_bytes

    def _text_patterns(self) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """The search and the every-occurrence patterns for text."""
        if self._text is None:
            trie = _trie(self._forms)
            self._text = (re.compile(trie), re.compile(f"(?=({trie}))"))
        return self._text

    # -- plain data ------------------------------------------------------------

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` with every registered secret replaced by :data:`MARKER`;
        ``data`` itself when it holds none."""
        find = self._find_bytes
        if find is None or find.search(data) is None:
            return data
        spans = self._byte_spans(data)
        return _replace(data, spans, _MARKER_BYTES) if spans else data

    def scrub_text(self, text: str, *, truncated: bool = False) -> str:
        """``text`` with every registered secret replaced by :data:`MARKER`;
        ``text`` itself when it holds none.

        Args:
            text: the text to scrub.
            truncated: the text may hold excerpts cut short (error messages
                show at most so many octets of what a server sent, then
                ``...``). Then the start of a secret's form, four characters
                or more, just before ``...`` or at the end of the text is
                hidden too: the rest of the secret was cut off, so no full
                form is there to find. Slower; meant for exceptions.
        """
        if self._find_bytes is None:
            return text
        find, every = self._text_patterns()
        spans: list[tuple[int, int]] = []
        if find.search(text) is not None:
            spans = _spans(every, self._encoded_text, text, (0,), (len(text),))
        if truncated:
            spans = _merge(spans + self._cut_spans(text))
        return _replace(text, spans, MARKER) if spans else text

    def _cut_spans(self, text: str) -> list[tuple[int, int]]:
        """Spans of the forms cut short at each ``...`` and at the end of
        ``text`` (a closing quote may come between: ``b'AGJv...'``)."""
        ends = {len(text)}
        for at in _occurrences(text, "..."):
            ends.add(at)
        for end in list(ends):
            if text[end - 1 : end] in ("'", '"'):
                ends.add(end - 1)
        longest = max(map(len, self._forms))
        markers = _occurrences(text, MARKER)
        found: list[tuple[int, int]] = []
        for end in ends:
            window_start = max(0, end - longest)
            window = text[window_start:end]
            for form, encoded in self._forms.items():
                start = _cut_form(window, form)
                if start is None:
                    continue
                a = window_start + start
                if any(m <= a and end <= m + len(MARKER) for m in markers):
                    continue  # inside a marker already there
                if encoded:
                    while a > 0 and text[a - 1 : a] in _RUN_TEXT:
                        a -= 1
                found.append((a, end))
        return found

    def _byte_spans(
        self, data: bytes, starts: Sequence[int] = (0,), ends: Sequence[int] | None = None
    ) -> list[tuple[int, int]]:
        bounds = (len(data),) if ends is None else ends
        return _spans(self._every_bytes(), self._encoded_bytes, data, starts, bounds)

    # -- replies ---------------------------------------------------------------

    def reply(self, reply: Reply) -> Reply:
        """``reply`` with every registered secret in its lines replaced by
        :data:`MARKER`.

        Returns the same object when there is nothing to hide (the common
        case: one search per line, nothing allocated for a one-line reply).
        Otherwise a new, valid :class:`Reply` with the same code; its enhanced
        status code is found again from the new first line, so a secret that
        overlapped it cannot survive there.

        Use the result for logs, transcripts, events and errors only: a SASL
        challenge must be decoded from the reply as received.
        """
        find = self._find_bytes
        if find is None:
            return reply
        lines = reply.lines
        if len(lines) == 1:
            if find.search(lines[0]) is None:
                return reply
            cuts = [self._byte_spans(lines[0])]
        else:
            cuts = self._multiline_spans(find, reply)
        if not any(cuts):
            return reply
        new = tuple(
            _replace(line, spans, _MARKER_BYTES) if spans else line
            for line, spans in zip(lines, cuts, strict=True)
        )
        return Reply.build(reply.code, *new)

    def _multiline_spans(
        self, find: re.Pattern[bytes], reply: Reply
    ) -> list[list[tuple[int, int]]]:
        """Per line, the spans to hide: those found in each line, and those
        found when the lines are searched as one text (a secret wrapped over
        two lines)."""
        lines = reply.lines
        cuts = [self._byte_spans(line) if find.search(line) else [] for line in lines]
        # RFC 3463 2 / RFC 2034 3: each line may repeat the enhanced code and
        # a space before its text; a wrapped secret is split after them.
        prefix = b"" if reply.enhanced_code is None else reply.enhanced_code.encode("ascii")
        skips = [_prefix_length(line, prefix) for line in lines]
        bodies = [line[skip:] for line, skip in zip(lines, skips, strict=True)]
        joined = b"".join(bodies)
        if find.search(joined) is None:
            return cuts
        starts: list[int] = []
        ends: list[int] = []
        offset = 0
        for body in bodies:
            starts.append(offset)
            offset += len(body)
            ends.append(offset)
        for a, b in self._byte_spans(joined, starts, ends):
            for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
                if start < b and end > a:
                    skip = skips[i]
                    cuts[i].append((max(a, start) - start + skip, min(b, end) - start + skip))
        return [_merge(spans) for spans in cuts]

    # -- exceptions --------------------------------------------------------------

    def error(self, exc: _E) -> _E:
        """Hide registered secrets in ``exc`` and the exceptions chained to it,
        in place, and return it.

        Scrubbed: string and bytes arguments (what ``str`` and ``repr``
        show), a ``reply`` attribute holding a :class:`Reply`, and a
        ``replies`` mapping of them (``RecipientsRefusedError``).
        """
        if self._find_bytes is None:
            return exc
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
            seen.add(id(current))
            self._scrub_exception(current)
            current = current.__cause__ or current.__context__
        return exc

    def _scrub_exception(self, exc: BaseException) -> None:
        # The replies first: a message built from a reply (its describe() or
        # text) gets the scrubbed reply's instead, which hides a secret the
        # server wrapped over lines, where the message's " / " between the
        # lines keeps scrub_text from seeing it whole.
        shown: list[tuple[str, str]] = []
        reply = getattr(exc, "reply", None)
        if isinstance(reply, Reply):
            clean = self.reply(reply)
            if clean is not reply:
                exc.reply = clean  # type: ignore[attr-defined]
                shown += _renderings(reply, clean)
        replies = getattr(exc, "replies", None)
        if isinstance(replies, dict):
            for key, value in replies.items():
                if isinstance(value, Reply):
                    clean = self.reply(value)
                    if clean is not value:
                        replies[key] = clean
                        shown += _renderings(value, clean)
        args = tuple(self._scrub_arg(arg, shown) for arg in exc.args)
        if any(new is not old for new, old in zip(args, exc.args, strict=True)):
            exc.args = args

    def _scrub_arg(self, arg: object, shown: list[tuple[str, str]]) -> object:
        if isinstance(arg, bytes):
            return self.scrub_bytes(arg)
        if not isinstance(arg, str):
            return arg
        text = arg
        for raw, clean in shown:
            text = text.replace(raw, clean)
        text = self.scrub_text(text, truncated=True)
        return arg if text == arg else text


def _renderings(reply: Reply, clean: Reply) -> list[tuple[str, str]]:
    """How an error message may show ``reply``, paired with how it shows
    ``clean``; longest first, so the description goes before the text in it."""
    return [(reply.describe(), clean.describe()), (reply.text, clean.text)]


def _cut_form(window: str, form: str) -> int | None:
    """Where in ``window`` a tail of at least :data:`MIN_FORM_LENGTH`
    characters starts that is the beginning of ``form`` (the earliest, so the
    longest), or None."""
    head = form[:MIN_FORM_LENGTH]
    at = window.find(head)
    while at >= 0:
        if form.startswith(window[at:]):
            return at
        at = window.find(head, at + 1)
    return None


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _prefix_length(line: bytes, code: bytes) -> int:
    """How much of ``line`` the enhanced status code ``code`` and its space
    take (0 when the line does not start with it)."""
    if not code or not line.startswith(code):
        return 0
    rest = line[len(code) : len(code) + 1]
    # RFC 2034 3: the code is followed by SP, or ends the line.
    if rest == b" ":
        return len(code) + 1
    return len(code) if not rest else 0
