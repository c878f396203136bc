"""Tests for smtpcore._commands: commands checked when built, exact bytes out."""

from __future__ import annotations

import base64
import dataclasses
import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from smtpcore.testing import addresses

from smtpcore import _address as address_module
from smtpcore import _commands as commands_module
from smtpcore._commands import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    BodyType,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Expn,
    Helo,
    Lhlo,
    Mail,
    Noop,
    Notify,
    Quit,
    RawCommand,
    Rcpt,
    Ret,
    Rset,
    StartTLS,
    Vrfy,
    mail_line,
    rcpt_line,
    validate_domain,
    validate_mailbox,
    xtext_encode,
)
from smtpcore._errors import InvalidInputError, LocalProtocolError, Stage

FAST = settings(max_examples=300, deadline=None)


def untyped(value: object) -> Any:
    """Pass a value of the wrong type past mypy, as a careless caller would."""
    return value


def domain_of(octets: int) -> str:
    """A valid domain exactly ``octets`` long, with labels of at most 49."""
    labels = []
    remaining = octets
    while remaining > 50:
        labels.append("a" * 49)
        remaining -= 50
    labels.append("b" * remaining)
    result = ".".join(labels)
    assert len(result) == octets
    return result


# -- exact serialisation ------------------------------------------------------------

SERIALISATION = [
    pytest.param(Ehlo(domain="client.example.com"), b"EHLO client.example.com\r\n", id="ehlo"),
    pytest.param(Ehlo(domain="[192.0.2.1]"), b"EHLO [192.0.2.1]\r\n", id="ehlo-ipv4-literal"),
    pytest.param(
        Ehlo(domain="[IPv6:2001:db8::1]"), b"EHLO [IPv6:2001:db8::1]\r\n", id="ehlo-ipv6-literal"
    ),
    pytest.param(Helo(domain="client.example"), b"HELO client.example\r\n", id="helo"),
    pytest.param(Lhlo(domain="client.example"), b"LHLO client.example\r\n", id="lhlo"),
    pytest.param(StartTLS(), b"STARTTLS\r\n", id="starttls"),
    pytest.param(Auth(mechanism="CRAM-MD5"), b"AUTH CRAM-MD5\r\n", id="auth-no-initial"),
    pytest.param(Auth(mechanism="login"), b"AUTH LOGIN\r\n", id="auth-upper-cased"),
    pytest.param(
        Auth(mechanism="PLAIN", initial_response=b"\x00test\x001234"),
        b"AUTH PLAIN AHRlc3QAMTIzNA==\r\n",
        id="auth-plain-initial",
    ),
    pytest.param(
        Auth(mechanism="EXTERNAL", initial_response=b""),
        b"AUTH EXTERNAL =\r\n",
        id="auth-empty-initial-is-equals",
    ),
    pytest.param(
        Auth(mechanism="SCRAM-SHA-256_X", initial_response=b"n"),
        b"AUTH SCRAM-SHA-256_X bg==\r\n",
        id="auth-underscore-mechanism",
    ),
    pytest.param(AuthResponse(data=b"hello"), b"aGVsbG8=\r\n", id="auth-response"),
    pytest.param(AuthResponse(data=b""), b"\r\n", id="auth-response-empty"),
    pytest.param(AuthCancel(), b"*\r\n", id="auth-cancel"),
    pytest.param(Mail(sender="a@example.com"), b"MAIL FROM:<a@example.com>\r\n", id="mail"),
    pytest.param(Mail(sender=""), b"MAIL FROM:<>\r\n", id="mail-null-path"),
    pytest.param(Mail(sender="", size=0), b"MAIL FROM:<> SIZE=0\r\n", id="mail-size-zero"),
    pytest.param(
        Mail(sender="a@example.com", size=10**20 - 1),
        b"MAIL FROM:<a@example.com> SIZE=99999999999999999999\r\n",
        id="mail-size-20-digits",
    ),
    pytest.param(
        Mail(sender="a@example.com", body=BodyType.SEVEN_BIT),
        b"MAIL FROM:<a@example.com> BODY=7BIT\r\n",
        id="mail-body-7bit",
    ),
    pytest.param(
        Mail(sender="a@example.com", body=BodyType.EIGHT_BIT_MIME),
        b"MAIL FROM:<a@example.com> BODY=8BITMIME\r\n",
        id="mail-body-8bitmime",
    ),
    pytest.param(
        Mail(sender="a@example.com", body=BodyType.BINARY_MIME),
        b"MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n",
        id="mail-body-binarymime",
    ),
    pytest.param(
        Mail(sender="a@example.com", smtputf8=True),
        b"MAIL FROM:<a@example.com> SMTPUTF8\r\n",
        id="mail-smtputf8",
    ),
    pytest.param(
        Mail(sender="δοκιμή@παράδειγμα.δοκιμή", smtputf8=True),
        "MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8\r\n".encode(),
        id="mail-smtputf8-non-ascii",
    ),
    pytest.param(
        Mail(sender="a@example.com", ret=Ret.FULL),
        b"MAIL FROM:<a@example.com> RET=FULL\r\n",
        id="mail-ret-full",
    ),
    pytest.param(
        Mail(sender="a@example.com", ret=Ret.HDRS),
        b"MAIL FROM:<a@example.com> RET=HDRS\r\n",
        id="mail-ret-hdrs",
    ),
    pytest.param(
        Mail(sender="a@example.com", envid="QQ314159"),
        b"MAIL FROM:<a@example.com> ENVID=QQ314159\r\n",
        id="mail-envid",
    ),
    pytest.param(
        Mail(sender="a@example.com", envid="a b+c=d"),
        b"MAIL FROM:<a@example.com> ENVID=a+20b+2Bc+3Dd\r\n",
        id="mail-envid-xtext",
    ),
    pytest.param(
        Mail(sender="e=mc2@example.com", auth="e=mc2@example.com"),
        b"MAIL FROM:<e=mc2@example.com> AUTH=e+3Dmc2@example.com\r\n",
        id="mail-auth-rfc4954-example",
    ),
    pytest.param(
        Mail(sender="john+@example.org", auth="<>"),
        b"MAIL FROM:<john+@example.org> AUTH=<>\r\n",
        id="mail-auth-unknown",
    ),
    pytest.param(
        Mail(sender="a@example.com", requiretls=True),
        b"MAIL FROM:<a@example.com> REQUIRETLS\r\n",
        id="mail-requiretls",
    ),
    pytest.param(
        Mail(sender="a@example.com", extra=(("MT-PRIORITY", "3"), ("HOLD", None))),
        b"MAIL FROM:<a@example.com> MT-PRIORITY=3 HOLD\r\n",
        id="mail-extra",
    ),
    pytest.param(
        Mail(
            sender="a@example.com",
            size=1234,
            body=BodyType.EIGHT_BIT_MIME,
            smtputf8=True,
            ret=Ret.HDRS,
            envid="ID1",
            auth="a@example.com",
            requiretls=True,
            extra=(("X-ONE", "1"),),
        ),
        b"MAIL FROM:<a@example.com> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=ID1 "
        b"AUTH=a@example.com REQUIRETLS X-ONE=1\r\n",
        id="mail-every-parameter-in-order",
    ),
    pytest.param(
        Mail(sender="a@example.com", smtputf8=True, extra=(("X-NAME", "ü"),)),
        "MAIL FROM:<a@example.com> SMTPUTF8 X-NAME=ü\r\n".encode(),
        id="mail-extra-utf8-value",
    ),
    pytest.param(Rcpt(recipient="b@example.net"), b"RCPT TO:<b@example.net>\r\n", id="rcpt"),
    pytest.param(Rcpt(recipient="Postmaster"), b"RCPT TO:<Postmaster>\r\n", id="rcpt-postmaster"),
    pytest.param(
        Rcpt(recipient="POSTMASTER"), b"RCPT TO:<POSTMASTER>\r\n", id="rcpt-postmaster-uc"
    ),
    pytest.param(
        Rcpt(recipient="ü@example.net", utf8=True),
        "RCPT TO:<ü@example.net>\r\n".encode(),
        id="rcpt-utf8-not-serialised",
    ),
    pytest.param(
        Rcpt(recipient="b@example.net", notify=frozenset({Notify.NEVER})),
        b"RCPT TO:<b@example.net> NOTIFY=NEVER\r\n",
        id="rcpt-notify-never",
    ),
    pytest.param(
        Rcpt(recipient="b@example.net", notify=frozenset({Notify.DELAY, Notify.SUCCESS})),
        b"RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY\r\n",
        id="rcpt-notify-ordered",
    ),
    pytest.param(
        Rcpt(
            recipient="b@example.net",
            notify=frozenset({Notify.DELAY, Notify.FAILURE, Notify.SUCCESS}),
        ),
        b"RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE,DELAY\r\n",
        id="rcpt-notify-all",
    ),
    pytest.param(
        Rcpt(recipient="b@example.net", orcpt="b@example.net"),
        b"RCPT TO:<b@example.net> ORCPT=rfc822;b@example.net\r\n",
        id="rcpt-orcpt",
    ),
    pytest.param(
        Rcpt(recipient="b@example.net", orcpt="b+x=y z@example.net"),
        b"RCPT TO:<b@example.net> ORCPT=rfc822;b+2Bx+3Dy+20z@example.net\r\n",
        id="rcpt-orcpt-xtext",
    ),
    pytest.param(
        Rcpt(recipient="ü@example.net", utf8=True, orcpt="ü+=\\é@例え.jp"),
        b"RCPT TO:<\xc3\xbc@example.net> ORCPT=utf-8;"
        b"\\x{FC}\\x{2B}\\x{3D}\\x{5C}\\x{E9}@\\x{4F8B}\\x{3048}.jp\r\n",
        id="rcpt-orcpt-utf8-addr-xtext",
    ),
    pytest.param(
        Rcpt(recipient="b@example.net", orcpt="\U0001f600@example.net", utf8=True),
        b"RCPT TO:<b@example.net> ORCPT=utf-8;\\x{1F600}@example.net\r\n",
        id="rcpt-orcpt-astral",
    ),
    pytest.param(
        Rcpt(
            recipient="b@example.net",
            notify=frozenset({Notify.FAILURE}),
            orcpt="c@example.net",
            extra=(("X-A", None), ("X-B", "2")),
        ),
        b"RCPT TO:<b@example.net> NOTIFY=FAILURE ORCPT=rfc822;c@example.net X-A X-B=2\r\n",
        id="rcpt-every-parameter-in-order",
    ),
    pytest.param(Data(), b"DATA\r\n", id="data"),
    pytest.param(Bdat(size=0), b"BDAT 0\r\n", id="bdat-zero"),
    pytest.param(Bdat(size=123), b"BDAT 123\r\n", id="bdat"),
    pytest.param(Bdat(size=123, last=True), b"BDAT 123 LAST\r\n", id="bdat-last"),
    pytest.param(Bdat(size=0, last=True), b"BDAT 0 LAST\r\n", id="bdat-empty-last"),
    pytest.param(EndOfData(), b".\r\n", id="end-of-data"),
    pytest.param(Rset(), b"RSET\r\n", id="rset"),
    pytest.param(Noop(), b"NOOP\r\n", id="noop"),
    pytest.param(Noop(text="keep alive"), b"NOOP keep alive\r\n", id="noop-text"),
    pytest.param(Vrfy(string="Smith"), b"VRFY Smith\r\n", id="vrfy-atom"),
    pytest.param(Vrfy(string="John.Smith"), b"VRFY John.Smith\r\n", id="vrfy-dot-string"),
    pytest.param(Vrfy(string='"John Smith"'), b'VRFY "John Smith"\r\n', id="vrfy-quoted"),
    pytest.param(Vrfy(string="j@example.com"), b"VRFY j@example.com\r\n", id="vrfy-mailbox"),
    pytest.param(
        Vrfy(string="Jöhn", utf8=True), "VRFY Jöhn SMTPUTF8\r\n".encode(), id="vrfy-smtputf8"
    ),
    pytest.param(Expn(string="staff"), b"EXPN staff\r\n", id="expn"),
    pytest.param(
        Expn(string="list@example.com", utf8=True),
        b"EXPN list@example.com SMTPUTF8\r\n",
        id="expn-smtputf8",
    ),
    pytest.param(Quit(), b"QUIT\r\n", id="quit"),
    pytest.param(RawCommand(verb="HELP"), b"HELP\r\n", id="raw-no-argument"),
    pytest.param(
        RawCommand(verb="XCLIENT", argument="ADDR=192.0.2.1 NAME=x"),
        b"XCLIENT ADDR=192.0.2.1 NAME=x\r\n",
        id="raw-argument",
    ),
    pytest.param(
        RawCommand(verb="X-UTF", argument="ñ", utf8=True),
        "X-UTF ñ\r\n".encode(),
        id="raw-utf8",
    ),
]


