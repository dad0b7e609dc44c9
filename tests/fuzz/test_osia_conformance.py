"""Conformance to the OSIA specifications themselves (`tests/fuzz/osia/uin.yaml` 1.2.0,
`dataaccess.yaml` 1.3.0, unmodified), base URL `/osia` of the session server.

- schemathesis generates requests from each spec, sent with a real token of each role
  (registrar client, officer, reader client with and without a registered purpose) and
  without one: no 5xx, every answer a documented status with its documented media type, body
  and headers (`test_schemathesis.py`'s bounded, derandomized runner).
- Every status the specs document for the operations idservice implements is reached by a
  request of its own, and that answer conforms to the spec as well.
The Data Access operations idservice does not implement (queryPersonList, readDocument;
contract 10 asks for neither) answer 404 with an empty body, which both specs document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.fuzz.test_schemathesis import EXAMPLES, _fuzz, _operations
from tests.support.bodies import mother_pin
from tests.support.osia import new_transaction, reader_token, uin_attributes
from tests.support.server import ServerThread

SPECS = Path(__file__).resolve().parent / "osia"
ROLES = ("anonymous", "registrar", "officer", "reader", "reader_without_purpose")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
IMPLEMENTED = {"generateUIN", "readPersonAttributes", "matchPersonAttributes",
               "verifyPersonAttributes"}
DbFn = Callable[..., list[Any]]


@pytest.fixture(scope="module")
def specs() -> dict[str, schemathesis.BaseSchema]:
    return {name: schemathesis.openapi.from_path(SPECS / f"{name}.yaml")
            for name in ("uin", "dataaccess")}


@pytest.fixture(scope="module")
def tokens(client_token: Callable[..., str], officer_token: Callable[..., str],
           server: ServerThread, database: DatabaseTarget,
           settings: Settings) -> dict[str, str | None]:
    def reader(purpose: str | None) -> str:
        return reader_token(server.base_url, database.admin_url, settings.client_token_url,
                            purpose=purpose)

    return {"anonymous": None, "registrar": client_token("052"),
            "officer": officer_token("052", ("officer",)),
            "reader": reader("conformance test"), "reader_without_purpose": reader(None)}


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.mark.timeout(240)
@pytest.mark.parametrize("spec", ["uin", "dataaccess"])
@pytest.mark.parametrize("role", ROLES)
def test_spec_operations_conform_and_never_fail(
    spec: str, role: str, specs: dict[str, schemathesis.BaseSchema],
    tokens: dict[str, str | None], session: requests.Session, server: ServerThread,
) -> None:
    token = tokens[role]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    failures = [failure for operation in _operations(specs[spec]) for mode in EXAMPLES
                if (failure := _fuzz(operation, mode, headers, session,
                                     f"{server.base_url}/osia"))]
    assert not failures, f"{len(failures)} failing operation(s) of {spec}.yaml as {role}:" \
        "\n\n" + "\n\n".join(failures)
    assert time.monotonic() - started < 120


# -- every documented status, reached and conforming ----------------------------------------

Request = dict[str, Any]  # role, path_parameters, query, body, fault
UNKNOWN_PIN = "052399999990"


def _child(**changes: Any) -> dict[str, Any]:
    """`uin_attributes` with a mother PIN of its own: each request another child, which the
    duplicate check of contract 9 does not refuse (the test's person and the 200 request
    would otherwise be the same child twice)."""
    return uin_attributes(motherUin=mother_pin("052", "conformance", new_transaction()),
                          **changes)


def _uin(role: str, body: object, **extra: Any) -> Request:
    return {"role": role, "query": {"transactionId": new_transaction()}, "body": body, **extra}


def _person(role: str, *, pin: str | None = None, query: dict[str, Any] | None = None,
            body: object = None, **extra: Any) -> Request:
    return {"role": role, "path_parameters": {"uin": pin}, "query": query or {}, "body": body,
            **extra}


_READ = {"attributeNames": ["fullName", "dateOfDeath"]}
_REVOKE_PERSON = ("REVOKE SELECT ON person FROM idservice_service",
                  "GRANT SELECT ON person TO idservice_service")
_REVOKE_CLAIM = ("REVOKE EXECUTE ON FUNCTION issue_pin_claimed FROM idservice_service",
                 "GRANT EXECUTE ON FUNCTION issue_pin_claimed TO idservice_service")

# (spec, path, method, status) -> the request that gets it (pin None: the test's person)
STATUS_REQUESTS: dict[tuple[str, str, str, int], Request] = {
    ("uin", "/v1/uin", "POST", 200): _uin("registrar", _child()),
    ("uin", "/v1/uin", "POST", 400): _uin("registrar", uin_attributes(dob="2024-01-01")),
    ("uin", "/v1/uin", "POST", 401): _uin("anonymous", _child()),
    ("uin", "/v1/uin", "POST", 403): _uin("officer", _child()),
    ("uin", "/v1/uin", "POST", 500): _uin("registrar", _child(), fault=_REVOKE_CLAIM),
    ("dataaccess", "/v1/persons/{uin}", "GET", 200): _person("reader", query=_READ),
    ("dataaccess", "/v1/persons/{uin}", "GET", 400):
        _person("reader", query={"attributeNames": ["dob"]}),
    ("dataaccess", "/v1/persons/{uin}", "GET", 401): _person("anonymous", query=_READ),
    ("dataaccess", "/v1/persons/{uin}", "GET", 403):
        _person("reader_without_purpose", query=_READ),
    ("dataaccess", "/v1/persons/{uin}", "GET", 404):
        _person("reader", pin=UNKNOWN_PIN, query=_READ),
    ("dataaccess", "/v1/persons/{uin}", "GET", 500):
        _person("reader", query=_READ, fault=_REVOKE_PERSON),
    ("dataaccess", "/v1/persons/{uin}/match", "POST", 200):
        _person("reader", body={"fullName": "Nguyễn Thị Minh Anh", "dateOfDeath": "2030-01-01",
                                "gender": "1"}),
    ("dataaccess", "/v1/persons/{uin}/match", "POST", 400):
        _person("reader", body={"gender": "F"}),
    ("dataaccess", "/v1/persons/{uin}/match", "POST", 401):
        _person("anonymous", body={"gender": 2}),
    ("dataaccess", "/v1/persons/{uin}/match", "POST", 403):
        _person("registrar", body={"gender": 2}),
    ("dataaccess", "/v1/persons/{uin}/match", "POST", 404):
        _person("reader", pin=UNKNOWN_PIN, body={"gender": 2}),
    ("dataaccess", "/v1/persons/{uin}/match", "POST", 500):
        _person("reader", body={"gender": 2}, fault=_REVOKE_PERSON),
    ("dataaccess", "/v1/persons/{uin}/verify", "POST", 200):
        _person("officer", query={"purpose": "conformance"}, body=[
            {"attributeName": "dateOfBirth", "operator": "<", "value": "2030-01-01"}]),
    ("dataaccess", "/v1/persons/{uin}/verify", "POST", 400):
        _person("officer", query={"purpose": "conformance"}, body=[
            {"attributeName": "fullName", "operator": "<", "value": "A"}]),
    ("dataaccess", "/v1/persons/{uin}/verify", "POST", 401): _person("anonymous", body=[]),
    ("dataaccess", "/v1/persons/{uin}/verify", "POST", 403):
        _person("officer", query={"purpose": "conformance"}, body=[], other_province=True),
    ("dataaccess", "/v1/persons/{uin}/verify", "POST", 404):
        _person("reader", pin=UNKNOWN_PIN, body=[]),
    ("dataaccess", "/v1/persons/{uin}/verify", "POST", 500):
        _person("reader", body=[], fault=_REVOKE_PERSON),
    # not implemented (contract 10 asks for neither): 404, documented by the spec
    ("dataaccess", "/v1/persons", "GET", 404):
        {"role": "reader", "query": {"firstName": "Anh"}},
    ("dataaccess", "/v1/persons/{uin}/document", "GET", 404):
        _person("reader", query={"doctype": "birth", "format": "pdf"}),
}


def test_every_documented_status_of_implemented_operations_has_a_request(
        specs: dict[str, schemathesis.BaseSchema]) -> None:
    documented = {(name, op.path, op.method.upper(), int(status))
                  for name, schema in specs.items() for op in _operations(schema)
                  if op.definition.raw.get("operationId") in IMPLEMENTED
                  for status in op.definition.raw["responses"]}
    assert len(documented) == 23
    assert documented <= set(STATUS_REQUESTS)


@pytest.fixture(scope="module")
def person(server: ServerThread, tokens: dict[str, str | None]) -> str:
    response = requests.post(f"{server.base_url}/osia/v1/uin",
                             params={"transactionId": new_transaction()},
                             json=_child(),
                             headers={"Authorization": f"Bearer {tokens['registrar']}"},
                             timeout=30)
    assert response.status_code == 200, response.text
    pin: str = response.json()
    return pin


@pytest.mark.parametrize("key", list(STATUS_REQUESTS),
                         ids=[f"{k[2]} {k[1]} {k[3]}" for k in STATUS_REQUESTS])
def test_documented_status_is_reached_and_conforms(
    key: tuple[str, str, str, int], specs: dict[str, schemathesis.BaseSchema],
    tokens: dict[str, str | None], officer_token: Callable[..., str], person: str,
    server: ServerThread, owner_db: DbFn,
) -> None:
    spec, path, method, status = key
    request = STATUS_REQUESTS[key]
    token = officer_token("079") if request.get("other_province") else tokens[request["role"]]
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"} if token else {},
                              "query": request.get("query") or None}
    if "path_parameters" in request:
        kwargs["path_parameters"] = {"uin": request["path_parameters"]["uin"] or person}
    if request.get("body") is not None:
        kwargs["body"] = request["body"]
        kwargs["media_type"] = "application/json"
    case = specs[spec][path][method].Case(**kwargs)
    fault = request.get("fault")
    with requests.Session() as own:  # after a 500 the server closes the connection
        if fault:
            owner_db(fault[0])
        try:
            response = case.call(base_url=f"{server.base_url}/osia", session=own, timeout=30)
        finally:
            if fault:
                owner_db(fault[1])
    assert response.status_code == status, response.text
    # a 500 is what this request is for: every other check still applies
    case.validate_response(response, checks=[c for c in CHECKS if status < 500
                                             or c is not not_a_server_error])


def test_our_openapi_documents_the_field_interfaces(server: ServerThread) -> None:
    """`/openapi.json` has the OSIA and OpenCRVS routes, with their own error bodies (the
    fuzz test of test_schemathesis.py then checks every answer against it)."""
    schema = requests.get(f"{server.base_url}/openapi.json", timeout=30).json()
    operations = {(path, method): op for path, ops in schema["paths"].items()
                  for method, op in ops.items()}
    notification = {"subscribe", "listSubscription", "unsubscribe", "confirm", "createTopic",
                    "listTopics", "deleteTopic", "publish"}  # notification.yaml (contract 9)
    assert {op.get("operationId") for (path, _), op in operations.items()
            if path.startswith("/osia/")} == IMPLEMENTED | notification
    assert ("/integrations/opencrvs/v1/register", "post") in operations
    for (path, _), op in operations.items():
        if path.startswith(("/osia/", "/integrations/")):
            assert "Problem" not in str(op["responses"]), path
            assert "422" not in op["responses"], path
