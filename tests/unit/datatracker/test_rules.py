"""Who may ask about whom (contract 11): the subject, or a parent named on a minor's record
until the 18th birthday; the X-Road identifier formats."""

from __future__ import annotations

from datetime import date

import pytest

from idservice.datatracker.rules import (
    Relation,
    SubjectRecord,
    adult_from,
    parse_user_code,
    parse_user_id,
    relation,
)
from idservice.errors import Forbidden, MalformedRequest

MOTHER, FATHER, CHILD, OTHER = "001190000001", "001090000002", "001322000003", "001090000004"
TODAY = date(2026, 12, 5)


def test_user_id_is_vn_and_a_pin() -> None:
    assert parse_user_id("VN001190000001") == MOTHER


@pytest.mark.parametrize("value", [None, "", "001190000001", "EE001190000001", "vn001190000001",
                                   "VN00119000000", "VN0011900000011", "VN00119000000a",
                                   "VN" + "\u0661" * 12])
def test_malformed_user_id_is_malformed_request(value: str | None) -> None:
    with pytest.raises(MalformedRequest) as caught:
        parse_user_id(value)
    assert caught.value.status == 400 and caught.value.field == "X-Road-UserId"


def test_user_code_takes_a_pin_with_or_without_vn() -> None:
    assert parse_user_code(CHILD) == parse_user_code("VN" + CHILD) == CHILD
    for bad in (None, "", "VN", "12", "EE" + CHILD):
        with pytest.raises(MalformedRequest):
            parse_user_code(bad)


def test_18th_birthday() -> None:
    assert adult_from(date(2008, 12, 5)) == date(2026, 12, 5)
    assert adult_from(date(2008, 2, 29)) == date(2026, 2, 28)  # Civil Code Art. 148
    assert adult_from(date(2004, 2, 29)) == date(2022, 2, 28)
    assert adult_from(date(2000, 2, 29)) == date(2018, 2, 28)
    assert adult_from(date(1982, 2, 28)) == date(2000, 2, 28)


def _record(born: date) -> SubjectRecord:
    return SubjectRecord(born, MOTHER, FATHER)


def test_the_subject_always_may() -> None:
    assert relation(CHILD, CHILD, None, TODAY) is Relation.SELF


def test_parents_may_until_the_18th_birthday() -> None:
    day_before = _record(date(2008, 12, 6))  # 18 tomorrow
    assert relation(MOTHER, CHILD, day_before, TODAY) is Relation.MOTHER
    assert relation(FATHER, CHILD, day_before, TODAY) is Relation.FATHER
    for who in (MOTHER, FATHER):
        with pytest.raises(Forbidden):
            relation(who, CHILD, _record(date(2008, 12, 5)), TODAY)  # 18 today


def test_leap_day_child_is_adult_on_28_february() -> None:
    record = _record(date(2008, 2, 29))
    assert relation(MOTHER, CHILD, record, date(2026, 2, 27)) is Relation.MOTHER
    with pytest.raises(Forbidden):
        relation(MOTHER, CHILD, record, date(2026, 2, 28))


@pytest.mark.parametrize("record", [None, SubjectRecord(date(2020, 1, 1), None, None),
                                    SubjectRecord(date(2020, 1, 1), FATHER, MOTHER[:-1] + "9")])
def test_anyone_else_is_forbidden(record: SubjectRecord | None) -> None:
    with pytest.raises(Forbidden) as caught:
        relation(OTHER if record and record.mother_pin == FATHER else MOTHER, CHILD, record,
                 TODAY)
    assert caught.value.status == 403 and caught.value.code == "forbidden"
