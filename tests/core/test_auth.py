"""Tests for smtpcore._auth: SASL mechanisms as pure challenge/response objects.

Vectors come from the RFCs (RFC 2195 for CRAM-MD5, RFC 4616 for PLAIN, RFC
7677 for SCRAM-SHA-256, RFC 7628 for OAUTHBEARER, RFC 4013 for SASLprep) and
from Google's XOAUTH2 documentation, never from the implementation itself.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpcore._auth import (
    DEFAULT_SCRAM_MAX_ITERATIONS,
    MECHANISMS,
    CramMD5,
    Credentials,
    Login,
    OAuth2Token,
    OAuthBearer,
    Plain,
    SASLMechanism,
    ScramSHA256,
    XOAuth2,
    choose_mechanism,
    decode_challenge,
    encode_response,
    make_mechanism,
    saslprep,
)
from smtpcore._errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    LocalProtocolError,
)

E = TypeVar("E", bound=BaseException)

PASSWORD = "s3cret-Pässwörd"
TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdGF2aXN0YS5jb20CgAB"
PW = Credentials(username="bob", password=PASSWORD)
TOK = OAuth2Token(username="bob@example.com", token=TOKEN)

# RFC 7677 3: the SCRAM-SHA-256 example exchange.
SCRAM_USER = Credentials(username="user", password="pencil")
SCRAM_NONCE = "rOprNGfwEbeRWgbNEkqO"
SCRAM_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SCRAM_FULL_NONCE = b"rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SCRAM_SALT = b"s=W22ZaJ0SNY7soEsUEjb6gQ=="
SCRAM_SERVER_FIRST = b"r=" + SCRAM_FULL_NONCE + b"," + SCRAM_SALT + b",i=4096"
SCRAM_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SCRAM_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
ZERO_SIGNATURE = b"v=" + base64.b64encode(bytes(32))

GOOGLE_ERROR = json.dumps(
    {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
).encode()


# -- secret hygiene helpers ---------------------------------------------------


def _forms(secret: str) -> list[str]:
    """A secret as it could leak: verbatim, in base64, in hex."""
    raw = secret.encode("utf-8", "surrogatepass")
    return [secret, base64.b64encode(raw).decode(), raw.hex()]


def assert_clean(text: str, *secrets: str) -> None:
    for secret in filter(None, secrets):
        for form in _forms(secret):
            assert form not in text, f"secret leaked into {text!r}"


def assert_exception_clean(exc: BaseException, *secrets: str) -> None:
    """Neither the exception nor anything chained to it shows a secret."""
    seen: BaseException | None = exc
    while seen is not None:
        assert_clean(str(seen), *secrets)
        assert_clean(repr(seen), *secrets)
        assert_clean(repr(getattr(seen, "value", None)), *secrets)
        seen = seen.__cause__ or seen.__context__


@contextlib.contextmanager
def raises_clean(
    exc_type: type[E], *secrets: str, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[E]]:
    """pytest.raises that also checks the exception for secrets."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    assert_exception_clean(info.value, PASSWORD, TOKEN, "pencil", *secrets)


# -- base64 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(b"", b"", id="empty-is-empty-challenge"),
        pytest.param(b"VXNlcm5hbWU6", b"Username:", id="login-username-prompt"),
        pytest.param(b"UGFzc3dvcmQ6", b"Password:", id="login-password-prompt"),
        pytest.param(b"QQ==", b"A", id="two-pad"),
        pytest.param(b"QUI=", b"AB", id="one-pad"),
        pytest.param(b"QUJD", b"ABC", id="no-pad"),
        pytest.param(b"+/+/", b"\xfb\xff\xbf", id="plus-slash"),
        pytest.param(
            b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+",
            b"<1896.697170952@postoffice.reston.mci.net>",
            id="rfc2195-challenge",
        ),
    ],
)
def test_decode_challenge_valid(text: bytes, expected: bytes) -> None:
    assert decode_challenge(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"=", id="lone-pad"),
        pytest.param(b"QQ", id="missing-padding"),
        pytest.param(b"QQ=", id="short-padding"),
        pytest.param(b"QQ===", id="extra-padding"),
        pytest.param(b"Q===", id="three-pads"),
        pytest.param(b"QUJD=", id="pad-after-full-group"),
        pytest.param(b"QQ==QQ==", id="pad-in-the-middle"),
        pytest.param(b"QR==", id="nonzero-pad-bits-2"),
        pytest.param(b"QUJ=", id="nonzero-pad-bits-1"),
        pytest.param(b"QU JD", id="inner-space"),
        pytest.param(b"QUJD ", id="trailing-space"),
        pytest.param(b" QUJD", id="leading-space"),
        pytest.param(b"QUJD\r\n", id="crlf"),
        pytest.param(b"QU\nJD", id="inner-newline"),
        pytest.param(b"QU-_", id="urlsafe-alphabet"),
        pytest.param(b"QUJD\x00", id="nul"),
        pytest.param(b"*", id="cancel-star"),
        pytest.param("é".encode() * 2, id="non-ascii"),
        pytest.param(b"\xff\xfe\xfd\xfc", id="high-octets"),
    ],
)
def test_decode_challenge_invalid(text: bytes) -> None:
    with raises_clean(AuthenticationError, match="malformed base64 challenge"):
        decode_challenge(text)


def test_decode_challenge_error_is_bounded() -> None:
    with raises_clean(AuthenticationError) as info:
        decode_challenge(b"!" * 100_000)
    assert len(str(info.value)) < 200
    assert "100000 octets" in str(info.value)


