"""`idservice operators add|list|disable` and the officer-side `idservice login` (contract 6.2),
run as separate processes against the same database and a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from idservice.settings import Settings
from tests.support.fixtures_db import cli_env
from tests.support.officer_server import (
    OfficerLoginEnv,
    officer_env_fixture,  # noqa: F401 - the fixture
)
from tests.support.officer_tokens import pkcs11_tool

IDSERVICE = [sys.executable, "-m", "idservice.cli"]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_env(settings)}
    return subprocess.run([*IDSERVICE, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_operators_add_list_login_disable(officer_env: OfficerLoginEnv, settings: Settings,
                                          tmp_path: Path) -> None:
    cert = officer_env.cert("good", name="Nguyễn Văn An")
    cert_file = tmp_path / "officer.pem"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    added = _cli(settings, "operators", "add", "--cert", str(cert_file), "--name",
                 "Nguyễn Văn An", "--roles", "officer,auditor", "--jurisdiction", "079",
                 "--id", "cli-officer-079")
    assert added.returncode == 0, added.stderr
    again = _cli(settings, "operators", "add", "--cert", str(cert_file), "--name", "x",
                 "--roles", "officer", "--jurisdiction", "079")
    assert again.returncode != 0 and "already registered" in again.stderr
    bad_role = _cli(settings, "operators", "add", "--cert", str(cert_file), "--name", "x",
                    "--roles", "superuser", "--jurisdiction", "079")
    assert bad_role.returncode == 2

    listed = _cli(settings, "operators", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [o for o in json.loads(listed.stdout) if o["id"] == "cli-officer-079"]
    assert entry["name"] == "Nguyễn Văn An" and entry["roles"] == ["auditor", "officer"]
    assert entry["jurisdiction"] == "079" and entry["enabled"] is True

    der = tmp_path / "officer.der"
    der.write_bytes(cert.public_bytes(Encoding.DER))
    pin_file = tmp_path / "pin"
    pin_file.write_text(officer_env.officer.token.user_pin + "\n")
    token = officer_env.officer.token
    login = subprocess.run(
        [*IDSERVICE, "login", "--module", token.module_path, "--token-label",
         token.token_label, "--pin-file", str(pin_file), "--server", officer_env.origin],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False)
    # The token's own certificate ("token holder") is not registered: a precise refusal.
    assert login.returncode == 1 and "operator_unknown" in login.stderr, login.stderr
    pkcs11_tool(token, "--delete-object", "--type", "cert", "--id", "01")
    pkcs11_tool(token, "--write-object", str(der), "--type", "cert", "--id", "01")
    login = subprocess.run(
        [*IDSERVICE, "login", "--module", token.module_path, "--token-label",
         token.token_label, "--pin-file", str(pin_file), "--server", officer_env.origin],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False)
    assert login.returncode == 0, login.stderr
    access_token = login.stdout.strip()
    with officer_env.server.client(access_token) as client:
        read = client.get("/v1/persons/079000000001", params={"purpose": "cli test"})
    assert read.status_code == 404, read.text

    disabled = _cli(settings, "operators", "disable", "cli-officer-079")
    assert disabled.returncode == 0, disabled.stderr
    assert _cli(settings, "operators", "disable", "no-such-operator").returncode == 1
    listed = json.loads(_cli(settings, "operators", "list", "--json").stdout)
    assert [o["enabled"] for o in listed if o["id"] == "cli-officer-079"] == [False]
    refused = officer_env.login(cert)
    assert refused.status_code == 401 and refused.json()["code"] == "operator_disabled"


def test_wrong_token_pin_is_named_in_words(officer_env: OfficerLoginEnv, tmp_path: Path) -> None:
    """Issue 9 item 17: not `token operation failed: PinIncorrect`, but what happened and
    what to do (the tries left, as far as the token tells)."""
    token = officer_env.officer.token
    pin_file = tmp_path / "wrong.pin"
    pin_file.write_text("not-the-pin\n")
    login = subprocess.run(
        [*IDSERVICE, "login", "--module", token.module_path, "--token-label",
         token.token_label, "--pin-file", str(pin_file), "--server", officer_env.origin],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False)
    assert login.returncode == 1
    assert "wrong token PIN" in login.stderr and "try again" in login.stderr, login.stderr
    assert "PinIncorrect" not in login.stderr and "not-the-pin" not in login.stderr
