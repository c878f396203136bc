"""The core's builders of frozen values (``smtpcore._events.build_*``) make
exactly what the classes' own ``__init__`` makes."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpcore import (
    Idle,
    MessageAccepted,
    MessageResult,
    Read,
    RecipientState,
    RecipientStatus,
    Reply,
    Stage,
    Write,
)
from smtpcore._events import (
    IDLE,
    build_message_accepted,
    build_message_result,
    build_read,
    build_recipient_status,
    build_write,
)

BUILDERS: list[tuple[type, Callable[..., Any]]] = [
    (Write, build_write),
    (Read, build_read),
    (RecipientStatus, build_recipient_status),
    (MessageResult, build_message_result),
    (MessageAccepted, build_message_accepted),
]


@pytest.mark.parametrize(("cls", "builder"), BUILDERS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_builder_takes_every_field_in_order(cls: type, builder: Callable[..., Any]) -> None:
    # A field added to the class later must be added to its builder too:
    # a builder that skipped it would leave the slot unset.
    fields = [f.name for f in dataclasses.fields(cls)]
    assert list(inspect.signature(builder).parameters) == fields


replies = st.sampled_from(
    [None, Reply.build(250, "2.1.5 ok"), Reply.build(550, "5.1.1 no such user")]
)
states = st.sampled_from(list(RecipientState))
statuses = st.builds(RecipientStatus, recipient=st.emails(), reply=replies, state=states)


@given(data=st.binary(max_size=40), stage=st.sampled_from(list(Stage)), n=st.integers(0, 10**6))
def test_actions(data: bytes, stage: Stage, n: int) -> None:
    built = build_write(data, stage)
    assert built == Write(data=data, stage=stage)
    assert repr(built) == repr(Write(data=data, stage=stage))
    assert build_read(stage, n) == Read(stage=stage, replies=n)
    assert Idle() == IDLE


@given(
    recipient=st.emails(),
    reply=replies,
    state=states,
    others=st.lists(statuses, max_size=4),
    message_id=st.integers(1, 10**9),
    size=st.integers(0, 10**9),
    data_sent=st.booleans(),
    status_known=st.booleans(),
)
def test_results(
    recipient: str,
    reply: Reply | None,
    state: RecipientState,
    others: list[RecipientStatus],
    message_id: int,
    size: int,
    data_sent: bool,
    status_known: bool,
) -> None:
    status = build_recipient_status(recipient, reply, state)
    assert status == RecipientStatus(recipient=recipient, reply=reply, state=state)
    assert hash(status) == hash(RecipientStatus(recipient=recipient, reply=reply, state=state))
    recipients = (status, *others)
    result = build_message_result(
        message_id, "alice@example.com", recipients, reply, size, data_sent, status_known
    )
    expected = MessageResult(
        message_id=message_id,
        sender="alice@example.com",
        recipients=recipients,
        reply=reply,
        size=size,
        data_sent=data_sent,
        status_known=status_known,
    )
    assert result == expected
    assert result.accepted == expected.accepted
    assert build_message_accepted(result) == MessageAccepted(result=expected)


def test_built_values_are_frozen() -> None:
    built = build_recipient_status("bob@example.org", None, RecipientState.NOT_SENT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.state = RecipientState.ACCEPTED  # type: ignore[misc]


@given(body=st.binary(max_size=300))
def test_scan_body_builds_what_body_info_would(body: bytes) -> None:
    # scan_body builds its BodyInfo field by field; the value must be the
    # one the class's own __init__ (with its checks) makes of the same fields.
    from smtpcore import BodyInfo, scan_body

    info = scan_body(body)
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(BodyInfo)}
    assert BodyInfo(**fields) == info


@given(
    sender=st.sampled_from(["", "alice@example.com", "élise@exemple.fr", "bad address"]),
    recipients=st.lists(
        st.sampled_from(["bob@example.org", "Postmaster", "zoë@例え.jp", "no-at-sign"]),
        max_size=3,
    ),
    body=st.binary(max_size=40),
    smtputf8=st.booleans(),
    envid=st.sampled_from([None, "id-1", "bad id"]),
)
def test_outgoing_message_build_makes_what_the_class_makes(
    sender: str, recipients: list[str], body: bytes, smtputf8: bool, envid: str | None
) -> None:
    # build() sets the fields through their slots, then runs the same
    # checks: the same value, or the same refusal, as the class's __init__.
    from smtpcore import InvalidInputError, OutgoingMessage

    def outcome(make: Callable[[], OutgoingMessage]) -> object:
        try:
            message = make()
        except InvalidInputError as exc:
            return ("refused", str(exc))
        return (message, message.needs_smtputf8, message.wants_dsn)

    built = outcome(
        lambda: OutgoingMessage.build(
            sender=sender, recipients=recipients, message=body, smtputf8=smtputf8, envid=envid
        )
    )
    made = outcome(
        lambda: OutgoingMessage(
            sender=sender,
            recipients=tuple(recipients),
            data=body,
            smtputf8=smtputf8,
            envid=envid,
        )
    )
    assert built == made


def test_slot_setters_take_every_field_in_order() -> None:
    from smtpcore._slots import slot_setters

    assert len(slot_setters(Write, "data", "stage")) == 2
    with pytest.raises(TypeError, match="has the fields"):
        slot_setters(Write, "stage", "data")
    with pytest.raises(TypeError, match="has the fields"):
        slot_setters(RecipientStatus, "recipient", "reply")
