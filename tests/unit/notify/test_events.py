"""The notifications' pure parts (idservice/notify/events.py): event objects, `Message` bodies,
the delivery policy, jurisdiction of deliveries, and the subscribe-time address rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from idservice.notify.errors import InvalidAddress
from idservice.notify.events import (
    DEFAULT_POLICY,
    NotifyEvent,
    Policy,
    PolicyError,
    Topic,
    event_text,
    notification_message,
    parse_policy,
    receives,
)
from idservice.notify.subscriptions import check_address

SOURCE = "https://id.example.gov.vn"


def test_live_birth_event_has_source_uin_and_parents() -> None:
    text = event_text(NotifyEvent(Topic.LIVE_BIRTH, "052324000001", "052090000011",
                                  "052085000022"), SOURCE)
    assert json.loads(text) == {"source": SOURCE, "uin": "052324000001",
                                "uin1": "052090000011", "uin2": "052085000022"}


def test_unknown_parents_absent_not_null() -> None:
    assert json.loads(event_text(NotifyEvent(Topic.LIVE_BIRTH, "052324000001"), SOURCE)) == {
        "source": SOURCE, "uin": "052324000001"}


def test_change_of_gender_carries_previous_uin() -> None:
    event = NotifyEvent(Topic.CHANGE_OF_GENDER, "052224000003", previous_uin="052324000001")
    assert json.loads(event_text(event, SOURCE))["previousUin"] == "052324000001"


def test_notification_message_is_the_specs_message() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    body = json.loads(notification_message("death", "m-1", '{"uin":"1"}', at))
    assert body == {"type": "Notification", "topic": "death", "messageId": "m-1",
                    "message": '{"uin":"1"}', "timestamp": "2026-01-02T03:04:05.678Z"}


def test_topics_are_the_contracts_event_types() -> None:
    assert {t.value for t in Topic} == {"liveBirth", "death", "changeOfName", "updatePerson",
                                        "birthCancellation", "changeOfGender"}


def test_no_policy_is_every_hour_for_a_week() -> None:
    assert parse_policy(None) == DEFAULT_POLICY == Policy(3600, 168)
    assert parse_policy("60, 10") == Policy(60, 10)
    assert Policy(60, 10).text() == "60,10"


@pytest.mark.parametrize("text", ["", "60", "0,1", "-5,1", "60,-1", "x,1", "1,2,3",
                                  "3600,721", "9999999999,1"])
def test_bad_policy_refused(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_policy_of_thirty_days_allowed() -> None:
    assert parse_policy("3600,720") == Policy(3600, 720)


def test_province_subscriber_receives_its_provinces_pins_only() -> None:
    assert receives("052", "052324000001")
    assert not receives("052", "079324000001")
    assert receives("*", "079324000001")


@pytest.mark.parametrize("address", [
    "http://127.0.0.1/x", "http://localhost:8080/x", "http://api.localhost/x",
    "http://10.1.2.3/x", "http://192.168.0.1/x", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/x", "http://[fe80::1]/x", "http://0.0.0.0/x", "http://224.0.0.1/x"])
def test_local_or_private_address_refused_unless_allowed(address: str) -> None:
    with pytest.raises(InvalidAddress):
        check_address(address, allow_private=False)


def test_loopback_address_allowed_when_private_targets_allowed() -> None:
    assert check_address("http://127.0.0.1:9000/x", allow_private=True)


def test_public_address_allowed() -> None:
    assert check_address("https://registry.example.org/hooks", allow_private=False)
