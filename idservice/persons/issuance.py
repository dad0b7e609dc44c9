"""Issuing PINs for birth registrations: single requests and NDJSON batches.

Idempotency key: (registration.province_code, .authority, .number), contract 7. The same key
and body gives the same PIN again; the same key with other content is a conflict. The province
is checked against the caller's jurisdiction before anything is looked up (`prepare`), so a
registrar can only create, probe or block keys of its own provinces. A transaction-level advisory
lock on the key serialises concurrent retries of one registration, and the PIN itself is claimed
by inserting the person row (primary key), so a PIN is never issued twice.

Duplicate check (contract 9): a new registration whose child matches an active person (same
folded name, date of birth, sex and mother: SQL `person_duplicates()`, migration 0042, a
lookup on the index person_name_dob) is refused `possible_duplicate` unless the request
carries `duplicate_override`; then it is issued and `pin.duplicate_override` is written beside
`pin.issue`. Replays of a registration already issued are never checked (they would match
themselves). The check lives in the issuance statements themselves: `issue_pin()` for single
requests, `duplicates_in_transaction` for the transactional paths (exact allocator, batch;
the offline sync calls it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import event_columns, record
from idservice.auth.policy import Action, authorize, covers, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import (
    PinSpaceExhausted,
    PossibleDuplicate,
    ProblemError,
    RegistrationConflict,
)
from idservice.persons.allocation import Claim, claim_pins, fast_path_candidates
from idservice.persons.coalesce import issue_alone
from idservice.persons.context import PersonsContext
from idservice.persons.models import IssueRequest
from idservice.persons.refusals import record_refusal, refusal
from idservice.persons.rows import PersonRow
from idservice.persons.rules import check_issue, check_province_exists
from idservice.persons.views import body_digest, canonical_json, load_record, rfc3339
from idservice.pin.format import parse_pin
from idservice.queries import integrations as qi
from idservice.queries import persons as q

__all__ = [
    "DuplicateFound",
    "ExternalKey",
    "ExternalKeyHeld",
    "IssueOutcome",
    "PreparedIssue",
    "duplicate_problem",
    "duplicates_in_transaction",
    "existing_outcome",
    "issue",
    "issue_in_transaction",
    "issued_outcome",
    "override_event",
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
    principal: Principal  # whose jurisdiction splits duplicate candidates

    @property
    def override_reason(self) -> str | None:
        o = self.req.duplicate_override
        return o.reason if o is not None else None


@dataclass(frozen=True)
class DuplicateFound:
    """Active persons the row matches (contract 9), PINs in order."""

    pins: list[str]


@dataclass(frozen=True, slots=True)
class ExternalKey:
    """A caller's own idempotency key (an OSIA transactionId: integrations/claims.py), claimed
    in the issuance statement itself (`issue_pins()`, migration 0060; alone, through
    `issue_pin_claimed()`): no extra round trip, and no claim is left behind by an issuance
    that failed. The key stands for the
    registration's body digest (`PreparedIssue.digest`), which the statement has anyway."""

    source: str  # external_registration.source
    scope: str
    external_id: str


class ExternalKeyHeld(Exception):
    """The key is held by another request (another digest): nothing was written."""


def prepare(ctx: PersonsContext, principal: Principal, req: IssueRequest) -> PreparedIssue:
    """Checks that need no database, before any lookup: a province code that exists (else 422:
    a typo is not a jurisdiction question), the caller's jurisdiction over it (else 403), then
    the cross-field rules."""
    check_province_exists(ctx.provinces, req.registration.province_code,
                          "registration.province_code")
    require_jurisdiction(principal, Action.PIN_ISSUE, province_code=req.registration.province_code,
                         field="registration.province_code")
    check_issue(req, ctx.provinces, ctx.clock.today())
    record = req.record()
    canonical = canonical_json(record)
    return PreparedIssue(req, record["registration"], PersonRow.of(req, canonical),
                         body_digest(canonical), principal)


def duplicate_problem(p: PreparedIssue, pins: list[str]) -> PossibleDuplicate:
    """409 possible_duplicate: the candidates the registrar may see, and a count of the rest."""
    mine = [pin for pin in pins
            if covers(p.principal, Action.PIN_ISSUE, parse_pin(pin).province_code)]
    return PossibleDuplicate(
        "this child matches a person already registered (same name, date of birth, sex and "
        "mother): check the candidates; if this is really another child, send the request "
        "again with \"duplicate_override\": {\"reason\": \"...\"}",
        field="child", extra={"details": {"candidates": mine,
                                          "other_candidates": len(pins) - len(mine)}})


def override_event(p: PreparedIssue, pin: str, candidates: list[str]) -> AuditEvent:
    return AuditEvent("pin.duplicate_override", "issued", pin=pin,
                      details={**_details(p), "reason": p.override_reason,
                               "candidates": candidates})


