"""Group commit (issue 16; db/group_commit.py): single issuances coalesced into one statement
(persons/coalesce.py, migration 0059), PIN verifications into one count-and-read statement
and one events statement (persons/verification.py), and officer logins' officer_login()
statements into one (auth/login_group.py): the same answers as one request at a time, on real
PostgreSQL.

The requests are sent as the API sends them (`issuance.issue`, `access.verify`, which the
routes call), from one event loop like one worker's, with a coalescer that sends one group at
a time: requests started together then form one group (the coalescer starts a group at the end
of the loop's turn). Each test first checks that its requests really were one group: their
events share one transaction id (audit_event.txid), which a request alone never does, or the
coalescer's counters say so.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from idservice.api.problems import DB_UNAVAILABLE
from idservice.audit.events import RequestContext
from idservice.auth.login_group import LoginArgs, LoginCoalescer, login_alone
from idservice.auth.principal import Principal
from idservice.db.embedded import EmbeddedPostgres
from idservice.db.migrate import migrate
from idservice.db.pool import connect, create_pool
from idservice.db.roles import ensure_database, url_for
from idservice.errors import PossibleDuplicate, RateLimited, RegistrationConflict
from idservice.integrations import claims
from idservice.persons import access, issuance
from idservice.persons.coalesce import IssueCoalescer
from idservice.persons.context import PersonsContext
from idservice.persons.models import IssueRequest, VerifyRequest
from idservice.persons.verification import VerifyCoalescer
from idservice.runtime import DatabaseTarget
from tests.conftest import run_db
from tests.support.bodies import issue_body

DbFn = Callable[..., list[asyncpg.Record]]

REGISTRAR = Principal(kind="client", id="coalesce-registrar", roles=frozenset({"registrar"}),
                      jurisdiction="052", token_id="coalesce-test", expires_at=2**31 - 1)


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _name() -> str:
    """A child's name no other test uses (letters only: the duplicate rule folds names)."""
    tag = "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:8])
    return f"Lê Thị Thu {tag.capitalize()}"


def _body(number: str, full_name: str | None = None) -> dict[str, Any]:
    body = issue_body("052", number=number, full_name=full_name or _name())
    # The mother as the duplicate rule compares her whatever the registration number.
    body["mother"] = {"full_name": "Trần Thị Lan", "pin": None, "nationality": "VN"}
    return body


async def _issue_together(
    ctx: PersonsContext, bodies: list[dict[str, Any]], request_ids: list[str],
) -> list[issuance.IssueOutcome | BaseException]:
    """Every body issued at once, in list order, each with its own request id."""
    return await asyncio.gather(*(
        issuance.issue(ctx, REGISTRAR, RequestContext(REGISTRAR.actor, rid, "127.0.0.1"),
                       IssueRequest.model_validate(body))
        for body, rid in zip(bodies, request_ids, strict=True)), return_exceptions=True)


async def _with_context(url: str, run: Callable[[PersonsContext, IssueCoalescer], Any]) -> Any:
    pool = await create_pool(url, min_size=1, max_size=12)
    coalescer = IssueCoalescer(pool, max_group=64, in_flight=1)
    try:
        return await run(PersonsContext(pool=pool, coalescer=coalescer), coalescer)
    finally:
        await coalescer.close()
        await pool.close()


def _issue_in_one_group(url: str, bodies: list[dict[str, Any]],
                        request_ids: list[str]) -> list[Any]:
    """`_issue_together`'s results, after checking that the requests really were one group
    that no member had to leave (no retry alone)."""
    async def run(ctx: PersonsContext, coalescer: IssueCoalescer) -> list[Any]:
        results = await _issue_together(ctx, bodies, request_ids)
        assert (coalescer.groups, coalescer.members, coalescer.retried) == (1, len(bodies), 0)
        return results

    return list(asyncio.run(_with_context(url, run)))


def _txids(db: DbFn, request_ids: list[str], outcomes: tuple[str, ...]) -> set[int]:
    rows = db("SELECT txid::text::bigint AS t FROM audit_event WHERE request_id = ANY($1) "
              "AND action = 'pin.issue' AND outcome = ANY($2)", request_ids, list(outcomes))
    return {r["t"] for r in rows}


