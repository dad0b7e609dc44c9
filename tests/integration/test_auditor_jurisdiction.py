"""Auditor jurisdiction (contract 7; issue 9 item 8): an auditor for province 052 sees, in lists,
by index and in exports, only events of 052 PINs and events without a PIN; another province's
PIN or event is `403`; checkpoints and proofs stay available. A `*` auditor sees everything.

Real HTTP against the session server: PINs issued in 052 and 079 by registrars, read back by
auditors whose tokens the server's own issuer minted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.integration.test_audit_log_api import flush
from tests.support.bodies import issue_body
from tests.support.server import ServerThread


@pytest.fixture(scope="module")
def issued(server: ServerThread, client_token: Callable[..., str]) -> dict[str, Any]:
    """One PIN in 052, one in 079, both sequenced; the time before them."""
    since = datetime.now(UTC).isoformat()
    pins = {}
    for province in ("052", "079"):
        with server.client(client_token(province)) as registrar:
            response = registrar.post("/v1/pins", json=issue_body(province))
            assert response.status_code == 201, response.text
            pins[province] = response.json()["pin"]
    flush(server)
    return {"since": since, **pins}


def _auditor(server: ServerThread, officer_token: Callable[..., str],
             jurisdiction: str) -> httpx.Client:
    return server.client(officer_token(jurisdiction, roles=("auditor",)))


def _events(auditor: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = auditor.get("/v1/audit/events", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def _index_of(star: httpx.Client, pin: str) -> int:
    (event,) = _events(star, pin=pin, action="pin.issue")
    return int(event["index"])


def test_province_auditor_lists_only_its_pins_and_pinless_events(
        server: ServerThread, officer_token: Callable[..., str], issued: dict[str, Any]) -> None:
    with _auditor(server, officer_token, "052") as auditor:
        events = _events(auditor, since=issued["since"])
    pins = {e["pin"] for e in events}
    assert issued["052"] in pins and issued["079"] not in pins
    assert all(e["pin"] is None or e["pin"].startswith("052") for e in events)
    assert any(e["pin"] is None for e in events)  # the registrars' logins
    with _auditor(server, officer_token, "*") as star:
        assert {issued["052"], issued["079"]} <= {e["pin"] for e in _events(
            star, since=issued["since"])}


def test_other_provinces_pin_filter_forbidden(server: ServerThread,
                                              officer_token: Callable[..., str],
                                              issued: dict[str, Any]) -> None:
    with _auditor(server, officer_token, "052") as auditor:
        for path in ("/v1/audit/events", "/v1/audit/export"):
            response = auditor.get(path, params={"pin": issued["079"]})
            assert response.status_code == 403, response.text
            assert response.json()["code"] == "forbidden" and response.json()["field"] == "pin"
        assert _events(auditor, pin=issued["052"])


def test_other_provinces_event_by_index_forbidden(server: ServerThread,
                                                  officer_token: Callable[..., str],
                                                  issued: dict[str, Any]) -> None:
    with _auditor(server, officer_token, "*") as star:
        other, own = _index_of(star, issued["079"]), _index_of(star, issued["052"])
    with _auditor(server, officer_token, "052") as auditor:
        refused = auditor.get(f"/v1/audit/events/{other}")
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert auditor.get(f"/v1/audit/events/{own}").json()["pin"] == issued["052"]
        # proofs and checkpoints reveal no record: available for any index
        proof = auditor.get("/v1/audit/proofs/inclusion", params={"index": other})
        assert proof.status_code == 200, proof.text
        assert auditor.get("/v1/audit/checkpoint").status_code == 200


def test_province_auditor_export_holds_only_its_pins(server: ServerThread,
                                                     officer_token: Callable[..., str],
                                                     issued: dict[str, Any]) -> None:
    with _auditor(server, officer_token, "052") as auditor:
        response = auditor.get("/v1/audit/export", params={"format": "ndjson",
                                                           "since": issued["since"]})
    assert response.status_code == 200, response.text
    pins = [json.loads(line)["pin"] for line in response.text.splitlines()]
    assert issued["052"] in pins
    assert all(pin is None or pin.startswith("052") for pin in pins)


def test_the_refused_read_is_audited(server: ServerThread, officer_token: Callable[..., str],
                                     issued: dict[str, Any],
                                     service_db: Callable[..., list]) -> None:
    with _auditor(server, officer_token, "*") as star:
        other = _index_of(star, issued["079"])
    with _auditor(server, officer_token, "052") as auditor:
        request_id = f"jur-{time.time_ns()}"
        auditor.get(f"/v1/audit/events/{other}", headers={"X-Request-Id": request_id})
    rows = service_db("SELECT action, outcome FROM audit_event WHERE request_id = $1",
                      request_id)
    assert [tuple(r) for r in rows] == [("audit.read", "forbidden")]
