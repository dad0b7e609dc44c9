"""Issue 13's real-world run of an offline office: real `idservice office` processes against a
real server that is stopped while the office works.

Two buckets are reserved; the server is stopped (its port refuses connections); two shell loops
run `office issue` at once for 50 births; one loop is killed with SIGKILL (its whole process
group, so an `office issue` in flight dies too) and its officer then runs the interrupted birth
and the rest again; the server is started again on the same port; `office sync` stores
everything. Every PIN a loop printed must then be stored with its registration, no PIN twice,
one complete `pin.issue` event per birth, and `idservice audit verify` passes.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import SecretStr

from idservice.app import create_app
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.faults.conftest import fetch, register_client
from tests.integration.test_audit_log_api import flush
from tests.support.bodies import issue_body
from tests.support.pki import new_client_key
from tests.support.server import ServerThread, free_port

pytestmark = pytest.mark.slow  # ~55 CLI processes; tens of seconds on a busy machine

CLI = [sys.executable, "-m", "idservice.cli"]
BIRTHS = 50
KILL_AFTER = 8  # printed PINs of loop A before it is killed

# One officer's loop: for each birth file, its name then the PIN `office issue` printed (a line
# holding the name alone: no PIN was printed for it).
LOOP = """
for f in "$@"; do
  printf '%s ' "$(basename "$f")" >> "$OUT"
  "$PY" -m idservice.cli office issue --file "$f" --dir "$DIR" >> "$OUT" || exit 1
