"""Issuing PINs for birth registrations: single requests and NDJSON batches.

Idempotency key: (registration.province_code, .authority, .number), contract 7. The same key
and body gives the same PIN again; the same key with other content is a conflict. The province
is checked against the caller's jurisdiction before anything is looked up (`prepare`), so a
registrar can only create, probe or block keys of its own provinces. A transaction-level advisory
lock on the key serialises concurrent retries of one registration, and the PIN itself is claimed
by inserting the person row (primary key), so a PIN is never issued twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import event_columns, record
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import PinSpaceExhausted, ProblemError, RegistrationConflict
from idservice.persons.allocation import Claim, claim_pins, fast_path_candidates
from idservice.persons.context import PersonsContext
from idservice.persons.models import IssueRequest
from idservice.persons.refusals import record_refusal, refusal
from idservice.persons.rows import PersonRow
from idservice.persons.rules import check_issue, check_province_exists
from idservice.persons.views import body_digest, canonical_json, load_record, rfc3339
from idservice.queries import persons as q

__all__ = [
    "IssueOutcome",
    "PreparedIssue",
    "existing_outcome",
    "issue",
    "issue_in_transaction",
    "issued_outcome",
    "prepare",
]


@dataclass(frozen=True)
class IssueOutcome:
    pin: str
    status: str
    issued_at: datetime
    registration: dict[str, Any]
    created: bool

    def body(self) -> dict[str, Any]:
        return {
            "pin": self.pin,
            "status": self.status,
            "issued_at": rfc3339(self.issued_at),
            "registration": self.registration,
        }


@dataclass(frozen=True)
class PreparedIssue:
    req: IssueRequest
    registration: dict[str, Any]  # as stored and answered
    row: PersonRow
    digest: bytes  # of the record's canonical JSON (`row.record`)


def prepare(ctx: PersonsContext, principal: Principal, req: IssueRequest) -> PreparedIssue:
    """Checks that need no database, before any lookup: a province code that exists (else 422:
    a typo is not a jurisdiction question), the caller's jurisdiction over it (else 403), then
    the cross-field rules."""
    check_province_exists(ctx.provinces, req.registration.province_code,
                          "registration.province_code")
    require_jurisdiction(principal, Action.PIN_ISSUE, province_code=req.registration.province_code,
                         field="registration.province_code")
    check_issue(req, ctx.provinces, ctx.clock.today())
    record = req.model_dump(mode="json")
    canonical = canonical_json(record)
    return PreparedIssue(req, record["registration"], PersonRow.of(req, canonical),
                         body_digest(canonical))


def existing_outcome(
    p: PreparedIssue, pin: str, digest: bytes, status: str, issued_at: datetime,
    registration: dict[str, Any],
) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    """A registration key seen before: the same body is a replay, another body a conflict."""
    if digest != p.digest:
        conflict = _conflict()
        return conflict, refusal("pin.issue", conflict, pin=pin, **_details(p))
    outcome = IssueOutcome(pin, status, issued_at, registration, created=False)
    return outcome, AuditEvent("pin.issue", "replayed", pin=pin, details=_details(p))


def issued_outcome(
    p: PreparedIssue, claim: Claim | ProblemError
) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    """A new registration's number claimed, or the problem that stopped the claim (a full
    bucket; for an offline PIN, `reservation_conflict`)."""
    if isinstance(claim, PinSpaceExhausted):
        return claim, refusal("pin.issue", claim, **_details(p, bucket=p.row.prefix))
    if isinstance(claim, ProblemError):
        return claim, refusal("pin.issue", claim, **_details(p))
    outcome = IssueOutcome(claim.pin, "active", claim.issued_at, p.registration, created=True)
    return outcome, AuditEvent("pin.issue", "issued", pin=claim.pin, details=_details(p))


async def issue_in_transaction(
    conn: Conn, ctx: PersonsContext, p: PreparedIssue
) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    """Issue (or replay) one registration inside the caller's transaction.

    Returns the outcome or the problem to report, and the audit event to write for it.
    """
    row = p.row
    await conn.execute(q.LOCK_REGISTRATION, *row.registration_key)
    existing = await conn.fetchrow(q.FIND_REGISTRATION, *row.registration_key)
    if existing is not None:
        return existing_outcome(p, existing["pin"], bytes(existing["body_sha256"]),
                                existing["status"], existing["issued_at"],
                                load_record(existing["record"])["registration"])
    [claim] = await claim_pins(conn, ctx, [row])
    if isinstance(claim, Claim):
        await conn.execute(q.INSERT_REGISTRATION, *row.registration_key, p.digest, claim.pin)
    return issued_outcome(p, claim)


def _conflict() -> RegistrationConflict:
    return RegistrationConflict(
        "this registration (province, authority, number) was already used with other content; "
        "send the same content again, or correct the existing record", field="registration")


def _details(p: PreparedIssue, **more: Any) -> dict[str, Any]:
    """The details of every pin.issue event of a registration (both paths)."""
    province, authority, number = p.row.registration_key
    key = {"province_code": province, "authority": authority, "number": number}
    return {"registration": key, **more}


async def issue(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, req: IssueRequest
) -> IssueOutcome:
    """One registration, one statement (`issue_pin()` in the database) in the common case;
    `issue_in_transaction` in a transaction of its own when every random candidate is taken."""
    authorize(principal, Action.PIN_ISSUE)
    p = prepare(ctx, principal, req)
    # The event issue_pin() writes: action and outcome are its own (issued or replayed),
    # everything else is prepared here as for any other event.
    columns = event_columns(rctx, [AuditEvent("pin.issue", "issued", details=_details(p))])
    row = await ctx.pool.fetchrow(
        q.ISSUE_PIN, p.row.composite(), p.digest, p.row.prefix, fast_path_candidates(ctx),
        ctx.allocator.block_size, columns.actor_type, columns.actor_id, columns.request_id,
        columns.source_ip, columns.details[0])
    assert row is not None
    outcome = row["outcome"]
    if outcome == "needs_exact":
        async with ctx.pool.acquire() as conn, conn.transaction():
            result, event = await issue_in_transaction(conn, ctx, p)
            await record(conn, rctx, [event])
        if isinstance(result, ProblemError):
            raise result
        return result
    if outcome == "registration_conflict":  # issue_pin() wrote nothing: the refusal is ours
        conflict = _conflict()
        await record_refusal(ctx, rctx, refusal("pin.issue", conflict, pin=row["pin"],
                                                **_details(p)))
        raise conflict
    return IssueOutcome(row["pin"], row["status"], row["issued_at"],
                        load_record(row["registration"]), created=outcome == "issued")
