"""Session fixtures: one data dir holding a real embedded PostgreSQL and a SoftHSM token,
migrated once; a real HTTP server on loopback; clients and officers with real tokens."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from idservice.app import create_app
from idservice.auth.administration import admin_actor
from idservice.auth.assertion import client_token_form
from idservice.auth.client_registry import add_client
from idservice.db.migrate import migrate
from idservice.db.pool import connect
from idservice.runtime import DatabaseTarget, resolve_database, resolve_hsm
from idservice.settings import Settings
from tests.support.debian_pg import EmbeddedServer, PgServer
from tests.support.pki import new_client_key
from tests.support.server import ServerThread, free_port

pytest_plugins = ["tests.support.fixtures_hsm", "tests.support.fixtures_db", "tests.support.ui_env"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "embedded_only: tests of the embedded PostgreSQL itself (EmbeddedPostgres, "
        "`idservice dev`, a fresh data dir); deselected when IDSERVICE_TEST_PG=debian")
    config.addinivalue_line(
        "markers", "slow: end-to-end runs in a real browser (tens of seconds each); "
        "deselect with -m 'not slow' for a quick run")
    config.addinivalue_line(
        "markers", "ha: builds its own Debian PostgreSQL primary and standby whatever "
        "IDSERVICE_TEST_PG says; run once (in the embedded run)")


TOKEN_TTL = 4 * 3600  # seconds; the tests that check a token's lifetime read this


@pytest.fixture(scope="session")
def server_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def settings(data_dir: Path, server_port: int, pg_server: PgServer) -> Settings:
    """Embedded: nothing configured, the data dir's cluster. Debian: URLs with credentials, as
    in production (`IDSERVICE_DATABASE_URL`, `IDSERVICE_OWNER_DATABASE_URL`)."""
    configured: dict[str, str] = {}
    if not isinstance(pg_server, EmbeddedServer):
        urls = asyncio.run(pg_server.ensure_database())
        configured = {"database_url": urls.service, "owner_database_url": urls.owner,
                      "admin_database_url": urls.admin}
    # Every test's logins come from 127.0.0.1: the per-source limit and failure-event cap are
    # set out of reach here (the paths still run); their own tests run servers with small ones.
    # Session fixtures log in once: their tokens must outlive a whole run on a busy machine
    # (a 19-minute run saw 900-second tokens expire mid-suite).
    return Settings(data_dir=data_dir, origin=f"http://127.0.0.1:{server_port}",
                    log_level="WARNING", sequencer_interval=0.05, token_ttl=TOKEN_TTL,
                    revocation_poll_interval=0.5, auth_source_rate_limit=1_000_000,
                    auth_failure_events_per_minute=10_000, notify_allow_private=True,
                    notify_interval=0.05, **configured)


@pytest.fixture(scope="session")
def database(settings: Settings, pg_server: PgServer) -> Iterator[DatabaseTarget]:
    """The migrated database of the session, in the session cluster (`pg_server`)."""
    if isinstance(pg_server, EmbeddedServer):
        target = asyncio.run(resolve_database(settings))
    else:
        urls = asyncio.run(pg_server.ensure_database())
        asyncio.run(migrate(urls.owner))
        target = DatabaseTarget(urls.service, urls.owner, urls.auditor, None, urls.admin)
    yield target
    target.close()


@pytest.fixture(scope="session")
def server(settings: Settings, database: DatabaseTarget,
           server_port: int) -> Iterator[ServerThread]:
    resolve_hsm(settings)
    thread = ServerThread(create_app(settings, database=database), server_port).start()
    yield thread
    thread.stop()


def run_db(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def main() -> list[asyncpg.Record]:
        conn = await connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(main())


@pytest.fixture(scope="session")
def service_db(database: DatabaseTarget) -> Callable[..., list[asyncpg.Record]]:
    """Run one statement as the service role."""
    return lambda sql, *args: run_db(database.service_url, sql, *args)


@pytest.fixture(scope="session")
def admin_db(database: DatabaseTarget) -> Callable[..., list[asyncpg.Record]]:
    """Run one statement as the administrator role (the only writer of operators, clients)."""
    assert database.admin_url is not None
    return lambda sql, *args: run_db(database.admin_url, sql, *args)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def owner_db(database: DatabaseTarget) -> Callable[..., list[asyncpg.Record]]:
    assert database.owner_url is not None
    return lambda sql, *args: run_db(database.owner_url, sql, *args)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def owner_ddl(database: DatabaseTarget) -> Callable[[str], None]:
    """Run one DDL statement as the owner, retried when PostgreSQL picks it as a deadlock victim.

    Tests that add a failing trigger to `audit_event` take an ACCESS EXCLUSIVE lock on the
    partitioned table while the running server's integrator reads its partitions; PostgreSQL
    then aborts one of the two (a CI run lost a test to this). The aborted DDL changed nothing,
    so running it again is safe; production never runs DDL beside a live server.
    """
    assert database.owner_url is not None
    url = database.owner_url

    def run(sql: str) -> None:
        for attempt in range(5):
            try:
                run_db(url, sql)
                return
            except asyncpg.DeadlockDetectedError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    return run


@pytest.fixture(scope="session")
def make_client(server: ServerThread,
                database: DatabaseTarget) -> Callable[..., tuple[str, object]]:
    """`make_client(jurisdiction, roles)` registers a new client; returns (id, private key)."""

    def factory(jurisdiction: str = "052",
                roles: tuple[str, ...] = ("registrar",)) -> tuple[str, object]:
        client_id = f"test-{secrets.token_hex(6)}"
        key = new_client_key(client_id)

        async def main() -> None:
            assert database.admin_url is not None
            conn = await connect(database.admin_url)
            try:
                await add_client(conn, client_id=client_id, cert_pem=key.cert_pem,
                                 roles=list(roles), jurisdiction=jurisdiction, by=admin_actor())
            finally:
                await conn.close()

        asyncio.run(main())
        return client_id, key.key

    return factory


@pytest.fixture(scope="session")
def client_token(server: ServerThread, make_client: Callable[..., tuple[str, object]],
                 settings: Settings) -> Callable[..., str]:
    """`client_token(jurisdiction, roles)`: a real access token via private_key_jwt over HTTP."""

    def factory(jurisdiction: str = "052", roles: tuple[str, ...] = ("registrar",)) -> str:
        client_id, key = make_client(jurisdiction, roles)
        response = httpx.post(f"{server.base_url}/v1/auth/client-token",
                              data=client_token_form(client_id, key, settings.client_token_url))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    return factory


@pytest.fixture(scope="session")
def officer_token(server: ServerThread, admin_db: Callable[..., list[asyncpg.Record]]
                  ) -> Callable[..., str]:
    """`officer_token(jurisdiction, roles)`: an operator row plus an access token signed by the
    service's HSM key, as the officer login (issue 3, not built yet) will issue it. Not a mock:
    the token is minted by the server's own issuer and verified by the server on each call."""

    def factory(jurisdiction: str = "052", roles: tuple[str, ...] = ("officer",)) -> str:
        operator_id = f"officer-{secrets.token_hex(6)}"
        fingerprint = secrets.token_hex(32)
        admin_db(
            "INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, cert_pem, "
            "roles, jurisdiction) VALUES ($1, $2, $3, 'CN=Test CA', $4, '-', $5, $6)",
            operator_id, f"Officer {operator_id}", fingerprint, secrets.token_hex(8),
            list(roles), jurisdiction)
        issued = server.call(server.services.issuer.issue(
            kind="operator", subject=operator_id, roles=roles, jurisdiction=jurisdiction,
            extra={"cnf": {"x5t#S256": fingerprint}}))
        return issued.token

    return factory


@pytest.fixture(scope="session")
def registrar(server: ServerThread, client_token: Callable[..., str]) -> httpx.Client:
    """An HTTP client authenticated as a registrar for province 052."""
    return server.client(client_token("052"))


@pytest.fixture(scope="session")
def officer(server: ServerThread, officer_token: Callable[..., str]) -> httpx.Client:
    return server.client(officer_token("052"))
