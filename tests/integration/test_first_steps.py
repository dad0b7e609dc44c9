"""What a new user tripped on (issue 9 item 17), each answered as they would expect: a wrong
method names the allowed ones, validation messages are ours and name the field path, the
service's root leads to the web UI."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.bad_input import assert_problem
from tests.support.bodies import issue_body
from tests.support.server import ServerThread


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/pins", "POST"),
    ("DELETE", "/v1/persons/052326415904", "GET"),
    ("PUT", "/v1/auth/challenge", "POST"),
])
def test_wrong_method_on_a_known_path_is_405_method_not_allowed_with_allow(
    server: ServerThread, method: str, path: str, allow: str,
) -> None:
    response = httpx.request(method, f"{server.base_url}{path}")
    problem = assert_problem(response, 405, "method_not_allowed")
    assert problem["type"].endswith(":method_not_allowed")
    assert problem["title"] == "Method not allowed"
    assert response.headers["allow"] == allow
    assert allow in problem["detail"]


@pytest.mark.parametrize(("path", "value", "detail"), [
    ("child.sex", "X", 'child.sex: must be "M" or "F"'),
    ("child.nationality", "vn", "child.nationality: must match the pattern ^[A-Z]{2}$"),
    ("child.full_name", 42, "child.full_name: must be a string"),
    ("child.other_names", ["Na"] * 21, "child.other_names: must have at most 20 items"),
    ("father", "Nguyễn Văn Hùng", "father: must be an object"),
    ("child.nickname", "Bi", "child.nickname: is not a known field: leave it out"),
    ("child.date_of_birth", "2024-02-30",
     "child.date_of_birth: must be a real calendar date YYYY-MM-DD"),
])
def test_validation_messages_are_ours_with_the_field_path(
    registrar: httpx.Client, path: str, value: object, detail: str,
) -> None:
    body = issue_body("052")
    *parents, name = path.split(".")
    target = body
    for part in parents:
        target = target[part]
    target[name] = value
    problem = assert_problem(registrar.post("/v1/pins", json=body), 422, "invalid_field", path)
    assert problem["detail"] == detail


def test_missing_field_names_its_path(registrar: httpx.Client) -> None:
    body = issue_body("052")
    del body["child"]["sex"]
    problem = assert_problem(registrar.post("/v1/pins", json=body), 400, "malformed_request",
                             "child.sex")
    assert problem["detail"] == "child.sex: is required"


def test_bad_query_parameter_message_is_ours(server: ServerThread,
                                             officer_token: Callable[..., str]) -> None:
    with server.client(officer_token("*", roles=("auditor",))) as auditor:
        problem = assert_problem(auditor.get("/v1/audit/events", params={"limit": "many"}),
                                 422, "invalid_field", "limit")
        assert problem["detail"] == "limit: must be an integer"
        problem = assert_problem(auditor.get("/v1/audit/events", params={"limit": "0"}),
                                 422, "invalid_field", "limit")
        assert problem["detail"] == "limit: must be at least 1"


def test_rules_beyond_one_field_name_the_path_first(registrar: httpx.Client) -> None:
    body = issue_body("052")
    body["registration"]["registered_on"] = "2999-01-01"
    problem = assert_problem(registrar.post("/v1/pins", json=body), 422, "invalid_field",
                             "registration.registered_on")
    assert problem["detail"] == "registration.registered_on: must not be in the future"


def test_root_redirects_to_the_web_ui(server: ServerThread) -> None:
    response = httpx.get(f"{server.base_url}/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"
