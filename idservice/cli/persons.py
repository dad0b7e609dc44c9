"""`idservice persons get|search|correct` (issue 15, item 9): officers without the web pages
read, search and correct records with their login token (from `idservice login`), over the
same JSON API, so every call is checked and audited exactly as the API's.

The token comes from `--token` or `IDSERVICE_ACCESS_TOKEN`; the server from `--server` (default:
the configured origin). A purpose is required for reads and searches (contract 4). Output is
plain text for people (dates `dd/mm/yyyy`, a header row, tab-separated columns that never wrap
when piped), or `--json` for programs; a refusal prints the service's code and what to do,
and exits 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from idservice.cli.common import fail, settings
from idservice.pin.format import grouped
from idservice.web.formats import parse_day, show_date

__all__ = ["app"]

app = typer.Typer(help="Person records for officers (uses your login token).",
                  no_args_is_help=True)

TOKEN_ENV = "IDSERVICE_ACCESS_TOKEN"
Token = Annotated[str, typer.Option(envvar=TOKEN_ENV, show_envvar=True,
                                    help="access token from `idservice login`")]
Server = Annotated[str | None, typer.Option(help="service URL (default: the configured origin)")]
Purpose = Annotated[str, typer.Option(help="why you access the record (recorded in the log)")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON")]

_NEXT_STEP = {
    401: "your token is missing, expired or revoked: log in again with `idservice login`",
    403: "your role or jurisdiction does not allow this",
    404: "no person has this PIN",
}


def _client(server: str | None, token: str) -> httpx.Client:
    base = (server or settings().origin).rstrip("/")
    return httpx.Client(base_url=base, timeout=30, follow_redirects=False,
                        headers={"Authorization": f"Bearer {token}"})


def _call(server: str | None, token: str, method: str, path: str, **kw: Any) -> Any:
    try:
        with _client(server, token) as client:
            response = client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the service: {type(exc).__name__}") from exc
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:300]}
        code = problem.get("code", response.status_code)
        field = f" ({problem['field']})" if problem.get("field") else ""
        hint = _NEXT_STEP.get(response.status_code)
        raise fail(f"{code}{field}: {problem.get('detail', '')}" + (f" - {hint}" if hint else ""))
    return response.json()


def _print_record(record: dict[str, Any]) -> None:
    child, reg = record["child"], record["registration"]
    lines = [("PIN", grouped(record["pin"])), ("status", record["status"])]
    if record.get("replaced_by"):
        lines.append(("replaced by", grouped(record["replaced_by"])))
    if record.get("replaces"):
        lines.append(("replaces", grouped(record["replaces"])))
    lines += [("full name", child["full_name"]),
              ("other names", "; ".join(child.get("other_names") or [])),
              ("sex", child["sex"]), ("date of birth", show_date(child["date_of_birth"])),
              ("place of birth", child.get("place_of_birth") or ""),
              ("home town", child.get("home_town") or ""),
              ("ethnicity", child.get("ethnicity") or ""),
              ("nationality", child.get("nationality") or ""),
              ("registered by", reg["authority"]), ("registration", reg["number"]),
              ("registered on", show_date(reg["registered_on"])),
              ("province", reg["province_code"])]
    for role in ("father", "mother"):
        parent = record.get(role)
        lines.append((role, "" if not parent else parent["full_name"] + (
            f" ({parent['pin']})" if parent.get("pin") else "")))
    for label, value in lines:
        typer.echo(f"{label}:\t{value}")


@app.command("get")
def get(pin: Annotated[str, typer.Argument(help="the 12-digit PIN")], purpose: Purpose,
        token: Token, server: Server = None, as_json: AsJson = False) -> None:
    """Read one record (audited as person.read with your purpose)."""
    record = _call(server, token, "GET", f"/v1/persons/{''.join(pin.split())}",
                   params={"purpose": purpose})
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
    else:
        _print_record(record)
        typer.echo(f"purpose recorded:\t{purpose}")


@app.command("search")
def search(
    name: Annotated[str, typer.Option("--name", help="full name (accents and case ignored)")],
    purpose: Purpose, token: Token,
    dob: Annotated[str | None, typer.Option(help="date of birth, dd/mm/yyyy")] = None,
    province: Annotated[str | None, typer.Option(help="3-digit province code")] = None,
    server: Server = None, as_json: AsJson = False,
) -> None:
    """Search by name (+ date of birth, province): at most 100 records of your jurisdiction."""
    params = {"full_name": name, "purpose": purpose}
    if dob:
        try:
            params["date_of_birth"] = parse_day(dob).isoformat()
        except ValueError:
            raise fail("--dob must be a date dd/mm/yyyy", 2) from None
    if province:
        params["province_code"] = province
    found = _call(server, token, "GET", "/v1/persons", params=params)
    if as_json:
        typer.echo(json.dumps(found["persons"], ensure_ascii=False, indent=2))
        return
    typer.echo("PIN\tFULL NAME\tDATE OF BIRTH\tSEX\tSTATUS\tPROVINCE")
    for p in found["persons"]:
        typer.echo("\t".join([p["pin"], p["child"]["full_name"],
                              show_date(p["child"]["date_of_birth"]), p["child"]["sex"],
                              p["status"], p["registration"]["province_code"]]))


def _parent(name: str | None, parent_pin: str | None, nationality: str | None,
            remove: bool) -> dict[str, Any] | None:
    if remove:
        return None
    parent: dict[str, Any] = {}
    if name is not None:
        parent["full_name"] = name
    if parent_pin is not None:
        parent["pin"] = parent_pin or None
    if nationality is not None:
        parent["nationality"] = nationality or None
    return parent


@app.command("correct")
def correct(
    pin: Annotated[str, typer.Argument(help="the 12-digit PIN")],
    reason: Annotated[str, typer.Option(help="why the record must change (recorded)")],
    token: Token,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="FIELD=VALUE of the child (full_name, sex, date_of_birth dd/mm/yyyy, "
        "place_of_birth, home_town, ethnicity, nationality, other_names a;b); repeatable")] = None,
    father_name: Annotated[str | None, typer.Option()] = None,
    father_pin: Annotated[str | None, typer.Option(help="'' removes it")] = None,
    father_nationality: Annotated[str | None, typer.Option()] = None,
    remove_father: Annotated[bool, typer.Option()] = False,
    mother_name: Annotated[str | None, typer.Option()] = None,
    mother_pin: Annotated[str | None, typer.Option(help="'' removes it")] = None,
    mother_nationality: Annotated[str | None, typer.Option()] = None,
    remove_mother: Annotated[bool, typer.Option()] = False,
    server: Server = None, as_json: AsJson = False,
) -> None:
    """Correct a record. A change of sex or birth year issues a new PIN and cancels this one."""
    changes: dict[str, Any] = {}
    for item in set_ or []:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise fail(f"--set {item!r}: write FIELD=VALUE", 2)
        if field == "date_of_birth":
            try:
                changes[field] = parse_day(value).isoformat()
            except ValueError:
                raise fail("date_of_birth must be a date dd/mm/yyyy", 2) from None
        elif field == "other_names":
            changes[field] = [n.strip() for n in value.split(";") if n.strip()]
        else:
            changes[field] = value
    for role, values in (("father", (father_name, father_pin, father_nationality,
                                     remove_father)),
                         ("mother", (mother_name, mother_pin, mother_nationality,
                                     remove_mother))):
        if values[3] or any(v is not None for v in values[:3]):
            changes[role] = _parent(*values)
    if not changes:
        raise fail("nothing to correct: give --set FIELD=VALUE or a parent option", 2)
    clean = "".join(pin.split())
    record = _call(server, token, "POST", f"/v1/persons/{clean}/corrections",
                   json={"changes": changes, "reason": reason})
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    if record["pin"] != clean:
        typer.echo(f"new PIN {grouped(record['pin'])} issued; {grouped(clean)} is cancelled "
                   "and points to it: give the family a new PIN notice")
    else:
        typer.echo(f"corrected; the PIN {grouped(clean)} is unchanged")
    _print_record(record)
