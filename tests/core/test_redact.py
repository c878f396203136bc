"""Tests for smtpcore._redact: secrets never come back out of a reply, a
transcript, a repr or an exception, in any encoding, even when a server
echoes them; and the SASL transcript rules of smtpcore._auth.

The forms a secret is checked for are computed here, independently of
``secret_forms``: a test that asked the redactor what to look for would pass
whatever the redactor missed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore._auth import (
    CramMD5,
    Credentials,
    Login,
    OAuth2Token,
    OAuthBearer,
    Plain,
    SASLMechanism,
    ScramSHA256,
    XOAuth2,
    decode_challenge,
    encode_response,
)
from smtpcore._commands import Auth, AuthResponse
from smtpcore._errors import (
    AuthenticationError,
    InvalidInputError,
    PermanentReplyError,
    RecipientsRefusedError,
    RemoteProtocolError,
)
from smtpcore._redact import MARKER, MIN_FORM_LENGTH, Redactor, _trie, secret_forms
from smtpcore._replies import Reply, ReplyParser

USER = "bob@example.com"
PASSWORD = "s3cret-Pässwörd"
TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdGF2aXN0YS5jb20CgAB"
PW = Credentials(username=USER, password=PASSWORD)
TOK = OAuth2Token(username=USER, token=TOKEN)

# RFC 7677 3: the SCRAM-SHA-256 example exchange.
SCRAM_USER = Credentials(username="user", password="pencil")
SCRAM_NONCE = "rOprNGfwEbeRWgbNEkqO"
SCRAM_FULL_NONCE = b"rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SCRAM_SALT = b"W22ZaJ0SNY7soEsUEjb6gQ=="
SCRAM_SERVER_FIRST = b"r=" + SCRAM_FULL_NONCE + b",s=" + SCRAM_SALT + b",i=4096"
SCRAM_PROOF = b"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
SCRAM_CLIENT_FINAL = b"c=biws,r=" + SCRAM_FULL_NONCE + b",p=" + SCRAM_PROOF
SCRAM_SIGNATURE = b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
SCRAM_SERVER_FINAL = b"v=" + SCRAM_SIGNATURE
# What would let a password be tested offline if a transcript showed it.
SCRAM_VERIFIER = [
    SCRAM_FULL_NONCE,
    SCRAM_NONCE.encode(),
    SCRAM_SALT,
    b"4096",
    SCRAM_PROOF,
    SCRAM_SIGNATURE,
]

# RFC 2195 2: the CRAM-MD5 example.
CRAM_USER = Credentials(username="tim", password="tanstaaftanstaaf")
CRAM_CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"
CRAM_DIGEST = "b913a602c7eda7a495b4e6e7334d3890"


# -- forms, computed independently ----------------------------------------------


def forms_of(secret: bytes) -> set[str]:
    """The encodings of ``secret`` a server (or a log) could show, as text;
    those shorter than the minimum are left out, as the redactor documents."""
    text = secret.decode("utf-8", "surrogateescape")
    b64 = base64.b64encode(secret).decode()
    url = base64.urlsafe_b64encode(secret).decode()
    found = {
        text,
        b64,
        b64.rstrip("="),
        url,
        url.rstrip("="),
        secret.hex(),
        secret.hex().upper(),
        urllib.parse.quote(secret, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), urllib.parse.quote(secret, safe="")),
        repr(secret)[2:-1],
        json.dumps(text)[1:-1],
    }
    if len(text) < MIN_FORM_LENGTH:
        # The documented length rule: a short secret is hidden encoded only.
        found = {b64, url, b64.rstrip("="), url.rstrip("=")}
    return {form for form in found if len(form) >= MIN_FORM_LENGTH}


def visible(text: str) -> list[str]:
    """What is left of ``text`` once the markers are taken out: a secret may
    be a substring of the marker (a password of "dact")."""
    return text.split(MARKER)


def assert_hidden(text: str, *secrets: bytes) -> None:
    for piece in visible(text):
        for secret in secrets:
            for form in forms_of(secret):
                assert form not in piece, f"{form!r} leaked into {text!r}"


def reply_texts(reply: Reply) -> list[str]:
    """Every way a reply is shown: its text, its description, each line, its
    wire form, and its lines' texts joined (a secret wrapped over lines)."""
    prefix = (reply.enhanced_code or "") + " "
    bodies = [line.decode("utf-8", "surrogateescape").removeprefix(prefix) for line in reply.lines]
    return [
        reply.text,
        reply.describe(),
        repr(reply),
        reply.to_bytes().decode("utf-8", "surrogateescape"),
        "".join(bodies),
    ]


