"""High availability: a synchronous standby takes over when the primary dies under load.

On this machine: a Debian PostgreSQL primary and a streaming standby (pg_basebackup, physical
replication slot, `synchronous_standby_names` + `synchronous_commit=on`), the service on a
multi-host URL with `target_session_attrs=read-write`, registrars issuing PINs from concurrent
clients. The primary is SIGKILLed mid-load, the standby promoted (`pg_ctl promote`). Then:

- every PIN acknowledged (200/201) before the kill is on the new primary: a synchronous commit
  is acknowledged only once the standby has the WAL;
- nothing is duplicated: one PIN per registration key, and every answer for a key (first try
  and retries) named the same PIN;
- during the outage the service answers 503 `unavailable`, never 500, and clients that retry
  with the same registration key get their PIN once the pool reconnects to the new primary.

Independent of IDSERVICE_TEST_PG (it builds its own servers); marked `ha` so the Debian run of
the suite does not repeat it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from hsm.softhsm import SoftHsmToken
from idservice.app import create_app
from idservice.auth.administration import admin_actor
from idservice.auth.assertion import client_token_form
from idservice.auth.client_registry import add_client
from idservice.db.migrate import migrate
from idservice.db.pool import connect
from idservice.db.roles import APP_ROLE, OWNER_ROLE
from idservice.runtime import DatabaseTarget, ensure_service_keys
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.debian_pg import DebianCluster, make_cluster_dir, remove_cluster_dir
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.pki import new_client_key
from tests.support.server import ServerThread, free_port

pytestmark = [pytest.mark.ha, pytest.mark.timeout(90)]

SLOT = STANDBY_NAME = "standby1"
CLIENTS = 8


@dataclass
class Pair:
    primary: DebianCluster
    standby: DebianCluster
    service_url: str  # both hosts, read-write wanted
    owner_url: str
    admin_url: str  # the primary


def _sql(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def main() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(main())


def _wait_for(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture
def pair() -> Iterator[Pair]:
    directory = make_cluster_dir("idservice-test-ha-")
    primary = DebianCluster(directory, free_port(), name="primary")
    standby = DebianCluster(directory, free_port(), name="standby")
    try:
        primary.init(replication=True, settings={
            "wal_level": "replica", "max_wal_senders": "5", "max_replication_slots": "5",
            "wal_sender_timeout": "5s"}).start()
        urls = asyncio.run(primary.ensure_database())
        asyncio.run(migrate(urls.owner))
        primary.create_replication_role(SLOT)
        primary.base_backup_to(standby, slot=SLOT, application_name=STANDBY_NAME)
        standby.start()
        # synchronous from now on: a commit is acknowledged once the standby has flushed it
        _sql(primary.superuser_url,
             f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        _sql(primary.superuser_url, "SELECT pg_reload_conf()")
        _wait_for("the standby to be synchronous", lambda: _sql(
            primary.superuser_url,
            "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 "
            "AND sync_state = 'sync' AND state = 'streaming'", STANDBY_NAME))
        password = quote(primary.role_passwords[APP_ROLE], safe="")
        service_url = (f"postgresql://{APP_ROLE}:{password}@127.0.0.1:{primary.port},"
                       f"127.0.0.1:{standby.port}/idservice?target_session_attrs=read-write")
        yield Pair(primary, standby, service_url, urls.owner, urls.admin)
    finally:
        standby.stop("immediate")
        primary.stop("immediate")
        primary.kill_orphans()
        remove_cluster_dir(directory)


@dataclass
class Outcome:
    """What the clients saw, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: list[tuple[str, str, float]] = field(default_factory=list)  # (key, pin, at)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    unexpected: list[str] = field(default_factory=list)


