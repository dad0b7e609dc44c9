"""Running the server: `serve` (from configuration) and `dev` (zero-setup demo)."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

import uvicorn

from idservice.app import create_app
from idservice.auth.client_registry import ClientRegistryError, add_client
from idservice.cli.common import console
from idservice.db.pool import connect
from idservice.demo import ensure_demo_client
from idservice.runtime import DatabaseTarget, resolve_database, resolve_hsm
from idservice.settings import Settings, get_settings

__all__ = ["serve_app"]


async def _register_demo_client(cfg: Settings, db: DatabaseTarget) -> None:
    client = ensure_demo_client(cfg.data_dir)
    conn = await connect(db.service_url)
    try:
        await add_client(conn, client_id=client.id, cert_pem=client.cert_path.read_bytes(),
                         roles=["registrar"], jurisdiction=client.jurisdiction,
                         name="Demo civil-status software (Binh Dinh, 052)")
    except ClientRegistryError:
        pass  # registered on an earlier run
    finally:
        await conn.close()


def _print_dev_banner(cfg: Settings, db: DatabaseTarget, host: str, port: int) -> None:
    client = ensure_demo_client(cfg.data_dir)
    base = f"http://{host}:{port}"
    console.print(f"""[bold]idservice dev[/bold] (data dir {cfg.data_dir.resolve()})
  database : embedded PostgreSQL in {cfg.data_dir / 'pg'} (service role idservice_app)
  HSM      : SoftHSM token 'idservice' in {cfg.data_dir / 'softhsm'}
  registrar: client [bold]{client.id}[/bold], key {client.key_path}
  API docs : {base}/docs

Get a registrar token and issue a PIN:
  TOKEN=$(.venv/bin/idservice clients token --id {client.id} --key {client.key_path})
  curl -s -X POST {base}/v1/pins -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' -d @examples/issue.json
""")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve_app(*, host: str, port: int, workers: int, dev: bool) -> None:
    # uvicorn re-raises SIGTERM after its graceful shutdown; with this handler in place that
    # becomes SystemExit, so the `finally` below still stops the embedded cluster we started.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cfg = get_settings()
    if dev and cfg.origin == "http://127.0.0.1:8000" and (host, port) != ("127.0.0.1", 8000):
        cfg = cfg.model_copy(update={"origin": f"http://{host}:{port}"})
        os.environ["IDSERVICE_ORIGIN"] = cfg.origin
    db = asyncio.run(resolve_database(cfg))
    try:
        if dev:
            resolve_hsm(cfg)
            asyncio.run(_register_demo_client(cfg, db))
            _print_dev_banner(cfg, db, host, port)
        log_config = None  # our structlog JSON lines, not uvicorn's text format
        if workers == 1:
            uvicorn.run(create_app(cfg, database=db), host=host, port=port,
                        log_config=log_config, access_log=False, proxy_headers=False)
        else:
            # Workers find the same embedded cluster through the data dir (or the URLs).
            uvicorn.run("idservice.app:create_app_from_env", factory=True, host=host, port=port,
                        workers=workers, log_config=log_config, access_log=False)
    finally:
        db.close()