def assert_reply_hidden(reply: Reply, *secrets: bytes) -> None:
    for text in reply_texts(reply):
        assert_hidden(text, *secrets)


def redactor_for(*secrets: bytes) -> Redactor:
    redactor = Redactor()
    redactor.add(*secrets)
    return redactor


# -- running an exchange as the session does --------------------------------------


def exchange(
    mech: SASLMechanism, challenges: Iterable[bytes]
) -> tuple[Redactor, list[bytes], list[bytes]]:
    """Run ``mech`` through ``challenges`` (decoded), registering its secrets
    when it is chosen and after each response, as the session does.

    Returns the redactor, the wire lines sent (base64) and the raw responses.
    """
    redactor = Redactor()
    redactor.add(*mech.secrets())
    raw: list[bytes] = []
    initial = mech.initial_response()
    if initial is not None:
        raw.append(initial)
    for challenge in challenges:
        raw.append(mech.respond(challenge))
        redactor.add(*mech.secrets())
    return redactor, [encode_response(r) for r in raw], raw


def scram() -> ScramSHA256:
    return ScramSHA256(SCRAM_USER, nonce=SCRAM_NONCE)


EXCHANGES: list[tuple[str, Callable[[], SASLMechanism], list[bytes], list[bytes]]] = [
    # (id, mechanism, challenges, the secrets that must stay hidden)
    ("PLAIN", lambda: Plain(PW), [], [PASSWORD.encode()]),
    ("PLAIN-authzid", lambda: Plain(PW, authzid="admin"), [], [PASSWORD.encode()]),
    ("LOGIN", lambda: Login(PW), [b"Username:", b"Password:"], [PASSWORD.encode()]),
    (
        "CRAM-MD5",
        lambda: CramMD5(CRAM_USER),
        [CRAM_CHALLENGE],
        [b"tanstaaftanstaaf", CRAM_DIGEST.encode(), b"tim " + CRAM_DIGEST.encode()],
    ),
    (
        "SCRAM-SHA-256",
        scram,
        [SCRAM_SERVER_FIRST, SCRAM_SERVER_FINAL],
        [b"pencil", SCRAM_PROOF, SCRAM_CLIENT_FINAL],
    ),
    ("XOAUTH2", lambda: XOAuth2(TOK), [], [TOKEN.encode()]),
    ("OAUTHBEARER", lambda: OAuthBearer(TOK, host="mx.example.org"), [], [TOKEN.encode()]),
]


# -- secret_forms and the length rule --------------------------------------------


def test_forms_of_a_password() -> None:
    verbatim, encoded = secret_forms(PASSWORD.encode())
    assert PASSWORD in verbatim
    assert PASSWORD.encode().hex() in verbatim
    assert "s3cret-P%C3%A4ssw%C3%B6rd" in verbatim
    assert "s3cret-P+C3+A4ssw+C3+B6rd" in verbatim  # RFC 3461 4 xtext
    assert base64.b64encode(PASSWORD.encode()).decode() in encoded
    assert verbatim.isdisjoint(encoded)
    assert all(len(form) >= MIN_FORM_LENGTH for form in verbatim | encoded)


@pytest.mark.parametrize("password", ["a", "ab", "abc", "ä"])
def test_a_short_secret_is_hidden_only_encoded(password: str) -> None:
    secret = password.encode()
    redactor = redactor_for(secret)
    # Hiding "abc" would garble ordinary text; its padded base64 is safe to hide.
    text = f"{password} is fine"
    assert redactor.scrub_text(text) is text
    padded = base64.b64encode(secret).decode()
    assert redactor.scrub_text(f"got {padded} back") == f"got {MARKER} back"


def test_a_four_character_password_is_hidden_verbatim() -> None:
    redactor = redactor_for(b"mail")
    assert redactor.scrub_text("250 mail ok") == f"250 {MARKER} ok"


# -- every encoding ------------------------------------------------------------------

