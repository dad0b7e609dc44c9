"""`idservice quality report [--province CODE] [--json]` (contract 9; issue 11 item 3).

Runs as the auditor database role (the embedded cluster's `idservice_audit`, or
`IDSERVICE_AUDITOR_DATABASE_URL`: a member of idservice_auditor), never as the service's, and
records `quality.report` (actor: the OS user, as for administration).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from idservice.audit.events import RequestContext
from idservice.auth.administration import admin_actor
from idservice.cli.common import console, fail, run, settings
from idservice.db.pool import connect
from idservice.persons.quality import KINDS, QualityReport, quality_report
from idservice.pin.provinces import default_table
from idservice.runtime import resolve_database

__all__ = ["app"]

app = typer.Typer(help="How clean the registry is (contract 9).", no_args_is_help=True)

AUDITOR_URL_MISSING = (
    "IDSERVICE_AUDITOR_DATABASE_URL is not set: the quality report reads as the auditor "
    "database role, never as the service's. Create a login role in the group "
    "idservice_auditor and put its URL there.")


async def _report(province: str | None, examples: int) -> QualityReport:
    cfg = settings()
    target = await resolve_database(cfg)
    try:
        url = target.auditor_url or cfg.auditor_database_url
        if url is None:
            raise fail(AUDITOR_URL_MISSING, 2)
        conn = await connect(url, application_name="idservice-quality-report")
        try:
            now = datetime.now(UTC)
            return await quality_report(
                conn, RequestContext(admin_actor(), None, None), default_table(),
                today=now.date(), now=now, province=province, examples=examples)
        finally:
            await conn.close()
    finally:
        target.close()


def _table(report: QualityReport) -> Table:
    table = Table(title=f"Data quality, {report.as_json()['generated_at']}")
    table.add_column("province")
    for kind in KINDS:
        table.add_column(kind.replace("_", " "), justify="right")
    for province, counts in report.counts.items():
        table.add_row(province, *(f"{counts.get(kind, 0):,}" for kind in KINDS))
    return table


@app.command("report")
def report(
    province: Annotated[str | None, typer.Option(help="only this 3-digit province code")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for machines")] = False,
    examples: Annotated[int, typer.Option(min=0, max=1000,
                                          help="findings listed per kind and province")] = 20,
) -> None:
    """Count each finding per province, with example PINs."""
    if province is not None and not (len(province) == 3 and province.isascii()
                                     and province.isdigit()):
        raise fail("--province must be a 3-digit province code", 2)
    result = run(lambda: _report(province, examples))
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
        return
    if not result.counts:
        console.print("No findings: every record passes every check.")
        return
    console.print(_table(result))
    for kind in KINDS:
        found = [f for f in result.findings if f["kind"] == kind]
        if found:
            console.print(f"\n[bold]{kind}[/bold] (examples)")
            for f in found:
                console.print(f"  {f['province']}  {' '.join(f['pins'])}  {f['detail']}")
