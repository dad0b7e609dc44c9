"""The office tool (`idservice office ...`, contract 8, issue 13 item 4), as real processes
against the session's real server; `office issue` never talks to the server."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.support.bodies import issue_body
from tests.support.server import ServerThread

CLI = [sys.executable, "-m", "idservice.cli"]


def office(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "office", *args, "--dir", str(directory)], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1", "IDSERVICE_LANG": "en"})


def write_births(folder: Path, n: int, sex: str = "M") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"birth-{sex}-{i}.json"
        path.write_text(json.dumps(issue_body("052", sex=sex, dob="2026-11-02",
                                              registered_on="2026-11-20")))
        paths.append(path)
    return paths


def new_office(tmp: Path, directory: Path, server: ServerThread,
               make_client: Callable[..., tuple[str, Any]]) -> str:
    client_id, key = make_client("052")
    key_file = tmp / f"{client_id}.key.pem"
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    done = office(directory, "init", "--server", server.base_url, "--client-id", client_id,
                  "--key", str(key_file))
    assert done.returncode == 0, done.stderr
    return client_id


def test_office_issue_concurrent_never_twice_refuses_when_used_up_and_syncs_idempotently(
    tmp_path: Path, server: ServerThread, make_client: Callable[..., tuple[str, Any]],
    service_db: Callable[..., list],
) -> None:
    directory = tmp_path / "office"
    new_office(tmp_path, directory, server, make_client)
    reserved = office(directory, "reserve", "--sex", "M", "--birth-year", "2026", "--count", "12")
    assert reserved.returncode == 0, reserved.stderr
    births = write_births(tmp_path / "births", 14)

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return office(directory, "issue", "--file", str(path))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, births))
    pins = [r.stdout.strip() for r in results if r.returncode == 0]
    assert len(pins) == 12 and len(set(pins)) == 12 and all(len(p) == 12 for p in pins)
    refused = [r for r in results if r.returncode != 0]
    assert len(refused) == 2 and all(r.stdout == "" for r in refused)
    assert "no unused reserved PIN left" in refused[0].stderr

    status = json.loads(office(directory, "status", "--json").stdout)
    assert status[0]["left"] == 0 and status[0]["warning"] is True

    first = office(directory, "sync")
    assert first.returncode == 0, first.stderr
    again = office(directory, "sync")
    assert again.returncode == 0 and "synced 0" in again.stdout
    rows = service_db("SELECT pin, status, details->>'office_signature' AS sig FROM person "
                      "JOIN audit_event USING (pin) WHERE pin = ANY($1::text[]) "
                      "AND action = 'pin.issue'", pins)
    assert sorted(r["pin"] for r in rows) == sorted(pins)
    assert all(r["status"] == "active" and r["sig"] for r in rows)


def test_office_issue_altered_reservation_refused_before_use(
    tmp_path: Path, server: ServerThread, make_client: Callable[..., tuple[str, Any]],
) -> None:
    directory = tmp_path / "office"
    new_office(tmp_path, directory, server, make_client)
    assert office(directory, "reserve", "--sex", "M", "--birth-year", "2026",
                  "--count", "2").returncode == 0
    db = sqlite3.connect(directory / "journal.sqlite3")
    jws = db.execute("SELECT jws FROM reservation").fetchone()[0]
    header, payload, signature = jws.split(".")
    forged = f"{header}.{payload[:-4]}AAAA.{signature}"  # one claim altered, signature kept
    db.execute("UPDATE reservation SET jws = ?", (forged,))
    db.commit()
    db.close()
    [birth] = write_births(tmp_path / "births", 1)
    result = office(directory, "issue", "--file", str(birth))
    assert result.returncode == 1 and result.stdout == ""
    assert "does not verify" in result.stderr or "not in the signed" in result.stderr


def test_office_issue_on_a_full_disk_fails_without_a_pin(
    tmp_path: Path, server: ServerThread, make_client: Callable[..., tuple[str, Any]],
) -> None:
    assert os.geteuid() == 0 and shutil.which("mount"), "mounting a small tmpfs needs root"
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        directory = mount / "office"
        new_office(tmp_path, directory, server, make_client)
        assert office(directory, "reserve", "--sex", "M", "--birth-year", "2026",
                      "--count", "5").returncode == 0
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill every byte left
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        [birth] = write_births(tmp_path / "births", 1)
        result = office(directory, "issue", "--file", str(birth))
        assert result.returncode == 1 and result.stdout == ""
        assert "no PIN was given" in result.stderr
        filler.unlink()
        ok = office(directory, "issue", "--file", str(birth))
        assert ok.returncode == 0 and len(ok.stdout.strip()) == 12
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_office_issue_same_birth_again_same_pin_other_content_refused(
    tmp_path: Path, server: ServerThread, make_client: Callable[..., tuple[str, Any]],
) -> None:
    """After a crash that hid the printed PIN, the officer runs `issue` again: the same birth
    gets the same PIN (the one the service will store), never a second one."""
    directory = tmp_path / "office"
    new_office(tmp_path, directory, server, make_client)
    assert office(directory, "reserve", "--sex", "M", "--birth-year", "2026",
                  "--count", "3").returncode == 0
    [birth] = write_births(tmp_path / "births", 1)
    first = office(directory, "issue", "--file", str(birth))
    again = office(directory, "issue", "--file", str(birth))
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and len(first.stdout.strip()) == 12
    changed = json.loads(birth.read_text())
    changed["child"]["full_name"] = "Lê Văn An"
    birth.write_text(json.dumps(changed))
    other = office(directory, "issue", "--file", str(birth))
    assert other.returncode == 1 and other.stdout == ""
    assert f"already has PIN {first.stdout.strip()}" in other.stderr
    status = json.loads(office(directory, "status", "--json").stdout)
    assert status[0]["used"] == 1 and status[0]["left"] == 2


def test_office_tool_speaks_vietnamese_by_default_and_english_on_request(
    tmp_path: Path, server: ServerThread, make_client: Callable[..., tuple[str, Any]],
) -> None:
    """Commune officers read the tool's messages: Vietnamese unless IDSERVICE_LANG=en; the PIN
    on stdout and `--json` are the same in both languages (scripts parse them)."""
    def run(lang: str | None, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "IDSERVICE_LANG"}
        if lang is not None:
            env["IDSERVICE_LANG"] = lang
        return subprocess.run([*CLI, "office", *args], capture_output=True, text=True,
                              timeout=120, env={**env, "NO_COLOR": "1", "COLUMNS": "200"})

    missing = tmp_path / "nowhere"
    vi, en = run(None, "status", "--dir", str(missing)), run("en", "status", "--dir", str(missing))
    assert vi.returncode == en.returncode == 1
    assert "chưa có sổ nhật ký văn phòng" in vi.stderr and "office init" in vi.stderr
    assert "no office journal in" in en.stderr
    assert "Dành trước mã định danh" in run(None, "--help").stdout
    assert "Reserve PINs for one bucket" in run("en", "--help").stdout

    directory = tmp_path / "office"
    new_office(tmp_path, directory, server, make_client)
    reserved = run(None, "reserve", "--sex", "M", "--birth-year", "2026", "--count", "1",
                   "--dir", str(directory))
    assert reserved.returncode == 0 and "đã dành trước 1 mã định danh" in reserved.stdout
    [birth] = write_births(tmp_path / "births", 1)
    issued = run(None, "issue", "--file", str(birth), "--dir", str(directory))
    assert issued.returncode == 0 and len(issued.stdout.strip()) == 12  # the PIN alone
    status = run(None, "status", "--dir", str(directory))
    assert "còn 0 trên 1" in status.stdout and "CẢNH BÁO" in status.stdout
    assert "WARNING" in run("en", "status", "--dir", str(directory)).stdout
    assert json.loads(run(None, "status", "--json", "--dir", str(directory)).stdout)[0]["left"] == 0
    bad = json.loads(birth.read_text())
    bad["registration"]["province_code"] = "999"
    birth.write_text(json.dumps(bad))
    refused = run(None, "issue", "--file", str(birth), "--dir", str(directory))
    assert refused.returncode == 1 and refused.stdout == ""
    assert "không thể đăng ký khai sinh như đã ghi (registration.province_code)" in refused.stderr


def test_office_override_sends_a_refused_possible_duplicate_again_and_it_is_stored(
    tmp_path: Path, server: ServerThread, make_client: Callable[..., tuple[str, Any]],
    registrar: Any, service_db: Callable[..., list],
) -> None:
    """Twins: one registered online, the other offline. The sync refuses the offline one as a
    possible duplicate; the family already holds its PIN, so the officer checks and sends it
    again with `office override`: it is stored under the same PIN, with the override audited."""
    name = "Võ Văn " + tmp_path.name[-8:].replace("_", "x")
    online = issue_body("052", sex="M", dob="2026-11-02", registered_on="2026-11-20",
                        full_name=name)
    first = registrar.post("/v1/pins", json=online)
    assert first.status_code == 201, first.text
    directory = tmp_path / "office"
    new_office(tmp_path, directory, server, make_client)
    assert office(directory, "reserve", "--sex", "M", "--birth-year", "2026",
                  "--count", "1").returncode == 0
    twin = issue_body("052", sex="M", dob="2026-11-02", registered_on="2026-11-20",
                      full_name=name)
    twin["mother"] = online["mother"]
    birth = tmp_path / "twin.json"
    birth.write_text(json.dumps(twin))
    pin = office(directory, "issue", "--file", str(birth)).stdout.strip()
    assert len(pin) == 12

    refused = office(directory, "sync")
    assert refused.returncode == 1
    assert f"REFUSED {pin}: possible_duplicate" in refused.stderr
    assert f"office override --pin {pin}" in refused.stderr
    assert first.json()["pin"] in refused.stderr  # the candidate the officer checks
    wrong = office(directory, "override", "--pin", first.json()["pin"], "--reason", "twins")
    assert wrong.returncode == 1 and "not a birth of this journal" in wrong.stderr

    assert office(directory, "override", "--pin", pin, "--reason", "sinh đôi").returncode == 0
    again = office(directory, "sync")
    assert again.returncode == 0, again.stderr
    events = service_db("SELECT action, details->>'reason' AS reason FROM audit_event "
                        "WHERE pin = $1 AND outcome = 'issued' ORDER BY id", pin)
    assert [e["action"] for e in events] == ["pin.issue", "pin.duplicate_override"]
    assert events[1]["reason"] == "sinh đôi"
    assert service_db("SELECT status FROM person WHERE pin = $1", pin)[0]["status"] == "active"
    done = office(directory, "override", "--pin", pin, "--reason", "again")
    assert done.returncode == 1 and "was not refused as a possible duplicate" in done.stderr
