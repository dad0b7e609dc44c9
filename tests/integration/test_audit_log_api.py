"""The auditor API over real HTTP: events, export, signed checkpoints, proofs that verify against
them, auditor reads audited, and the tree tables closed to the service role (contract 5)."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import time
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from idservice.audit import entry, merkle
from idservice.audit.events import Actor, AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.audit.sequencer import sequence_once
from idservice.audit.signed_note import Checkpoint, NoteVerifier
from idservice.queries import audit as q
from idservice.runtime import DatabaseTarget
from tests.support.bodies import issue_body
from tests.support.fixtures_db import sql_error
from tests.support.server import ServerThread


def flush(server: ServerThread) -> None:
    """Sequence, integrate and checkpoint what is committed now (as the background tasks do)."""
    svc = server.services
    assert svc.audit_integrator is not None
    deadline = time.monotonic() + 10
    # sequence_once returns at once while the background sequencer holds the lock: wait for it.
    while server.call(svc.pool.fetchval(q.COUNT_UNSEQUENCED)):
        assert time.monotonic() < deadline, "events were not sequenced in 10 s"
        server.call(sequence_once(svc.pool))
        time.sleep(0.01)
    server.call(svc.audit_integrator.flush())


@pytest.fixture(scope="module")
def auditor(server: ServerThread, officer_token: Callable[..., str]) -> httpx.Client:
    return server.client(officer_token("*", roles=("auditor",)))


@pytest.fixture(scope="module")
def note_verifier(server: ServerThread) -> NoteVerifier:
    response = httpx.get(f"{server.base_url}/v1/audit/key")  # public: no token
    assert response.status_code == 200
    assert response.text.startswith("-----BEGIN PUBLIC KEY-----")
    return NoteVerifier.from_pem(response.headers["Idservice-Note-Key-Name"], response.content)


def latest(auditor: httpx.Client, verifier: NoteVerifier) -> Checkpoint:
    response = auditor.get("/v1/audit/checkpoint")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return verifier.verify(response.text)


def _b64(hashes: list[str]) -> list[bytes]:
    return [base64.b64decode(h) for h in hashes]


def test_events_from_a_batch_and_reads_are_integrated_and_provable(
    server: ServerThread, registrar: httpx.Client, officer: httpx.Client,
    auditor: httpx.Client, note_verifier: NoteVerifier,
) -> None:
    flush(server)
    before = latest(auditor, note_verifier) if auditor.get(
        "/v1/audit/checkpoint").status_code == 200 else None
    lines = "\n".join(json.dumps(issue_body("052")) for _ in range(40))
    response = registrar.post("/v1/pins:batch", content=lines.encode(),
                              headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200
    pins = [json.loads(line)["pin"] for line in response.text.splitlines()]
    assert len(pins) == 40
    assert officer.get(f"/v1/persons/{pins[0]}", params={"purpose": "check"}).status_code == 200
    flush(server)

    cp = latest(auditor, note_verifier)
    assert cp.origin == note_verifier.name and cp.origin.endswith("/idservice/audit")
    events = auditor.get("/v1/audit/events", params={"pin": pins[0]}).json()["events"]
    issue, read = [e for e in events if e["action"] in ("pin.issue", "person.read")][:2]
    assert issue["pin"] == pins[0] and read["action"] == "person.read"
    assert issue["at"].endswith("Z") and len(issue["at"]) == len("2026-01-01T00:00:00.000Z")
    for event in (issue, read):
        proof = auditor.get("/v1/audit/proofs/inclusion",
                            params={"index": event["index"], "tree_size": cp.size}).json()
        assert proof["leaf_index"] == event["index"] and proof["tree_size"] == cp.size
        merkle.verify_inclusion(event["index"], cp.size, entry.leaf_hash(event),
                                _b64(proof["hashes"]), cp.root)
        # The same event fetched alone is the same leaf.
        assert auditor.get(f"/v1/audit/events/{event['index']}").json() == event
    tampered = {**issue, "outcome": "rejected"}
    with pytest.raises(merkle.InclusionProofError):
        merkle.verify_inclusion(issue["index"], cp.size, entry.leaf_hash(tampered),
                                _b64(auditor.get("/v1/audit/proofs/inclusion", params={
                                    "index": issue["index"], "tree_size": cp.size,
                                }).json()["hashes"]), cp.root)

    if before is not None:
        proof = auditor.get("/v1/audit/proofs/consistency",
                            params={"first": before.size, "second": cp.size}).json()
        merkle.verify_consistency(before.size, cp.size, before.root, cp.root,
                                  _b64(proof["hashes"]))
    notes = auditor.get("/v1/audit/checkpoints").json()["checkpoints"]
    sizes = [note_verifier.verify(n).size for n in notes]
    assert sizes == sorted(sizes) and sizes[-1] == cp.size
    for first in sizes[-4:]:
        proof = auditor.get("/v1/audit/proofs/consistency",
                            params={"first": first, "second": cp.size}).json()
        merkle.verify_consistency(first, cp.size, note_verifier.verify(
            notes[sizes.index(first)]).root, cp.root, _b64(proof["hashes"]))


def test_listing_pages_with_a_cursor_and_filters(
    server: ServerThread, registrar: httpx.Client, auditor: httpx.Client,
) -> None:
    pin = registrar.post("/v1/pins", json=issue_body("052")).json()["pin"]
    flush(server)
    page = auditor.get("/v1/audit/events", params={"limit": 3}).json()
    assert [e["index"] for e in page["events"]] == [0, 1, 2] and page["next"] is not None
    page2 = auditor.get("/v1/audit/events", params={"limit": 3, "after": page["next"]}).json()
    assert [e["index"] for e in page2["events"]] == [3, 4, 5]

    (issued,) = auditor.get("/v1/audit/events", params={"pin": pin, "action": "pin.issue"}
                            ).json()["events"]
    actor = f"{issued['actor']['type']}:{issued['actor']['id']}"
    by_actor = auditor.get("/v1/audit/events", params={"actor": actor, "limit": 1000}).json()
    assert issued in by_actor["events"]
    assert all(e["actor"] == issued["actor"] for e in by_actor["events"])
    window = auditor.get("/v1/audit/events", params={
        "pin": pin, "since": issued["at"], "until": "2999-01-01T00:00:00Z"}).json()["events"]
    assert issued in window
    assert auditor.get("/v1/audit/events", params={
        "pin": pin, "until": issued["at"]}).json()["events"] == []


@pytest.mark.parametrize(("params", "field"), [
    ({"pin": "12345"}, "pin"), ({"since": "yesterday"}, "since"), ({"after": "x"}, "after"),
    ({"until": "2026-01-01T00:00:00"}, "until"), ({"limit": "0"}, "limit"),
])
def test_bad_query_parameters_are_invalid_field(auditor: httpx.Client, params: dict[str, str],
                                                field: str) -> None:
    response = auditor.get("/v1/audit/events", params=params)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_field" and response.json()["field"] == field


def test_unknown_event_and_impossible_proofs(server: ServerThread,
                                             auditor: httpx.Client) -> None:
    assert auditor.get("/v1/audit/events/999999999").json()["code"] == "not_found"
    response = auditor.get("/v1/audit/proofs/inclusion",
                           params={"index": 0, "tree_size": 10**12})
    assert response.status_code == 422 and response.json()["field"] == "tree_size"
    response = auditor.get("/v1/audit/proofs/consistency", params={"first": 5, "second": 2})
    assert response.status_code == 422 and response.json()["field"] == "first"


def test_only_auditors_read_the_log(server: ServerThread, officer: httpx.Client,
                                    registrar: httpx.Client) -> None:
    for client in (officer, registrar):
        for path in ("/v1/audit/events", "/v1/audit/checkpoint", "/v1/audit/export",
                     "/v1/audit/proofs/consistency?first=0&second=0"):
            response = client.get(path)
            assert response.status_code == 403, path
            assert response.json()["code"] == "forbidden"
    assert httpx.get(f"{server.base_url}/v1/audit/events").status_code == 401


def test_auditor_reads_are_audited(server: ServerThread, registrar: httpx.Client,
                                   auditor: httpx.Client,
                                   service_db: Callable[..., list[asyncpg.Record]]) -> None:
    pin = registrar.post("/v1/pins", json=issue_body("052")).json()["pin"]
    assert auditor.get("/v1/audit/events", params={"pin": pin}).status_code == 200
    (row,) = service_db("SELECT actor_type, outcome, details FROM audit_event "
                        "WHERE action = 'audit.read' AND pin = $1", pin)
    assert row["actor_type"] == "operator" and row["outcome"] == "ok"
    assert row["details"]["what"] == "events" and row["details"]["filters"] == {"pin": pin}


def test_export_streams_csv_and_ndjson(server: ServerThread, registrar: httpx.Client,
                                       auditor: httpx.Client) -> None:
    pin = registrar.post("/v1/pins", json=issue_body("052")).json()["pin"]
    flush(server)
    only = {"pin": pin, "action": "pin.issue"}  # not the export's own audit.read events
    ndjson = auditor.get("/v1/audit/export", params={"format": "ndjson", **only})
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in ndjson.text.splitlines()]
    listed = auditor.get("/v1/audit/events", params=only).json()["events"]
    assert events == listed and len(events) == 1
    exported = auditor.get("/v1/audit/export", params={"format": "csv", **only})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [int(r["index"]) for r in rows] == [e["index"] for e in events]
    assert json.loads(rows[0]["details"]) == events[0]["details"]
    everything = auditor.get("/v1/audit/export").text.splitlines()
    assert [json.loads(x)["index"] for x in everything] == list(range(len(everything)))


FORMULAS = ["=HYPERLINK(\"http://x.example\")", "+1+1", "-2+3", "@SUM(A1)"]


async def _record_read(pool: asyncpg.Pool, actor_id: str, pin: str, purpose: str) -> None:
    """An event whose text the API would refuse (tab, CR): written as the service writes."""
    ctx = RequestContext(Actor("client", actor_id), None, None)
    async with pool.acquire() as conn, conn.transaction():
        await record(conn, ctx, [AuditEvent("person.read", "found", pin=pin, purpose=purpose)])


def test_csv_export_escapes_formula_cells_and_is_an_attachment_with_a_bom(
    server: ServerThread, registrar: httpx.Client, officer: httpx.Client,
    auditor: httpx.Client,
) -> None:
    """An officer's purpose is caller-chosen text: in the CSV every cell that a spreadsheet
    would run as a formula gets a leading `'` (contract 7); other cells are unchanged."""
    pin = registrar.post("/v1/pins", json=issue_body("052")).json()["pin"]
    for purpose in [*FORMULAS, "kiểm tra hồ sơ"]:
        read = officer.get(f"/v1/persons/{pin}", params={"purpose": purpose})
        assert read.status_code == 200, read.text
    server.call(_record_read(server.services.pool, "\tclient", pin, "\rcmd"))
    flush(server)
    only = {"pin": pin, "action": "person.read"}
    exported = auditor.get("/v1/audit/export", params={"format": "csv", **only})
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment")
    assert exported.content.startswith(b"\xef\xbb\xbfindex,at,")
    text = exported.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["purpose"] for r in rows] == \
        [f"'{p}" for p in FORMULAS] + ["kiểm tra hồ sơ", "'\rcmd"]
    assert rows[-1]["actor_id"] == "'\tclient"
    assert all(r["pin"] == pin and r["action"] == "person.read" for r in rows)
    ndjson = auditor.get("/v1/audit/export", params={"format": "ndjson", **only})
    assert [json.loads(x)["purpose"] for x in ndjson.text.splitlines()] == \
        [*FORMULAS, "kiểm tra hồ sơ", "\rcmd"]  # the data itself is not altered


TREE_WRITES = [
    "INSERT INTO audit_node (level, idx, hash) VALUES (40, 0, sha256(''::bytea))",
    "UPDATE audit_node SET hash = hash",
    "DELETE FROM audit_node",
    "TRUNCATE audit_node",
    "INSERT INTO audit_tree (size, root, frontier) VALUES (10000000, sha256(''::bytea), '{}')",
    "UPDATE audit_tree SET root = root",
    "DELETE FROM audit_tree",
    "UPDATE audit_checkpoint SET note = note",
    "DELETE FROM audit_checkpoint",
    "TRUNCATE audit_checkpoint",
    "INSERT INTO audit_checkpoint (tree_size, note) VALUES (0, 'x')",
    # The append functions refuse anything but a contiguous extension / a true state.
    "SELECT audit_tree_append(0, 1, sha256(''::bytea), '{}', '{0}', '{0}', "
    "ARRAY[sha256(''::bytea)])",
    "SELECT audit_checkpoint_add(0, 'forged')",
]


@pytest.mark.parametrize("sql", TREE_WRITES)
def test_service_role_cannot_rewrite_the_tree_or_checkpoints(
    server: ServerThread, registrar: httpx.Client, database: DatabaseTarget, sql: str,
) -> None:
    registrar.post("/v1/pins", json=issue_body("052"))
    flush(server)

    error = asyncio.run(sql_error(database.service_url, sql))
    assert isinstance(error, asyncpg.PostgresError), sql
    if not sql.startswith("SELECT"):
        assert isinstance(error, asyncpg.InsufficientPrivilegeError), error
    if "UPDATE" in sql or "DELETE" in sql or "TRUNCATE" in sql:
        assert database.owner_url is not None
        owner_error = asyncio.run(sql_error(database.owner_url, sql))
        assert isinstance(owner_error, asyncpg.InsufficientPrivilegeError)
        assert "append-only" in str(owner_error)
