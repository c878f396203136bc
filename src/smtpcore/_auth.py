"""SASL mechanisms for SMTP AUTH (RFC 4954) as pure challenge/response objects.

Theory of operation
-------------------
RFC 4954 4: the client sends ``AUTH <mechanism> [initial-response]``; the
server answers ``334 <base64 challenge>`` any number of times, the client
answers each challenge with one base64 line, and the exchange ends with 235
(success) or a 4xx/5xx reply. A line holding only ``*`` cancels it.

A mechanism here never sees SMTP or base64: it turns decoded challenges into
raw responses, and the session does the framing:

1. :func:`choose_mechanism` picks the strongest mechanism the server offers
   and the caller allows, for the kind of credentials given.
2. The session sends ``AUTH NAME`` with ``encode_response(m.initial_response())``
   when that is not ``None`` and the line fits. RFC 4954 4: if the initial
   response would make the AUTH line too long the client MUST NOT send it;
   RFC 4422 5: the server then sends an empty challenge, and every mechanism
   here answers its first, empty, challenge with its initial response. So
   :meth:`SASLMechanism.initial_response` is pure: calling it never advances
   the exchange.
3. For each 334 reply: ``encode_response(m.respond(decode_challenge(text)))``.
   An :class:`AuthenticationError` from either call means: cancel with ``*``.
4. On 235: ``m.verify_success(data)``, where ``data`` is the decoded
   additional data with success (RFC 4422 5) when
   :attr:`SASLMechanism.wants_success_data` is true and the reply carries
   some, else ``None``. Only SCRAM uses it: it refuses a success that did not
   prove the server knows the password.

Every mechanism answers at most :attr:`SASLMechanism.max_steps` challenges,
so a server looping on 334 cannot keep the client busy forever, and after its
first error a mechanism refuses to go on.

Secrets (passwords, tokens and anything derived from them) never appear in a
repr, an exception message or an exception's context. A server may still echo
one back, so each mechanism also says what to hide and what a transcript may
show:

* :meth:`SASLMechanism.secrets`: what it holds or has sent that is secret,
  for a :class:`~smtpcore._redact.Redactor` to hide in every encoding;
* :meth:`SASLMechanism.transcript_response` and
  :meth:`SASLMechanism.transcript_challenge`: what a transcript shows of a
  response it sent and of a challenge it was sent. By default a response is
  ``<redacted>`` and a challenge is shown as it came. SCRAM shows the shape
  of its messages but none of the values that make a transcript a password
  verifier (see :func:`_scram_view`).
"""

from __future__ import annotations

import abc
import binascii
import enum
import hashlib
import hmac
import json
import re
import secrets
import stringprep
import types
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, cast, final

from ._errors import AuthenticationError, ConfigurationError, InvalidInputError
from ._redact import MARKER, Redactor
from ._replies import Reply, printable

__all__ = [
    "DEFAULT_SCRAM_MAX_ITERATIONS",
    "MECHANISMS",
    "CramMD5",
    "Credentials",
    "Login",
    "OAuth2Token",
    "OAuthBearer",
    "Plain",
    "SASLMechanism",
    "ScramSHA256",
    "XOAuth2",
    "choose_mechanism",
    "decode_challenge",
    "encode_response",
    "make_mechanism",
    "saslprep",
]

#: The largest SCRAM iteration count accepted from a server. The count is the
#: server's to choose and the client pays for it in CPU, so an unbounded one
#: lets a hostile server stall the client (``i=4294967295`` is hours of
#: PBKDF2). OWASP (2023) recommends 600,000 iterations of PBKDF2-HMAC-SHA256,
#: so honest servers can go that high; one million costs about 0.4 s on a
#: current CPU. :class:`ScramSHA256` takes ``max_iterations`` to change it.
DEFAULT_SCRAM_MAX_ITERATIONS = 1_000_000

# How much of a server's text goes into an error message.
_MAX_SHOWN = 200

_REDACTED = MARKER
_REDACTED_BYTES = MARKER.encode("ascii")


# -- base64 -------------------------------------------------------------------