@pytest.mark.parametrize(("command", "expected"), SERIALISATION)
def test_serialisation(command: Command, expected: bytes) -> None:
    assert command.to_bytes() == expected
    assert len(expected) <= command.line_limit


@pytest.mark.parametrize(("command", "expected"), SERIALISATION)
def test_transcript_equals_wire_except_sasl_data(command: Command, expected: bytes) -> None:
    if isinstance(command, AuthResponse) or (
        isinstance(command, Auth) and command.initial_response is not None
    ):
        assert command.transcript() != expected
    else:
        assert command.transcript() == expected


# -- verb, stage, pipelining ------------------------------------------------------------

METADATA = [
    pytest.param(Ehlo(domain="x.example"), "EHLO", Stage.EHLO, True, id="ehlo"),
    pytest.param(Helo(domain="x.example"), "HELO", Stage.EHLO, True, id="helo"),
    pytest.param(Lhlo(domain="x.example"), "LHLO", Stage.EHLO, True, id="lhlo"),
    pytest.param(StartTLS(), "STARTTLS", Stage.STARTTLS, True, id="starttls"),
    pytest.param(Auth(mechanism="PLAIN"), "AUTH", Stage.AUTH, True, id="auth"),
    pytest.param(AuthResponse(data=b"x"), "AUTH", Stage.AUTH, True, id="auth-response"),
    pytest.param(AuthCancel(), "AUTH", Stage.AUTH, True, id="auth-cancel"),
    pytest.param(Mail(sender=""), "MAIL", Stage.MAIL, False, id="mail"),
    pytest.param(Rcpt(recipient="a@b.example"), "RCPT", Stage.RCPT, False, id="rcpt"),
    pytest.param(Data(), "DATA", Stage.DATA_INIT, True, id="data"),
    pytest.param(Bdat(size=1), "BDAT", Stage.DATA_BLOCK, False, id="bdat"),
    pytest.param(Bdat(size=1, last=True), "BDAT", Stage.DATA_TERMINATION, False, id="bdat-last"),
    pytest.param(EndOfData(), ".", Stage.DATA_TERMINATION, False, id="end-of-data"),
    pytest.param(Rset(), "RSET", Stage.RSET, False, id="rset"),
    pytest.param(Noop(), "NOOP", Stage.NOOP, True, id="noop"),
    pytest.param(Vrfy(string="x"), "VRFY", Stage.COMMAND, True, id="vrfy"),
    pytest.param(Expn(string="x"), "EXPN", Stage.COMMAND, True, id="expn"),
    pytest.param(Quit(), "QUIT", Stage.QUIT, True, id="quit"),
    pytest.param(RawCommand(verb="HELP"), "HELP", Stage.COMMAND, True, id="raw"),
    pytest.param(
        RawCommand(verb="XPIPE", ends_group=False), "XPIPE", Stage.COMMAND, False, id="raw-pipe"
    ),
]


