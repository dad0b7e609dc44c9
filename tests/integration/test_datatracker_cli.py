"""`clients add` / `operators add --org-code --org-name --system` (issue 14 item 2): stored,
listed, refused when malformed, and what a citizen's report names (real CLI processes)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from idservice.settings import Settings
from tests.support.fixtures_db import cli_env
from tests.support.pki import new_client_key
from tests.support.server import ServerThread

IDSERVICE = [sys.executable, "-m", "idservice.cli"]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_env(settings)}
    return subprocess.run([*IDSERVICE, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _cert(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(new_client_key(name).cert_pem)
    return str(path)


ORG = ("--org-code", "G01.H40", "--org-name", "Cổng Dịch vụ công quốc gia",
       "--system", "Cổng DVC")


def test_clients_and_operators_carry_their_organisation(settings: Settings, server: ServerThread,
                                                        tmp_path: Path) -> None:
    client_id = f"portal-{secrets.token_hex(4)}"
    added = _cli(settings, "clients", "add", "--id", client_id, "--cert",
                 _cert(tmp_path, client_id), "--roles", "portal", *ORG)
    assert added.returncode == 0, added.stderr
    (client,) = [c for c in json.loads(_cli(settings, "clients", "list", "--json").stdout)
                 if c["id"] == client_id]
    assert (client["roles"], client["org_code"], client["org_name"], client["system"]) == \
        (["portal"], "G01.H40", "Cổng Dịch vụ công quốc gia", "Cổng DVC")

    operator_id = f"investigator-{secrets.token_hex(4)}"
    added = _cli(settings, "operators", "add", "--id", operator_id, "--cert",
                 _cert(tmp_path, operator_id), "--name", "Trần Văn Điều Tra",
                 "--roles", "officer,investigator", "--jurisdiction", "001", *ORG)
    assert added.returncode == 0, added.stderr
    (operator,) = [o for o in json.loads(_cli(settings, "operators", "list", "--json").stdout)
                   if o["id"] == operator_id]
    assert operator["roles"] == ["investigator", "officer"]
    assert (operator["org_code"], operator["org_name"], operator["system"]) == \
        ("G01.H40", "Cổng Dịch vụ công quốc gia", "Cổng DVC")


@pytest.mark.parametrize(("option", "value"), [
    ("--org-code", "has space"), ("--org-code", "-leading"), ("--org-code", "x" * 65),
    ("--org-name", ""), ("--org-name", "line\nbreak"), ("--system", "x" * 201),
])
def test_malformed_organisation_is_refused_before_touching_the_database(
        settings: Settings, tmp_path: Path, option: str, value: str) -> None:
    client_id = f"bad-{secrets.token_hex(4)}"
    result = _cli(settings, "clients", "add", "--id", client_id, "--cert",
                  _cert(tmp_path, client_id), "--roles", "portal", option, value)
    assert result.returncode == 2, result.stderr
    assert option in result.stderr
    listed = json.loads(_cli(settings, "clients", "list", "--json").stdout)
    assert client_id not in {c["id"] for c in listed}
