"""Audit-checkpoint key rotation with key-ID overlap: a log whose first checkpoints were signed by
key A and the later ones by key B (after a restart with B as the label and A as previous) still
verifies from the database and through the API; without A it fails at the first checkpoint A
signed; `/v1/audit/keys` lists both; the retired key never signs again.

Runs in a fresh database (the session server signs checkpoints with its own key) with its own
SoftHSM token, as test_key_rotation.py does for the access-token key."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from hsm.errors import KeyNotFound
from idservice.app import create_app
from idservice.audit.signed_note import CheckpointError, NoteVerifier
from idservice.db.migrate import migrate
from idservice.db.roles import DatabaseUrls
from idservice.runtime import DatabaseTarget, ensure_service_keys
from idservice.settings import Settings
from tests.integration.test_audit_log_api import flush
from tests.support.debian_pg import PgServer
from tests.support.fixtures_db import cli_env, drop_database
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.server import ServerThread, free_port

OLD, NEW = "audit-rot-2025", "audit-rot-2026"


def _signer_ids(note: str) -> list[str]:
    """Key IDs (hex) of a note's signature lines."""
    sigs = note[note.rindex("\n\n") + 2:].splitlines()
    return [base64.b64decode(line.split(" ")[-1])[:4].hex() for line in sigs]


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **cli_env(settings), **env}
    return subprocess.run([sys.executable, "-m", "idservice.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=120, check=False)


def _operator_token(server: ServerThread, admin_url: str, role: str = "auditor") -> str:
    """An operator in this database (written as the administrator role, which alone may) and
    a token minted by the server's own issuer."""
    operator_id = f"{role}-{secrets.token_hex(4)}"
    fingerprint = secrets.token_hex(32)

    async def insert() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(
                "INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, "
                "cert_pem, roles, jurisdiction) VALUES ($1, $1, $2, 'CN=Test CA', $3, '-', "
                "$4, '*')", operator_id, fingerprint, secrets.token_hex(8), [role])
        finally:
            await conn.close()

    asyncio.run(insert())
    issued = server.call(server.services.issuer.issue(
        kind="operator", subject=operator_id, roles=(role,), jurisdiction="*",
        extra={"cnf": {"x5t#S256": fingerprint}}))
    return issued.token


def _checkpoints_after_reads(server: ServerThread, auditor: httpx.Client, rounds: int) -> None:
    """Each round: a few audited reads, then one signed checkpoint covering them."""
    for _ in range(rounds):
        for _ in range(3):
            assert auditor.get("/v1/audit/events", params={"limit": 1}).status_code == 200
        flush(server)


@dataclass
class RotatedLog:
    settings: Settings
    urls: DatabaseUrls
    server: ServerThread  # running with NEW as the key and OLD as previous
    auditor: httpx.Client
    token: str
    notes: list[str]
    first_new_size: int  # tree size of the first checkpoint signed by NEW


@pytest.fixture(scope="module")
def hsm_settings(settings: Settings, softhsm_dir: SoftHsmDir,
                 softhsm_token_factory: Callable) -> Settings:
    hsm = softhsm_token_factory("audit-rotation")
    return settings.model_copy(update={
        "pkcs11_module": hsm.module_path, "pkcs11_token_label": hsm.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "audit-rot-jwt",
        "audit_checkpoint_interval": 0.0})


@pytest.fixture(scope="module")
def module_database(pg_server: PgServer, pg_superuser_url: str) -> Iterator[DatabaseUrls]:
    """A new migrated database for this module's log (as `fresh_database`, module-scoped so the
    two servers and the rotation run once)."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    urls = asyncio.run(pg_server.ensure_database(name))
    asyncio.run(migrate(urls.owner))
    yield urls
    asyncio.run(drop_database(pg_superuser_url, name))


async def _max_checkpoint(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT max(tree_size) FROM audit_checkpoint"))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def rotated(hsm_settings: Settings, module_database: DatabaseUrls) -> Iterator[RotatedLog]:
    urls = module_database
    target = DatabaseTarget(urls.service, urls.owner, urls.auditor, None, urls.admin)
    before = ServerThread(create_app(hsm_settings.model_copy(update={"audit_key_label": OLD}),
                                     database=target), free_port()).start()
    try:
        with before.client(_operator_token(before, urls.admin)) as auditor:
            _checkpoints_after_reads(before, auditor, 2)
    finally:
        before.stop()
    old_size = asyncio.run(_max_checkpoint(urls.service))  # after the stop: nothing signs later

    rotated_settings = hsm_settings.model_copy(update={"audit_key_label": NEW,
                                                       "audit_previous_key_labels": [OLD]})
    after = ServerThread(create_app(rotated_settings, database=target), free_port()).start()
    token = _operator_token(after, urls.admin)
    auditor = after.client(token)
    try:
        _checkpoints_after_reads(after, auditor, 2)
        notes = [r["note"] for r in after.call(after.services.pool.fetch(
            "SELECT note FROM audit_checkpoint ORDER BY tree_size"))]
        first_new = min(int(n.split("\n")[1]) for n in notes
                        if int(n.split("\n")[1]) > old_size)
        yield RotatedLog(rotated_settings, urls, after, auditor, token, notes, first_new)
    finally:
        auditor.close()
        after.stop()


def _cli_env(log: RotatedLog, *, previous: str | None = OLD) -> dict[str, str]:
    s = log.settings
    assert s.pkcs11_module and s.pkcs11_token_label and s.pkcs11_pin
    env = {"IDSERVICE_DATABASE_URL": log.urls.auditor,
           "IDSERVICE_PKCS11_MODULE": s.pkcs11_module,
           "IDSERVICE_PKCS11_TOKEN_LABEL": s.pkcs11_token_label,
           "IDSERVICE_PKCS11_PIN": s.pkcs11_pin.get_secret_value(),
           "IDSERVICE_AUDIT_KEY_LABEL": NEW}
    if previous:
        env["IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS"] = previous
    return env


def test_old_checkpoints_verify_after_rotation_and_only_the_new_key_signs(
        rotated: RotatedLog) -> None:
    keys = rotated.auditor.get("/v1/audit/keys")
    assert keys.status_code == 200, keys.text
    listed = keys.json()["keys"]
    assert [k["status"] for k in listed] == ["current", "retired"]
    current = httpx.get(f"{rotated.server.base_url}/v1/audit/key")  # contract: current only
    assert current.text == listed[0]["public_key_pem"]
    assert {k["name"] for k in listed} == {current.headers["Idservice-Note-Key-Name"]}
    new_id, old_id = (k["key_id"] for k in listed)
    for k in listed:  # the key ID is the one derived from the PEM it is listed with
        assert NoteVerifier.from_pem(k["name"], k["public_key_pem"].encode()).key_id.hex() \
            == k["key_id"]

    sizes = [int(n.split("\n")[1]) for n in rotated.notes]
    signers = [_signer_ids(n) for n in rotated.notes]
    before = [ids for size, ids in zip(sizes, signers, strict=True)
              if size < rotated.first_new_size]
    assert len(before) >= 2 and all(ids == [old_id] for ids in before)
    after = [ids for size, ids in zip(sizes, signers, strict=True)
             if size >= rotated.first_new_size]
    assert len(after) >= 2 and all(ids == [new_id] for ids in after)  # retired key never signs

    from_db = _cli(rotated.settings, "audit", "verify", **_cli_env(rotated))
    assert from_db.returncode == 0, from_db.stderr
    assert from_db.stdout.startswith("OK:")
    over_http = _cli(rotated.settings, "audit", "verify", "--server", rotated.server.base_url,
                     **_cli_env(rotated, previous=None), IDSERVICE_ACCESS_TOKEN=rotated.token)
    assert over_http.returncode == 0, over_http.stderr


def test_without_the_retired_key_verify_names_the_first_old_checkpoint(
        rotated: RotatedLog) -> None:
    first_old = min(int(n.split("\n")[1]) for n in rotated.notes)
    result = _cli(rotated.settings, "audit", "verify", **_cli_env(rotated, previous=None))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"first bad index 0: checkpoint of size {first_old}:" in result.stderr
    assert "not signed by the key" in result.stderr


def test_key_files_are_repeatable(rotated: RotatedLog, tmp_path: Path) -> None:
    listed = rotated.auditor.get("/v1/audit/keys").json()["keys"]
    paths = []
    for k in listed:
        path = tmp_path / f"{k['key_id']}.pem"
        path.write_text(k["public_key_pem"])
        paths.append(str(path))
    env = _cli_env(rotated, previous=None) | {"IDSERVICE_AUDIT_KEY_LABEL": "no-such-label"}
    both = _cli(rotated.settings, "audit", "verify", "--key", paths[0], "--key", paths[1], **env)
    assert both.returncode == 0, both.stderr
    only_new = _cli(rotated.settings, "audit", "verify", "--key", paths[0], **env)
    assert only_new.returncode == 1 and "first bad index 0" in only_new.stderr
    server_pinned = _cli(rotated.settings, "audit", "verify", "--server",
                         rotated.server.base_url, "--key", paths[0], "--key", paths[1], **env,
                         IDSERVICE_ACCESS_TOKEN=rotated.token)
    assert server_pinned.returncode == 0, server_pinned.stderr


def test_listing_the_keys_needs_an_auditor_and_is_audited(rotated: RotatedLog) -> None:
    server = rotated.server
    assert httpx.get(f"{server.base_url}/v1/audit/keys").status_code == 401
    with server.client(_operator_token(server, rotated.urls.admin, "officer")) as officer:
        assert officer.get("/v1/audit/keys").status_code == 403
    response = rotated.auditor.get("/v1/audit/keys", headers={"X-Request-Id": "list-keys-1"})
    assert response.status_code == 200
    row = server.call(server.services.pool.fetchrow(
        "SELECT action, details->>'what' AS what, details->'key_ids' AS ids FROM audit_event "
        "WHERE request_id = 'list-keys-1'"))
    assert row is not None
    assert (row["action"], row["what"]) == ("audit.read", "checkpoint_keys")
    assert [k["key_id"] for k in response.json()["keys"]] == row["ids"]


def test_a_missing_retired_key_stops_the_start(
        settings: Settings, softhsm_dir: SoftHsmDir, softhsm_token_factory: Callable,
        database: DatabaseTarget) -> None:
    """A retired label is never generated: a typo must stop the start, not verify nothing.
    (Its own token: the module's server holds the login of the other one.)"""
    hsm = softhsm_token_factory("audit-rotation-typo")
    wrong = settings.model_copy(update={
        "pkcs11_module": hsm.module_path, "pkcs11_token_label": hsm.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "audit_key_label": NEW,
        "audit_previous_key_labels": ["audit-rot-typo"]})
    with pytest.raises(KeyNotFound, match="IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS names "
                                          "'audit-rot-typo'"):
        ensure_service_keys(wrong)  # `serve`, before any worker starts

    async def lifespan() -> None:  # each worker's start (create_app)
        app = create_app(wrong, database=database)
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(CheckpointError, match="retired checkpoint key 'audit-rot-typo'"):
        asyncio.run(lifespan())
