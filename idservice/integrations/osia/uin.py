"""OSIA `generateUIN` (contract 10): one birth registration, keyed by the caller's
`transactionId`, issued by the same `issuance.issue` as `POST /v1/pins` (same rules,
idempotency on the registration key, audit events).

The transactionId is claimed by the issuance statement itself (`claims.issue_keyed`): the same
id with the same attributes replays the registration it was first used for; with other
attributes it is refused (400, `OsiaCode.TRANSACTION_CONFLICT`), audited as a refused
`pin.issue`, and so is a request breaking a rule of the registration under an id already held
for other attributes (the id's conflict is answered first, as when it was claimed first).
"""

from __future__ import annotations

from idservice.audit.events import AuditEvent, RequestContext
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.errors import InvalidField
from idservice.integrations import claims
from idservice.integrations.osia.codes import TransactionConflict
from idservice.persons.context import PersonsContext
from idservice.persons.issuance import ExternalKeyHeld, IssueOutcome
from idservice.persons.models import IssueRequest
from idservice.persons.refusals import record_refusal
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
    scope = f"{principal.kind}:{principal.id}"
    try:
        return await claims.issue_keyed(ctx, principal, rctx, "osia", scope, transaction_id,
                                        req)
    except ExternalKeyHeld:
        pass
    except InvalidField:  # a rule of the registration, checked before the statement
        if not await claims.held_by_other(ctx, "osia", scope, transaction_id, req):
            raise
    await record_refusal(ctx, rctx, AuditEvent("pin.issue", "refused", details={
        "code": "osia_transaction_conflict", "osia": OPERATION,
        "transaction_id": transaction_id,
        "registration": {"authority": req.registration.authority,
                         "number": req.registration.number,
                         "province_code": req.registration.province_code}}))
    raise TransactionConflict(
        "this transactionId was used with other attributes; send the same attributes "
        "again, or use a new transactionId for another registration")
