"""The CLI acts on the same data dir and database as the running server (contract 6.2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.fixtures_db import cli_env
from tests.support.pki import new_client_key
from tests.support.server import ServerThread

IDSERVICE = [sys.executable, "-m", "idservice.cli"]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_env(settings)}
    return subprocess.run([*IDSERVICE, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_db_migrate_twice_applies_nothing_new(settings: Settings, server: ServerThread) -> None:
    result = _cli(settings, "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert "nothing (up to date)" in result.stdout


def test_clients_add_list_token_disable(settings: Settings, server: ServerThread,
                                        tmp_path: Path) -> None:
    key = new_client_key("cli client")
    cert = tmp_path / "client.pem"
    cert.write_bytes(key.cert_pem)
    key_file = tmp_path / "client.key"
    key_file.write_bytes(key.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                               NoEncryption()))
    added = _cli(settings, "clients", "add", "--id", "cli-test-079", "--cert", str(cert),
                 "--roles", "registrar", "--jurisdiction", "079")
    assert added.returncode == 0, added.stderr
    duplicate = _cli(settings, "clients", "add", "--id", "cli-test-079", "--cert", str(cert))
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr

    listed = _cli(settings, "clients", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [c for c in json.loads(listed.stdout) if c["id"] == "cli-test-079"]
    assert entry["roles"] == ["registrar"] and entry["jurisdiction"] == "079"
    assert entry["enabled"] is True and "name" in entry

    token = _cli(settings, "clients", "token", "--id", "cli-test-079", "--key", str(key_file),
                 "--server", server.base_url)
    assert token.returncode == 0, token.stderr
    with server.client(token.stdout.strip()) as client:
        assert client.post("/v1/pins", json=issue_body("079")).status_code == 201

    disabled = _cli(settings, "clients", "disable", "cli-test-079")
    assert disabled.returncode == 0, disabled.stderr
    listed = json.loads(_cli(settings, "clients", "list", "--json").stdout)
    assert [c["enabled"] for c in listed if c["id"] == "cli-test-079"] == [False]
    refused = httpx.post(f"{server.base_url}/v1/auth/client-token", data={})
    assert refused.status_code == 400


def test_bad_roles_are_refused_before_touching_the_database(settings: Settings) -> None:
    result = _cli(settings, "clients", "add", "--id", "x", "--cert", __file__,
                  "--roles", "superuser")
    assert result.returncode == 2
    assert "roles must be some of" in result.stderr