@pytest.mark.parametrize(("command", "verb", "stage", "ends_group"), METADATA)
def test_metadata(command: Command, verb: str, stage: Stage, ends_group: bool) -> None:
    assert command.verb == verb
    assert command.stage is stage
    assert command.ends_group is ends_group


def test_metadata_covers_every_command_class() -> None:
    covered = {type(p.values[0]) for p in METADATA}
    # dataclass(slots=True) replaces each class; look the names up in the module.
    public = {getattr(commands_module, cls.__name__) for cls in Command.__subclasses__()}
    assert covered == public


@pytest.mark.parametrize("command", [p.values[0] for p in SERIALISATION])
def test_commands_are_frozen(command: Command) -> None:
    fields = dataclasses.fields(command)  # type: ignore[arg-type]
    for field in fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(command, field.name, getattr(command, field.name))


def test_values_compare_and_hash() -> None:
    assert Mail(sender="a@b.example", size=1) == Mail(sender="a@b.example", size=1)
    assert Mail(sender="a@b.example", size=1) != Mail(sender="a@b.example", size=2)
    notify = frozenset({Notify.SUCCESS})
    assert (
        len({Rcpt(recipient="a@b.example", notify=notify)} | {Rcpt(recipient="a@b.example")}) == 2
    )


# -- invalid input ----------------------------------------------------------------------

