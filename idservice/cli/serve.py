"""Running the server: `serve` (from configuration) and `dev` (zero-setup demo)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from types import FrameType

import uvicorn

from idservice.app import create_app
from idservice.auth.administration import admin_actor
from idservice.auth.client_registry import RegistryError, add_client
from idservice.cli.common import ADMIN_URL_MISSING, console, err_console
from idservice.db.pool import connect
from idservice.demo import demo_pki_settings, ensure_demo_client, register_demo_operators
from idservice.devpki import DemoPki, ensure_demo_pki
from idservice.heap import settle_heap
from idservice.logging import configure_logging, get_logger
from idservice.metrics import prepare_multiprocess_dir
from idservice.runtime import (
    DatabaseTarget,
    ensure_service_keys,
    resolve_database,
    resolve_hsm,
)
from idservice.settings import Settings, env_value, get_settings

__all__ = ["serve_app"]

_log = get_logger(__name__)


async def _register_demo_client(cfg: Settings, db: DatabaseTarget, pki: DemoPki) -> None:
    client = ensure_demo_client(cfg.data_dir)
    if db.admin_url is None:
        raise SystemExit(ADMIN_URL_MISSING)
    conn = await connect(db.admin_url)
    by = admin_actor()
    try:
        with contextlib.suppress(RegistryError):  # registered on an earlier run
            await add_client(conn, client_id=client.id, cert_pem=client.cert_path.read_bytes(),
                             roles=["registrar"], jurisdiction=client.jurisdiction,
                             name="Demo civil-status software (Binh Dinh, 052)", by=by)
        await register_demo_operators(conn, pki, by)
    finally:
        await conn.close()


def _print_dev_banner(cfg: Settings, db: DatabaseTarget, host: str, port: int,
                      pki: DemoPki) -> None:
    client = ensure_demo_client(cfg.data_dir)
    base = f"http://{host}:{port}"
    demo = cfg.data_dir / "demo"
    tokens = ", ".join(f"{op.id} ({','.join(op.roles)} {op.jurisdiction}"
                       f"{'; certificate REVOKED' if op.revoked else ''})" for op in pki.operators)
    login = (f".venv/bin/idservice login --module {pki.module_path} --token-label officer1 \\\n"
             f"       --pin-file {demo / 'officer1.pin'} --server {base}")
    agent = (f".venv/bin/idservice agent --module {pki.module_path} --token-label auditor1 \\\n"
             f"       --allow-origin {base}")
    console.print(f"""[bold]idservice dev[/bold] (data dir {cfg.data_dir.resolve()})
  database : embedded PostgreSQL in {cfg.data_dir / 'pg'} (service role idservice_app)
  HSM      : SoftHSM token 'idservice' in {cfg.data_dir / 'softhsm'}
  registrar: client [bold]{client.id}[/bold], key {client.key_path}
  officers : SoftHSM tokens {tokens}; PINs in {demo}/<label>.pin
  PKI      : trust anchors {cfg.trust_anchors}, issuing CAs {cfg.issuing_cas},
             CRLs {cfg.crls} (demo CRLs re-signed at each start)
  API docs : {base}/docs
  web UI   : {base}/ui/ (auditors; log in with the token through the signing agent)

Get a registrar token and issue a PIN (or a batch, one registration per line):
  TOKEN=$(.venv/bin/idservice clients token --id {client.id} --key {client.key_path})
  curl -s -X POST {base}/v1/pins -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' -d @examples/issue.json
  curl -s -X POST {base}/v1/pins:batch -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/x-ndjson' --data-binary @examples/births.ndjson

Log in as officer1 with its token and read a record (every read states its purpose):
  export SOFTHSM2_CONF={pki.softhsm_conf}
  OFFICER=$({login})
  curl -s "{base}/v1/persons/<PIN>?purpose=kiem+tra+ho+so" -H "Authorization: Bearer $OFFICER"

