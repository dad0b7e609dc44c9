"""The leaf's canonical form has one definition: `EVENT_FIELDS` + `render_row` (issue 10 item 4).

`entry.row_leaf_hashes` writes the canonical JSON of the usual row by hand for speed. These
tests derive the expected leaf of a row from `EVENT_FIELDS` alone (each field of the rendered
event, canonicalised by the `rfc8785` library, not by our encoder) and check that the hand-
written path gives it, for a row that must take that path (`render_row` is made to fail); and
they show that the check fails when the two drift apart (a field added to the event but not to
the hand-written text).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785

from idservice.audit import entry

AT = datetime(2026, 3, 1, 8, 9, 10, 123456, tzinfo=UTC)


def _usual_row(index: int = 7) -> tuple[Any, ...]:
    """A row of `ROW_COLUMNS` with a distinct value in every column (so a field written under
    another's name, or left out, changes the bytes)."""
    values = {"index": index, "at": AT, "actor_type": "operator", "actor_id": "officer-1",
              "action": "person.read", "pin": "052326415904", "purpose": "kiểm tra",
              "outcome": "found", "request_id": "r-1", "source_ip": "10.0.0.1",
              "details": '{"b": 1, "a": [true, null], "s": "x"}'}
    assert tuple(values) == entry.ROW_COLUMNS
    return tuple(values.values())


def _derived_leaf(row: tuple[Any, ...]) -> bytes:
    """The leaf from the definition: the fields named by EVENT_FIELDS of the event render_row
    gives, canonicalised by the RFC 8785 reference library."""
    named = dict(zip(entry.ROW_COLUMNS, row, strict=True))
    named["details"] = json.loads(named["details"])
    event = entry.render_row(named)
    canonical = rfc8785.dumps({field: event[field] for field in entry.EVENT_FIELDS})
    return hashlib.sha256(b"\x00" + canonical).digest()


def _fast_leaf(row: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The hand-written path's leaf; fails if the row would be rendered by render_row."""
    def refuse(_: Any) -> dict[str, Any]:
        raise AssertionError("the usual row left the hand-written path")

    with monkeypatch.context() as patch:
        patch.setattr(entry, "render_row", refuse)
        [leaf] = entry.row_leaf_hashes([row])[1]
    return leaf


def _drift(row: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch) -> bool:
    return _fast_leaf(row, monkeypatch) != _derived_leaf(row)


def test_hand_written_leaf_equals_the_leaf_derived_from_event_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not _drift(_usual_row(), monkeypatch)


@pytest.mark.parametrize("column", ["pin", "purpose", "request_id", "source_ip"])
def test_hand_written_leaf_equals_derived_leaf_with_null_columns(
    monkeypatch: pytest.MonkeyPatch, column: str,
) -> None:
    row = list(_usual_row())
    row[entry.ROW_COLUMNS.index(column)] = None
    assert not _drift(tuple(row), monkeypatch)


def test_a_field_added_to_the_event_but_not_to_the_fast_path_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check can fail: an event that grows a field (EVENT_FIELDS and render_row) while the
    hand-written text stays as it is no longer gives the derived leaf."""
    rendered = entry.render_row
    monkeypatch.setattr(entry, "EVENT_FIELDS", (*entry.EVENT_FIELDS, "office"))
    monkeypatch.setattr(entry, "render_row", lambda row: {**rendered(row), "office": "052"})
    assert _drift(_usual_row(), monkeypatch)


def test_a_field_renamed_in_the_event_but_not_in_the_fast_path_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered = entry.render_row

    def renamed(row: Any) -> dict[str, Any]:
        event = rendered(row)
        event["source_address"] = event.pop("source_ip")
        return event

    monkeypatch.setattr(entry, "EVENT_FIELDS", tuple(
        "source_address" if f == "source_ip" else f for f in entry.EVENT_FIELDS))
    monkeypatch.setattr(entry, "render_row", renamed)
    assert _drift(_usual_row(), monkeypatch)


def test_a_batch_event_with_vietnamese_details_takes_the_hand_written_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch line's `pin.issue` event names its registration's authority, Vietnamese text:
    such details are of the BMP and take the hand-written path (`_fast_leaf` refuses
    `render_row`), with the leaf derived from the definition."""
    row = list(_usual_row())
    row[entry.ROW_COLUMNS.index("details")] = json.dumps(
        {"registration": {"province_code": "052", "authority": "UBND xã Cát Tân, Bình Định",
                          "number": "12/2026"}, "line": 17}, ensure_ascii=False,
        separators=(", ", ": "))
    assert not _drift(tuple(row), monkeypatch)


def test_details_with_a_character_beyond_the_bmp_leave_the_hand_written_path() -> None:
    """Such a key may sort differently by code point and by UTF-16 code unit: the general path
    (`render_row` and `canonical_json`) handles it, and gives the derived leaf."""
    row = list(_usual_row())
    row[entry.ROW_COLUMNS.index("details")] = '{"😀": 1, "\ue000": 2}'
    assert entry._plain_details(row[-1]) is None
    assert entry.row_leaf_hashes([tuple(row)])[1] == [_derived_leaf(tuple(row))]
