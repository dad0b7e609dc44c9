"""Operations endpoints (contract section 6): health, readiness, metrics, JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from idservice.api.deps import Svc

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(svc: Svc) -> JSONResponse:
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
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json")
async def jwks(svc: Svc) -> dict[str, Any]:
    return {"keys": [svc.token_key.jwk]}
