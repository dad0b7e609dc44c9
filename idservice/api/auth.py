"""Token endpoints: machine-client credentials (contract 3.2) and logout (3.3)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from idservice.api.openapi import ClientTokenDoc, OAuthErrorDoc, problem_doc
from idservice.auth.bearer import revoke_token
from idservice.auth.clients import ASSERTION_TYPE, ClientAuthError
from idservice.auth.principal import Actor
from idservice.errors import PayloadTooLarge
from idservice.http.bodies import read_body
from idservice.http.deps import Caller, Svc, anonymous_context, request_context

__all__ = ["router"]

router = APIRouter(tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_ANONYMOUS = Actor("client", "unknown")  # replaced by the service with the claimed client id


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
    rctx = anonymous_context(request, _ANONYMOUS)
    await svc.auth_limits.admit(rctx)  # contract 7: before any other work
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
    try:
        issued = await svc.client_login.login(rctx, form["client_assertion"],
                                              form.get("client_id"))
    except ClientAuthError as error:
        return _oauth_error(error)
    return JSONResponse(
        {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in,
         "scope": issued.claims["scope"]},
        headers=_NO_STORE)


@router.post("/v1/auth/logout", status_code=204)
async def logout(request: Request, svc: Svc, caller: Caller) -> Response:
    await revoke_token(svc.pool, svc.revocation, caller, request_context(request, caller))
    return Response(status_code=204)