ENCODINGS: list[tuple[str, Callable[[bytes], str]]] = [
    ("raw", lambda s: s.decode()),
    ("base64", lambda s: base64.b64encode(s).decode()),
    ("base64-unpadded", lambda s: base64.b64encode(s).decode().rstrip("=")),
    ("base64url", lambda s: base64.urlsafe_b64encode(s).decode()),
    ("hex", lambda s: s.hex()),
    ("HEX", lambda s: s.hex().upper()),
    ("percent", lambda s: urllib.parse.quote(s, safe="")),
    (
        "percent-lower",
        lambda s: re.sub("%..", lambda m: m.group().lower(), urllib.parse.quote(s, safe="")),
    ),
    ("percent-plus", lambda s: urllib.parse.quote_plus(s, safe="")),
    (
        "xtext",
        lambda s: "".join(chr(b) if 33 <= b <= 126 and b not in b"+=" else f"+{b:02X}" for b in s),
    ),
    ("bytes-repr", lambda s: repr(s)[2:-1]),
    ("str-repr", lambda s: repr(s.decode())[1:-1]),
    ("json", lambda s: json.dumps(s.decode())[1:-1]),
    ("json-unicode", lambda s: json.dumps(s.decode(), ensure_ascii=False)[1:-1]),
    ("base64-in-plain", lambda s: base64.b64encode(b"\0user\0" + s).decode()),
    ("base64-in-plain-1", lambda s: base64.b64encode(b"\0usr\0" + s + b"!").decode()),
    ("base64-in-plain-2", lambda s: base64.b64encode(b"\0us\0" + s + b"!!").decode()),
    ("base64url-in-plain", lambda s: base64.urlsafe_b64encode(b"\0user\0" + s).decode()),
]


@pytest.mark.parametrize(("name", "encode"), ENCODINGS, ids=[n for n, _ in ENCODINGS])
@pytest.mark.parametrize("password", [PASSWORD, "hunter22", "pa ss/wo+rd=", "пароль-пароль"])
def test_every_encoding_is_hidden(name: str, encode: Callable[[bytes], str], password: str) -> None:
    secret = password.encode()
    shown = encode(secret)
    redactor = redactor_for(secret)
    text = f"535 5.7.8 no: {shown} (try again)"
    clean = redactor.scrub_text(text)
    assert shown not in clean
    assert MARKER in clean
    assert clean.startswith("535 5.7.8 no: ")
    assert clean.endswith(" (try again)")
    assert_hidden(clean, secret)
    data = text.encode("utf-8")
    assert redactor.scrub_bytes(data) == clean.encode("utf-8")
    reply = redactor.reply(Reply.build(535, f"5.7.8 no: {shown}"))
    assert_reply_hidden(reply, secret)


def test_an_encoded_match_hides_its_whole_base64_run() -> None:
    # The characters next to the secret's own hold a few of its bits, and
    # the rest of the run is the message it came in.
    secret = b"hunter22"
    redactor = redactor_for(secret)
    line = base64.b64encode(b"\0bob\0" + secret + b"\0tail").decode()
    assert redactor.scrub_text(f"got {line}!") == f"got {MARKER}!"


def test_overlapping_occurrences_are_all_hidden() -> None:
    redactor = redactor_for(b"abcab")
    assert redactor.scrub_text("xabcabcaby") == f"x{MARKER}y"


def test_scrubbing_twice_changes_nothing() -> None:
    for secret in (b"dact", b"redacted", b"<redacted>", b"hunter22"):
        redactor = redactor_for(secret)
        once = redactor.scrub_text(f"a {secret.decode()} b {MARKER} c")
        assert redactor.scrub_text(once) == once


# -- fast paths ----------------------------------------------------------------------


def test_an_empty_redactor_returns_everything_as_is() -> None:
    redactor = Redactor()
    assert not redactor.active
    reply = Reply.build(535, "5.7.8 AUTH PLAIN AGJvYgBodW50ZXIy")
    assert redactor.reply(reply) is reply
    text, data = "hunter22", b"hunter22"
    assert redactor.scrub_text(text) is text
    assert redactor.scrub_bytes(data) is data
    error = AuthenticationError("x", reply)
    assert redactor.error(error) is error
    assert error.reply is reply


def test_clean_replies_come_back_as_the_same_object() -> None:
    redactor = redactor_for(PASSWORD.encode())
    assert redactor.active
    for reply in (
        Reply.build(250, "2.1.5 <bob@example.org> recipient ok"),
        Reply.build(250, "mx.example.org", "PIPELINING", "AUTH PLAIN LOGIN"),
        Reply.build(220),
    ):
        assert redactor.reply(reply) is reply
    text = "nothing to see"
    assert redactor.scrub_text(text) is text
    assert redactor.scrub_text(text, truncated=True) is text


