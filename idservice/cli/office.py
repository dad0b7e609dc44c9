"""`idservice office ...`: the tool of an offline registration office (contract 8).

`init` and `reserve` and `sync` need the service; `issue` and `status` need nothing but the
journal under `--dir` (no network, the server may be stopped). See docs/offline.md.

Its users are commune civil-status officers: it speaks Vietnamese, or English with
`IDSERVICE_LANG=en` (the catalogues of `idservice/i18n.py`, shared with the web pages). What a
script parses stays as it is in both languages: the PIN alone on stdout, `--json`, exit codes.
"""

from __future__ import annotations

import json
import os
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
from idservice.i18n import locale_named, translations
from idservice.office.journal import Journal, JournalError
from idservice.persons.models import IssueRequest
from idservice.persons.rules import check_issue, check_province_exists
from idservice.pin.provinces import ProvinceTable

__all__ = ["app"]

_ = translations(locale_named(os.environ.get("IDSERVICE_LANG"))).gettext

app = typer.Typer(help=_("Offline registration office: reserve PINs online, issue them "
                         "offline, sync later."), no_args_is_help=True)

Dir = Annotated[Path, typer.Option("--dir", help=_("the office's journal directory"))]
_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def _journal(directory: Path) -> Journal:
    try:
        return Journal(directory)
    except JournalError as exc:
        raise fail(exc.text(_)) from None


def _token(journal: Journal, http: httpx.Client) -> str:
    server, client_id = journal.meta("server"), journal.meta("client_id")
    key = load_private_key(Path(journal.meta("key")).read_bytes())
    response = http.post(f"{server}/v1/auth/client-token",
                         data=client_token_form(client_id, key, f"{server}/v1/auth/client-token"))
    if response.status_code != 200:
        raise fail(_("the service refused the office's login (%(status)s: %(answer)s): check "
                     "--client-id and --key with the province")
                   % {"status": response.status_code, "answer": response.text[:300]})
    return str(response.json()["access_token"])


@app.command(help=_("Create the journal (safe to run again: it keeps what it holds)."))
def init(
    server: Annotated[str, typer.Option(help=_("the service's URL (its origin)"))],
    client_id: Annotated[str, typer.Option("--client-id", help=_("the office's client id"))],
    key: Annotated[Path, typer.Option(help=_("the office's private key (PEM)"), exists=True,
                                      dir_okay=False)],
    directory: Dir = Path("office"),
) -> None:
    try:
        Journal.create(directory, server=server, client_id=client_id, key_path=key)
    except JournalError as exc:
        raise fail(exc.text(_)) from None
    except ValueError as exc:  # load_private_key: not a PEM private key
        raise fail(_("%(file)s is not the office's private key (%(reason)s): use the key file "
                     "the province gave with the client id") % {"file": key, "reason": exc}
                   ) from None
    typer.echo(_("office journal ready in %(dir)s") % {"dir": directory})


@app.command(help=_("Reserve PINs for one bucket (online); the signed reservation is kept in "
                    "the journal."))
def reserve(
    sex: Annotated[str, typer.Option(help=_("M or F"))],
    birth_year: Annotated[int, typer.Option("--birth-year", help=_("the year of birth"))],
    count: Annotated[int, typer.Option(help=_("how many PINs (1..1000)"))],
    days: Annotated[int, typer.Option(help=_("until the next connection, at most 366"))] = 90,
    directory: Dir = Path("office"),
) -> None:
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
        raise fail(_("the service refused the reservation (%(status)s: %(answer)s)")
                   % {"status": response.status_code, "answer": response.text[:500]})
    try:
        payload = journal.add_reservation(response.json()["reservation"], jwks)
    except JournalError as exc:
        raise fail(exc.text(_)) from None
    total = sum(len(p) for p in payload["pins"].values())
    expires = datetime.fromtimestamp(payload["exp"], UTC).date()
    typer.echo(_("reserved %(count)s PINs (reservation %(id)s, usable until %(date)s)")
               % {"count": total, "id": payload["reservation_id"], "date": expires})


@app.command(help=_("Give a birth its PIN offline: prints the PIN alone, after the record is "
                    "on disk."))