@pytest.mark.parametrize("func", [decode_challenge, encode_response], ids=["decode", "encode"])
def test_base64_helpers_refuse_str(func: Callable[[bytes], bytes]) -> None:
    with pytest.raises(InvalidInputError, match="must be bytes"):
        func("QUJD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"", b"", id="empty"),
        pytest.param(b"\0tim\0tanstaaftanstaaf", b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm", id="plain"),
        pytest.param(b"\xff" * 100, base64.b64encode(b"\xff" * 100), id="long-no-newline"),
    ],
)
def test_encode_response(data: bytes, expected: bytes) -> None:
    assert encode_response(data) == expected
    assert b"\n" not in encode_response(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_base64_round_trip(data: bytes) -> None:
    assert decode_challenge(encode_response(data)) == data


_B64ISH = st.one_of(
    st.binary(max_size=40),
    st.text(alphabet="QUJDRab+/=-_ \n\r\x00é", max_size=16).map(lambda s: s.encode()),
)


@settings(max_examples=500, deadline=None)
@given(_B64ISH)
def test_decode_challenge_raises_only_authentication_error(data: bytes) -> None:
    try:
        decoded = decode_challenge(data)
    except AuthenticationError:
        return
    # Whatever is accepted is canonical: it re-encodes to the same text.
    assert encode_response(decoded) == data


# Typed loosely: the stubs for Python 3.10 (mypy's target) lack strict_mode.
_a2b_base64: Callable[..., bytes] = binascii.a2b_base64


@pytest.mark.skipif(sys.version_info < (3, 11), reason="binascii strict_mode is Python 3.11+")
@settings(max_examples=500, deadline=None)
@given(_B64ISH)
def test_decode_challenge_agrees_with_binascii_strict_mode(data: bytes) -> None:
    # An independent oracle: strict_mode plus the canonical-pad-bits rule.
    try:
        oracle: bytes | None = _a2b_base64(data, strict_mode=True)
    except binascii.Error:
        oracle = None
    if oracle is not None and base64.b64encode(oracle) != data:
        oracle = None
    try:
        ours: bytes | None = decode_challenge(data)
    except AuthenticationError:
        ours = None
    assert ours == oracle


# -- credentials --------------------------------------------------------------


def test_credentials_repr_redacts_password() -> None:
    assert repr(PW) == "Credentials(username='bob', password=<redacted>)"
    assert str(PW) == repr(PW)
    assert_clean(repr(PW), PASSWORD)


def test_oauth2_token_repr_redacts_token() -> None:
    assert repr(TOK) == "OAuth2Token(username='bob@example.com', token=<redacted>)"
    assert str(TOK) == repr(TOK)
    assert_clean(repr(TOK), TOKEN)


def test_credentials_are_frozen_keyword_only_values() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PW.password = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Credentials("bob", "pw")  # type: ignore[call-arg]
    assert Credentials(username="bob", password=PASSWORD) == PW


@pytest.mark.parametrize(
    ("username", "password", "match"),
    [
        pytest.param("", PASSWORD, "username: must not be empty", id="empty-username"),
        pytest.param("bob", "", "password: must not be empty", id="empty-password"),
        pytest.param("b\0ob", PASSWORD, "username: must not contain NUL", id="nul-username"),
        pytest.param("bob", PASSWORD + "\0x", "password: must not contain NUL", id="nul-password"),
        pytest.param("bob", PASSWORD + "\ud800", "password: is not encodable", id="surrogate-pw"),
        pytest.param("b\udcffb", PASSWORD, "username: is not encodable", id="surrogate-user"),
        pytest.param(b"bob", PASSWORD, "username: must be a str", id="bytes-username"),
        pytest.param("bob", None, "password: must be a str", id="none-password"),
    ],
)
def test_credentials_validation(username: object, password: object, match: str) -> None:
    with raises_clean(InvalidInputError, match=match) as info:
        Credentials(username=username, password=password)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LocalProtocolError)
    # No UnicodeEncodeError (which would hold the password) is chained.
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    ("username", "token", "match"),
    [
        pytest.param("", TOKEN, "username: must not be empty", id="empty-username"),
        pytest.param("bob", "", "token: must not be empty", id="empty-token"),
        pytest.param("b\x01ob", TOKEN, "control characters", id="kvsep-in-username"),
        pytest.param("b\nob", TOKEN, "control characters", id="lf-in-username"),
        pytest.param("bob", TOKEN + "\x01", "b64token", id="kvsep-in-token"),
        pytest.param("bob", TOKEN + " x", "b64token", id="space-in-token"),
        pytest.param("bob", "abc=def", "b64token", id="pad-in-the-middle"),
        pytest.param("bob", "tökén", "b64token", id="non-ascii-token"),
        pytest.param("bob", "===", "b64token", id="only-padding"),
    ],
)
def test_oauth2_token_validation(username: str, token: str, match: str) -> None:
    with raises_clean(InvalidInputError, token, match=match):
        OAuth2Token(username=username, token=token)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(TOKEN, id="google"),
        pytest.param("eyJ0eXAiOiJKV1Qi.eyJhdWQiOiJo-_~+/.sig==", id="jwt-like"),
        pytest.param("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", id="rfc7628"),
    ],
)
def test_oauth2_token_accepts_b64tokens(token: str) -> None:
    assert OAuth2Token(username="u", token=token).token == token


# -- PLAIN ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "authzid", "expected"),
    [
        # RFC 4616 4: the example with no authzid.
        pytest.param("tim", "tanstaaftanstaaf", "", b"\0tim\0tanstaaftanstaaf", id="rfc4616"),
        # RFC 4616 4: the example with an authzid.
        pytest.param("Kurt", "xipj3plmq", "Ursel", b"Ursel\0Kurt\0xipj3plmq", id="authzid"),
        pytest.param(
            "jörg", "pässwörd", "", b"\0j\xc3\xb6rg\0p\xc3\xa4ssw\xc3\xb6rd", id="utf8-latin"
        ),
        pytest.param(
            "用户", "🔑", "", b"\0\xe7\x94\xa8\xe6\x88\xb7\0\xf0\x9f\x94\x91", id="utf8-cjk"
        ),
        pytest.param("a b", "p w\r\n", "", b"\0a b\0p w\r\n", id="spaces-and-crlf-kept"),
    ],
)
def test_plain_message(username: str, password: str, authzid: str, expected: bytes) -> None:
    mech = Plain(Credentials(username=username, password=password), authzid=authzid)
    assert mech.initial_response() == expected
    # Pure: asking again gives the same and does not advance the exchange.
    assert mech.initial_response() == expected
    mech.verify_success(None)


def test_plain_answers_empty_challenge_when_no_initial_response_was_sent() -> None:
    mech = Plain(PW)
    assert mech.respond(b"") == b"\0bob\0" + PASSWORD.encode()
    with raises_clean(AuthenticationError, match="too many challenges"):
        mech.respond(b"")


def test_plain_refuses_a_real_challenge() -> None:
    mech = Plain(PW)
    with raises_clean(AuthenticationError, match="unexpected PLAIN challenge"):
        mech.respond(b"hello")
    with raises_clean(AuthenticationError, match="already failed"):
        mech.respond(b"")


def test_plain_authzid_validation() -> None:
    with raises_clean(InvalidInputError, match="authzid: must not contain NUL"):
        Plain(PW, authzid="a\0b")