def test_concurrent_duplicates_in_one_group_one_pin_and_409s(
    database: DatabaseTarget, service_db: DbFn,
) -> None:
    """Same registration and body three times -> one PIN (201, then replays); the same
    registration with another body -> registration_conflict; the same child under another
    registration -> possible_duplicate; all of it inside one group."""
    tag = _tag()
    name = _name()
    same = _body(f"CO-SAME-{tag}", full_name=name)
    other_body = _body(f"CO-SAME-{tag}", full_name=_name())
    same_child = _body(f"CO-CHILD-{tag}", full_name=name)
    plain = [_body(f"CO-PLAIN-{tag}-{i}") for i in range(3)]
    bodies = [same, same, plain[0], other_body, same, plain[1], same_child, plain[2]]
    rids = [f"co-dup-{tag}-{i}" for i in range(len(bodies))]

    results = _issue_in_one_group(database.service_url, bodies, rids)
    first, replay1, p0, conflict, replay2, p1, duplicate, p2 = results
    assert isinstance(first, issuance.IssueOutcome) and first.created
    for replay in (replay1, replay2):
        # Answered from the group's pending registration (migration 0072) as from the table.
        assert isinstance(replay, issuance.IssueOutcome)
        assert (replay.pin, replay.created) == (first.pin, False)
        assert (replay.status, replay.issued_at, replay.registration) == (
            first.status, first.issued_at, first.registration)
    assert isinstance(conflict, RegistrationConflict)
    assert (conflict.status, conflict.code) == (409, "registration_conflict")
    assert isinstance(duplicate, PossibleDuplicate)
    assert (duplicate.status, duplicate.code) == (409, "possible_duplicate")
    assert duplicate.extra["details"]["candidates"] == [first.pin]
    for plain_result in (p0, p1, p2):
        assert isinstance(plain_result, issuance.IssueOutcome) and plain_result.created
    # One group: every issued and replayed event in one transaction.
    assert len(_txids(service_db, rids, ("issued", "replayed"))) == 1
    persons = service_db("SELECT pin FROM person WHERE registration_number = $1",
                         f"CO-SAME-{tag}")
    assert [p["pin"] for p in persons] == [first.pin]
    refused = service_db("SELECT request_id, details->>'code' AS code FROM audit_event "
                         "WHERE request_id = ANY($1) AND outcome = 'refused' "
                         "ORDER BY request_id", rids)
    assert [(r["request_id"], r["code"]) for r in refused] == [
        (rids[3], "registration_conflict"), (rids[6], "possible_duplicate")]


