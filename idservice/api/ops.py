"""Operations endpoints (contract section 6): health, readiness, metrics, JWKS.

/readyz checks the database, the HSM and, when officer login has CRLs configured, that every
CRL source has a CRL within its nextUpdate (**extension**: the reason is in `checks.crl`). The
public learns only ready or not ready: `checks` (which part is down, exception names, CRL
sources) goes only to callers on this host (loopback: a load balancer's health check on the
machine, an operator's curl) and is in /metrics; behind nginx the caller is the forwarded
client address, so the public never sees it."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from idservice.api.openapi import ReadinessDoc
from idservice.http.deps import Svc
from idservice.metrics import CONTENT_TYPE_LATEST, HSM_ERRORS, exposition
from idservice.services import Services

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """A person who types the service's address lands in the web UI, not on a JSON 404."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={
    200: {"model": ReadinessDoc,
          "description": "database and HSM reachable; officer-login CRLs (if any) fresh"},
    503: {"model": ReadinessDoc, "description": "not ready: `checks` names what is down"}})
async def readyz(request: Request, svc: Svc) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await svc.pool.fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        await svc.keystore.ping()
        checks["hsm"] = "ok"
    except Exception as exc:
        checks["hsm"] = f"unavailable: {type(exc).__name__}"
        HSM_ERRORS.labels("readyz").inc()
    crl = _crl_check(svc)
    if crl is not None:
        checks["crl"] = crl
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready"}
    if _on_this_host(request):
        body["checks"] = checks
    return JSONResponse(body, status_code=200 if ready else 503)


def _on_this_host(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _crl_check(svc: Services) -> str | None:
    """With CRLs configured for officer login, each source must have a CRL loaded whose
    nextUpdate has not passed (otherwise logins needing it fail `revocation_unavailable`);
    None when no CRL is configured."""
    if svc.crls is None or not svc.crls.sources:
        return None
    now = svc.clock.now()
    problems = []
    for status in svc.crls.status():
        if status.this_update is None:
            problems.append(f"{status.source}: no CRL loaded")
        elif status.next_update is not None and status.next_update <= now:
            problems.append(f"{status.source}: stale, nextUpdate "
                            f"{status.next_update.isoformat()} has passed")
    return "ok" if not problems else "stale: " + "; ".join(problems)


@router.get("/metrics", response_class=Response, responses={200: {
    "description": "Prometheus text format",
    "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json")
async def jwks(svc: Svc) -> dict[str, Any]:
    return {"keys": [svc.token_key.jwk, *(k.jwk for k in svc.retired_token_keys)]}