LONG_LABEL = "a" * 64
INVALID: list[Any] = [
    # Line breaks and controls, in every argument that reaches the wire.
    pytest.param(
        lambda: Mail(sender="a@b.example\r\nRCPT TO:<x@y>"), "sender", "CRLF", id="mail-crlf"
    ),
    pytest.param(lambda: Mail(sender="a@b.example\rx"), "sender", "(CR)", id="mail-cr"),
    pytest.param(lambda: Mail(sender="a@b.example\nx"), "sender", "(LF)", id="mail-lf"),
    pytest.param(lambda: Mail(sender="a\x00@b.example"), "sender", "NUL", id="mail-nul"),
    pytest.param(lambda: Mail(sender="a\t@b.example"), "sender", "U+0009", id="mail-tab"),
    pytest.param(lambda: Mail(sender="a\x1b@b.example"), "sender", "U+001B", id="mail-esc"),
    pytest.param(lambda: Mail(sender="a\x7f@b.example"), "sender", "DEL", id="mail-del"),
    pytest.param(
        lambda: Mail(sender="a\x85@b.example", smtputf8=True), "sender", "U+0085", id="mail-c1"
    ),
    pytest.param(
        lambda: Mail(sender="a\u2028@b.example", smtputf8=True),
        "sender",
        "separator",
        id="mail-line-separator",
    ),
    pytest.param(
        lambda: Mail(sender="a\ud800@b.example", smtputf8=True),
        "sender",
        "surrogate",
        id="mail-lone-surrogate",
    ),
    pytest.param(lambda: Rcpt(recipient="x@y.example\r\n"), "recipient", "CRLF", id="rcpt-crlf"),
    pytest.param(lambda: Rcpt(recipient="x@y.example\n"), "recipient", "(LF)", id="rcpt-lf"),
    pytest.param(lambda: Ehlo(domain="a.example\r\nMAIL"), "EHLO domain", "CRLF", id="ehlo-crlf"),
    pytest.param(lambda: Helo(domain="a\x00b"), "HELO domain", "NUL", id="helo-nul"),
    pytest.param(lambda: Lhlo(domain="a b"), "LHLO domain", "space", id="lhlo-space"),
    pytest.param(lambda: Noop(text="x\r\nQUIT"), "NOOP text", "CRLF", id="noop-crlf"),
    pytest.param(lambda: Noop(text="x\x07"), "NOOP text", "U+0007", id="noop-bel"),
    pytest.param(lambda: Vrfy(string="x\ny"), "VRFY string", "(LF)", id="vrfy-lf"),
    pytest.param(lambda: Expn(string="x\ry"), "EXPN string", "(CR)", id="expn-cr"),
    pytest.param(
        lambda: RawCommand(verb="XA", argument="a\r\nQUIT"),
        "command argument",
        "CRLF",
        id="raw-crlf",
    ),
    pytest.param(
        lambda: RawCommand(verb="XA", argument="a\x7f"), "command argument", "DEL", id="raw-del"
    ),
    pytest.param(
        lambda: Mail(sender="a@b.example", envid="x\r\ny"), "ENVID", "CRLF", id="envid-crlf"
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", orcpt="x\ny"), "ORCPT", "(LF)", id="orcpt-lf"
    ),
    pytest.param(
        lambda: Mail(sender="a@b.example", extra=(("X", "a\r\nb"),)),
        "X parameter",
        "CRLF",
        id="extra-value-crlf",
    ),
    # Spaces and angle brackets: the way to smuggle parameters through an address.
    pytest.param(lambda: Mail(sender="a@b.example> SIZE=1"), "sender", "space", id="smuggle-size"),
    pytest.param(lambda: Mail(sender="a@b.example>"), "sender", "'>'", id="gt"),
    pytest.param(lambda: Mail(sender="<a@b.example>"), "sender", "'<'", id="angle-brackets"),
    pytest.param(lambda: Mail(sender="<>"), "sender", "'<'", id="null-path-spelled-out"),
    pytest.param(lambda: Mail(sender="a b@c.example"), "sender", "space", id="space-in-local"),
    pytest.param(lambda: Mail(sender='"a"@b.example c'), "sender", "space", id="space-after"),
    pytest.param(lambda: Mail(sender='"a"@b.example>'), "sender", "'>'", id="gt-after-quoted"),
    # Structure.
    pytest.param(lambda: Mail(sender="@"), "sender", "local part is empty", id="bare-at"),
    pytest.param(lambda: Mail(sender="@b.example"), "sender", "local part is empty", id="no-local"),
    pytest.param(lambda: Mail(sender="a@"), "sender", "domain is empty", id="no-domain"),
    pytest.param(lambda: Mail(sender="a.example"), "sender", "no '@'", id="no-at"),
    pytest.param(lambda: Rcpt(recipient="postmaster@"), "recipient", "domain", id="pm-at"),
    pytest.param(lambda: Mail(sender="a@b@c.example"), "sender", "'@'", id="two-ats"),
    pytest.param(lambda: Mail(sender=".a@b.example"), "sender", "starts with a dot", id="dot-lead"),
    pytest.param(lambda: Mail(sender="a.@b.example"), "sender", "ends with a dot", id="dot-trail"),
    pytest.param(lambda: Mail(sender="a..b@c.example"), "sender", "consecutive dots", id="dot-dot"),
    pytest.param(lambda: Mail(sender="a(b)@c.example"), "sender", "'('", id="local-paren"),
    pytest.param(lambda: Mail(sender="a,b@c.example"), "sender", "','", id="local-comma"),
    pytest.param(lambda: Mail(sender='a"b@c.example'), "sender", "'\"'", id="local-dquote"),
    pytest.param(lambda: Mail(sender='"ab@c.example'), "sender", "closing quote", id="unclosed"),
    pytest.param(lambda: Mail(sender='"ab\\"@c.example'), "sender", "closing quote", id="esc-q"),
    pytest.param(lambda: Mail(sender='"a"b@c.example'), "sender", "not '@'", id="after-quote"),
    pytest.param(lambda: Mail(sender='"a"'), "sender", "no '@'", id="quoted-only"),
    pytest.param(
        lambda: Mail(sender='"a\\é"@c.example', smtputf8=True),
        "sender",
        "backslash",
        id="quoted-pair-non-ascii",
    ),
    pytest.param(
        lambda: Mail(sender="a@.b.example"), "sender", "empty label", id="domain-dot-lead"
    ),
    pytest.param(lambda: Mail(sender="a@b.example."), "sender", "empty label", id="domain-dot-end"),
    pytest.param(lambda: Mail(sender="a@b..example"), "sender", "empty label", id="domain-dot-dot"),
    pytest.param(lambda: Mail(sender="a@-b.example"), "sender", "hyphen", id="label-hyphen-lead"),
    pytest.param(lambda: Mail(sender="a@b-.example"), "sender", "hyphen", id="label-hyphen-end"),
    pytest.param(lambda: Mail(sender="a@b_c.example"), "sender", "'_'", id="label-underscore"),
    pytest.param(lambda: Mail(sender="a@b!.example"), "sender", "'!'", id="label-bang"),
    # Lengths.
    pytest.param(lambda: Mail(sender="a" * 65 + "@b.example"), "sender", "64", id="local-65"),
    pytest.param(
        lambda: Mail(sender="é" * 33 + "@b.example", smtputf8=True),
        "sender",
        "66 octets",
        id="local-33-two-octet-chars",
    ),
    pytest.param(lambda: Mail(sender=f"a@{LONG_LABEL}.example"), "sender", "63", id="label-64"),
    pytest.param(lambda: Ehlo(domain=LONG_LABEL), "EHLO domain", "63", id="ehlo-label-64"),
    pytest.param(lambda: Ehlo(domain=domain_of(256)), "EHLO domain", "255", id="domain-256"),
    pytest.param(
        lambda: Mail(sender="a@" + domain_of(256)), "sender", "domain is 256", id="mail-domain-256"
    ),
    pytest.param(
        lambda: Mail(sender="a" * 64 + "@" + domain_of(190)), "sender", "path is 257", id="path-257"
    ),
    # Address literals.
    pytest.param(lambda: Mail(sender="a@[300.1.1.1]"), "sender", "IPv4", id="ipv4-300"),
    pytest.param(lambda: Mail(sender="a@[1.2.3]"), "sender", "IPv4", id="ipv4-short"),
    pytest.param(lambda: Mail(sender="a@[01.2.3.4]"), "sender", "IPv4", id="ipv4-leading-zero"),
    pytest.param(lambda: Mail(sender="a@[IPv6:zz]"), "sender", "IPv6", id="ipv6-zz"),
    pytest.param(lambda: Mail(sender="a@[IPv6:1::2::3]"), "sender", "IPv6", id="ipv6-two-gaps"),
    pytest.param(lambda: Mail(sender="a@[IPv6:fe80::1%eth0]"), "sender", "IPv6", id="ipv6-zone-id"),
    pytest.param(lambda: Mail(sender="a@[192.0.2.1"), "sender", "']'", id="literal-unclosed"),
    pytest.param(lambda: Mail(sender="a@[]"), "sender", "empty", id="literal-empty"),
    pytest.param(lambda: Mail(sender="a@[x-:abc]"), "sender", "tag", id="literal-bad-tag"),
    pytest.param(lambda: Mail(sender="a@[tag:]"), "sender", "content", id="literal-no-content"),
    pytest.param(lambda: Mail(sender="a@[tag:a[b]"), "sender", "content", id="literal-bracket"),
    pytest.param(lambda: Ehlo(domain="[1.2.3.4]x"), "EHLO domain", "']'", id="literal-trailing"),
    # Non-ASCII without SMTPUTF8, and where it is never allowed.
    pytest.param(lambda: Mail(sender="ü@b.example"), "sender", "SMTPUTF8", id="utf8-local"),
    pytest.param(lambda: Mail(sender="a@bü.example"), "sender", "SMTPUTF8", id="utf8-domain"),
    pytest.param(lambda: Rcpt(recipient="ü@b.example"), "recipient", "SMTPUTF8", id="rcpt-utf8"),
    pytest.param(lambda: Ehlo(domain="bü.example"), "EHLO domain", "A-label", id="ehlo-utf8"),
    pytest.param(
        lambda: Mail(sender="a@b.example", envid="é"), "ENVID", "ASCII", id="envid-non-ascii"
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", orcpt="é@b.example"),
        "ORCPT",
        "SMTPUTF8",
        id="orcpt-non-ascii",
    ),
    pytest.param(
        lambda: Mail(sender="a@b.example", extra=(("X", "é"),)),
        "X parameter",
        "SMTPUTF8",
        id="extra-non-ascii",
    ),
    pytest.param(lambda: Vrfy(string="Jöhn"), "VRFY string", "SMTPUTF8", id="vrfy-non-ascii"),
    pytest.param(lambda: Noop(text="é"), "NOOP text", "non-ASCII", id="noop-non-ascii"),
    pytest.param(
        lambda: RawCommand(verb="XA", argument="é"), "command argument", "SMTPUTF8", id="raw-utf8"
    ),
    pytest.param(
        lambda: Mail(sender="a@[IPv6:é]", smtputf8=True), "sender", "non-ASCII", id="literal-utf8"
    ),
    pytest.param(
        lambda: Mail(sender="a@b\u3002example", smtputf8=True),
        "sender",
        "full stop",
        id="ideographic-full-stop",
    ),
    pytest.param(
        lambda: Mail(sender="a@b\u00a0c.example", smtputf8=True),
        "sender",
        "U+00A0",
        id="domain-nbsp",
    ),
    pytest.param(
        lambda: Mail(sender="a@\u0301b.example", smtputf8=True),
        "sender",
        "combining mark",
        id="u-label-leading-mark",
    ),
    pytest.param(
        lambda: Mail(sender="a@e\u0301.example", smtputf8=True), "sender", "NFC", id="u-label-nfd"
    ),
    pytest.param(
        lambda: Mail(sender="a@" + "ü" * 60 + ".example", smtputf8=True),
        "sender",
        "63",
        id="u-label-a-label-too-long",
    ),
    # The null path and Postmaster.
    pytest.param(lambda: Rcpt(recipient=""), "recipient", "MAIL", id="rcpt-null-path"),
    pytest.param(lambda: Rcpt(recipient="Postmistress"), "recipient", "no '@'", id="not-pm"),
    # SIZE, BDAT.
    pytest.param(lambda: Mail(sender="", size=-1), "SIZE", "negative", id="size-negative"),
    pytest.param(lambda: Mail(sender="", size=10**20), "SIZE", "20 digits", id="size-21-digits"),
    pytest.param(lambda: Mail(sender="", size=untyped(True)), "SIZE", "int", id="size-bool"),
    pytest.param(lambda: Mail(sender="", size=untyped("1")), "SIZE", "int", id="size-str"),
    pytest.param(lambda: Bdat(size=-1), "BDAT size", "negative", id="bdat-negative"),
    pytest.param(lambda: Bdat(size=untyped(1.0)), "BDAT size", "int", id="bdat-float"),
    pytest.param(lambda: Bdat(size=10**600), "BDAT size", "digits", id="bdat-huge"),
    pytest.param(lambda: Bdat(size=-(10**6000)), "BDAT size", "negative", id="bdat-huge-neg"),
    # DSN parameters.
    pytest.param(lambda: Mail(sender="", envid=""), "ENVID", "empty", id="envid-empty"),
    pytest.param(lambda: Mail(sender="", envid="x" * 101), "ENVID", "100", id="envid-101"),
    pytest.param(lambda: Rcpt(recipient="a@b.example", orcpt=""), "ORCPT", "empty", id="orcpt-0"),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", notify=frozenset()), "NOTIFY", "empty", id="notify-0"
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", notify=frozenset({Notify.NEVER, Notify.DELAY})),
        "NOTIFY",
        "NEVER",
        id="notify-never-and-delay",
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", notify=untyped(frozenset({"SUCCESS"}))),
        "NOTIFY",
        "Notify value",
        id="notify-str-member",
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", notify=untyped("SUCCESS")),
        "NOTIFY",
        "set",
        id="notify-str",
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", notify=untyped([[1]])),
        "NOTIFY",
        "set",
        id="notify-unhashable",
    ),
    pytest.param(lambda: Mail(sender="", body=untyped("8BITMIME")), "BODY", "BodyType", id="body"),
    pytest.param(lambda: Mail(sender="", ret=untyped("FULL")), "RET", "Ret", id="ret-str"),
    pytest.param(lambda: Mail(sender="", auth=""), "AUTH= parameter", "empty", id="auth-empty"),
    pytest.param(
        lambda: Mail(sender="", auth="no-at"), "AUTH= parameter", "'@'", id="auth-not-mailbox"
    ),
    pytest.param(
        lambda: Mail(sender="", auth="ü@b.example"),
        "AUTH= parameter",
        "SMTPUTF8",
        id="auth-non-ascii",
    ),
    # Extra parameters.
    pytest.param(
        lambda: Mail(sender="", extra=(("SIZE", "1"),)), "ESMTP parameter", "SIZE", id="dup-size"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("body", "7BIT"),)), "ESMTP parameter", "BODY", id="dup-body"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("SmtpUtf8", None),)),
        "ESMTP parameter",
        "SMTPUTF8",
        id="dup-smtputf8",
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("REQUIRETLS", None),)),
        "ESMTP parameter",
        "REQUIRETLS",
        id="dup-requiretls",
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", extra=(("notify", "NEVER"),)),
        "ESMTP parameter",
        "NOTIFY",
        id="dup-notify",
    ),
    pytest.param(
        lambda: Rcpt(recipient="a@b.example", extra=(("ORCPT", "rfc822;x"),)),
        "ESMTP parameter",
        "ORCPT",
        id="dup-orcpt",
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("X-A", None), ("x-a", "1"))),
        "ESMTP parameter",
        "twice",
        id="extra-twice",
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("-X", None),)), "ESMTP parameter", "keyword", id="kw-hyph"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("", None),)), "ESMTP parameter", "keyword", id="kw-empty"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("X_A", None),)), "ESMTP parameter", "keyword", id="kw-und"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("X A", None),)), "ESMTP parameter", "keyword", id="kw-sp"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("X", ""),)), "X parameter", "empty", id="value-empty"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("X", "a b"),)), "X parameter", "space", id="value-space"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=(("X", "a=b"),)), "X parameter", "'='", id="value-equals"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=untyped((("X",),))), "ESMTP parameter", "pair", id="not-pair"
    ),
    pytest.param(
        lambda: Mail(sender="", extra=untyped("X=1")), "ESMTP parameter", "tuple", id="extra-str"
    ),
    # AUTH.
    pytest.param(lambda: Auth(mechanism=""), "AUTH mechanism", "1 to 20", id="mech-empty"),
    pytest.param(lambda: Auth(mechanism="A" * 21), "AUTH mechanism", "1 to 20", id="mech-21"),
    pytest.param(lambda: Auth(mechanism="PLAIN X"), "AUTH mechanism", "A-Z", id="mech-space"),
    pytest.param(lambda: Auth(mechanism="PLAIN\r\n"), "AUTH mechanism", "A-Z", id="mech-crlf"),
    pytest.param(lambda: Auth(mechanism="PLÄIN"), "AUTH mechanism", "A-Z", id="mech-non-ascii"),
    pytest.param(
        lambda: Auth(mechanism="PLAIN", initial_response=untyped("secret")),
        "AUTH initial response",
        "bytes",
        id="initial-str",
    ),
    pytest.param(
        lambda: AuthResponse(data=untyped("secret")), "AUTH response", "bytes", id="response-str"
    ),
    # Raw commands.
    pytest.param(lambda: RawCommand(verb=""), "command verb", "1 to 20", id="verb-empty"),
    pytest.param(lambda: RawCommand(verb="1X"), "command verb", "letter", id="verb-digit-first"),
    pytest.param(lambda: RawCommand(verb="X" * 21), "command verb", "1 to 20", id="verb-21"),
    pytest.param(lambda: RawCommand(verb="X Y"), "command verb", "letter", id="verb-space"),
    pytest.param(lambda: RawCommand(verb="X\r\n"), "command verb", "letter", id="verb-crlf"),
    pytest.param(lambda: RawCommand(verb="data"), "command verb", "DATA", id="verb-data"),
    pytest.param(lambda: RawCommand(verb="STARTTLS"), "command verb", "STARTTLS", id="verb-tls"),
    pytest.param(lambda: RawCommand(verb="Mail"), "command verb", "MAIL", id="verb-mail"),
    pytest.param(lambda: RawCommand(verb="BDAT"), "command verb", "BDAT", id="verb-bdat"),
    # VRFY / EXPN arguments.
    pytest.param(lambda: Vrfy(string=""), "VRFY string", "empty", id="vrfy-empty"),
    pytest.param(lambda: Vrfy(string="John Smith"), "VRFY string", "space", id="vrfy-space"),
    pytest.param(lambda: Vrfy(string="x SMTPUTF8"), "VRFY string", "space", id="vrfy-forged-param"),
    pytest.param(lambda: Vrfy(string="<x@y.example>"), "VRFY string", "'<'", id="vrfy-angle"),
    pytest.param(lambda: Expn(string='"a" b'), "EXPN string", "after the closing", id="expn-q"),
    pytest.param(lambda: Expn(string="a..b"), "EXPN string", "consecutive dots", id="expn-dots"),
    # Wrong types.
    pytest.param(lambda: Mail(sender=untyped(None)), "sender", "str", id="sender-none"),
    pytest.param(lambda: Mail(sender=untyped(b"a@b.example")), "sender", "str", id="sender-bytes"),
    pytest.param(lambda: Rcpt(recipient=untyped(1)), "recipient", "str", id="recipient-int"),
    pytest.param(lambda: Ehlo(domain=untyped(None)), "EHLO domain", "str", id="domain-none"),
    pytest.param(lambda: Noop(text=untyped(None)), "NOOP text", "str", id="noop-none"),
]


