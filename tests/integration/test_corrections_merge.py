"""Corrections merge, never erase by accident (contract 7; issue 9 item 12)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.support.bad_input import assert_problem, request_id
from tests.support.bodies import issue_body

DbFn = Callable[..., list]
FATHER = {"full_name": "Nguyễn Văn Hùng", "pin": "052090012345", "nationality": "VN"}


def _issue(registrar: httpx.Client, **changes: Any) -> str:
    body = issue_body("052")
    body.update(changes)
    response = registrar.post("/v1/pins", json=body)
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def _correct(officer: httpx.Client, pin: str, changes: dict) -> tuple[httpx.Response, str]:
    rid = request_id()
    return officer.post(f"/v1/persons/{pin}/corrections", headers={"X-Request-ID": rid},
                        json={"changes": changes, "reason": "typo"}), rid


def _event(service_db: DbFn, rid: str) -> tuple[str, dict]:
    [row] = service_db("SELECT outcome, details FROM audit_event WHERE request_id = $1 AND "
                       "action = 'person.correct'", rid)
    return row["outcome"], row["details"]


def test_parent_name_correction_keeps_the_parents_pin_and_nationality(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    """The reproduced finding: this answered 200 and set the father's pin and nationality to
    null, and the event said only {"fields": ["father"]}."""
    pin = _issue(registrar)
    response, rid = _correct(officer, pin, {"father": {"full_name": "Nguyễn Văn Hưng"}})
    assert response.status_code == 200, response.text
    assert response.json()["father"] == {**FATHER, "full_name": "Nguyễn Văn Hưng"}
    assert response.json()["mother"]["full_name"] == "Trần Thị Lan"
    outcome, details = _event(service_db, rid)
    assert outcome == "corrected"
    assert details["before"] == {"father": {"full_name": "Nguyễn Văn Hùng"}}
    assert details["after"] == {"father": {"full_name": "Nguyễn Văn Hưng"}}


def test_explicit_null_clears_a_parents_pin_and_the_event_shows_it(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    response, rid = _correct(officer, pin, {"father": {"pin": None}})
    assert response.status_code == 200, response.text
    assert response.json()["father"] == {**FATHER, "pin": None}
    _, details = _event(service_db, rid)
    assert (details["before"], details["after"]) == ({"father": {"pin": "052090012345"}},
                                                     {"father": {"pin": None}})


def test_parent_given_as_null_is_removed(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    response, rid = _correct(officer, pin, {"father": None})
    assert response.status_code == 200, response.text
    assert response.json()["father"] is None
    _, details = _event(service_db, rid)
    assert (details["before"], details["after"]) == ({"father": FATHER}, {"father": None})


def test_child_fields_merge_and_null_clears_an_optional_one(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    response, rid = _correct(officer, pin, {"place_of_birth": None, "home_town": "Quy Nhơn"})
    assert response.status_code == 200, response.text
    child = response.json()["child"]
    assert (child["place_of_birth"], child["home_town"], child["ethnicity"]) == (
        None, "Quy Nhơn", "Kinh")
    _, details = _event(service_db, rid)
    assert details["before"] == {"place_of_birth": "Quy Nhơn", "home_town": "Bình Định"}
    assert details["after"] == {"place_of_birth": None, "home_town": "Quy Nhơn"}
    assert details["fields"] == ["home_town", "place_of_birth"]


def test_parent_added_by_a_correction_needs_a_name(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar, father=None)
    response, rid = _correct(officer, pin, {"father": {"pin": "052090012345"}})
    assert_problem(response, 422, "invalid_field", "changes.father.full_name")
    assert _event(service_db, rid) == ("refused", {"code": "invalid_field",
                                                   "field": "changes.father.full_name"})
    added, rid = _correct(officer, pin, {"father": {"full_name": "Nguyễn Văn Hùng",
                                                    "pin": "052090012345"}})
    assert added.status_code == 200, added.text
    assert added.json()["father"] == {**FATHER, "nationality": None}
    _, details = _event(service_db, rid)
    assert (details["before"], details["after"]) == (
        {"father": None}, {"father": {**FATHER, "nationality": None}})


def test_correction_that_changes_nothing_is_422_no_change_and_audited(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    for changes in ({"full_name": "Nguyễn Thị Minh Anh"}, {"father": {"pin": "052090012345"}}):
        response, rid = _correct(officer, pin, changes)
        assert_problem(response, 422, "no_change", "changes")
        assert _event(service_db, rid) == ("refused", {"code": "no_change", "field": "changes"})
    assert service_db("SELECT count(*) FROM person_history WHERE pin = $1", pin)[0][0] == 0


def test_reissue_event_records_before_and_after(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    response, rid = _correct(officer, pin, {"sex": "M"})
    assert response.status_code == 200, response.text
    outcome, details = _event(service_db, rid)
    assert outcome == "reissued" and details["new_pin"] == response.json()["pin"]
    assert (details["before"], details["after"]) == ({"sex": "F"}, {"sex": "M"})
