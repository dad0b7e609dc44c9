"""Death registration (contract 9; issue 11 item 1): every rule with its code, idempotent per
death registration key, audited `person.death`, undone only by a correction with a reason."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.bad_input import assert_problem, request_id
from tests.support.bodies import issue_body
from tests.support.server import ServerThread

DbFn = Callable[..., list]


def _issue(registrar: httpx.Client, **kw: Any) -> str:
    response = registrar.post("/v1/pins", json=issue_body("052", **kw))
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def death_body(province: str = "052", *, number: str | None = None,
               date_of_death: str = "2025-01-05", registered_on: str = "2025-01-10",
               place: str = "Quy Nhơn") -> dict[str, Any]:
    return {"registration": {"authority": "UBND xã Nhơn Lý",
                             "number": number or f"KT-{uuid.uuid4().hex[:10]}",
                             "registered_on": registered_on, "province_code": province},
            "date_of_death": date_of_death, "place_of_death": place}


def _events(service_db: DbFn, rid: str, action: str) -> list[Any]:
    return service_db("SELECT outcome, pin, details FROM audit_event WHERE request_id = $1 "
                      "AND action = $2", rid, action)


def test_death_registered_record_deceased_readable_and_audited(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    body = death_body()
    rid = request_id()
    response = registrar.post(f"/v1/persons/{pin}/death", json=body, headers={"X-Request-ID": rid})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["status"] == "deceased" and record["pin"] == pin
    assert record["death"] == body
    assert record["child"]["full_name"] == "Nguyễn Thị Minh Anh"  # the record is all there
    [event] = _events(service_db, rid, "person.death")
    assert (event["outcome"], event["pin"]) == ("registered", pin)
    assert event["details"]["date_of_death"] == "2025-01-05"
    read = officer.get(f"/v1/persons/{pin}", params={"purpose": "kiểm tra"})
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "deceased" and read.json()["death"] == body


def test_same_death_key_and_body_again_is_200_replay(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    body = death_body()
    first = registrar.post(f"/v1/persons/{pin}/death", json=body)
    rid = request_id()
    again = registrar.post(f"/v1/persons/{pin}/death", json=body, headers={"X-Request-ID": rid})
    assert first.status_code == 200 and again.status_code == 200, again.text
    assert again.json() == first.json()
    [event] = _events(service_db, rid, "person.death")
    assert event["outcome"] == "replayed"


def test_same_death_key_other_content_is_409_registration_conflict(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    body = death_body()
    assert registrar.post(f"/v1/persons/{pin}/death", json=body).status_code == 200
    rid = request_id()
    other = registrar.post(f"/v1/persons/{pin}/death", headers={"X-Request-ID": rid},
                           json={**body, "place_of_death": "Tuy Phước"})
    assert_problem(other, 409, "registration_conflict", field="registration")
    [event] = _events(service_db, rid, "person.death")
    assert event["outcome"] == "refused"
    assert event["details"]["code"] == "registration_conflict"
    # The same death key for another person is the same key with other content too.
    second = _issue(registrar)
    assert_problem(registrar.post(f"/v1/persons/{second}/death", json=body), 409,
                   "registration_conflict")


def test_death_key_space_is_apart_from_births(registrar: httpx.Client) -> None:
    """A death registration may carry the same (province, authority, number) as a birth."""
    birth = issue_body("052")
    response = registrar.post("/v1/pins", json=birth)
    assert response.status_code == 201, response.text
    pin = response.json()["pin"]
    body = death_body(number=birth["registration"]["number"])
    body["registration"]["authority"] = birth["registration"]["authority"]
    assert registrar.post(f"/v1/persons/{pin}/death", json=body).status_code == 200


def test_already_deceased_under_another_key_is_409(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    assert registrar.post(f"/v1/persons/{pin}/death", json=death_body()).status_code == 200
    rid = request_id()
    second = registrar.post(f"/v1/persons/{pin}/death", json=death_body(),
                            headers={"X-Request-ID": rid})
    assert_problem(second, 409, "already_deceased", field="pin")
    [event] = _events(service_db, rid, "person.death")
    assert event["details"]["code"] == "already_deceased"


def test_cancelled_pin_is_409_pin_cancelled_with_replaced_by(
    registrar: httpx.Client, officer: httpx.Client,
) -> None:
    pin = _issue(registrar)
    corrected = officer.post(f"/v1/persons/{pin}/corrections",
                             json={"changes": {"sex": "M"}, "reason": "sai giới tính"})
    assert corrected.status_code == 200, corrected.text
    new_pin = corrected.json()["pin"]
    refused = registrar.post(f"/v1/persons/{pin}/death", json=death_body())
    body = assert_problem(refused, 409, "pin_cancelled", field="pin")
    assert body["replaced_by"] == new_pin


def test_death_before_birth_is_422(registrar: httpx.Client, service_db: DbFn) -> None:
    pin = _issue(registrar, dob="2024-03-02")
    rid = request_id()
    refused = registrar.post(f"/v1/persons/{pin}/death", headers={"X-Request-ID": rid},
                             json=death_body(date_of_death="2024-03-01"))
    assert_problem(refused, 422, "invalid_field", field="date_of_death")
    assert _events(service_db, rid, "person.death")[0]["outcome"] == "refused"
    ok = registrar.post(f"/v1/persons/{pin}/death", json=death_body(date_of_death="2024-03-02"))
    assert ok.status_code == 200, ok.text  # died the day of birth


def test_death_after_registration_or_registration_in_future_is_422(
    registrar: httpx.Client,
) -> None:
    pin = _issue(registrar)
    late = registrar.post(f"/v1/persons/{pin}/death",
                          json=death_body(date_of_death="2025-01-11", registered_on="2025-01-10"))
    assert_problem(late, 422, "invalid_field", field="date_of_death")
    future = registrar.post(f"/v1/persons/{pin}/death",
                            json=death_body(date_of_death="2025-01-11",
                                            registered_on="2999-01-01"))
    assert_problem(future, 422, "invalid_field", field="registration.registered_on")


def test_unknown_pin_is_404_and_audited(registrar: httpx.Client, service_db: DbFn) -> None:
    # Birth year 2099: no test can issue it (a birth in the future is refused), so it is
    # unknown whatever the suite issued before; 052324999999 was once drawn by chance.
    rid = request_id()
    refused = registrar.post("/v1/persons/052399999996/death", json=death_body(),
                             headers={"X-Request-ID": rid})
    assert_problem(refused, 404, "not_found")
    [event] = _events(service_db, rid, "person.death")
    assert (event["outcome"], event["details"]["code"]) == ("refused", "not_found")


def test_jurisdiction_is_the_death_registrations_province(
    registrar: httpx.Client, client_token: Callable[..., str], server: ServerThread,
    service_db: DbFn,
) -> None:
    """A Hà Nội registrar registers the death (in Hà Nội) of a person born in Bình Định; it
    cannot register a death in Bình Định: 403 before anything is looked up."""
    pin = _issue(registrar)
    with server.client(client_token("001")) as ha_noi:
        rid = request_id()
        refused = ha_noi.post(f"/v1/persons/{pin}/death", json=death_body("052"),
                              headers={"X-Request-ID": rid})
        assert_problem(refused, 403, "forbidden", field="registration.province_code")
        assert service_db("SELECT count(*) FROM audit_event WHERE request_id = $1",
                          rid)[0]["count"] == 0
        ok = ha_noi.post(f"/v1/persons/{pin}/death", json=death_body("001"))
        assert ok.status_code == 200, ok.text


def test_officer_cannot_register_a_death(officer: httpx.Client, registrar: httpx.Client) -> None:
    pin = _issue(registrar)
    assert_problem(officer.post(f"/v1/persons/{pin}/death", json=death_body()), 403, "forbidden")


def test_unknown_field_is_refused(registrar: httpx.Client) -> None:
    pin = _issue(registrar)
    refused = registrar.post(f"/v1/persons/{pin}/death", json={**death_body(), "cause": "x"})
    assert_problem(refused, 422, "invalid_field")


def test_officer_undoes_a_death_by_correction_with_reason(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    body = death_body()
    assert registrar.post(f"/v1/persons/{pin}/death", json=body).status_code == 200
    rid = request_id()
    undone = officer.post(f"/v1/persons/{pin}/corrections", headers={"X-Request-ID": rid},
                          json={"changes": {"status": "active"}, "reason": "đăng ký nhầm"})
    assert undone.status_code == 200, undone.text
    assert undone.json()["status"] == "active" and "death" not in undone.json()
    [event] = service_db("SELECT outcome, details FROM audit_event WHERE request_id = $1 "
                         "AND action = 'person.correct'", rid)
    assert event["details"]["before"] == {"status": "deceased", "death": body}
    assert event["details"]["after"] == {"status": "active"}
    assert event["details"]["reason"] == "đăng ký nhầm"
    [history] = service_db("SELECT reason, changes FROM person_history WHERE pin = $1 "
                           "AND reason = 'đăng ký nhầm'", pin)
    assert history["changes"] == {"status": "active"}
    # Without a reason there is no correction; on an active person nothing to undo.
    assert_problem(officer.post(f"/v1/persons/{pin}/corrections",
                                json={"changes": {"status": "active"}}), 400,
                   "malformed_request")
    assert_problem(officer.post(f"/v1/persons/{pin}/corrections",
                                json={"changes": {"status": "active"}, "reason": "x"}),
                   422, "no_change")
    # A new death registration applies again.
    again = registrar.post(f"/v1/persons/{pin}/death", json=death_body())
    assert again.status_code == 200 and again.json()["status"] == "deceased"


def test_status_can_only_be_set_back_to_active_alone(
    registrar: httpx.Client, officer: httpx.Client,
) -> None:
    pin = _issue(registrar)
    assert_problem(officer.post(f"/v1/persons/{pin}/corrections",
                                json={"changes": {"status": "deceased"}, "reason": "x"}),
                   422, "invalid_field")
    assert_problem(officer.post(f"/v1/persons/{pin}/corrections",
                                json={"changes": {"status": "active", "home_town": "Huế"},
                                      "reason": "x"}), 422, "invalid_field")


def test_deceased_sex_or_birth_year_change_is_refused_person_deceased(
    registrar: httpx.Client, officer: httpx.Client, service_db: DbFn,
) -> None:
    pin = _issue(registrar)
    assert registrar.post(f"/v1/persons/{pin}/death", json=death_body()).status_code == 200
    for changes in ({"sex": "M"}, {"date_of_birth": "2023-03-02"}):
        rid = request_id()
        refused = officer.post(f"/v1/persons/{pin}/corrections", headers={"X-Request-ID": rid},
                               json={"changes": changes, "reason": "sai"})
        assert_problem(refused, 409, "person_deceased", field="changes")
        [event] = service_db("SELECT outcome, details FROM audit_event WHERE request_id = $1 "
                             "AND action = 'person.correct'", rid)
        assert event["details"]["code"] == "person_deceased"
    # A correction that keeps the PIN is allowed; the record stays deceased.
    kept = officer.post(f"/v1/persons/{pin}/corrections",
                        json={"changes": {"place_of_birth": "Tuy Phước"}, "reason": "sai"})
    assert kept.status_code == 200, kept.text
    assert kept.json()["status"] == "deceased" and kept.json()["death"]["place_of_death"]