@pytest.mark.parametrize(("make", "field", "mentions"), INVALID)
def test_invalid_input(make: Callable[[], object], field: str, mentions: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        make()
    assert info.value.field == field
    assert mentions in info.value.reason
    # The documented families: a caller mistake, and a ValueError.
    assert isinstance(info.value, LocalProtocolError)
    assert isinstance(info.value, ValueError)
    # The message never carries a raw line break into a log.
    assert "\r" not in str(info.value)
    assert "\n" not in str(info.value)


# -- the address grammar, re-exported ------------------------------------------------------


def test_address_names_are_re_exported_from_their_module() -> None:
    # The grammar lives in smtpcore._address; importing it from here keeps working.
    for name in address_module.__all__:
        assert getattr(commands_module, name) is getattr(address_module, name)
        assert name in commands_module.__all__


# -- valid addresses ----------------------------------------------------------------------

VALID_MAILBOXES = [
    pytest.param("a@b.example", False, id="simple"),
    pytest.param("first.last@sub.example.org", False, id="dotted"),
    pytest.param("!#$%&'*+-/=?^_`{|}~@example.org", False, id="every-atext-special"),
    pytest.param("x@1.2.3.4", False, id="numeric-labels"),
    pytest.param("x@a-b.example", False, id="inner-hyphen"),
    pytest.param("x@xn--bcher-kva.example", False, id="a-label"),
    pytest.param("x@EXAMPLE.ORG", False, id="upper-case"),
    pytest.param('"john smith"@example.com', False, id="quoted-space"),
    pytest.param('"a\\"b"@example.com', False, id="quoted-escaped-quote"),
    pytest.param('"a\\\\b"@example.com', False, id="quoted-escaped-backslash"),
    pytest.param('"a@b"@example.com', False, id="quoted-at"),
    pytest.param('"<a> b"@example.com', False, id="quoted-angle-brackets"),
    pytest.param('""@example.com', False, id="quoted-empty"),
    pytest.param("x@[192.0.2.1]", False, id="ipv4-literal"),
    pytest.param("x@[255.255.255.255]", False, id="ipv4-max"),
    pytest.param("x@[IPv6:2001:db8::1]", False, id="ipv6-literal"),
    pytest.param("x@[ipv6:::1]", False, id="ipv6-tag-case"),
    pytest.param("x@[IPv6:::ffff:192.0.2.1]", False, id="ipv6-v4-tail"),
    pytest.param("x@[x-tag:content!~]", False, id="general-literal"),
    pytest.param("ü@example.com", True, id="utf8-local"),
    pytest.param("用户@例子.广告", True, id="utf8-cjk"),
    pytest.param("θσερ@εχαμπλε.ψομ", True, id="utf8-greek"),
    pytest.param('"ü ü"@example.com', True, id="utf8-quoted"),
    pytest.param("a" * 64 + "@b.example", False, id="local-64"),
    pytest.param("é" * 32 + "@b.example", True, id="local-64-octets-utf8"),
    pytest.param(f"a@{'a' * 63}.example", False, id="label-63"),
    pytest.param("a@" + domain_of(252), False, id="domain-252-path-256"),
    pytest.param("a" * 64 + "@" + domain_of(189), False, id="path-256"),
]


@pytest.mark.parametrize(("mailbox", "utf8"), VALID_MAILBOXES)
def test_valid_mailbox(mailbox: str, utf8: bool) -> None:
    assert validate_mailbox(mailbox, field="test", utf8=utf8) == mailbox
    mail = Mail(sender=mailbox, smtputf8=utf8)
    suffix = " SMTPUTF8" if utf8 else ""
    assert mail.to_bytes() == f"MAIL FROM:<{mailbox}>{suffix}\r\n".encode()
    assert Rcpt(recipient=mailbox, utf8=utf8).to_bytes() == f"RCPT TO:<{mailbox}>\r\n".encode()


def test_domain_255_is_accepted() -> None:
    domain = domain_of(255)
    assert validate_domain(domain, field="test") == domain
    assert Ehlo(domain=domain).to_bytes() == f"EHLO {domain}\r\n".encode()


@pytest.mark.parametrize("name", ["postmaster", "Postmaster", "POSTMASTER", "PostMaster"])
def test_postmaster_only_for_rcpt(name: str) -> None:
    assert Rcpt(recipient=name).to_bytes() == f"RCPT TO:<{name}>\r\n".encode()
    with pytest.raises(InvalidInputError):
        Mail(sender=name)


# -- line lengths --------------------------------------------------------------------------


def filled_mail(length: int, **params: Any) -> Mail:
    """A MAIL command whose line is exactly ``length`` octets, filled by an extra."""
    base = len(Mail(sender="a@example.com", **params).to_bytes()) + len(" X-FILL=")
    assert length > base
    return Mail(sender="a@example.com", extra=(("X-FILL", "v" * (length - base)),), **params)


def filled_rcpt(length: int, **params: Any) -> Rcpt:
    base = len(Rcpt(recipient="a@example.com", **params).to_bytes()) + len(" X-FILL=")
    assert length > base
    return Rcpt(recipient="a@example.com", extra=(("X-FILL", "v" * (length - base)),), **params)


MAIL_ALLOWANCES = [
    pytest.param({}, 512, id="plain"),
    pytest.param({"size": 1}, 512 + 26, id="size"),
    pytest.param({"body": BodyType.BINARY_MIME}, 512 + 16, id="body"),
    pytest.param({"smtputf8": True}, 512 + 10, id="smtputf8"),
    pytest.param({"ret": Ret.FULL}, 512 + 100, id="ret"),
    pytest.param({"envid": "x"}, 512 + 100, id="envid"),
    pytest.param({"ret": Ret.HDRS, "envid": "x"}, 512 + 100, id="ret-and-envid-once"),
    pytest.param({"auth": "<>"}, 512 + 500, id="auth"),
    pytest.param({"requiretls": True}, 512 + 11, id="requiretls"),
    pytest.param(
        {
            "size": 1,
            "body": BodyType.EIGHT_BIT_MIME,
            "smtputf8": True,
            "ret": Ret.FULL,
            "envid": "x",
            "auth": "<>",
            "requiretls": True,
        },
        512 + 26 + 16 + 10 + 100 + 500 + 11,
        id="all",
    ),
]


@pytest.mark.parametrize(("params", "limit"), MAIL_ALLOWANCES)
def test_mail_line_limit(params: dict[str, Any], limit: int) -> None:
    assert Mail(sender="", **params).line_limit == limit
    at_limit = filled_mail(limit, **params)
    assert len(at_limit.to_bytes()) == limit
    with pytest.raises(InvalidInputError) as info:
        filled_mail(limit + 1, **params)
    assert str(limit + 1) in info.value.reason
    assert str(limit) in info.value.reason


RCPT_ALLOWANCES = [
    pytest.param({}, 512, id="plain"),
    pytest.param({"utf8": True}, 512, id="utf8-no-allowance"),
    pytest.param({"notify": frozenset({Notify.NEVER})}, 1012, id="notify"),
    pytest.param({"orcpt": "a@example.com"}, 1012, id="orcpt"),
    pytest.param(
        {"notify": frozenset({Notify.SUCCESS}), "orcpt": "a@example.com"}, 1012, id="both-once"
    ),
]


@pytest.mark.parametrize(("params", "limit"), RCPT_ALLOWANCES)
def test_rcpt_line_limit(params: dict[str, Any], limit: int) -> None:
    assert Rcpt(recipient="a@example.com", **params).line_limit == limit
    assert len(filled_rcpt(limit, **params).to_bytes()) == limit
    with pytest.raises(InvalidInputError):
        filled_rcpt(limit + 1, **params)


def test_long_envid_uses_room_left_by_a_short_address() -> None:
    # 100 characters that each take three octets of xtext: the line is longer
    # than 512 + 100 alone would allow for the parameter, but fits the budget.
    mail = Mail(sender="a@b.example", ret=Ret.FULL, envid="+" * 100)
    assert len(mail.to_bytes()) == len("MAIL FROM:<a@b.example> RET=FULL ENVID=") + 300 + 2
    assert len(mail.to_bytes()) <= mail.line_limit


# -- envelope lines for checked values ---------------------------------------------------------


def outcome(make: Callable[[], bytes]) -> bytes | tuple[str, str]:
    """The line, or the field and reason of the error instead."""
    try:
        return make()
    except InvalidInputError as exc:
        return (exc.field, exc.reason)


# Text Rcpt takes as ORCPT: no controls, no lone surrogates, no line separators.
ORCPT_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)