# RFC 4648 4: the base64 alphabet, in groups of four, with "=" padding only
# in the last group. RFC 4954 4 says challenges are base64 and nothing else,
# so no whitespace, line breaks or missing padding are accepted.
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _as_bytes(value: object, what: str) -> bytes:
    """Check that a caller gave bytes (or a bytes-like buffer)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInputError(what, "must be bytes", type(value).__name__)
    return bytes(value)


def _strict_b64decode(data: bytes) -> bytes | None:
    """Decode canonical base64, or return ``None`` when ``data`` is not that."""
    if _BASE64.fullmatch(data) is None:
        return None
    decoded = binascii.a2b_base64(data)
    # RFC 4648 3.5: the pad bits of the last group must be zero, and a decoder
    # may reject data where they are not. Doing so makes the text-to-octets
    # mapping one-to-one, so two different challenge texts are never the same
    # challenge.
    if binascii.b2a_base64(decoded, newline=False) != data:
        return None
    return decoded


def decode_challenge(text: bytes) -> bytes:
    """Decode the text of a 334 reply into the raw challenge.

    Works the same on every supported Python (``binascii``'s ``strict_mode``
    is 3.11+), by checking the text against the base64 grammar first.

    Args:
        text: the reply text after ``334 `` (without CRLF).

    Returns:
        The challenge octets; an empty text is an empty challenge.

    Raises:
        AuthenticationError: the text is not canonical base64 (RFC 4954 4:
            the client then cancels the exchange with ``*``).
        InvalidInputError: ``text`` is not bytes.
    """
    data = _as_bytes(text, "334 challenge")
    decoded = _strict_b64decode(data)
    if decoded is None:
        shown = data[:40] + (b"..." if len(data) > 40 else b"")
        raise AuthenticationError(f"malformed base64 challenge: {shown!r} ({len(data)} octets)")
    return decoded


def encode_response(data: bytes) -> bytes:
    """Encode a client response as base64, on one line, without a newline.

    Raises:
        InvalidInputError: ``data`` is not bytes.
    """
    return binascii.b2a_base64(_as_bytes(data, "SASL response"), newline=False)


# -- credentials --------------------------------------------------------------


def _check_text(value: object, field_name: str, *, secret: bool) -> str:
    """Check that ``value`` is a non-empty str that UTF-8 can encode.

    The reason never shows a secret value, and no exception is chained: a
    UnicodeEncodeError holds the whole string in its ``object`` attribute.
    """
    if not isinstance(value, str):
        raise InvalidInputError(field_name, "must be a str", type(value).__name__)
    if not value:
        raise InvalidInputError(field_name, "must not be empty")
    encodable = True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        encodable = False
    if not encodable:
        raise InvalidInputError(
            field_name, "is not encodable as UTF-8 (lone surrogate)", None if secret else value
        )
    return value


@final
@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Credentials:
    """A username and password, for the password mechanisms.

    Attributes:
        username: the authentication identity.
        password: the password; never shown in a repr.
    """

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        _check_text(self.username, "username", secret=False)
        _check_text(self.password, "password", secret=True)
        # RFC 4616 2: PLAIN separates its fields with NUL, so authcid and
        # passwd are 1*SAFE, SAFE being any UTF-8 character except NUL.
        if "\0" in self.username:
            raise InvalidInputError("username", "must not contain NUL (RFC 4616 2)", self.username)
        if "\0" in self.password:
            raise InvalidInputError("password", "must not contain NUL (RFC 4616 2)")

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password={_REDACTED})"


# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# C0 controls and DEL; %x01 separates the fields of XOAUTH2 and OAUTHBEARER.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@final
@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class OAuth2Token:
    """A username and an OAuth 2.0 bearer token, for XOAUTH2 and OAUTHBEARER.

    Attributes:
        username: the account the token is for (usually the mail address).
        token: the access token; never shown in a repr.
    """

    username: str
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        _check_text(self.username, "username", secret=False)
        _check_text(self.token, "OAuth2 token", secret=True)
        # RFC 7628 3.1: key/value pairs are separated by %x01 (kvsep), so no
        # control character may appear in a value.
        if _CONTROL.search(self.username):
            raise InvalidInputError(
                "username", "must not contain control characters", self.username
            )
        # RFC 7628 3.1 / RFC 6750 2.1: the Bearer credentials are a b64token.
        if _B64TOKEN.fullmatch(self.token) is None:
            raise InvalidInputError(
                "OAuth2 token", "is not an RFC 6750 b64token (letters, digits, -._~+/ then =)"
            )

    def __repr__(self) -> str:
        return f"OAuth2Token(username={self.username!r}, token={_REDACTED})"


# -- SASLprep -----------------------------------------------------------------

_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space characters
    stringprep.in_table_c21,  # ASCII control characters
    stringprep.in_table_c22,  # non-ASCII control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogate codes
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties or deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(
    text: str, *, allow_unassigned: bool = False, field_name: str = "string", secret: bool = False
) -> str:
    """Prepare a string with the SASLprep profile (RFC 4013) of stringprep.

    Args:
        text: the string to prepare.
        allow_unassigned: True for a "query" (RFC 3454 7: unassigned code
            points pass), False for a "stored string" (they are refused).
        field_name: what the string is, for error messages.
        secret: True to keep the offending character out of error messages.

    Returns:
        The prepared string (possibly empty).

    Raises:
        InvalidInputError: the string has a prohibited or unassigned character
            or fails the bidirectional check.
    """
    if not isinstance(cast("object", text), str):
        raise InvalidInputError(field_name, "must be a str", type(text).__name__)

    def refuse(reason: str, ch: str) -> InvalidInputError:
        shown = "" if secret else f" U+{ord(ch):04X}"
        return InvalidInputError(field_name, f"{reason}{shown} (RFC 4013)")

    # RFC 4013 2.1: the characters "commonly mapped to nothing" (B.1) are
    # removed and non-ASCII spaces (C.1.2) map to SPACE. U+200B ZERO WIDTH
    # SPACE is in both tables; removing it first, as other SASLprep
    # implementations do, keeps a zero-width character zero-width.
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    # RFC 4013 2.2: normalization form KC, from the Unicode 3.2 tables that
    # stringprep (RFC 3454) is defined against.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in prepared:
        # RFC 4013 2.3: the prohibited output, C.1.2 and C.2.1 to C.9.
        if any(table(ch) for table in _PROHIBITED):
            raise refuse("prohibited character", ch)
        # RFC 4013 2.5 / RFC 3454 7: unassigned code points are refused in
        # stored strings.
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise refuse("unassigned code point", ch)
    # RFC 4013 2.4 / RFC 3454 6: a string with any RandALCat character must
    # hold no LCat character, and must begin and end with a RandALCat one.
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise InvalidInputError(
                field_name, "mixes right-to-left and left-to-right text (RFC 3454 6)"
            )
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise InvalidInputError(
                field_name, "right-to-left text must start and end with a right-to-left character"
            )
    return prepared


# -- the mechanism interface --------------------------------------------------


class SASLMechanism(abc.ABC):
    """One SASL authentication exchange, as a pure challenge/response object.

    Instances are single-use and hold the credentials; their repr never shows
    them.

    Attributes:
        name: the registered SASL mechanism name (RFC 4422 3.1).
        strength: a rank for :func:`choose_mechanism`; higher is stronger.
        credential_type: the kind of credentials the mechanism takes.
        max_steps: the most challenges the exchange can legitimately have.
    """

    name: ClassVar[str]
    strength: ClassVar[int]
    credential_type: ClassVar[type[Credentials] | type[OAuth2Token]]
    max_steps: ClassVar[int]

    __slots__ = ("_failed", "_secret_values", "_steps")

    def __init__(self, credentials: Credentials | OAuth2Token) -> None:
        if not isinstance(credentials, self.credential_type):
            wanted = self.credential_type.__name__
            raise InvalidInputError(
                "credentials",
                f"{self.name} needs {wanted}, not {type(credentials).__name__}",
            )
        self._steps = 0
        self._failed = False
        self._secret_values: list[bytes] = []

    def __repr__(self) -> str:
        state = "failed" if self._failed else f"{self._steps} challenge(s) so far"
        return f"<{type(self).__name__} {self.name}: {state}>"

    def initial_response(self) -> bytes | None:
        """The response to send with the AUTH command, or None to wait for a
        challenge first (RFC 4954 4).

        Pure: it returns the same value on every call and does not advance the
        exchange. A session that does not send it gets it back from
        :meth:`respond` in answer to the server's first, empty, challenge.
        """
        return None

    def respond(self, challenge: bytes) -> bytes:
        """Answer one server challenge.

        Args:
            challenge: the decoded challenge (see :func:`decode_challenge`).

        Returns:
            The raw response, to be sent with :func:`encode_response`.

        Raises:
            AuthenticationError: the challenge is malformed or unexpected, the
                server proved false, or there were more than
                :attr:`max_steps` challenges. The mechanism then refuses any
                further call.
            InvalidInputError: ``challenge`` is not bytes.
        """
        challenge = _as_bytes(challenge, "SASL challenge")
        if self._failed:
            raise AuthenticationError(f"{self.name} exchange already failed")
        self._steps += 1
        if self._steps > self.max_steps:
            # RFC 4954 4 lets the server send any number of 334 challenges;
            # every mechanism here has a fixed number of steps, so one more is
            # a broken or hostile server, and the client cancels.
            self._failed = True
            raise AuthenticationError(
                f"too many challenges: {self.name} answers at most {self.max_steps}"
            )
        try:
            return self._respond(challenge)
        except AuthenticationError:
            self._failed = True
            raise

    def verify_success(self, data: bytes | None) -> None:
        """Check the server's 235 success reply.

        Args:
            data: the decoded additional data with success (RFC 4422 5), or
                None when the reply carries none.

        Raises:
            AuthenticationError: the mechanism has not seen the server prove
                itself (SCRAM), or the exchange already failed.
            InvalidInputError: ``data`` is neither bytes nor None.
        """
        if data is not None:
            data = _as_bytes(data, "SASL success data")
        if self._failed:
            raise AuthenticationError(f"{self.name} exchange already failed")
        try:
            self._verify_success(data)
        except AuthenticationError:
            self._failed = True
            raise

    @property
    def wants_success_data(self) -> bool:
        """True when the 235 reply text should be decoded and passed to
        :meth:`verify_success` (the mechanism still awaits server data)."""
        return False

    def secrets(self) -> tuple[bytes, ...]:
        """What this exchange holds or has sent that must never be shown, raw
        (before base64): the password or token, the responses that carry
        them and what is derived from them (CRAM-MD5's digest, SCRAM's proof).

        For :meth:`~smtpcore._redact.Redactor.add`. The tuple grows as the
        exchange goes on, so register it again after each :meth:`respond`;
        usernames and nonces are not in it.
        """
        return tuple(self._secret_values)

    def transcript_response(self, data: bytes) -> bytes:
        """What a transcript may show in place of a response this mechanism
        produced (the raw ``data``, not its base64), on one line.

        ``<redacted>`` unless the mechanism knows better (SCRAM).

        Raises:
            InvalidInputError: ``data`` is not bytes.
        """
        _as_bytes(data, "SASL response")
        return _REDACTED_BYTES

    def transcript_challenge(self, text: bytes) -> bytes:
        """What a transcript may show of the text of a 334 reply (or of the
        235 that ends the exchange) this mechanism was sent, on one line.

        The text as it came unless the mechanism knows better (SCRAM). Pass
        the text through :meth:`~smtpcore._redact.Redactor.reply` as well:
        this rule is about what the exchange itself reveals, not about
        secrets a server echoes.

        Raises:
            InvalidInputError: ``text`` is not bytes.
        """
        return _as_bytes(text, "SASL challenge")

    def transcript_reply(self, reply: Reply) -> Reply:
        """``reply`` with :meth:`transcript_challenge` applied to each line of
        a 334 or 2xx reply; the same object when that changes nothing."""
        if reply.code != 334 and not reply.is_positive:
            return reply
        lines = tuple(self.transcript_challenge(line) for line in reply.lines)
        if lines == reply.lines:
            return reply
        return Reply.build(reply.code, *lines)

    def _add_secrets(self, *values: bytes) -> None:
        self._secret_values.extend(v for v in values if v and v not in self._secret_values)

    @abc.abstractmethod
    def _respond(self, challenge: bytes) -> bytes:
        """Answer challenge number ``self._steps`` (1-based)."""

    def _verify_success(self, data: bytes | None) -> None:
        # RFC 4422 5: additional data with success is defined per mechanism;
        # those without any proof to check (all but SCRAM here) have nothing
        # to verify, and the 235 text is then human-readable text.
        return


# -- password mechanisms ------------------------------------------------------


@final
class Plain(SASLMechanism):
    """PLAIN (RFC 4616): authzid NUL authcid NUL passwd, as the initial response.

    Args:
        credentials: the username and password.
        authzid: the identity to act as, if not the username's own.
    """

    name = "PLAIN"
    strength = 20
    credential_type = Credentials
    max_steps = 1

    __slots__ = ("_message",)

    def __init__(self, credentials: Credentials, *, authzid: str = "") -> None:
        super().__init__(credentials)
        if not isinstance(authzid, str):
            raise InvalidInputError("authzid", "must be a str", type(authzid).__name__)
        if authzid:
            _check_text(authzid, "authzid", secret=False)
            # RFC 4616 2: authzid = 1*SAFE, SAFE excluding NUL.
            if "\0" in authzid:
                raise InvalidInputError("authzid", "must not contain NUL (RFC 4616 2)", authzid)
        # RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd.
        self._message = b"\0".join(
            s.encode("utf-8") for s in (authzid, credentials.username, credentials.password)
        )
        self._add_secrets(credentials.password.encode("utf-8"), self._message)

    def initial_response(self) -> bytes:
        return self._message

    def _respond(self, challenge: bytes) -> bytes:
        # RFC 4616 2: PLAIN has no server challenge; the only one possible is
        # the empty challenge of a server that got no initial response.
        if challenge:
            raise AuthenticationError("unexpected PLAIN challenge: PLAIN has no server challenge")
        return self._message


@final
class Login(SASLMechanism):
    """LOGIN (draft-murchison-sasl-login): the username, then the password,
    each in answer to a challenge whatever its prompt text says."""

    name = "LOGIN"
    strength = 10
    credential_type = Credentials
    # draft-murchison-sasl-login 2.1: two challenges, then the outcome.
    max_steps = 2

    __slots__ = ("_password", "_username")

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials)
        self._username = credentials.username.encode("utf-8")
        self._password = credentials.password.encode("utf-8")
        # The first response, the username, is no secret.
        self._add_secrets(self._password)

    def _respond(self, challenge: bytes) -> bytes:
        # The prompts ("Username:", "Password:") are informational and vary
        # between servers, so only their order counts.
        return self._username if self._steps == 1 else self._password


@final
class CramMD5(SASLMechanism):
    """CRAM-MD5 (RFC 2195): ``username SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"
    strength = 30
    credential_type = Credentials
    max_steps = 1

    __slots__ = ("_password", "_username")

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials)
        self._username = credentials.username.encode("utf-8")
        self._password = credentials.password.encode("utf-8")
        self._add_secrets(self._password)

    def _respond(self, challenge: bytes) -> bytes:
        # RFC 2195 2: the server always sends a challenge (a msg-id); an empty
        # one leaves nothing to prove freshness against.
        if not challenge:
            raise AuthenticationError("empty CRAM-MD5 challenge")
        available = True
        try:
            digest = hmac.new(self._password, challenge, "md5").hexdigest()
        except ValueError:
            # A FIPS-mode OpenSSL refuses MD5.
            available = False
        if not available:
            raise AuthenticationError("CRAM-MD5 needs MD5, which this Python refuses")
        # RFC 2195 2: the digest is sent as 32 lowercase hex digits after one
        # space. With the challenge, the digest lets a password be tested
        # offline, so it is a secret too.
        response = self._username + b" " + digest.encode("ascii")
        self._add_secrets(digest.encode("ascii"), response)
        return response


