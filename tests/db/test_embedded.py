"""EmbeddedPostgres: one server per data dir, shared by objects and processes; starter stops it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from idservice.db._pgproc import bin_path, read_pid_file, server_user
from idservice.db.embedded import EmbeddedPostgres

pytestmark = pytest.mark.embedded_only  # the embedded cluster itself (fixtures_db.py)

# A separate process using the data dir, as the CLI does next to a running `idservice dev`.
_CHILD = """
import json, sys
from pathlib import Path
from idservice.db.embedded import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
url = server.ensure_running()
print(json.dumps({"url": url, "started_here": server.started_here}), flush=True)
if sys.argv[2] == "wait":
    sys.stdin.readline()
server.stop()
"""


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = read_pid_file(pgdata)
    return pid_file.pid if pid_file is not None else None


def _spawn(data_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(data_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()


def test_ensure_running_twice_returns_same_server(embedded_pg: EmbeddedPostgres) -> None:
    pid = _postmaster_pid(embedded_pg.pgdata)
    first = embedded_pg.ensure_running()
    second = embedded_pg.ensure_running()
    assert first == second
    assert embedded_pg.started_here
    assert _postmaster_pid(embedded_pg.pgdata) == pid


async def test_second_object_reuses_server_and_its_stop_leaves_it_running(
    embedded_pg: EmbeddedPostgres, pg_superuser_url: str
) -> None:
    pid = _postmaster_pid(embedded_pg.pgdata)
    other = EmbeddedPostgres(embedded_pg.data_dir)
    assert other.ensure_running() == pg_superuser_url
    assert not other.started_here
    other.stop()
    assert _postmaster_pid(embedded_pg.pgdata) == pid
    assert await _select_one(pg_superuser_url) == 1


async def test_other_process_reuses_server_and_leaves_it_running(
    embedded_pg: EmbeddedPostgres, pg_superuser_url: str
) -> None:
    pid = _postmaster_pid(embedded_pg.pgdata)
    child = _spawn(embedded_pg.data_dir, "exit")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert json.loads(out) == {"url": pg_superuser_url, "started_here": False}
    assert _postmaster_pid(embedded_pg.pgdata) == pid
    assert await _select_one(pg_superuser_url) == 1


def test_data_dir_layout_and_permissions(embedded_pg: EmbeddedPostgres) -> None:
    pgdata = embedded_pg.pgdata
    assert (pgdata / "PG_VERSION").exists()
    assert (pgdata / ".s.PGSQL.5432").is_socket()
    assert list((pgdata / "log").glob("postgresql-*.log"))
    assert pgdata.stat().st_mode & 0o777 == 0o700
    assert pgdata.stat().st_uid == server_user().uid


async def test_settings_are_durable(pg_superuser_url: str) -> None:
    conn = await asyncpg.connect(pg_superuser_url)
    try:
        rows = await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            [
                "fsync",
                "synchronous_commit",
                "full_page_writes",
                "max_connections",
                "shared_buffers",
                "listen_addresses",
            ],
        )
    finally:
        await conn.close()
    settings = {r["name"]: r["setting"] for r in rows}
    assert settings["fsync"] == "on"
    assert settings["synchronous_commit"] == "on"
    assert settings["full_page_writes"] == "on"
    assert settings["max_connections"] == "200"
    assert settings["shared_buffers"] == str(512 * 1024 // 8)  # in 8 kB pages
    assert settings["listen_addresses"] == ""


async def test_starter_stop_stops_server_and_restart_keeps_data(pg_scratch_dir: Path) -> None:
    server = EmbeddedPostgres(pg_scratch_dir)
    url = server.ensure_running()
    assert server.started_here
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('committed')")
    await conn.close()

    server.stop()
    assert not server.started_here
    assert _postmaster_pid(pg_scratch_dir / "pg") is None

    again = EmbeddedPostgres(pg_scratch_dir)
    assert again.ensure_running() == url
    assert again.started_here
    conn = await asyncpg.connect(url)
    assert await conn.fetchval("SELECT v FROM kept") == "committed"
    await conn.close()
    again.stop()
    assert _postmaster_pid(pg_scratch_dir / "pg") is None


async def test_stale_pid_file_of_unrelated_process_is_ignored(pg_scratch_dir: Path) -> None:
    server = EmbeddedPostgres(pg_scratch_dir)
    server.ensure_running()
    server.stop()
    pid_file = pg_scratch_dir / "pg" / "postmaster.pid"
    # as after a container restart: the recorded pid now belongs to another process (us)
    pid_file.write_text(
        f"{os.getpid()}\n{pg_scratch_dir / 'pg'}\n0\n5432\n{pg_scratch_dir / 'pg'}\n"
    )
    url = server.ensure_running()
    assert server.started_here
    assert _postmaster_pid(pg_scratch_dir / "pg") != os.getpid()
    assert await _select_one(url) == 1
    server.stop()


def test_concurrent_processes_start_one_server_and_last_user_stops_it(pg_scratch_dir: Path) -> None:
    children = [_spawn(pg_scratch_dir, "wait"), _spawn(pg_scratch_dir, "wait")]
    try:
        reports = [json.loads(child.stdout.readline()) for child in children]  # type: ignore[union-attr]
        assert reports[0]["url"] == reports[1]["url"]
        assert sorted(r["started_here"] for r in reports) == [False, True]
        pid = _postmaster_pid(pg_scratch_dir / "pg")
        assert pid is not None

        starter = children[0] if reports[0]["started_here"] else children[1]
        user = children[1] if starter is children[0] else children[0]
        starter.communicate("\n", timeout=60)  # starter stops while the other still uses it
        assert starter.returncode == 0
        assert _postmaster_pid(pg_scratch_dir / "pg") == pid
        assert (pg_scratch_dir / "pg.handoff").read_text().strip() == str(pid)

        user.communicate("\n", timeout=60)  # the last user takes over the stop duty
        assert user.returncode == 0
        assert _postmaster_pid(pg_scratch_dir / "pg") is None
        assert not (pg_scratch_dir / "pg.handoff").exists()
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def test_stop_is_deferred_while_another_object_uses_the_server(pg_scratch_dir: Path) -> None:
    starter, user = EmbeddedPostgres(pg_scratch_dir), EmbeddedPostgres(pg_scratch_dir)
    starter.ensure_running()
    user.ensure_running()
    pid = _postmaster_pid(pg_scratch_dir / "pg")
    starter.stop()
    assert _postmaster_pid(pg_scratch_dir / "pg") == pid
    user.stop()
    assert _postmaster_pid(pg_scratch_dir / "pg") is None


def test_port_adds_loopback_listener(pg_scratch_dir: Path, unused_tcp_port: int) -> None:
    server = EmbeddedPostgres(pg_scratch_dir, port=unused_tcp_port)
    url = server.ensure_running()
    try:
        assert f"port={unused_tcp_port}" in url and "host=" in url  # still the unix socket
        ready = subprocess.run(
            [str(bin_path("pg_isready")), "-h", "127.0.0.1", "-p", str(unused_tcp_port)],
            check=False,
            capture_output=True,
        )
        assert ready.returncode == 0
    finally:
        server.stop()


async def test_long_data_dir_uses_private_socket_dir(pg_scratch_dir: Path) -> None:
    deep = pg_scratch_dir / ("x" * 60) / ("y" * 60)
    server = EmbeddedPostgres(deep)
    url = server.ensure_running()
    try:
        pid_file = read_pid_file(deep / "pg")
        assert pid_file is not None and pid_file.socket_dir is not None
        assert pid_file.socket_dir != deep / "pg"
        assert pid_file.socket_dir.stat().st_mode & 0o077 == 0
        assert await _select_one(url) == 1
    finally:
        server.stop()
    assert not any(pid_file.socket_dir.iterdir())  # the server removed its socket
    pid_file.socket_dir.rmdir()