# -- LOGIN ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(b"Username:", b"Password:", id="usual-prompts"),
        pytest.param(b"User Name\0", b"Password\0", id="nul-terminated-prompts"),
        pytest.param(b"Password:", b"Username:", id="swapped-prompts-ignored"),
        pytest.param(b"", b"", id="empty-prompts"),
    ],
)
def test_login_two_steps(first: bytes, second: bytes) -> None:
    mech = Login(Credentials(username="jörg", password=PASSWORD))
    assert mech.initial_response() is None
    assert mech.respond(first) == b"j\xc3\xb6rg"
    assert mech.respond(second) == PASSWORD.encode("utf-8")
    mech.verify_success(None)


def test_login_third_challenge_fails() -> None:
    mech = Login(PW)
    mech.respond(b"Username:")
    mech.respond(b"Password:")
    with raises_clean(AuthenticationError, match="too many challenges"):
        mech.respond(b"Password:")
    with raises_clean(AuthenticationError, match="already failed"):
        mech.respond(b"Password:")


# -- CRAM-MD5 -------------------------------------------------------------------


def test_cram_md5_rfc2195_example() -> None:
    mech = CramMD5(Credentials(username="tim", password="tanstaaftanstaaf"))
    assert mech.initial_response() is None
    challenge = decode_challenge(b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
    response = mech.respond(challenge)
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"
    # RFC 2195 2: the base64 the client sends in the example.
    assert encode_response(response) == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"


def test_cram_md5_refuses_empty_and_second_challenge() -> None:
    with raises_clean(AuthenticationError, match="empty CRAM-MD5 challenge"):
        CramMD5(PW).respond(b"")
    mech = CramMD5(PW)
    mech.respond(b"<1.2@example.com>")
    with raises_clean(AuthenticationError, match="too many challenges"):
        mech.respond(b"<1.2@example.com>")


# -- XOAUTH2 --------------------------------------------------------------------


def test_xoauth2_initial_response_matches_google_example() -> None:
    token = OAuth2Token(
        username="someuser@example.com", token="ya29.vF9dft4qmTc2Nvb3RlckBhdGF2aXN0YS5jb20CgAB"
    )
    mech = XOAuth2(token)
    expected = (
        b"user=someuser@example.com\x01auth=Bearer "
        b"ya29.vF9dft4qmTc2Nvb3RlckBhdGF2aXN0YS5jb20CgAB\x01\x01"
    )
    assert mech.initial_response() == expected
    assert encode_response(expected) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        b"QmhkR0YyYVhOMFlTNWpiMjBDZ0FCAQE="
    )
    assert mech.server_error is None
    mech.verify_success(None)


def test_xoauth2_error_challenge_gets_empty_response_and_is_kept() -> None:
    mech = XOAuth2(TOK)
    assert mech.respond(GOOGLE_ERROR) == b""
    assert mech.server_error is not None
    assert json.loads(mech.server_error) == json.loads(GOOGLE_ERROR)
    # The server then sends 535; a further challenge is a protocol error.
    with raises_clean(AuthenticationError, match="unexpected XOAUTH2 challenge"):
        mech.respond(GOOGLE_ERROR)
    assert_clean(repr(mech), TOKEN)


def test_xoauth2_without_initial_response() -> None:
    mech = XOAuth2(TOK)
    assert mech.respond(b"") == mech.initial_response()
    assert mech.respond(GOOGLE_ERROR) == b""


