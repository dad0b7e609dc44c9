"""Duplicate check at issuance (contract 9; issue 11 item 2): single and batch, on folded
names, `possible_duplicate` with candidates in the registrar's jurisdiction, the override
audited, and the check an index lookup (EXPLAIN)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from idservice.db.pool import connect
from idservice.persons.duplicates import same_person
from idservice.persons.issuance import duplicates_in_transaction
from idservice.persons.models import IssueRequest
from idservice.persons.rows import PersonRow
from idservice.persons.views import canonical_json
from idservice.queries import persons as q
from idservice.runtime import DatabaseTarget
from tests.support.bad_input import assert_problem, request_id
from tests.support.bodies import issue_body
from tests.support.lock_wait import waits_then_runs
from tests.support.rolled_back import rolled_back
from tests.support.server import ServerThread

DbFn = Callable[..., list]
NDJSON = {"Content-Type": "application/x-ndjson"}


def _name() -> str:
    """A child's name no other test uses (letters only)."""
    tag = "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:8])
    return f"Đặng Thị Ngọc {tag.capitalize()}"


def _body(name: str, *, province: str = "052", mother: Any = "same", **kw: Any) -> dict:
    body = issue_body(province, full_name=name, **kw)
    if mother == "same":
        body["mother"] = {"full_name": "Trần Thị Lan", "pin": None, "nationality": "VN"}
    else:
        body["mother"] = mother
    return body


