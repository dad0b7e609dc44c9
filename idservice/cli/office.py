"""`idservice office ...`: the tool of an offline registration office (contract 8).

`init` and `reserve` and `sync` need the service; `issue` and `status` need nothing but the
journal under `--dir` (no network, the server may be stopped). See docs/offline.md.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from idservice.auth.assertion import client_token_form, load_private_key
from idservice.cli.common import fail
from idservice.errors import ProblemError
from idservice.http.bodies import parse_model
from idservice.office.journal import Journal, JournalError
from idservice.persons.models import IssueRequest
from idservice.persons.rules import check_issue, check_province_exists
from idservice.pin.provinces import ProvinceTable

__all__ = ["app"]

app = typer.Typer(help="Offline registration office: reserve PINs online, issue them offline, "
                  "sync later.", no_args_is_help=True)

Dir = Annotated[Path, typer.Option("--dir", help="the office's journal directory")]
_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def _journal(directory: Path) -> Journal:
    try:
        return Journal(directory)
    except JournalError as exc:
        raise fail(str(exc)) from None


def _token(journal: Journal, http: httpx.Client) -> str:
    server, client_id = journal.meta("server"), journal.meta("client_id")
    key = load_private_key(Path(journal.meta("key")).read_bytes())
    response = http.post(f"{server}/v1/auth/client-token",
                         data=client_token_form(client_id, key, f"{server}/v1/auth/client-token"))
    if response.status_code != 200:
        raise fail(f"the service refused the office's login ({response.status_code}: "
                   f"{response.text[:300]}): check --client-id and --key with the province")
    return str(response.json()["access_token"])


@app.command()
def init(
    server: Annotated[str, typer.Option(help="the service's URL (its origin)")],
    client_id: Annotated[str, typer.Option("--client-id", help="the office's client id")],
    key: Annotated[Path, typer.Option(help="the office's private key (PEM)", exists=True,
                                      dir_okay=False)],
    directory: Dir = Path("office"),
) -> None:
    """Create the journal (safe to run again: it keeps what it holds)."""
    try:
        Journal.create(directory, server=server, client_id=client_id, key_path=key)
    except (JournalError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"office journal ready in {directory}")


@app.command()
def reserve(
    sex: Annotated[str, typer.Option(help="M or F")],
    birth_year: Annotated[int, typer.Option("--birth-year")],
    count: Annotated[int, typer.Option(help="how many PINs (1..1000)")],
    days: Annotated[int, typer.Option(help="until the next connection, at most 366")] = 90,
    directory: Dir = Path("office"),
) -> None:
    """Reserve PINs for one bucket (online); the signed reservation is kept in the journal."""
    journal = _journal(directory)
    server = journal.meta("server")
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False) as http:
        token = _token(journal, http)
        jwks = http.get(f"{server}/.well-known/jwks.json").json()
        response = http.post(f"{server}/v1/reservations",
                             headers={"Authorization": f"Bearer {token}"},
                             json={"buckets": [{"sex": sex, "birth_year": birth_year,
                                                "count": count}], "days": days})
    if response.status_code != 201:
        raise fail(f"reservation refused ({response.status_code}): {response.text[:500]}")
    try:
        payload = journal.add_reservation(response.json()["reservation"], jwks)
    except JournalError as exc:
        raise fail(str(exc)) from None
    total = sum(len(p) for p in payload["pins"].values())
    expires = datetime.fromtimestamp(payload["exp"], UTC).date()
    typer.echo(f"reserved {total} PINs (reservation {payload['reservation_id']}, "
               f"usable until {expires})")


@app.command()
def issue(
    file: Annotated[Path, typer.Option(help="the birth (a POST /v1/pins body, JSON)",
                                       exists=True, dir_okay=False)],
    directory: Dir = Path("office"),
) -> None:
    """Give a birth its PIN offline: prints the PIN alone, after the record is on disk."""
    raw = file.read_bytes()
    try:
        req = parse_model(IssueRequest, raw)
        provinces = ProvinceTable.load()
        check_province_exists(provinces, req.registration.province_code,
                              "registration.province_code")
        check_issue(req, provinces, datetime.now(UTC).date())
    except ProblemError as exc:
        where = f" ({exc.field})" if exc.field else ""
        raise fail(f"the birth cannot be registered as written{where}: {exc.detail}") from None
    try:
        pin = Journal(directory).issue(req, json.loads(raw))
    except JournalError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a full disk (sqlite3.OperationalError), a broken file: no PIN
        raise fail(f"could not write the journal ({exc}): no PIN was given; free space on "
                   "the disk or call the province, then try again") from None
    typer.echo(pin)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    directory: Dir = Path("office"),
) -> None:
    """What is left per bucket; a warning below 20%."""
    rows = _journal(directory).status()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        line = (f"{r['province_code']} {r['bucket']}: {r['left']} left of {r['reserved']} "
                f"(used {r['used']}, synced {r['synced']}, not yet synced {r['unsynced']}; "
                f"usable until {r['expires'][:10]})")
        if r["warning"]:
            line += "  WARNING: fewer than 20% left - reserve more at the next connection"
        typer.echo(line)


@app.command()
def sync(directory: Dir = Path("office")) -> None:
    """Upload every unsynced record (online). Safe to run again after a cut."""
    journal = _journal(directory)
    server = journal.meta("server")
    records = journal.unsynced()
    by_reservation: dict[str, list[Any]] = {}
    for rec in records:
        by_reservation.setdefault(rec.reservation_id, []).append(rec)
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False) as http:
        token = _token(journal, http) if records else ""
        for reservation_id, recs in by_reservation.items():
            body = b"".join(json.dumps(r.line(), ensure_ascii=False).encode() + b"\n"
                            for r in recs)
            with http.stream("POST", f"{server}/v1/reservations/{reservation_id}/issued",
                             content=body, headers={"Authorization": f"Bearer {token}",
                                                    "Content-Type": "application/x-ndjson"}
                             ) as response:
                if response.status_code != 200:
                    raise fail(f"sync refused ({response.status_code}): "
                               f"{response.read()[:500]!r}")
                done: list[tuple[int, int | None, str | None]] = []
                for text in response.iter_lines():
                    if not text:
                        continue
                    result = json.loads(text)
                    if result.get("line") is None:
                        journal.mark(done)
                        raise fail(f"sync stopped by the service: {result.get('error')}; "
                                   "run `office sync` again")
                    rec = recs[result["line"] - 1]
                    if "error" in result:
                        done.append((rec.seq, None, json.dumps(result["error"])))
                    else:
                        done.append((rec.seq, int(result["status"]), None))
                    if len(done) >= 200:
                        journal.mark(done)
                        done = []
                journal.mark(done)
    refused = journal.refused()
    typer.echo(f"synced {len(records)} record(s)")
    if refused:
        for pin, error in refused:
            problem = json.loads(error)
            typer.echo(f"REFUSED {pin}: {problem.get('code')}: {problem.get('detail')}",
                       err=True)
        sys.exit(1)