@pytest.mark.parametrize(
    "challenge",
    [
        pytest.param(b"not json", id="text"),
        pytest.param(b"[1, 2]", id="json-list"),
        pytest.param(b'"status"', id="json-string"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[" * 100_000, id="deep-nesting"),
    ],
)
@pytest.mark.parametrize("factory", [XOAuth2, OAuthBearer], ids=["XOAUTH2", "OAUTHBEARER"])
def test_bearer_refuses_non_json_challenge(
    factory: Callable[[OAuth2Token], SASLMechanism], challenge: bytes
) -> None:
    mech = factory(TOK)
    with raises_clean(AuthenticationError, match="malformed"):
        mech.respond(challenge)


@pytest.mark.parametrize("factory", [XOAuth2, OAuthBearer], ids=["XOAUTH2", "OAUTHBEARER"])
def test_bearer_server_error_redacts_an_echoed_token(
    factory: Callable[[OAuth2Token], XOAuth2 | OAuthBearer],
) -> None:
    mech = factory(TOK)
    blob = encode_response(mech.initial_response()).decode()
    echo = json.dumps({"status": "invalid_token", "token": TOKEN, "sent": blob}).encode()
    mech.respond(echo)
    assert mech.server_error is not None
    assert "invalid_token" in mech.server_error
    assert_clean(mech.server_error, TOKEN)
    assert blob not in mech.server_error


def test_bearer_server_error_is_bounded_and_printable() -> None:
    mech = XOAuth2(TOK)
    mech.respond(json.dumps({"status": "x\x1b[31m" + "y" * 10_000}).encode())
    assert mech.server_error is not None
    assert len(mech.server_error) < 300
    assert "\x1b" not in mech.server_error


# -- OAUTHBEARER ----------------------------------------------------------------


def test_oauthbearer_rfc7628_example() -> None:
    # RFC 7628 4.1: the example initial client response.
    token = OAuth2Token(
        username="user@example.com", token="vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
    )
    mech = OAuthBearer(token, host="server.example.com", port=143)
    assert mech.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


@pytest.mark.parametrize(
    ("username", "host", "port", "expected"),
    [
        pytest.param(
            "bob", None, None, b"n,a=bob,\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01", id="bare"
        ),
        pytest.param(
            "bob",
            "smtp.example.com",
            None,
            b"n,a=bob,\x01host=smtp.example.com\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01",
            id="host-only",
        ),
        pytest.param(
            "bob",
            None,
            587,
            b"n,a=bob,\x01port=587\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01",
            id="port-only",
        ),
        # RFC 5801 4: saslname escapes "=" as "=3D" and "," as "=2C".
        pytest.param(
            "a,b=c",
            None,
            None,
            b"n,a=a=2Cb=3Dc,\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01",
            id="escaped-username",
        ),
    ],
)
def test_oauthbearer_format(
    username: str, host: str | None, port: int | None, expected: bytes
) -> None:
    mech = OAuthBearer(OAuth2Token(username=username, token=TOKEN), host=host, port=port)
    assert mech.initial_response() == expected


def test_oauthbearer_error_challenge_gets_kvsep() -> None:
    mech = OAuthBearer(TOK)
    # RFC 7628 3.2.2: the server's error is a JSON object with a status.
    error = b'{"status":"invalid_token","scope":"example_scope"}'
    # RFC 7628 3.2.3: the client answers with a single %x01.
    assert mech.respond(error) == b"\x01"
    assert mech.server_error == '{"status":"invalid_token","scope":"example_scope"}'
    with raises_clean(AuthenticationError, match="unexpected OAUTHBEARER challenge"):
        mech.respond(b"")


@pytest.mark.parametrize(
    ("host", "port", "match"),
    [
        pytest.param("a\x01b", None, "host: must not contain control", id="kvsep-host"),
        pytest.param("", None, "host: must not be empty", id="empty-host"),
        pytest.param(None, 0, "port: must be an int in 1-65535", id="port-0"),
        pytest.param(None, 65536, "port: must be an int", id="port-65536"),
        pytest.param(None, True, "port: must be an int", id="port-bool"),
        pytest.param(None, "25", "port: must be an int", id="port-str"),
    ],
)
def test_oauthbearer_parameter_validation(host: object, port: object, match: str) -> None:
    with raises_clean(InvalidInputError, match=match):
        OAuthBearer(TOK, host=host, port=port)  # type: ignore[arg-type]


# -- SCRAM-SHA-256 ----------------------------------------------------------------


def _scram(
    credentials: Credentials = SCRAM_USER, *, max_iterations: int = DEFAULT_SCRAM_MAX_ITERATIONS
) -> ScramSHA256:
    return ScramSHA256(credentials, nonce=SCRAM_NONCE, max_iterations=max_iterations)


def _wants(mech: SASLMechanism) -> bool:
    # A function, so that mypy does not narrow the property across calls.
    return mech.wants_success_data


def test_scram_rfc7677_vector_server_final_in_challenge() -> None:
    mech = _scram()
    assert mech.initial_response() == SCRAM_CLIENT_FIRST
    assert not _wants(mech)
    assert mech.respond(SCRAM_SERVER_FIRST) == SCRAM_CLIENT_FINAL
    assert _wants(mech)
    # RFC 4422 5: additional data with success sent as a challenge is
    # answered with an empty response.
    assert mech.respond(SCRAM_SERVER_FINAL) == b""
    assert not _wants(mech)
    mech.verify_success(None)


def test_scram_rfc7677_vector_server_final_with_235() -> None:
    mech = _scram()
    assert mech.respond(SCRAM_SERVER_FIRST) == SCRAM_CLIENT_FINAL
    mech.verify_success(SCRAM_SERVER_FINAL)


def test_scram_without_initial_response() -> None:
    mech = _scram()
    assert mech.respond(b"") == SCRAM_CLIENT_FIRST
    assert mech.respond(SCRAM_SERVER_FIRST) == SCRAM_CLIENT_FINAL
    assert mech.respond(SCRAM_SERVER_FINAL) == b""
    mech.verify_success(None)


def test_scram_saslprep_maps_password_and_username() -> None:
    # RFC 4013 2.1: SOFT HYPHEN maps to nothing, so "pen\u00adcil" is
    # "pencil" and the RFC 7677 proof comes out unchanged.
    mech = _scram(Credentials(username="us\u00ader", password="pen\u00adcil"))
    assert mech.initial_response() == SCRAM_CLIENT_FIRST
    assert mech.respond(SCRAM_SERVER_FIRST) == SCRAM_CLIENT_FINAL
    mech.verify_success(SCRAM_SERVER_FINAL)


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        pytest.param("u=s,er", b"n,,n=u=3Ds=2Cer,r=" + SCRAM_NONCE.encode(), id="escaping"),
        pytest.param("=2C", b"n,,n==3D2C,r=" + SCRAM_NONCE.encode(), id="escape-the-escape"),
        pytest.param("\u2168", b"n,,n=IX,r=" + SCRAM_NONCE.encode(), id="nfkc"),
        pytest.param("jörg", b"n,,n=j\xc3\xb6rg,r=" + SCRAM_NONCE.encode(), id="utf8"),
    ],
)
def test_scram_client_first_username(username: str, expected: bytes) -> None:
    assert _scram(Credentials(username=username, password="pw")).initial_response() == expected


@pytest.mark.parametrize(
    ("username", "password", "match"),
    [
        pytest.param("bob", "pass\u0007word", "SCRAM password: prohibited character", id="bel-pw"),
        pytest.param("bob", "\u00ad", "SCRAM password: is empty after SASLprep", id="empty-pw"),
        pytest.param("bob", "p\U0001f511", "SCRAM password: unassigned", id="unassigned-pw"),
        pytest.param("b\u0007b", "pw", "SCRAM username: prohibited character U\\+0007", id="bel"),
        pytest.param("\u00ad", "pw", "SCRAM username: is empty after SASLprep", id="empty-user"),
    ],
)
def test_scram_refuses_unpreparable_credentials(username: str, password: str, match: str) -> None:
    with raises_clean(InvalidInputError, password, match=match) as info:
        ScramSHA256(Credentials(username=username, password=password))
    if "password" in match:
        # The offending character of a password is not named.
        assert "U+" not in str(info.value)


def test_scram_username_may_hold_unassigned_code_points() -> None:
    # RFC 5802 5.1: the username is a query string; U+0221 is unassigned in
    # Unicode 3.2.
    mech = _scram(Credentials(username="\u0221", password="pw"))
    assert mech.initial_response() == b"n,,n=\xc8\xa1,r=" + SCRAM_NONCE.encode()


def test_scram_wrong_server_signature_in_challenge_fails() -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    with raises_clean(AuthenticationError, match="signature does not verify"):
        mech.respond(ZERO_SIGNATURE)
    with raises_clean(AuthenticationError, match="already failed"):
        mech.verify_success(None)


def test_scram_wrong_server_signature_at_235_fails() -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    with raises_clean(AuthenticationError, match="signature does not verify"):
        mech.verify_success(ZERO_SIGNATURE)


@pytest.mark.parametrize(
    "final",
    [
        pytest.param(b"v=" + base64.b64encode(bytes(16)), id="short-signature"),
        pytest.param(b"v=", id="empty-signature"),
    ],
)
def test_scram_signature_of_wrong_length_fails(final: bytes) -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    with raises_clean(AuthenticationError, match="signature does not verify"):
        mech.respond(final)


def test_scram_missing_signature_at_235_fails() -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    with raises_clean(AuthenticationError, match="without the SCRAM server signature"):
        mech.verify_success(None)


def test_scram_success_before_the_exchange_fails() -> None:
    with raises_clean(AuthenticationError, match="before the SCRAM exchange"):
        _scram().verify_success(None)


