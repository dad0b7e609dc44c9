"""Token endpoints: machine-client credentials (contract 3.2) and logout (3.3)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from idservice.api.bodies import read_body
from idservice.api.deps import Caller, Svc, anonymous_context, request_context
from idservice.api.openapi import ClientTokenDoc, OAuthErrorDoc, problem_doc
from idservice.audit.events import Actor, AuditEvent
from idservice.audit.recorder import record
from idservice.auth.clients import (
    ASSERTION_TYPE,
    ClientAuthError,
    claimed_client_id,
    verify_client_assertion,
)
from idservice.auth.rate_limit import check_rate_limit
from idservice.errors import PayloadTooLarge

__all__ = ["router"]

router = APIRouter(tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(error: ClientAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_client"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


@router.post(
    "/v1/auth/client-token",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object",
            "required": ["grant_type", "client_assertion_type", "client_assertion"],
            "properties": {"grant_type": {"type": "string", "enum": ["client_credentials"]},
                           "client_assertion_type": {"type": "string",
                                                     "enum": [ASSERTION_TYPE]},
                           "client_assertion": {"type": "string"},
                           "client_id": {"type": "string"},
                           "scope": {"type": "string"}}}}}}},
    responses={200: {"model": ClientTokenDoc},
               400: {"model": OAuthErrorDoc, "description": "RFC 6749 invalid_request, ..."},
               401: {"model": OAuthErrorDoc, "description": "RFC 6749 invalid_client"},
               **problem_doc(429)},
)
async def client_token(request: Request, svc: Svc) -> JSONResponse:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return _oauth_error(ClientAuthError(
            "invalid_request", "use application/x-www-form-urlencoded", 400))
    try:
        raw = await read_body(request, 64 * 1024)
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, PayloadTooLarge):
        return _oauth_error(ClientAuthError("invalid_request", "malformed form body", 400))
    form = dict(pairs)
    if len(form) != len(pairs):  # RFC 6749 section 3.2: parameters must not repeat
        return _oauth_error(ClientAuthError("invalid_request", "a parameter is repeated", 400))
    if "grant_type" not in form:
        return _oauth_error(ClientAuthError("invalid_request", "grant_type is required", 400))
    if form["grant_type"] != "client_credentials":
        return _oauth_error(ClientAuthError(
            "unsupported_grant_type", "grant_type must be client_credentials", 400))
    if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
        return _oauth_error(ClientAuthError(
            "invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}", 401))
    claimed_id = form.get("client_id")
    actor = Actor("client", (claimed_id or claimed_client_id(form["client_assertion"])
                             or "unknown")[:64])
    await check_rate_limit(svc.pool, svc.settings.auth_rate_limit, "client-token", actor.id)
    try:
        async with svc.pool.acquire() as conn, conn.transaction():
            client = await verify_client_assertion(
                conn, assertion=form["client_assertion"], client_id=claimed_id,
                audience=svc.settings.client_token_url, clock=svc.clock,
                max_lifetime=svc.settings.client_assertion_max_lifetime)
            issued = await svc.issuer.issue(kind="client", subject=client.id, roles=client.roles,
                                            jurisdiction=client.jurisdiction,
                                            extra={"scope": " ".join(sorted(client.roles))})
            await record(conn, anonymous_context(request, Actor("client", client.id)), [
                AuditEvent("auth.login", "success",
                           details={"method": "private_key_jwt", "jti": issued.claims["jti"]})])
    except ClientAuthError as error:
        async with svc.pool.acquire() as conn, conn.transaction():
            await record(conn, anonymous_context(request, actor), [
                AuditEvent("auth.login_failed", error.error,
                           details={"method": "private_key_jwt", "reason": error.description})])
        return _oauth_error(error)
    return JSONResponse(
        {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in,
         "scope": issued.claims["scope"]},
        headers=_NO_STORE)


@router.post("/v1/auth/logout", status_code=204)
async def logout(request: Request, svc: Svc, caller: Caller) -> Response:
    async with svc.pool.acquire() as conn, conn.transaction():
        await svc.revocation.revoke(caller, conn)
        await record(conn, request_context(request, caller),
                     [AuditEvent("auth.logout", "success", details={"jti": caller.token_id})])
    return Response(status_code=204)