def issue(
    file: Annotated[Path, typer.Option(help=_("the birth (a POST /v1/pins body, JSON)"),
                                       exists=True, dir_okay=False)],
    directory: Dir = Path("office"),
) -> None:
    raw = file.read_bytes()
    try:
        req = parse_model(IssueRequest, raw)
        provinces = ProvinceTable.load()
        check_province_exists(provinces, req.registration.province_code,
                              "registration.province_code")
        check_issue(req, provinces, datetime.now(UTC).date())
    except ProblemError as exc:
        # The rule's own text stays as the API words it (contract 1), with the field it names.
        raise fail(_("the birth cannot be registered as written (%(field)s): %(detail)s; "
                     "correct the file and run `office issue` again")
                   % {"field": exc.field or "-", "detail": exc.detail}) from None
    try:
        pin = Journal(directory).issue(req, json.loads(raw))
    except JournalError as exc:
        raise fail(exc.text(_)) from None
    except Exception as exc:  # a full disk (sqlite3.OperationalError), a broken file: no PIN
        raise fail(_("could not write the journal (%(reason)s): no PIN was given; free space "
                     "on the disk or call the province, then try again") % {"reason": exc}
                   ) from None
    typer.echo(pin)


@app.command(help=_("What is left per bucket; a warning below 20%."))
def status(
    as_json: Annotated[bool, typer.Option("--json", help=_("for scripts: JSON, in English"))
                       ] = False,
    directory: Dir = Path("office"),
) -> None:
    rows = _journal(directory).status()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        line = _("%(province)s %(bucket)s: %(left)s left of %(reserved)s (used %(used)s, synced "
                 "%(synced)s, not yet synced %(unsynced)s; usable until %(date)s)") % {
            "province": r["province_code"], "bucket": r["bucket"], "left": r["left"],
            "reserved": r["reserved"], "used": r["used"], "synced": r["synced"],
            "unsynced": r["unsynced"], "date": r["expires"][:10]}
        if r["warning"]:
            line += "  " + _("WARNING: fewer than 20% left - reserve more at the next "
                             "connection")
        typer.echo(line)


@app.command(help=_("Upload every unsynced record (online). Safe to run again after a cut."))
def sync(directory: Dir = Path("office")) -> None:
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
                    raise fail(_("the service refused the sync (%(status)s: %(answer)s): run "
                                 "`office sync` again later, or call the province")
                               % {"status": response.status_code,
                                  "answer": response.read()[:500].decode("utf-8", "replace")})
                done: list[tuple[int, int | None, str | None]] = []
                for text in response.iter_lines():
                    if not text:
                        continue
                    result = json.loads(text)
                    if result.get("line") is None:
                        journal.mark(done)
                        raise fail(_("the service stopped the sync (%(error)s): run "
                                     "`office sync` again") % {"error": result.get("error")})
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
    typer.echo(_("synced %(count)s record(s)") % {"count": len(records)})
    if refused:
        for pin, error in refused:
            problem = json.loads(error)
            typer.echo(_("REFUSED %(pin)s: %(code)s: %(detail)s") % {
                "pin": pin, "code": problem.get("code"), "detail": problem.get("detail")},
                err=True)
            if problem.get("code") == "possible_duplicate":
                typer.echo("  " + _(
                    "the service has a person like this child (%(candidates)s): if it is "
                    "really another child (twins, for example), run `idservice office "
                    "override --pin %(pin)s --reason \"...\"` and `office sync` again; if it "
                    "is the same child, report PIN %(pin)s to the province as not to be used") % {
                    "pin": pin, "candidates": ", ".join(
                        problem.get("details", {}).get("candidates", [])) or "-"}, err=True)
        sys.exit(1)


@app.command(help=_("Send again, with an override, a birth the service refused as a possible "
                    "duplicate (after checking it is another child)."))
def override(
    pin: Annotated[str, typer.Option(help=_("the PIN the office gave"))],
    reason: Annotated[str, typer.Option(help=_("why it is another child (kept in the audit "
                                               "log)"))],
    directory: Dir = Path("office"),
) -> None:
    try:
        _journal(directory).override(pin, reason)
    except JournalError as exc:
        raise fail(exc.text(_)) from None
    typer.echo(_("PIN %(pin)s will be sent again with the override at the next `office sync`")
               % {"pin": pin})