def test_scram_ignores_235_text_once_verified() -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    mech.respond(SCRAM_SERVER_FINAL)
    assert not _wants(mech)
    mech.verify_success(b"2.7.0 Authentication successful")


@pytest.mark.parametrize(
    ("server_first", "match"),
    [
        pytest.param(
            b"r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj,s=QSXCR+Q6sek8bf92,i=4096",
            "does not extend the client nonce",
            id="other-nonce",
        ),
        pytest.param(
            b"r=rOprNGfwEbeRWgbNEkq,s=QSXCR+Q6sek8bf92,i=4096",
            "does not extend the client nonce",
            id="truncated-nonce",
        ),
        pytest.param(
            b"r=rOprNGfwEbeRWgbNEkqO,s=QSXCR+Q6sek8bf92,i=4096",
            "does not extend the client nonce",
            id="no-server-nonce",
        ),
        pytest.param(
            b"r=xrOprNGfwEbeRWgbNEkqO,s=QSXCR+Q6sek8bf92,i=4096",
            "does not extend the client nonce",
            id="nonce-inside-not-prefix",
        ),
    ],
)
def test_scram_nonce_must_extend_ours(server_first: bytes, match: str) -> None:
    with raises_clean(AuthenticationError, match=match):
        _scram().respond(server_first)


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(b"0", id="zero"),
        pytest.param(b"-1", id="negative"),
        pytest.param(b"+4096", id="plus-sign"),
        pytest.param(b"04096", id="leading-zero"),
        pytest.param(b"4096.5", id="fraction"),
        pytest.param(b"4_096", id="underscore"),
        pytest.param(b" 4096", id="space"),
        pytest.param(b"abc", id="letters"),
        pytest.param(b"", id="empty"),
        pytest.param("٤٠٩٦".encode(), id="arabic-indic-digits"),
        pytest.param(b"99999999999", id="eleven-digits"),
        pytest.param(b"1" + b"0" * 5000, id="huge"),
        pytest.param(b"1000001", id="over-default-limit"),
    ],
)
def test_scram_bad_iteration_counts(count: bytes) -> None:
    server_first = b"r=" + SCRAM_FULL_NONCE + b"," + SCRAM_SALT + b",i=" + count
    with raises_clean(AuthenticationError, match="iteration count"):
        _scram().respond(server_first)


def test_scram_iteration_limit_is_configurable() -> None:
    with raises_clean(AuthenticationError, match="4096 exceeds the limit of 4095"):
        _scram(max_iterations=4095).respond(SCRAM_SERVER_FIRST)
    # At the limit it is accepted.
    assert _scram(max_iterations=4096).respond(SCRAM_SERVER_FIRST) == SCRAM_CLIENT_FINAL


def test_scram_iteration_count_of_one_is_accepted() -> None:
    server_first = b"r=" + SCRAM_FULL_NONCE + b"," + SCRAM_SALT + b",i=1"
    response = _scram().respond(server_first)
    assert response.startswith(b"c=biws,r=" + SCRAM_FULL_NONCE + b",p=")
    assert response != SCRAM_CLIENT_FINAL


@pytest.mark.parametrize(
    "max_iterations", [pytest.param(0, id="zero"), pytest.param(True, id="bool"), "10"]
)
def test_scram_max_iterations_validation(max_iterations: object) -> None:
    with raises_clean(InvalidInputError, match="max_iterations"):
        ScramSHA256(SCRAM_USER, max_iterations=max_iterations)  # type: ignore[arg-type]


_N = b"r=" + SCRAM_FULL_NONCE


@pytest.mark.parametrize(
    ("server_first", "match"),
    [
        pytest.param(b"garbage", "malformed SCRAM server-first", id="garbage"),
        pytest.param(b",,", "malformed SCRAM server-first", id="commas"),
        pytest.param(SCRAM_SALT + b"," + _N + b",i=4096", "malformed", id="wrong-order"),
        pytest.param(_N + b"," + SCRAM_SALT, "malformed SCRAM server-first", id="no-count"),
        pytest.param(_N + b",i=4096", "malformed SCRAM server-first", id="no-salt"),
        pytest.param(b"R" + _N[1:] + b"," + SCRAM_SALT + b",i=4096", "malformed", id="upper-r"),
        pytest.param(
            b"m=x," + SCRAM_SERVER_FIRST, "requires an unknown extension", id="mandatory-ext"
        ),
        pytest.param(_N + b",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", "malformed SCRAM salt", id="salt"),
        pytest.param(_N + b",s=W22Z aJ0S,i=4096", "malformed SCRAM salt", id="salt-space"),
        pytest.param(_N + b",s=,i=4096", "malformed SCRAM salt", id="empty-salt"),
        pytest.param(SCRAM_SERVER_FIRST + b",", "malformed SCRAM extension", id="trailing-comma"),
        pytest.param(SCRAM_SERVER_FIRST + b",foo", "malformed SCRAM extension", id="bad-ext"),
        pytest.param(SCRAM_SERVER_FIRST + b",x=", "malformed SCRAM extension", id="empty-ext"),
        pytest.param(_N + b" x," + SCRAM_SALT + b",i=4096", "malformed SCRAM nonce", id="space"),
        pytest.param(_N + b"\x7f," + SCRAM_SALT + b",i=4096", "malformed SCRAM nonce", id="del"),
        pytest.param(
            _N + "é".encode() + b"," + SCRAM_SALT + b",i=4096", "malformed SCRAM nonce", id="8bit"
        ),
        pytest.param(b"r=," + SCRAM_SALT + b",i=4096", "malformed SCRAM nonce", id="empty-nonce"),
    ],
)
def test_scram_malformed_server_first(server_first: bytes, match: str) -> None:
    mech = _scram()
    with raises_clean(AuthenticationError, match=match):
        mech.respond(server_first)
    with raises_clean(AuthenticationError, match="already failed"):
        mech.respond(SCRAM_SERVER_FIRST)


def test_scram_server_first_extensions_are_accepted() -> None:
    response = _scram().respond(SCRAM_SERVER_FIRST + b",x=ext")
    # The extension is part of AuthMessage, so the proof differs.
    assert response.startswith(b"c=biws,r=" + SCRAM_FULL_NONCE + b",p=")
    assert response != SCRAM_CLIENT_FINAL


def test_scram_empty_challenge_after_client_first_fails() -> None:
    mech = _scram()
    assert mech.respond(b"") == SCRAM_CLIENT_FIRST
    with raises_clean(AuthenticationError, match="empty SCRAM server-first-message"):
        mech.respond(b"")


