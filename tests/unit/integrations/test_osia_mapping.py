"""OSIA mappings as data (pure): UIN attributes -> a `POST /v1/pins` body, a record -> Person
Attributes, and our problems -> OSIA `Error {code, message}` bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from idservice.api.osia import render_error
from idservice.errors import (
    Forbidden,
    InvalidField,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RegistrationConflict,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from idservice.integrations.osia import person_attributes as pa
from idservice.integrations.osia.codes import OsiaCode, OsiaError
from idservice.integrations.osia.uin_attributes import (
    UIN_ATTRIBUTES,
    attribute_for_field,
    to_issue_body,
)


def test_attribute_codes_are_unique_per_target_field() -> None:
    codes: dict[int, set[str]] = {}
    for attribute in UIN_ATTRIBUTES:
        codes.setdefault(int(attribute.code), set()).add(".".join(attribute.path))
    assert all(len(fields) == 1 for fields in codes.values()), codes
    assert len(codes) == 17


def test_name_parts_join_family_name_first() -> None:
    body = to_issue_body({"lastName": "Nguyễn", "middleName": " Thị Minh ",
                          "firstName": "Anh "}, default_province=None)
    assert body["child"]["full_name"] == "Nguyễn Thị Minh Anh"  # parts trimmed, one space


def test_middle_name_is_optional() -> None:
    body = to_issue_body({"lastName": "Lê", "firstName": "Bình"}, default_province=None)
    assert body["child"]["full_name"] == "Lê Bình"


@pytest.mark.parametrize(("value", "sex"), [(1, "M"), (2, "F"), ("1", "M"), (" 2 ", "F")])
def test_gender_iso_5218_integer_or_string(value: object, sex: str) -> None:
    assert to_issue_body({"gender": value}, default_province=None)["child"]["sex"] == sex


def test_other_names_split_on_semicolons() -> None:
    body = to_issue_body({"otherNames": "Na; Bé Na;;"}, default_province=None)
    assert body["child"]["other_names"] == ["Na", "Bé Na"]


def test_registration_number_integer_is_text() -> None:
    body = to_issue_body({"registrationNumber": 125}, default_province="052")
    assert body["registration"] == {"number": "125", "province_code": "052"}


def test_parents_go_to_their_sections() -> None:
    body = to_issue_body({"fatherFullName": "A", "motherUin": "052090012345"},
                         default_province=None)
    assert body["father"] == {"full_name": "A"}
    assert body["mother"] == {"pin": "052090012345"}


def test_unknown_attribute_refuses_the_request_with_1023() -> None:
    with pytest.raises(OsiaError) as caught:
        to_issue_body({"firstName": "A", "nickname": "B"}, default_province=None)
    assert caught.value.osia_code == 1023 and "'nickname'" in caught.value.detail


@pytest.mark.parametrize(("field", "name"), [
    ("child.other_names.3", "otherNames"), ("child.full_name", "fullName"),
    ("registration.registered_on", "registrationDate"), ("mother.pin", "motherUin"),
    ("registration", None), (None, None)])
def test_attribute_for_field(field: str | None, name: str | None) -> None:
    found = attribute_for_field(field)
    assert (found.name if found else None) == name


# -- Person Attributes ------------------------------------------------------------------

VIEW: dict[str, Any] = {"pin": "052324000001", "status": "active", "child": {
    "full_name": "Nguyễn Thị Minh Anh", "sex": "F", "date_of_birth": "2024-03-02",
    "place_of_birth": None}}


@pytest.mark.parametrize(("full_name", "last", "middle", "first"), [
    ("Nguyễn Thị Minh Anh", "Nguyễn", "Thị Minh", "Anh"), ("Lê Bình", "Lê", None, "Bình"),
    ("Đức", "Đức", None, "Đức")])
def test_name_attributes_split_the_full_name(full_name: str, last: str, middle: str | None,
                                             first: str) -> None:
    view = {**VIEW, "child": {**VIEW["child"], "full_name": full_name}}
    values = pa.read_values(view, pa.select(["lastName", "middleName", "firstName"]))
    assert values["lastName"] == last and values["firstName"] == first
    assert values["middleName"] == (middle if middle is not None else {
        "code": 1026, "message": "no value recorded for this attribute"})


def test_select_keeps_order_and_drops_repeats() -> None:
    assert [a.name for a in pa.select(["gender", "uin", "gender"])] == ["gender", "uin"]


def test_values_are_strings_gender_iso_5218() -> None:
    assert pa.read_values(VIEW, pa.select(["gender", "dateOfBirth", "status"])) == {
        "gender": "2", "dateOfBirth": "2024-03-02", "status": "active"}


def test_death_attributes_come_from_the_death_registration() -> None:
    view = {**VIEW, "status": "deceased",
            "death": {"date_of_death": "2025-01-02", "place_of_death": "Quy Nhơn"}}
    assert pa.read_values(view, pa.select(["dateOfDeath", "placeOfDeath"])) == {
        "dateOfDeath": "2025-01-02", "placeOfDeath": "Quy Nhơn"}


def test_match_reveals_only_which_attributes_differ() -> None:
    given = pa.check_match_request({"fullName": "NGUYỄN thị minh anh", "gender": 1,
                                    "placeOfBirth": "Quy Nhơn"})
    assert pa.match(VIEW, given) == [{"attributeName": "gender", "errorCode": 1},
                                     {"attributeName": "placeOfBirth", "errorCode": 0}]


def test_expressions_compare_dates_and_names() -> None:
    expressions = pa.parse_expressions([
        {"attributeName": "dateOfBirth", "operator": ">=", "value": "2024-03-02"},
        {"attributeName": "fullName", "operator": "=", "value": "nguyễn thị minh anh"}])
    assert pa.evaluate(VIEW, expressions) is True
    assert pa.evaluate(VIEW, pa.parse_expressions([
        {"attributeName": "dateOfBirth", "operator": ">", "value": "2024-03-02"}])) is False


# -- Error bodies -------------------------------------------------------------------------

@pytest.mark.parametrize(("error", "status", "code"), [
    (MalformedRequest("bad"), 400, 1000),
    (UnsupportedMediaType("x"), 400, 1001),
    (PayloadTooLarge("x"), 400, 1002),
    (InvalidField("must be a date", field="child.date_of_birth"), 400, 1209),
    (MalformedRequest("required", field="registration.number"), 400, 1202),
    (InvalidField("bad", field="purpose"), 400, 1003),
    (RegistrationConflict("x", field="registration"), 400, 1101),
    (OsiaError(OsiaCode.TRANSACTION_CONFLICT, "x"), 400, 1100),
    (Unavailable("the database is unavailable; nothing was done"), 500, 5003),
    (ProblemError("internal error"), 500, 5000),
])
def test_problem_becomes_osia_error_body(error: ProblemError, status: int, code: int) -> None:
    response = render_error(error)
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert set(body) == {"code", "message"} and body["code"] == code


@pytest.mark.parametrize(("error", "status"), [
    (Unauthenticated("x"), 401), (Forbidden("x"), 403), (NotFound("x"), 404)])
def test_statuses_documented_without_body_are_empty(error: ProblemError, status: int) -> None:
    response = render_error(error)
    assert response.status_code == status and bytes(response.body) == b""
    assert ("www-authenticate" in response.headers) == (status == 401)
