"""`idservice persons get|search|correct`, list commands and `--version` (issue 15, item 9),
run as separate processes against the session server with an officer's login token (in
`IDSERVICE_ACCESS_TOKEN`, as `idservice login` prints it), so every call is the API's, checked
and audited as such."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import httpx

from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.fixtures_db import cli_env
from tests.support.server import ServerThread

IDSERVICE = [sys.executable, "-m", "idservice.cli"]


def _cli(settings: Settings, *args: str, token: str | None = None,
         columns: int = 40) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_env(settings), "COLUMNS": str(columns)}
    env.pop("IDSERVICE_ACCESS_TOKEN", None)
    if token is not None:
        env["IDSERVICE_ACCESS_TOKEN"] = token
    return subprocess.run([*IDSERVICE, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _issue(registrar: httpx.Client, **kw: object) -> str:
    response = registrar.post("/v1/pins", json=issue_body("052", **kw))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def test_persons_get_search_correct_with_the_login_token(
    settings: Settings, server: ServerThread, registrar: httpx.Client,
    officer_token: Callable[..., str], service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar, full_name="Bùi Thị Dòng Lệnh", dob="2024-01-31")
    token = officer_token("052")
    url = server.base_url

    got = _cli(settings, "persons", "get", pin, "--purpose", "hồ sơ 7/2026", "--server", url,
               token=token)
    assert got.returncode == 0, got.stderr
    assert "full name:\tBùi Thị Dòng Lệnh" in got.stdout
    assert "date of birth:\t31/01/2024" in got.stdout
    reads = service_db("SELECT purpose FROM audit_event WHERE action = 'person.read' AND "
                       "pin = $1", pin)
    assert [r["purpose"] for r in reads] == ["hồ sơ 7/2026"]

    found = _cli(settings, "persons", "search", "--name", "bui thi dong lenh", "--dob",
                 "31/01/2024", "--purpose", "tra cứu", "--server", url, token=token)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == "PIN\tFULL NAME\tDATE OF BIRTH\tSEX\tSTATUS\tPROVINCE"
    assert lines[1:] == [f"{pin}\tBùi Thị Dòng Lệnh\t31/01/2024\tF\tactive\t052"]  # no wrap

    as_json = _cli(settings, "persons", "search", "--name", "bui thi dong lenh", "--purpose",
                   "x", "--server", url, "--json", token=token)
    assert [p["pin"] for p in json.loads(as_json.stdout)] == [pin]

    fixed = _cli(settings, "persons", "correct", pin, "--set", "place_of_birth=Tuy Phước",
                 "--reason", "sai nơi sinh", "--server", url, token=token)
    assert fixed.returncode == 0, fixed.stderr
    assert "unchanged" in fixed.stdout and "place of birth:\tTuy Phước" in fixed.stdout
    reissued = _cli(settings, "persons", "correct", pin, "--set", "sex=M", "--reason",
                    "nhầm giới tính", "--server", url, "--json", token=token)
    assert reissued.returncode == 0, reissued.stderr
    new = json.loads(reissued.stdout)
    assert new["pin"] != pin and new["replaces"] == pin


def test_persons_cli_refusals_say_what_to_do(settings: Settings, server: ServerThread,
                                             registrar: httpx.Client,
                                             officer_token: Callable[..., str]) -> None:
    pin = _issue(registrar)
    url = server.base_url
    no_token = _cli(settings, "persons", "get", pin, "--purpose", "x", "--server", url)
    assert no_token.returncode == 2 and "IDSERVICE_ACCESS_TOKEN" in no_token.stderr
    bad_token = _cli(settings, "persons", "get", pin, "--purpose", "x", "--server", url,
                     token="not.a.token")
    assert bad_token.returncode == 1 and "unauthenticated" in bad_token.stderr
    assert "idservice login" in bad_token.stderr
    other = _cli(settings, "persons", "get", pin, "--purpose", "x", "--server", url,
                 token=officer_token("079"))
    assert other.returncode == 1 and "forbidden" in other.stderr
    blank = _cli(settings, "persons", "get", pin, "--purpose", " ", "--server", url,
                 token=officer_token("052"))
    assert blank.returncode == 1 and "purpose_required" in blank.stderr
    nothing = _cli(settings, "persons", "correct", pin, "--reason", "x", "--server", url,
                   token=officer_token("052"))
    assert nothing.returncode == 2


def test_list_commands_print_a_header_and_do_not_wrap(
    settings: Settings, server: ServerThread, make_client: Callable[..., tuple[str, object]],
    officer_token: Callable[..., str],
) -> None:
    officer_token("052")  # at least one operator, with a long id and name
    make_client("052")
    for command in ("operators", "clients"):
        listed = _cli(settings, command, "list", columns=30)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0] == "ID\tNAME\tROLES\tJURISDICTION\tSTATE"
        assert len(lines) > 1 and all(line.count("\t") == 4 for line in lines), lines


def test_version(settings: Settings) -> None:
    shown = _cli(settings, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == "idservice 0.1.0"