@pytest.mark.parametrize("via", ["challenge", "235"])
@pytest.mark.parametrize(
    ("server_final", "match"),
    [
        pytest.param(b"e=invalid-proof", 'SCRAM server error: "invalid-proof"', id="e"),
        pytest.param(b"e=other-error,x=1", 'SCRAM server error: "other-error"', id="e-ext"),
        pytest.param(b"e=\x1b[2J", 'SCRAM server error: "\\\\x1b\\[2J"', id="e-escaped"),
        pytest.param(b"x=abc", "malformed SCRAM server-final", id="unknown-attribute"),
        pytest.param(b"", "malformed SCRAM server-final", id="empty"),
        pytest.param(b"v=not base64!", "malformed SCRAM server signature", id="bad-base64"),
        pytest.param(SCRAM_SERVER_FINAL + b",", "malformed SCRAM extension", id="trailing-comma"),
    ],
)
def test_scram_bad_server_final(server_final: bytes, match: str, via: str) -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    with raises_clean(AuthenticationError, match=match):
        if via == "challenge":
            mech.respond(server_final)
        else:
            mech.verify_success(server_final)


def test_scram_server_final_extension_is_accepted() -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    assert mech.respond(SCRAM_SERVER_FINAL + b",x=1") == b""
    mech.verify_success(None)


def test_scram_challenge_after_verification_fails() -> None:
    mech = _scram()
    mech.respond(SCRAM_SERVER_FIRST)
    mech.respond(SCRAM_SERVER_FINAL)
    with raises_clean(AuthenticationError, match="after the SCRAM exchange finished"):
        mech.respond(b"")


def test_scram_default_nonce_is_random_and_printable() -> None:
    first = ScramSHA256(SCRAM_USER).initial_response()
    second = ScramSHA256(SCRAM_USER).initial_response()
    assert first != second
    for message in (first, second):
        assert message.startswith(b"n,,n=user,r=")
        nonce = message[len(b"n,,n=user,r=") :]
        assert len(nonce) >= 24
        assert all(0x21 <= c <= 0x7E and c != 0x2C for c in nonce)


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param("", id="empty"),
        pytest.param("a,b", id="comma"),
        pytest.param("a b", id="space"),
        pytest.param("é", id="non-ascii"),
        pytest.param("a\x7f", id="del"),
    ],
)
def test_scram_nonce_validation(nonce: str) -> None:
    with raises_clean(InvalidInputError, match="SCRAM nonce"):
        ScramSHA256(SCRAM_USER, nonce=nonce)


# -- SASLprep ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 4013 3: the examples.
        pytest.param("I\u00adX", "IX", id="rfc4013-1-soft-hyphen"),
        pytest.param("user", "user", id="rfc4013-2-unchanged"),
        pytest.param("USER", "USER", id="rfc4013-3-case-kept"),
        pytest.param("\u00aa", "a", id="rfc4013-4-nfkc"),
        pytest.param("\u2168", "IX", id="rfc4013-5-roman-nine"),
        # Further checks of each step.
        pytest.param("a\u00a0b\u3000c", "a b c", id="non-ascii-space-to-space"),
        pytest.param("a\u200bb\ufeffc\u00add", "abcd", id="b1-to-nothing"),
        pytest.param("\ufb01", "fi", id="nfkc-ligature"),
        pytest.param("\u0627\u0628", "\u0627\u0628", id="rtl-only"),
        pytest.param("\u06271\u0628", "\u06271\u0628", id="rtl-with-digit-inside"),
        pytest.param("", "", id="empty"),
    ],
)
def test_saslprep(text: str, expected: str) -> None:
    assert saslprep(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # RFC 4013 3: the two error examples.
        pytest.param("\u0007", "prohibited character U\\+0007", id="rfc4013-6-control"),
        pytest.param("\u06271", "must start and end with a right-to-left", id="rfc4013-7-bidi"),
        pytest.param("a\u0627", "mixes right-to-left and left-to-right", id="mixed-bidi"),
        pytest.param("\x7f", "prohibited character U\\+007F", id="c21-del"),
        pytest.param("\u0085", "prohibited character U\\+0085", id="c22-nel"),
        pytest.param("\ue000", "prohibited character U\\+E000", id="c3-private-use"),
        pytest.param("\ufffe", "prohibited character U\\+FFFE", id="c4-non-character"),
        pytest.param("\ud800", "prohibited character U\\+D800", id="c5-surrogate"),
        pytest.param("\ufff9", "prohibited character U\\+FFF9", id="c6-plain-text"),
        pytest.param("\u2ff0", "prohibited character U\\+2FF0", id="c7-canonical"),
        pytest.param("\u200e", "prohibited character U\\+200E", id="c8-lrm"),
        pytest.param("\U000e0001", "prohibited character U\\+E0001", id="c9-tag"),
        pytest.param("\u0221", "unassigned code point U\\+0221", id="a1-unassigned"),
    ],
)
def test_saslprep_errors(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        saslprep(text)


def test_saslprep_query_allows_unassigned() -> None:
    assert saslprep("\u0221", allow_unassigned=True) == "\u0221"
    with pytest.raises(InvalidInputError, match="prohibited"):
        saslprep("\u0007", allow_unassigned=True)


def test_saslprep_secret_hides_the_character() -> None:
    with pytest.raises(InvalidInputError) as info:
        saslprep("x\u0007", secret=True, field_name="pw")
    assert "U+" not in str(info.value)
    assert str(info.value).startswith("invalid pw: prohibited character")


# -- the step bound and robustness ----------------------------------------------

_RESPONSES_TO_ANY: list[tuple[str, Callable[[], SASLMechanism], list[bytes]]] = [
    ("PLAIN", lambda: Plain(PW), [b""]),
    ("LOGIN", lambda: Login(PW), [b"Username:", b"Password:"]),
    ("CRAM-MD5", lambda: CramMD5(PW), [b"<1@x>"]),
    ("XOAUTH2", lambda: XOAuth2(TOK), [b"", GOOGLE_ERROR]),
    ("OAUTHBEARER", lambda: OAuthBearer(TOK), [b"", GOOGLE_ERROR]),
    ("SCRAM-SHA-256", _scram, [b"", SCRAM_SERVER_FIRST, SCRAM_SERVER_FINAL]),
]


@pytest.mark.parametrize(
    ("factory", "legitimate"),
    [pytest.param(f, seq, id=name) for name, f, seq in _RESPONSES_TO_ANY],
)
@pytest.mark.parametrize("extra", [b"", b"Password:", GOOGLE_ERROR], ids=["empty", "text", "json"])
def test_endless_challenges_hit_max_steps(
    factory: Callable[[], SASLMechanism], legitimate: list[bytes], extra: bytes
) -> None:
    mech = factory()
    assert mech.max_steps == len(legitimate)
    for challenge in legitimate:
        mech.respond(challenge)
    with raises_clean(AuthenticationError, match="too many challenges"):
        mech.respond(extra)
    assert_clean(repr(mech), PASSWORD, TOKEN)
    assert "failed" in repr(mech)


@settings(max_examples=50, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(_RESPONSES_TO_ANY) - 1),
    challenge=st.binary(max_size=40),
)
def test_repeating_any_challenge_ends(index: int, challenge: bytes) -> None:
    _, factory, _ = _RESPONSES_TO_ANY[index]
    mech = factory()
    calls = 0
    with raises_clean(AuthenticationError):
        for calls in range(1, 1000):  # noqa: B007 - calls is read after the loop
            mech.respond(challenge)
    assert calls <= mech.max_steps + 1