def _issue(client: httpx.Client, body: dict) -> str:
    response = client.post("/v1/pins", json=body)
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def test_same_child_under_another_key_is_409_possible_duplicate_audited(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    name = _name()
    first = _issue(registrar, _body(name))
    rid = request_id()
    again = registrar.post("/v1/pins", json=_body(name), headers={"X-Request-ID": rid})
    body = assert_problem(again, 409, "possible_duplicate", field="child")
    assert body["details"] == {"candidates": [first], "other_candidates": 0}
    [event] = service_db("SELECT action, outcome, pin, details FROM audit_event "
                         "WHERE request_id = $1", rid)
    assert (event["action"], event["outcome"]) == ("pin.issue", "refused")
    assert event["details"]["code"] == "possible_duplicate"
    assert event["details"]["candidates"] == [first]


def test_folded_names_match_diacritics_d_case_and_spacing(registrar: httpx.Client) -> None:
    name = _name()
    first = _issue(registrar, _body(name))
    folded = "  " + name.upper().replace("Đ", "D").replace("Ặ", "A").replace("Ị", "I") \
        .replace("Ọ", "O").replace(" ", "   ") + " "
    variant = _body(folded, mother={"full_name": "TRAN  thi lan", "pin": None,
                                    "nationality": "VN"})
    body = assert_problem(registrar.post("/v1/pins", json=variant), 409, "possible_duplicate")
    assert body["details"]["candidates"] == [first]


@pytest.mark.parametrize(("first_mother", "second_mother", "duplicate"), [
    ({"full_name": "Lê Thị Hoa", "pin": "052190000001"},
     {"full_name": "Lê Thị Mai", "pin": "052190000001"}, True),   # equal PINs decide
    ({"full_name": "Lê Thị Hoa", "pin": "052190000001"},
     {"full_name": "Lê Thị Hoa", "pin": "052190000002"}, False),  # different PINs decide
    ({"full_name": "Lê Thị Hoa", "pin": "052190000001"},
     {"full_name": "le thi hoa", "pin": None}, True),             # one PIN: names decide
    ({"full_name": "Lê Thị Hoa", "pin": None},
     {"full_name": "Lê Thị Mai", "pin": None}, False),
    (None, None, True),                                            # both without a mother
    (None, {"full_name": "Lê Thị Hoa", "pin": None}, False),
], ids=["same_pin", "other_pin", "pin_and_name", "other_name", "no_mothers", "one_mother"])
def test_mother_rule(registrar: httpx.Client, first_mother: Any, second_mother: Any,
                     duplicate: bool) -> None:
    name = _name()
    _issue(registrar, _body(name, mother=first_mother))
    second = registrar.post("/v1/pins", json=_body(name, mother=second_mother))
    if duplicate:
        assert_problem(second, 409, "possible_duplicate")
    else:
        assert second.status_code == 201, second.text
    # The batch path's in-chunk rule agrees with the SQL rule.
    rows = [PersonRow.of(r, canonical_json(r.record())) for r in (
        IssueRequest.model_validate(_body(name, mother=m)) for m in (first_mother,
                                                                       second_mother))]
    assert same_person(rows[0], rows[1]) is duplicate


def test_other_sex_or_birth_date_is_not_a_duplicate(registrar: httpx.Client) -> None:
    name = _name()
    _issue(registrar, _body(name))
    assert registrar.post("/v1/pins", json=_body(name, sex="M")).status_code == 201
    assert registrar.post("/v1/pins", json=_body(name, dob="2024-03-03")).status_code == 201


def test_override_with_reason_issues_and_writes_pin_duplicate_override(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    name = _name()
    first = _issue(registrar, _body(name))
    twin = _body(name)
    twin["duplicate_override"] = {"reason": "sinh đôi, cùng tên theo giấy chứng sinh"}
    rid = request_id()
    response = registrar.post("/v1/pins", json=twin, headers={"X-Request-ID": rid})
    assert response.status_code == 201, response.text
    pin = response.json()["pin"]
    events = {r["action"]: r for r in service_db(
        "SELECT action, outcome, pin, details FROM audit_event WHERE request_id = $1", rid)}
    assert set(events) == {"pin.issue", "pin.duplicate_override"}
    override = events["pin.duplicate_override"]
    assert override["pin"] == pin
    assert override["details"]["reason"] == "sinh đôi, cùng tên theo giấy chứng sinh"
    assert override["details"]["candidates"] == [first]
    # A replay of the overridden registration, with or without the override: the same PIN.
    del twin["duplicate_override"]
    replay = registrar.post("/v1/pins", json=twin)
    assert replay.status_code == 200 and replay.json()["pin"] == pin
    # An override without a reason, or with a blank one, is refused.
    twin2 = _body(name)
    twin2["duplicate_override"] = {}
    assert_problem(registrar.post("/v1/pins", json=twin2), 400, "malformed_request",
                   field="duplicate_override.reason")
    twin2["duplicate_override"] = {"reason": "  "}
    assert_problem(registrar.post("/v1/pins", json=twin2), 422, "invalid_field",
                   field="duplicate_override.reason")


def test_candidates_outside_the_jurisdiction_are_only_counted(
    registrar: httpx.Client, client_token: Callable[..., str], server: ServerThread,
) -> None:
    name = _name()
    _issue(registrar, _body(name))
    with server.client(client_token("001")) as ha_noi:
        body = assert_problem(ha_noi.post("/v1/pins", json=_body(name, province="001")), 409,
                              "possible_duplicate")
    assert body["details"] == {"candidates": [], "other_candidates": 1}


def test_deceased_or_cancelled_persons_are_not_duplicates(
    registrar: httpx.Client, officer: httpx.Client,
) -> None:
    dead, moved = _name(), _name()
    pin = _issue(registrar, _body(dead))
    death = {"registration": {"authority": "UBND", "number": uuid.uuid4().hex,
                              "registered_on": "2025-01-02", "province_code": "052"},
             "date_of_death": "2025-01-01", "place_of_death": "Quy Nhơn"}
    assert registrar.post(f"/v1/persons/{pin}/death", json=death).status_code == 200
    assert registrar.post("/v1/pins", json=_body(dead)).status_code == 201
    old = _issue(registrar, _body(moved, sex="M"))
    assert officer.post(f"/v1/persons/{old}/corrections",
                        json={"changes": {"sex": "F"}, "reason": "x"}).status_code == 200
    # The replacement is active (F) and matches; the cancelled M record does not.
    assert registrar.post("/v1/pins", json=_body(moved, sex="M")).status_code == 201


def test_batch_lines_are_checked_against_stored_and_earlier_lines(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    stored, twins, lone = _name(), _name(), _name()
    first = _issue(registrar, _body(stored))
    override = _body(stored)
    override["duplicate_override"] = {"reason": "khác người"}
    bodies = [_body(stored), _body(twins), _body(twins), override, _body(lone)]
    rid = request_id()
    response = registrar.post("/v1/pins:batch", headers={**NDJSON, "X-Request-ID": rid},
                              content=b"".join(json.dumps(b).encode() + b"\n" for b in bodies))
    assert response.status_code == 200
    results = [json.loads(line) for line in response.text.splitlines()]
    assert results[0]["error"]["code"] == "possible_duplicate"
    assert results[0]["error"]["details"] == {"candidates": [first], "other_candidates": 0}
    assert "pin" in results[1]
    assert results[2]["error"]["code"] == "possible_duplicate"
    assert results[2]["error"]["details"]["candidates"] == [results[1]["pin"]]
    assert "pin" in results[3] and "pin" in results[4]
    [override_event] = service_db("SELECT pin, details FROM audit_event WHERE request_id = $1 "
                                  "AND action = 'pin.duplicate_override'", rid)
    assert override_event["pin"] == results[3]["pin"]
    assert override_event["details"]["candidates"] == [first]
    assert override_event["details"]["line"] == 4


def test_duplicate_check_is_an_index_lookup(database: DatabaseTarget) -> None:
    """EXPLAIN of the check (`person_duplicates()`, which issue_pin() and the batch call, is
    inlined): an index scan on person_name_dob, no sequential scan of person. Planned on a
    table of 50,000 more persons with fresh statistics (ANALYZE), all in a transaction that is
    rolled back, so the plan is the one a real registry gets."""
    body = _body(_name())
    req = IssueRequest.model_validate(body)
    row = PersonRow.of(req, canonical_json(req.record()))

    async def main(conn: asyncpg.Connection) -> str:
        await conn.execute("""
            INSERT INTO person (pin, registration_authority, registration_number,
                                registered_on, province_code, full_name, name_folded,
                                sex, date_of_birth, record, mother_name_folded)
            SELECT '999' || lpad(i::text, 9, '0'), 'bench', i::text, '2024-01-01',
                   '052', 'n' || i, 'n' || (i % 20000), 'F',
                   date '2000-01-01' + (i % 3000), '{}', 'm'
              FROM generate_series(1, 50000) i""")
        await conn.execute("ANALYZE person")
        rows = await conn.fetch(q.EXPLAIN_DUPLICATES, row.composite())
        return "\n".join(r[0] for r in rows)

    assert database.owner_url is not None
    plan = asyncio.run(rolled_back(database.owner_url, main))
    assert "person_name_dob" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_chunk_check_answers_each_row_and_reads_rows_without_subscripts(
        database: DatabaseTarget) -> None:
    """The chunk form of the check (`duplicates_in_transaction`, the batch's one statement for
    all its rows): each row gets its own matches, at its own position, and its function takes
    the rows from unnest(), not by `p_rows[i]`, which walks the array from its start for every row
    (quadratic in the chunk size: the statement took 2x as long at 500 rows, 4-6x at 2,000)."""
    rows = [PersonRow.of(r, canonical_json(r.record())) for r in (
        IssueRequest.model_validate(_body(_name())) for _ in range(6))]

    async def main(conn: asyncpg.Connection) -> tuple[list[list[str]], str]:
        for pin, row in (("999000000002", rows[1]), ("999000000005", rows[4]),
                         ("999000000006", rows[4])):
            await conn.execute("""
                INSERT INTO person (pin, registration_authority, registration_number,
                                    registered_on, province_code, full_name,
                                    name_folded, sex, date_of_birth, record,
                                    mother_pin, mother_name_folded)
                VALUES ($1, 'test', $1, '2024-01-01', '052', $2, $3, $4, $5, '{}', $6,
                        $7)""", pin, row.full_name, row.name_folded, row.sex,
                               row.date_of_birth, row.mother_pin, row.mother_name_folded)
        found = await duplicates_in_transaction(conn, rows)
        body = await conn.fetchval(
            "SELECT prosrc FROM pg_proc WHERE proname = 'person_duplicates_of'")
        return found, body

    assert database.owner_url is not None
    found, body = asyncio.run(rolled_back(database.owner_url, main))
    assert found == [[], ["999000000002"], [], [], ["999000000005", "999000000006"], []]
    # The chunk's statement is person_duplicates_of() (migrations/0066): its rows come from
    # unnest(), never by subscript (test_duplicate_check_is_an_index_lookup shows the lookup
    # itself on a registry-sized table)
    assert "unnest(p_rows)" in body and "p_rows[" not in body, body


def test_a_chunk_waits_for_the_locks_then_finds_what_their_holder_committed(
        database: DatabaseTarget) -> None:
    """Two transactions issuing the same child (`duplicates_in_transaction`, as two batch
    chunks do): the second waits on the duplicate lock the first holds, and once the first
    commits its person, finds it. Its look-up must read after the wait: the lock and the
    look-up are one call (migrations/0068, one statement sent), and a look-up in the same SQL
    statement as the locks would read with a snapshot from before the wait and find nothing.
    The person committed here stays (persons are never deleted); its name is this test's own."""
    req = IssueRequest.model_validate(_body(_name()))
    row = PersonRow.of(req, canonical_json(req.record()))

    async def main() -> tuple[list[list[str]], list[list[str]], str, str]:
        first = await connect(database.service_url)
        second = await connect(database.service_url)
        try:
            tx1 = first.transaction()
            await tx1.start()
            before = await duplicates_in_transaction(first, [row])
            [inserted] = await first.fetch(q.PERSON_INSERT, [row.prefix],
                                           [uuid.uuid4().int % 1_000_000], [row.composite()],
                                           1000)
            state, after = await waits_then_runs(
                first, tx1, second, lambda: duplicates_in_transaction(second, [row]))
            return before, after, state, inserted["pin"]
        finally:
            await first.close()
            await second.close()

    before, after, state, pin = asyncio.run(main())
    assert before == [[]]
    assert state == "Lock"
    assert after == [[pin]]