Web UI: start the signing agent for the auditor token (it asks you to confirm each login on
this terminal with the token PIN, from {demo / 'auditor1.pin'}), then open {base}/ui/login:
  export SOFTHSM2_CONF={pki.softhsm_conf}
  {agent}
""", soft_wrap=True)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _check_dev_parts(cfg: Settings) -> None:
    """`serve` runs what is configured, never a silent fallback to the zero-setup parts:
    those need IDSERVICE_ALLOW_DEV_PARTS=1 (a trial), and are named in the log either way."""
    parts = cfg.dev_parts()
    if not parts:
        return
    if not cfg.allow_dev_parts:
        _log.error("dev_parts_refused", parts=parts,
                   hint="configure IDSERVICE_DATABASE_URL and IDSERVICE_PKCS11_MODULE (a real "
                        "HSM), or set IDSERVICE_ALLOW_DEV_PARTS=1 for a trial install; "
                        "`idservice dev` runs the demo")
        err_console.print("[red]error:[/red] serve refuses to start on "
                          + "; ".join(parts) + ". Configure IDSERVICE_DATABASE_URL and "
                          "IDSERVICE_PKCS11_MODULE, or set IDSERVICE_ALLOW_DEV_PARTS=1 "
                          "for a trial install.")
        raise SystemExit(2)
    _log.warning("dev_parts_allowed", parts=parts,
                 hint="IDSERVICE_ALLOW_DEV_PARTS=1: not for production")


def serve_app(*, host: str, port: int, workers: int, dev: bool) -> None:
    # uvicorn re-raises SIGTERM after its graceful shutdown; with this handler in place that
    # becomes SystemExit, so the `finally` below still stops the embedded cluster we started.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cfg = get_settings()
    configure_logging(cfg.log_level)
    if not dev:
        _check_dev_parts(cfg)
    if dev and cfg.origin == "http://127.0.0.1:8000" and (host, port) != ("127.0.0.1", 8000):
        cfg = cfg.model_copy(update={"origin": f"http://{host}:{port}"})
        os.environ["IDSERVICE_ORIGIN"] = cfg.origin
    db = asyncio.run(resolve_database(cfg))
    try:
        if dev:
            resolve_hsm(cfg)
            pki = ensure_demo_pki(cfg.data_dir)  # its tokens join the SoftHSM configuration
            pki_settings = demo_pki_settings(cfg, pki)
            cfg = cfg.model_copy(update=pki_settings)
            os.environ.update({f"IDSERVICE_{k.upper()}": env_value(v)
                               for k, v in pki_settings.items()})
            asyncio.run(_register_demo_client(cfg, db, pki))
            _print_dev_banner(cfg, db, host, port, pki)
        ensure_service_keys(cfg)
        log_config = None  # our structlog JSON lines, not uvicorn's text format
        # Dev has no proxy in front: every local program would be "the proxy" and could claim
        # any address (audit source_ip, per-address rate limits). Only a configured list counts.
        proxies = cfg.forwarded_allow_ips \
            if not dev or "forwarded_allow_ips" in cfg.model_fields_set else ""
        if workers == 1:
            app = create_app(cfg, database=db)
            settle_heap()  # as create_app_from_env does in each worker
            uvicorn.run(app, host=host, port=port,
                        log_config=log_config, access_log=False, proxy_headers=bool(proxies),
                        forwarded_allow_ips=proxies)
        else:
            # Workers find the same embedded cluster through the data dir (or the URLs), and
            # count into files under a fresh <data dir>/prometheus, so that every scrape sums
            # over all workers (idservice/metrics.py).
            prepare_multiprocess_dir(cfg.data_dir)
            uvicorn.run("idservice.app:create_app_from_env", factory=True, host=host, port=port,
                        workers=workers, log_config=log_config, access_log=False,
                        proxy_headers=bool(proxies), forwarded_allow_ips=proxies)
    finally:
        db.close()
