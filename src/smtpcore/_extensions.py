"""EHLO capabilities: the server's keywords parsed into one typed, frozen value.

Theory of operation
-------------------
RFC 5321 4.1.1.1 defines the positive reply to EHLO as::

    ehlo-ok-rsp  = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
                   / ( "250-" Domain [ SP ehlo-greet ] CRLF
                       *( "250-" ehlo-line CRLF )
                       "250" SP ehlo-line CRLF )
    ehlo-line    = ehlo-keyword *( SP ehlo-param )
    ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    ehlo-param   = 1*(%d33-126)

:meth:`Capabilities.from_ehlo` takes the domain from the first line, splits
every other line into an upper-cased keyword and its params, records them all
in :attr:`Capabilities.keywords`, and hands the params of each keyword it
knows to the one small parser registered for it in ``_PARSERS``. A parser
only writes into a builder dict; the dict becomes the frozen value at the end.
Supporting a new extension is one function and one table row.

Leniency
--------
The EHLO reply is the server's business and its mistakes must not stop a
delivery, so nothing in here raises on what the server sent:

* A line that does not fit the grammar (non-ASCII, control characters, an
  empty line, a keyword that starts with ``-``) is ignored as a whole.
  Spaces and tabs around and between tokens are tolerated.
* ``_`` is accepted inside a keyword although the grammar has no room for it:
  Exim announces ``PIPE_CONNECT``, and a caller may want to see that with
  :meth:`Capabilities.has`. No typed field comes from such a keyword.
* The old ``AUTH=LOGIN PLAIN`` form (pre-RFC 2554 Netscape/Outlook/Exchange)
  is read as ``AUTH`` with the params ``LOGIN PLAIN``; both forms land under
  the one keyword ``AUTH``.
* A keyword with a bad value is still recorded, and its typed field takes the
  safe reading (see ``_parse_size`` and ``_parse_auth``). Parameters given to
  a keyword that defines none (``PIPELINING foo``) are ignored: the keyword
  alone is what advertises the extension.
* A keyword seen twice contributes twice: ``AUTH`` lists are united, the
  smallest fixed ``SIZE`` wins, and ``keywords`` keeps the params of every
  occurrence in order, without duplicates.

Bounds
------
The reply parser already bounds a reply (``DEFAULT_MAX_LINES`` lines of at
most ``DEFAULT_MAX_LINE_LENGTH`` octets). A :class:`Reply` built by hand is
not bounded, so lines past those limits are ignored here too. Every line is
scanned a constant number of times and duplicate params are removed with
dicts, so the work is linear in the size of the reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypedDict, final

from ._errors import InvalidInputError
from ._replies import DEFAULT_MAX_LINE_LENGTH, DEFAULT_MAX_LINES, Reply

__all__ = ["MAX_SIZE", "Capabilities"]

#: The largest SIZE limit taken as a number. RFC 1870 3 lets the server send
#: any number of digits; a limit beyond what a signed 64-bit integer holds
#: (what Postfix, Exim and most clients store it in) cannot be a real
#: constraint, so it is read as "no fixed maximum" instead of being clamped to
#: a number the server never said.
MAX_SIZE = 2**63 - 1
_MAX_SIZE_DIGITS = len(str(MAX_SIZE))

# RFC 5321 4.1.1.1: an ehlo-line is made of printable US-ASCII tokens
# (%d33-126) separated by SP; HTAB is tolerated as a separator too.
_LINE_OCTETS = re.compile(rb"[\t -~]*")
# RFC 5321 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"),
# plus "_" for Exim's PIPE_CONNECT (see the module docstring). Matched after
# upper-casing, which is safe because keywords are case-insensitive.
_KEYWORD = re.compile(r"[A-Z0-9][A-Z0-9_-]*")
# RFC 5321 4.1.1.1: ehlo-param = 1*(%d33-126).
_PARAM = re.compile(r"[!-~]+")
# RFC 4422 3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT /
# HYPHEN / UNDERSCORE.
_SASL_MECH = re.compile(r"[A-Z0-9_-]{1,20}")
# RFC 1870 3: size-param ::= [1*DIGIT]. ASCII digits only: str.isdigit()
# would also take "²" and other Unicode digits.
_DIGITS = re.compile(r"[0-9]+")
# RFC 5321 4.1.1.1: the first line is Domain [ SP ehlo-greet ].
_WORD_SEPARATOR = re.compile(rb"[ \t]")

_Params = tuple[str, ...]


@final
class _KeywordTable(Mapping[str, _Params]):
    """A read-only, hashable mapping of keyword to params, in server order.

    ``types.MappingProxyType`` is read-only but neither hashable nor
    picklable, which would make :class:`Capabilities` unhashable; this small
    mapping is all three. Equality is that of any mapping (order-insensitive),
    and the hash agrees with it.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, _Params]] = ()) -> None:
        self._items: dict[str, _Params] = dict(items)

    def __getitem__(self, key: str) -> _Params:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[type[_KeywordTable], tuple[tuple[tuple[str, _Params], ...]]]:
        return (_KeywordTable, (tuple(self._items.items()),))


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What the server said it can do, in its reply to EHLO (or HELO).

    Every field defaults to "not offered", so ``Capabilities()`` describes a
    server about which nothing is known. The typed fields are what the rest
    of smtpcore acts on; :attr:`keywords` is the raw record for everything
    else (``VRFY``, ``ETRN``, ``X-EXPS``...).

    Attributes:
        pipelining: RFC 2920 PIPELINING.
        size: RFC 1870 fixed maximum message size in octets, or None when the
            server gave none (no SIZE, ``SIZE``, ``SIZE 0``, or a value that
            is not a number of at most :data:`MAX_SIZE`).
        size_supported: RFC 1870 SIZE was announced, so ``SIZE=`` may be
            given to MAIL, whatever its value.
        eightbitmime: RFC 6152 8BITMIME.
        smtputf8: RFC 6531 SMTPUTF8.
        starttls: RFC 3207 STARTTLS.
        auth: RFC 4954 AUTH mechanisms, upper-cased; names that are not an
            RFC 4422 sasl-mech are dropped.
        dsn: RFC 3461 DSN.
        enhancedstatuscodes: RFC 2034 ENHANCEDSTATUSCODES.
        chunking: RFC 3030 CHUNKING (BDAT).
        binarymime: RFC 3030 BINARYMIME; only True together with
            ``chunking``, as BINARYMIME bodies can only be sent with BDAT.
        requiretls: RFC 8689 REQUIRETLS.
        keywords: every keyword that fitted the grammar, upper-cased, mapped
            to its params as sent, in the server's order. A read-only mapping
            that is hashable and picklable (any mapping given to the
            constructor is copied into one).
        domain: the first word of the first line (the server's name for
            itself), decoded as UTF-8 with ``surrogateescape`` so that no
            octet is lost; may be empty.
        esmtp: False when the session fell back to HELO, which announces no
            extensions; every extension field must then be at its default.
    """

    pipelining: bool = False
    size: int | None = None
    size_supported: bool = False
    eightbitmime: bool = False
    smtputf8: bool = False
    starttls: bool = False
    auth: frozenset[str] = frozenset()
    dsn: bool = False
    enhancedstatuscodes: bool = False
    chunking: bool = False
    binarymime: bool = False
    requiretls: bool = False
    keywords: Mapping[str, _Params] = field(default_factory=_KeywordTable)
    domain: str = ""
    esmtp: bool = False

    def __post_init__(self) -> None:
        for name in (*_FLAGS, "size_supported", "esmtp"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"Capabilities.{name}", "must be a bool")
        if self.size is not None:
            if type(self.size) is not int or not 0 < self.size <= MAX_SIZE:
                raise InvalidInputError(
                    "Capabilities.size", f"must be None or an int in 1..{MAX_SIZE}", self.size
                )
            if not self.size_supported:
                raise InvalidInputError("Capabilities.size", "a size needs size_supported=True")
        if not isinstance(self.auth, frozenset):
            raise InvalidInputError("Capabilities.auth", "must be a frozenset", self.auth)
        for mech in self.auth:
            # RFC 4422 3.1: sasl-mech is 1 to 20 upper-case letters, digits,
            # hyphens and underscores.
            if not isinstance(mech, str) or _SASL_MECH.fullmatch(mech) is None:
                raise InvalidInputError("Capabilities.auth", "not a SASL mechanism name", mech)
        # RFC 3030 3: BINARYMIME can only be used with BDAT, i.e. CHUNKING.
        if self.binarymime and not self.chunking:
            raise InvalidInputError("Capabilities.binarymime", "needs chunking=True")
        if not isinstance(self.domain, str):
            raise InvalidInputError("Capabilities.domain", "must be a str", self.domain)
        object.__setattr__(self, "keywords", _validated_keywords(self.keywords))
        # RFC 5321 4.1.1.1: only EHLO announces extensions; a HELO session
        # has none.
        if not self.esmtp and (
            self.keywords or self.auth or self.size_supported or any(_flag_values(self))
        ):
            raise InvalidInputError("Capabilities.esmtp", "a HELO session has no extensions")

    @classmethod
    def from_ehlo(cls, reply: Reply) -> Capabilities:
        """Parse the positive reply to EHLO.

        Never raises for anything the server put in the lines: what cannot be
        understood is ignored (see the module docstring for the exact rules).

        Args:
            reply: the complete reply to EHLO. Its first line is the server's
                domain and greeting; every further line is one ehlo-line.

        Returns:
            The capabilities, with ``esmtp=True``.

        Raises:
            InvalidInputError: ``reply`` is not a 2yz reply; a negative reply
                to EHLO announces nothing and means "fall back to HELO".
        """
        _check_positive(reply, "EHLO")
        found: _Found = {}
        seen: dict[str, dict[str, None]] = {}
        for line in reply.lines[1:DEFAULT_MAX_LINES]:
            parsed = _split_line(line)
            if parsed is None:
                continue
            keyword, params = parsed
            # dict.fromkeys keeps the first position of each param and drops
            # repeats in linear time.
            seen.setdefault(keyword, {}).update(dict.fromkeys(params))
            parser = _PARSERS.get(keyword)
            if parser is not None:
                parser(found, params)
        # RFC 3030 3: BINARYMIME can only be used with BDAT; without CHUNKING
        # the server offers nothing a client could use.
        if not found.get("chunking", False):
            found.pop("binarymime", None)
        return cls(
            **found,
            keywords=_KeywordTable((k, tuple(v)) for k, v in seen.items()),
            domain=_domain(reply),
            esmtp=True,
        )

    @classmethod
    def helo(cls, reply: Reply) -> Capabilities:
        """The capabilities of a session that fell back to HELO: none.

        Args:
            reply: the positive reply to HELO; only its domain is kept.

        Returns:
            The capabilities, with ``esmtp=False`` and no extension.

        Raises:
            InvalidInputError: ``reply`` is not a 2yz reply.
        """
        _check_positive(reply, "HELO")
        return cls(domain=_domain(reply), esmtp=False)

    def has(self, keyword: str) -> bool:
        """True if the server announced ``keyword`` (case-insensitive)."""
        return self.params(keyword) is not None

    def params(self, keyword: str) -> tuple[str, ...] | None:
        """The params announced with ``keyword`` (case-insensitive), or None
        if the server did not announce it. ``()`` means announced bare."""
        # RFC 5321 2.4: keywords are case-insensitive. Only ASCII is folded:
        # str.upper() would turn "ß" into "SS" and match a keyword the caller
        # never named.
        if not keyword.isascii():
            return None
        return self.keywords.get(keyword.upper())


# -- the keyword parsers -------------------------------------------------------


class _Found(TypedDict, total=False):
    """The builder dict the keyword parsers write into."""

    pipelining: bool
    size: int | None
    size_supported: bool
    eightbitmime: bool
    smtputf8: bool
    starttls: bool
    auth: frozenset[str]
    dsn: bool
    enhancedstatuscodes: bool
    chunking: bool
    binarymime: bool
    requiretls: bool


_Flag = Literal[
    "pipelining",
    "eightbitmime",
    "smtputf8",
    "starttls",
    "dsn",
    "enhancedstatuscodes",
    "chunking",
    "binarymime",
    "requiretls",
]
_FLAGS: tuple[_Flag, ...] = (
    "pipelining",
    "eightbitmime",
    "smtputf8",
    "starttls",
    "dsn",
    "enhancedstatuscodes",
    "chunking",
    "binarymime",
    "requiretls",
)
_Parser = Callable[[_Found, _Params], None]


def _flag(name: _Flag) -> _Parser:
    """A parser for an extension that the keyword alone announces."""

    def parse(found: _Found, params: _Params) -> None:
        # The extensions read this way define no EHLO params. Unexpected ones
        # are ignored rather than taken as "not offered": refusing STARTTLS
        # because of a stray token would downgrade the session.
        del params
        found[name] = True

    return parse


def _parse_size(found: _Found, params: _Params) -> None:
    # RFC 1870 4: the SIZE keyword alone announces the extension; its one
    # optional param is the fixed maximum, and 0 or no param means none.
    found["size_supported"] = True
    limit = _size_limit(params)
    if limit is None:
        return
    # A server that announces SIZE twice has two limits in mind, and only
    # the smaller one is safe to plan with. Taking the smallest also makes
    # the result independent of the order of the lines.
    current = found.get("size")
    found["size"] = limit if current is None else min(current, limit)


def _size_limit(params: _Params) -> int | None:
    # RFC 1870 3: size-param ::= [1*DIGIT], at most one of them. Anything
    # else ("abc", "-5", "1.5", "10 20") tells nothing about the limit, but
    # the keyword still says the server takes SIZE= on MAIL, so the extension
    # stays supported with no known maximum; the server still enforces its
    # real limit with 552 (RFC 1870 6.1).
    if len(params) != 1 or _DIGITS.fullmatch(params[0]) is None:
        return None
    digits = params[0].lstrip("0")
    # RFC 1870 3: "A parameter value of 0 (zero) indicates that no fixed
    # maximum message size is in force." The digit count is checked before
    # int() so that a hostile number costs nothing to reject.
    if not digits or len(digits) > _MAX_SIZE_DIGITS:
        return None
    value = int(digits)
    return value if value <= MAX_SIZE else None


def _parse_auth(found: _Found, params: _Params) -> None:
    # RFC 4954 3: the AUTH keyword is followed by the supported SASL
    # mechanisms. RFC 4422 3.1: a mechanism name is 1-20 of [A-Z0-9-_];
    # servers that send lower case are forgiven, anything else is dropped.
    mechs = {p.upper() for p in params}
    valid = frozenset(m for m in mechs if _SASL_MECH.fullmatch(m) is not None)
    found["auth"] = found.get("auth", frozenset()) | valid


#: Keyword (upper case) -> parser. Keywords not in here are only recorded in
#: Capabilities.keywords.
_PARSERS: Mapping[str, _Parser] = MappingProxyType(
    {
        "PIPELINING": _flag("pipelining"),  # RFC 2920
        "SIZE": _parse_size,  # RFC 1870
        "8BITMIME": _flag("eightbitmime"),  # RFC 6152
        "SMTPUTF8": _flag("smtputf8"),  # RFC 6531
        "STARTTLS": _flag("starttls"),  # RFC 3207
        "AUTH": _parse_auth,  # RFC 4954
        "DSN": _flag("dsn"),  # RFC 3461
        "ENHANCEDSTATUSCODES": _flag("enhancedstatuscodes"),  # RFC 2034
        "CHUNKING": _flag("chunking"),  # RFC 3030
        "BINARYMIME": _flag("binarymime"),  # RFC 3030
        "REQUIRETLS": _flag("requiretls"),  # RFC 8689
    }
)


# -- helpers -------------------------------------------------------------------


def _split_line(line: bytes) -> tuple[str, _Params] | None:
    """Split one ehlo-line into its upper-cased keyword and its params, or
    return None when the line does not fit the grammar."""
    # The reply parser never produces a longer line; a hand-built Reply might.
    if len(line) > DEFAULT_MAX_LINE_LENGTH:
        return None
    # RFC 5321 4.1.1.1: keyword and params are printable US-ASCII separated
    # by SP. A line with anything else (controls, DEL, 8-bit octets) is not
    # an ehlo-line at all, so none of it is trusted.
    if _LINE_OCTETS.fullmatch(line) is None:
        return None
    # Only SP and HTAB are left as whitespace, so split() splits on exactly
    # those and tolerates runs of them.
    tokens = line.decode("ascii").split()
    if not tokens:
        return None
    first, params = tokens[0], tuple(tokens[1:])
    keyword = first.upper()
    if keyword.startswith("AUTH="):
        # The pre-RFC 2554 form "AUTH=LOGIN PLAIN" (old Netscape, Outlook and
        # Exchange servers) puts the first mechanism after "=".
        keyword = "AUTH"
        if first[5:]:
            params = (first[5:], *params)
    if _KEYWORD.fullmatch(keyword) is None:
        return None
    return keyword, params


def _domain(reply: Reply) -> str:
    first = reply.lines[0]
    if len(first) > DEFAULT_MAX_LINE_LENGTH:
        return ""
    # The first word, whatever it contains: the greeting after it is free
    # text. Lossless: undecodable octets become lone surrogates, never an
    # error.
    word = _WORD_SEPARATOR.split(first.lstrip(b" \t"), maxsplit=1)[0]
    return word.decode("utf-8", "surrogateescape")


def _check_positive(reply: Reply, command: str) -> None:
    # RFC 5321 4.1.1.1: only a 250 reply to EHLO/HELO carries the domain and
    # the extensions; any other 2yz is taken the same way, and the state
    # machine decides whether it is acceptable at all.
    if not reply.is_positive:
        raise InvalidInputError(
            f"{command} reply", "a negative reply announces no capabilities", reply.code
        )


def _flag_values(caps: Capabilities) -> Iterator[bool]:
    return (getattr(caps, name) for name in _FLAGS)


def _validated_keywords(keywords: Mapping[str, _Params]) -> _KeywordTable:
    if not isinstance(keywords, Mapping):
        raise InvalidInputError("Capabilities.keywords", "must be a mapping", keywords)
    for keyword, params in keywords.items():
        # RFC 5321 4.1.1.1 (plus "_", see the module docstring); stored
        # upper-cased so that lookups can fold case once.
        if not isinstance(keyword, str) or _KEYWORD.fullmatch(keyword) is None:
            raise InvalidInputError("Capabilities.keywords", "not an upper-case keyword", keyword)
        if not isinstance(params, tuple) or not all(
            isinstance(p, str) and _PARAM.fullmatch(p) is not None for p in params
        ):
            raise InvalidInputError(
                "Capabilities.keywords", f"params of {keyword} must be a tuple of ehlo-params"
            )
    if isinstance(keywords, _KeywordTable):
        return keywords
    return _KeywordTable(keywords.items())
