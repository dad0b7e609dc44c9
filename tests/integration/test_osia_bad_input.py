"""Bad input to OSIA UIN Generation: every attribute's rule answers 400 with its own integer
`code` and a message naming the attribute (docs/integrations.md), and nothing is issued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.osia import assert_osia_error, new_transaction, uin_attributes

DbFn = Callable[..., list[Any]]
_MISSING = object()

# (case id, attribute, value or _MISSING, code, a word the message must hold)
CASES: list[tuple[str, str, object, int, str]] = [
    ("authority-missing", "registrationAuthority", _MISSING, 1201, "registrationAuthority"),
    ("authority-empty", "registrationAuthority", "", 1201, "empty"),
    ("authority-too-long", "registrationAuthority", "x" * 201, 1201, "200"),
    ("authority-number-type", "registrationAuthority", 12, 1201, "string"),
    ("authority-null", "registrationAuthority", None, 1201, "string"),
    ("number-missing", "registrationNumber", _MISSING, 1202, "registrationNumber"),
    ("number-object", "registrationNumber", {"n": 1}, 1202, "string"),
    ("number-control-char", "registrationNumber", "12\u0007", 1202, "control"),
    ("book-bool", "registrationBook", True, 1203, "string"),
    ("date-missing", "registrationDate", _MISSING, 1204, "registrationDate"),
    ("date-not-iso", "registrationDate", "10/03/2024", 1204, "YYYY-MM-DD"),
    ("date-not-a-day", "registrationDate", "2024-02-30", 1204, "calendar"),
    ("date-future", "registrationDate", "2999-01-01", 1204, "future"),
    ("province-two-digits", "registrationProvince", "52", 1205, "registrationProvince"),
    ("province-integer", "registrationProvince", 52, 1205, "string"),
    ("names-missing", "firstName", _MISSING, 1206, "firstName"),
    ("last-name-blank", "lastName", "   ", 1206, "lastName"),
    ("full-name-and-parts", "fullName", "Nguyễn Thị Minh Anh", 1206, "not with"),
    ("other-names-control", "otherNames", "Na;\u200bBé", 1207, "otherNames"),
    ("other-names-21", "otherNames", ";".join(f"N{i}" for i in range(21)), 1207, "20"),
    ("gender-missing", "gender", _MISSING, 1208, "gender"),
    ("gender-3", "gender", 3, 1208, "5218"),
    ("gender-letter", "gender", "F", 1208, "5218"),
    ("gender-bool", "gender", True, 1208, "5218"),
    ("gender-float", "gender", 2.0, 1208, "5218"),
    ("dob-missing", "dateOfBirth", _MISSING, 1209, "dateOfBirth"),
    ("dob-after-registration", "dateOfBirth", "2024-03-11", 1209, "registrationDate"),
    ("dob-before-1900", "dateOfBirth", "1899-12-31", 1209, "1900"),
    ("dob-digits", "dateOfBirth", "20240302", 1209, "YYYY-MM-DD"),
    ("place-too-long", "placeOfBirth", "p" * 201, 1210, "200"),
    ("home-town-number", "homeTown", 7, 1211, "string"),
    ("ethnicity-empty", "ethnicity", "", 1212, "empty"),
    ("nationality-alpha3", "nationality", "VNM", 1213, "nationality"),
    ("father-name-missing-with-uin", "fatherFullName", _MISSING, 1214, "fatherFullName"),
    ("father-uin-short", "fatherUin", "12345", 1215, "PIN"),
    ("mother-name-empty", "motherFullName", "", 1216, "empty"),
    ("mother-uin-letters", "motherUin", "05209001234a", 1217, "PIN"),
]


@pytest.mark.parametrize(("attribute", "value", "code", "word"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_attribute_breaking_its_rule_is_400_with_its_code(
    registrar: httpx.Client, service_db: DbFn, attribute: str, value: object, code: int,
    word: str,
) -> None:
    attributes = uin_attributes()
    if attribute == "fullName":
        attributes["fullName"] = value  # beside lastName/middleName/firstName
    elif value is _MISSING:
        del attributes[attribute]
    else:
        attributes[attribute] = value
    if attribute == "motherUin":
        attributes["motherFullName"] = "Trần Thị Lan"
    response = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                              json=attributes)
    body = assert_osia_error(response, 400, code)
    assert word in body["message"], body
    for ours in ("child.", "registration.", "full_name", "date_of_birth", "registered_on"):
        assert ours not in body["message"], body  # named as OSIA names it
    number = attributes.get("registrationNumber")
    if isinstance(number, str):
        assert service_db("SELECT count(*) FROM person WHERE registration_number = $1",
                          number)[0][0] == 0


def test_unknown_attribute_is_400_code_1023(registrar: httpx.Client) -> None:
    response = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                              json=uin_attributes(dob="2024-03-02"))
    body = assert_osia_error(response, 400, 1023)
    assert "'dob'" in body["message"]


def test_unknown_province_is_400_code_1205(client_token: Callable[..., str],
                                           server: Any) -> None:
    with server.client(client_token("*")) as national:
        response = national.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                                 json=uin_attributes(registrationProvince="999"))
    body = assert_osia_error(response, 400, 1205)
    assert "registrationProvince" in body["message"]


def test_province_code_of_before_the_merger_after_it_is_400_code_1205(
    client_token: Callable[..., str], server: Any,
) -> None:
    """Hà Giang's legacy code 002 is not valid for a registration after 2025-06-30."""
    with server.client(client_token("002")) as ha_giang:
        response = ha_giang.post(
            "/osia/v1/uin", params={"transactionId": new_transaction()},
            json=uin_attributes(registrationProvince="002", registrationDate="2025-07-01",
                                dateOfBirth="2025-06-20"))
    assert_osia_error(response, 400, 1205)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"x"', b"null", b"{", b"\xff\xfe{}"],
                         ids=["array", "string", "null", "truncated", "not-utf8"])
def test_body_not_a_json_object_is_400_code_1000(registrar: httpx.Client, body: bytes) -> None:
    response = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                              content=body, headers={"Content-Type": "application/json"})
    assert_osia_error(response, 400, 1000)


def test_wrong_content_type_is_400_code_1001(registrar: httpx.Client) -> None:
    response = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                              content=b"registrationNumber=1",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_osia_error(response, 400, 1001)


def test_body_over_1_mib_is_400_code_1002(registrar: httpx.Client) -> None:
    big = uin_attributes(placeOfBirth="p" * (1024 * 1024))
    response = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                              json=big)
    assert_osia_error(response, 400, 1002)


def test_chunked_body_over_1_mib_is_400_code_1002(registrar: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'{"placeOfBirth": "'
        for _ in range(33):
            yield b"p" * 65536
        yield b'"}'

    response = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                              content=chunks(), headers={"Content-Type": "application/json"})
    assert_osia_error(response, 400, 1002)


def test_unknown_path_under_osia_is_404_with_empty_body(registrar: httpx.Client) -> None:
    response = registrar.get("/osia/v1/nothing-here")
    assert response.status_code == 404
    assert response.content == b""


def test_unsupported_method_under_osia_is_405_osia_error(registrar: httpx.Client) -> None:
    response = registrar.get("/osia/v1/uin", params={"transactionId": "t"})
    assert_osia_error(response, 405, 1005)
