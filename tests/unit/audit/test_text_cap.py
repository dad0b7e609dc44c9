"""No event carries more than 4 KiB of caller-chosen text (contract 7): `events.cap_text` and
the recorder's use of it (`recorder.event_columns`)."""

from __future__ import annotations

import json
import re
from typing import Any

from idservice.audit.events import CUT_MARK, MAX_CALLER_TEXT, AuditEvent, RequestContext, cap_text
from idservice.audit.recorder import event_columns
from idservice.auth.principal import Actor

_MARK = re.compile(re.escape(CUT_MARK).replace(r"\{\}", r"[0-9]+"))


def caller_text(purpose: str | None, details: Any, *identity: str | None) -> int:
    """Bytes of text the caller could choose: identity, purpose, keys and strings of details,
    markers left out."""
    total = sum(len(_MARK.sub("", x).encode()) for x in (*identity, purpose) if x is not None)

    def walk(value: Any) -> int:
        if isinstance(value, str):
            return len(_MARK.sub("", value).encode())
        if isinstance(value, dict):
            return sum(len(k.encode()) + walk(v) for k, v in value.items())
        if isinstance(value, list):
            return sum(walk(v) for v in value)
        return 0

    return total + walk(details)


def test_small_event_is_left_as_it_is() -> None:
    details = {"code": "not_found", "criteria": {"full_name": "Lê Văn Tám"}}
    assert cap_text("tra cứu", details, 4000) == ("tra cứu", details)


def test_long_strings_are_cut_to_fit_and_short_ones_stay_whole() -> None:
    details = {"code": "invalid_field", "before": {"other_names": ["Đ" * 3000] * 3},
               "after": {"other_names": ["Ê" * 3000]}, "pin": "052324000001"}
    purpose, capped = cap_text("x" * 2000, details, 4096)
    assert caller_text(purpose, capped) <= 4096
    assert capped["code"] == "invalid_field" and capped["pin"] == "052324000001"
    assert purpose is not None and purpose.endswith(" bytes cut]")
    assert capped["after"]["other_names"][0].startswith("ÊÊ")
    assert _MARK.search(capped["before"]["other_names"][0])


def test_cut_is_at_a_character_boundary_and_says_how_much() -> None:
    _, capped = cap_text(None, {"v": "😀" * 100}, 10)  # 4-byte characters, 10 bytes allowed
    assert capped["v"] == "😀😀" + CUT_MARK.format(392)


def test_recorder_caps_every_event_it_writes() -> None:
    ctx = RequestContext(Actor("operator", "officer-1"), "r" * 64, "10.0.0.1")
    big = AuditEvent("person.correct", "corrected", pin="052324000001", purpose="p" * 500,
                     details={"reason": "\U00020000" * 1000, "after": {"full_name": "Đ" * 200}})
    small = AuditEvent("person.read", "found", pin="052324000001", details={"code": "x"})
    columns = event_columns(ctx, [big, small])
    written = json.loads(columns.details[0])
    assert caller_text(columns.purposes[0], written, "officer-1", "r" * 64, "10.0.0.1") \
        <= MAX_CALLER_TEXT
    assert written["after"]["full_name"] == "Đ" * 200  # the shorter values fit whole
    assert json.loads(columns.details[1]) == {"code": "x"}