class _ScramState(enum.Enum):
    AWAIT_SERVER_FIRST = "await server-first-message"
    AWAIT_SERVER_FINAL = "await server-final-message"
    VERIFIED = "server signature verified"


# RFC 5802 7: printable = %x21-2B / %x2D-7E (no comma).
_PRINTABLE = re.compile(rb"[\x21-\x2b\x2d-\x7e]+")
_PRINTABLE_STR = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# RFC 5802 7: posint = %x31-39 *DIGIT. Ten digits are more than any bound.
_POSINT = re.compile(rb"[1-9][0-9]{0,9}")
# RFC 5802 7: attr-val = ALPHA "=" value, value = 1*value-char.
_EXTENSION = re.compile(rb"[A-Za-z]=[^,=]+")


def _escape_saslname(name: str) -> str:
    # RFC 5802 5.1: "=" becomes "=3D" and "," becomes "=2C" (in that order,
    # so the "=" of an escape is not escaped again).
    return name.replace("=", "=3D").replace(",", "=2C")


@final
class ScramSHA256(SASLMechanism):
    """SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.

    The server proves it knows the password too: the exchange only succeeds
    once its signature (``v=``) has verified, whether it came in a final 334
    challenge or as additional data with the 235 reply.

    Args:
        credentials: the username and password; both are prepared with
            SASLprep (RFC 4013), so a password with a prohibited or (in
            Unicode 3.2) unassigned character is refused.
        nonce: the client nonce, printable ASCII without commas; random by
            default. Fixed only in tests.
        max_iterations: the largest iteration count accepted from the server
            (see :data:`DEFAULT_SCRAM_MAX_ITERATIONS`).

    Raises:
        InvalidInputError: SASLprep refuses the username or password, or a
            parameter is invalid.
    """

    name = "SCRAM-SHA-256"
    strength = 40
    credential_type = Credentials
    # Client-first on an empty challenge, server-first, server-final.
    max_steps = 3

    __slots__ = (
        "_auth_message",
        "_client_first_bare",
        "_max_iterations",
        "_nonce",
        "_password",
        "_server_signature",
        "_state",
    )

    def __init__(
        self,
        credentials: Credentials,
        *,
        nonce: str | None = None,
        max_iterations: int = DEFAULT_SCRAM_MAX_ITERATIONS,
    ) -> None:
        super().__init__(credentials)
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
            raise InvalidInputError("max_iterations", "must be an int", max_iterations)
        if max_iterations < 1:
            raise InvalidInputError("max_iterations", "must be at least 1", max_iterations)
        if nonce is None:
            # token_urlsafe uses only [A-Za-z0-9_-], all printable.
            nonce = secrets.token_urlsafe(24)
        elif not isinstance(nonce, str) or _PRINTABLE_STR.fullmatch(nonce) is None:
            raise InvalidInputError(
                "SCRAM nonce", "must be printable ASCII without commas (RFC 5802 7)", nonce
            )
        # RFC 5802 5.1: the username is prepared as a SASLprep query string.
        # If that fails or leaves nothing, the client SHOULD abort.
        username = saslprep(
            credentials.username, allow_unassigned=True, field_name="SCRAM username"
        )
        if not username:
            raise InvalidInputError(
                "SCRAM username", "is empty after SASLprep", credentials.username
            )
        # RFC 5802 2.2: Normalize(password) is SASLprep with the password as a
        # stored string (unassigned code points prohibited).
        password = saslprep(
            credentials.password, allow_unassigned=False, field_name="SCRAM password", secret=True
        )
        if not password:
            raise InvalidInputError("SCRAM password", "is empty after SASLprep")
        self._password: bytes | None = password.encode("utf-8")
        # Both the password as given and as SASLprep made it: a server may
        # echo either.
        self._add_secrets(credentials.password.encode("utf-8"), self._password)
        self._nonce = nonce.encode("ascii")
        self._max_iterations = max_iterations
        # RFC 5802 7: client-first-message-bare = [reserved-mext ","] username
        # "," nonce ["," extensions].
        self._client_first_bare = b"n=" + _escape_saslname(username).encode("utf-8")
        self._client_first_bare += b",r=" + self._nonce
        self._auth_message = b""
        self._server_signature = b""
        self._state = _ScramState.AWAIT_SERVER_FIRST

    def initial_response(self) -> bytes:
        # RFC 5802 7: gs2-header = gs2-cbind-flag "," [authzid] ","; "n":
        # the client does not support channel binding (RFC 5802 6).
        return b"n,," + self._client_first_bare

    @property
    def wants_success_data(self) -> bool:
        return self._state is _ScramState.AWAIT_SERVER_FINAL

    def transcript_response(self, data: bytes) -> bytes:
        view = _scram_view(_as_bytes(data, "SASL response"))
        return _REDACTED_BYTES if view is None else view

    def transcript_challenge(self, text: bytes) -> bytes:
        # Word by word: a server-first or server-final message is base64 on
        # its own (RFC 4954 4), possibly after an enhanced status code in a
        # 235 reply; one sent in clear by a broken server is hidden too.
        data = _as_bytes(text, "SASL challenge")
        words = data.split(b" ")
        shown = []
        for word in words:
            decoded = _strict_b64decode(word) if word else None
            view = _scram_view(decoded) if decoded else None
            if view is None:
                view = _scram_view(word)
            shown.append(word if view is None else view)
        return b" ".join(shown) if shown != words else data

    def _respond(self, challenge: bytes) -> bytes:
        if self._state is _ScramState.AWAIT_SERVER_FIRST:
            if not challenge:
                if self._steps == 1:
                    return self.initial_response()
                raise AuthenticationError("empty SCRAM server-first-message")
            return self._client_final(challenge)
        if self._state is _ScramState.AWAIT_SERVER_FINAL:
            self._check_server_final(challenge)
            # RFC 4422 5 (and 3.6): additional data with success sent as a
            # challenge is answered with an empty response.
            return b""
        raise AuthenticationError("unexpected challenge after the SCRAM exchange finished")

    def _verify_success(self, data: bytes | None) -> None:
        if self._state is _ScramState.VERIFIED:
            # Already proved by a server-final challenge; any 235 text is
            # human-readable text then.
            return
        if self._state is _ScramState.AWAIT_SERVER_FIRST:
            raise AuthenticationError(
                "server reported success before the SCRAM exchange (no server signature)"
            )
        # RFC 5802 5: the client MUST verify the server's signature; a success
        # without it is no proof that the server knows the password.
        if data is None:
            raise AuthenticationError("server reported success without the SCRAM server signature")
        self._check_server_final(data)

    def _client_final(self, server_first: bytes) -> bytes:
        nonce, salt, iterations = self._parse_server_first(server_first)
        password = self._password
        # Cleared once used: the salted password is all that is needed next.
        assert password is not None  # only one server-first is ever parsed
        self._password = None
        # RFC 5802 3: SaltedPassword := Hi(Normalize(password), salt, i), Hi
        # being PBKDF2 with HMAC as the PRF.
        salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        # RFC 5802 7: channel-binding "c=" is base64(gs2-header), "biws" for
        # "n,,".
        without_proof = b"c=biws,r=" + nonce
        # RFC 5802 3: AuthMessage := client-first-message-bare + "," +
        #   server-first-message + "," + client-final-message-without-proof
        auth_message = b",".join((self._client_first_bare, server_first, without_proof))
        client_signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        self._auth_message = auth_message
        self._state = _ScramState.AWAIT_SERVER_FINAL
        encoded_proof = encode_response(proof)
        client_final = without_proof + b",p=" + encoded_proof
        # The proof, with the transcript of the exchange, lets a password be
        # tested offline.
        self._add_secrets(encoded_proof, client_final)
        return client_final

    def _parse_server_first(self, message: bytes) -> tuple[bytes, bytes, int]:
        # RFC 5802 7: server-first-message = [reserved-mext ","] nonce ","
        #   salt "," iteration-count ["," extensions]
        parts = message.split(b",")
        if parts[0].startswith(b"m="):
            # RFC 5802 5.1: m= is reserved for mandatory extensions; a client
            # that does not support one MUST fail the exchange.
            raise AuthenticationError("SCRAM server-first-message requires an unknown extension")
        if len(parts) < 3:
            raise AuthenticationError(f"malformed SCRAM server-first-message: {_show(message)}")
        r, s, i, *extensions = parts
        if not (r.startswith(b"r=") and s.startswith(b"s=") and i.startswith(b"i=")):
            raise AuthenticationError(f"malformed SCRAM server-first-message: {_show(message)}")
        for extension in extensions:
            if _EXTENSION.fullmatch(extension) is None:
                raise AuthenticationError(f"malformed SCRAM extension: {_show(extension)}")
        nonce = r[2:]
        # RFC 5802 5.1: the nonce is printable ASCII without commas, the
        # client's nonce followed by the server's. A server that adds nothing
        # lets an old exchange be replayed, so its part must not be empty.
        if _PRINTABLE.fullmatch(nonce) is None:
            raise AuthenticationError(f"malformed SCRAM nonce: {_show(nonce)}")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationError("SCRAM server nonce does not extend the client nonce")
        salt = _strict_b64decode(s[2:])
        # RFC 5802 5.1: s= is the base64 salt. An empty salt is refused: it is
        # no salt at all, and no honest server sends one.
        if salt is None or not salt:
            raise AuthenticationError(f"malformed SCRAM salt: {_show(s[2:])}")
        # RFC 5802 7: iteration-count = "i=" posint.
        if _POSINT.fullmatch(i[2:]) is None:
            raise AuthenticationError(f"malformed SCRAM iteration count: {_show(i[2:])}")
        iterations = int(i[2:])
        if iterations > self._max_iterations:
            raise AuthenticationError(
                f"SCRAM iteration count {iterations} exceeds the limit of {self._max_iterations}"
            )
        return nonce, salt, iterations

    def _check_server_final(self, message: bytes) -> None:
        # RFC 5802 7: server-final-message = (server-error / verifier)
        #   ["," extensions]
        first, *extensions = message.split(b",")
        if first.startswith(b"e="):
            # RFC 5802 7: server-error = "e=" server-error-value.
            raise AuthenticationError(f"SCRAM server error: {_show(first[2:])}")
        if not first.startswith(b"v="):
            raise AuthenticationError(f"malformed SCRAM server-final-message: {_show(message)}")
        for extension in extensions:
            if _EXTENSION.fullmatch(extension) is None:
                raise AuthenticationError(f"malformed SCRAM extension: {_show(extension)}")
        signature = _strict_b64decode(first[2:])
        if signature is None:
            raise AuthenticationError("malformed SCRAM server signature")
        # RFC 5802 5.1: the client MUST verify the server signature; compared
        # in constant time.
        if not hmac.compare_digest(signature, self._server_signature):
            raise AuthenticationError("SCRAM server signature does not verify")
        self._state = _ScramState.VERIFIED