def test_add_refuses_non_bytes_without_showing_it() -> None:
    redactor = Redactor()
    with pytest.raises(TypeError) as info:
        redactor.add(PASSWORD)  # type: ignore[arg-type]
    assert PASSWORD not in str(info.value)


def test_repr_shows_no_secret() -> None:
    redactor = redactor_for(PASSWORD.encode(), TOKEN.encode())
    assert_hidden(repr(redactor), PASSWORD.encode(), TOKEN.encode())
    assert repr(redactor).startswith("<Redactor")


# -- replies: a server echoing the AUTH exchange ----------------------------------------


@pytest.mark.parametrize(
    ("name", "factory", "challenges", "secrets"),
    EXCHANGES,
    ids=[e[0] for e in EXCHANGES],
)
def test_a_535_echoing_every_line_sent(
    name: str,
    factory: Callable[[], SASLMechanism],
    challenges: list[bytes],
    secrets: list[bytes],
) -> None:
    mech = factory()
    redactor, wire, raw = exchange(mech, challenges)
    for line, response in zip(wire, raw, strict=True):
        auth_line = b"AUTH " + mech.name.encode() + b" " + line
        for echo in (auth_line, line, response.replace(b"\0", b"^@")):
            reply = redactor.reply(Reply.build(535, b"5.7.8 you sent: " + echo))
            assert reply.code == 535
            assert reply.enhanced_code == "5.7.8"
            assert_reply_hidden(reply, *secrets)
            # What the session makes of it.
            error = redactor.error(
                AuthenticationError(f"authentication failed: {reply.describe()}", reply)
            )
            for text in (str(error), repr(error)):
                assert_hidden(text, *secrets)
    # Whatever the wire carried that is secret is in the redactor.
    for secret in secrets:
        assert redactor.scrub_bytes(secret) != secret or len(secret) < MIN_FORM_LENGTH


@pytest.mark.parametrize(
    ("name", "factory", "challenges", "secrets"),
    EXCHANGES,
    ids=[e[0] for e in EXCHANGES],
)
def test_a_334_echoing_the_base64_sent(
    name: str,
    factory: Callable[[], SASLMechanism],
    challenges: list[bytes],
    secrets: list[bytes],
) -> None:
    mech = factory()
    redactor, wire, _ = exchange(mech, challenges)
    for line in wire:
        received = Reply.build(334, line)
        shown = mech.transcript_reply(redactor.reply(received))
        assert_reply_hidden(shown, *secrets)


def test_the_auth_line_echoed_in_a_535_from_the_wire() -> None:
    mech = Plain(PW)
    redactor, wire, _ = exchange(mech, [])
    parser = ReplyParser()
    parser.feed(b"535 5.7.8 Bad credentials: AUTH PLAIN " + wire[0] + b"\r\n")
    received = parser.next_reply()
    assert received is not None
    shown = redactor.reply(received)
    assert shown.text == f"5.7.8 Bad credentials: AUTH PLAIN {MARKER}"
    assert shown.enhanced_code == "5.7.8"
    assert_reply_hidden(shown, PASSWORD.encode())
    # The reply is still valid: it goes back on the wire as it is.
    assert shown.to_bytes() == f"535 5.7.8 Bad credentials: AUTH PLAIN {MARKER}\r\n".encode()


def test_a_decoded_echo_of_the_password() -> None:
    redactor, _, _ = exchange(Login(PW), [b"Username:", b"Password:"])
    reply = redactor.reply(Reply.build(535, f"5.7.8 user {USER} password {PASSWORD} refused"))
    # The username is no secret; the password is.
    assert reply.text == f"5.7.8 user {USER} password {MARKER} refused"


def test_a_secret_wrapped_over_two_reply_lines() -> None:
    redactor, wire, _ = exchange(Plain(PW), [])
    line = wire[0]
    for cut in range(len(line) + 1):
        received = Reply.build(
            535, b"5.7.8 you sent " + line[:cut], b"5.7.8 " + line[cut:] + b" which is wrong"
        )
        shown = redactor.reply(received)
        assert_reply_hidden(shown, PASSWORD.encode(), line)
        assert shown.lines[1].endswith(b" which is wrong")
        assert shown.enhanced_code == "5.7.8"


def test_a_raw_password_wrapped_over_lines_without_enhanced_codes() -> None:
    redactor = redactor_for(b"correct horse battery")
    shown = redactor.reply(Reply.build(535, "you sent correct horse", " battery staple"))
    assert shown.lines == (f"you sent {MARKER}".encode(), f"{MARKER} staple".encode())