@st.composite
def mail_values(draw: st.DrawFn) -> dict[str, Any]:
    smtputf8 = draw(st.booleans())
    return {
        "sender": draw(st.one_of(st.just(""), addresses(smtputf8=smtputf8))),
        "size": draw(st.none() | st.integers(0, 10**20 - 1)),
        "body": draw(st.none() | st.sampled_from(BodyType)),
        "smtputf8": smtputf8,
        "ret": draw(st.none() | st.sampled_from(Ret)),
        "envid": draw(
            st.none()
            | st.text(
                st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=100
            )
        ),
        "requiretls": draw(st.booleans()),
    }


@st.composite
def rcpt_values(draw: st.DrawFn) -> dict[str, Any]:
    utf8 = draw(st.booleans())
    # Now and then an ORCPT long enough to pass the limit of 1012 octets.
    orcpt = draw(st.none() | ORCPT_TEXT | ORCPT_TEXT.map(lambda t: t * 60))
    notify = draw(
        st.none()
        | st.just(frozenset({Notify.NEVER}))
        | st.sets(st.sampled_from([Notify.SUCCESS, Notify.FAILURE, Notify.DELAY]), min_size=1).map(
            frozenset
        )
    )
    return {
        "recipient": draw(st.one_of(st.just("Postmaster"), addresses(smtputf8=utf8))),
        "notify": notify,
        "orcpt": orcpt,
        # Rcpt takes non-ASCII ORCPT text only with SMTPUTF8.
        "utf8": utf8 or (orcpt is not None and not orcpt.isascii()),
    }


