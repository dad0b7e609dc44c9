"""`idservice audit verify|checkpoints` (contract 6.2): the auditors' command-line tools."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import typer
from cryptography.hazmat.primitives.asymmetric import ec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hsm.errors import HsmError
from hsm.keystore import KeyStore
from idservice.audit import treestore
from idservice.audit.signed_note import CheckpointError, NoteVerifier, origin_for, split_notes
from idservice.audit.sources import DatabaseSource, HttpSource
from idservice.audit.verify import (
    CHECKPOINT_GRACE_SECONDS,
    AuditVerificationError,
    Report,
    verify_log,
)
from idservice.cli.common import console, err_console, fail, run, settings
from idservice.db.pool import connect
from idservice.runtime import resolve_database, resolve_hsm
from idservice.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

TOKEN_ENV = "IDSERVICE_ACCESS_TOKEN"


def _hsm_verifier(cfg: Settings) -> NoteVerifier:
    """The checkpoint keys as the HSM holds them (current and IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS):
    the anchor a rewritten database cannot move."""
    target = resolve_hsm(cfg)
    store = KeyStore(target.module_path, target.token_label, target.user_pin)
    keys: list[ec.EllipticCurvePublicKey] = []
    label = cfg.audit_key_label
    try:
        store.open()
        for label in [cfg.audit_key_label, *cfg.audit_previous_key_labels]:
            public = store.public_key(label)
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise fail(f"HSM key {label!r} is not an EC key", 2)
            keys.append(public)
    except HsmError as exc:
        raise fail(f"cannot read the checkpoint key {label!r} from the HSM "
                   f"({exc}); give it with --key", 2) from exc
    finally:
        store.close()
    return NoteVerifier(origin_for(cfg.origin), keys[0], tuple(keys[1:])).deduplicated()


def _progress() -> Progress:
    return Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, transient=True)


async def _verify_db(cfg: Settings, keys: list[bytes], trusted: list[str],
                     workers: int | None = None) -> Report:
    verifier = NoteVerifier.from_pems(origin_for(cfg.origin), keys) if keys else \
        _hsm_verifier(cfg)
    target = await resolve_database(cfg)
    try:
        url = target.auditor_url or target.service_url
        conn = await connect(url, application_name="idservice-audit-verify")
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                source = DatabaseSource(conn, url=url, workers=(os.cpu_count() or 1)
                                        if workers is None else workers)
                with _progress() as progress:
                    task = progress.add_task("rows", total=await source.count())
                    advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
                    return await verify_log(source, verifier, trusted, advance)
        finally:
            await conn.close()
    finally:
        target.close()


async def _verify_http(server: str, keys: list[bytes], trusted: list[str]) -> Report:
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise fail(f"--server needs an auditor's access token in {TOKEN_ENV}", 2)
    async with httpx.AsyncClient(base_url=server.rstrip("/"), timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        source = HttpSource(client)
        try:
            published = await source.verifier()
        except httpx.HTTPError as exc:
            raise fail(f"cannot read the checkpoint key from {server}: {exc}", 2) from exc
        verifier = NoteVerifier.from_pems(published.name, keys) if keys else published
        with _progress() as progress:
            task = progress.add_task("rows", total=None)
            return await verify_log(source, verifier, trusted,
                                    lambda n: progress.advance(task, n))


@app.command("verify")
def verify(
    server: Annotated[str | None, typer.Option(
        help=f"read the log through this service's API (auditor token in {TOKEN_ENV})")] = None,
    trusted_checkpoint: Annotated[Path | None, typer.Option(
        help="signed checkpoint(s) kept outside the database", exists=True, dir_okay=False)
    ] = None,
    key: Annotated[list[Path] | None, typer.Option(
        help="PEM public key to check signatures with; repeat it for the keys retired by "
             "rotations (default: the HSM's current and previous keys, or the server's)",
        exists=True, dir_okay=False)] = None,
    workers: Annotated[int | None, typer.Option(
        min=0, help="processes hashing the rows, each in the same snapshot (default: one per "
                    "CPU; 0: none, all in this process)")] = None,
) -> None:
    """Recompute the whole tree from the rows and check every signed checkpoint."""
    try:
        trusted = split_notes(trusted_checkpoint.read_text("utf-8")) if trusted_checkpoint \
            else []
        key_pems = [path.read_bytes() for path in key or []]
        if server:
            report = run(lambda: _verify_http(server, key_pems, trusted))
        else:
            report = run(lambda: _verify_db(settings(), key_pems, trusted, workers))
    except CheckpointError as exc:
        raise fail(str(exc), 2) from exc
    except AuditVerificationError as exc:
        first = exc.first
        err_console.print(f"[red]FAILED[/red] first bad index {first.index}: {first.message}")
        for problem in exc.problems[1:11]:
            err_console.print(f"  also at index {problem.index}: {problem.message}")
        if len(exc.problems) > 11:
            err_console.print(f"  ... and {len(exc.problems) - 11} more")
        raise typer.Exit(1) from exc
    trusted_note = f", trusted checkpoint(s) at {report.trusted}" if report.trusted else ""
    tail = (f"; {report.not_yet_checkpointed} newer events not yet checkpointed (less than "
            f"{CHECKPOINT_GRACE_SECONDS:.0f} s in the log)") if report.not_yet_checkpointed \
        else ""
    console.print(f"OK: {report.rows} events, {report.checkpoints} signed checkpoints; the "
                  f"rows reproduce every signed root (up to tree size "
                  f"{report.proven_size}){trusted_note}{tail}")


@app.command("checkpoints")
def checkpoints(
    since: Annotated[int, typer.Option(min=0, help="first tree size to print")] = 0,
) -> None:
    """Print the signed checkpoints (oldest first, blank-line separated) for safekeeping."""

    async def main() -> list[str]:
        target = await resolve_database(settings())
        try:
            conn = await connect(target.auditor_url or target.service_url)
            try:
                return await treestore.checkpoints(conn, since)
            finally:
                await conn.close()
        finally:
            target.close()

    typer.echo("\n".join(run(main)), nl=False)
