"""`idservice quality report` (contract 9; issue 11 item 3): each kind of finding counted per
province with example PINs, JSON and a rich table, read as the auditor role, audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.fixtures_db import cli_env
from tests.support.server import ServerThread

DbFn = Callable[..., list]


def _cli(settings: Settings, database: DatabaseTarget, *args: str
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_env(settings), "COLUMNS": "200"}
    if settings.database_url and database.auditor_url:
        env["IDSERVICE_AUDITOR_DATABASE_URL"] = database.auditor_url
    return subprocess.run([sys.executable, "-m", "idservice.cli", "quality", "report", *args],
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def _issue(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/pins", json=body)
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def _name() -> str:
    return "Hồ Thị " + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])


def test_quality_report_finds_each_kind_with_examples_and_is_audited(
    settings: Settings, database: DatabaseTarget, server: ServerThread,
    registrar: httpx.Client, officer: httpx.Client, client_token: Callable[..., str],
    service_db: DbFn,
) -> None:
    name = _name()
    first = _issue(registrar, issue_body("052", full_name=name))
    twin_body = issue_body("052", full_name=name)
    twin_body["mother"] = service_db("SELECT record->'mother' AS m FROM person WHERE pin = $1",
                                     first)[0]["m"]
    twin_body["duplicate_override"] = {"reason": "sinh đôi"}
    twin = _issue(registrar, twin_body)  # overridden: the pair (first, twin) is no finding
    # A pair nobody overrode: a correction (which does not check duplicates) makes a record
    # match another one.
    other = _name()
    a = _issue(registrar, issue_body("052", full_name=other, dob="2024-03-01"))
    b_body = issue_body("052", full_name=other, dob="2024-03-02")
    b_body["mother"] = service_db("SELECT record->'mother' AS m FROM person WHERE pin = $1",
                                  a)[0]["m"]
    b = _issue(registrar, b_body)
    assert officer.post(f"/v1/persons/{a}/corrections", json={
        "changes": {"date_of_birth": "2024-03-02"}, "reason": "sai ngày"}).status_code == 200

    young = issue_body("052", full_name=_name(), dob="2024-03-02")
    young["father"] = {"full_name": "Lê Văn Trẻ", "pin": "052215000001", "nationality": "VN"}
    too_young = _issue(registrar, young)  # father born 2015: 9 at the birth
    late = _issue(registrar, issue_body("052", full_name=_name(), dob="2024-01-01",
                                        registered_on="2024-03-10"))
    old = _issue(registrar, issue_body("052", full_name=_name(), dob="1900-05-01",
                                       registered_on="1900-05-03"))
    odd = issue_body("052", full_name=_name())
    odd["mother"] = {"full_name": "Phan Thị Lạ", "pin": "999190000001", "nationality": "VN"}
    malformed = _issue(registrar, odd)
    with server.client(client_token("001")) as ha_noi:
        elsewhere = _issue(ha_noi, issue_body("001", full_name=_name(), dob="2024-01-01",
                                              registered_on="2024-03-10"))

    # Examples come newest issuance first: this test's findings are among the first ten of their
    # kind even when the shared database holds thousands of older ones (in PIN order they were
    # not, and CI lost this test to that).
    result = _cli(settings, database, "--json", "--examples", "10")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"generated_at", "counts", "findings"}
    found = {(f["kind"], tuple(f["pins"])) for f in report["findings"]}
    pins_of = {kind: {p for k, pins in found if k == kind for p in pins} for kind, _ in found}
    assert too_young in pins_of["parent_too_young"]
    assert late in pins_of["late_registration"]
    assert old in pins_of["active_over_120"]
    assert malformed in pins_of["parent_pin_malformed"]
    assert elsewhere in pins_of["late_registration"]
    assert report["counts"]["001"]["late_registration"] >= 1
    assert report["counts"]["052"]["late_registration"] >= 1
    duplicate_pairs = {pins for kind, pins in found if kind == "possible_duplicate"}
    assert tuple(sorted((a, b))) in duplicate_pairs
    assert tuple(sorted((first, twin))) not in duplicate_pairs
    for finding in report["findings"]:
        assert set(finding) == {"kind", "province", "pins", "detail"}

    # --province limits it; the table is for people.
    only = json.loads(_cli(settings, database, "--json", "--province", "001").stdout)
    assert set(only["counts"]) == {"001"}
    table = _cli(settings, database, "--province", "052")
    assert table.returncode == 0, table.stderr
    assert "late registration" in table.stdout and "052" in table.stdout

    events = service_db("SELECT actor_type, details FROM audit_event "
                        "WHERE action = 'quality.report' ORDER BY id")
    assert len(events) >= 3
    assert events[-1]["actor_type"] == "admin"
    assert events[-1]["details"]["province"] == "052"


def test_quality_report_runs_as_the_auditor_role_which_cannot_change_records(
    database: DatabaseTarget,
) -> None:
    """The auditor role reads person records and writes its event, and nothing else."""
    from tests.conftest import run_db

    url = database.auditor_url
    assert url is not None
    assert run_db(url, "SELECT count(*) FROM person")[0][0] >= 0
    for sql in ("UPDATE person SET status = 'active' WHERE false",
                "INSERT INTO registration (province_code, authority, number, body_sha256, pin) "
                "SELECT '052', 'a', 'b', ''::bytea, '052000000000' WHERE false"):
        try:
            run_db(url, sql)
        except Exception as exc:  # asyncpg.InsufficientPrivilegeError
            assert "permission denied" in str(exc)
        else:
            raise AssertionError(f"the auditor role could run: {sql}")