@pytest.fixture
def statement_rows(owner_ddl: Callable[[str], None],
                   owner_db: DbFn) -> Iterator[Callable[[str], list[str]]]:
    """Rows per INSERT statement into `registration` and `audit_event` whose registration
    number (or request id) starts with a given tag (`CO-SET-` and 10 characters), in statement
    order: statement-level triggers of this test record each statement's count."""
    owner_ddl("CREATE TABLE group_test_statements (id bigserial, tbl text, tag text, n int)")
    owner_ddl("""
        CREATE FUNCTION group_test_count() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = public AS $$
        BEGIN
          IF TG_TABLE_NAME = 'registration' THEN
            INSERT INTO group_test_statements (tbl, tag, n)
            SELECT 'registration', left(number, 17), count(*) FROM new_rows
             WHERE number LIKE 'CO-SET-%' GROUP BY 2;
          ELSE
            INSERT INTO group_test_statements (tbl, tag, n)
            SELECT 'audit_event', left(request_id, 17), count(*) FROM new_rows
             WHERE request_id LIKE 'CO-SET-%' GROUP BY 2;
          END IF;
          RETURN NULL;
        END $$""")
    for table in ("registration", "audit_event"):
        owner_ddl(f"CREATE TRIGGER group_test_count AFTER INSERT ON {table} REFERENCING "
                  f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION group_test_count()")

    def counts(tag: str) -> list[str]:
        rows = owner_db("SELECT tbl, n FROM group_test_statements WHERE tag = $1 ORDER BY id",
                        tag)
        return [f"{r['tbl']} {r['n']}" for r in rows]

    try:
        yield counts
    finally:
        for table in ("registration", "audit_event"):
            owner_ddl(f"DROP TRIGGER group_test_count ON {table}")
        owner_ddl("DROP FUNCTION group_test_count()")
        owner_ddl("DROP TABLE group_test_statements")


def test_a_group_writes_its_registrations_and_events_in_one_statement_each(
    database: DatabaseTarget, statement_rows: Callable[[str], list[str]],
) -> None:
    """Migration 0072: the registrations a group issues and the events of all its members are
    written at the end of the group, one INSERT each (one liveBirth trigger call), not one
    per member; a refused member adds neither."""
    tag = f"CO-SET-{_tag()}"
    name = _name()
    bodies = [_body(f"{tag}-{i}", full_name=name if i == 0 else None) for i in range(5)]
    bodies.append(_body(f"{tag}-dup", full_name=name))  # possible_duplicate: refused
    bodies.append(bodies[1])  # replayed
    rids = [f"{tag}-{i}" for i in range(len(bodies))]

    results = _issue_in_one_group(database.service_url, bodies, rids)
    assert [type(r).__name__ for r in results] == ["IssueOutcome"] * 5 + [
        "PossibleDuplicate", "IssueOutcome"]
    # The 5 registrations in one statement; the 5 issued and 1 replayed events in one; then
    # the refusal, which the service writes after the group (as a request alone did too).
    assert statement_rows(tag) == ["registration 5", "audit_event 6", "audit_event 1"]


async def _issue_keyed_together(
    ctx: PersonsContext, calls: list[tuple[str | None, dict[str, Any]]], request_ids: list[str],
) -> list[issuance.IssueOutcome | BaseException]:
    """Every (OSIA transactionId or None, body) issued at once, in list order, as
    `uin.generate_uin` issues a keyed one (`claims.issue_keyed`)."""
    def one(key: str | None, body: dict[str, Any], rid: str) -> Any:
        rctx = RequestContext(REGISTRAR.actor, rid, "127.0.0.1")
        req = IssueRequest.model_validate(body)
        if key is None:
            return issuance.issue(ctx, REGISTRAR, rctx, req)
        return claims.issue_keyed(ctx, REGISTRAR, rctx, "osia", SCOPE, key, req)
    return list(await asyncio.gather(*(one(key, body, rid) for (key, body), rid
                                       in zip(calls, request_ids, strict=True)),
                                     return_exceptions=True))


SCOPE = f"client:{REGISTRAR.id}"


def test_keyed_requests_join_the_group_with_the_claims_outcomes(
    database: DatabaseTarget, service_db: DbFn,
) -> None:
    """OSIA requests (an external key, migration 0060) in one group with plain ones: the same
    key and body twice -> one PIN, then a replay; the same key with another registration ->
    held (nothing written); a key whose issuance is refused (possible duplicate) is released,
    so a corrected request may use it; a plain request beside them is issued."""
    tag = _tag()
    name = _name()
    first = _body(f"CO-KEY-{tag}-1", full_name=name)
    other = _body(f"CO-KEY-{tag}-2")
    same_child = _body(f"CO-KEY-{tag}-3", full_name=name)
    plain = _body(f"CO-KEY-{tag}-4")
    k1, k2 = f"tx-{tag}-1", f"tx-{tag}-2"
    calls: list[tuple[str | None, dict[str, Any]]] = [
        (k1, first), (k1, first), (k1, other), (k2, same_child), (None, plain)]
    rids = [f"co-key-{tag}-{i}" for i in range(len(calls))]

    async def run(ctx: PersonsContext, coalescer: IssueCoalescer) -> list[Any]:
        results = await _issue_keyed_together(ctx, calls, rids)
        assert (coalescer.groups, coalescer.members, coalescer.retried) == (1, 5, 0)
        # k2 was released: a corrected request (another child) may use it now.
        corrected = _body(f"CO-KEY-{tag}-3")
        results.append(await claims.issue_keyed(
            ctx, REGISTRAR, RequestContext(REGISTRAR.actor, f"co-key-{tag}-5", "127.0.0.1"),
            "osia", SCOPE, k2, IssueRequest.model_validate(corrected)))
        return results

    results = asyncio.run(_with_context(database.service_url, run))
    issued, replay, held, duplicate, plain_result, corrected = results
    assert isinstance(issued, issuance.IssueOutcome) and issued.created
    assert isinstance(replay, issuance.IssueOutcome)
    assert (replay.pin, replay.created) == (issued.pin, False)
    assert isinstance(held, issuance.ExternalKeyHeld)
    assert isinstance(duplicate, PossibleDuplicate)
    assert duplicate.extra["details"]["candidates"] == [issued.pin]
    assert isinstance(plain_result, issuance.IssueOutcome) and plain_result.created
    assert isinstance(corrected, issuance.IssueOutcome) and corrected.created
    assert len(_txids(service_db, rids, ("issued", "replayed"))) == 1  # one group
    assert not service_db("SELECT 1 FROM person WHERE registration_number = $1",
                          f"CO-KEY-{tag}-2")
    keys = service_db("SELECT external_id, number FROM external_registration "
                      "WHERE source = 'osia' AND scope = $1 AND external_id = ANY($2) "
                      "ORDER BY external_id", SCOPE, [k1, k2])
    assert [(k["external_id"], k["number"]) for k in keys] == [
        (k1, f"CO-KEY-{tag}-1"), (k2, f"CO-KEY-{tag}-3")]


@pytest.fixture
def failing_number(owner_ddl: Callable[[str], None]) -> Iterator[str]:
    """A registration number whose insert PostgreSQL refuses with an error no rule of ours
    knows (a trigger of this test): what a bug or a broken row would do."""
    number = f"CO-BOOM-{_tag()}"
    owner_ddl(f"""
        CREATE FUNCTION coalesce_test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.number = '{number}' THEN
            RAISE EXCEPTION 'coalesce test: this row fails';
          END IF;
          RETURN NEW;
        END $$""")
    owner_ddl("CREATE TRIGGER coalesce_test_boom BEFORE INSERT ON registration "
              "FOR EACH ROW EXECUTE FUNCTION coalesce_test_boom()")
    try:
        yield number
    finally:
        owner_ddl("DROP TRIGGER coalesce_test_boom ON registration")
        owner_ddl("DROP FUNCTION coalesce_test_boom()")


def test_one_failing_request_in_a_group_others_commit(
    database: DatabaseTarget, service_db: DbFn, failing_number: str,
) -> None:
    tag = _tag()
    bodies = [_body(f"CO-OK-{tag}-{i}") for i in range(5)]
    bodies.insert(2, _body(failing_number))
    rids = [f"co-fail-{tag}-{i}" for i in range(len(bodies))]

    counts: list[tuple[int, int, int]] = []

    async def run(ctx: PersonsContext, coalescer: IssueCoalescer) -> list[Any]:
        results = await _issue_together(ctx, bodies, rids)
        counts.append((coalescer.groups, coalescer.members, coalescer.retried))
        return results

    results = asyncio.run(_with_context(database.service_url, run))
    failed = results.pop(2)
    assert isinstance(failed, asyncpg.RaiseError)
    assert "this row fails" in str(failed)
    assert all(isinstance(r, issuance.IssueOutcome) and r.created for r in results), results
    committed = service_db("SELECT pin, registration_number FROM person "
                           "WHERE registration_number LIKE $1 ORDER BY registration_number",
                           f"CO-OK-{tag}-%")
    assert [(p["pin"], p["registration_number"]) for p in committed] == [
        (r.pin, b["registration"]["number"])
        for r, b in zip(results, [b for b in bodies if b["registration"]["number"]
                                  != failing_number], strict=True)]
    assert not service_db("SELECT 1 FROM person WHERE registration_number = $1", failing_number)
    events = service_db("SELECT request_id FROM audit_event WHERE request_id = ANY($1) "
                        "AND action = 'pin.issue' AND outcome = 'issued'", rids)
    assert sorted(e["request_id"] for e in events) == sorted(rids[:2] + rids[3:])
    # One group, whose statement failed as a whole; then each member ran alone.
    assert counts == [(1, 6, 6)]


@dataclass
class Cluster:
    pg: EmbeddedPostgres
    superuser: str
    target: DatabaseTarget


@pytest.fixture
def cluster(pg_scratch_dir: Path) -> Iterator[Cluster]:
    """A cluster of this test's own: it is killed."""
    pg = EmbeddedPostgres(pg_scratch_dir)
    superuser = pg.ensure_running()
    urls = asyncio.run(ensure_database(superuser))
    asyncio.run(migrate(urls.owner))
    yield Cluster(pg, superuser,
                  DatabaseTarget(urls.service, urls.owner, urls.auditor, None, urls.admin))
    pg.stop()


async def _execute(url: str, sql: str) -> None:
    conn = await connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _kill_the_waiting(holder: asyncpg.Connection, statement_part: str) -> None:
    """SIGKILL the one backend waiting for the test's advisory lock (it runs a statement
    containing `statement_part`)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = await holder.fetch(
            "SELECT pid, query FROM pg_stat_activity WHERE wait_event = 'advisory'")
        if waiting:
            [(pid, query)] = waiting
            assert statement_part in query, query
            os.kill(pid, signal.SIGKILL)
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the group never reached the held row")


async def _while_killing(holder: asyncpg.Connection, statement_part: str,
                         work: Awaitable[list[Any]]) -> list[Any]:
    """`work`'s results, its group's backend SIGKILLed meanwhile (`_kill_the_waiting`)."""
    working = asyncio.ensure_future(work)
    killing = asyncio.ensure_future(_kill_the_waiting(holder, statement_part))
    both: list[asyncio.Future[Any]] = [working, killing]
    await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
    assert killing.done() and not killing.exception(), working.result()
    return list(await working)


def _every_member_unavailable_no_event(cluster: Cluster, results: list[Any],
                                       request_ids: list[str]) -> None:
    """Every member got the error the API answers 503, and none of their events committed."""
    for result in results:
        assert isinstance(result, DB_UNAVAILABLE), results
    assert _after_recovery(cluster, "SELECT 1 FROM audit_event WHERE request_id = ANY($1)",
                           request_ids) == []


def _after_recovery(cluster: Cluster, sql: str, *args: object) -> list[asyncpg.Record]:
    """`sql` once PostgreSQL has recovered from the kill."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return asyncio.run(_fetch(cluster.target.service_url, sql, *args))
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.embedded_only
@pytest.mark.timeout(120)
def test_database_killed_during_a_group_every_member_unavailable_none_committed(
    cluster: Cluster,
) -> None:
    """The group's backend is SIGKILLed while the statement is half done (4 members written,
    the 5th waiting): PostgreSQL restarts from its WAL, and every member is answered with the
    error the API turns into 503 `unavailable`; not one row or event was committed."""
    tag = _tag()
    numbers = [f"CO-KILL-{tag}-{i}" for i in range(4)] + [f"CO-HOLD-{tag}"]
    bodies = [_body(n) for n in numbers]
    rids = [f"co-kill-{tag}-{i}" for i in range(len(bodies))]
    asyncio.run(_execute(cluster.target.owner_url or "", """
        CREATE FUNCTION coalesce_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.number LIKE 'CO-HOLD-%' THEN PERFORM pg_advisory_xact_lock(7716); END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER coalesce_test_hold BEFORE INSERT ON registration
          FOR EACH ROW EXECUTE FUNCTION coalesce_test_hold();"""))

    async def main() -> list[Any]:
        # In the service's database: advisory locks are per database.
        holder = await connect(url_for(cluster.superuser, database="idservice"))
        await holder.execute("SELECT pg_advisory_lock(7716)")

        async def run(ctx: PersonsContext, coalescer: IssueCoalescer) -> list[Any]:
            # The group, not a request alone.
            results = await _while_killing(holder, "issue_pins",
                                           _issue_together(ctx, bodies, rids))
            assert (coalescer.groups, coalescer.members, coalescer.retried) == (1, 5, 0)
            return results

        try:
            return list(await _with_context(cluster.target.service_url, run))
        finally:
            holder.terminate()

    _every_member_unavailable_no_event(cluster, asyncio.run(main()), rids)
    assert _after_recovery(
        cluster, "SELECT registration_number FROM person WHERE registration_number = ANY($1)",
        numbers) == []


# -- PIN verifications (persons/verification.py) ----------------------------------------------

def _verifier(tag: str) -> Principal:
    """A caller of its own: its per-minute count starts at zero."""
    return Principal(kind="client", id=f"group-verifier-{tag}",
                     roles=frozenset({"registrar"}), jurisdiction="*", token_id="group-test",
                     expires_at=2**31 - 1)


async def _persons(ctx: PersonsContext, count: int, tag: str) -> list[dict[str, str]]:
    """`count` people issued one by one: their PIN, name and birth date."""
    people = []
    for i in range(count):
        body = _body(f"VG-{tag}-{i}")
        outcome = await issuance.issue(ctx, REGISTRAR, RequestContext(REGISTRAR.actor,
                                                                      f"vg-{tag}-{i}", None),
                                       IssueRequest.model_validate(body))
        people.append({"pin": outcome.pin, "full_name": body["child"]["full_name"],
                       "date_of_birth": body["child"]["date_of_birth"]})
    return people


async def _verify_together(ctx: PersonsContext, asks: list[tuple[Principal, dict[str, str]]],
                           request_ids: list[str], limit: int) -> list[bool | BaseException]:
    """Every (caller, question) verified at once, in list order, as the route does."""
    return await asyncio.gather(*(
        access.verify(ctx, who, RequestContext(who.actor, rid, "127.0.0.1"),
                      VerifyRequest.model_validate(ask), limit=limit)
        for (who, ask), rid in zip(asks, request_ids, strict=True)), return_exceptions=True)


async def _with_verifier(url: str, run: Callable[[PersonsContext, VerifyCoalescer], Any]) -> Any:
    pool = await create_pool(url, min_size=1, max_size=12)
    verifier = VerifyCoalescer(pool, max_group=64, in_flight=1)
    try:
        return await run(PersonsContext(pool=pool, verifier=verifier), verifier)
    finally:
        await verifier.close()
        await pool.close()


def _verify_events(db: DbFn, request_ids: list[str]) -> list[asyncpg.Record]:
    return db("SELECT request_id, actor_id, pin, outcome, txid::text::bigint AS t "
              "FROM audit_event WHERE request_id = ANY($1) AND action = 'pin.verify' "
              "ORDER BY request_id", request_ids)


def test_verifications_in_one_group_answer_as_alone_with_one_commit(
    database: DatabaseTarget, service_db: DbFn,
) -> None:
    """Match, wrong name, name in other case and spacing, wrong birth date, a PIN nobody has:
    the group's answers are those of the same questions asked one at a time (no coalescer),
    each with its own event (its request id, its caller), all in one transaction."""
    tag = _tag()
    caller = _verifier(tag)

    async def run(ctx: PersonsContext, verifier: VerifyCoalescer) -> tuple[Any, Any]:
        a, b = await _persons(PersonsContext(pool=ctx.pool), 2, tag)
        asks = [a, {**a, "full_name": _name()}, {**b, "full_name": "  " + b["full_name"].upper()},
                {**b, "date_of_birth": "2001-01-01"}, {**a, "pin": "052324999999"}, b]
        together = await _verify_together(
            ctx, [(caller, ask) for ask in asks], [f"vg-one-{tag}-{i}" for i in range(6)], 0)
        assert (verifier.groups, verifier.members, verifier.retried) == (1, 6, 0)
        alone = await _verify_together(
            PersonsContext(pool=ctx.pool), [(caller, ask) for ask in asks],
            [f"vg-alone-{tag}-{i}" for i in range(6)], 0)
        return together, alone

    together, alone = asyncio.run(_with_verifier(database.service_url, run))
    assert together == [True, False, True, False, False, True]
    assert together == alone
    rids = [f"vg-one-{tag}-{i}" for i in range(6)]
    events = _verify_events(service_db, rids)
    assert [(e["request_id"], e["actor_id"], e["outcome"]) for e in events] == [
        (rid, caller.id, "match" if answer else "no_match")
        for rid, answer in zip(rids, together, strict=True)]
    assert len({e["t"] for e in events}) == 1  # one transaction for the group's events
    alone_events = _verify_events(service_db, [f"vg-alone-{tag}-{i}" for i in range(6)])
    assert len({e["t"] for e in alone_events}) == 6


def test_the_per_minute_limit_counts_each_member_in_arrival_order(
    database: DatabaseTarget, service_db: DbFn,
) -> None:
    """Limit 3: a caller's 5 questions in one group -> its first 3 answered, the last 2
    refused 429 with Retry-After and no event; another caller's 2 in the same group are not
    touched by the first one's count."""
    tag = _tag()
    busy, other = _verifier(f"{tag}-busy"), _verifier(f"{tag}-other")

    async def run(ctx: PersonsContext, verifier: VerifyCoalescer) -> list[Any]:
        [a] = await _persons(PersonsContext(pool=ctx.pool), 1, tag)
        callers = [busy, other, busy, busy, other, busy, busy]
        results = await _verify_together(ctx, [(who, a) for who in callers],
                                         [f"vg-limit-{tag}-{i}" for i in range(7)], 3)
        assert (verifier.groups, verifier.members, verifier.retried) == (1, 7, 0)
        return results

    results = asyncio.run(_with_verifier(database.service_url, run))
    assert results[:5] == [True] * 5
    for refused in results[5:]:
        assert isinstance(refused, RateLimited), results
        assert 1 <= refused.retry_after <= 60
    events = _verify_events(service_db, [f"vg-limit-{tag}-{i}" for i in range(7)])
    assert [e["request_id"] for e in events] == [f"vg-limit-{tag}-{i}" for i in range(5)]
    counts = service_db("SELECT key, n FROM auth_rate_limit WHERE scope = 'verify' "
                        "AND key = ANY($1) ORDER BY key",
                        [f"client:{busy.id}", f"client:{other.id}"])
    assert [(c["key"], c["n"]) for c in counts] == [(f"client:{busy.id}", 5),
                                                    (f"client:{other.id}", 2)]


def test_members_with_other_limits_in_one_group_are_each_counted_by_their_own(
    database: DatabaseTarget, service_db: DbFn,
) -> None:
    """One worker has one setting, but a group must not depend on it: limit 1 for one caller
    (its second question refused), 0 (not counted) for another, in one group."""
    tag = _tag()
    one, free = _verifier(f"{tag}-one"), _verifier(f"{tag}-free")

    async def run(ctx: PersonsContext, verifier: VerifyCoalescer) -> list[Any]:
        [a] = await _persons(PersonsContext(pool=ctx.pool), 1, tag)
        asks = [(one, 1), (free, 0), (one, 1), (free, 0)]
        results = await asyncio.gather(*(
            access.verify(ctx, who, RequestContext(who.actor, f"vg-mixed-{tag}-{i}", None),
                          VerifyRequest.model_validate(a), limit=limit)
            for i, (who, limit) in enumerate(asks)), return_exceptions=True)
        assert (verifier.groups, verifier.members, verifier.retried) == (1, 4, 0)
        return list(results)

    first, free1, refused, free2 = asyncio.run(_with_verifier(database.service_url, run))
    assert (first, free1, free2) == (True, True, True)
    assert isinstance(refused, RateLimited), refused
    counts = service_db("SELECT key, n FROM auth_rate_limit WHERE scope = 'verify' "
                        "AND key = ANY($1)", [f"client:{one.id}", f"client:{free.id}"])
    assert [(c["key"], c["n"]) for c in counts] == [(f"client:{one.id}", 2)]


@pytest.fixture
def failing_request_id(owner_ddl: Callable[[str], None]) -> Iterator[str]:
    """A request id whose audit event PostgreSQL refuses (a trigger of this test): a
    verification's `pin.verify`, a login's `auth.login`."""
    rid = f"vg-boom-{_tag()}"
    owner_ddl(f"""
        CREATE FUNCTION group_test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.request_id = '{rid}' THEN
            RAISE EXCEPTION 'group test: this event fails';
          END IF;
          RETURN NEW;
        END $$""")
    owner_ddl("CREATE TRIGGER group_test_boom BEFORE INSERT ON audit_event "
              "FOR EACH ROW EXECUTE FUNCTION group_test_boom()")
    try:
        yield rid
    finally:
        owner_ddl("DROP TRIGGER group_test_boom ON audit_event")
        owner_ddl("DROP FUNCTION group_test_boom()")


def test_one_verification_whose_event_fails_is_not_answered_the_others_are(
    database: DatabaseTarget, service_db: DbFn, failing_request_id: str,
) -> None:
    tag = _tag()
    caller = _verifier(tag)
    rids = [f"vg-ok-{tag}-{i}" for i in range(5)]
    rids.insert(2, failing_request_id)

    async def run(ctx: PersonsContext, verifier: VerifyCoalescer) -> list[Any]:
        [a] = await _persons(PersonsContext(pool=ctx.pool), 1, tag)
        results = await _verify_together(ctx, [(caller, a)] * len(rids), rids, 0)
        # One group, whose events statement failed as a whole; then each member ran alone.
        assert (verifier.groups, verifier.members, verifier.retried) == (1, 6, 6)
        return results

    results = asyncio.run(_with_verifier(database.service_url, run))
    failed = results.pop(2)
    assert isinstance(failed, asyncpg.RaiseError) and "this event fails" in str(failed)
    assert results == [True] * 5
    events = _verify_events(service_db, rids)
    assert [e["request_id"] for e in events] == sorted(rids[:2] + rids[3:])


@pytest.mark.embedded_only
@pytest.mark.timeout(120)
def test_database_killed_during_a_verification_group_none_answered_none_recorded(
    cluster: Cluster,
) -> None:
    """The group's backend is SIGKILLed while its events statement is half done (3 written,
    the 4th waiting): every member gets the error the API answers 503, no event committed."""
    tag = _tag()
    rids = [f"vg-kill-{tag}-{i}" for i in range(3)] + [f"vg-hold-{tag}"]
    asyncio.run(_execute(cluster.target.owner_url or "", """
        CREATE FUNCTION group_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.request_id LIKE 'vg-hold-%' THEN PERFORM pg_advisory_xact_lock(7717); END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER group_test_hold BEFORE INSERT ON audit_event
          FOR EACH ROW EXECUTE FUNCTION group_test_hold();"""))
    caller = _verifier(tag)

    async def main() -> list[Any]:
        holder = await connect(url_for(cluster.superuser, database="idservice"))
        await holder.execute("SELECT pg_advisory_lock(7717)")

        async def run(ctx: PersonsContext, verifier: VerifyCoalescer) -> list[Any]:
            [a] = await _persons(PersonsContext(pool=ctx.pool), 1, tag)
            # The group's events statement.
            results = await _while_killing(
                holder, "audit_write",
                _verify_together(ctx, [(caller, a)] * len(rids), rids, 0))
            assert (verifier.groups, verifier.members, verifier.retried) == (1, 4, 0)
            return results

        try:
            return list(await _with_verifier(cluster.target.service_url, run))
        finally:
            holder.terminate()

    _every_member_unavailable_no_event(cluster, asyncio.run(main()), rids)


# -- officer logins (auth/login_group.py) --------------------------------------------------

@dataclass(frozen=True)
class _Operator:
    id: str
    cert_sha256: str
    cert_issuer: str
    cert_serial: str


def _operator(admin_db: DbFn, *, enabled: bool = True) -> _Operator:
    """An operator row of its own (a certificate nobody else has)."""
    op = _Operator(f"group-officer-{_tag()}", uuid.uuid4().hex * 2, "CN=Group Test CA",
                   uuid.uuid4().hex[:16])
    admin_db("INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, cert_pem, "
             "roles, jurisdiction, enabled) VALUES ($1, 'Group Officer', $2, $3, $4, '-', "
             "ARRAY['officer'], '052', $5)", op.id, op.cert_sha256, op.cert_issuer,
             op.cert_serial, enabled)
    return op


def _nonce(name: str) -> str:
    """A used nonce is kept as its SHA-256 in hex."""
    return hashlib.sha256(name.encode()).hexdigest()


def _login(op: _Operator, nonce: str, rid: str, limit: int = 0,
           live_der: bytes | None = None) -> LoginArgs:
    """OFFICER_LOGIN's arguments for `op` presenting `nonce`, as OfficerLogin._commit builds
    them (`live_der`: the certificate of an OCSP-checked login, for the live list)."""
    exp = datetime.now(UTC) + timedelta(minutes=5)
    return (_nonce(nonce), exp, op.cert_sha256, op.cert_issuer, op.cert_serial, limit, "127.0.0.1",
            rid, "127.0.0.1", json.dumps({"method": "web-eid", "jti": rid}), live_der, exp)


async def _with_logins(url: str, run: Callable[[LoginCoalescer], Any]) -> Any:
    pool = await create_pool(url, min_size=1, max_size=12)
    logins = LoginCoalescer(pool, max_group=64, in_flight=1)
    try:
        return await run(logins)
    finally:
        await logins.close()
        await pool.close()


def _outcomes(results: list[Any]) -> list[Any]:
    return [r if isinstance(r, BaseException) else (r["outcome"], r["id"]) for r in results]


def _login_events(db: DbFn, request_ids: list[str]) -> list[asyncpg.Record]:
    return db("SELECT request_id, actor_id, outcome, txid::text::bigint AS t FROM audit_event "
              "WHERE request_id = ANY($1) AND action = 'auth.login' ORDER BY request_id",
              request_ids)


def test_logins_in_one_group_answer_as_alone_with_one_commit(
    database: DatabaseTarget, service_db: DbFn, admin_db: DbFn,
) -> None:
    """Success (one with an OCSP-checked certificate for the live list), the same nonce again,
    an unknown certificate, a disabled operator, and an operator at its limit of 1 twice: a
    group answers what the same logins alone answer, in arrival order among one certificate's
    logins, every success's event in one transaction."""
    tag = _tag()

    def scenario(prefix: str) -> tuple[list[LoginArgs], list[Any], list[str], _Operator]:
        a, b, c = _operator(admin_db), _operator(admin_db), _operator(admin_db)
        off = _operator(admin_db, enabled=False)
        nobody = _Operator("-", uuid.uuid4().hex * 2, "CN=Nobody", "1")
        n = [f"{prefix}-{tag}-nonce-{i}" for i in range(6)]
        rids = [f"{prefix}-{tag}-{i}" for i in range(7)]
        asks = [_login(a, n[0], rids[0]), _login(b, n[1], rids[1], live_der=b.id.encode()),
                _login(a, n[0], rids[2]),
                _login(nobody, n[2], rids[3]), _login(off, n[3], rids[4]),
                _login(c, n[4], rids[5], limit=1), _login(c, n[5], rids[6], limit=1)]
        expected = [("success", a.id), ("success", b.id), ("nonce_used", None),
                    ("operator_unknown", None), ("operator_disabled", off.id),
                    ("success", c.id), ("rate_limited", c.id)]
        return asks, expected, rids, b

    together_asks, together_expected, together_rids, together_live = scenario("lg-one")
    alone_asks, alone_expected, alone_rids, alone_live = scenario("lg-alone")

    async def run(logins: LoginCoalescer) -> tuple[list[Any], list[Any]]:
        together = await asyncio.gather(*(logins.submit(args) for args in together_asks),
                                         return_exceptions=True)
        assert (logins.groups, logins.members, logins.retried) == (1, 7, 0)
        alone = [await login_alone(logins._pool, args) for args in alone_asks]
        return list(together), alone

    together, alone = asyncio.run(_with_logins(database.service_url, run))
    assert _outcomes(together) == together_expected
    assert _outcomes(alone) == alone_expected
    events = _login_events(service_db, together_rids)
    assert [(e["request_id"], e["actor_id"]) for e in events] == [
        (together_rids[i], together_expected[i][1]) for i in (0, 1, 5)]
    assert len({e["t"] for e in events}) == 1  # one transaction for the group
    assert len({e["t"] for e in _login_events(service_db, alone_rids)}) == 3
    for live in (together_live, alone_live):
        assert [bytes(r["cert_der"]) for r in service_db(
            "SELECT cert_der FROM officer_live_cert WHERE cert_sha256 = $1",
            live.cert_sha256)] == [live.id.encode()]


def test_one_failing_login_in_a_group_others_commit_its_nonce_stays_unused(
    database: DatabaseTarget, service_db: DbFn, admin_db: DbFn, failing_request_id: str,
) -> None:
    tag = _tag()
    ops = [_operator(admin_db) for _ in range(4)]
    rids = [f"lg-ok-{tag}-{i}" for i in range(3)]
    rids.insert(1, failing_request_id)
    nonces = [f"lg-fail-{tag}-nonce-{i}" for i in range(4)]

    async def run(logins: LoginCoalescer) -> list[Any]:
        results = await asyncio.gather(*(
            logins.submit(_login(op, nonce, rid))
            for op, nonce, rid in zip(ops, nonces, rids, strict=True)), return_exceptions=True)
        # One group, whose statement failed as a whole; then each member ran alone.
        assert (logins.groups, logins.members, logins.retried) == (1, 4, 4)
        return list(results)

    results = asyncio.run(_with_logins(database.service_url, run))
    failed = results.pop(1)
    assert isinstance(failed, asyncpg.RaiseError) and "this event fails" in str(failed)
    assert _outcomes(results) == [("success", ops[i].id) for i in (0, 2, 3)]
    assert [e["request_id"] for e in _login_events(service_db, rids)] == sorted(
        rids[:1] + rids[2:])
    used = service_db("SELECT nonce_sha256 FROM auth_nonce_used WHERE nonce_sha256 = ANY($1)",
                      [_nonce(n) for n in nonces])
    assert sorted(u["nonce_sha256"] for u in used) == sorted(
        _nonce(n) for n in nonces[:1] + nonces[2:])


@pytest.mark.embedded_only
@pytest.mark.timeout(120)
def test_database_killed_during_a_login_group_none_answered_none_recorded(
    cluster: Cluster,
) -> None:
    """The group's backend is SIGKILLed while its statement is half done (2 logins written,
    the 3rd waiting): every member gets the error the API answers 503; no event, no used
    nonce committed."""
    tag = _tag()
    rids = [f"lg-kill-{tag}-{i}" for i in range(2)] + [f"lg-hold-{tag}"]
    nonces = [f"lg-kill-{tag}-nonce-{i}" for i in range(3)]
    asyncio.run(_execute(cluster.target.owner_url or "", """
        CREATE FUNCTION login_group_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.request_id LIKE 'lg-hold-%' THEN PERFORM pg_advisory_xact_lock(7718); END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER login_group_test_hold BEFORE INSERT ON audit_event
          FOR EACH ROW EXECUTE FUNCTION login_group_test_hold();"""))
    admin = functools.partial(run_db, cluster.target.admin_url or "")
    # The held member's certificate sorts last, so the other two are written before it waits.
    ops = sorted((_operator(admin) for _ in range(3)), key=lambda op: op.cert_sha256)

    async def main() -> list[Any]:
        holder = await connect(url_for(cluster.superuser, database="idservice"))
        await holder.execute("SELECT pg_advisory_lock(7718)")

        async def run(logins: LoginCoalescer) -> list[Any]:
            results = await _while_killing(holder, "officer_login", asyncio.gather(*(
                logins.submit(_login(op, nonce, rid))
                for op, nonce, rid in zip(ops, nonces, rids, strict=True)),
                return_exceptions=True))
            assert (logins.groups, logins.members, logins.retried) == (1, 3, 0)
            return results

        try:
            return list(await _with_logins(cluster.target.service_url, run))
        finally:
            holder.terminate()

    _every_member_unavailable_no_event(cluster, asyncio.run(main()), rids)
    assert _after_recovery(cluster, "SELECT 1 FROM auth_nonce_used WHERE nonce_sha256 = "
                           "ANY($1)", [_nonce(n) for n in nonces]) == []