def plain_mail_line(values: dict[str, Any]) -> bytes:
    """The MAIL line written the slow, obvious way, to check the fast one against."""
    parts = [f"MAIL FROM:<{values['sender']}>"]
    if values["size"] is not None:
        parts.append(f"SIZE={values['size']}")
    if values["body"] is not None:
        parts.append(f"BODY={values['body'].value}")
    if values["smtputf8"]:
        parts.append("SMTPUTF8")
    if values["ret"] is not None:
        parts.append(f"RET={values['ret'].value}")
    if values["envid"] is not None:
        parts.append(f"ENVID={xtext_encode(values['envid'])}")
    if values["requiretls"]:
        parts.append("REQUIRETLS")
    return (" ".join(parts) + "\r\n").encode()


def plain_rcpt_line(values: dict[str, Any]) -> bytes:
    """The RCPT line written the slow, obvious way."""
    parts = [f"RCPT TO:<{values['recipient']}>"]
    notify = values["notify"]
    if notify is not None:
        order = [Notify.NEVER, Notify.SUCCESS, Notify.FAILURE, Notify.DELAY]
        parts.append("NOTIFY=" + ",".join(n.value for n in order if n in notify))
    orcpt = values["orcpt"]
    if orcpt is not None and orcpt.isascii():
        parts.append(f"ORCPT=rfc822;{xtext_encode(orcpt)}")
    elif orcpt is not None:
        # RFC 6533 3: utf-8-addr-xtext, "\x{HEX}" for anything but QCHAR.
        qchar = {chr(c) for c in range(0x21, 0x7F)} - set("+=\\")
        escaped = "".join(c if c in qchar else f"\\x{{{ord(c):X}}}" for c in orcpt)
        parts.append(f"ORCPT=utf-8;{escaped}")
    return (" ".join(parts) + "\r\n").encode()


@FAST
@given(mail_values())
def test_mail_line_is_the_line_of_mail(values: dict[str, Any]) -> None:
    expected = outcome(lambda: Mail(**values).to_bytes())
    assert expected == plain_mail_line(values)  # every value drawn is valid and fits
    assert outcome(lambda: mail_line(**values)) == expected


@FAST
@given(rcpt_values())
def test_rcpt_line_is_the_line_of_rcpt(values: dict[str, Any]) -> None:
    expected = outcome(lambda: Rcpt(**values).to_bytes())
    plain = plain_rcpt_line(values)
    if len(plain) <= 1012:  # 512 + 500 (RFC 3461 4); only an ORCPT makes a line longer
        assert expected == plain
    else:
        # Long ORCPTs are drawn too: then both refuse the line, with the same error.
        reason = (
            f"makes the command line {len(plain)} octets long, more than its limit of 1012 "
            "(RFC 5321 4.5.3.1.4 plus extension allowances)"
        )
        assert expected == ("RCPT parameters", reason)
    assert outcome(lambda: rcpt_line(**values)) == expected


def test_envelope_lines_do_not_check_addresses() -> None:
    # The caller checked them when the message was built; only the length is checked here.
    assert rcpt_line("not an address", notify=None, orcpt=None, utf8=False) == (
        b"RCPT TO:<not an address>\r\n"
    )
    line = mail_line(
        "a@b.example",
        size=10,
        body=BodyType.EIGHT_BIT_MIME,
        smtputf8=True,
        ret=Ret.HDRS,
        envid="id+1",
        requiretls=True,
    )
    assert line == (
        b"MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1"
        b" REQUIRETLS\r\n"
    )


def test_envelope_lines_still_enforce_the_line_limit() -> None:
    with pytest.raises(InvalidInputError, match=r"RCPT parameters.*more than its limit of 1012"):
        rcpt_line("a@b.example", notify=None, orcpt="x" * 1000, utf8=False)
    with pytest.raises(InvalidInputError, match=r"MAIL parameters.*more than its limit of 512"):
        mail_line(
            "a" * 600,
            size=None,
            body=None,
            smtputf8=False,
            ret=None,
            envid=None,
            requiretls=False,
        )


def text_boundary_cases() -> list[Any]:
    """(factory, length that just fits): each command, and the same one octet longer."""
    return [
        pytest.param(lambda n: Noop(text="x" * (n - 7)), id="noop"),
        pytest.param(lambda n: Vrfy(string="x" * (n - 7)), id="vrfy"),
        pytest.param(lambda n: Expn(string="x" * (n - 7)), id="expn"),
        pytest.param(lambda n: Vrfy(string="x" * (n - 16), utf8=True), id="vrfy-smtputf8"),
        pytest.param(lambda n: RawCommand(verb="XTEST", argument="x" * (n - 8)), id="raw"),
        pytest.param(lambda n: Bdat(size=int("9" * (n - 7))), id="bdat"),
        pytest.param(lambda n: Bdat(size=int("9" * (n - 12)), last=True), id="bdat-last"),
        # "AUTH " + 8-character mechanism + " " + 496 base64 octets + CRLF.
        pytest.param(
            lambda n: Auth(mechanism="M" * (n - 504), initial_response=b"\x00" * 372),
            id="auth-initial-response",
        ),
    ]


@pytest.mark.parametrize("make", text_boundary_cases())
def test_command_line_512_boundary(make: Callable[[int], Command]) -> None:
    command = make(MAX_COMMAND_LINE)
    assert len(command.to_bytes()) == MAX_COMMAND_LINE
    with pytest.raises(InvalidInputError, match="513"):
        make(MAX_COMMAND_LINE + 1)


def test_auth_initial_response_fits() -> None:
    assert Auth.initial_response_fits("MMMMMMMM", b"\x00" * 372)
    assert not Auth.initial_response_fits("MMMMMMMMM", b"\x00" * 372)
    assert Auth.initial_response_fits("plain", b"")
    with pytest.raises(InvalidInputError):
        Auth.initial_response_fits("BAD MECH", b"")
    with pytest.raises(InvalidInputError):
        Auth.initial_response_fits("PLAIN", untyped("secret"))


def test_auth_response_line_limit() -> None:
    # Base64 comes in blocks of four, so 12288 itself cannot be hit exactly:
    # 9213 octets make 12284 + CRLF, 9214 octets make 12288 + CRLF.
    fits = AuthResponse(data=b"\x00" * 9213)
    assert len(fits.to_bytes()) == 12286
    assert fits.line_limit == MAX_AUTH_LINE
    with pytest.raises(InvalidInputError, match="12290"):
        AuthResponse(data=b"\x00" * 9214)


