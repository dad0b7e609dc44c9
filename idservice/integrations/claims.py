"""External idempotency keys of the field interfaces (migrations 0028, 0056).

An OSIA `transactionId` or an OpenCRVS event id is claimed with the registration it stands
for; a retry finds the claim and either replays the same registration (`issuance.issue`
answers the PIN it issued) or, for OSIA, is refused when the attributes differ. A claim whose
issuance is refused (a 4xx: nothing issued) is released, so the caller can correct the request
and retry under the same id.

OSIA's key is claimed by the issuance statement itself (`issue_keyed`: `issuance.issue` with
an `ExternalKey`). OpenCRVS needs the claim's registration before it can build the request (a
retry keeps the first attempt's), so it claims first (`claim`) and then issues
(`issue_claimed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from idservice.audit.events import RequestContext
from idservice.auth.principal import Principal
from idservice.errors import ProblemError
from idservice.persons import issuance
from idservice.persons.context import PersonsContext
from idservice.persons.issuance import ExternalKey, IssueOutcome
from idservice.persons.models import IssueRequest
from idservice.persons.views import body_digest, canonical_json
from idservice.queries import integrations as q

__all__ = ["Claim", "Source", "claim", "held_by_other", "issue_claimed", "issue_keyed",
           "request_digest"]

Source = Literal["osia", "opencrvs"]


@dataclass(frozen=True, slots=True)
class Claim:
    source: Source
    scope: str
    external_id: str
    digest: bytes  # of the request that made this claim attempt
    claimed: bool  # this attempt created the claim
    province_code: str  # the registration the id stands for (the first attempt's)
    authority: str
    number: str
    registered_on: date
    held_digest: bytes  # the digest of the request that holds the claim

    @property
    def same_request(self) -> bool:
        return self.held_digest == self.digest


def request_digest(req: IssueRequest) -> bytes:
    """The digest issuance keeps per registration (`registration.body_sha256`, of the record
    as stored); the issuance statement compares a key's claim with it (migration 0057). A
    field interface never sends `duplicate_override`, the only field a record leaves out, so
    two of its requests have the same digest exactly when they are the same request."""
    return body_digest(canonical_json(req.record()))


async def claim(ctx: PersonsContext, source: Source, scope: str, external_id: str,
                req: IssueRequest) -> Claim:
    reg = req.registration
    digest = request_digest(req)
    row = await ctx.pool.fetchrow(q.CLAIM_EXTERNAL, source, scope, external_id,
                                  reg.province_code, reg.authority, reg.number,
                                  reg.registered_on, digest)
    assert row is not None
    return Claim(source, scope, external_id, digest, row["claimed"], row["province_code"],
                 row["authority"], row["number"], row["registered_on"],
                 bytes(row["request_sha256"]))


async def issue_claimed(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                        held: Claim, req: IssueRequest) -> IssueOutcome:
    """`issuance.issue`, releasing a claim this attempt made when issuance refuses it."""
    try:
        return await issuance.issue(ctx, principal, rctx, req)
    except ProblemError as exc:
        if held.claimed and exc.status < 500:
            await ctx.pool.execute(q.RELEASE_EXTERNAL, held.source, held.scope,
                                   held.external_id, held.digest)
        raise


async def issue_keyed(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                      source: Source, scope: str, external_id: str,
                      req: IssueRequest) -> IssueOutcome:
    """`issuance.issue` claiming the key in its own statement; raises
    `issuance.ExternalKeyHeld` when another request holds it."""
    return await issuance.issue(ctx, principal, rctx, req, ExternalKey(source, scope,
                                                                       external_id))


async def held_by_other(ctx: PersonsContext, source: Source, scope: str, external_id: str,
                        req: IssueRequest) -> bool:
    """Whether another request holds this key: for a request refused before its statement
    (a rule of the registration), which a held key refuses first, as when it was claimed first."""
    held = await ctx.pool.fetchval(q.HELD_EXTERNAL, source, scope, external_id)
    return held is not None and bytes(held) != request_digest(req)
