"""The printable PIN notice (issue 15, item 5): the record as read by an officer, and the
signed QR payload (`persons/notice_token.py`) that lets a clerk elsewhere check it offline.

The read is `access.read` (role, purpose, jurisdiction, a `person.read` event); the signature
is recorded as a `pin.notice` event (`details.kid`, `details.iat`), so an auditor sees every
notice the service signed. A cancelled PIN gets no notice: the family must get the new one.
"""

from __future__ import annotations

from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.jws import Signer, sign_compact
from idservice.auth.principal import Principal
from idservice.errors import InvalidField
from idservice.persons import access
from idservice.persons.context import PersonsContext
from idservice.persons.notice_token import TYP, notice_claims

__all__ = ["issue_notice"]


async def issue_notice(ctx: PersonsContext, signer: Signer, key_label: str, kid: str,
                       issuer: str, principal: Principal, rctx: RequestContext, pin: str,
                       purpose: str | None) -> dict[str, Any]:
    """`{"person": <record>, "token": <compact JWS>, "claims": {...}}`."""
    view = await access.read(ctx, principal, rctx, pin, purpose)
    if view["status"] == "cancelled":
        raise InvalidField(f"this PIN was replaced by {view['replaced_by']}: print the notice "
                           "of the new PIN", field="pin")
    claims = notice_claims(view, issuer, int(ctx.clock.now().timestamp()))
    token = await sign_compact(signer, key_label, kid, TYP, claims)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record(conn, rctx, [AuditEvent("pin.notice", "signed", pin=pin,
                                             purpose=access.check_purpose(purpose),
                                             details={"kid": kid, "iat": claims["iat"]})])
    return {"person": view, "token": token, "claims": claims}
