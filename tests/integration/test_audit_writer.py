"""One writer of audit events (issue 10 item 4): every event reaches `audit_event` through the
SQL function `audit_write_each()` (migration 0072; `audit_write()` calls it with one actor), from
the Python recorder and from `issue_pins()` alike, with its caller-chosen text capped at 4 KiB
(contract 7)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from idservice.audit.events import MAX_CALLER_TEXT
from tests.support.bodies import issue_body
from tests.unit.audit.test_text_cap import caller_text

ROOT = Path(__file__).resolve().parents[2]
_INSERT = re.compile(r"INSERT\s+INTO\s+(public\.)?audit_event\b", re.IGNORECASE)


def test_only_audit_write_each_inserts_audit_events_in_the_database(
    owner_db: Callable[..., list[Any]],
) -> None:
    # The definition as PostgreSQL prints it: `prosrc` is empty for a BEGIN ATOMIC body.
    rows = owner_db("SELECT proname, pg_get_functiondef(p.oid) AS definition FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')")
    assert sorted(r["proname"] for r in rows
                  if _INSERT.search(r["definition"])) == ["audit_write_each"]


def test_no_service_code_inserts_audit_events_itself() -> None:
    found = [str(path.relative_to(ROOT)) for path in (ROOT / "idservice").rglob("*.py")
             if _INSERT.search(path.read_text("utf-8"))]
    assert found == []


def test_fast_path_and_recorder_write_the_same_issue_event(
    registrar: httpx.Client, service_db: Callable[..., list[Any]],
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


def test_no_event_carries_more_than_4_kib_of_caller_text(
    registrar: httpx.Client, officer: httpx.Client, service_db: Callable[..., list[Any]],
) -> None:
    """Contract 7: a correction with a long reason and twenty long other names is recorded with
    its text cut to 4 KiB (marked), while the history row keeps all of it."""
    pin = registrar.post("/v1/pins", json=issue_body("052")).json()["pin"]
    reason = "\U00020000" * 1000  # a CJK character of 4 bytes in UTF-8
    names = [f"{i:02d}" + "Đ" * 198 for i in range(20)]
    rid = "r" * 64
    response = officer.post(f"/v1/persons/{pin}/corrections", headers={"X-Request-ID": rid},
                            json={"changes": {"other_names": names}, "reason": reason})
    assert response.status_code == 200, response.text
    [event] = service_db("SELECT actor_id, request_id, source_ip, purpose, details "
                         "FROM audit_event WHERE request_id = $1", rid)
    text = caller_text(event["purpose"], event["details"], event["actor_id"],
                       event["request_id"], event["source_ip"])
    assert text <= MAX_CALLER_TEXT
    assert event["details"]["reason"].endswith(" bytes cut]")
    [history] = service_db("SELECT reason, changes FROM person_history WHERE pin = $1", pin)
    assert history["reason"] == reason and history["changes"]["other_names"] == names
