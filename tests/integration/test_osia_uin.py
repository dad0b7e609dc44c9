"""OSIA UIN Generation (`POST /osia/v1/uin?transactionId=`, contract 10, uin.yaml 1.2.0): the
same issuance as `POST /v1/pins`, keyed by the caller's transactionId, answered as OSIA says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.bodies import issue_body
from tests.support.osia import assert_osia_error, new_transaction, uin_attributes
from tests.support.server import ServerThread

DbFn = Callable[..., list[Any]]


def _uin(client: httpx.Client, attributes: object, tx: str | None = None,
         **kwargs: Any) -> httpx.Response:
    return client.post("/osia/v1/uin", params={"transactionId": tx or new_transaction()},
                       json=attributes, **kwargs)


def test_new_registration_answers_200_pin_as_json_string(registrar: httpx.Client,
                                                         service_db: DbFn) -> None:
    attributes = uin_attributes()
    response = _uin(registrar, attributes)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    pin = response.json()
    assert isinstance(pin, str) and len(pin) == 12 and pin.startswith("0523")  # F, 20xx
    assert response.text == f'"{pin}"'
    row = service_db("SELECT record FROM person WHERE pin = $1", pin)[0]["record"]
    assert row["child"] == {
        "full_name": "Nguyễn Thị Minh Anh", "other_names": ["Bé Na"], "sex": "F",
        "date_of_birth": "2024-03-02", "place_of_birth": "Quy Nhơn", "home_town": "Bình Định",
        "ethnicity": "Kinh", "nationality": "VN"}
    assert row["registration"] == {
        "authority": "UBND xã Nhơn Lý", "number": attributes["registrationNumber"],
        "book": "01/2024", "registered_on": "2024-03-10", "province_code": "052"}
    assert row["father"] == {"full_name": "Nguyễn Văn Hùng", "pin": "052090012345",
                             "nationality": None}
    assert row["mother"] == {"full_name": "Trần Thị Lan", "pin": attributes["motherUin"],
                             "nationality": None}


def test_same_transaction_same_attributes_answers_same_pin(registrar: httpx.Client,
                                                           service_db: DbFn) -> None:
    attributes, tx = uin_attributes(), new_transaction()
    first = _uin(registrar, attributes, tx)
    again = _uin(registrar, {**attributes, "gender": "2"}, tx)  # same value, other JSON type
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    outcomes = service_db("SELECT outcome FROM audit_event WHERE action = 'pin.issue' AND "
                          "details->'registration'->>'number' = $1 ORDER BY id",
                          attributes["registrationNumber"])
    assert [r["outcome"] for r in outcomes] == ["issued", "replayed"]


def test_same_transaction_other_attributes_is_400_code_1100_and_audited(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    tx = new_transaction()
    first = _uin(registrar, uin_attributes(), tx)
    assert first.status_code == 200
    other = uin_attributes()  # another registration number: would be a new PIN
    response = _uin(registrar, other, tx)
    body = assert_osia_error(response, 400, 1100)
    assert "transactionId" in body["message"]
    assert service_db("SELECT count(*) FROM person WHERE registration_number = $1",
                      other["registrationNumber"])[0][0] == 0
    events = service_db("SELECT outcome, details FROM audit_event WHERE action = 'pin.issue' "
                        "AND details->>'transaction_id' = $1", tx)
    assert [(e["outcome"], e["details"]["code"], e["details"]["osia"]) for e in events] == [
        ("refused", "osia_transaction_conflict", "generateUIN")]


def test_other_transaction_same_registration_replays_the_pin(registrar: httpx.Client) -> None:
    """Idempotency on the registration key, as `POST /v1/pins`: a new transactionId for a
    registration already issued answers its PIN."""
    attributes = uin_attributes()
    first = _uin(registrar, attributes)
    second = _uin(registrar, attributes)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


def test_registration_issued_by_v1_pins_is_replayed_by_osia(registrar: httpx.Client) -> None:
    """One implementation underneath: the same registration through either interface is one
    PIN."""
    body = issue_body("052", full_name="Lê Văn Bình", sex="M", dob="2024-01-05",
                      registered_on="2024-01-20")
    body["child"].update(other_names=[], place_of_birth=None, home_town=None, ethnicity=None)
    body["father"] = body["mother"] = None
    body["registration"]["book"] = None
    issued = registrar.post("/v1/pins", json=body)
    assert issued.status_code == 201, issued.text
    reg = body["registration"]
    response = _uin(registrar, {
        "registrationAuthority": reg["authority"], "registrationNumber": reg["number"],
        "registrationDate": reg["registered_on"], "registrationProvince": "052",
        "fullName": "Lê Văn Bình", "gender": 1, "dateOfBirth": "2024-01-05",
        "nationality": "VN"})
    assert response.status_code == 200, response.text
    assert response.json() == issued.json()["pin"]


def test_same_registration_other_content_is_400_code_1101(registrar: httpx.Client) -> None:
    attributes = uin_attributes()
    assert _uin(registrar, attributes).status_code == 200
    response = _uin(registrar, {**attributes, "placeOfBirth": "Tuy Phước"})
    assert_osia_error(response, 400, 1101)


def test_refused_attributes_release_the_transaction_for_a_corrected_retry(
    registrar: httpx.Client,
) -> None:
    tx = new_transaction()
    refused = _uin(registrar, uin_attributes(dateOfBirth="2024-03-20"), tx)  # after the date
    assert_osia_error(refused, 400, 1209)
    corrected = _uin(registrar, uin_attributes(), tx)
    assert corrected.status_code == 200, corrected.text


def test_issuance_audit_event_is_that_of_v1_pins(registrar: httpx.Client,
                                                 service_db: DbFn) -> None:
    attributes = uin_attributes()
    pin = _uin(registrar, attributes).json()
    events = service_db("SELECT action, outcome, pin, details FROM audit_event "
                        "WHERE pin = $1", pin)
    assert [(e["action"], e["outcome"]) for e in events] == [("pin.issue", "issued")]
    assert events[0]["details"] == {"registration": {
        "authority": attributes["registrationAuthority"],
        "number": attributes["registrationNumber"],
        "province_code": events[0]["details"]["registration"]["province_code"]}}
    assert events[0]["details"]["registration"]["province_code"] == pin[:3]


def test_province_defaults_to_the_registrars_jurisdiction(registrar: httpx.Client) -> None:
    response = _uin(registrar, uin_attributes(registrationProvince=None))
    assert response.status_code == 200, response.text
    assert response.json().startswith("052")


def test_national_registrar_without_province_is_400_code_1205(
    client_token: Callable[..., str], server: ServerThread,
) -> None:
    with server.client(client_token("*")) as national:
        response = _uin(national, uin_attributes(registrationProvince=None))
    body = assert_osia_error(response, 400, 1205)
    assert "registrationProvince" in body["message"]


def test_province_outside_jurisdiction_is_403_with_empty_body(registrar: httpx.Client,
                                                               service_db: DbFn) -> None:
    tx = new_transaction()
    response = _uin(registrar, uin_attributes(registrationProvince="079"), tx)
    assert response.status_code == 403
    assert response.content == b""
    assert service_db("SELECT count(*) FROM external_registration WHERE external_id = $1",
                      tx)[0][0] == 0


def test_without_token_is_401_with_empty_body(server: ServerThread) -> None:
    with server.client() as anonymous:
        response = _uin(anonymous, uin_attributes())
    assert response.status_code == 401
    assert response.content == b""
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_officer_is_403_with_empty_body(officer: httpx.Client) -> None:
    response = _uin(officer, uin_attributes())
    assert response.status_code == 403
    assert response.content == b""


@pytest.mark.parametrize("params", [{}, {"transactionId": ""}, {"transactionId": "x" * 201},
                                    {"transactionId": "a\u0000b"}])
def test_missing_or_bad_transaction_id_is_400_code_1006(registrar: httpx.Client,
                                                        params: dict[str, str]) -> None:
    response = registrar.post("/osia/v1/uin", params=params, json=uin_attributes())
    body = assert_osia_error(response, 400, 1006)
    assert "transactionId" in body["message"]


def test_missing_transaction_id_is_1006_before_the_role_check(officer: httpx.Client) -> None:
    """The parameter is checked before the caller's role, as FastAPI's own parameter check
    did before the route read it itself."""
    response = officer.post("/osia/v1/uin", json=uin_attributes())
    body = assert_osia_error(response, 400, 1006)
    assert body["message"] == "transactionId: is required"


def test_database_failure_is_500_with_osia_error(registrar: httpx.Client,
                                                 server: ServerThread, owner_db: DbFn) -> None:
    """A real fault: the service role loses the right to issue with a claim (owner REVOKE of
    `issue_pin_claimed`), restored. On a connection of its own: the server closes a
    connection after an unexpected error."""
    with httpx.Client(base_url=server.base_url, headers=dict(registrar.headers)) as own:
        owner_db("REVOKE EXECUTE ON FUNCTION issue_pin_claimed "
                 "FROM idservice_service")
        try:
            response = _uin(own, uin_attributes())
        finally:
            owner_db("GRANT EXECUTE ON FUNCTION issue_pin_claimed "
                     "TO idservice_service")
    assert_osia_error(response, 500, 5000)
