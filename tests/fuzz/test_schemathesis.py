"""API fuzzing with schemathesis against the OpenAPI document of a real server.

The session server (real PostgreSQL, SoftHSM, uvicorn on loopback) publishes `/openapi.json`;
schemathesis loads it from there and, for every operation, sends generated requests with a
real token of each role (registrar client, officer, auditor, admin) and without one. Every
answer must be no server error (no 5xx) and conform to the document: a documented status,
its documented media type, a body valid against its schema, documented headers.

Bounded: a fixed number of examples per operation and mode (positive and negative data),
derandomized so CI runs the same requests each time, no shrinking (a failure is reported with
the request that caused it), a per-request timeout. Failures of all operations are collected
and reported together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema_rs
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

from idservice.queries import audit as audit_queries
from tests.support.server import ServerThread

NDJSON = "application/x-ndjson"


@schemathesis.serializer(NDJSON)
def _ndjson(_: Any, value: Any) -> bytes:
    """The batch body: each generated object is a line (a list is several lines)."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@schemathesis.check
def ndjson_lines_conform(ctx: Any, response: schemathesis.Response, case: Case) -> bool | None:
    """schemathesis validates JSON bodies only: every NDJSON line must match the documented
    line schema too."""
    media = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    if response.status_code != 200 or media != NDJSON:
        return None
    content = case.operation.definition.raw["responses"]["200"]["content"][NDJSON]
    validator = jsonschema_rs.validator_for(
        {**content["schema"], "components": case.operation.schema.raw_schema["components"]})
    for number, line in enumerate(response.content.splitlines(), 1):
        validator.validate(json.loads(line))  # raises with the path of the first violation
        assert number < 100_000
    return None


CHECKS = [ndjson_lines_conform, not_a_server_error, status_code_conformance,
          content_type_conformance, response_schema_conformance, response_headers_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
ROLES = ("anonymous", "registrar", "officer", "auditor", "admin", "portal")
REQUEST_TIMEOUT = 30


@pytest.fixture(scope="module")
def schema(server: ServerThread) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")


@pytest.fixture(scope="module")
def tokens(client_token: Callable[..., str], officer_token: Callable[..., str]
           ) -> dict[str, str | None]:
    return {
        "anonymous": None,
        "registrar": client_token("052"),
        "officer": officer_token("052", ("officer",)),
        "auditor": officer_token("*", ("auditor",)),
        "admin": officer_token("*", ("admin",)),
        "portal": client_token("*", ("portal",)),
    }


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _operations(schema: schemathesis.BaseSchema) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str],
          session: requests.Session, base_url: str) -> str | None:
    """Run one operation's examples; the first failure as text, or None."""

    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        response = case.call(base_url=base_url, session=session, headers=headers,
                             timeout=REQUEST_TIMEOUT)
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:
        return None  # negative mode, nothing to negate (no parameters, no body)
    except Exception as exc:
        return f"{operation.label} [{mode.value}]: {exc}"
    return None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("role", ROLES)
def test_every_operation_conforms_and_never_fails(
    role: str, schema: schemathesis.BaseSchema, tokens: dict[str, str | None],
    client_token: Callable[..., str], officer_token: Callable[..., str],
    session: requests.Session, server: ServerThread,
) -> None:
    token = tokens[role]
    started = time.monotonic()
    failures: list[str] = []
    for operation in _operations(schema):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if operation.label == "POST /v1/auth/logout" and token:
            # Logging out revokes the presented token: use a throwaway one of the same role.
            throwaway = client_token("052") if role == "registrar" else \
                client_token("*", ("portal",)) if role == "portal" else \
                officer_token("052", (role,))
            headers = {"Authorization": f"Bearer {throwaway}"}
        for mode in EXAMPLES:
            failure = _fuzz(operation, mode, headers, session, server.base_url)
            if failure:
                failures.append(failure)
    elapsed = time.monotonic() - started
    assert not failures, f"{len(failures)} failing operation(s) as {role}:\n\n" + \
        "\n\n".join(failures)
    assert elapsed < 120, f"fuzzing as {role} took {elapsed:.0f} s"


def test_audit_log_still_integrates_after_fuzzing(
    server: ServerThread, service_db: Callable[..., list[Any]]
) -> None:
    """Whatever the fuzzer made the service record, the integrator can still put it in the
    Merkle tree (an event it cannot hash would stop the log for good)."""
    sequenced = service_db("SELECT count(*) FROM audit_log")[0][0]
    deadline = time.monotonic() + 30
    while True:
        head = service_db(audit_queries.TREE_HEAD)
        size = int(head[0]["size"]) if head else 0
        if size >= sequenced or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert size >= sequenced, f"integrated {size} of {sequenced} sequenced events"