def _fuzz_mechanisms() -> list[Callable[[], SASLMechanism]]:
    return [
        lambda: Plain(PW),
        lambda: Login(PW),
        lambda: CramMD5(PW),
        lambda: XOAuth2(TOK),
        lambda: OAuthBearer(TOK, host="h", port=25),
        # A low limit keeps PBKDF2 cheap whatever count the fuzzer sends.
        lambda: _scram(max_iterations=64),
    ]


_SCRAMISH = st.lists(
    st.sampled_from([b"r=", SCRAM_FULL_NONCE, b",", b"s=", b"QUJD", b"i=", b"12", b"v=", b"e=x"]),
    max_size=10,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=5),
    challenges=st.lists(st.one_of(st.binary(max_size=60), _SCRAMISH), max_size=5),
    success=st.one_of(st.none(), st.binary(max_size=60), _SCRAMISH),
)
def test_mechanisms_raise_only_authentication_error(
    index: int, challenges: list[bytes], success: bytes | None
) -> None:
    mech = _fuzz_mechanisms()[index]()
    failed = False
    for challenge in challenges:
        try:
            response = mech.respond(challenge)
        except AuthenticationError as exc:
            assert_exception_clean(exc, PASSWORD, TOKEN, "pencil")
            failed = True
            break
        assert isinstance(response, bytes)
    try:
        mech.verify_success(success)
    except AuthenticationError as exc:
        assert_exception_clean(exc, PASSWORD, TOKEN, "pencil")
    else:
        assert not failed, "a failed exchange must not verify"
    assert_clean(repr(mech), PASSWORD, TOKEN, "pencil")


@pytest.mark.parametrize("factory", [f for _, f, _ in _RESPONSES_TO_ANY])
def test_mechanisms_refuse_non_bytes(factory: Callable[[], SASLMechanism]) -> None:
    mech = factory()
    with pytest.raises(InvalidInputError, match="must be bytes"):
        mech.respond("Username:")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be bytes"):
        mech.verify_success("")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("factory", "credentials"),
    [
        pytest.param(Plain, TOK, id="plain-token"),
        pytest.param(Login, TOK, id="login-token"),
        pytest.param(CramMD5, TOK, id="cram-token"),
        pytest.param(ScramSHA256, TOK, id="scram-token"),
        pytest.param(XOAuth2, PW, id="xoauth2-password"),
        pytest.param(OAuthBearer, PW, id="oauthbearer-password"),
    ],
)
def test_mechanism_refuses_the_wrong_credential_kind(
    factory: Callable[[object], SASLMechanism], credentials: object
) -> None:
    with raises_clean(InvalidInputError, match="credentials"):
        factory(credentials)


def test_reprs_never_show_secrets() -> None:
    mechs: list[SASLMechanism] = [f() for _, f, _ in _RESPONSES_TO_ANY]
    for mech in mechs:
        assert_clean(repr(mech), PASSWORD, TOKEN, "pencil")
        assert_clean(str(mech), PASSWORD, TOKEN, "pencil")
        assert mech.name in repr(mech)
        initial = mech.initial_response()
        if initial is not None:
            assert encode_response(initial).decode() not in repr(mech)
    scram = _scram()
    scram.respond(SCRAM_SERVER_FIRST)
    assert repr(scram) == "<ScramSHA256 SCRAM-SHA-256: 1 challenge(s) so far>"


# -- choosing a mechanism ---------------------------------------------------------

ALL_PASSWORD = ["LOGIN", "PLAIN", "CRAM-MD5", "SCRAM-SHA-256"]


@pytest.mark.parametrize(
    ("offered", "credentials", "allowed", "expected"),
    [
        pytest.param(["PLAIN", "LOGIN"], PW, None, Plain, id="plain-over-login"),
        pytest.param(["LOGIN", "PLAIN", "CRAM-MD5"], PW, None, CramMD5, id="cram-over-plain"),
        pytest.param(ALL_PASSWORD, PW, None, ScramSHA256, id="scram-strongest"),
        pytest.param(["LOGIN"], PW, None, Login, id="login-alone"),
        pytest.param(["scram-sha-256", "plain"], PW, None, ScramSHA256, id="lowercase-offer"),
        pytest.param(["Plain"], PW, None, Plain, id="mixed-case-offer"),
        pytest.param(["SCRAM-SHA-256-PLUS", "PLAIN"], PW, None, Plain, id="plus-variant-unknown"),
        pytest.param(["SCRAM-SHA-1", "PLAIN"], PW, None, Plain, id="sha1-unknown"),
        pytest.param(["GSSAPI", "NTLM", "LOGIN"], PW, None, Login, id="unknown-ignored"),
        pytest.param(["ANONYMOUS", "LOGIN"], PW, None, Login, id="anonymous-never"),
        pytest.param(["PLA\u0131N", "LOGIN"], PW, None, Login, id="dotless-i-not-plain"),
        pytest.param(["", " ", "LOGIN", "LOGIN"], PW, None, Login, id="junk-and-duplicates"),
        pytest.param(ALL_PASSWORD, PW, ["PLAIN"], Plain, id="allow-list"),
        pytest.param(ALL_PASSWORD, PW, ["login", "cram-md5"], CramMD5, id="allow-list-case"),
        pytest.param(ALL_PASSWORD, PW, ("LOGIN",), Login, id="allow-tuple"),
        pytest.param(
            ALL_PASSWORD, PW, ["XOAUTH2", "LOGIN"], Login, id="allowed-token-mech-skipped"
        ),
        pytest.param(
            ["XOAUTH2", "OAUTHBEARER", "PLAIN"], TOK, None, OAuthBearer, id="oauthbearer-first"
        ),
        pytest.param(["XOAUTH2", "PLAIN", "LOGIN"], TOK, None, XOAuth2, id="xoauth2-for-token"),
        pytest.param(
            ["XOAUTH2", "OAUTHBEARER", "PLAIN"], PW, None, Plain, id="password-skips-tokens"
        ),
        pytest.param(["XOAUTH2", "OAUTHBEARER"], TOK, ["XOAUTH2"], XOAuth2, id="token-allow-list"),
        pytest.param(iter(["PLAIN"]), PW, None, Plain, id="iterator-offer"),
    ],
)
def test_choose_mechanism(
    offered: Sequence[str],
    credentials: Credentials | OAuth2Token,
    allowed: Sequence[str] | None,
    expected: type[SASLMechanism],
) -> None:
    mech = choose_mechanism(offered, credentials, allowed)
    assert type(mech) is expected
    assert mech.initial_response() == expected(credentials).initial_response() or (
        expected is ScramSHA256  # its nonce is random
    )