def test_a_secret_over_the_enhanced_code_is_hidden_and_the_code_found_again() -> None:
    redactor = redactor_for(b"8 Auth")
    shown = redactor.reply(Reply.build(535, "5.7.8 Authentication failed"))
    assert_reply_hidden(shown, b"8 Auth")
    assert shown.enhanced_code is None  # no longer at the start of the text


# -- exceptions ------------------------------------------------------------------------


def test_error_scrubs_the_chain_the_reply_and_the_replies() -> None:
    secret = PASSWORD.encode()
    redactor = redactor_for(secret)
    echo = Reply.build(550, f"5.1.1 {PASSWORD}")
    cause = PermanentReplyError(echo, "RCPT")
    error = RecipientsRefusedError({"a@example.org": echo}, echo)
    error.__cause__ = cause
    cause.__context__ = ValueError(b"raw " + secret)
    assert redactor.error(error) is error
    seen: BaseException | None = error
    while seen is not None:
        assert_hidden(str(seen), secret)
        assert_hidden(repr(seen), secret)
        seen = seen.__cause__ or seen.__context__
    assert_reply_hidden(error.reply, secret)
    assert_reply_hidden(cause.reply, secret)
    assert_reply_hidden(error.replies["a@example.org"], secret)


def test_error_built_from_a_wrapped_echo() -> None:
    # describe() joins the lines with " / ": the message alone no longer
    # holds the base64 whole, the reply it came from does.
    redactor, wire, _ = exchange(Plain(PW), [])
    line = wire[0]
    for cut in range(len(line) + 1):
        received = Reply.build(535, b"5.7.8 you sent " + line[:cut], b"5.7.8 " + line[cut:])
        error = AuthenticationError(f"authentication failed: {received.describe()}", received)
        redactor.error(error)
        assert error.reply is not None
        assert str(error) == f"authentication failed: {error.reply.describe()}"
        for piece in (line[:cut], line[cut:]):
            if len(piece) >= MIN_FORM_LENGTH:
                assert piece.decode() not in str(error)
        assert_hidden(str(error), PASSWORD.encode(), line)


def test_error_hides_a_secret_cut_short_in_an_excerpt() -> None:
    # decode_challenge shows 40 octets of a challenge that is not base64: a
    # server echoing the AUTH line there shows the start of the credentials.
    redactor, wire, _ = exchange(Plain(PW), [])
    with pytest.raises(AuthenticationError) as info:
        decode_challenge(b"AUTH PLAIN " + wire[0])
    error = redactor.error(info.value)
    assert f"AUTH PLAIN {MARKER}..." in str(error)
    assert_hidden(str(error), PASSWORD.encode(), wire[0])
    # The same for the parser's excerpts of a broken line.
    parser = ReplyParser()
    parser.feed(f"535 5.7.8 {PASSWORD}\n".encode())
    with pytest.raises(RemoteProtocolError) as broken:
        parser.next_reply()
    assert_hidden(str(redactor.error(broken.value)), PASSWORD.encode())


@pytest.mark.parametrize("cut", range(MIN_FORM_LENGTH, len(PASSWORD)))
def test_a_password_cut_before_dots(cut: int) -> None:
    redactor = redactor_for(PASSWORD.encode())
    error = redactor.error(AuthenticationError(f"server said: {PASSWORD[:cut]}..."))
    assert str(error) == f"server said: {MARKER}..."


# -- Hypothesis --------------------------------------------------------------------------

# What a password can hold (Credentials refuses NUL and lone surrogates);
# CR and LF cannot be echoed inside a reply line.
safe_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\0\r\n"),
    min_size=1,
    max_size=24,
)


