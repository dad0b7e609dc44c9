"""The registration key is (province_code, authority, number) and a registrar can only touch keys
of its own provinces (contract 7; issue 9 items 6 and 17)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.support.bad_input import assert_problem, request_id
from tests.support.bodies import issue_body
from tests.support.server import ServerThread

HANG_BAC = "UBND phường Hàng Bạc, Hà Nội"


def _registration(province: str, number: str, full_name: str) -> dict:
    return issue_body(province, number=number, authority=HANG_BAC, full_name=full_name)


def test_other_province_using_a_ha_noi_key_does_not_block_ha_noi(
    client_token: Callable[..., str], server: ServerThread, service_db: Callable[..., list],
) -> None:
    """The reproduced finding: a 052 registrar registers "77/2026" of a Hà Nội authority; the
    Hà Nội registrar's own registration 77/2026 is still issued (not 409, forever)."""
    with server.client(client_token("052")) as binh_dinh, \
            server.client(client_token("001")) as ha_noi:
        squatted = binh_dinh.post("/v1/pins", json=_registration("052", "77/2026", "Trần Văn A"))
        assert squatted.status_code == 201, squatted.text
        real = ha_noi.post("/v1/pins", json=_registration("001", "77/2026", "Lê Thị B"))
        assert real.status_code == 201, real.text
        assert real.json()["pin"].startswith("001")
        again = ha_noi.post("/v1/pins", json=_registration("001", "77/2026", "Lê Thị B"))
        assert again.status_code == 200 and again.json()["pin"] == real.json()["pin"]
    rows = service_db("SELECT province_code FROM registration WHERE authority = $1 AND "
                      "number = '77/2026' ORDER BY province_code", HANG_BAC)
    assert [r["province_code"] for r in rows] == ["001", "052"]


def test_key_outside_jurisdiction_is_403_before_any_lookup(
    client_token: Callable[..., str], server: ServerThread, service_db: Callable[..., list],
) -> None:
    """A 052 registrar can neither create nor probe a 001 key: an existing one with other content
    answers 403, not 409 (which would say that it exists), and nothing is written."""
    with server.client(client_token("001")) as ha_noi:
        assert ha_noi.post("/v1/pins", json=_registration("001", "78/2026", "Lê Thị C")
                           ).status_code == 201
    rid = request_id()
    with server.client(client_token("052")) as binh_dinh:
        probe = binh_dinh.post("/v1/pins", json=_registration("001", "78/2026", "Khác"),
                               headers={"X-Request-ID": rid})
    assert_problem(probe, 403, "forbidden", "registration.province_code")
    assert service_db("SELECT count(*) FROM audit_event WHERE request_id = $1", rid)[0][0] == 0


def test_unknown_province_is_422_invalid_field_not_a_jurisdiction_refusal(
    registrar: httpx.Client,
) -> None:
    response = registrar.post("/v1/pins", json=issue_body("999"))
    problem = assert_problem(response, 422, "invalid_field", "registration.province_code")
    assert "999" in problem["detail"]


def test_unknown_province_in_a_batch_line_is_invalid_field(registrar: httpx.Client) -> None:
    response = registrar.post("/v1/pins:batch", content=httpx.Request(
        "POST", "/", json=issue_body("999")).content + b"\n",
        headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_field", "registration.province_code")


def test_unknown_province_in_a_search_is_invalid_field(officer: httpx.Client) -> None:
    response = officer.get("/v1/persons", params={"full_name": "A", "purpose": "x",
                                                  "province_code": "999"})
    assert_problem(response, 422, "invalid_field", "province_code")


def test_valid_province_outside_jurisdiction_stays_forbidden(registrar: httpx.Client) -> None:
    assert_problem(registrar.post("/v1/pins", json=issue_body("079")), 403, "forbidden",
                   "registration.province_code")
