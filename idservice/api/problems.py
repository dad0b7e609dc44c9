"""Exception handlers: every error leaves as RFC 9457 problem+json with a stable `code`,
except under the paths of a field interface that answers errors in its own format (OSIA,
OpenCRVS: contract 9, 10), which registers a renderer for its prefix with `scope_errors`."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from hsm.errors import HsmError
from idservice.api.headers import DEFAULT_HEADERS
from idservice.errors import (
    InvalidField,
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    ProblemError,
    Unauthenticated,
    Unavailable,
)
from idservice.http.bodies import error_message, field_path
from idservice.logging import get_logger
from idservice.metrics import HSM_ERRORS

__all__ = ["ErrorRenderer", "install_handlers", "problem_response", "scope_errors"]

ErrorRenderer = Callable[[ProblemError], Response]

_log = get_logger(__name__)

# Errors that mean "the database is not there right now", not "the request was wrong".
DB_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
    # a multi-host URL (target_session_attrs=read-write) while no host is the primary yet
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    ConnectionError,
    OSError,
    TimeoutError,
)


def problem_response(error: ProblemError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} \
        if isinstance(error, Unauthenticated) else None
    retry_after = getattr(error, "retry_after", None)  # RateLimited, or any "try again later"
    if isinstance(retry_after, int):
        headers = {"Retry-After": str(retry_after)}
    if isinstance(error, MethodNotAllowed):
        headers = {"Allow": ", ".join(error.allow)}
    return JSONResponse(error.to_problem(), status_code=error.status,
                        media_type="application/problem+json", headers=headers)


def scope_errors(app: FastAPI, prefix: str, render: ErrorRenderer) -> None:
    """Errors of requests whose path starts with `prefix` are rendered by `render`."""
    app.state.error_scopes = (*getattr(app.state, "error_scopes", ()), (prefix, render))


def _scoped(request: Request) -> ErrorRenderer | None:
    path: str = request.scope.get("path", "")
    for prefix, render in getattr(request.app.state, "error_scopes", ()):
        if path.startswith(prefix):
            return render  # type: ignore[no-any-return]
    return None


def _respond(request: Request, error: ProblemError) -> Response:
    render = _scoped(request)
    return render(error) if render is not None else problem_response(error)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> tuple[str, ...]:
    """Every method some route fully matches at this path (Starlette's own `Allow` names only
    the first route's): each method is tried against the app's routes, included routers and
    all, which only a 405 pays for."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return tuple(allowed)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        error = dict(exc.errors()[0]) if exc.errors() else {}
        error["loc"] = tuple(p for p in error.get("loc", ()) if p not in ("query", "path",
                                                                          "body"))
        field = field_path(error["loc"])
        if error.get("type") == "missing":
            return _respond(request, MalformedRequest(error_message(error), field=field))
        return _respond(request, InvalidField(error_message(error), field=field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _respond(request, NotFound("no such resource"))
        if exc.status_code == 405:
            allow = _allowed_methods(request)
            return _respond(request, MethodNotAllowed(
                f"{request.method} is not allowed here; use {' or '.join(allow)}",
                allow=allow))
        render = _scoped(request)
        if render is not None:
            return render(MalformedRequest(str(exc.detail)))
        err = MalformedRequest(str(exc.detail))
        body = err.to_problem() | {"status": exc.status_code}
        return JSONResponse(body, status_code=exc.status_code,
                            media_type="application/problem+json")

    @app.exception_handler(HsmError)
    async def _hsm(request: Request, exc: HsmError) -> Response:
        _log.error("hsm_error", error=type(exc).__name__)
        HSM_ERRORS.labels("request").inc()
        return _respond(request, Unavailable("the HSM is unavailable; nothing was done"))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        _log.info("client_disconnected")
        return _respond(request, MalformedRequest("client disconnected before the body ended"))

    async def _db_unavailable(request: Request, exc: Exception) -> Response:
        _log.error("database_unavailable", error=type(exc).__name__)
        return _respond(request, Unavailable("the database is unavailable; nothing was done"))

    # Registered per class (not only under Exception below) so an outage is answered inside the
    # app like any other problem: Starlette re-raises what reaches the catch-all handler, and
    # the server would log a full traceback for every request while the database is away.
    for db_error in DB_UNAVAILABLE:
        app.add_exception_handler(db_error, _db_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, DB_UNAVAILABLE):
            _log.error("database_unavailable", error=type(exc).__name__)
            return _respond(request,
                            Unavailable("the database is unavailable; nothing was done"))
        _log.exception("unhandled_error", error=type(exc).__name__)
        response = _respond(request, ProblemError("internal error"))
        response.headers.update(DEFAULT_HEADERS)  # answered outside SecurityHeadersMiddleware
        return response