# RFC 5802 7: gs2-header = gs2-cbind-flag "," [ authzid ] ",", where
# gs2-cbind-flag = ("p=" cb-name) / "n" / "y" and authzid = "a=" saslname.
_GS2_HEADER = re.compile(rb"(?:[ny]|p=[A-Za-z0-9.-]+),(?:a=[^,]*)?,")
# RFC 5802 7: attr-val = ALPHA "=" value.
_ATTRIBUTE = re.compile(rb"[A-Za-z]=")


def _scram_view(message: bytes) -> bytes | None:
    """What a transcript may show of a SCRAM message, or None when
    ``message`` is not one.

    The shape stays; the values are ``<redacted>`` except ``n=`` (the
    username) and ``a=`` (the authorization identity), which this library
    shows elsewhere anyway, ``e=`` (RFC 5802 7: a server-error-value, from a
    fixed list), and ``c=`` when it carries nothing but a GS2 header (``biws``
    for ``n,,``: a constant).

    RFC 5802 9: whoever sees an exchange "can gain sufficient information to
    mount an offline dictionary or brute-force attack": with the salt
    (``s=``) and iteration count (``i=``), AuthMessage (RFC 5802 3: the
    messages, nonces ``r=`` included) and either the proof (``p=``) or the
    server signature (``v=``), each password guess can be checked. TLS keeps
    the exchange from an eavesdropper; a transcript must not hand it to
    whoever reads the log. The nonces are hidden too, though harmless alone:
    without them AuthMessage cannot be rebuilt, should a salt or a proof leak
    some other way.
    """
    header = _GS2_HEADER.match(message)
    rest = message if header is None else message[header.end() :]
    if _ATTRIBUTE.match(rest) is None:
        return None
    shown = []
    for attribute in rest.split(b","):
        name, equals, value = attribute.partition(b"=")
        if not equals or _ATTRIBUTE.fullmatch(name + equals) is None:
            shown.append(_REDACTED_BYTES)
        elif name in (b"n", b"a", b"e") or (name == b"c" and _is_bare_gs2(value)):
            shown.append(attribute)
        else:
            shown.append(name + b"=" + _REDACTED_BYTES)
    return (b"" if header is None else header.group()) + b",".join(shown)