@pytest.mark.parametrize(
    ("offered", "credentials", "allowed", "shown"),
    [
        pytest.param(["ANONYMOUS"], PW, None, "offers ANONYMOUS;", id="anonymous-only"),
        pytest.param([], PW, None, "offers none;", id="nothing-offered"),
        pytest.param(["XOAUTH2", "OAUTHBEARER"], PW, None, "offers OAUTHBEARER, XOAUTH2;", id="pw"),
        pytest.param(
            ["PLAIN", "LOGIN", "CRAM-MD5"], TOK, None, "allowed for OAuth2 token", id="token"
        ),
        pytest.param(["PLAIN"], PW, ["LOGIN"], "allowed for password credentials: LOGIN", id="al"),
        pytest.param(["PLAIN"], PW, [], "credentials: none", id="empty-allow-list"),
        pytest.param(["PLAIN"], TOK, ["PLAIN"], "credentials: none", id="allowed-wrong-kind"),
    ],
)
def test_choose_mechanism_nothing_in_common(
    offered: list[str],
    credentials: Credentials | OAuth2Token,
    allowed: list[str] | None,
    shown: str,
) -> None:
    with raises_clean(ConfigurationError, match="no SASL mechanism in common") as info:
        choose_mechanism(offered, credentials, allowed)
    assert shown in str(info.value)


@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param(["ANONYMOUS"], id="anonymous"),
        pytest.param(["PLAIN", "GSSAPI"], id="gssapi"),
        pytest.param(["SCRAM-SHA-1"], id="scram-sha-1"),
        pytest.param([""], id="empty-name"),
        pytest.param(["PLA\u0131N"], id="dotless-i"),
    ],
)
def test_choose_mechanism_unknown_allowed(allowed: list[str]) -> None:
    with raises_clean(InvalidInputError, match="unknown mechanism"):
        choose_mechanism(["PLAIN"], PW, allowed)


@pytest.mark.parametrize(
    ("offered", "credentials", "allowed", "match"),
    [
        pytest.param("PLAIN LOGIN", PW, None, "offered SASL mechanisms", id="offered-str"),
        pytest.param(["PLAIN"], PW, "PLAIN", "allowed SASL mechanisms", id="allowed-str"),
        pytest.param(["PLAIN"], ("bob", PASSWORD), None, "credentials", id="tuple-credentials"),
    ],
)
def test_choose_mechanism_argument_types(
    offered: object, credentials: object, allowed: object, match: str
) -> None:
    with raises_clean(InvalidInputError, match=match):
        choose_mechanism(offered, credentials, allowed)  # type: ignore[arg-type]


def test_choose_mechanism_returns_fresh_instances() -> None:
    first = choose_mechanism(["LOGIN"], PW)
    first.respond(b"Username:")
    second = choose_mechanism(["LOGIN"], PW)
    assert second is not first
    assert second.respond(b"Username:") == b"bob"


def test_choose_mechanism_propagates_saslprep_refusal() -> None:
    # A password SCRAM cannot prepare is refused rather than silently sent
    # with a weaker mechanism; the caller can allow PLAIN explicitly.
    bell = Credentials(username="bob", password="pass\u0007word")
    with raises_clean(InvalidInputError, "pass\u0007word", match="SCRAM password"):
        choose_mechanism(["SCRAM-SHA-256", "PLAIN"], bell)
    assert type(choose_mechanism(["SCRAM-SHA-256", "PLAIN"], bell, ["PLAIN"])) is Plain


def test_strength_order() -> None:
    def rank(name: str) -> int:
        return MECHANISMS[name].strength

    assert rank("SCRAM-SHA-256") > rank("CRAM-MD5") > rank("PLAIN") > rank("LOGIN")
    assert rank("OAUTHBEARER") > rank("XOAUTH2")
    assert set(MECHANISMS) == {*ALL_PASSWORD, "XOAUTH2", "OAUTHBEARER"}
    assert "ANONYMOUS" not in MECHANISMS
    with pytest.raises(TypeError):
        MECHANISMS["ANONYMOUS"] = Plain  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "credentials", "expected"),
    [
        pytest.param("PLAIN", PW, Plain, id="plain"),
        pytest.param("cram-md5", PW, CramMD5, id="lowercase"),
        pytest.param("Scram-Sha-256", PW, ScramSHA256, id="mixed-case"),
        pytest.param("xoauth2", TOK, XOAuth2, id="xoauth2"),
        pytest.param("OAUTHBEARER", TOK, OAuthBearer, id="oauthbearer"),
    ],
)
def test_make_mechanism(
    name: str, credentials: Credentials | OAuth2Token, expected: type[SASLMechanism]
) -> None:
    assert type(make_mechanism(name, credentials)) is expected


@pytest.mark.parametrize(
    ("name", "credentials", "match"),
    [
        pytest.param("ANONYMOUS", PW, "unknown mechanism", id="anonymous"),
        pytest.param("GSSAPI", PW, "unknown mechanism", id="unknown"),
        pytest.param("PLA\u0131N", PW, "unknown mechanism", id="dotless-i"),
        pytest.param("XOAUTH2", PW, "XOAUTH2 needs OAuth2Token", id="token-mech-password"),
        pytest.param("PLAIN", TOK, "PLAIN needs Credentials", id="password-mech-token"),
    ],
)
def test_make_mechanism_errors(
    name: str, credentials: Credentials | OAuth2Token, match: str
) -> None:
    with raises_clean(InvalidInputError, match=match):
        make_mechanism(name, credentials)
