"""Issuing PINs for birth registrations: single requests and NDJSON batches.

Idempotency key: (registration.authority, registration.number). The same key and body gives
the same PIN again; the same key with other content is a conflict. A transaction-level advisory
lock on the key serialises concurrent retries of one registration, and the PIN itself is claimed
by inserting the person row (primary key), so a PIN is never issued twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import (
    PinSpaceExhaustedError,
    ProblemError,
    RegistrationConflict,
    Unavailable,
)
from idservice.persons.bucket_store import PgBucketStore
from idservice.persons.context import PersonsContext
from idservice.persons.models import IssueRequest
from idservice.persons.names import fold_name
from idservice.persons.rules import check_issue
from idservice.persons.views import body_digest, canonical_json, load_record, rfc3339
from idservice.pin.allocator import AllocationContention, PinSpaceExhausted, allocate
from idservice.pin.format import bucket_prefix
from idservice.queries import persons as q

_CSPRNG = secrets.SystemRandom()

__all__ = [
    "IssueOutcome",
    "PreparedIssue",
    "allocate_person",
    "existing_outcome",
    "issue",
    "issue_in_transaction",
    "issued_outcome",
    "person_columns",
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
    record: dict[str, Any]
    canonical: str  # the record as stored (canonical JSON)
    digest: bytes


def prepare(ctx: PersonsContext, principal: Principal, req: IssueRequest) -> PreparedIssue:
    """Checks that need no database: jurisdiction and the cross-field rules."""
    require_jurisdiction(principal, Action.PIN_ISSUE, province_code=req.registration.province_code,
                         field="registration.province_code")
    check_issue(req, ctx.provinces, ctx.clock.today())
    record = req.model_dump(mode="json")
    canonical = canonical_json(record)
    return PreparedIssue(req, record, canonical, body_digest(canonical))


def person_columns(p: PreparedIssue) -> list[Any]:
    reg, child = p.req.registration, p.req.child
    return [
        reg.authority, reg.number, reg.registered_on, reg.province_code, child.full_name,
        fold_name(child.full_name), [fold_name(n) for n in child.other_names], child.sex,
        child.date_of_birth, p.canonical,
    ]


def existing_outcome(
    p: PreparedIssue, pin: str, digest: bytes, status: str, issued_at: datetime,
    registration: dict[str, Any],
) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    """A registration key seen before: the same body is a replay, another body a conflict."""
    if digest != p.digest:
        return (
            RegistrationConflict("this registration key was used with different content",
                                 field="registration"),
            AuditEvent("pin.issue", "registration_conflict", pin=pin,
                       details={"registration": _key(p)}),
        )
    outcome = IssueOutcome(pin, status, issued_at, registration, created=False)
    return outcome, AuditEvent("pin.issue", "replayed", pin=pin,
                               details={"registration": _key(p)})


async def allocate_person(
    conn: Conn, ctx: PersonsContext, p: PreparedIssue
) -> tuple[str, datetime] | ProblemError:
    """Claim a PIN for a new registration by inserting its person row (not the registration)."""
    child = p.req.child
    prefix = bucket_prefix(p.req.registration.province_code, child.date_of_birth.year, child.sex)
    store = PgBucketStore(conn, prefix, person_columns(p), ctx.allocator)
    try:
        await allocate(store, ctx.rng, ctx.allocator, bucket=prefix)
    except PinSpaceExhausted:
        return PinSpaceExhaustedError(f"all numbers of bucket {prefix} are used")
    except AllocationContention as exc:
        raise Unavailable("too much contention for free numbers; retry") from exc
    assert store.claimed is not None
    return store.claimed["pin"], store.claimed["issued_at"]


def issued_outcome(
    p: PreparedIssue, claim: tuple[str, datetime] | ProblemError
) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    if isinstance(claim, ProblemError):
        child = p.req.child
        prefix = bucket_prefix(p.req.registration.province_code, child.date_of_birth.year,
                               child.sex)
        return claim, AuditEvent("pin.issue", "pin_space_exhausted",
                                 details={"registration": _key(p), "bucket": prefix})
    pin, issued_at = claim
    outcome = IssueOutcome(pin, "active", issued_at, p.record["registration"], created=True)
    return outcome, AuditEvent("pin.issue", "issued", pin=pin, details={"registration": _key(p)})


async def issue_in_transaction(
    conn: Conn, ctx: PersonsContext, p: PreparedIssue
) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    """Issue (or replay) one registration inside the caller's transaction.

    Returns the outcome or the problem to report, and the audit event to write for it.
    """
    reg = p.req.registration
    await conn.execute(q.LOCK_REGISTRATION, reg.authority, reg.number)
    existing = await conn.fetchrow(q.FIND_REGISTRATION, reg.authority, reg.number)
    if existing is not None:
        return existing_outcome(p, existing["pin"], bytes(existing["body_sha256"]),
                                existing["status"], existing["issued_at"],
                                load_record(existing["record"])["registration"])
    claim = await allocate_person(conn, ctx, p)
    if not isinstance(claim, ProblemError):
        await conn.execute(q.INSERT_REGISTRATION, reg.authority, reg.number, p.digest, claim[0])
    return issued_outcome(p, claim)


def _key(p: PreparedIssue) -> dict[str, str]:
    return {"authority": p.req.registration.authority, "number": p.req.registration.number}


async def issue(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, req: IssueRequest
) -> IssueOutcome:
    """One registration, one statement (`issue_pin()` in the database) in the common case;
    the exact allocator in a transaction of its own when every random candidate is taken."""
    authorize(principal, Action.PIN_ISSUE)
    p = prepare(ctx, principal, req)
    reg, child = req.registration, req.child
    rng = ctx.rng or _CSPRNG
    candidates = [rng.randrange(ctx.allocator.space) for _ in range(ctx.allocator.random_tries)]
    columns = person_columns(p)
    row = await ctx.pool.fetchrow(
        q.ISSUE_PIN, reg.authority, reg.number, p.digest,
        bucket_prefix(reg.province_code, child.date_of_birth.year, child.sex), candidates,
        ctx.allocator.block_size, reg.registered_on, reg.province_code, columns[4], columns[5],
        columns[6], child.sex, child.date_of_birth, columns[9],
        rctx.actor.type, rctx.actor.id, rctx.request_id, rctx.source_ip,
    )
    assert row is not None
    outcome = row["outcome"]
    if outcome == "needs_exact":
        async with ctx.pool.acquire() as conn, conn.transaction():
            result, event = await issue_in_transaction(conn, ctx, p)
            await record(conn, rctx, [event])
        if isinstance(result, ProblemError):
            raise result
        return result
    if outcome == "registration_conflict":
        raise RegistrationConflict("this registration key was used with different content",
                                   field="registration")
    return IssueOutcome(row["pin"], row["status"], row["issued_at"],
                        load_record(row["registration"]), created=outcome == "issued")