def _is_bare_gs2(value: bytes) -> bool:
    # RFC 5802 7: channel-binding = "c=" base64(cbind-input), cbind-input =
    # gs2-header [cbind-data]; without channel binding there is no
    # cbind-data.
    decoded = _strict_b64decode(value)
    return decoded is not None and _GS2_HEADER.fullmatch(decoded) is not None


def _show(data: bytes) -> str:
    """A bounded, printable rendering of server-sent octets for a message."""
    text = printable(data[:_MAX_SHOWN].decode("utf-8", "surrogateescape"))
    return f'"{text}"' + ("..." if len(data) > _MAX_SHOWN else "")


# -- token mechanisms ---------------------------------------------------------


class _BearerMechanism(SASLMechanism):
    """What XOAUTH2 and OAUTHBEARER share: an initial response carrying the
    token, and one possible error challenge holding a JSON object."""

    credential_type = OAuth2Token
    # The initial response on an empty challenge, then the error report.
    max_steps = 2
    _error_reply: ClassVar[bytes]

    __slots__ = ("_message", "server_error")

    def __init__(self, credentials: OAuth2Token) -> None:
        super().__init__(credentials)
        #: The server's error report (decoded JSON text, bounded, with the
        #: token redacted), once it sent one; for the session's error message.
        self.server_error: str | None = None
        self._message = self._build(credentials)
        self._add_secrets(credentials.token.encode("ascii"), self._message)

    @abc.abstractmethod
    def _build(self, credentials: OAuth2Token) -> bytes:
        """The initial response."""

    def initial_response(self) -> bytes:
        return self._message

    def _respond(self, challenge: bytes) -> bytes:
        if not challenge and self._steps == 1:
            return self._message
        if self.server_error is not None or not challenge:
            raise AuthenticationError(f"unexpected {self.name} challenge")
        # RFC 7628 3.2.2 (and Google's XOAUTH2): a failure is reported in a
        # challenge holding a JSON object; anything else is not a challenge
        # either mechanism defines.
        parsed: object = None
        try:
            parsed = json.loads(challenge)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise AuthenticationError(f"malformed {self.name} challenge: {_show(challenge)}")
        # What must not show in server_error: the token and the initial
        # response in any encoding (raw, base64, JSON-escaped...), should the
        # server echo them back.
        redactor = Redactor()
        redactor.add(*self._secret_values)
        text = printable(redactor.scrub_text(challenge.decode("utf-8", "replace")))
        self.server_error = text[:_MAX_SHOWN] + ("..." if len(text) > _MAX_SHOWN else "")
        return self._error_reply


