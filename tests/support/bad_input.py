"""Helpers for refused-request tests: send with a known request id, check the problem body,
check that nothing reached the database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

__all__ = [
    "NO_FIELD",
    "assert_no_audit",
    "assert_not_issued",
    "assert_problem",
    "request_id",
]

DbFn = Callable[..., list[Any]]

# `assert_problem(..., field=NO_FIELD)`: the problem must not name a field.
NO_FIELD = object()

# Text that would betray internals (a stack trace, SQL, the driver, the framework), or the
# validation library's own wording instead of ours (issue 9 item 17).
_LEAKS = ("Traceback", 'File "', "SELECT ", "INSERT ", "UPDATE ", "asyncpg", "psycopg",
          "postgres", "sqlstate", "pydantic", "starlette", "fastapi", "idservice.", ".py",
          "Input should", "should be", "should have", "Value error", "Field required",
          "Extra inputs", "String should", "List should", "Assertion failed")


def request_id() -> str:
    """A fresh X-Request-ID, so audit rows written for one request can be found."""
    return f"bad-input-{uuid.uuid4().hex}"


def assert_problem(response: httpx.Response, status: int, code: str,
                   field: object = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status and `code`; `field` checked when given (or
    required absent with NO_FIELD). Returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    media = response.headers.get("content-type", "").split(";", 1)[0].strip()
    assert media == "application/problem+json", response.headers.get("content-type")
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("code") == code, body
    assert body.get("status") == status, body
    assert isinstance(body.get("type"), str) and body["type"], body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert isinstance(body.get("detail"), str), body
    if field is NO_FIELD:
        assert "field" not in body, body
    elif field is not None:
        assert body.get("field") == field, body
    for leak in _LEAKS:
        assert leak not in response.text, (leak, response.text)
    return body


def assert_no_audit(service_db: DbFn, rid: str) -> None:
    """No audit event was written for the request with X-Request-ID `rid`."""
    rows = service_db("SELECT count(*) FROM audit_event WHERE request_id = $1", rid)
    assert rows[0][0] == 0, f"audit_event rows written for refused request {rid}"


def assert_not_issued(service_db: DbFn, number: str, rid: str | None = None) -> None:
    """Registration `number` is in neither `registration` nor `person`, nor in the audit log."""
    row = service_db(_NOT_ISSUED_SQL, number, rid)[0]
    counts = {"registration": row[0], "person": row[1], "audit_event by registration": row[2],
              "audit_event by request id": row[3]}
    assert not any(counts.values()), f"rows written for refused request {number!r}: {counts}"


# One round trip instead of four: these checks run after every refused issuance.
_NOT_ISSUED_SQL = """
SELECT (SELECT count(*) FROM registration WHERE number = $1),
       (SELECT count(*) FROM person WHERE registration_number = $1),
       (SELECT count(*) FROM audit_event WHERE details->'registration'->>'number' = $1),
       (SELECT count(*) FROM audit_event WHERE request_id = $2::text)
"""
