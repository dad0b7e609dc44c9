"""Fault test: PostgreSQL is killed (SIGKILL to the postmaster) twice while 64 clients issue.

A cluster of its own (not the session's) in its own data dir, and a server on it with its
own SoftHSM token. 64 concurrent clients each issue their registrations one after another;
an attempt that gets no answer (connection error, timeout) or `503` is retried with the same
registration key and body (a new X-Request-ID per attempt) until it is answered 201 or 200.
Meanwhile the postmaster is SIGKILLed twice and restarted with `ensure_running()` (crash
recovery from the WAL).

Afterwards, for every registration:
- exactly one person row and one registration row: no PIN issued twice, none lost;
- every acknowledged attempt (201/200) named that one PIN, and at most one was a 201;
- exactly one `pin.issue` event with outcome `issued`;
- every acknowledged attempt has exactly one `pin.issue` event with its request id (201 ->
  `issued`, 200 -> `replayed`), so acknowledged responses == issued + replayed events
  except for attempts whose answer never arrived although they committed (the database
  was killed between the commit and the answer): those may have an event too, and are
  counted separately; no event belongs to an attempt we did not make;
- no attempt was answered with another error (no 500: a dead database is `503`);
- every event is sequenced into the audit log once the database is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.assertion import client_token_form
from idservice.db.embedded import EmbeddedPostgres
from idservice.db.migrate import migrate
from idservice.db.roles import ensure_database
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.faults.conftest import fetch, register_client
from tests.support.bodies import issue_body
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.pki import new_client_key
from tests.support.server import ServerThread, free_port

# Its own embedded cluster whatever server the session uses (IDSERVICE_TEST_PG): one run is
# enough, the Debian run leaves it out.
pytestmark = pytest.mark.embedded_only

CLIENTS = 64
PER_CLIENT = 6
KILLS = 2
DEADLINE = 60.0  # seconds for the whole issuance, kills included


@dataclass
class Attempt:
    number: str
    request_id: str
    status: int | None  # None: no answer (transport error or timeout)
    pin: str | None = None


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)


@dataclass
class Cluster:
    pg: EmbeddedPostgres
    target: DatabaseTarget


@pytest.fixture
def cluster(pg_scratch_dir: Path) -> Iterator[Cluster]:
    pg = EmbeddedPostgres(pg_scratch_dir)
    superuser = pg.ensure_running()
    urls = asyncio.run(ensure_database(superuser))
    asyncio.run(migrate(urls.owner))
    yield Cluster(pg, DatabaseTarget(urls.service, urls.owner, urls.auditor, None, urls.admin))
    pg.stop()


def postmaster_pid(pg: EmbeddedPostgres) -> int:
    return int((pg.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def kill_and_restart(pg: EmbeddedPostgres) -> None:
    """SIGKILL the postmaster, wait for it to be gone, start it again (crash recovery)."""
    pid = postmaster_pid(pg)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # let the clients see the outage
    for _ in range(100):  # orphaned backends may hold shared memory for a moment
        try:
            pg.ensure_running()
            return
        except Exception:
            time.sleep(0.2)
    raise AssertionError("PostgreSQL did not restart after SIGKILL")


async def issue_all(base_url: str, token: str, bodies: list[list[dict]], run: Run,
                    pg: EmbeddedPostgres) -> None:
    stop_at = time.monotonic() + DEADLINE
    async with httpx.AsyncClient(base_url=base_url, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"},
                                 limits=httpx.Limits(max_connections=CLIENTS)) as http:

        async def one_client(mine: list[dict]) -> None:
            for body in mine:
                number = body["registration"]["number"]
                while time.monotonic() < stop_at:
                    rid = f"pgkill-{uuid.uuid4().hex}"
                    try:
                        response = await http.post("/v1/pins", json=body,
                                                   headers={"X-Request-ID": rid})
                    except httpx.TransportError:
                        run.attempts.append(Attempt(number, rid, None))
                        await asyncio.sleep(0.1)
                        continue
                    pin = response.json().get("pin") if response.status_code < 300 else None
                    run.attempts.append(Attempt(number, rid, response.status_code, pin))
                    if response.status_code in (200, 201):
                        break
                    if response.status_code != 503:
                        return  # not retried: reported by the assertions
                    await asyncio.sleep(0.1)

        async def killer() -> None:
            for _ in range(KILLS):
                await asyncio.sleep(1.5)
                run.kills.append(time.monotonic())
                await asyncio.to_thread(kill_and_restart, pg)

        await asyncio.gather(killer(), *(one_client(m) for m in bodies))


@pytest.mark.timeout(180)
def test_postgres_sigkill_during_issuance_loses_nothing_and_duplicates_nothing(
    cluster: Cluster, settings: Settings, softhsm_dir: SoftHsmDir,
    softhsm_token_factory: Callable,
) -> None:
    token = softhsm_token_factory("faults-pg-kill")
    app_settings = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "faults-pg-es256",
        "audit_key_label": "faults-pg-audit", "db_pool_max": CLIENTS})
    service_url = cluster.target.service_url
    key = new_client_key("faults-pg-registrar")
    register_client(cluster.target.admin_url, "faults-pg-registrar", key.cert_pem)
    thread = ServerThread(create_app(app_settings, database=cluster.target), free_port()).start()
    try:
        response = httpx.post(f"{thread.base_url}/v1/auth/client-token", data=client_token_form(
            "faults-pg-registrar", key.key, settings.client_token_url))
        assert response.status_code == 200, response.text
        bodies = [[issue_body("052", number=f"PGK-{c}-{i}") for i in range(PER_CLIENT)]
                  for c in range(CLIENTS)]
        run = Run()
        started = time.monotonic()
        asyncio.run(issue_all(thread.base_url, response.json()["access_token"], bodies, run,
                              cluster.pg))
        elapsed = time.monotonic() - started
        # Background tasks (sequencer) must recover too: wait until every event has its index.
        deadline = time.monotonic() + 20
        while fetch(service_url, "SELECT count(*) FROM audit_event e WHERE NOT EXISTS "
                    "(SELECT 1 FROM audit_log l WHERE l.event_id = e.id)")[0][0] and \
                time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        thread.stop()

    numbers = {b["registration"]["number"] for mine in bodies for b in mine}
    by_number: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in run.attempts:
        by_number[attempt.number].append(attempt)
    statuses = Counter(a.status for a in run.attempts)
    assert len(run.kills) == KILLS
    assert statuses[503] + statuses[None] > 0, f"the kills were not noticed: {statuses}"
    assert set(statuses) <= {200, 201, 503, None}, f"unexpected answers: {statuses}"
    acknowledged = {n: [a for a in by_number[n] if a.status in (200, 201)] for n in numbers}
    unanswered = [n for n in numbers if not acknowledged[n]]
    assert not unanswered, f"{len(unanswered)} registrations never acknowledged in " \
        f"{elapsed:.0f} s: {statuses}"

    persons = fetch(service_url, "SELECT registration_number, pin FROM person "
                    "WHERE registration_number LIKE 'PGK-%'")
    registrations = fetch(service_url, "SELECT number, pin FROM registration "
                          "WHERE number LIKE 'PGK-%'")
    person_pins = [r["pin"] for r in persons]
    assert len(person_pins) == len(set(person_pins)) == len(numbers), "duplicate or lost PINs"
    assert Counter(r["registration_number"] for r in persons) == Counter(numbers)
    registered = {r["number"]: r["pin"] for r in registrations}
    assert len(registrations) == len(numbers) and set(registered) == numbers
    for number in numbers:
        pins = {a.pin for a in acknowledged[number]}
        assert pins == {registered[number]}, (number, pins, registered[number])
        assert sum(a.status == 201 for a in acknowledged[number]) <= 1, number

    events = fetch(service_url, "SELECT request_id, outcome, pin, "
                   "details->'registration'->>'number' AS number FROM audit_event "
                   "WHERE action = 'pin.issue'")
    ours = {a.request_id: a for a in run.attempts}
    issued = Counter(e["number"] for e in events if e["outcome"] == "issued")
    assert issued == Counter(numbers), "not exactly one 'issued' event per registration"
    by_request = Counter(e["request_id"] for e in events)
    assert all(rid in ours for rid in by_request), "an event of an attempt nobody made"
    assert max(by_request.values()) == 1
    event_of = {e["request_id"]: e for e in events}
    acked = [a for a in run.attempts if a.status in (200, 201)]
    for attempt in acked:
        event = event_of.get(attempt.request_id)
        assert event is not None, f"acknowledged attempt without event: {attempt}"
        assert event["outcome"] == ("issued" if attempt.status == 201 else "replayed")
        assert event["pin"] == attempt.pin and event["number"] == attempt.number
    committed_unanswered = [e for e in events if ours[e["request_id"]].status not in (200, 201)]
    assert len(events) == len(acked) + len(committed_unanswered)
    assert fetch(service_url, "SELECT count(*) FROM audit_event e WHERE NOT EXISTS "
                 "(SELECT 1 FROM audit_log l WHERE l.event_id = e.id)")[0][0] == 0
    assert elapsed < DEADLINE + 5
    print(f"\n{len(numbers)} registrations, {len(run.attempts)} attempts {dict(statuses)}, "
          f"{len(committed_unanswered)} committed without an answer, {elapsed:.1f} s")