@final
class XOAuth2(_BearerMechanism):
    """XOAUTH2 (Google, Microsoft): ``user=U^Aauth=Bearer T^A^A``.

    On failure the server sends a 334 challenge holding a JSON error; the
    client answers it with an empty response and the server then sends 535.
    The error text is kept in :attr:`server_error`.
    """

    name = "XOAUTH2"
    strength = 10
    _error_reply = b""

    __slots__ = ()

    def _build(self, credentials: OAuth2Token) -> bytes:
        return b"user=%s\x01auth=Bearer %s\x01\x01" % (
            credentials.username.encode("utf-8"),
            credentials.token.encode("ascii"),
        )


@final
class OAuthBearer(_BearerMechanism):
    """OAUTHBEARER (RFC 7628).

    On failure the server sends a 334 challenge holding a JSON error; the
    client answers it with a single %x01 (RFC 7628 3.2.3) and the server then
    sends 535. The error text is kept in :attr:`server_error`.

    Args:
        credentials: the username and token.
        host: the server's host name, sent as ``host=`` when given.
        port: the server's port, sent as ``port=`` when given.
    """

    name = "OAUTHBEARER"
    strength = 20
    # RFC 7628 3.2.3: the client answers an error challenge with %x01.
    _error_reply = b"\x01"

    __slots__ = ("_host", "_port")

    def __init__(
        self, credentials: OAuth2Token, *, host: str | None = None, port: int | None = None
    ) -> None:
        if host is not None:
            _check_text(host, "OAUTHBEARER host", secret=False)
            # RFC 7628 3.1: values cannot hold %x01 (kvsep) or other controls.
            if _CONTROL.search(host):
                raise InvalidInputError(
                    "OAUTHBEARER host", "must not contain control characters", host
                )
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise InvalidInputError("OAUTHBEARER port", "must be an int in 1-65535", port)
        self._host = host
        self._port = port
        super().__init__(credentials)

    def _build(self, credentials: OAuth2Token) -> bytes:
        # RFC 7628 3.1: client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep;
        # gs2-header = "n," ["a=" saslname] "," (RFC 5801 4), and saslname
        # escapes "=" and "," (RFC 5801 4).
        out = b"n,a=" + _escape_saslname(credentials.username).encode("utf-8") + b",\x01"
        if self._host is not None:
            out += b"host=" + self._host.encode("utf-8") + b"\x01"
        if self._port is not None:
            out += b"port=%d\x01" % self._port
        return out + b"auth=Bearer " + credentials.token.encode("ascii") + b"\x01\x01"


