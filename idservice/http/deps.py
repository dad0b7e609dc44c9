"""Dependencies shared by the routes: the services, the caller, the request context.

The hottest routes (`POST /v1/pins`, `POST /v1/pins/verify`, `POST /osia/v1/uin`) call
`services_of` and `caller_of` themselves instead of declaring `Svc` and `Caller`: FastAPI's
dependency resolution costs ~45 microseconds a request (measured on the bare framework), about
a tenth of what a verification costs the worker (issue 16). They document the same Bearer
requirement (`BEARER_REQUIRED`); the dependencies are these same functions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from idservice.audit.events import RequestContext
from idservice.auth.bearer import authenticate
from idservice.auth.principal import Actor, Principal
from idservice.errors import Unauthenticated
from idservice.services import Services

__all__ = ["BEARER_REQUIRED", "Caller", "Svc", "anonymous_context", "caller_of",
           "request_context", "services_of"]

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, which cost 10% of the CPU of an issuance in the benchmark profile.

_bearer = HTTPBearer(auto_error=False)
# What `Depends(_bearer)` adds to a route's OpenAPI operation, for the routes that call
# `caller_of` themselves.
BEARER_REQUIRED: dict[str, object] = {"security": [{_bearer.scheme_name: []}]}


def services_of(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def caller_of(request: Request) -> Principal:
    """The principal of the request's Bearer access token (401 without a valid one), read as
    `HTTPBearer` reads the header."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if not (scheme and token) or scheme.lower() != "bearer":
        raise Unauthenticated("a Bearer access token is required")
    svc = services_of(request)
    return authenticate(svc.verifier, svc.revocation, token)


async def services(request: Request) -> Services:
    return services_of(request)


Svc = Annotated[Services, Depends(services)]


async def bearer_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """`caller_of`; `_bearer` documents the Bearer scheme in the OpenAPI document."""
    return caller_of(request)


Caller = Annotated[Principal, Depends(bearer_principal)]


def _source_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_context(request: Request, principal: Principal) -> RequestContext:
    return RequestContext(principal.actor, request.scope.get("state", {}).get("request_id"),
                          _source_ip(request))


def anonymous_context(request: Request, actor: Actor) -> RequestContext:
    return RequestContext(actor, request.scope.get("state", {}).get("request_id"),
                          _source_ip(request))
