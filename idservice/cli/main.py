"""`idservice` command line (contract 6.2)."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer

from idservice.cli import audit as audit_cli
from idservice.cli import clients as clients_cli
from idservice.cli import office as office_cli
from idservice.cli import operators as operators_cli
from idservice.cli import persons as persons_cli
from idservice.cli import quality as quality_cli
from idservice.cli.agent import agent as agent_command
from idservice.cli.common import console, run, settings
from idservice.cli.login import login as login_command
from idservice.cli.prove import prove as prove_command
from idservice.db.migrate import migrate as apply_migrations
from idservice.db.schema import fresh_schema
from idservice.runtime import resolve_database

__all__ = ["app"]

app = typer.Typer(help="idservice: PIN issuance, officer login, tamper-evident audit log.",
                  no_args_is_help=True)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(clients_cli.app, name="clients")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(operators_cli.app, name="operators")
app.add_typer(persons_cli.app, name="persons")
app.add_typer(office_cli.app, name="office")
app.add_typer(quality_cli.app, name="quality")
app.command("login")(login_command)
app.command("agent")(agent_command)
audit_cli.app.command("prove")(prove_command)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"idservice {version('idservice')}")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
            typer.echo("idservice (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    """idservice: PIN issuance, officer login, tamper-evident audit log."""


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply migrations/ in order (idempotent, safe to run concurrently)."""

    async def main() -> list[str]:
        target = await resolve_database(settings(), apply_migrations=False)
        try:
            if target.owner_url is None:
                raise typer.Exit(2)
            return [f"{m.version:04d}_{m.name}" for m in await apply_migrations(target.owner_url)]
        finally:
            target.close()

    applied = run(main)
    console.print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


@db_app.command("schema")
def db_schema(
    output: Annotated[Path | None, typer.Option(
        help="write here instead of stdout, e.g. migrations/schema.sql")] = None,
) -> None:
    """Print the schema the migrations build: a new database in a throw-away embedded cluster,
    migrated, then `pg_dump --schema-only` (what migrations/schema.sql must contain)."""
    text = fresh_schema()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
) -> None:
    """Run the service from configuration."""
    from idservice.cli.serve import serve_app

    serve_app(host=host, port=port, workers=workers, dev=False)


@app.command()
def dev(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Embedded PostgreSQL + SoftHSM token + demo material under the data dir, then serve."""
    from idservice.cli.serve import serve_app

    serve_app(host=host, port=port, workers=1, dev=True)