# -- choosing a mechanism -----------------------------------------------------

#: Every mechanism smtpcore implements, by name. ANONYMOUS is not one: with
#: credentials at hand, never send none.
MECHANISMS: Mapping[str, type[SASLMechanism]] = types.MappingProxyType(
    {cls.name: cls for cls in (ScramSHA256, CramMD5, Plain, Login, OAuthBearer, XOAuth2)}
)

# RFC 4422 3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT /
# HYPHEN / UNDERSCORE. RFC 4954 3 compares them case-insensitively.
_MECH_NAME = re.compile(r"[A-Z0-9_-]{1,20}")


def _normalise_name(name: object) -> str | None:
    if not isinstance(name, str) or not name.isascii():
        # str.upper on non-ASCII text can produce ASCII (the dotless i,
        # U+0131, becomes "I"), so only ASCII names are compared.
        return None
    upper = name.upper()
    return upper if _MECH_NAME.fullmatch(upper) else None


def _check_credentials(credentials: object) -> Credentials | OAuth2Token:
    if not isinstance(credentials, (Credentials, OAuth2Token)):
        raise InvalidInputError(
            "credentials", "must be Credentials or OAuth2Token", type(credentials).__name__
        )
    return credentials


def make_mechanism(name: str, credentials: Credentials | OAuth2Token) -> SASLMechanism:
    """Instantiate the mechanism called ``name`` (case-insensitive).

    Raises:
        InvalidInputError: the name is unknown, or the mechanism does not take
            this kind of credentials.
    """
    credentials = _check_credentials(credentials)
    normal = _normalise_name(name)
    cls = MECHANISMS.get(normal) if normal is not None else None
    if cls is None:
        raise InvalidInputError("SASL mechanism", "unknown mechanism", name)
    return cls(credentials)