def test_path_length_boundary() -> None:
    at_limit = "a" * 64 + "@" + domain_of(189)
    assert len(at_limit) + 2 == 256
    Mail(sender=at_limit)
    with pytest.raises(InvalidInputError, match="257"):
        Mail(sender="a" * 64 + "@" + domain_of(190))


# -- secrets ----------------------------------------------------------------------------------

SECRET = b"\x00user\x00correct horse battery staple"
SECRET_B64 = base64.b64encode(SECRET)


def secret_leaks(text: str | bytes) -> list[str]:
    if isinstance(text, str):
        text = text.encode("utf-8", "backslashreplace")
    found = []
    for needle, name in (
        (b"correct horse", "plain secret"),
        (SECRET_B64, "base64 secret"),
        (SECRET_B64[4:20], "part of the base64 secret"),
        (repr(SECRET).encode(), "repr of the secret"),
    ):
        if needle in text:
            found.append(name)
    return found


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(Auth(mechanism="PLAIN", initial_response=SECRET), id="auth"),
        pytest.param(AuthResponse(data=SECRET), id="auth-response"),
    ],
)
def test_sasl_data_is_redacted(command: Command) -> None:
    assert SECRET_B64 in command.to_bytes()  # the wire carries it...
    for shown in (repr(command), str(command), f"{command}"):
        assert secret_leaks(shown) == []  # ...nothing else does
        assert "<redacted>" in shown
    assert secret_leaks(command.transcript()) == []
    assert b"<redacted>" in command.transcript()


def test_transcripts_of_sasl_lines() -> None:
    assert Auth(mechanism="plain", initial_response=SECRET).transcript() == (
        b"AUTH PLAIN <redacted>\r\n"
    )
    assert Auth(mechanism="EXTERNAL", initial_response=b"").transcript() == (
        b"AUTH EXTERNAL <redacted>\r\n"
    )
    assert Auth(mechanism="LOGIN").transcript() == b"AUTH LOGIN\r\n"
    assert AuthResponse(data=SECRET).transcript() == b"<redacted>\r\n"
    assert AuthResponse(data=b"").transcript() == b"<redacted>\r\n"
    assert AuthCancel().transcript() == b"*\r\n"


def test_reprs_say_whether_there_is_an_initial_response() -> None:
    assert repr(Auth(mechanism="login")) == "Auth(mechanism='LOGIN', initial_response=None)"
    assert repr(Auth(mechanism="plain", initial_response=b"x")) == (
        "Auth(mechanism='PLAIN', initial_response=<redacted>)"
    )
    assert repr(AuthResponse(data=b"x")) == "AuthResponse(data=<redacted>)"


def test_errors_about_sasl_data_do_not_show_it() -> None:
    big = SECRET * 20
    with pytest.raises(InvalidInputError) as info:
        Auth(mechanism="PLAIN", initial_response=big)
    assert "RFC 4954" in info.value.reason
    assert info.value.value is None
    assert secret_leaks(str(info.value)) == []
    assert secret_leaks(repr(info.value)) == []
    with pytest.raises(InvalidInputError) as info:
        AuthResponse(data=SECRET * 400)
    assert info.value.value is None
    assert secret_leaks(str(info.value)) == []
    with pytest.raises(InvalidInputError) as info:
        AuthResponse(data=untyped("correct horse battery staple"))
    assert secret_leaks(str(info.value)) == []


def test_sasl_values_still_compare() -> None:
    assert AuthResponse(data=b"a") == AuthResponse(data=b"a")
    assert AuthResponse(data=b"a") != AuthResponse(data=b"b")
    assert Auth(mechanism="plain", initial_response=b"a") == Auth(
        mechanism="PLAIN", initial_response=b"a"
    )


# -- properties over arbitrary input -----------------------------------------------------------

ADDRESSY = st.text(
    st.sampled_from(
        [
            *(string.ascii_letters + string.digits + '@.-_+<>"\\ []:=,;()!#\r\n\t\x00\x7f'),
            *("é", "ü", "例", "\u2028", "\x85", "\u3002"),
        ]
    ),
    max_size=80,
)
ANY_TEXT = st.text(max_size=300)


def assert_clean_line(command: Command) -> bytes:
    line = command.to_bytes()
    assert line.endswith(b"\r\n")
    assert line.count(b"\r\n") == 1
    assert line.count(b"\r") == 1
    assert line.count(b"\n") == 1
    assert b"\x00" not in line
    assert len(line) <= command.line_limit
    line.decode("utf-8")  # never a broken encoding on the wire
    return line


@FAST
@given(st.one_of(ADDRESSY, ANY_TEXT), st.booleans())
def test_any_sender_is_refused_or_clean(sender: str, utf8: bool) -> None:
    try:
        command = Mail(sender=sender, smtputf8=utf8)
    except InvalidInputError:
        return
    line = assert_clean_line(command)
    if not sender.startswith('"'):
        # Unquoted: the address cannot end early and let its rest pass as
        # parameters. The line is exactly the path and nothing else.
        suffix = b" SMTPUTF8" if utf8 else b""
        assert line == b"MAIL FROM:<" + sender.encode() + b">" + suffix + b"\r\n"
        assert not set(sender) & set(" <>")


@FAST
@given(st.one_of(ADDRESSY, ANY_TEXT), st.booleans())
def test_any_recipient_is_refused_or_clean(recipient: str, utf8: bool) -> None:
    try:
        command = Rcpt(recipient=recipient, utf8=utf8, orcpt=recipient or None)
    except InvalidInputError:
        return
    assert_clean_line(command)
    assert command.to_bytes().startswith(b"RCPT TO:<" + recipient.encode() + b"> ORCPT=")


@FAST
@given(ANY_TEXT, st.booleans())
def test_any_argument_is_refused_or_clean(text: str, utf8: bool) -> None:
    makers: list[Callable[[], Command]] = [
        lambda: Noop(text=text),
        lambda: Vrfy(string=text, utf8=utf8),
        lambda: Expn(string=text, utf8=utf8),
        lambda: RawCommand(verb="XTEST", argument=text, utf8=utf8),
        lambda: Ehlo(domain=text),
        lambda: Mail(sender="", envid=text or None, smtputf8=utf8),
        lambda: Mail(sender="", auth=text or None, smtputf8=utf8),
        lambda: Mail(sender="", extra=(("X-T", text or None),), smtputf8=utf8),
    ]
    for make in makers:
        try:
            command = make()
        except InvalidInputError:
            continue
        assert_clean_line(command)


@FAST
@given(st.text(max_size=30), st.binary(max_size=600))
def test_any_auth_is_refused_or_clean(mechanism: str, data: bytes) -> None:
    try:
        command: Command = Auth(mechanism=mechanism, initial_response=data)
    except InvalidInputError as exc:
        shown = exc.value
    else:
        shown = None
        assert_clean_line(command)
        assert (
            repr(command) == f"Auth(mechanism={mechanism.upper()!r}, initial_response=<redacted>)"
        )
    # An error may show the mechanism name, never the response.
    assert shown is None or shown == mechanism
    assert AuthResponse(data=data).to_bytes() == base64.b64encode(data) + b"\r\n"


ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
ATOM = st.text(st.sampled_from(ATEXT), min_size=1, max_size=10)
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@FAST
@given(st.lists(ATOM, min_size=1, max_size=4), st.lists(LABEL, min_size=1, max_size=4))
def test_grammatical_mailboxes_are_accepted(atoms: list[str], labels: list[str]) -> None:
    mailbox = ".".join(atoms) + "@" + ".".join(labels)
    assume(len(".".join(atoms)) <= 64)
    assert Mail(sender=mailbox).to_bytes() == f"MAIL FROM:<{mailbox}>\r\n".encode()
    assert Rcpt(recipient=mailbox).to_bytes() == f"RCPT TO:<{mailbox}>\r\n".encode()
