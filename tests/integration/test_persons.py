"""Officer access to person records (contract section 4) and its audit events (section 5)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.bodies import issue_body
from tests.support.server import ServerThread


def _issue(registrar: httpx.Client, **kw: object) -> str:
    response = registrar.post("/v1/pins", json=issue_body("052", **kw))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def _events(service_db: Callable[..., list], action: str, pin: str | None = None) -> list:
    if pin is None:
        return service_db("SELECT * FROM audit_event WHERE action = $1 ORDER BY id", action)
    return service_db("SELECT * FROM audit_event WHERE action = $1 AND pin = $2 ORDER BY id",
                      action, pin)


def test_read_with_purpose_returns_record_and_audits_purpose(
    registrar: httpx.Client, officer: httpx.Client, service_db: Callable[..., list]
) -> None:
    pin = _issue(registrar, full_name="Lê Văn Tám")
    response = officer.get(f"/v1/persons/{pin}", params={"purpose": "hồ sơ hộ tịch 12"})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["pin"] == pin and record["status"] == "active"
    assert record["replaced_by"] is None
    assert record["child"]["full_name"] == "Lê Văn Tám"
    events = _events(service_db, "person.read", pin)
    assert len(events) == 1
    assert events[0]["purpose"] == "hồ sơ hộ tịch 12" and events[0]["outcome"] == "found"
    assert events[0]["actor_type"] == "operator"


def test_read_without_purpose_is_purpose_required(registrar: httpx.Client,
                                                  officer: httpx.Client) -> None:
    pin = _issue(registrar)
    for params in ({}, {"purpose": ""}, {"purpose": "   "}):
        response = officer.get(f"/v1/persons/{pin}", params=params)
        assert response.status_code == 400
        assert response.json()["code"] == "purpose_required"


def test_read_outside_jurisdiction_is_forbidden_and_audited(
    registrar: httpx.Client, officer_token: Callable[..., str], server: ServerThread,
    service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar)
    with server.client(officer_token("079")) as other:
        response = other.get(f"/v1/persons/{pin}", params={"purpose": "curiosity"})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert "child" not in response.text
    events = _events(service_db, "person.read", pin)
    assert [(e["outcome"], e["details"]["code"]) for e in events] == [("refused", "forbidden")]
    assert events[0]["purpose"] == "curiosity"


def test_read_unknown_pin_is_not_found_and_audited(officer: httpx.Client,
                                                   service_db: Callable[..., list]) -> None:
    response = officer.get("/v1/persons/052399999999", params={"purpose": "lookup"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert [(e["outcome"], e["details"]["code"])
            for e in _events(service_db, "person.read", "052399999999")] \
        == [("refused", "not_found")]


def test_search_folds_diacritics_and_matches_other_names(
    registrar: httpx.Client, officer: httpx.Client, service_db: Callable[..., list]
) -> None:
    pin = _issue(registrar, full_name="Đặng Thị Ngọc Hường", dob="2023-07-09",
                 registered_on="2023-07-20", other_names=["Bé Na"])
    found = officer.get("/v1/persons", params={"full_name": "dang thi NGOC   huong",
                                               "date_of_birth": "2023-07-09",
                                               "purpose": "tra cứu"})
    assert found.status_code == 200, found.text
    assert [p["pin"] for p in found.json()["persons"]] == [pin]
    by_other = officer.get("/v1/persons", params={"full_name": "be na", "purpose": "tra cứu",
                                                  "date_of_birth": "2023-07-09"})
    assert [p["pin"] for p in by_other.json()["persons"]] == [pin]
    exact_miss = officer.get("/v1/persons", params={"full_name": "Dang Thi Ngoc Huong",
                                                    "match": "exact", "purpose": "tra cứu",
                                                    "date_of_birth": "2023-07-09"})
    assert exact_miss.json()["persons"] == []
    events = _events(service_db, "person.search", pin)
    assert len(events) == 2
    assert events[0]["details"]["criteria"]["full_name"] == "dang thi NGOC   huong"


def test_search_with_no_match_writes_one_event_without_pin(
    officer: httpx.Client, service_db: Callable[..., list]
) -> None:
    name = "Không Ai Có Tên Này"
    response = officer.get("/v1/persons", params={"full_name": name, "purpose": "kiểm tra"})
    assert response.status_code == 200 and response.json()["persons"] == []
    rows = service_db("SELECT pin, outcome FROM audit_event WHERE action = 'person.search' "
                      "AND details->'criteria'->>'full_name' = $1", name)
    assert [(r["pin"], r["outcome"]) for r in rows] == [(None, "not_found")]


def test_search_only_returns_records_in_jurisdiction(
    client_token: Callable[..., str], officer_token: Callable[..., str], server: ServerThread,
) -> None:
    name = "Phạm Văn Đồng Hành"
    with server.client(client_token("*")) as national:
        for province in ("052", "079"):
            assert national.post("/v1/pins", json=issue_body(province, full_name=name)
                                 ).status_code == 201
    with server.client(officer_token("079")) as officer_079:
        found = officer_079.get("/v1/persons", params={"full_name": name, "purpose": "x"})
        assert [p["pin"][:3] for p in found.json()["persons"]] == ["079"]
        other = officer_079.get("/v1/persons", params={"full_name": name, "purpose": "x",
                                                       "province_code": "052"})
        assert other.status_code == 403
    with server.client(officer_token("*")) as central:
        found = central.get("/v1/persons", params={"full_name": name, "purpose": "x"})
        assert sorted(p["pin"][:3] for p in found.json()["persons"]) == ["052", "079"]


@pytest.mark.parametrize(
    ("name", "dob", "expected"),
    [("Trần Minh Khôi", "2022-01-05", True), ("trần  minh KHÔI", "2022-01-05", True),
     ("Tran Minh Khoi", "2022-01-05", False), ("Trần Minh Khôi", "2022-01-06", False)],
)
def test_verify_reveals_only_match(registrar: httpx.Client, name: str, dob: str,
                                   expected: bool) -> None:
    pin = _issue(registrar, full_name="Trần Minh Khôi", dob="2022-01-05",
                 registered_on="2022-02-01")
    response = registrar.post("/v1/pins/verify", json={"pin": pin, "full_name": name,
                                                       "date_of_birth": dob})
    assert response.status_code == 200
    assert response.json() == {"match": expected}


def test_verify_unknown_pin_is_no_match_and_audited(registrar: httpx.Client,
                                                    service_db: Callable[..., list]) -> None:
    response = registrar.post("/v1/pins/verify", json={"pin": "052300000001", "full_name": "A",
                                                       "date_of_birth": "2020-01-01"})
    assert response.json() == {"match": False}
    assert [e["outcome"] for e in _events(service_db, "pin.verify", "052300000001")][-1] \
        == "no_match"


def test_name_correction_keeps_pin_and_history(
    registrar: httpx.Client, officer: httpx.Client, service_db: Callable[..., list]
) -> None:
    pin = _issue(registrar, full_name="Nguyen Van A")
    response = officer.post(f"/v1/persons/{pin}/corrections", json={
        "changes": {"full_name": "Nguyễn Văn An", "place_of_birth": "Tuy Phước"},
        "reason": "sai chính tả khi đăng ký"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pin"] == pin and body["status"] == "active"
    assert body["child"]["full_name"] == "Nguyễn Văn An"
    assert body["child"]["place_of_birth"] == "Tuy Phước"
    history = service_db("SELECT reason, changes, previous, new_pin FROM person_history "
                         "WHERE pin = $1", pin)
    assert len(history) == 1 and history[0]["new_pin"] is None
    assert history[0]["previous"]["child"]["full_name"] == "Nguyen Van A"
    assert [e["outcome"] for e in _events(service_db, "person.correct", pin)] == ["corrected"]
    found = officer.get("/v1/persons", params={"full_name": "nguyen van an", "purpose": "x"})
    assert pin in [p["pin"] for p in found.json()["persons"]]


@pytest.mark.parametrize("changes", [{"sex": "M"}, {"date_of_birth": "2023-12-31"}],
                         ids=["sex", "birth-year"])
def test_sex_or_birth_year_correction_reissues_pin(
    registrar: httpx.Client, officer: httpx.Client, service_db: Callable[..., list],
    changes: dict,
) -> None:
    pin = _issue(registrar, sex="F", dob="2024-01-02", registered_on="2024-01-10")
    response = officer.post(f"/v1/persons/{pin}/corrections",
                            json={"changes": changes, "reason": "quyết định cải chính"})
    assert response.status_code == 200, response.text
    new = response.json()
    new_pin = new["pin"]
    assert new_pin != pin and new["replaces"] == pin
    expected_g_yy = "224" if "sex" in changes else "323"
    assert new_pin[:3] == "052" and new_pin[3:6] == expected_g_yy
    old = officer.get(f"/v1/persons/{pin}", params={"purpose": "x"}).json()
    assert old["status"] == "cancelled" and old["replaced_by"] == new_pin
    assert service_db("SELECT new_pin FROM person_history WHERE pin = $1", pin)[0][0] == new_pin
    issued = _events(service_db, "pin.issue", new_pin)
    assert issued[0]["details"] == {"replaces": pin}
    again = officer.post(f"/v1/persons/{pin}/corrections",
                         json={"changes": {"full_name": "X Y"}, "reason": "r"})
    assert again.status_code == 422 and again.json()["field"] == "pin"


def test_birth_date_correction_within_year_keeps_pin(registrar: httpx.Client,
                                                     officer: httpx.Client) -> None:
    pin = _issue(registrar, dob="2024-01-02", registered_on="2024-01-10")
    response = officer.post(f"/v1/persons/{pin}/corrections",
                            json={"changes": {"date_of_birth": "2024-01-03"}, "reason": "r"})
    assert response.status_code == 200 and response.json()["pin"] == pin


def test_correction_cannot_move_birth_after_registration(registrar: httpx.Client,
                                                         officer: httpx.Client) -> None:
    pin = _issue(registrar, dob="2024-01-02", registered_on="2024-01-10")
    response = officer.post(f"/v1/persons/{pin}/corrections",
                            json={"changes": {"date_of_birth": "2024-02-01"}, "reason": "r"})
    assert response.status_code == 422
    assert response.json()["field"] == "changes.date_of_birth"


def test_birth_date_correction_is_what_verify_and_search_see(
    registrar: httpx.Client, officer: httpx.Client
) -> None:
    """A correction rewrites the whole person row (`person_update`), not only the record: the
    date of birth that verification and search compare is the corrected one."""
    pin = _issue(registrar, full_name="Võ Thị Sáu Mới", dob="2024-01-02",
                 registered_on="2024-01-10")
    response = officer.post(f"/v1/persons/{pin}/corrections",
                            json={"changes": {"date_of_birth": "2024-01-03"}, "reason": "r"})
    assert response.status_code == 200, response.text
    verified = registrar.post("/v1/pins/verify", json={
        "pin": pin, "full_name": "Võ Thị Sáu Mới", "date_of_birth": "2024-01-03"})
    assert verified.json() == {"match": True}
    found = officer.get("/v1/persons", params={"full_name": "Võ Thị Sáu Mới", "purpose": "x",
                                               "date_of_birth": "2024-01-03"})
    assert [p["pin"] for p in found.json()["persons"]] == [pin]
