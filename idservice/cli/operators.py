"""`idservice operators add|list|disable` (contract 6.2): officers, auditors and admins who log
in with their USB-token certificate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from idservice.auth.administration import admin_actor
from idservice.auth.client_registry import parse_organisation
from idservice.auth.operators import (
    RegistryError,
    add_operator,
    disable_operator,
    list_operators,
    parse_jurisdiction,
    parse_roles,
)
from idservice.cli.common import (
    OrgCode,
    OrgName,
    OrgSystem,
    admin_connection,
    console,
    fail,
    run,
    settings,
)

__all__ = ["app"]

app = typer.Typer(help="Operators (officers, auditors, admins with USB tokens).",
                  no_args_is_help=True)


@app.command("add")
def add(
    cert: Annotated[Path, typer.Option(help="the operator's PEM certificate (from the token)",
                                       exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option(help="display name")],
    roles: Annotated[str, typer.Option(
        help="comma-separated: officer, investigator, auditor, admin")],
    jurisdiction: Annotated[str, typer.Option(help="3-digit province code or *")],
    operator_id: Annotated[str | None, typer.Option(
        "--id", help="operator id (default: from the certificate's CN and fingerprint)")] = None,
    org_code: OrgCode = None,
    org_name: OrgName = None,
    system: OrgSystem = None,
) -> None:
    """Register an operator by certificate."""
    try:
        role_list, jur = parse_roles(roles), parse_jurisdiction(jurisdiction)
        org = parse_organisation(org_code, org_name, system)
    except RegistryError as exc:
        raise fail(str(exc), 2) from exc
    if not name.strip():
        raise fail("--name must not be empty", 2)

    async def main() -> str:
        async with admin_connection(settings()) as conn:
            return await add_operator(conn, cert_pem=cert.read_bytes(), name=name.strip(),
                                      roles=role_list, jurisdiction=jur,
                                      operator_id=operator_id, by=admin_actor(), org=org)

    try:
        new_id = run(main)
    except RegistryError as exc:
        raise fail(str(exc)) from exc
    console.print(f"operator [bold]{new_id}[/bold] added: roles {','.join(role_list)}, "
                  f"jurisdiction {jur}")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="JSON array")] = False) -> None:
    """List registered operators."""

    async def main() -> list[dict[str, object]]:
        async with admin_connection(settings()) as conn:
            return await list_operators(conn)

    operators = run(main)
    if as_json:
        typer.echo(json.dumps(operators, ensure_ascii=False, indent=2))
        return
    # Plain lines, never wrapped (rich would wrap at 80 columns when piped): one header row,
    # then tab-separated columns.
    typer.echo("ID\tNAME\tROLES\tJURISDICTION\tSTATE")
    for o in operators:
        state = "enabled" if o["enabled"] else "disabled"
        typer.echo(f"{o['id']}\t{o['name']}\t{','.join(o['roles'])}\t"  # type: ignore[arg-type]
                   f"{o['jurisdiction']}\t{state}")


@app.command("disable")
def disable(operator_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Disable an operator: logins are refused at once, live tokens stop within seconds."""

    async def main() -> bool:
        async with admin_connection(settings()) as conn:
            return await disable_operator(conn, operator_id, by=admin_actor())

    if not run(main):
        raise fail(f"no operator {operator_id}")
    console.print(f"operator [bold]{operator_id}[/bold] disabled")