def choose_mechanism(
    offered: Iterable[str],
    credentials: Credentials | OAuth2Token,
    allowed: Sequence[str] | None = None,
) -> SASLMechanism:
    """Pick and instantiate the strongest usable mechanism.

    A mechanism is usable when the server offers it (compared
    case-insensitively, RFC 4954 3), it is in ``allowed``, and it takes the
    kind of credentials given: a password never goes to a token mechanism
    nor a token to a password one. Unknown names offered by the server, and
    ANONYMOUS, are never chosen.

    Args:
        offered: the mechanism names of the server's EHLO ``AUTH`` line.
        credentials: a username and password, or a username and token.
        allowed: the names the caller accepts; by default every known
            mechanism that takes ``credentials``.

    Returns:
        A fresh mechanism instance.

    Raises:
        ConfigurationError: no mechanism is usable.
        InvalidInputError: ``allowed`` names an unknown mechanism, an
            argument has the wrong type, or the chosen mechanism refuses the
            credentials (SCRAM-SHA-256 when SASLprep refuses the password;
            the caller may then allow a weaker mechanism explicitly).
    """
    credentials = _check_credentials(credentials)
    if isinstance(offered, (str, bytes)):
        raise InvalidInputError("offered SASL mechanisms", "must be a collection of names")
    offered_names = {n for n in map(_normalise_name, offered) if n is not None}
    if allowed is None:
        candidates = list(MECHANISMS.values())
    else:
        if isinstance(allowed, (str, bytes)):
            raise InvalidInputError("allowed SASL mechanisms", "must be a sequence of names")
        candidates = []
        for name in allowed:
            normal = _normalise_name(name)
            cls = MECHANISMS.get(normal) if normal is not None else None
            if cls is None:
                raise InvalidInputError("allowed SASL mechanism", "unknown mechanism", name)
            candidates.append(cls)
    suitable = [cls for cls in candidates if isinstance(credentials, cls.credential_type)]
    usable = [cls for cls in suitable if cls.name in offered_names]
    if not usable:
        kind = "password" if isinstance(credentials, Credentials) else "OAuth2 token"
        shown = sorted(offered_names)
        raise ConfigurationError(
            "no SASL mechanism in common: the server offers "
            f"{', '.join(shown[:20]) or 'none'}{' ...' if len(shown) > 20 else ''}; "
            f"allowed for {kind} credentials: "
            f"{', '.join(sorted({cls.name for cls in suitable})) or 'none'}"
        )
    best = max(usable, key=lambda cls: cls.strength)
    return best(credentials)
