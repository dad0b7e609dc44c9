"""One writer of audit events (issue 10 item 4): every event reaches `audit_event` through the
SQL function `audit_write()`, from the Python recorder and from `issue_pin()` alike."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.bodies import issue_body

ROOT = Path(__file__).resolve().parents[2]
_INSERT = re.compile(r"INSERT\s+INTO\s+(public\.)?audit_event\b", re.IGNORECASE)


def test_only_audit_write_inserts_audit_events_in_the_database(
    owner_db: Callable[..., list],
) -> None:
    rows = owner_db("SELECT proname, prosrc FROM pg_proc p JOIN pg_namespace n "
                    "ON n.oid = p.pronamespace WHERE n.nspname = 'public'")
    assert sorted(r["proname"] for r in rows if _INSERT.search(r["prosrc"])) == ["audit_write"]


def test_no_service_code_inserts_audit_events_itself() -> None:
    found = [str(path.relative_to(ROOT)) for path in (ROOT / "idservice").rglob("*.py")
             if _INSERT.search(path.read_text("utf-8"))]
    assert found == []


def test_fast_path_and_recorder_write_the_same_issue_event(
    registrar: httpx.Client, service_db: Callable[..., list],
) -> None:
    """The one-statement path (POST /v1/pins) and the Python path (the batch) record the same
    details for the same registration."""
    body = issue_body("052")
    single = registrar.post("/v1/pins", json=body)
    assert single.status_code == 201, single.text
    again = registrar.post("/v1/pins:batch", content=httpx.Request(
        "POST", "/", json=body).content + b"\n", headers={"Content-Type": "application/x-ndjson"})
    assert again.status_code == 200 and '"replayed": true' in again.text
    rows = service_db("SELECT outcome, pin, details FROM audit_event WHERE action = 'pin.issue' "
                      "AND details->'registration'->>'number' = $1 ORDER BY id",
                      body["registration"]["number"])
    assert [r["outcome"] for r in rows] == ["issued", "replayed"]
    assert rows[0]["pin"] == rows[1]["pin"] == single.json()["pin"]
    assert rows[0]["details"] == {k: v for k, v in rows[1]["details"].items() if k != "line"}
