"""Dependencies shared by the routes: the services, the caller, the request context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from idservice.audit.events import RequestContext
from idservice.auth.bearer import authenticate
from idservice.auth.principal import Actor, Principal
from idservice.errors import Unauthenticated
from idservice.services import Services

__all__ = ["Caller", "Svc", "anonymous_context", "request_context"]

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, which cost 10% of the CPU of an issuance in the benchmark profile.

_bearer = HTTPBearer(auto_error=False)


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


Svc = Annotated[Services, Depends(services)]


async def bearer_principal(
    svc: Svc,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("a Bearer access token is required")
    return authenticate(svc.verifier, svc.revocation, credentials.credentials)


Caller = Annotated[Principal, Depends(bearer_principal)]


def _source_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_context(request: Request, principal: Principal) -> RequestContext:
    return RequestContext(principal.actor, request.scope.get("state", {}).get("request_id"),
                          _source_ip(request))


def anonymous_context(request: Request, actor: Actor) -> RequestContext:
    return RequestContext(actor, request.scope.get("state", {}).get("request_id"),
                          _source_ip(request))
