"""Officer login with a USB-token certificate, Web eID style (contract 3.1).

`POST /v1/auth/challenge` hands out a nonce; `POST /v1/auth/token` validates the signed
web-eid:1.0 token (`auth/validator.py`) and issues an access token bound to the certificate
(`cnf.x5t#S256`). Every attempt, refused or not, is an audit event (`auth.login` /
`auth.login_failed`) written in its own transaction before the answer leaves.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from idservice.api.bodies import json_body
from idservice.api.deps import Svc, anonymous_context
from idservice.api.openapi import ChallengeDoc, OfficerTokenDoc, problem_doc
from idservice.audit.events import Actor, AuditEvent
from idservice.audit.recorder import record
from idservice.auth.challenge import new_challenge
from idservice.auth.checks.base import LoginAttempt
from idservice.auth.live_certs import track_live_certificate
from idservice.auth.login_errors import LoginFailed
from idservice.auth.operators import certificate_identity, x5t_s256
from idservice.auth.rate_limit import check_rate_limit
from idservice.db.types import Conn
from idservice.errors import Unavailable
from idservice.queries import officers as q

__all__ = ["router"]

router = APIRouter(tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_METHOD = "web-eid"


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    nonce: str
    auth_token: dict[str, Any]


@router.post("/v1/auth/challenge", responses={200: {"model": ChallengeDoc},
                                            **problem_doc(429)})
async def challenge(request: Request, svc: Svc) -> JSONResponse:
    await check_rate_limit(svc.pool, svc.settings.auth_rate_limit, "challenge",
                           _source_ip(request))
    async with svc.pool.acquire() as conn:
        issued = await new_challenge(conn, svc.clock)
    return JSONResponse({"nonce": issued.nonce, "expires_in": issued.expires_in},
                        headers=_NO_STORE)


def _source_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _claimed_certificate(raw: Mapping[str, Any]) -> x509.Certificate | None:
    """The certificate a refused token carried, if it decodes: names the failed attempt."""
    value = raw.get("unverifiedCertificate")
    if not isinstance(value, str) or len(value) > 16 * 1024:
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


async def _failure_actor(conn: Conn, attempt: LoginAttempt) -> tuple[Actor, dict[str, Any]]:
    cert = attempt.certificate or _claimed_certificate(attempt.raw_token)
    if cert is None:
        return Actor("operator", "unknown"), {}
    identity = certificate_identity(cert)
    details = {"cert_sha256": identity.sha256, "subject": cert.subject.rfc4514_string()}
    if attempt.operator is not None:
        return Actor("operator", attempt.operator.id), details
    row = await conn.fetchrow(q.FIND_OPERATOR, identity.sha256, identity.issuer, identity.serial)
    if row is not None:  # the operator this (possibly stolen or stale) certificate names
        return Actor("operator", row["id"]), details
    return Actor("operator", f"sha256:{identity.sha256}"), details


@router.post("/v1/auth/token", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": TokenRequest.model_json_schema()}}}},
    responses={200: {"model": OfficerTokenDoc}, **problem_doc(401, 429)})
async def officer_token(request: Request, svc: Svc) -> JSONResponse:
    await check_rate_limit(svc.pool, svc.settings.auth_rate_limit, "token",
                           _source_ip(request))
    body = await json_body(request, TokenRequest, 64 * 1024)
    validator = svc.officer_login
    if validator is None:
        raise Unavailable("officer login is not configured")
    async with svc.pool.acquire() as conn:
        attempt = validator.attempt(conn, body.nonce, body.auth_token)
        try:
            await validator.validate(attempt)
        except LoginFailed as error:
            actor, details = await _failure_actor(conn, attempt)
            async with conn.transaction():
                await record(conn, anonymous_context(request, actor), [AuditEvent(
                    "auth.login_failed", error.code,
                    details={"method": _METHOD, "reason": error.detail, **details})])
            raise
        operator = attempt.operator
        assert operator is not None
        cert_der = attempt.parsed.certificate_der
        issued = await svc.issuer.issue(
            kind="operator", subject=operator.id, roles=operator.roles,
            jurisdiction=operator.jurisdiction, extra={"cnf": {"x5t#S256": x5t_s256(cert_der)}})
        async with conn.transaction():
            await record(conn, anonymous_context(request, Actor("operator", operator.id)), [
                AuditEvent("auth.login", "success", details={
                    "method": _METHOD, "jti": issued.claims["jti"],
                    "cert_sha256": attempt.cert_sha256})])
            await track_live_certificate(  # OCSP re-checks it while the token lives
                conn, attempt.cert, cert_der, attempt.cert_sha256,
                datetime.fromtimestamp(issued.claims["exp"], UTC))
    return JSONResponse(
        {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in,
         "operator": {"id": operator.id, "name": operator.name, "roles": sorted(operator.roles),
                      "jurisdiction": operator.jurisdiction}},
        headers=_NO_STORE)
