"""`idservice clients add --purpose` registers a reader's purpose once (contract 10): the
client's OSIA Data Access reads are recorded under it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from idservice.settings import Settings
from tests.integration.test_cli import _cli
from tests.support.osia import new_transaction, uin_attributes
from tests.support.pki import new_client_key
from tests.support.server import ServerThread

DbFn = Callable[..., list[Any]]


def test_reader_added_with_purpose_reads_under_it(settings: Settings, server: ServerThread,
                                                  registrar: Any, service_db: DbFn,
                                                  tmp_path: Path) -> None:
    key = new_client_key("reader")
    cert, key_file = tmp_path / "reader.pem", tmp_path / "reader.key"
    cert.write_bytes(key.cert_pem)
    key_file.write_bytes(key.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                               NoEncryption()))
    purpose = "Bảo hiểm xã hội: xét hưởng chế độ thai sản"
    added = _cli(settings, "clients", "add", "--id", "cli-reader-052", "--cert", str(cert),
                 "--roles", "reader", "--jurisdiction", "052", "--purpose", purpose)
    assert added.returncode == 0, added.stderr
    listed = _cli(settings, "clients", "list", "--json")
    assert '"purpose": "Bảo hiểm xã hội: xét hưởng chế độ thai sản"' in listed.stdout

    pin = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                         json=uin_attributes()).json()
    token = _cli(settings, "clients", "token", "--id", "cli-reader-052", "--key",
                 str(key_file), "--server", server.base_url)
    assert token.returncode == 0, token.stderr
    with server.client(token.stdout.strip()) as reader:
        response = reader.get(f"/osia/v1/persons/{pin}", params={"attributeNames": "uin"})
    assert response.status_code == 200, response.text
    rows = service_db("SELECT purpose FROM audit_event WHERE pin = $1 AND action = "
                      "'person.read'", pin)
    assert [r["purpose"] for r in rows] == [purpose]


def test_reader_added_without_purpose_is_warned(settings: Settings, tmp_path: Path,
                                                server: ServerThread) -> None:
    cert = tmp_path / "reader.pem"
    cert.write_bytes(new_client_key("reader").cert_pem)
    added = _cli(settings, "clients", "add", "--id", "cli-reader-nopurpose", "--cert",
                 str(cert), "--roles", "reader", "--jurisdiction", "052")
    assert added.returncode == 0, added.stderr
    assert "without --purpose is refused" in added.stdout


def test_purpose_with_control_characters_is_refused(settings: Settings, tmp_path: Path) -> None:
    cert = tmp_path / "reader.pem"
    cert.write_bytes(new_client_key("reader").cert_pem)
    result = _cli(settings, "clients", "add", "--id", "x", "--cert", str(cert), "--roles",
                  "reader", "--purpose", "a\u0007b")
    assert result.returncode == 2
    assert "--purpose" in result.stderr
