"""OSIA `generateUIN` (contract 10): one birth registration, keyed by the caller's
`transactionId`, issued by the same `issuance.issue` as `POST /v1/pins` (same rules,
idempotency on the registration key, audit events).

The transactionId is claimed first (`claims.claim`): the same id with the same attributes
replays the registration it was first used for; with other attributes it is refused (400,
`OsiaCode.TRANSACTION_CONFLICT`), audited as a refused `pin.issue`.
"""

from __future__ import annotations

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.integrations import claims
from idservice.integrations.osia.codes import TransactionConflict
from idservice.persons.context import PersonsContext
from idservice.persons.issuance import IssueOutcome
from idservice.persons.models import IssueRequest
from idservice.persons.rules import check_province_exists

__all__ = ["OPERATION", "generate_uin"]

OPERATION = "generateUIN"


async def generate_uin(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                       transaction_id: str, req: IssueRequest) -> IssueOutcome:
    authorize(principal, Action.PIN_ISSUE)
    # Before anything is written or looked up (contract 7): no claim outside the jurisdiction,
    # and a province that never existed is a mistake in the request, as for POST /v1/pins.
    check_province_exists(ctx.provinces, req.registration.province_code,
                          "registration.province_code")
    require_jurisdiction(principal, Action.PIN_ISSUE, province_code=req.registration.province_code,
                         field="registration.province_code")
    held = await claims.claim(ctx, "osia", f"{principal.kind}:{principal.id}", transaction_id,
                              req)
    if not held.same_request:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await record(conn, rctx, [AuditEvent("pin.issue", "refused", details={
                "code": "osia_transaction_conflict", "osia": OPERATION,
                "transaction_id": transaction_id,
                "registration": {"authority": req.registration.authority,
                                 "number": req.registration.number,
                                 "province_code": req.registration.province_code}})])
        raise TransactionConflict(
            "this transactionId was used with other attributes; send the same attributes "
            "again, or use a new transactionId for another registration")
    return await claims.issue_claimed(ctx, principal, rctx, held, req)
