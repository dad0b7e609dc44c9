"""Exception handlers: every error leaves as RFC 9457 problem+json with a stable `code`."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from hsm.errors import HsmError
from idservice.errors import (
    InvalidField,
    MalformedRequest,
    NotFound,
    ProblemError,
    Unauthenticated,
    Unavailable,
)
from idservice.logging import get_logger
from idservice.metrics import HSM_ERRORS

__all__ = ["install_handlers", "problem_response"]

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
    return JSONResponse(error.to_problem(), status_code=error.status,
                        media_type="application/problem+json", headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body")]
        field = ".".join(loc) or None
        if error.get("type") == "missing":
            return problem_response(MalformedRequest(f"{field} is required", field=field))
        return problem_response(InvalidField(f"{field}: {error.get('msg', 'invalid')}",
                                             field=field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return problem_response(NotFound("no such resource"))
        if exc.status_code == 405:
            err = MalformedRequest("method not allowed")
            body = err.to_problem() | {"status": 405, "code": "method_not_allowed"}
            return JSONResponse(body, status_code=405, media_type="application/problem+json")
        err = MalformedRequest(str(exc.detail))
        body = err.to_problem() | {"status": exc.status_code}
        return JSONResponse(body, status_code=exc.status_code,
                            media_type="application/problem+json")

    @app.exception_handler(HsmError)
    async def _hsm(_: Request, exc: HsmError) -> JSONResponse:
        _log.error("hsm_error", error=type(exc).__name__)
        HSM_ERRORS.labels("request").inc()
        return problem_response(Unavailable("the HSM is unavailable; nothing was done"))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        _log.info("client_disconnected")
        return problem_response(MalformedRequest("client disconnected before the body ended"))

    async def _db_unavailable(_: Request, exc: Exception) -> JSONResponse:
        _log.error("database_unavailable", error=type(exc).__name__)
        return problem_response(Unavailable("the database is unavailable; nothing was done"))

    # Registered per class (not only under Exception below) so an outage is answered inside the
    # app like any other problem: Starlette re-raises what reaches the catch-all handler, and
    # the server would log a full traceback for every request while the database is away.
    for db_error in DB_UNAVAILABLE:
        app.add_exception_handler(db_error, _db_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DB_UNAVAILABLE):
            _log.error("database_unavailable", error=type(exc).__name__)
            return problem_response(Unavailable("the database is unavailable; nothing was done"))
        _log.exception("unhandled_error", error=type(exc).__name__)
        return problem_response(ProblemError("internal error"))
