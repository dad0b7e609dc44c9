"""Refused input over real HTTP: every rule of contract sections 1, 2 and 4 gets a test.

Each refused request must come back as an RFC 9457 problem (`application/problem+json`) with
the exact status and `code`, the `field` at fault where there is one, nothing internal in the
text, and nothing written: no `registration` or `person` row for its registration number and no
audit event for its request id (every request carries its own `X-Request-ID`). A few accepted
requests sit next to the refusals as positive controls, so a rule cannot pass by refusing all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tests.support.bad_input import (
    NO_FIELD,
    assert_no_audit,
    assert_not_issued,
    assert_problem,
    request_id,
)
from tests.support.bodies import issue_body
from tests.support.server import ServerThread

Body = dict[str, Any]
Mutator = Callable[[Body], None]
DbFn = Callable[..., list[Any]]

MiB = 1024 * 1024
# The server's "today" is the UTC date; two days ahead is in the future in every time zone.
FUTURE = (date.today() + timedelta(days=2)).isoformat()


def put(path: str, value: Any) -> Mutator:
    """Set `a.b.c` in the body (creating nothing: the parents must exist)."""

    def mutate(body: Body) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def drop(path: str) -> Mutator:
    def mutate(body: Body) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


def both(*mutators: Mutator) -> Mutator:
    def mutate(body: Body) -> None:
        for m in mutators:
            m(body)

    return mutate


def full_width(text: str) -> str:
    """ASCII digits as FULLWIDTH DIGITs (U+FF10..): `str.isdigit()` is true for them."""
    return "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in text)


def arabic_indic(text: str) -> str:
    """ASCII digits as ARABIC-INDIC DIGITs (U+0660..)."""
    return "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in text)


def number_of(body: Body) -> str:
    return str(body["registration"]["number"])


def post_pins(client: httpx.Client, body: Body | None = None, *, content: bytes | None = None,
              content_type: str | None = "application/json") -> tuple[httpx.Response, str]:
    """POST /v1/pins with a fresh request id; returns (response, request id)."""
    rid = request_id()
    headers = {"X-Request-ID": rid}
    if content_type is not None:
        headers["Content-Type"] = content_type
    raw = content if content is not None else json.dumps(body, ensure_ascii=False).encode()
    return client.post("/v1/pins", content=raw, headers=headers), rid


@pytest.fixture(scope="module")
def national_registrar(server: ServerThread, client_token: Callable[..., str]
                       ) -> Iterator[httpx.Client]:
    """A registrar with jurisdiction `*`: province rules are reached, not the jurisdiction one."""
    with server.client(client_token("*")) as client:
        yield client


@pytest.fixture(scope="module")
def ha_giang_registrar(server: ServerThread, client_token: Callable[..., str]
                       ) -> Iterator[httpx.Client]:
    """A registrar of legacy province 002 (Hà Giang, merged into Tuyên Quang on 2025-07-01)."""
    with server.client(client_token("002")) as client:
        yield client


@pytest.fixture(scope="module")
def auditor(server: ServerThread, officer_token: Callable[..., str]) -> Iterator[httpx.Client]:
    with server.client(officer_token("052", ("auditor",))) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(server: ServerThread) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def person(registrar: httpx.Client) -> dict[str, str]:
    """One issued record in 052 for the read, verify and correction refusals."""
    body = issue_body("052", full_name="Lê Thị Bad Input", dob="2024-03-02",
                      registered_on="2024-03-10")
    response = registrar.post("/v1/pins", json=body)
    assert response.status_code == 201, response.text
    return {"pin": response.json()["pin"], "number": number_of(body)}


# --------------------------------------------------------------------------------------------
# POST /v1/pins: one field breaks its rule -> 422 invalid_field naming that field

FIELD_RULES = [
    # dates against each other and against today
    pytest.param(put("child.date_of_birth", "1899-12-31"), "child.date_of_birth",
                 id="dob_1899_12_31"),
    pytest.param(put("child.date_of_birth", FUTURE), "child.date_of_birth", id="dob_in_future"),
    pytest.param(put("registration.registered_on", FUTURE), "registration.registered_on",
                 id="registered_on_in_future"),
    pytest.param(both(put("child.date_of_birth", FUTURE),
                      put("registration.registered_on", FUTURE)),
                 "registration.registered_on", id="dob_and_registered_on_in_future"),
    pytest.param(both(put("child.date_of_birth", "2024-03-10"),
                      put("registration.registered_on", "2024-03-09")),
                 "child.date_of_birth", id="registered_before_birth"),
    # date syntax: only YYYY-MM-DD, real calendar days
    pytest.param(put("child.date_of_birth", "2024-2-3"), "child.date_of_birth", id="date_2024_2_3"),
    pytest.param(put("child.date_of_birth", "2024-02-30"), "child.date_of_birth",
                 id="date_2024_02_30"),
    pytest.param(put("child.date_of_birth", "2023-02-29"), "child.date_of_birth",
                 id="date_2023_02_29_not_leap"),
    pytest.param(put("registration.registered_on", "2024-13-01"), "registration.registered_on",
                 id="date_month_13"),
    pytest.param(put("child.date_of_birth", "20240302"), "child.date_of_birth",
                 id="date_without_dashes"),
    pytest.param(put("child.date_of_birth", "1709337600"), "child.date_of_birth",
                 id="date_as_unix_timestamp_string"),
    pytest.param(put("child.date_of_birth", "2024-03-02T00:00:00Z"), "child.date_of_birth",
                 id="date_with_time"),
    pytest.param(put("child.date_of_birth", "2024/03/02"), "child.date_of_birth",
                 id="date_with_slashes"),
    pytest.param(put("child.date_of_birth", "02/03/2024"), "child.date_of_birth",
                 id="date_day_first"),
    pytest.param(put("child.date_of_birth", "2024-03-02\n"), "child.date_of_birth",
                 id="date_trailing_newline"),
    pytest.param(put("child.date_of_birth", full_width("2024") + "-03-02"), "child.date_of_birth",
                 id="date_full_width_digits"),
    pytest.param(put("child.date_of_birth", ""), "child.date_of_birth", id="date_empty"),
    # sex
    pytest.param(put("child.sex", "X"), "child.sex", id="sex_X"),
    pytest.param(put("child.sex", "m"), "child.sex", id="sex_lowercase_m"),
    pytest.param(put("child.sex", None), "child.sex", id="sex_null"),
    pytest.param(put("child.sex", 1), "child.sex", id="sex_int_1"),
    pytest.param(put("child.sex", ""), "child.sex", id="sex_empty"),
    pytest.param(put("child.sex", "MALE"), "child.sex", id="sex_word"),
    # names: 1-200 characters, no control or invisible characters
    pytest.param(put("child.full_name", ""), "child.full_name", id="full_name_empty"),
    pytest.param(put("child.full_name", "   "), "child.full_name", id="full_name_blank"),
    pytest.param(put("child.full_name", "A" * 201), "child.full_name", id="full_name_201_chars"),
    pytest.param(put("child.full_name", "\u0007"), "child.full_name", id="full_name_bell"),
    pytest.param(put("child.full_name", "Nguyễn\u0000"), "child.full_name",
                 id="full_name_nul"),
    pytest.param(put("child.full_name", "Nguyễn\nVăn"), "child.full_name",
                 id="full_name_newline"),
    pytest.param(put("child.full_name", "Nguyễn\u0085Văn"), "child.full_name",
                 id="full_name_c1_control"),
    pytest.param(put("child.full_name", "a\u200bb"), "child.full_name",
                 id="full_name_zero_width_space"),
    pytest.param(put("child.full_name", "Lan\u202eanH"), "child.full_name",
                 id="full_name_bidi_override"),
    pytest.param(put("child.full_name", "Lan\u2028Anh"), "child.full_name",
                 id="full_name_line_separator"),
    pytest.param(put("child.other_names", [""]), "child.other_names.0",
                 id="other_names_empty_string"),
    pytest.param(put("child.other_names", ["Bé Na", "x\u0007"]), "child.other_names.1",
                 id="other_names_control_char"),
    pytest.param(put("father.full_name", ""), "father.full_name", id="father_full_name_empty"),
    pytest.param(put("mother.full_name", "Trần\u0000"), "mother.full_name",
                 id="mother_full_name_nul"),
    pytest.param(put("registration.authority", ""), "registration.authority",
                 id="authority_empty"),
    pytest.param(put("child.place_of_birth", "x" * 201), "child.place_of_birth",
                 id="place_of_birth_201_chars"),
    # a parent PIN must be a well-formed PIN (12 ASCII digits)
    pytest.param(put("father.pin", "12345"), "father.pin", id="parent_pin_5_digits"),
    pytest.param(put("father.pin", "05209001234X"), "father.pin", id="parent_pin_letter"),
    pytest.param(put("father.pin", full_width("052090012345")), "father.pin",
                 id="parent_pin_full_width_digits"),
    pytest.param(put("father.pin", arabic_indic("052090012345")), "father.pin",
                 id="parent_pin_arabic_indic_digits"),
    pytest.param(put("father.pin", "0520900123456"), "father.pin", id="parent_pin_13_digits"),
    pytest.param(put("father.pin", " 052090012345"), "father.pin", id="parent_pin_space"),
    pytest.param(put("mother.pin", ""), "mother.pin", id="parent_pin_empty"),
    pytest.param(put("father.pin", 52090012345), "father.pin", id="parent_pin_int"),
    # wrong JSON types
    pytest.param(put("registration.registered_on", 20240101), "registration.registered_on",
                 id="registered_on_int"),
    pytest.param(put("registration.province_code", 52), "registration.province_code",
                 id="province_code_int"),
    pytest.param(put("child", "Nguyễn Thị Minh Anh"), "child", id="child_string"),
    pytest.param(put("child.other_names", "Bé Na"), "child.other_names",
                 id="other_names_string"),
    pytest.param(put("child.full_name", 42), "child.full_name", id="full_name_int"),
    pytest.param(put("father", "Nguyễn Văn Hùng"), "father", id="father_string"),
    pytest.param(put("registration", []), "registration", id="registration_array"),
    pytest.param(put("registration.number", 7), "registration.number", id="number_int"),
    # other field formats
    pytest.param(put("registration.province_code", "52"), "registration.province_code",
                 id="province_code_2_digits"),
    pytest.param(put("registration.province_code", arabic_indic("052")),
                 "registration.province_code",
                 id="province_code_arabic_indic_digits"),
    pytest.param(put("child.nationality", "vn"), "child.nationality",
                 id="nationality_lowercase"),
    pytest.param(put("child.other_names", ["Na"] * 21), "child.other_names",
                 id="other_names_21_entries"),
    # unknown fields are refused
    pytest.param(put("nickname", "Bi"), "nickname", id="unknown_top_level_field"),
    pytest.param(put("child.nickname", "Bi"), "child.nickname", id="unknown_child_field"),
    pytest.param(put("registration.page", "12"), "registration.page",
                 id="unknown_registration_field"),
    pytest.param(put("father.age", 30), "father.age", id="unknown_parent_field"),
]


@pytest.mark.parametrize(("mutate", "field"), FIELD_RULES)
def test_field_breaking_rule_is_422_invalid_field(
    registrar: httpx.Client, service_db: DbFn, mutate: Mutator, field: str
) -> None:
    body = issue_body("052")
    number = number_of(body)
    mutate(body)
    response, rid = post_pins(registrar, body)
    problem = assert_problem(response, 422, "invalid_field", field)
    assert problem["detail"].startswith(f"{field}: "), problem  # the path first, our words
    assert_not_issued(service_db, number, rid)


# --------------------------------------------------------------------------------------------
# POST /v1/pins: province codes are dated

def test_unknown_province_999_is_422_invalid_field(
    national_registrar: httpx.Client, service_db: DbFn
) -> None:
    body = issue_body("999")
    response, rid = post_pins(national_registrar, body)
    assert_problem(response, 422, "invalid_field", "registration.province_code")
    assert_not_issued(service_db, number_of(body), rid)


def test_ha_giang_002_after_merger_is_422_invalid_field(
    ha_giang_registrar: httpx.Client, service_db: DbFn
) -> None:
    body = issue_body("002", dob="2025-06-20", registered_on="2025-07-01")
    response, rid = post_pins(ha_giang_registrar, body)
    problem = assert_problem(response, 422, "invalid_field", "registration.province_code")
    assert "008" in problem["detail"]  # points to the successor, Tuyên Quang
    assert_not_issued(service_db, number_of(body), rid)


def test_ha_giang_002_on_last_day_is_issued(ha_giang_registrar: httpx.Client) -> None:
    body = issue_body("002", sex="F", dob="2025-06-20", registered_on="2025-06-30")
    response = ha_giang_registrar.post("/v1/pins", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["pin"][:6] == "002325"


def test_other_province_than_jurisdiction_is_403_forbidden(
    registrar: httpx.Client, service_db: DbFn
) -> None:
    body = issue_body("079")
    response, rid = post_pins(registrar, body)
    assert_problem(response, 403, "forbidden")
    assert_not_issued(service_db, number_of(body), rid)


# --------------------------------------------------------------------------------------------
# POST /v1/pins: boundaries just inside the rules are accepted (positive controls)

@pytest.mark.parametrize(("kwargs", "prefix"), [
    pytest.param({"full_name": "A" * 200}, "052324", id="full_name_200_chars"),
    pytest.param({"full_name": "Ý"}, "052324", id="full_name_1_char"),
    pytest.param({"sex": "M", "dob": "1900-01-01", "registered_on": "1900-01-01"}, "052000",
                 id="dob_1900_01_01"),
    pytest.param({"dob": "2024-02-29", "registered_on": "2024-02-29"}, "052324",
                 id="dob_leap_day_registered_same_day"),
])
def test_value_on_rule_boundary_is_issued(
    registrar: httpx.Client, kwargs: dict[str, Any], prefix: str
) -> None:
    response = registrar.post("/v1/pins", json=issue_body("052", **kwargs))
    assert response.status_code == 201, response.text
    assert response.json()["pin"].startswith(prefix)


def test_accepted_request_is_caught_by_the_nothing_written_check(
    registrar: httpx.Client, service_db: DbFn
) -> None:
    """The check every refusal relies on is not vacuous: an issued request trips each part."""
    body = issue_body("052")
    response, rid = post_pins(registrar, body)
    assert response.status_code == 201, response.text
    with pytest.raises(AssertionError, match="registration"):
        assert_not_issued(service_db, number_of(body), rid)
    with pytest.raises(AssertionError, match="audit_event"):
        assert_no_audit(service_db, rid)


def test_json_with_charset_parameter_is_issued(registrar: httpx.Client) -> None:
    response, _ = post_pins(registrar, issue_body("052"),
                            content_type="application/json; charset=utf-8")
    assert response.status_code == 201, response.text


# --------------------------------------------------------------------------------------------
# POST /v1/pins: missing required parts -> 400 malformed_request naming the part

@pytest.mark.parametrize("path", [
    "registration",
    "child",
    "child.sex",
    "child.date_of_birth",
    "child.full_name",
    "registration.registered_on",
    "registration.province_code",
    "registration.number",
    "registration.authority",
    "father.full_name",
])
def test_missing_required_field_is_400_malformed_request(
    registrar: httpx.Client, service_db: DbFn, path: str
) -> None:
    body = issue_body("052")
    number = number_of(body)
    drop(path)(body)
    response, rid = post_pins(registrar, body)
    assert_problem(response, 400, "malformed_request", path)
    assert_not_issued(service_db, number, rid)


# --------------------------------------------------------------------------------------------
# POST /v1/pins: the body as a whole

def _valid_raw() -> tuple[bytes, str]:
    body = issue_body("052")
    return json.dumps(body, ensure_ascii=False).encode(), number_of(body)


@pytest.mark.parametrize("make_raw", [
    pytest.param(lambda raw: b'{"a":', id="truncated_json"),
    pytest.param(lambda raw: raw[:-1], id="valid_body_cut_short"),
    pytest.param(lambda raw: b"", id="empty_body"),
    pytest.param(lambda raw: b"[" + raw + b"]", id="json_array"),
    pytest.param(lambda raw: b"null", id="json_null"),
    pytest.param(lambda raw: b'"hello"', id="json_string"),
    pytest.param(lambda raw: raw + b"{}", id="trailing_garbage"),
    pytest.param(lambda raw: raw.replace(b"Minh", b"\xff\xfe"), id="not_utf8"),
    pytest.param(lambda raw: raw.decode().encode("utf-16"), id="utf16"),
    pytest.param(lambda raw: raw.decode().encode("cp1258", errors="replace"), id="cp1258"),
    pytest.param(lambda raw: raw.replace(b'"F"', b"'F'"), id="single_quotes"),
    pytest.param(lambda raw: b"[" * 100_000 + b"]" * 100_000, id="deeply_nested"),
])
def test_body_not_a_json_object_is_400_malformed_request(
    registrar: httpx.Client, service_db: DbFn, make_raw: Callable[[bytes], bytes]
) -> None:
    raw, number = _valid_raw()
    response, rid = post_pins(registrar, content=make_raw(raw))
    assert_problem(response, 400, "malformed_request", NO_FIELD)
    assert_not_issued(service_db, number, rid)


def _padded(total: int) -> tuple[bytes, str]:
    """A JSON body of exactly `total` bytes (place_of_birth padded, so it is not valid)."""
    body = issue_body("052")
    body["child"]["place_of_birth"] = ""
    base = len(json.dumps(body, ensure_ascii=False).encode())
    body["child"]["place_of_birth"] = "x" * (total - base)
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) == total
    return raw, number_of(body)


def test_body_of_2_mib_is_413_payload_too_large(
    registrar: httpx.Client, service_db: DbFn
) -> None:
    raw, number = _padded(2 * MiB)
    response, rid = post_pins(registrar, content=raw)
    assert_problem(response, 413, "payload_too_large")
    assert_not_issued(service_db, number, rid)


def test_chunked_body_of_2_mib_is_413_payload_too_large(
    registrar: httpx.Client, service_db: DbFn
) -> None:
    raw, number = _padded(2 * MiB)
    chunks = (raw[i:i + 64 * 1024] for i in range(0, len(raw), 64 * 1024))
    rid = request_id()
    response = registrar.post("/v1/pins", content=chunks,  # no Content-Length: chunked
                              headers={"Content-Type": "application/json", "X-Request-ID": rid})
    assert_problem(response, 413, "payload_too_large")
    assert_not_issued(service_db, number, rid)


def test_body_of_exactly_1_mib_is_read_and_judged_422(
    registrar: httpx.Client, service_db: DbFn
) -> None:
    raw, number = _padded(MiB)
    response, rid = post_pins(registrar, content=raw)
    assert_problem(response, 422, "invalid_field", "child.place_of_birth")
    assert_not_issued(service_db, number, rid)


def test_body_one_byte_over_1_mib_is_413_payload_too_large(
    registrar: httpx.Client, service_db: DbFn
) -> None:
    raw, number = _padded(MiB + 1)
    response, rid = post_pins(registrar, content=raw)
    assert_problem(response, 413, "payload_too_large")
    assert_not_issued(service_db, number, rid)


@pytest.mark.parametrize("content_type", [
    pytest.param("text/plain", id="text_plain"),
    pytest.param(None, id="no_content_type"),
    pytest.param("application/x-www-form-urlencoded", id="form"),
    pytest.param("application/x-ndjson", id="ndjson"),
    pytest.param("application/jsonx", id="lookalike"),
])
def test_wrong_content_type_is_415_unsupported_media_type(
    registrar: httpx.Client, service_db: DbFn, content_type: str | None
) -> None:
    raw, number = _valid_raw()
    response, rid = post_pins(registrar, content=raw, content_type=content_type)
    assert_problem(response, 415, "unsupported_media_type")
    assert_not_issued(service_db, number, rid)


# --------------------------------------------------------------------------------------------
# POST /v1/pins: who may call

@pytest.mark.parametrize("authorization", [
    pytest.param(None, id="no_token"),
    pytest.param("Bearer garbage", id="garbage_token"),
    pytest.param("Bearer", id="scheme_without_token"),
    pytest.param("Basic dXNlcjpwYXNz", id="basic_scheme"),
    pytest.param("Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                 "eyJzdWIiOiJ4Iiwicm9sZXMiOlsicmVnaXN0cmFyIl0sImp1ciI6IioifQ.",
                 id="alg_none_token"),
])
def test_missing_or_bad_token_is_401_unauthenticated(
    anonymous: httpx.Client, service_db: DbFn, authorization: str | None
) -> None:
    body = issue_body("052")
    rid = request_id()
    headers = {"X-Request-ID": rid}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = anonymous.post("/v1/pins", json=body, headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert_not_issued(service_db, number_of(body), rid)


def test_tampered_registrar_token_is_401_unauthenticated(
    server: ServerThread, client_token: Callable[..., str], service_db: DbFn
) -> None:
    token = client_token("052")
    header, claims, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    body = issue_body("052")
    with server.client(f"{header}.{claims}.{flipped}") as client:
        response, rid = post_pins(client, body)
    assert_problem(response, 401, "unauthenticated")
    assert_not_issued(service_db, number_of(body), rid)


def test_bad_token_with_bad_body_is_401_not_a_validation_answer(
    anonymous: httpx.Client, service_db: DbFn
) -> None:
    rid = request_id()
    response = anonymous.post("/v1/pins", content=b'{"a":',
                              headers={"Content-Type": "text/plain", "X-Request-ID": rid})
    assert_problem(response, 401, "unauthenticated")
    assert_no_audit(service_db, rid)


@pytest.mark.parametrize("role", ["officer", "auditor"])
def test_operator_token_on_issue_is_403_forbidden(
    server: ServerThread, officer_token: Callable[..., str], service_db: DbFn, role: str
) -> None:
    body = issue_body("052")
    with server.client(officer_token("052", (role,))) as client:
        response, rid = post_pins(client, body)
    assert_problem(response, 403, "forbidden")
    assert_not_issued(service_db, number_of(body), rid)


# --------------------------------------------------------------------------------------------
# POST /v1/pins/verify

def _verify_body(person: dict[str, str]) -> Body:
    return {"pin": person["pin"], "full_name": "Lê Thị Bad Input", "date_of_birth": "2024-03-02"}


@pytest.mark.parametrize(("mutate", "status", "code", "field"), [
    pytest.param(put("pin", "12345"), 422, "invalid_field", "pin", id="pin_5_digits"),
    pytest.param(put("pin", full_width("052324000001")), 422, "invalid_field", "pin",
                 id="pin_full_width_digits"),
    pytest.param(put("pin", 52324000001), 422, "invalid_field", "pin", id="pin_int"),
    pytest.param(put("date_of_birth", "2024-2-3"), 422, "invalid_field", "date_of_birth",
                 id="date_2024_2_3"),
    pytest.param(put("date_of_birth", "2024-02-30"), 422, "invalid_field", "date_of_birth",
                 id="date_2024_02_30"),
    pytest.param(put("full_name", None), 422, "invalid_field", "full_name",
                 id="full_name_null"),
    pytest.param(put("nickname", "Bi"), 422, "invalid_field", "nickname", id="unknown_field"),
    pytest.param(drop("date_of_birth"), 400, "malformed_request", "date_of_birth",
                 id="missing_date_of_birth"),
    pytest.param(drop("pin"), 400, "malformed_request", "pin", id="missing_pin"),
    pytest.param(drop("full_name"), 400, "malformed_request", "full_name",
                 id="missing_full_name"),
])
def test_verify_with_bad_field_is_refused(
    registrar: httpx.Client, service_db: DbFn, person: dict[str, str], mutate: Mutator,
    status: int, code: str, field: str
) -> None:
    body = _verify_body(person)
    mutate(body)
    rid = request_id()
    response = registrar.post("/v1/pins/verify", json=body, headers={"X-Request-ID": rid})
    assert_problem(response, status, code, field)
    assert_no_audit(service_db, rid)


@pytest.mark.parametrize(("content", "content_type", "status", "code"), [
    pytest.param(b'{"pin":', "application/json", 400, "malformed_request", id="truncated_json"),
    pytest.param(b"[]", "application/json", 400, "malformed_request", id="json_array"),
    pytest.param(b'{"pin": "\xff"}', "application/json", 400, "malformed_request",
                 id="not_utf8"),
    pytest.param(b"{}", "text/plain", 415, "unsupported_media_type", id="text_plain"),
    pytest.param(b"{}", None, 415, "unsupported_media_type", id="no_content_type"),
])
def test_verify_with_bad_body_is_refused(
    registrar: httpx.Client, service_db: DbFn, content: bytes, content_type: str | None,
    status: int, code: str
) -> None:
    rid = request_id()
    headers = {"X-Request-ID": rid}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = registrar.post("/v1/pins/verify", content=content, headers=headers)
    assert_problem(response, status, code, NO_FIELD)
    assert_no_audit(service_db, rid)


def test_verify_without_token_is_401_unauthenticated(
    anonymous: httpx.Client, service_db: DbFn, person: dict[str, str]
) -> None:
    rid = request_id()
    response = anonymous.post("/v1/pins/verify", json=_verify_body(person),
                              headers={"X-Request-ID": rid})
    assert_problem(response, 401, "unauthenticated")
    assert_no_audit(service_db, rid)


def test_verify_by_auditor_is_403_forbidden(
    auditor: httpx.Client, service_db: DbFn, person: dict[str, str]
) -> None:
    rid = request_id()
    response = auditor.post("/v1/pins/verify", json=_verify_body(person),
                            headers={"X-Request-ID": rid})
    assert_problem(response, 403, "forbidden")
    assert_no_audit(service_db, rid)


# --------------------------------------------------------------------------------------------
# GET /v1/persons/{pin}

@pytest.mark.parametrize(("params", "status", "code", "field"), [
    pytest.param({}, 400, "purpose_required", None, id="no_purpose"),
    pytest.param({"purpose": ""}, 400, "purpose_required", None, id="empty_purpose"),
    pytest.param({"purpose": "   "}, 400, "purpose_required", None, id="blank_purpose"),
    pytest.param({"purpose": "check\u0007"}, 422, "invalid_field", "purpose",
                 id="purpose_control_char"),
    pytest.param({"purpose": "x" * 2001}, 422, "invalid_field", "purpose",
                 id="purpose_2001_chars"),
])
def test_read_without_valid_purpose_is_refused(
    officer: httpx.Client, service_db: DbFn, person: dict[str, str], params: dict[str, str],
    status: int, code: str, field: str | None
) -> None:
    rid = request_id()
    response = officer.get(f"/v1/persons/{person['pin']}", params=params,
                           headers={"X-Request-ID": rid})
    assert_problem(response, status, code, field)
    assert_no_audit(service_db, rid)


@pytest.mark.parametrize("pin", ["12345", "05232400000X", "0523240000011",
                                 full_width("052324000001")])
def test_read_malformed_pin_is_422_invalid_field(
    officer: httpx.Client, service_db: DbFn, pin: str
) -> None:
    rid = request_id()
    response = officer.get(f"/v1/persons/{pin}", params={"purpose": "bad input test"},
                           headers={"X-Request-ID": rid})
    assert_problem(response, 422, "invalid_field", "pin")
    assert_no_audit(service_db, rid)


def test_read_with_non_utf8_purpose_is_not_a_server_error(
    officer: httpx.Client, service_db: DbFn, person: dict[str, str]
) -> None:
    rid = request_id()
    response = officer.get(f"/v1/persons/{person['pin']}?purpose=%FF%FE%00",
                           headers={"X-Request-ID": rid})
    assert_problem(response, 422, "invalid_field", "purpose")
    assert_no_audit(service_db, rid)


def test_read_by_registrar_is_403_forbidden(
    registrar: httpx.Client, service_db: DbFn, person: dict[str, str]
) -> None:
    rid = request_id()
    response = registrar.get(f"/v1/persons/{person['pin']}", params={"purpose": "test"},
                             headers={"X-Request-ID": rid})
    assert_problem(response, 403, "forbidden")
    assert_no_audit(service_db, rid)


# --------------------------------------------------------------------------------------------
# GET /v1/persons?... (search)

SEARCH_OK = {"full_name": "Lê Thị Bad Input", "purpose": "bad input test"}


@pytest.mark.parametrize(("change", "status", "code", "field"), [
    pytest.param({"purpose": None}, 400, "purpose_required", None, id="no_purpose"),
    pytest.param({"purpose": ""}, 400, "purpose_required", None, id="empty_purpose"),
    pytest.param({"date_of_birth": "2024-2-3"}, 422, "invalid_field", "date_of_birth",
                 id="date_2024_2_3"),
    pytest.param({"date_of_birth": "2024-02-30"}, 422, "invalid_field", "date_of_birth",
                 id="date_2024_02_30"),
    pytest.param({"date_of_birth": "20240302"}, 422, "invalid_field", "date_of_birth",
                 id="date_without_dashes"),
    pytest.param({"province_code": "52"}, 422, "invalid_field", "province_code",
                 id="province_code_2_digits"),
    pytest.param({"province_code": arabic_indic("052")}, 422, "invalid_field", "province_code",
                 id="province_code_arabic_indic_digits"),
    pytest.param({"full_name": None}, 422, "invalid_field", "full_name", id="no_full_name"),
    pytest.param({"full_name": "Lê\u0007"}, 422, "invalid_field", "full_name",
                 id="full_name_control_char"),
    pytest.param({"full_name": "x" * 201}, 422, "invalid_field", "full_name",
                 id="full_name_201_chars"),
    pytest.param({"match": "fuzzy"}, 422, "invalid_field", "match", id="unknown_match_mode"),
    pytest.param({"province_code": "079"}, 403, "forbidden", "province_code",
                 id="province_outside_jurisdiction"),
])
def test_search_with_bad_criteria_is_refused(
    officer: httpx.Client, service_db: DbFn, change: dict[str, str | None], status: int,
    code: str, field: str | None
) -> None:
    params = {k: v for k, v in (SEARCH_OK | change).items() if v is not None}
    rid = request_id()
    response = officer.get("/v1/persons", params=params, headers={"X-Request-ID": rid})
    assert_problem(response, status, code, field)
    assert_no_audit(service_db, rid)


def test_search_by_registrar_is_403_forbidden(registrar: httpx.Client, service_db: DbFn) -> None:
    rid = request_id()
    response = registrar.get("/v1/persons", params=SEARCH_OK, headers={"X-Request-ID": rid})
    assert_problem(response, 403, "forbidden")
    assert_no_audit(service_db, rid)


# --------------------------------------------------------------------------------------------
# POST /v1/persons/{pin}/corrections

def _person_state(service_db: DbFn, person: dict[str, str]) -> tuple[Any, ...]:
    row = service_db(
        "SELECT p.status, p.replaced_by, p.full_name, p.sex, p.date_of_birth, p.record::text, "
        "(SELECT count(*) FROM person_history h WHERE h.pin = p.pin), "
        "(SELECT count(*) FROM person q WHERE q.registration_number = $2) "
        "FROM person p WHERE p.pin = $1", person["pin"], person["number"])[0]
    return tuple(row)


def _correction(**changes: Any) -> Body:
    return {"changes": changes, "reason": "bad input test"}


# A change the record itself does not allow (a birth after its registration date) is refused
# after the record was read, and audited: tests/integration/test_refusals_audited.py.
@pytest.mark.parametrize(("body", "status", "code", "field"), [
    pytest.param(_correction(), 422, "invalid_field", "changes", id="no_changes"),
    pytest.param(_correction(nickname="Bi"), 422, "invalid_field", "changes.nickname",
                 id="unknown_change"),
    pytest.param(_correction(sex="X"), 422, "invalid_field", "changes.sex", id="sex_X"),
    pytest.param(_correction(sex=None), 422, "invalid_field", "changes.sex", id="sex_null"),
    pytest.param(_correction(full_name=None), 422, "invalid_field", "changes.full_name",
                 id="full_name_null"),
    pytest.param(_correction(date_of_birth=None), 422, "invalid_field", "changes.date_of_birth",
                 id="dob_null"),
    pytest.param(_correction(other_names=None), 422, "invalid_field", "changes.other_names",
                 id="other_names_null"),
    pytest.param(_correction(full_name=""), 422, "invalid_field", "changes.full_name",
                 id="full_name_empty"),
    pytest.param(_correction(full_name="A" * 201), 422, "invalid_field", "changes.full_name",
                 id="full_name_201_chars"),
    pytest.param(_correction(full_name="a\u200bb"), 422, "invalid_field", "changes.full_name",
                 id="full_name_zero_width_space"),
    pytest.param(_correction(other_names=[""]), 422, "invalid_field",
                 "changes.other_names.0", id="other_names_empty_string"),
    pytest.param(_correction(date_of_birth="2024-2-3"), 422, "invalid_field",
                 "changes.date_of_birth", id="date_2024_2_3"),
    pytest.param(_correction(date_of_birth="1899-12-31"), 422, "invalid_field",
                 "changes.date_of_birth", id="dob_1899_12_31"),
    pytest.param(_correction(father={"full_name": "Nguyễn Văn Hùng", "pin": "12345"}), 422,
                 "invalid_field", "changes.father.pin", id="father_pin_5_digits"),
    pytest.param(_correction(father={"full_name": None}), 422, "invalid_field",
                 "changes.father.full_name", id="father_full_name_null"),
    pytest.param(_correction(father={}), 422, "invalid_field", "changes.father",
                 id="father_with_nothing_to_change"),
    pytest.param(_correction(full_name="Lê Thị Khác") | {"reason": ""}, 422, "invalid_field",
                 "reason", id="reason_empty"),
    pytest.param(_correction(full_name="Lê Thị Khác") | {"extra": 1}, 422, "invalid_field",
                 "extra", id="unknown_top_level_field"),
    pytest.param({"changes": {"full_name": "Lê Thị Khác"}}, 400, "malformed_request", "reason",
                 id="missing_reason"),
    pytest.param({"reason": "bad input test"}, 400, "malformed_request", "changes",
                 id="missing_changes"),
    pytest.param({"changes": "full_name=X", "reason": "x"}, 422, "invalid_field", "changes",
                 id="changes_string"),
])
def test_correction_with_bad_body_is_refused(
    officer: httpx.Client, service_db: DbFn, person: dict[str, str], body: Body, status: int,
    code: str, field: str
) -> None:
    before = _person_state(service_db, person)
    rid = request_id()
    response = officer.post(f"/v1/persons/{person['pin']}/corrections", json=body,
                            headers={"X-Request-ID": rid})
    assert_problem(response, status, code, field)
    assert _person_state(service_db, person) == before
    assert_no_audit(service_db, rid)


@pytest.mark.parametrize(("content", "content_type", "status", "code"), [
    pytest.param(b'{"changes":', "application/json", 400, "malformed_request",
                 id="truncated_json"),
    pytest.param(b"[]", "application/json", 400, "malformed_request", id="json_array"),
    pytest.param(b'{"changes": {}, "reason": "\xff"}', "application/json", 400,
                 "malformed_request", id="not_utf8"),
    pytest.param(b"{}", "text/plain", 415, "unsupported_media_type", id="text_plain"),
    pytest.param(b"{}", None, 415, "unsupported_media_type", id="no_content_type"),
])
def test_correction_with_bad_payload_is_refused(
    officer: httpx.Client, service_db: DbFn, person: dict[str, str], content: bytes,
    content_type: str | None, status: int, code: str
) -> None:
    before = _person_state(service_db, person)
    rid = request_id()
    headers = {"X-Request-ID": rid}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = officer.post(f"/v1/persons/{person['pin']}/corrections", content=content,
                            headers=headers)
    assert_problem(response, status, code, NO_FIELD)
    assert _person_state(service_db, person) == before
    assert_no_audit(service_db, rid)


def test_correction_of_malformed_pin_is_422_invalid_field(
    officer: httpx.Client, service_db: DbFn
) -> None:
    rid = request_id()
    response = officer.post("/v1/persons/12345/corrections",
                            json=_correction(full_name="Lê Thị Khác"),
                            headers={"X-Request-ID": rid})
    assert_problem(response, 422, "invalid_field", "pin")
    assert_no_audit(service_db, rid)


def test_correction_by_registrar_is_403_forbidden(
    registrar: httpx.Client, service_db: DbFn, person: dict[str, str]
) -> None:
    before = _person_state(service_db, person)
    rid = request_id()
    response = registrar.post(f"/v1/persons/{person['pin']}/corrections",
                              json=_correction(full_name="Lê Thị Khác"),
                              headers={"X-Request-ID": rid})
    assert_problem(response, 403, "forbidden")
    assert _person_state(service_db, person) == before
    assert_no_audit(service_db, rid)


# --------------------------------------------------------------------------------------------
# POST /v1/auth/client-token: RFC 6749 section 5.2 error bodies, not problem+json

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.mark.parametrize(("content", "content_type", "status", "error"), [
    pytest.param(b'{"grant_type": "client_credentials"}', "application/json", 400,
                 "invalid_request", id="json_body"),
    pytest.param(b"grant_type=client_credentials", None, 400, "invalid_request",
                 id="no_content_type"),
    pytest.param("grant_type=client_credentials&x=\u00e9".encode(),
                 "application/x-www-form-urlencoded", 400, "invalid_request", id="not_ascii"),
    pytest.param(b"grant_type=client_credentials&client_assertion=" + b"a" * (65 * 1024),
                 "application/x-www-form-urlencoded", 400, "invalid_request", id="over_64_kib"),
    pytest.param(b"grant_type=password&username=a&password=b",
                 "application/x-www-form-urlencoded", 400, "unsupported_grant_type",
                 id="password_grant"),
    pytest.param(f"grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}"
                 "&client_assertion=not.a.jwt".encode(),
                 "application/x-www-form-urlencoded", 401, "invalid_client",
                 id="garbage_assertion"),
    pytest.param(b"grant_type=client_credentials&client_assertion_type=basic"
                 b"&client_assertion=x", "application/x-www-form-urlencoded", 401,
                 "invalid_client", id="wrong_assertion_type"),
    pytest.param(b"grant_type=client_credentials&client_assertion_type=" +
                 ASSERTION_TYPE.encode(), "application/x-www-form-urlencoded", 401,
                 "invalid_client", id="no_assertion"),
    pytest.param(b"client_assertion_type=" + ASSERTION_TYPE.encode() + b"&client_assertion=x",
                 "application/x-www-form-urlencoded", 400, "invalid_request",
                 id="no_grant_type"),
    pytest.param(b"grant_type=client_credentials&grant_type=client_credentials",
                 "application/x-www-form-urlencoded", 400, "invalid_request",
                 id="repeated_parameter"),
])
def test_malformed_client_token_request_gets_rfc6749_error(
    anonymous: httpx.Client, content: bytes, content_type: str | None, status: int, error: str
) -> None:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    response = anonymous.post("/v1/auth/client-token", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.headers.get("cache-control") == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    assert "Traceback" not in response.text