@given(
    username=safe_text,
    password=safe_text,
    encoding=st.sampled_from(ENCODINGS),
    where=st.tuples(st.text(max_size=8), st.text(max_size=8)),
    split=st.none() | st.integers(min_value=0),
)
def test_no_form_survives_an_echo(
    username: str,
    password: str,
    encoding: tuple[str, Callable[[bytes], str]],
    where: tuple[str, str],
    split: int | None,
) -> None:
    mech = Plain(Credentials(username=username, password=password))
    redactor, wire, _ = exchange(mech, [])
    _, encode = encoding
    secret = password.encode()
    before, after = (s.replace("\r", "").replace("\n", "") for s in where)
    echoes = [encode(secret), wire[0].decode(), f"AUTH PLAIN {wire[0].decode()}"]
    for echo in echoes:
        text = f"{before}{echo}{after}"
        assert_hidden(redactor.scrub_text(text), secret)
        assert_hidden(
            redactor.scrub_bytes(text.encode("utf-8")).decode("utf-8", "surrogateescape"), secret
        )
        data = text.encode("utf-8")
        if split is None:
            lines = [b"5.7.8 " + data]
        else:
            cut = split % (len(data) + 1)
            lines = [b"5.7.8 " + data[:cut], b"5.7.8 " + data[cut:]]
        shown = redactor.reply(Reply.build(535, *lines))
        assert_reply_hidden(shown, secret)
        error = redactor.error(AuthenticationError(shown.describe(), shown))
        assert_hidden(str(error), secret)


@given(password=safe_text, text=st.text(max_size=40), truncated=st.booleans())
def test_scrubbing_is_idempotent(password: str, text: str, truncated: bool) -> None:
    redactor = redactor_for(password.encode())
    once = redactor.scrub_text(text + password + text, truncated=truncated)
    assert redactor.scrub_text(once, truncated=truncated) == once
    assert redactor.scrub_text(once) == once


@given(password=safe_text, text=st.text(max_size=60))
def test_text_without_the_secret_is_left_alone(password: str, text: str) -> None:
    redactor = redactor_for(password.encode())
    secret = password.encode()
    verbatim, encoded = secret_forms(secret)
    if not any(form in text for form in forms_of(secret) | verbatim | encoded):
        assert redactor.scrub_text(text) is text


# -- SCRAM transcripts ------------------------------------------------------------------


def assert_no_verifier(shown: bytes) -> None:
    for value in SCRAM_VERIFIER:
        assert value not in shown, (value, shown)


def test_scram_client_messages_in_a_transcript() -> None:
    mech = scram()
    initial = mech.initial_response()
    first = Auth(
        mechanism=mech.name, initial_response=initial, shown=mech.transcript_response(initial)
    )
    assert first.transcript() == b"AUTH SCRAM-SHA-256 n,,n=user,r=<redacted>\r\n"
    final = mech.respond(SCRAM_SERVER_FIRST)
    assert final == SCRAM_CLIENT_FINAL
    response = AuthResponse(data=final, shown=mech.transcript_response(final))
    # c=biws is base64("n,,"): a constant, shown; the nonce and proof are not.
    assert response.transcript() == b"c=biws,r=<redacted>,p=<redacted>\r\n"
    assert_no_verifier(first.transcript() + response.transcript())
    # The wire still carries the real thing.
    assert response.to_bytes() == base64.b64encode(SCRAM_CLIENT_FINAL) + b"\r\n"


def test_scram_server_messages_in_a_transcript() -> None:
    mech = scram()
    first = mech.transcript_challenge(base64.b64encode(SCRAM_SERVER_FIRST))
    assert first == b"r=<redacted>,s=<redacted>,i=<redacted>"
    final = mech.transcript_challenge(base64.b64encode(SCRAM_SERVER_FINAL))
    assert final == b"v=<redacted>"
    # Additional data with success, after an enhanced status code (RFC 4954 6).
    success = Reply.build(235, b"2.7.0 " + base64.b64encode(SCRAM_SERVER_FINAL))
    shown = mech.transcript_reply(success)
    assert shown.lines == (b"2.7.0 v=<redacted>",)
    assert shown.enhanced_code == "2.7.0"
    # A broken server sending it in clear is hidden too.
    assert mech.transcript_challenge(SCRAM_SERVER_FIRST) == first
    for line in (first, final, *shown.lines):
        assert_no_verifier(line)


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        pytest.param(b"e=invalid-proof", b"e=invalid-proof", id="server-error-shown"),
        pytest.param(
            b"r=abc,s=c2FsdA==,i=4096,x=ext",
            b"r=<redacted>,s=<redacted>,i=<redacted>,x=<redacted>",
            id="extension-hidden",
        ),
        pytest.param(b"m=must,r=abc", b"m=<redacted>,r=<redacted>", id="mandatory-extension"),
        pytest.param(b"r=abc,junk", b"r=<redacted>,<redacted>", id="malformed-part"),
        pytest.param(
            b"c=" + base64.b64encode(b"p=tls-exporter,,secretcbdata") + b",r=a,p=b",
            b"c=<redacted>,r=<redacted>,p=<redacted>",
            id="channel-binding-data-hidden",
        ),
        pytest.param(b"c=eSws,r=a,p=b", b"c=eSws,r=<redacted>,p=<redacted>", id="y-header-shown"),
        pytest.param(
            b"n,a=admin,n=user,r=abc", b"n,a=admin,n=user,r=<redacted>", id="authzid-shown"
        ),
    ],
)
def test_scram_transcript_rule(message: bytes, shown: bytes) -> None:
    mech = scram()
    assert mech.transcript_challenge(base64.b64encode(message)) == shown
    assert mech.transcript_response(message) == shown


