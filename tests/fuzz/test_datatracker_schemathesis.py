"""Estonia's Data Tracker spec itself (`reference/datatracker/dumonitor-openapi.yaml`, a copy in
tests/fuzz/) against the service at base URL `/datatracker` (contract 11): schemathesis sends
generated requests for findUsage, usagePeriod and heartbeat, as the portal and without a
token. Zero server errors and zero responses that break the spec's schemas or media types.

Three callers: the portal with generated identities (mostly 400, sometimes 403), the portal
for a real citizen with usages (findUsage's `X-Road-UserId` and `userCode` fixed, the other
parameters generated: 200 answers with usages, and 400s), and no token. Every answer must
have a status the spec documents (200, 400), except where the contract adds one the spec does
not list (401 without a token, 403 for a citizen asking about someone else): those are
allowed for exactly those callers, and every 4xx body is checked as problem+json.
Bounded and derandomized like tests/fuzz/test_schemathesis.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.bodies import issue_body
from tests.support.server import ServerThread

SPEC = Path(__file__).parent / "dumonitor-openapi.yaml"
EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 40}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
PROBLEM_KEYS = {"type", "title", "status", "code", "detail"}


@pytest.fixture(scope="module")
def schema() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_path(SPEC)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _check_problem(response: schemathesis.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == ["application/problem+json"]
    body = response.json()
    assert set(body) >= PROBLEM_KEYS and body["status"] == status


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str],
          session: requests.Session, base_url: str, allowed: int | None,
          citizen: str | None = None) -> str | None:
    """Run one operation's examples; the first failure as text, or None. `allowed`: the one
    status outside the spec the contract mandates for this caller (checked as a problem).
    `citizen`: ask findUsage about this citizen's own record (the other parameters still
    generated), so that the 200 answers with usages are fuzzed too."""

    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        if citizen is not None and case.operation.label == "GET /v2/findUsage":
            case.headers = {**(case.headers or {}), "X-Road-UserId": f"VN{citizen}"}
            case.query = {**(case.query or {}), "userCode": citizen}
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        if allowed is not None and response.status_code == allowed:
            _check_problem(response, allowed)
            return
        if response.status_code == 400:
            _check_problem(response, 400)
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:
        return None
    except Exception as exc:
        return f"{operation.label} [{mode.value}]: {exc}"
    return None


@pytest.fixture(scope="module")
def citizen(registrar: httpx.Client, officer: httpx.Client) -> str:
    """A citizen with usages: the issuance and three officers' reads."""
    pin: str = registrar.post("/v1/pins", json=issue_body("052")).json()["pin"]
    for i in range(3):
        assert officer.get(f"/v1/persons/{pin}", params={"purpose": f"lần {i}"}).status_code \
            == 200
    return pin


@pytest.mark.timeout(300)
@pytest.mark.parametrize("role", ["portal", "portal-citizen", "anonymous"])
def test_the_estonian_spec_holds_at_datatracker(
    role: str, schema: schemathesis.BaseSchema, client_token: Callable[..., str],
    session: requests.Session, server: ServerThread, citizen: str,
) -> None:
    headers = {"Authorization": f"Bearer {client_token('052', ('portal',))}"} \
        if role.startswith("portal") else {}
    allowed = 403 if role == "portal" else 401 if role == "anonymous" else None
    started = time.monotonic()
    failures = [failure for result in schema.get_all_operations()
                for mode in EXAMPLES
                if (failure := _fuzz(result.ok(), mode, headers, session,
                                     f"{server.base_url}/datatracker", allowed,
                                     citizen if role == "portal-citizen" else None))]
    assert not failures, f"{len(failures)} failing operation(s) as {role}:\n\n" + \
        "\n\n".join(failures)
    assert time.monotonic() - started < 180
