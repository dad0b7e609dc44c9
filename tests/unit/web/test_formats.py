"""Dates and times as people here read them (issue 15, items 6 and 8)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from idservice.pin.format import grouped
from idservice.web.formats import (
    VIETNAM,
    brief,
    parse_day,
    parse_vietnam_time,
    show_date,
    show_time,
)


def test_dates_show_as_day_month_year() -> None:
    assert show_date("2026-01-05") == "05/01/2026"
    assert show_date(date(2024, 2, 29)) == "29/02/2024"
    assert show_date(None) == "" and show_date("not a date") == "not a date"


def test_times_show_in_vietnam_time() -> None:
    assert show_time("2026-12-31T17:30:00.000Z") == "01/01/2027 00:30"
    assert show_time(datetime(2026, 6, 1, 0, 0, tzinfo=UTC)) == "01/06/2026 07:00"


@pytest.mark.parametrize("text", ["05/01/2026", "5/1/2026", "05.01.2026", "2026-01-05"])
def test_typed_dates_are_read(text: str) -> None:
    assert parse_day(text) == date(2026, 1, 5)


@pytest.mark.parametrize("text", ["31/02/2026", "2026/01/05", "05/01/26", "", "x"])
def test_bad_typed_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_day(text)


def test_filter_times_are_typed_in_vietnam_time() -> None:
    instant = parse_vietnam_time("2026-12-05T07:00")
    assert instant == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
    assert instant.utcoffset() == VIETNAM.utcoffset(None)


def test_pin_is_grouped_for_people() -> None:
    assert grouped("052326000123") == "052 3 26 000123"
    assert grouped("12ab") == "12ab"


def test_brief_details_fit_a_cell() -> None:
    assert brief({"b": 1, "a": {"x": 1}, "c": [1, 2]}) == "a: {…} · b: 1 · c: [2]"
    assert len(brief({"k": "v" * 500})) == 90
