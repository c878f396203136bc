"""The Celery integration's pure parts: batch items, keys, statuses, settings."""

from __future__ import annotations

import base64
import email.message
import json
from typing import Any

import pytest
from smtpcore.integrations import celery as sc
from smtpcore.integrations.celery_worker import app_from_environment

from smtpcore import (
    ConfigurationError,
    ConnectionLostError,
    InvalidInputError,
    MessageResult,
    RecipientsRefusedError,
    RecipientState,
    RecipientStatus,
    Reply,
    SMTPError,
    SMTPTimeoutError,
    Stage,
    TemporaryReplyError,
    TLSError,
)

RAW = (
    b"From: Ann <ann@example.org>\r\nTo: bob@example.org, carol@example.org\r\n"
    b"Subject: hi\r\nMessage-ID: <42@example.org>\r\n\r\nhello\r\n"
)


# -- batch items and keys ------------------------------------------------------------


def test_item_from_raw_bytes_derives_the_envelope_and_keeps_the_octets() -> None:
    item = sc.message_item(RAW)
    assert item == {
        "key": "<42@example.org>",
        "sender": "ann@example.org",
        "recipients": ["bob@example.org", "carol@example.org"],
        "message": RAW.decode("ascii"),
    }
    json.dumps(item)  # plain JSON
    assert sc.message_bytes(item) == RAW


def test_item_with_8bit_content_is_base64_and_round_trips() -> None:
    raw = RAW.replace(b"hello", "h\u00e9llo".encode())
    item = sc.message_item(raw, sender="ann@example.org", recipients="bob@example.org")
    assert "message" not in item
    assert base64.b64decode(item["message_b64"]) == raw
    assert sc.message_bytes(item) == raw
    assert item["recipients"] == ["bob@example.org"]


def test_item_from_an_email_message_drops_bcc() -> None:
    msg = email.message.EmailMessage()
    msg["From"] = "ann@example.org"
    msg["To"] = "bob@example.org"
    msg["Bcc"] = "secret@example.org"
    msg["Message-ID"] = "<m1@example.org>"
    msg.set_content("hi")
    item = sc.message_item(msg, dsn_notify=["failure"])
    assert item["recipients"] == ["bob@example.org", "secret@example.org"]
    assert b"secret" not in sc.message_bytes(item)
    assert item["key"] == "<m1@example.org>"
    assert item["options"] == {"dsn_notify": ["failure"]}


def test_raw_bytes_with_bcc_are_re_serialised_without_it() -> None:
    raw = RAW.replace(b"Subject", b"Bcc: secret@example.org\r\nSubject")
    item = sc.message_item(raw)
    assert "secret@example.org" in item["recipients"]
    assert b"secret" not in sc.message_bytes(item)