done
"""


def _office(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "office", *args, "--dir", str(directory)], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1", "IDSERVICE_LANG": "en"})


def _loop(directory: Path, out: Path, births: list[Path]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NO_COLOR": "1", "OUT": str(out), "DIR": str(directory),
           "PY": sys.executable}
    return subprocess.Popen(["bash", "-c", LOOP, "loop", *map(str, births)], env=env,
                            stderr=subprocess.PIPE, start_new_session=True)


def _printed(out: Path) -> dict[str, str]:
    """birth file name -> the PIN printed for it (complete lines only)."""
    text = out.read_text() if out.exists() else ""
    pairs = [line.split() for line in text.split("\n")[:-1]]  # the last piece is unfinished
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def _refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_offline_office_two_loops_kill_restart_sync_stores_every_printed_pin_once(
    tmp_path: Path, settings: Settings, own_database: DatabaseTarget,
    softhsm_dir: Any, softhsm_token_factory: Callable[..., Any],
) -> None:
    # Its own token (one KeyStore per token per process) and so its own database (its
    # checkpoints are signed with its own key).
    token = softhsm_token_factory("offline-real")
    port = free_port()
    own = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "offline-real-es256",
        "origin": f"http://127.0.0.1:{port}"})

    def start() -> ServerThread:
        return ServerThread(create_app(own, database=own_database), port).start()

    def service_db(sql: str, *args: object) -> list[Any]:
        return fetch(own_database.service_url, sql, *args)

    office_server = start()
    directory = tmp_path / "office"
    client_id = f"office-{secrets.token_hex(4)}"
    client = new_client_key(client_id)
    register_client(own_database.admin_url, client_id, client.cert_pem)
    key = client.key
    key_file = tmp_path / "office.key.pem"
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    assert _office(directory, "init", "--server", office_server.base_url, "--client-id",
                   client_id, "--key", str(key_file)).returncode == 0
    for sex in ("M", "F"):
        done = _office(directory, "reserve", "--sex", sex, "--birth-year", "2026",
                       "--count", "30", "--days", "30")
        assert done.returncode == 0, done.stderr

    office_server.stop()
    assert _refuses_connections(port)  # from here on the office has no service at all

    births_dir = tmp_path / "births"
    births_dir.mkdir()
    births: list[Path] = []
    numbers: dict[str, str] = {}  # birth file name -> registration number
    for i in range(BIRTHS):
        path = births_dir / f"birth-{i:02d}.json"
        numbers[path.name] = f"RW-{secrets.token_hex(4)}-{i}"
        path.write_text(json.dumps(issue_body(
            "052", sex="MF"[i % 2], dob="2026-11-02", registered_on="2026-11-20",
            number=numbers[path.name])))
        births.append(path)
    a_births, b_births = births[:25], births[25:]  # each loop: boys and girls
    out_a, out_b = tmp_path / "a.txt", tmp_path / "b.txt"
    loop_a, loop_b = _loop(directory, out_a, a_births), _loop(directory, out_b, b_births)

    deadline = time.monotonic() + 120
    while len(_printed(out_a)) < KILL_AFTER:
        assert loop_a.poll() is None, loop_a.stderr.read() if loop_a.stderr else ""
        assert time.monotonic() < deadline, "loop A printed too few PINs in 120 s"
        time.sleep(0.05)
    time.sleep(random.uniform(0.1, 0.8))  # land inside the next `office issue`, wherever
    os.killpg(loop_a.pid, signal.SIGKILL)
    loop_a.wait(timeout=30)
    assert loop_a.returncode == -signal.SIGKILL
    killed_printed = _printed(out_a)
    assert KILL_AFTER <= len(killed_printed) < len(a_births)

    # The officer of loop A runs the interrupted birth and the rest again.
    rest = [b for b in a_births if b.name not in killed_printed]
    out_a2 = tmp_path / "a2.txt"
    loop_a2 = _loop(directory, out_a2, rest)
    for loop in (loop_b, loop_a2):
        assert loop.wait(timeout=180) == 0, loop.stderr.read() if loop.stderr else ""
    printed = {**killed_printed, **_printed(out_a2), **_printed(out_b)}
    assert sorted(printed) == sorted(b.name for b in births)
    pins = list(printed.values())
    assert len(set(pins)) == BIRTHS  # no PIN twice, across both loops and the kill

    status = json.loads(_office(directory, "status", "--json").stdout)
    assert sum(r["used"] for r in status) == BIRTHS  # the killed issue wasted no PIN either
    assert sum(r["unsynced"] for r in status) == BIRTHS

    office_server = start()  # the same service again, on the same port and key
    try:
        synced = _office(directory, "sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert f"synced {BIRTHS} record(s)" in synced.stdout
        again = _office(directory, "sync")
        assert again.returncode == 0 and "synced 0 record(s)" in again.stdout

        stored = {r["pin"]: r for r in service_db(
            "SELECT pin, registration_number, status FROM person WHERE pin = ANY($1::text[])",
            pins)}
        for name, pin in printed.items():  # every printed PIN, with its own registration
            assert stored[pin]["registration_number"] == numbers[name], (name, pin)
            assert stored[pin]["status"] == "active"
        registrations = service_db(
            "SELECT registration_number, count(*) AS n FROM person "
            "WHERE registration_number = ANY($1::text[]) GROUP BY 1", list(numbers.values()))
        assert len(registrations) == BIRTHS and all(r["n"] == 1 for r in registrations)

        events = service_db(
            "SELECT pin, outcome, actor_id, details FROM audit_event WHERE action = 'pin.issue' "
            "AND pin = ANY($1::text[])", pins)
        assert sorted(e["pin"] for e in events) == sorted(pins)  # one event per birth
        reservation_ids = {r["reservation_id"] for r in service_db(
            "SELECT details->>'reservation_id' AS reservation_id FROM audit_event "
            "WHERE action = 'pin.reserve' AND actor_id = $1", client_id)}
        assert len(reservation_ids) == 2
        for e in events:
            details = e["details"] if isinstance(e["details"], dict) else json.loads(
                e["details"])
            assert e["outcome"] == "issued" and e["actor_id"] == client_id
            assert details["offline"] is True
            assert details["reservation_id"] in reservation_ids
            assert details["issued_offline_at"] and details["office_signature"]

        flush(office_server)
        assert own.pkcs11_module and own.pkcs11_pin
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDSERVICE_")}
        env.update({"IDSERVICE_DATABASE_URL": own_database.auditor_url or "",
                    "IDSERVICE_ORIGIN": own.origin, "IDSERVICE_PKCS11_MODULE": own.pkcs11_module,
                    "IDSERVICE_PKCS11_TOKEN_LABEL": token.token_label,
                    "IDSERVICE_PKCS11_PIN": own.pkcs11_pin.get_secret_value()})
        verified = subprocess.run([*CLI, "audit", "verify"], env=env, capture_output=True,
                                  text=True, timeout=120, check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.startswith("OK:")
    finally:
        office_server.stop()
