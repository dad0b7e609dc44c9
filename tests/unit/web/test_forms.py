"""Reading the purpose and the correction forms (issue 15, items 1 and 3). Pure."""

from __future__ import annotations

from typing import Any

import pytest

from idservice.errors import InvalidField, PurposeRequired
from idservice.web import correction_forms as cf
from idservice.web.i18n import translations
from idservice.web.purposes import purpose_text

VI = translations("vi").gettext
RECORD: dict[str, Any] = {
    "child": {"full_name": "Nguyễn Thị Mai", "other_names": [], "sex": "F",
              "date_of_birth": "2026-01-05", "place_of_birth": "Quy Nhơn",
              "home_town": "Bình Định", "ethnicity": "Kinh", "nationality": "VN"},
    "father": {"full_name": "Nguyễn Văn Hùng", "pin": "052090012345", "nationality": "VN"},
    "mother": None,
}


def test_purpose_is_recorded_in_vietnamese_with_its_details() -> None:
    assert purpose_text("correction", " HS  12 ", VI) == \
        "Điều chỉnh thông tin theo yêu cầu của công dân — HS 12"
    assert purpose_text("other", "kiểm tra hồ sơ", VI) == "kiểm tra hồ sơ"


@pytest.mark.parametrize(("choice", "detail"), [(None, None), ("", "x"), ("other", " ")])
def test_missing_purpose_is_purpose_required(choice: str | None, detail: str | None) -> None:
    with pytest.raises(PurposeRequired) as exc:
        purpose_text(choice, detail, VI)
    assert exc.value.code == "purpose_required"


def test_unknown_purpose_choice_is_invalid_field() -> None:
    with pytest.raises(InvalidField) as exc:
        purpose_text("because", None, VI)
    assert exc.value.field == "purpose"


def test_only_changed_fields_are_sent() -> None:
    form = {"full_name": "Nguyễn  Thị Mai ", "other_names": "Mai; Bé Mai ;"}
    assert cf.changes_from_form("name", form, RECORD) == {"other_names": ["Mai", "Bé Mai"]}
    birth = {"date_of_birth": "05/01/2025", "place_of_birth": "Quy Nhơn"}
    assert cf.changes_from_form("birth", birth, RECORD) == {"date_of_birth": "2025-01-05"}


def test_bad_date_in_form_is_invalid_field() -> None:
    with pytest.raises(InvalidField) as exc:
        cf.changes_from_form("birth", {"date_of_birth": "31/02/2026"}, RECORD)
    assert exc.value.field == "date_of_birth"


def test_parent_is_sent_whole_or_removed() -> None:
    form = {"full_name": "Nguyễn Văn Hùng", "pin": "", "nationality": "vn"}
    assert cf.changes_from_form("father", form, RECORD) == {
        "father": {"full_name": "Nguyễn Văn Hùng", "pin": None, "nationality": "VN"}}
    assert cf.changes_from_form("father", {**form, "remove": "1"}, RECORD) == {"father": None}
    assert cf.changes_from_form("mother", {"full_name": "", "pin": ""}, RECORD) == {}


def test_sex_or_birth_year_change_reissues() -> None:
    assert cf.will_reissue({"sex": "M"}, RECORD)
    assert cf.will_reissue({"date_of_birth": "2025-01-05"}, RECORD)
    assert not cf.will_reissue({"date_of_birth": "2026-03-05"}, RECORD)
    assert not cf.will_reissue({"full_name": "X"}, RECORD)


def test_validation_names_the_field() -> None:
    with pytest.raises(InvalidField) as exc:
        cf.validated({"full_name": "Tên"}, "  ")
    assert exc.value.field == "reason"
    with pytest.raises(InvalidField) as exc:
        cf.validated({}, "lý do")
    assert exc.value.field == "changes"
    with pytest.raises(InvalidField) as exc:
        cf.validated({"father": {"full_name": "X", "pin": "12"}}, "lý do")
    assert exc.value.field == "changes.father.pin"
    assert cf.validated({"full_name": "Tên Mới"}, "lý do").reason == "lý do"
