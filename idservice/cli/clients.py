"""`idservice clients add|list|disable|token` (contract 6.2; `token` is an extension)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx
import typer

from idservice.auth.administration import admin_actor
from idservice.auth.assertion import client_token_form, load_private_key
from idservice.auth.client_registry import (
    RegistryError,
    add_client,
    disable_client,
    list_clients,
    parse_jurisdiction,
    parse_organisation,
    parse_purpose,
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

app = typer.Typer(help="Machine clients (civil-status software).", no_args_is_help=True)


@app.command("add")
def add(
    client_id: Annotated[str, typer.Option("--id", help="client_id used in assertions")],
    cert: Annotated[Path, typer.Option(help="PEM certificate holding the client's public key",
                                       exists=True, dir_okay=False)],
    roles: Annotated[str, typer.Option(
        help="comma-separated: registrar, portal, ...")] = "registrar",
    jurisdiction: Annotated[str, typer.Option(help="3-digit province code or *")] = "*",
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    purpose: Annotated[str | None, typer.Option(
        help="role reader: the purpose every read of this client is recorded under")] = None,
    org_code: OrgCode = None,
    org_name: OrgName = None,
    system: OrgSystem = None,
) -> None:
    """Register a client and its key."""
    try:
        role_list, jur = parse_roles(roles), parse_jurisdiction(jurisdiction)
        purpose = parse_purpose(purpose)
        org = parse_organisation(org_code, org_name, system)
    except RegistryError as exc:
        raise fail(str(exc), 2) from exc

    async def main() -> None:
        async with admin_connection(settings()) as conn:
            await add_client(conn, client_id=client_id, cert_pem=cert.read_bytes(),
                             roles=role_list, jurisdiction=jur, name=name,
                             purpose=purpose, org=org, by=admin_actor())

    try:
        run(main)
    except RegistryError as exc:
        raise fail(str(exc)) from exc
    console.print(f"client [bold]{client_id}[/bold] added: roles {','.join(role_list)}, "
                  f"jurisdiction {jur}")
    if "reader" in role_list and purpose is None:
        console.print("warning: a reader without --purpose is refused (403) until it has one")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="JSON array")] = False) -> None:
    """List registered clients."""

    async def main() -> list[dict[str, object]]:
        async with admin_connection(settings()) as conn:
            return await list_clients(conn)

    clients = run(main)
    if as_json:
        typer.echo(json.dumps(clients, ensure_ascii=False, indent=2))
        return
    # Plain lines, never wrapped (rich would wrap at 80 columns when piped): one header row,
    # then tab-separated columns.
    typer.echo("ID\tNAME\tROLES\tJURISDICTION\tSTATE")
    for c in clients:
        state = "enabled" if c["enabled"] else "disabled"
        typer.echo(f"{c['id']}\t{c['name'] or ''}\t{','.join(c['roles'])}\t"  # type: ignore[arg-type]
                   f"{c['jurisdiction']}\t{state}")


@app.command("disable")
def disable(client_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Disable a client: new tokens are refused at once, live ones within seconds."""

    async def main() -> bool:
        async with admin_connection(settings()) as conn:
            return await disable_client(conn, client_id, by=admin_actor())

    if not run(main):
        raise fail(f"no client {client_id}")
    console.print(f"client [bold]{client_id}[/bold] disabled")


@app.command("token")
def token(
    client_id: Annotated[str, typer.Option("--id")],
    key: Annotated[Path, typer.Option(help="the client's PEM private key", exists=True,
                                      dir_okay=False)],
    server: Annotated[str | None, typer.Option(help="service URL (default: the origin)")] = None,
) -> None:
    """Get an access token with a private_key_jwt assertion (what civil-status software does)."""
    cfg = settings()
    base = (server or cfg.origin).rstrip("/")
    form = client_token_form(client_id, load_private_key(key.read_bytes()), cfg.client_token_url)
    response = httpx.post(f"{base}/v1/auth/client-token", data=form, timeout=30)
    if response.status_code != 200:
        raise fail(f"{response.status_code}: {response.text}")
    typer.echo(response.json()["access_token"])