async def duplicates_in_transaction(
    conn: Conn, rows: list[PersonRow]
) -> list[list[str]]:
    """The active persons each row matches, inside the caller's transaction, after taking the
    rows' duplicate locks (sorted: two transactions cannot deadlock on them): one statement."""
    if not rows:
        return []
    found = {r["i"]: list(r["pins"]) for r in await conn.fetch(
        q.FIND_DUPLICATES_LOCKED, [row.composite() for row in rows])}
    return [found.get(i + 1, []) for i in range(len(rows))]


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
    p: PreparedIssue, claim: Claim | ProblemError | DuplicateFound
) -> tuple[IssueOutcome | ProblemError, list[AuditEvent]]:
    """The outcome of a new registration and its events: a duplicate found, a full bucket, for
    an offline PIN `reservation_conflict`, or the claimed number. A `DuplicateFound` that the
    request overrides is passed with its claim by the caller (`override_event`)."""
    if isinstance(claim, DuplicateFound):
        problem = duplicate_problem(p, claim.pins)
        return problem, [refusal("pin.issue", problem, **_details(p),
                                 candidates=problem.extra["details"]["candidates"])]
    if isinstance(claim, PinSpaceExhausted):
        return claim, [refusal("pin.issue", claim, **_details(p, bucket=p.row.prefix))]
    if isinstance(claim, ProblemError):
        return claim, [refusal("pin.issue", claim, **_details(p))]
    outcome = IssueOutcome(claim.pin, "active", claim.issued_at, p.registration, created=True)
    return outcome, [AuditEvent("pin.issue", "issued", pin=claim.pin, details=_details(p))]


async def issue_in_transaction(
    conn: Conn, ctx: PersonsContext, p: PreparedIssue
) -> tuple[IssueOutcome | ProblemError, list[AuditEvent]]:
    """Issue (or replay) one registration inside the caller's transaction.

    Returns the outcome or the problem to report, and the audit events to write for it.
    """
    row = p.row
    await conn.execute(q.LOCK_REGISTRATION, *row.registration_key)
    existing = await conn.fetchrow(q.FIND_REGISTRATION, *row.registration_key)
    if existing is not None:
        result, event = existing_outcome(p, existing["pin"], bytes(existing["body_sha256"]),
                                         existing["status"], existing["issued_at"],
                                         load_record(existing["record"])["registration"])
        return result, [event]
    [dups] = await duplicates_in_transaction(conn, [row])
    if dups and p.override_reason is None:
        return issued_outcome(p, DuplicateFound(dups))
    [claim] = await claim_pins(conn, ctx, [row])
    if isinstance(claim, Claim):
        await conn.execute(q.INSERT_REGISTRATION, *row.registration_key, p.digest, claim.pin)
    result, events = issued_outcome(p, claim)
    if dups and isinstance(claim, Claim):
        events.append(override_event(p, claim.pin, dups))
    return result, events


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
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, req: IssueRequest,
    key: ExternalKey | None = None,
) -> IssueOutcome:
    """One registration, one statement (`issue_pin()` in the database) in the common case;
    `issue_in_transaction` in a transaction of its own when every random candidate is taken.
    With `ctx.coalescer`, that statement is shared with the other issuances of this worker
    waiting at the same moment (persons/coalesce.py): the same outcomes.

    With `key`, the statement claims it first (in `issue_pins()`, migration 0060): raises
    `ExternalKeyHeld` when another request holds it; a refusal releases a claim this request
    made (in the statement, or here on the exact path), so a corrected retry may reuse it."""
    authorize(principal, Action.PIN_ISSUE)
    p = prepare(ctx, principal, req)
    # The event issue_pin() writes: action and outcome are its own (issued or replayed),
    # everything else is prepared here as for any other event.
    events = [AuditEvent("pin.issue", "issued", details=_details(p))]
    if p.override_reason is not None:  # issue_pin() adds the candidates it found
        events.append(AuditEvent("pin.duplicate_override", "issued",
                                 details={**_details(p), "reason": p.override_reason}))
    columns = event_columns(rctx, events)
    args = (p.row.composite(), p.digest, p.row.prefix, fast_path_candidates(ctx),
            ctx.allocator.block_size, columns.actor_type, columns.actor_id, columns.request_id,
            columns.source_ip, columns.details[0],
            columns.details[1] if len(columns.details) > 1 else None)
    key_columns = None if key is None else (key.source, key.scope, key.external_id)
    row = await (ctx.coalescer.issue(args, key_columns) if ctx.coalescer is not None
                 else issue_alone(ctx.pool, args, key_columns))
    outcome = row["outcome"]
    if outcome == "external_key_held":
        raise ExternalKeyHeld(key)
    if outcome == "needs_exact":
        async with ctx.pool.acquire() as conn, conn.transaction():
            result, written = await issue_in_transaction(conn, ctx, p)
            if key is not None and row["claimed"] and isinstance(result, ProblemError):
                await conn.execute(qi.RELEASE_EXTERNAL, key.source, key.scope,
                                   key.external_id, p.digest)
            await record(conn, rctx, written)
        if isinstance(result, ProblemError):
            raise result
        return result
    if outcome == "possible_duplicate":  # issue_pin() wrote nothing: the refusal is ours
        problem, refused = issued_outcome(p, DuplicateFound(list(row["duplicates"])))
        await record_refusal(ctx, rctx, refused[0])
        assert isinstance(problem, ProblemError)
        raise problem
    if outcome == "registration_conflict":  # issue_pin() wrote nothing: the refusal is ours
        conflict = _conflict()
        await record_refusal(ctx, rctx, refusal("pin.issue", conflict, pin=row["pin"],
                                                **_details(p)))
        raise conflict
    return IssueOutcome(row["pin"], row["status"], row["issued_at"],
                        load_record(row["registration"]), created=outcome == "issued")