def _client(base_url: str, token: str, worker: int, stop: threading.Event,
            outcome: Outcome) -> None:
    """Issue PINs one registration after another; retry each one with the same body (same
    registration key) until it is acknowledged, as civil-status software must."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as http:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"HA-{worker}-{n}"
            body = issue_body("052", number=key)
            while True:
                try:
                    response = http.post("/v1/pins", json=body)
                except httpx.TransportError:
                    with outcome.lock:
                        outcome.transport_errors += 1
                    time.sleep(0.05)
                    continue
                with outcome.lock:
                    outcome.statuses[response.status_code] += 1
                if response.status_code in (200, 201):
                    with outcome.lock:
                        outcome.acks.append((key, response.json()["pin"], time.monotonic()))
                    break
                problem = response.json() if response.headers.get(
                    "content-type", "").startswith("application/problem+json") else {}
                if response.status_code == 503 and problem.get("code") == "unavailable":
                    time.sleep(0.05)
                    continue
                with outcome.lock:
                    outcome.unexpected.append(f"{response.status_code} {response.text[:300]}")
                return


def test_acknowledged_pins_survive_primary_loss_and_issuance_resumes(
    pair: Pair, settings: Settings, softhsm_dir: SoftHsmDir,
    softhsm_token_factory: Callable[[str], SoftHsmToken],
) -> None:
    started = time.monotonic()
    port = free_port()
    token = softhsm_token_factory("ha-svc")  # one KeyStore per token per process
    ha_settings = settings.model_copy(update={
        "origin": f"http://127.0.0.1:{port}", "database_url": pair.service_url,
        "owner_database_url": pair.owner_url, "db_pool_min": 2, "db_pool_max": 16,
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin)})
    ensure_service_keys(ha_settings)
    database = DatabaseTarget(pair.service_url, pair.owner_url, None, None)
    server = ServerThread(create_app(ha_settings, database=database), port).start()
    try:
        key = new_client_key("ha-registrar")

        async def register() -> None:
            conn = await connect(pair.admin_url)
            try:
                await add_client(conn, client_id="ha-registrar", cert_pem=key.cert_pem,
                                 roles=["registrar"], jurisdiction="052", by=admin_actor())
            finally:
                await conn.close()

        asyncio.run(register())
        reply = httpx.post(f"{server.base_url}/v1/auth/client-token",
                           data=client_token_form("ha-registrar", key.key,
                                                  ha_settings.client_token_url))
        assert reply.status_code == 200, reply.text
        access_token = reply.json()["access_token"]

        outcome, stop = Outcome(), threading.Event()
        threads = [threading.Thread(target=_client,
                                    args=(server.base_url, access_token, i, stop, outcome))
                   for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        _wait_for("issuance under load", lambda: len(outcome.acks) >= 100)

        pair.primary.kill()  # SIGKILL: no shutdown, in-flight commits cut off
        killed_at = time.monotonic()
        with outcome.lock:
            acked_before_kill = {(k, pin) for k, pin, at in outcome.acks if at < killed_at}
        time.sleep(1.0)  # the outage: every client keeps retrying its registration
        outage_503 = outcome.statuses[503]
        pair.standby.promote()
        promoted_at = time.monotonic()
        _wait_for("issuance on the new primary",
                  lambda: sum(at > promoted_at for _, _, at in outcome.acks) >= 100)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
    finally:
        server.stop()

    assert outcome.unexpected == []
    assert set(outcome.statuses) <= {200, 201, 503}, outcome.statuses
    assert outage_503 > 0, "no request was refused during the outage"

    new_primary = pair.standby
    rows = _sql(new_primary.url(OWNER_ROLE, new_primary.role_passwords[OWNER_ROLE], "idservice"),
                "SELECT registration_number, pin FROM person "
                "WHERE registration_number LIKE 'HA-%'")
    stored = {r["registration_number"]: r["pin"] for r in rows}
    assert len(stored) == len(rows), "a registration key holds two PINs"
    assert len(set(stored.values())) == len(rows), "a PIN was issued twice"

    # every acknowledgement, before or after the kill, is what the new primary holds
    for reg_key, pin, _ in outcome.acks:
        assert stored.get(reg_key) == pin, (reg_key, pin, stored.get(reg_key))
    assert acked_before_kill and all(stored[k] == pin for k, pin in acked_before_kill)
    assert len({k for k, _, _ in outcome.acks}) == len(stored)  # nothing stored unasked
    assert time.monotonic() - started < 90
