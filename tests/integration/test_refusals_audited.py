"""Refusals that touch a record are audited (contract 7; issue 9 item 7): outcome `refused`,
`details.code` the problem's code, written in a transaction of their own when the access's
transaction was rolled back."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.bad_input import assert_problem, request_id
from tests.support.bodies import issue_body
from tests.support.server import ServerThread

DbFn = Callable[..., list]


def _issue(registrar: httpx.Client, **kw: object) -> str:
    response = registrar.post("/v1/pins", json=issue_body("052", **kw))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def _events(service_db: DbFn, rid: str) -> list[tuple[str, str, str | None, dict]]:
    rows = service_db("SELECT action, outcome, pin, details FROM audit_event "
                      "WHERE request_id = $1 ORDER BY id", rid)
    return [(r["action"], r["outcome"], r["pin"], r["details"]) for r in rows]


def _correct(client: httpx.Client, pin: str, changes: dict) -> tuple[httpx.Response, str]:
    rid = request_id()
    response = client.post(f"/v1/persons/{pin}/corrections", headers={"X-Request-ID": rid},
                           json={"changes": changes, "reason": "quyết định cải chính"})
    return response, rid


def test_correction_of_unknown_pin_is_audited_as_refused(
    officer: httpx.Client, service_db: DbFn,
) -> None:
    response, rid = _correct(officer, "052399999998", {"full_name": "Ai Đó"})
    assert_problem(response, 404, "not_found")
    assert _events(service_db, rid) == [
        ("person.correct", "refused", "052399999998", {"code": "not_found"})]


def test_correction_of_cancelled_pin_is_audited_as_refused(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar, sex="F")
    assert _correct(officer, pin, {"sex": "M"})[0].status_code == 200  # cancels `pin`
    response, rid = _correct(officer, pin, {"full_name": "Tên Mới"})
    assert_problem(response, 422, "invalid_field", "pin")
    assert _events(service_db, rid) == [
        ("person.correct", "refused", pin, {"code": "invalid_field", "field": "pin"})]


def test_correction_the_record_does_not_allow_is_audited_and_changes_nothing(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    """Refused after the record was read and locked: its transaction is rolled back, the refusal
    is written in one of its own."""
    pin = _issue(registrar, dob="2024-01-02", registered_on="2024-01-10")
    response, rid = _correct(officer, pin, {"date_of_birth": "2024-02-01"})
    assert_problem(response, 422, "invalid_field", "changes.date_of_birth")
    assert _events(service_db, rid) == [
        ("person.correct", "refused", pin,
         {"code": "invalid_field", "field": "changes.date_of_birth"})]
    assert service_db("SELECT count(*) FROM person_history WHERE pin = $1", pin)[0][0] == 0


def test_correction_outside_jurisdiction_is_audited_as_refused(
    registrar: httpx.Client, officer_token: Callable[..., str], server: ServerThread,
    service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    with server.client(officer_token("079")) as other:
        response, rid = _correct(other, pin, {"full_name": "Tên Khác"})
    assert_problem(response, 403, "forbidden", "pin")
    assert _events(service_db, rid) == [
        ("person.correct", "refused", pin, {"code": "forbidden", "field": "pin"})]


def test_read_of_unknown_pin_is_audited_as_refused(officer: httpx.Client,
                                                   service_db: DbFn) -> None:
    rid = request_id()
    response = officer.get("/v1/persons/052399999997", params={"purpose": "tra cứu"},
                           headers={"X-Request-ID": rid})
    assert_problem(response, 404, "not_found")
    assert _events(service_db, rid) == [
        ("person.read", "refused", "052399999997", {"code": "not_found"})]


def test_registration_conflict_is_audited_as_refused_on_the_existing_record(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    body = issue_body("052")
    pin = registrar.post("/v1/pins", json=body).json()["pin"]
    body["child"]["full_name"] = "Người Khác"
    rid = request_id()
    response = registrar.post("/v1/pins", json=body, headers={"X-Request-ID": rid})
    assert_problem(response, 409, "registration_conflict", "registration")
    [(action, outcome, event_pin, details)] = _events(service_db, rid)
    assert (action, outcome, event_pin, details["code"]) == (
        "pin.issue", "refused", pin, "registration_conflict")
    assert details["registration"]["number"] == body["registration"]["number"]


@pytest.mark.parametrize("changes", [{"date_of_birth": "1899-12-31"}, {"sex": "X"}],
                         ids=["birth_year_no_pin_can_encode", "bad_value"])
def test_correction_refused_before_any_lookup_writes_nothing(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn, changes: dict,
) -> None:
    """Input that is wrong whatever the record says touches no record (as in contract v1)."""
    pin = _issue(registrar)
    response, rid = _correct(officer, pin, changes)
    assert response.status_code == 422
    assert _events(service_db, rid) == []