def test_key_without_message_id_is_a_hash_of_envelope_and_content() -> None:
    raw = RAW.replace(b"Message-ID: <42@example.org>\r\n", b"")
    first = sc.message_key(raw, "ann@example.org", ["bob@example.org"])
    assert first.startswith("sha256:")
    assert first == sc.message_key(raw, "ann@example.org", ["bob@example.org"])
    assert first != sc.message_key(raw, "ann@example.org", ["carol@example.org"])
    assert first != sc.message_key(raw + b"x", "ann@example.org", ["bob@example.org"])
    assert sc.message_item(raw, key="order-7")["key"] == "order-7"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("not a mapping", "batch item"),
        ({"sender": "a@example.org", "recipients": ["b@example.org"]}, "batch item"),
        ({"sender": "a@example.org", "recipients": ["b@example.org"], "message": 3}, "message"),
        (
            {"sender": "a@example.org", "recipients": ["b@example.org"], "message_b64": "@@"},
            "message_b64",
        ),
        ({"sender": None, "recipients": ["b@example.org"], "message": "x"}, "sender"),
        ({"sender": "a@example.org", "recipients": [1], "message": "x"}, "recipients"),
        (
            {"sender": "a@example.org", "recipients": "b@example.org", "message": "x", "z": 1},
            "batch item",
        ),
        (
            {"sender": "a@example.org", "recipients": ["b"], "message": "x", "options": {"x": 1}},
            "options",
        ),
    ],
)
def test_malformed_items_are_refused_before_anything_is_sent(item: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        sc._parse_item(item)
    assert info.value.field == field


def test_unknown_message_option_is_refused_when_building() -> None:
    with pytest.raises(InvalidInputError):
        sc.message_item(RAW, priority=1)


# -- statuses ------------------------------------------------------------------------


def _result(*states: tuple[RecipientState, int | None]) -> MessageResult:
    return MessageResult(
        message_id=1,
        sender="ann@example.org",
        recipients=tuple(
            RecipientStatus(
                recipient=f"r{n}@example.org",
                reply=None
                if code is None
                else Reply.build(code, "2.0.0 ok" if code < 300 else "no"),
                state=state,
            )
            for n, (state, code) in enumerate(states)
        ),
        reply=Reply.build(250, "2.0.0 queued"),
    )


A, R, U, N = (
    RecipientState.ACCEPTED,
    RecipientState.REFUSED,
    RecipientState.UNKNOWN,
    RecipientState.NOT_SENT,
)


def test_an_accepted_message_is_accepted_even_with_a_refused_recipient() -> None:
    result = _result((A, 250), (R, 550))
    assert sc.status_of(result) is sc.Status.ACCEPTED
    out = sc.outcome_json(result, key="k", attempts=2)
    assert out["accepted"] == ["r0@example.org"]
    assert out["refused"] == [
        {"recipient": "r1@example.org", "code": 550, "enhanced": None, "text": "no"}
    ]
    assert out["reply"] == {"code": 250, "enhanced": "2.0.0", "text": "queued"}
    assert (out["status"], out["attempts"], out["error"]) == ("accepted", 2, None)


def test_errors_sort_into_temporary_refused_and_unknown() -> None:
    lost = ConnectionLostError("gone", stage=Stage.MAIL)
    assert sc.status_of(lost) is sc.Status.TEMPORARY
    after_dot = ConnectionLostError("gone", stage=Stage.DATA_TERMINATION)
    assert sc.status_of(after_dot) is sc.Status.UNKNOWN
    assert sc.status_of(SMTPTimeoutError(Stage.DATA_TERMINATION, 5)) is sc.Status.UNKNOWN
    assert sc.status_of(SMTPTimeoutError(Stage.RCPT, 5)) is sc.Status.TEMPORARY
    busy = TemporaryReplyError(Reply.build(451, "4.3.0 later"), "MAIL")
    assert sc.status_of(busy) is sc.Status.TEMPORARY
    # A bad certificate fails the same way next time, though nothing was sent.
    tls = TLSError("certificate verify failed").for_message(
        _result((N, None)), status_unknown=False
    )
    assert sc.status_of(tls) is sc.Status.REFUSED
    dropped = ConnectionLostError("gone", stage=Stage.RCPT).for_message(
        _result((N, None)), status_unknown=False
    )
    assert sc.status_of(dropped) is sc.Status.TEMPORARY


def test_refused_recipients_are_temporary_only_when_all_refusals_are() -> None:
    def refused(*codes: int) -> SMTPError:
        replies = {f"r{n}@example.org": Reply.build(c, "x") for n, c in enumerate(codes)}
        error = RecipientsRefusedError(replies, Reply.build(codes[-1], "x"))
        return error.for_message(_result(*((R, c) for c in codes)), status_unknown=False)

    assert sc.status_of(refused(450, 451)) is sc.Status.TEMPORARY
    assert sc.status_of(refused(550, 451)) is sc.Status.REFUSED
    assert sc.status_of(refused(550)) is sc.Status.REFUSED
    out = sc.outcome_json(refused(550), key="k", attempts=1)
    assert out["error"]["type"] == "RecipientsRefusedError"
    assert out["reply"]["code"] == 550


def test_unknown_recipients_make_the_message_unknown() -> None:
    unknown = ConnectionLostError("x", stage=Stage.DATA_TERMINATION).for_message(
        _result((U, 250)), status_unknown=True
    )
    assert sc.status_of(unknown) is sc.Status.UNKNOWN
    assert sc.outcome_json(unknown, key="k", attempts=1)["unknown"] == ["r0@example.org"]


def test_reply_text_is_made_printable() -> None:
    reply = Reply.build(550, b"5.1.1 no \x1b[31m such user")
    assert (
        sc.outcome_json(TemporaryReplyError(reply, "RCPT"), key="k", attempts=1)["reply"]["text"]
        == "no \\x1b[31m such user"
    )


# -- settings ------------------------------------------------------------------------


def test_settings_read_from_the_app_configuration() -> None:
    settings = sc.Settings.from_conf(
        {
            "broker_url": "redis://127.0.0.1:6379/3",
            "smtpcore_server": "mx.example.net:587",
            "smtpcore_tls": "starttls",
            "smtpcore_auth": ["user", "pw"],
            "smtpcore_pool_size": "8",
            "smtpcore_retry_backoff": 2,
            "smtpcore_retry_backoff_max": 10,
        }
    )
    assert (settings.server, settings.port, settings.pool_size) == ("mx.example.net", 587, 8)
    assert settings.client_options == {"tls": "starttls", "timeout": 30.0, "auth": ("user", "pw")}
    assert settings.idempotency_url == "redis://127.0.0.1:6379/3"
    assert [settings.backoff(n) for n in range(5)] == [2, 4, 8, 10, 10]
    assert settings.backoff(1, first=0.5) == 1.0


def test_the_idempotency_store_needs_redis() -> None:
    with pytest.raises(ConfigurationError, match="smtpcore_idempotency_url"):
        sc.Settings.from_conf({"broker_url": "amqp://rabbit//"})
    settings = sc.Settings.from_conf(
        {"broker_url": "amqp://rabbit//", "result_backend": "redis://cache:6379/1"}
    )
    assert settings.idempotency_url == "redis://cache:6379/1"


@pytest.mark.parametrize(
    "conf",
    [
        {"smtpcore_pool_size": 0},
        {"smtpcore_pool_size": "many"},
        {"smtpcore_server": "host:port"},
        {"smtpcore_max_retries": -1},
    ],
)
def test_bad_settings_are_a_configuration_error(conf: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        sc.Settings.from_conf({"broker_url": "redis://localhost/0", **conf})


def test_make_app_sets_what_redelivery_needs() -> None:
    app = sc.make_app("redis://127.0.0.1:1/0", visibility_timeout=10)
    conf = app.conf
    assert conf.task_acks_late
    assert conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 10
    assert conf.broker_transport_options["unacked_restore_interval"] == 2
    task = app.tasks[sc.TASK_NAME]
    assert task.acks_late
    assert task.reject_on_worker_lost


def test_worker_app_from_environment() -> None:
    app = app_from_environment(
        {
            "SMTPCORE_CELERY_BROKER": "redis://127.0.0.1:1/0",
            "SMTPCORE_SERVER": "mx.example.net:2525",
            "SMTPCORE_TLS": "none",
            "SMTPCORE_AUTH_USER": "u",
            "SMTPCORE_AUTH_PASSWORD": "p",
            "SMTPCORE_POOL_SIZE": "3",
        }
    )
    settings = sc.Settings.from_conf(app.conf)
    assert (settings.server, settings.port, settings.pool_size) == ("mx.example.net", 2525, 3)
    assert settings.client_options["auth"] == ("u", "p")
    assert app.conf.broker_transport_options == {"visibility_timeout": 3600.0}
    with pytest.raises(ConfigurationError):
        app_from_environment({})
    with pytest.raises(ConfigurationError):
        app_from_environment({"SMTPCORE_CELERY_BROKER": "redis://x/0", "SMTPCORE_AUTH_USER": "u"})
