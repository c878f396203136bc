"""Write the seed corpora of the fuzz harnesses (``fuzz/corpus/<harness>/``).

Run ``python -m fuzz.make_corpus`` from the repository root; the output only
depends on this file. The session seeds are real server conversations
(Postfix 3.7, aiosmtpd, Exim with PIPE_CONNECT/CHUNKING/PRDR, Gmail with
XOAUTH2, Exchange with ``AUTH=LOGIN``, Dovecot LMTP), plus the hostile
classics: a STARTTLS response injection, 421 in the middle of a
transaction, a multi-line greeting, bare LF, time-outs. The reply seeds are
the same servers' reply streams; the command seeds are addresses, valid and
smuggling ones.
"""

from __future__ import annotations

import base64
import shutil
import sys

from fuzz.fuzz_session import (
    CALL_NOOP,
    CALL_SUBMIT,
    EOF,
    TIMEOUT_RECORD,
    TLS_DOWN,
    TLS_UP,
    body,
    call,
    options,
    server,
    write_fail,
)
from fuzz.fuzzlib import CORPUS_DIR
from smtpcore import TLSPolicy

# -- server texts ---------------------------------------------------------------------

POSTFIX_GREETING = b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n"
POSTFIX_EHLO = (
    b"250-mail.example.org\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-VRFY\r\n"
    b"250-ETRN\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-SMTPUTF8\r\n"
    b"250 CHUNKING\r\n"
)
POSTFIX_EHLO_TLS = (
    b"250-mail.example.org\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-VRFY\r\n"
    b"250-ETRN\r\n"
    b"250-AUTH PLAIN LOGIN\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-SMTPUTF8\r\n"
    b"250 CHUNKING\r\n"
)
POSTFIX_MAIL = b"250 2.1.0 Ok\r\n"
POSTFIX_RCPT = b"250 2.1.5 Ok\r\n"
POSTFIX_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
POSTFIX_QUEUED = b"250 2.0.0 Ok: queued as 4Tq9Xk1RvNz3x\r\n"
POSTFIX_BYE = b"221 2.0.0 Bye\r\n"
POSTFIX_STARTTLS = b"220 2.0.0 Ready to start TLS\r\n"
POSTFIX_AUTH_OK = b"235 2.7.0 Authentication successful\r\n"
POSTFIX_TIMEOUT_421 = b"421 4.4.2 mail.example.org Error: timeout exceeded\r\n"

AIOSMTPD_GREETING = b"220 host.example.org Python SMTP 1.4.6\r\n"
AIOSMTPD_EHLO = (
    b"250-host.example.org\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP\r\n"
)

EXIM_GREETING = b"220 mx.example.com ESMTP Exim 4.96 Mon, 01 Jan 2024 10:00:00 +0000\r\n"
EXIM_EHLO = (
    b"250-mx.example.com Hello client.example.com [192.0.2.10]\r\n"
    b"250-SIZE 52428800\r\n"
    b"250-LIMITS MAILMAX=1000 RCPTMAX=50000\r\n"
    b"250-8BITMIME\r\n"
    b"250-PIPELINING\r\n"
    b"250-PIPE_CONNECT\r\n"
    b"250-CHUNKING\r\n"
    b"250-PRDR\r\n"
    b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
    b"250-STARTTLS\r\n"
    b"250 HELP\r\n"
)

GMAIL_GREETING = b"220 smtp.gmail.com ESMTP a1sm123456wrb.12 - gsmtp\r\n"
GMAIL_EHLO = (
    b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)
GMAIL_EHLO_TLS = (
    b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)
GMAIL_XOAUTH2_ERROR = (
    b"334 "
    + base64.b64encode(b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}')
    + b"\r\n"
)
GMAIL_BAD_CREDENTIALS = (
    b"535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    b"535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1sm.12 - gsmtp\r\n"
)

EXCHANGE_GREETING = (
    b"220 EX01.corp.example.com Microsoft ESMTP MAIL Service ready at "
    b"Mon, 1 Jan 2024 10:00:00 +0000\r\n"
)
EXCHANGE_EHLO = (
    b"250-EX01.corp.example.com Hello [192.0.2.10]\r\n"
    b"250-SIZE 37748736\r\n"
    b"250-PIPELINING\r\n"
    b"250-DSN\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-STARTTLS\r\n"
    b"250-X-ANONYMOUSTLS\r\n"
    b"250-AUTH NTLM LOGIN\r\n"
    b"250-AUTH=LOGIN\r\n"
    b"250-X-EXPS GSSAPI NTLM\r\n"
    b"250-8BITMIME\r\n"
    b"250-BINARYMIME\r\n"
    b"250-CHUNKING\r\n"
    b"250 XRDST\r\n"
)

