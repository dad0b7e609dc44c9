"""OSIA Data Access (contract 10, dataaccess.yaml 1.3.0): read, match and verify a person's
attributes, for officers stating a purpose and reader clients with a registered one; the same
jurisdiction and audit as our own reads and verifications."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.osia import assert_osia_error, new_transaction, reader_token, uin_attributes
from tests.support.server import ServerThread

DbFn = Callable[..., list[Any]]
PURPOSE = "kiểm tra điều kiện hưởng trợ cấp (test)"
ALL = ["uin", "firstName", "lastName", "middleName", "fullName", "dateOfBirth",
       "placeOfBirth", "gender", "dateOfDeath", "placeOfDeath", "status"]


@pytest.fixture(scope="module")
def new_reader(server: ServerThread, database: DatabaseTarget,
               settings: Settings) -> Callable[..., httpx.Client]:
    def factory(**kwargs: Any) -> httpx.Client:
        return server.client(reader_token(server.base_url, database.admin_url,
                                          settings.client_token_url, **kwargs))
    return factory


@pytest.fixture(scope="module")
def reader(new_reader: Callable[..., httpx.Client]) -> Iterator[httpx.Client]:
    with new_reader(purpose=PURPOSE) as client:
        yield client


@pytest.fixture(scope="module")
def pin(registrar: httpx.Client) -> str:
    response = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                              json=uin_attributes())
    assert response.status_code == 200, response.text
    value: str = response.json()
    return value


def _read(client: httpx.Client, uin: str, names: list[str], **params: str) -> httpx.Response:
    return client.get(f"/osia/v1/persons/{uin}", params={"attributeNames": names, **params})


def _events(service_db: DbFn, pin: str, operation: str) -> list[Any]:
    return service_db("SELECT action, outcome, purpose, details FROM audit_event "
                      "WHERE pin = $1 AND details->>'osia' = $2 ORDER BY id", pin, operation)


# -- readPersonAttributes -----------------------------------------------------------------

def test_officer_reads_every_attribute_as_strings(officer: httpx.Client, pin: str) -> None:
    response = _read(officer, pin, ALL, purpose="hồ sơ 12/2024")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "uin": pin, "firstName": "Anh", "lastName": "Nguyễn", "middleName": "Thị Minh",
        "fullName": "Nguyễn Thị Minh Anh", "dateOfBirth": "2024-03-02",
        "placeOfBirth": "Quy Nhơn", "gender": "2", "status": "active",
        "dateOfDeath": {"code": 1026, "message": "no value recorded for this attribute"},
        "placeOfDeath": {"code": 1026, "message": "no value recorded for this attribute"}}


def test_officer_read_is_audited_as_person_read_with_purpose(officer: httpx.Client, pin: str,
                                                             service_db: DbFn) -> None:
    purpose = f"hồ sơ {new_transaction()}"
    assert _read(officer, pin, ["fullName", "gender"], purpose=purpose).status_code == 200
    events = [e for e in _events(service_db, pin, "readPersonAttributes")
              if e["purpose"] == purpose]
    assert [(e["action"], e["outcome"], e["details"]) for e in events] == [
        ("person.read", "found",
         {"osia": "readPersonAttributes", "attributes": ["fullName", "gender"]})]


def test_reader_reads_under_its_registered_purpose(reader: httpx.Client, pin: str,
                                                   service_db: DbFn) -> None:
    before = len(_events(service_db, pin, "readPersonAttributes"))
    response = _read(reader, pin, ["dateOfBirth"], purpose="another purpose is ignored")
    assert response.status_code == 200, response.text
    assert response.json() == {"dateOfBirth": "2024-03-02"}
    events = _events(service_db, pin, "readPersonAttributes")
    assert len(events) == before + 1
    assert events[-1]["purpose"] == PURPOSE


def test_reader_without_registered_purpose_is_403_empty(
    new_reader: Callable[..., httpx.Client], pin: str, service_db: DbFn,
) -> None:
    before = len(_events(service_db, pin, "readPersonAttributes"))
    with new_reader(purpose=None) as no_purpose:
        for response in (_read(no_purpose, pin, ["fullName"]),
                         no_purpose.post(f"/osia/v1/persons/{pin}/match",
                                         json={"fullName": "x"}),
                         no_purpose.post(f"/osia/v1/persons/{pin}/verify", json=[])):
            assert response.status_code == 403, response.text
            assert response.content == b""
    assert len(_events(service_db, pin, "readPersonAttributes")) == before


def test_officer_without_purpose_is_400_code_1004(officer: httpx.Client, pin: str) -> None:
    body = assert_osia_error(_read(officer, pin, ["fullName"]), 400, 1004)
    assert "purpose" in body["message"]


def test_registrar_is_403_empty(registrar: httpx.Client, pin: str) -> None:
    response = _read(registrar, pin, ["fullName"], purpose="x")
    assert response.status_code == 403 and response.content == b""


def test_without_token_is_401_empty(server: ServerThread, pin: str) -> None:
    with server.client() as anonymous:
        response = _read(anonymous, pin, ["fullName"])
    assert response.status_code == 401 and response.content == b""


def test_unknown_attribute_name_is_400_code_1023(reader: httpx.Client, pin: str) -> None:
    body = assert_osia_error(_read(reader, pin, ["fullName", "dob"]), 400, 1023)
    assert "'dob'" in body["message"]


def test_missing_attribute_names_is_400(reader: httpx.Client, pin: str) -> None:
    assert_osia_error(reader.get(f"/osia/v1/persons/{pin}"), 400, 1000)


def test_over_100_attribute_names_is_400_code_1003(reader: httpx.Client, pin: str) -> None:
    assert_osia_error(_read(reader, pin, ["uin"] * 101), 400, 1003)


def test_malformed_uin_is_400_code_1003(reader: httpx.Client) -> None:
    body = assert_osia_error(_read(reader, "12345", ["fullName"]), 400, 1003)
    assert body["message"].startswith("uin")


def test_unknown_uin_is_404_empty_and_audited(reader: httpx.Client,
                                              service_db: DbFn) -> None:
    unknown = "052399999998"  # its own: test_persons counts the events of 052399999999
    response = _read(reader, unknown, ["fullName"])
    assert response.status_code == 404 and response.content == b""
    events = _events(service_db, unknown, "readPersonAttributes")
    assert events and events[-1]["outcome"] == "refused", events
    assert events[-1]["details"]["code"] == "not_found", events


def test_uin_outside_jurisdiction_is_403_empty_and_audited(
    new_reader: Callable[..., httpx.Client], pin: str, service_db: DbFn,
) -> None:
    with new_reader(jurisdiction="079") as elsewhere:
        response = _read(elsewhere, pin, ["fullName"])
    assert response.status_code == 403 and response.content == b""
    events = _events(service_db, pin, "readPersonAttributes")
    assert events[-1]["outcome"] == "refused", events
    assert events[-1]["details"]["code"] == "forbidden", events


def test_national_reader_reads_any_province(new_reader: Callable[..., httpx.Client],
                                            pin: str) -> None:
    with new_reader(jurisdiction="*") as national:
        assert _read(national, pin, ["uin"]).json() == {"uin": pin}


# -- matchPersonAttributes -----------------------------------------------------------------

def _match(client: httpx.Client, uin: str, body: object, **params: str) -> httpx.Response:
    return client.post(f"/osia/v1/persons/{uin}/match", json=body, params=params)


def test_match_all_matching_is_empty_list(reader: httpx.Client, pin: str) -> None:
    response = _match(reader, pin, {"fullName": "nguyễn  thị minh ANH", "gender": 2,
                                    "dateOfBirth": "2024-03-02", "lastName": "Nguyễn"})
    assert response.status_code == 200, response.text
    assert response.json() == []


def test_match_names_each_attribute_that_does_not_match(reader: httpx.Client,
                                                        pin: str) -> None:
    response = _match(reader, pin, {"fullName": "Nguyen Thi Minh Anh",  # diacritics count
                                    "dateOfBirth": "2024-03-02", "gender": "1",
                                    "dateOfDeath": "2024-05-01", "placeOfBirth": "Quy Nhơn"})
    assert response.status_code == 200, response.text
    assert response.json() == [{"attributeName": "fullName", "errorCode": 1},
                               {"attributeName": "gender", "errorCode": 1},
                               {"attributeName": "dateOfDeath", "errorCode": 0}]


def test_match_is_audited_as_pin_verify(reader: httpx.Client, pin: str,
                                        service_db: DbFn) -> None:
    _match(reader, pin, {"firstName": "Anh"})
    _match(reader, pin, {"firstName": "Bình"})
    events = _events(service_db, pin, "matchPersonAttributes")[-2:]
    assert [(e["action"], e["outcome"], e["purpose"], e["details"]["attributes"])
            for e in events] == [("pin.verify", "match", PURPOSE, ["firstName"]),
                                 ("pin.verify", "no_match", PURPOSE, ["firstName"])]


@pytest.mark.parametrize(("body", "code"), [
    ({"dob": "2024-03-02"}, 1023), ({"dateOfBirth": "02/03/2024"}, 1025),
    ({"gender": "F"}, 1025), ({"fullName": 12}, 1025), ([], 1000), ({"uin": True}, 1025)])
def test_match_bad_body_is_400_with_code(reader: httpx.Client, pin: str, body: object,
                                         code: int) -> None:
    assert_osia_error(_match(reader, pin, body), 400, code)


def test_match_unknown_uin_is_404_empty(reader: httpx.Client) -> None:
    response = _match(reader, "052399999998", {"fullName": "A"})
    assert response.status_code == 404 and response.content == b""


# -- verifyPersonAttributes ----------------------------------------------------------------

def _verify(client: httpx.Client, uin: str, body: object, **params: str) -> httpx.Response:
    return client.post(f"/osia/v1/persons/{uin}/verify", json=body, params=params)


def _e(name: str, op: str, value: object) -> dict[str, object]:
    return {"attributeName": name, "operator": op, "value": value}


@pytest.mark.parametrize(("expressions", "expected"), [
    ([_e("dateOfBirth", "<", "2024-03-03")], True),
    ([_e("dateOfBirth", "<", "2024-03-02")], False),
    ([_e("dateOfBirth", "<=", "2024-03-02"), _e("dateOfBirth", ">=", "2024-03-02")], True),
    ([_e("dateOfBirth", ">", "2006-01-01"), _e("gender", "=", 2)], True),
    ([_e("fullName", "=", "NGUYỄN THỊ MINH ANH"), _e("status", "=", "active")], True),
    ([_e("fullName", "=", "Nguyễn Thị Minh Anh"), _e("gender", "=", "1")], False),
    ([_e("dateOfDeath", "<", "2999-01-01")], False),
    ([], True),
])
def test_verify_answers_whether_every_expression_holds(officer: httpx.Client, pin: str,
                                                       expressions: list[Any],
                                                       expected: bool) -> None:
    response = _verify(officer, pin, expressions, purpose="xác minh tuổi")
    assert response.status_code == 200, response.text
    assert response.json() is expected


def test_verify_is_audited_as_pin_verify(officer: httpx.Client, pin: str,
                                         service_db: DbFn) -> None:
    purpose = f"xác minh {new_transaction()}"
    _verify(officer, pin, [_e("dateOfBirth", "<", "2006-01-01")], purpose=purpose)
    events = [e for e in _events(service_db, pin, "verifyPersonAttributes")
              if e["purpose"] == purpose]
    assert [(e["action"], e["outcome"], e["details"]["attributes"]) for e in events] == [
        ("pin.verify", "no_match", ["dateOfBirth"])]


@pytest.mark.parametrize(("body", "code"), [
    ({"attributeName": "fullName"}, 1000),
    ([{"attributeName": "fullName", "operator": "=", "value": "A", "extra": 1}], 1000),
    ([_e("fullName", "~", "A")], 1000),
    ([_e("dob", "=", "2024-03-02")], 1023),
    ([_e("fullName", "<", "A")], 1024),
    ([_e("dateOfBirth", "<", "yesterday")], 1025),
    ([_e("gender", "=", 9)], 1025),
])
def test_verify_bad_body_is_400_with_code(officer: httpx.Client, pin: str, body: object,
                                          code: int) -> None:
    assert_osia_error(_verify(officer, pin, body, purpose="x"), 400, code)


def test_verify_outside_jurisdiction_is_403_empty(officer_token: Callable[..., str],
                                                  server: ServerThread, pin: str) -> None:
    with server.client(officer_token("079")) as elsewhere:
        response = _verify(elsewhere, pin, [], purpose="x")
    assert response.status_code == 403 and response.content == b""


def test_verify_unknown_uin_is_404_empty(officer: httpx.Client) -> None:
    response = _verify(officer, "052399999997", [], purpose="x")
    assert response.status_code == 404 and response.content == b""


@pytest.mark.parametrize("operation", ["read", "match", "verify"])
def test_database_failure_is_500_with_osia_error(reader: httpx.Client, server: ServerThread,
                                                 pin: str, owner_db: DbFn,
                                                 operation: str) -> None:
    """A real fault: the service role loses SELECT on person (owner REVOKE), restored. Each
    call on a connection of its own: the server closes a connection after an unexpected
    error."""
    call = {"read": lambda c: _read(c, pin, ["fullName"]),
            "match": lambda c: _match(c, pin, {"fullName": "A"}),
            "verify": lambda c: _verify(c, pin, [])}[operation]
    with httpx.Client(base_url=server.base_url, headers=dict(reader.headers)) as own:
        owner_db("REVOKE SELECT ON person FROM idservice_service")
        try:
            response = call(own)
        finally:
            owner_db("GRANT SELECT ON person TO idservice_service")
    assert_osia_error(response, 500, 5000)