@pytest.mark.parametrize(
    "text", [b"", b"2.7.0 Authentication successful", b"VXNlcm5hbWU6", b"not base64 at all"]
)
def test_scram_leaves_other_text_alone(text: bytes) -> None:
    mech = scram()
    assert mech.transcript_challenge(text) is text
    reply = Reply.build(235, text)
    assert mech.transcript_reply(reply) is reply


def test_scram_transcript_response_of_other_data_is_redacted() -> None:
    assert scram().transcript_response(b"") == b"<redacted>"
    assert scram().transcript_response(b"\xff\xfe") == b"<redacted>"


def test_scram_secrets_grow_with_the_exchange() -> None:
    mech = ScramSHA256(Credentials(username="user", password="I\u00adX"), nonce=SCRAM_NONCE)
    # The password as given and as SASLprep made it (RFC 4013: U+00AD maps
    # to nothing).
    assert mech.secrets() == ("I\u00adX".encode(), b"IX")
    mech = scram()
    assert mech.secrets() == (b"pencil",)
    mech.respond(SCRAM_SERVER_FIRST)
    assert mech.secrets() == (b"pencil", SCRAM_PROOF, SCRAM_CLIENT_FINAL)
    # The server signature is not one: the server sends it, and the session
    # decodes it from the reply (a redacted reply would not verify).
    mech.respond(SCRAM_SERVER_FINAL)
    assert SCRAM_SIGNATURE not in b"".join(mech.secrets())


def test_a_full_scram_exchange_leaves_no_verifier_in_a_transcript() -> None:
    """The session's wiring, step by step: what the transcript shows."""
    mech = scram()
    redactor = redactor_for(*mech.secrets())
    transcript: list[bytes] = []

    def received(reply: Reply) -> None:
        transcript.append(mech.transcript_reply(redactor.reply(reply)).to_bytes())

    initial = mech.initial_response()
    transcript.append(
        Auth(
            mechanism=mech.name, initial_response=initial, shown=mech.transcript_response(initial)
        ).transcript()
    )
    received(Reply.build(334, base64.b64encode(SCRAM_SERVER_FIRST)))
    final = mech.respond(SCRAM_SERVER_FIRST)
    redactor.add(*mech.secrets())
    transcript.append(AuthResponse(data=final, shown=mech.transcript_response(final)).transcript())
    received(Reply.build(235, b"2.7.0 " + base64.b64encode(SCRAM_SERVER_FINAL)))
    mech.verify_success(SCRAM_SERVER_FINAL)
    assert transcript == [
        b"AUTH SCRAM-SHA-256 n,,n=user,r=<redacted>\r\n",
        b"334 r=<redacted>,s=<redacted>,i=<redacted>\r\n",
        b"c=biws,r=<redacted>,p=<redacted>\r\n",
        b"235 2.7.0 v=<redacted>\r\n",
    ]


# -- other mechanisms' transcript rules ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "factory", "challenges", "secrets"),
    EXCHANGES,
    ids=[e[0] for e in EXCHANGES],
)
def test_transcript_rules_show_no_secret(
    name: str,
    factory: Callable[[], SASLMechanism],
    challenges: list[bytes],
    secrets: list[bytes],
) -> None:
    mech = factory()
    _, _, raw = exchange(mech, challenges)
    for response in raw:
        shown = mech.transcript_response(response)
        assert b"\r" not in shown
        assert b"\n" not in shown
        assert_hidden(shown.decode("utf-8", "surrogateescape"), *secrets)
        if name != "SCRAM-SHA-256":
            # The precedent: a response is <redacted>, whatever it holds.
            assert shown == b"<redacted>"
    for challenge in challenges:
        line = base64.b64encode(challenge)
        if name != "SCRAM-SHA-256":
            assert mech.transcript_challenge(line) is line


