"""ensure_database: least-privilege roles and the idservice database, idempotent and race-safe."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from idservice.db.embedded import EmbeddedPostgres
from idservice.db.roles import DatabaseUrls, ensure_database, url_for
from tests.support.debian_pg import (
    DebianCluster,
    EmbeddedServer,
    PgServer,
    make_cluster_dir,
    remove_cluster_dir,
    selected_server,
)
from tests.support.server import free_port


@pytest.fixture
def fresh_cluster(pg_scratch_dir: Path) -> Iterator[PgServer]:
    """A brand-new cluster of the selected kind where none of our roles exist yet."""
    if selected_server() == "embedded":
        server = EmbeddedServer(EmbeddedPostgres(pg_scratch_dir))
        yield server
        server.stop()
        return
    directory = make_cluster_dir("idservice-test-roles-")
    cluster = DebianCluster(directory, free_port())
    try:
        yield cluster.init().start()
    finally:
        cluster.stop()
        remove_cluster_dir(directory)


async def _whoami(url: str) -> tuple[str, str]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("SELECT current_user, current_database()")
        assert row is not None
        return row[0], row[1]
    finally:
        await conn.close()


async def test_urls_log_in_as_each_role(database_urls: DatabaseUrls) -> None:
    assert await _whoami(database_urls.owner) == ("idservice_owner", "idservice")
    assert await _whoami(database_urls.service) == ("idservice_app", "idservice")
    assert await _whoami(database_urls.auditor) == ("idservice_audit", "idservice")


async def test_ensure_database_twice_is_idempotent(
    pg_server: PgServer, pg_superuser_url: str, database_urls: DatabaseUrls
) -> None:
    # (credentials: Debian's server wants the roles' passwords in the URLs)
    assert await pg_server.credentials(await ensure_database(pg_superuser_url)) == database_urls


async def test_concurrent_calls_on_new_cluster_both_succeed(fresh_cluster: PgServer) -> None:
    first, second = await asyncio.gather(
        ensure_database(fresh_cluster.superuser_url), ensure_database(fresh_cluster.superuser_url)
    )
    assert first == second
    urls = await fresh_cluster.credentials(first)
    assert await _whoami(urls.service) == ("idservice_app", "idservice")


async def test_concurrent_calls_for_new_database_both_succeed(pg_superuser_url: str) -> None:
    results = await asyncio.gather(
        *(ensure_database(pg_superuser_url, database="concurrent_db") for _ in range(3))
    )
    assert len(set(results)) == 1
    conn = await asyncpg.connect(pg_superuser_url)
    try:
        await conn.execute("DROP DATABASE concurrent_db WITH (FORCE)")
    finally:
        await conn.close()


async def test_roles_are_least_privilege(
    pg_superuser_url: str, database_urls: DatabaseUrls
) -> None:
    conn = await asyncpg.connect(url_for(pg_superuser_url, database="idservice"))
    try:
        roles = {
            r["rolname"]: r
            for r in await conn.fetch(
                "SELECT rolname, rolcanlogin, rolcreaterole, rolsuper, rolcreatedb "
                "FROM pg_roles WHERE rolname LIKE 'idservice%'"
            )
        }
        member = await conn.fetchval(
            "SELECT array_agg(edge ORDER BY edge) FROM ("
            " SELECT format('%s>%s', r.rolname, m.rolname) AS edge"
            " FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid"
            " JOIN pg_roles m ON m.oid = am.member"
            # inherit_option is per membership since PostgreSQL 16; before, per member role
            " WHERE coalesce((to_jsonb(am) ->> 'inherit_option')::boolean, m.rolinherit)"
            " AND m.rolname LIKE 'idservice%') AS e"
        )
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'idservice'"
        )
        public_create = await conn.fetchval(
            "SELECT has_schema_privilege('idservice_app', 'public', 'CREATE')"
        )
    finally:
        await conn.close()

    assert set(roles) == {
        "idservice_owner",
        "idservice_app",
        "idservice_audit",
        "idservice_admin",
        "idservice_service",
        "idservice_auditor",
        "idservice_administrator",
    }
    assert {n for n, r in roles.items() if r["rolcanlogin"]} == {
        "idservice_owner",
        "idservice_app",
        "idservice_audit",
        "idservice_admin",
    }
    assert {n for n, r in roles.items() if r["rolcreaterole"]} == {"idservice_owner"}
    assert not any(r["rolsuper"] or r["rolcreatedb"] for r in roles.values())
    # inherited memberships: each login role gets exactly its group's privileges
    assert member == ["idservice_administrator>idservice_admin",
                      "idservice_auditor>idservice_audit", "idservice_service>idservice_app"]
    assert owner == "idservice_owner"
    assert public_create is False


async def test_only_owner_creates_objects(database_urls: DatabaseUrls) -> None:
    owner = await asyncpg.connect(database_urls.owner)
    try:
        await owner.execute("CREATE TABLE public.owner_made (id int); DROP TABLE public.owner_made")
    finally:
        await owner.close()
    app = await asyncpg.connect(database_urls.service)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("CREATE TABLE public.app_made (id int)")
    finally:
        await app.close()


async def test_invalid_database_name_is_refused(pg_superuser_url: str) -> None:
    with pytest.raises(ValueError, match="invalid database name"):
        await ensure_database(pg_superuser_url, database='x"; DROP ROLE postgres; --')


def test_url_for_swaps_user_and_database_and_drops_password() -> None:
    url = "postgresql://postgres:secret@db.example:5433/postgres?sslmode=require"
    assert url_for(url, user="idservice_app", database="idservice") == (
        "postgresql://idservice_app@db.example:5433/idservice?sslmode=require"
    )
    assert url_for(url, database="other") == (
        "postgresql://postgres:secret@db.example:5433/other?sslmode=require"
    )
    socket = "postgresql://postgres@/postgres?host=/tmp/a%20b/pg&port=5432"
    assert url_for(socket, user="u", database="d") == (
        "postgresql://u@/d?host=/tmp/a%20b/pg&port=5432"
    )


async def test_create_on_public_granted_to_public_is_revoked(
    pg_server: PgServer, pg_superuser_url: str, fresh_database: DatabaseUrls
) -> None:
    name = urlsplit(fresh_database.owner).path.lstrip("/")
    conn = await asyncpg.connect(url_for(pg_superuser_url, database=name))
    try:
        await conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # pre-15 default
        again = await ensure_database(pg_superuser_url, database=name)
        assert await pg_server.credentials(again) == fresh_database
        assert not await conn.fetchval(
            "SELECT has_schema_privilege('idservice_app', 'public', 'CREATE')"
        )
    finally:
        await conn.close()
