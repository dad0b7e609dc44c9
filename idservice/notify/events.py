"""The notifications' pure parts (contract 9, OSIA Notification): topics, the event objects,
the `Message` bodies, the delivery policy, and which events a subscription receives.

Standard library and `pin/` only. The event object of each type is built here and nowhere else: the
outbox keeps an event's facts (type, `uin`, `uin1`/`uin2`, `previousUin`), this module makes
the JSON text that `Message.message` carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from idservice.pin.format import parse_pin

__all__ = [
    "DEFAULT_POLICY",
    "MAX_RETRY_SPAN_SECONDS",
    "NotifyEvent",
    "Policy",
    "PolicyError",
    "Topic",
    "confirmation_message",
    "event_text",
    "notification_message",
    "parse_policy",
    "receives",
]


class Topic(StrEnum):
    """One topic per event type, named exactly as the OSIA event type (contract 9)."""

    LIVE_BIRTH = "liveBirth"
    DEATH = "death"
    CHANGE_OF_NAME = "changeOfName"
    UPDATE_PERSON = "updatePerson"
    BIRTH_CANCELLATION = "birthCancellation"
    CHANGE_OF_GENDER = "changeOfGender"


@dataclass(frozen=True)
class NotifyEvent:
    """What the outbox keeps of one event; `previous_uin` only for changeOfGender."""

    topic: Topic
    uin: str
    uin1: str | None = None
    uin2: str | None = None
    previous_uin: str | None = None


def event_text(event: NotifyEvent, source: str) -> str:
    """The event object as JSON text (OSIA notification events): `source`, `uin`, the parents
    of a liveBirth as `uin1` (mother) / `uin2` (father) when known, and our extension
    `previousUin` on changeOfGender. Keys in a fixed order, absent rather than null."""
    body: dict[str, Any] = {"source": source, "uin": event.uin}
    for key, value in (("uin1", event.uin1), ("uin2", event.uin2),
                       ("previousUin", event.previous_uin)):
        if value:
            body[key] = value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notification_message(topic: str, message_id: str, text: str, at: datetime) -> bytes:
    """The spec's `Message` of a Notification, as sent (UTF-8 JSON): the same bytes for every
    subscriber of the topic, so one signature serves them all."""
    body = {"type": "Notification", "topic": topic, "messageId": message_id, "message": text,
            "timestamp": _timestamp(at)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def confirmation_message(topic: str, message_id: str, token: str, confirm_url: str,
                         at: datetime) -> bytes:
    """The spec's `Message` of a SubscriptionConfirmation: the token, and the URL to GET (with
    the subscriber's own access token) to confirm."""
    text = (f"You asked to receive the notifications of topic {topic} at this address. To "
            "confirm, GET subscribeURL with your access token; without confirmation nothing "
            "is sent.")
    body = {"type": "SubscriptionConfirmation", "token": token, "topic": topic,
            "message": text, "messageId": message_id, "subscribeURL": confirm_url,
            "timestamp": _timestamp(at)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# ---- the delivery policy "countdown,max" ----

@dataclass(frozen=True)
class Policy:
    countdown: int  # seconds between attempts, >= 1
    max_retries: int  # attempts after the first, >= 0

    def text(self) -> str:
        return f"{self.countdown},{self.max_retries}"


DEFAULT_POLICY = Policy(3600, 168)
# A subscription holds back the outbox while it retries: at most 30 days (documented in
# docs/decisions.md), which bounds what an unreachable subscriber can make us keep.
MAX_RETRY_SPAN_SECONDS = 30 * 86_400


class PolicyError(ValueError):
    pass


def parse_policy(text: str | None) -> Policy:
    """`"countdown,max"` (spec: integers separated by a comma; missing: every hour for 7 days).
    `-1` (infinite retry) is refused, as is a policy retrying over more than 30 days."""
    if text is None:
        return DEFAULT_POLICY
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() and len(p.strip()) <= 9
                                  for p in parts):
        raise PolicyError("policy must be two integers \"countdown,max\", e.g. \"3600,168\"")
    countdown, max_retries = (int(p) for p in parts)
    if countdown < 1:
        raise PolicyError("policy countdown must be at least 1 second")
    if max_retries < 0:
        raise PolicyError("policy max must be 0 or more: infinite retry (-1) is not offered; "
                          "give a number of retries")
    if countdown * max_retries > MAX_RETRY_SPAN_SECONDS:
        raise PolicyError("policy retries span more than 30 days (countdown x max); give "
                          "fewer retries or a shorter countdown")
    return Policy(countdown, max_retries)


def receives(jurisdiction: str, uin: str) -> bool:
    """A subscriber with a province jurisdiction receives the events of that province's PINs
    (the first three digits); `*` receives all."""
    return jurisdiction == "*" or parse_pin(uin).province_code == jurisdiction