def test_transcript_rules_refuse_non_bytes() -> None:
    mech = Plain(PW)
    with pytest.raises(InvalidInputError):
        mech.transcript_response("x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        mech.transcript_challenge("x")  # type: ignore[arg-type]


def test_cram_md5_secrets_include_the_digest() -> None:
    mech = CramMD5(CRAM_USER)
    response = mech.respond(CRAM_CHALLENGE)
    assert mech.secrets() == (b"tanstaaftanstaaf", CRAM_DIGEST.encode(), response)


def test_login_username_is_not_a_secret() -> None:
    mech = Login(PW)
    assert mech.secrets() == (PASSWORD.encode(),)


def test_bearer_server_error_hides_a_json_escaped_token() -> None:
    # Some JSON encoders (PHP's, by default) write "/" as "\/".
    token = "ya29.a/b+c/d_e-f~g"
    mech = XOAuth2(OAuth2Token(username=USER, token=token))
    escaped = token.replace("/", "\\/")
    echo = f'{{"status": "401", "token": "{escaped}"}}'
    mech.respond(echo.encode())
    assert mech.server_error is not None
    assert "401" in mech.server_error
    assert_hidden(mech.server_error, token.encode())


# -- commands ------------------------------------------------------------------------


def test_commands_show_the_mechanism_rule_or_redacted() -> None:
    assert AuthResponse(data=b"x", shown=b"c=biws").transcript() == b"c=biws\r\n"
    assert AuthResponse(data=b"x").transcript() == b"<redacted>\r\n"
    assert Auth(mechanism="PLAIN", initial_response=b"x").transcript() == (
        b"AUTH PLAIN <redacted>\r\n"
    )
    # No initial response: nothing to show in its place.
    assert Auth(mechanism="LOGIN", shown=b"ignored").transcript() == b"AUTH LOGIN\r\n"
    # The transcript form is not part of the value.
    assert AuthResponse(data=b"x", shown=b"a") == AuthResponse(data=b"x")
    assert repr(AuthResponse(data=b"x", shown=b"a")) == "AuthResponse(data=<redacted>)"


@pytest.mark.parametrize("shown", [b"a\r\nRCPT TO:<x>", b"a\n", "text"])
def test_commands_refuse_a_transcript_form_of_more_than_one_line(shown: object) -> None:
    with pytest.raises(InvalidInputError, match="transcript form") as info:
        AuthResponse(data=b"x", shown=shown)  # type: ignore[arg-type]
    assert "RCPT" not in str(info.value)
    with pytest.raises(InvalidInputError, match="transcript form"):
        Auth(mechanism="PLAIN", initial_response=b"x", shown=shown)  # type: ignore[arg-type]


def test_binascii_agrees_on_the_cores() -> None:
    # The alignment arithmetic, checked against binascii directly: the core
    # at each offset is in the base64 of any message holding the secret there.
    secret = b"hunter22"
    _, encoded = secret_forms(secret)
    for prefix in (b"", b"a", b"ab", b"abc", b"\0bob\0"):
        for suffix in (b"", b"z", b"zz"):
            blob = binascii.b2a_base64(prefix + secret + suffix, newline=False).decode()
            assert any(form in blob for form in encoded), (prefix, suffix)


def test_a_long_token_is_hidden() -> None:
    # Thousands of characters in one form: the pattern is built without
    # recursing per character.
    token = "ya29." + "aB3-_.~+/" * 400
    mech = XOAuth2(OAuth2Token(username=USER, token=token))
    redactor, wire, _ = exchange(mech, [])
    reply = redactor.reply(Reply.build(535, b"5.7.8 " + wire[0][:3000], wire[0][3000:]))
    assert_reply_hidden(reply, token.encode(), wire[0])
    assert redactor.scrub_text(f"token {token} end") == f"token {MARKER} end"


@given(
    forms=st.sets(st.text(alphabet="ab.*(|\\[]?ä", min_size=1, max_size=6), min_size=1),
    probe=st.text(alphabet="ab.*(|\\[]?ä", max_size=8),
)
def test_the_pattern_matches_exactly_the_forms_longest_first(forms: set[str], probe: str) -> None:
    pattern = re.compile(_trie(forms))
    for form in forms:
        assert pattern.fullmatch(form)
    assert (pattern.fullmatch(probe) is not None) == (probe in forms)
    match = pattern.match(probe)
    prefixes = [form for form in forms if probe.startswith(form)]
    assert (match.group() if match else None) == max(prefixes, key=len, default=None)