DOVECOT_GREETING = b"220 mail.example.org Dovecot ready.\r\n"
DOVECOT_LHLO = (
    b"250-mail.example.org\r\n"
    b"250-8BITMIME\r\n"
    b"250-CHUNKING\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-STARTTLS\r\n"
    b"250 SMTPUTF8\r\n"
)

MULTILINE_GREETING = (
    b"220-mx.example.net ESMTP\r\n"
    b"220-We do not authorize the use of this system to transport unsolicited,\r\n"
    b"220 and/or bulk e-mail.\r\n"
)

BODY = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hello\r\n\r\nHello, world.\r\n"
TRICKY_BODY = (
    b"Subject: dots\n\n.\n..\n.leading dot\r\nbare CR\rhere\r\n"
    b"a\r\n.\r\nMAIL FROM:<smuggled@evil.example>\r\n.no final newline"
)


def session_seeds() -> dict[str, bytes]:
    """Session harness seeds, by file name."""
    seeds: dict[str, bytes] = {}
    # Postfix 3.7, pipelined, DATA (chunking off on our side).
    seeds["postfix37-pipelined-data"] = (
        options(chunking=False)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + server(POSTFIX_MAIL + POSTFIX_RCPT + POSTFIX_DATA, POSTFIX_QUEUED, POSTFIX_BYE)
        + EOF
    )
    # Postfix 3.7 with BDAT, two recipients, replies one by one.
    seeds["postfix37-bdat"] = (
        options(recipients=2)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO, POSTFIX_MAIL, POSTFIX_RCPT, POSTFIX_RCPT)
        + server(POSTFIX_QUEUED, POSTFIX_BYE)
        + EOF
    )
    # Postfix 3.7: STARTTLS required, then AUTH PLAIN, then a message.
    seeds["postfix37-starttls-auth"] = (
        options(policy=TLSPolicy.STARTTLS, credentials=1, chunking=False)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO, POSTFIX_STARTTLS)
        + TLS_UP
        + server(POSTFIX_EHLO_TLS, POSTFIX_AUTH_OK)
        + server(POSTFIX_MAIL, POSTFIX_RCPT, POSTFIX_DATA, POSTFIX_QUEUED, POSTFIX_BYE)
    )
    # Postfix: 421 after the RCPT (the transaction dies half-way).
    seeds["postfix37-421-mid-transaction"] = (
        options(chunking=False, recipients=2)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO, POSTFIX_MAIL + POSTFIX_RCPT)
        + server(POSTFIX_TIMEOUT_421)
        + EOF
    )
    # Postfix: time-out waiting for the reply to the final dot (status unknown).
    seeds["postfix37-timeout-after-dot"] = (
        options(chunking=False)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO, POSTFIX_MAIL + POSTFIX_RCPT + POSTFIX_DATA)
        + TIMEOUT_RECORD
    )
    # aiosmtpd: no PIPELINING, no CHUNKING; a body full of dots and bare line ends.
    seeds["aiosmtpd-dots-bare-lf"] = (
        options(pipelining=True, streamed=True, chunk_size=7)
        + body(TRICKY_BODY)
        + server(AIOSMTPD_GREETING, AIOSMTPD_EHLO, b"250 OK\r\n", b"250 OK\r\n")
        + server(b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 OK\r\n", b"221 Bye\r\n")
    )
    # Exim 4.96: PIPE_CONNECT, CHUNKING, PRDR; the BDAT reply is multi-line.
    seeds["exim-bdat-prdr"] = (
        options(streamed=True, chunk_size=16, recipients=2)
        + body(BODY * 3)
        + server(EXIM_GREETING, EXIM_EHLO, b"250 OK\r\n", b"250 Accepted\r\n250 Accepted\r\n")
        + server(*[b"250 %d byte chunk, total %d\r\n" % (16, 16 * n) for n in range(1, 14)])
        + server(b"250- 224 byte chunk, total 224\r\n250 OK id=1rABCD-000123-AB\r\n")
        + server(b"221 mx.example.com closing connection\r\n")
    )
    # Gmail: STARTTLS, then XOAUTH2 accepted.
    seeds["gmail-xoauth2"] = (
        options(policy=TLSPolicy.STARTTLS, credentials=4, mechanisms=5)
        + body(BODY)
        + server(GMAIL_GREETING, GMAIL_EHLO, b"220 2.0.0 Ready to start TLS\r\n")
        + TLS_UP
        + server(GMAIL_EHLO_TLS, b"235 2.7.0 Accepted\r\n")
        + server(b"250 2.1.0 OK a1sm.12 - gsmtp\r\n", b"250 2.1.5 OK a1sm.12 - gsmtp\r\n")
        + server(b"250 2.0.0 OK  1700000000 a1sm.12 - gsmtp\r\n")
        + server(b"221 2.0.0 closing connection a1sm.12 - gsmtp\r\n")
    )
    # Gmail: XOAUTH2 refused with the JSON error challenge, then 535.
    seeds["gmail-xoauth2-refused"] = (
        options(policy=TLSPolicy.STARTTLS, credentials=4, mechanisms=5)
        + body(BODY)
        + server(GMAIL_GREETING, GMAIL_EHLO, b"220 2.0.0 Ready to start TLS\r\n")
        + TLS_UP
        + server(GMAIL_EHLO_TLS, GMAIL_XOAUTH2_ERROR, GMAIL_BAD_CREDENTIALS)
        + server(b"221 2.0.0 closing connection\r\n")
    )
    # Exchange: the old AUTH=LOGIN form, LOGIN in plaintext (allowed), DSN.
    seeds["exchange-auth-login"] = (
        options(insecure_auth=True, credentials=1, mechanisms=2, dsn=True, chunking=False)
        + body(BODY)
        + server(EXCHANGE_GREETING, EXCHANGE_EHLO)
        + server(b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n")
        + server(b"235 2.7.0 Authentication successful\r\n")
        + server(b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Start mail input\r\n")
        + server(b"250 2.6.0 <id@EX01> [InternalId=1] Queued mail for delivery\r\n")
        + server(b"221 2.0.0 Service closing transmission channel\r\n")
    )
    # Exchange: BINARYMIME with BDAT.
    seeds["exchange-binarymime"] = (
        options(binary=True, allow_controls=True)
        + body(b"\x00\x01binary\r\x00\n\xff" * 4)
        + server(EXCHANGE_GREETING, EXCHANGE_EHLO)
        + server(b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n")
        + server(b"250 2.6.0 Queued mail for delivery\r\n", b"221 2.0.0 closing\r\n")
    )
    # STARTTLS response injection (CVE-2011-0411): data after the 220, in one read.
    seeds["starttls-injection-same-read"] = (
        options(policy=TLSPolicy.STARTTLS, credentials=1)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + server(POSTFIX_STARTTLS + b"250-mail.example.org\r\n250 AUTH PLAIN\r\n")
        + TLS_UP
        + server(POSTFIX_EHLO_TLS, POSTFIX_AUTH_OK)
    )
    # ... and in a read of its own, before the handshake.
    seeds["starttls-injection-before-handshake"] = (
        options(policy=TLSPolicy.OPPORTUNISTIC, credentials=1)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO, POSTFIX_STARTTLS)
        + server(b"235 2.7.0 injected\r\n")
        + TLS_UP
        + server(POSTFIX_EHLO_TLS, POSTFIX_AUTH_OK)
    )
    # STARTTLS required but not offered / refused / the handshake fails.
    seeds["starttls-required-not-offered"] = (
        options(policy=TLSPolicy.STARTTLS, credentials=1)
        + body(BODY)
        + server(AIOSMTPD_GREETING, AIOSMTPD_EHLO, b"221 Bye\r\n")
    )
    seeds["starttls-refused-454"] = (
        options(policy=TLSPolicy.STARTTLS)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO, b"454 4.7.0 TLS not available\r\n")
        + server(POSTFIX_BYE)
    )
    seeds["starttls-handshake-fails"] = (
        options(policy=TLSPolicy.STARTTLS)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO, POSTFIX_STARTTLS)
        + TLS_DOWN
    )
    # A multi-line greeting, then an old server: EHLO 502, HELO fallback.
    seeds["multiline-greeting-helo-fallback"] = (
        options(pipelining=False, chunking=False)
        + body(BODY)
        + server(MULTILINE_GREETING, b"502 5.5.2 Error: command not recognized\r\n")
        + server(b"250 mx.example.net\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n")
        + server(b"250 ok\r\n", b"221 bye\r\n")
    )
    # Greeting refused.
    seeds["greeting-554"] = (
        options() + body(BODY) + server(b"554 5.7.1 No SMTP service here\r\n", b"221 bye\r\n")
    )
    # Dovecot LMTP: one reply per recipient after the data.
    seeds["dovecot-lmtp"] = (
        options(lmtp=True, chunking=False, recipients=2)
        + body(BODY)
        + server(DOVECOT_GREETING, DOVECOT_LHLO)
        + server(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n354 OK\r\n")
        + server(b"250 2.0.0 <rcpt0@example.net> Saved\r\n")
        + server(b"550 5.1.1 <rcpt1@example.net> User doesn't exist\r\n")
        + server(b"221 2.0.0 Bye\r\n")
    )
    # 452 too many recipients: the rest goes in a second transaction.
    seeds["postfix37-452-split"] = (
        options(chunking=False, recipients=3)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + server(
            POSTFIX_MAIL
            + POSTFIX_RCPT
            + b"452 4.5.3 Error: too many recipients\r\n"
            + b"452 4.5.3 Error: too many recipients\r\n"
            + POSTFIX_DATA
        )
        + server(POSTFIX_QUEUED)
        + server(POSTFIX_MAIL + POSTFIX_RCPT + POSTFIX_RCPT + POSTFIX_DATA, POSTFIX_QUEUED)
        + server(POSTFIX_BYE)
    )
    # Every recipient refused but DATA still answered 354 (RFC 2920 3.1).
    seeds["all-rcpts-refused-354"] = (
        options(chunking=False, recipients=2)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + server(POSTFIX_MAIL + b"550 5.1.1 no\r\n550 5.1.1 no\r\n" + POSTFIX_DATA)
        + server(b"554 5.5.1 Error: no valid recipients\r\n", b"250 2.0.0 Ok\r\n", POSTFIX_BYE)
    )
    # CRAM-MD5 (the RFC 2195 challenge), no TLS but insecure AUTH allowed.
    seeds["cram-md5"] = (
        options(credentials=1, insecure_auth=True, mechanisms=3)
        + body(BODY)
        + server(EXIM_GREETING, EXIM_EHLO)
        + server(b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n")
        + server(b"235 Authentication succeeded\r\n", b"250 OK\r\n", b"250 Accepted\r\n")
        + server(b"250- 73 byte chunk, total 73\r\n250 OK id=1rABCD-000124-AB\r\n")
        + server(b"221 mx.example.com closing connection\r\n")
    )
    # Two messages pipelined back to back, the first via CALL mid-conversation.
    seeds["two-messages-pipelined"] = (
        options(chunking=False, quit_up_front=False)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + call(CALL_SUBMIT, TRICKY_BODY)
        + call(CALL_NOOP)
        + server(POSTFIX_MAIL + POSTFIX_RCPT + POSTFIX_DATA, POSTFIX_QUEUED)
        + server(POSTFIX_MAIL + POSTFIX_RCPT + POSTFIX_DATA, POSTFIX_QUEUED)
        + server(b"250 2.0.0 Ok\r\n", POSTFIX_BYE)
    )
    # Two messages in one write with CHUNKING; the write times out after
    # 120 octets, with the first message's replies already received.
    seeds["write-timeout-after-replies"] = (
        options(quit_up_front=True)
        + body(BODY)
        + body(TRICKY_BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + write_fail(timeout=True, written=120, received=POSTFIX_MAIL + POSTFIX_RCPT)
    )
    # The same write reset, its count unknown (TLS), a 421 received first.
    seeds["write-reset-after-421"] = (
        options()
        + body(BODY)
        + body(TRICKY_BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + write_fail(received=POSTFIX_MAIL + POSTFIX_TIMEOUT_421)
    )
    # Probing: quit after RCPT (swaks --quit-after RCPT).
    seeds["probe-quit-after-rcpt"] = (
        options(quit_after=6, recipients=2)
        + body(BODY)
        + server(POSTFIX_GREETING, POSTFIX_EHLO)
        + server(POSTFIX_MAIL + POSTFIX_RCPT + b"550 5.1.1 unknown\r\n", POSTFIX_BYE)
    )
    # The message is larger than SIZE: refused before MAIL.
    seeds["size-exceeded"] = (
        options()
        + body(b"x" * 900 + b"\r\n")
        + server(POSTFIX_GREETING, b"250-mx\r\n250 SIZE 100\r\n", POSTFIX_BYE)
    )
    # Hostile replies: bare LF, an over-long line, a code change mid-reply.
    seeds["bare-lf-reply"] = options() + body(BODY) + server(b"220 mx ESMTP\n")
    seeds["overlong-line"] = options() + body(BODY) + server(b"220 " + b"x" * 3000)
    seeds["code-change"] = (
        options() + body(BODY) + server(POSTFIX_GREETING, b"250-mx\r\n251 PIPELINING\r\n")
    )
    # The server closes right after the greeting; logging on.
    seeds["eof-after-ehlo"] = (
        options(log=True, log_data=True) + body(BODY) + server(POSTFIX_GREETING, POSTFIX_EHLO) + EOF
    )
    return seeds


def reply_seeds() -> dict[str, bytes]:
    """Reply harness seeds: ``limits | n | sizes | stream``."""
    streams = {
        "postfix-ehlo": POSTFIX_GREETING + POSTFIX_EHLO + POSTFIX_MAIL + POSTFIX_RCPT,
        "exim-ehlo": EXIM_GREETING + EXIM_EHLO,
        "gmail-ehlo": GMAIL_GREETING + GMAIL_EHLO_TLS + GMAIL_BAD_CREDENTIALS,
        "exchange-ehlo": EXCHANGE_GREETING + EXCHANGE_EHLO,
        "multiline-greeting": MULTILINE_GREETING,
        "lmtp": DOVECOT_LHLO + b"250 2.0.0 <a@x> Saved\r\n550 5.1.1 <b@x> no\r\n",
        "bare-code": b"250\r\n220-\r\n220 \r\n",
        "bare-lf": b"250 ok\r\n250 ok\n",
        "bare-cr": b"250 o\rk\r\n",
        "code-change": b"250-a\r\n251 b\r\n",
        "overlong": b"250 ok\r\n" + b"250-" + b"x" * 1100 + b"\r\n",
        "no-lf": b"250 ok\r\n" + b"x" * 2000,
        "eight-bit": b"550 5.1.1 \xc3\xa9\xff\xfe\x1b[31m\r\n",
    }
    seeds = {}
    for name, stream in streams.items():
        seeds[f"{name}-whole"] = bytes([0, 0]) + stream
        seeds[f"{name}-chunks"] = bytes([0, 3, 1, 7, 64]) + stream
    seeds["tiny-limits"] = bytes([0x29, 1, 5]) + POSTFIX_EHLO
    return seeds


def command_seeds() -> dict[str, bytes]:
    """Command harness seeds: ``selector | text`` (UTF-8 texts: bit 0x20)."""
    texts = {
        "mail-plain": (0, "alice@example.com"),
        "mail-quoted": (0, '"john smith"@example.com'),
        "mail-quoted-gt": (0, '"a>b SIZE=1"@example.com'),
        "mail-smuggle-gt": (0, "a@example.com> SIZE=1"),
        "mail-smuggle-crlf": (0, "a@example.com>\r\nRCPT TO:<evil@example.net"),
        "mail-nul": (0, "a\x00b@example.com"),
        "mail-utf8": (0x10, "пользователь@пример.рф"),
        "mail-utf8-off": (0, "пользователь@пример.рф"),
        "rcpt-postmaster": (1, "Postmaster"),
        "rcpt-literal": (1, "user@[IPv6:2001:db8::1]"),
        # RFC 5321 4.1.3: dcontent may hold '"', '<' and '>'.
        "rcpt-general-literal": (1, 'user@[x-tag:a"b>c<d]'),
        "rcpt-sp": (1, "a b@example.com"),
        "orcpt-crlf": (2, "a@b\r\nQUIT"),
        "envid": (3, "id+=\x7f"),
        "auth-param": (4, "<>"),
        "extra": (0x45, "X-FOO|bar baz"),
        "vrfy": (7, "John.Smith"),
        "ehlo-literal": (9, "[192.0.2.1]"),
        "ehlo-bad": (9, "exa mple.com"),
        "raw": (0x4D, "XCLIENT|NAME=x ADDR=192.0.2.1"),
        "noop-lsep": (12, "a\u2028b"),
    }
    seeds = {}
    for name, (selector, text) in texts.items():
        seeds[name] = bytes([selector | 0x20]) + text.encode("utf-8")
    seeds["utf16-lone-surrogate"] = bytes([0]) + "a\ud800@example.com".encode(
        "utf-16-le", "surrogatepass"
    )
    return seeds


def main() -> int:
    """Write every corpus, replacing what was there."""
    for name, seeds in (
        ("session", session_seeds()),
        ("replies", reply_seeds()),
        ("commands", command_seeds()),
    ):
        folder = CORPUS_DIR / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for file_name, data in seeds.items():
            (folder / file_name).write_bytes(data)
        print(f"{folder}: {len(seeds)} inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
