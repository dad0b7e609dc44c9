"""Administration is audited and separated (contract 7; issue 9 item 9).

The `operators` / `clients` commands run for real (subprocesses, the session's database in
either test mode) as the administrator role, and leave `admin.*` events naming the OS user;
the service's own role can read those tables and nothing more. `audit_event_add_partitions`
(callable by the service role) refuses months more than one month in the past.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.fixtures_db import cli_env, sql_error
from tests.support.pki import new_client_key
from tests.support.server import ServerThread

IDSERVICE = [sys.executable, "-m", "idservice.cli"]
OS_USER = pwd.getpwuid(os.getuid()).pw_name


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IDSERVICE, *args], env={**os.environ, **cli_env(settings), **env},
                          capture_output=True, text=True, timeout=120, check=False)


def _admin_events(service_db: Callable[..., list], key: str, value: str) -> list[dict]:
    rows = service_db("SELECT actor_type, actor_id, action, outcome, details::text AS details "
                      "FROM audit_event WHERE action LIKE 'admin.%' AND details ->> $1 = $2 "
                      "ORDER BY id", key, value)
    return [dict(r) | {"details": json.loads(r["details"])} for r in rows]


def _cert(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(new_client_key(name).cert_pem)
    return path


def test_clients_add_and_disable_write_admin_events(
        settings: Settings, server: ServerThread, service_db: Callable[..., list],
        tmp_path: Path) -> None:
    client_id = f"adm-{secrets.token_hex(4)}"
    added = _cli(settings, "clients", "add", "--id", client_id, "--cert",
                 str(_cert(tmp_path, client_id)), "--roles", "registrar", "--jurisdiction", "052")
    assert added.returncode == 0, added.stderr
    disabled = _cli(settings, "clients", "disable", client_id)
    assert disabled.returncode == 0, disabled.stderr
    events = _admin_events(service_db, "client_id", client_id)
    assert [(e["actor_type"], e["actor_id"], e["action"], e["outcome"]) for e in events] == [
        ("admin", OS_USER, "admin.client_add", "success"),
        ("admin", OS_USER, "admin.client_disable", "success")]
    assert events[0]["details"]["roles"] == ["registrar"]
    assert events[0]["details"]["jurisdiction"] == "052"
    assert len(events[0]["details"]["cert_sha256"]) == 64


def test_operators_add_and_disable_write_admin_events(
        settings: Settings, server: ServerThread, service_db: Callable[..., list],
        tmp_path: Path) -> None:
    operator_id = f"adm-op-{secrets.token_hex(4)}"
    added = _cli(settings, "operators", "add", "--cert", str(_cert(tmp_path, operator_id)),
                 "--name", "Trần Thị Bình", "--roles", "officer,auditor", "--jurisdiction",
                 "079", "--id", operator_id)
    assert added.returncode == 0, added.stderr
    disabled = _cli(settings, "operators", "disable", operator_id)
    assert disabled.returncode == 0, disabled.stderr
    events = _admin_events(service_db, "operator_id", operator_id)
    assert [(e["actor_type"], e["actor_id"], e["action"]) for e in events] == [
        ("admin", OS_USER, "admin.operator_add"), ("admin", OS_USER, "admin.operator_disable")]
    assert events[0]["details"]["roles"] == ["auditor", "officer"]


def test_a_refused_add_writes_no_event(settings: Settings, server: ServerThread,
                                       service_db: Callable[..., list], tmp_path: Path) -> None:
    client_id = f"adm-{secrets.token_hex(4)}"
    cert = str(_cert(tmp_path, client_id))
    assert _cli(settings, "clients", "add", "--id", client_id, "--cert", cert).returncode == 0
    again = _cli(settings, "clients", "add", "--id", client_id, "--cert", cert)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert [e["action"] for e in _admin_events(service_db, "client_id", client_id)] == [
        "admin.client_add"]


def test_configured_urls_without_admin_url_exit_2(settings: Settings, database: DatabaseTarget,
                                                  tmp_path: Path) -> None:
    """With configured URLs the commands never fall back to the service's role."""
    env = {**os.environ, **cli_env(settings), "IDSERVICE_DATABASE_URL": database.service_url}
    env.pop("IDSERVICE_ADMIN_DATABASE_URL", None)
    result = subprocess.run([*IDSERVICE, "clients", "list"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "IDSERVICE_ADMIN_DATABASE_URL" in result.stderr


@pytest.mark.parametrize("statement", [
    "INSERT INTO client (id, name, public_key_pem, cert_sha256, roles, jurisdiction) "
    "VALUES ('sneaky', 'x', 'x', 'x', '{registrar}', '*')",
    "UPDATE client SET roles = '{registrar,admin}', jurisdiction = '*'",
    "UPDATE operator SET enabled = true",
    "INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, cert_pem, roles, "
    "jurisdiction) VALUES ('sneaky', 'x', 'x', 'x', 'x', 'x', '{admin}', '*')",
    "DELETE FROM operator",
])
def test_service_role_writes_to_registry_permission_denied(database: DatabaseTarget,
                                                           statement: str) -> None:
    error = asyncio.run(sql_error(database.service_url, statement))
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), error


def test_service_role_still_reads_the_registry(service_db: Callable[..., list]) -> None:
    assert service_db("SELECT count(*) FROM client")[0][0] >= 0
    assert service_db("SELECT count(*) FROM operator")[0][0] >= 0


def test_partitions_more_than_a_month_back_invalid_parameter(database: DatabaseTarget) -> None:
    error = asyncio.run(sql_error(
        database.service_url,
        "SELECT audit_event_add_partitions(clock_timestamp() - interval '2 months', 0)"))
    assert isinstance(error, asyncpg.InvalidParameterValueError), error
    assert "more than one month in the past" in str(error)
    assert asyncio.run(sql_error(
        database.service_url,
        "SELECT audit_event_add_partitions(clock_timestamp() - interval '1 month', 0)")) is None
