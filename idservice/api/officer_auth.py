"""Officer login routes, Web eID style (contract 3.1): HTTP only.

`POST /v1/auth/challenge` hands out a nonce; `POST /v1/auth/token` passes the signed
web-eid:1.0 token to the login service (`auth/officer_login.py`), which validates, audits and
issues the access token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from idservice.api.openapi import ChallengeDoc, OfficerTokenDoc, problem_doc
from idservice.auth.officer_login import OfficerLogin
from idservice.auth.principal import Actor
from idservice.errors import Unavailable
from idservice.http.bodies import json_body
from idservice.http.deps import Svc, anonymous_context

__all__ = ["router"]

router = APIRouter(tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_ANONYMOUS = Actor("operator", "unknown")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    nonce: str
    auth_token: dict[str, Any]


def _service(svc: Svc) -> OfficerLogin:
    if svc.officer_login is None:
        raise Unavailable("officer login is not configured")
    return svc.officer_login


@router.post("/v1/auth/challenge", responses={200: {"model": ChallengeDoc},
                                            **problem_doc(429)})
async def challenge(request: Request, svc: Svc) -> JSONResponse:
    issued = await _service(svc).challenge(anonymous_context(request, _ANONYMOUS))
    return JSONResponse({"nonce": issued.nonce, "expires_in": issued.expires_in},
                        headers=_NO_STORE)


@router.post("/v1/auth/token", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": TokenRequest.model_json_schema()}}}},
    responses={200: {"model": OfficerTokenDoc}, **problem_doc(401, 429)})
async def officer_token(request: Request, svc: Svc) -> JSONResponse:
    login = _service(svc)
    rctx = anonymous_context(request, _ANONYMOUS)
    await login.check_rate(rctx)
    body = await json_body(request, TokenRequest, 64 * 1024)
    session = await login.login(rctx, body.nonce, body.auth_token)
    return JSONResponse(
        {"access_token": session.token.token, "token_type": "Bearer",
         "expires_in": session.token.expires_in,
         "operator": {"id": session.operator_id, "name": session.name,
                      "roles": sorted(session.roles), "jurisdiction": session.jurisdiction}},
        headers=_NO_STORE)
