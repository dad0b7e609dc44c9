"""Sync of offline issuances (contract 8, `POST /v1/reservations/{id}/issued`): a thin adapter
over batch issuance.

Each line is prepared exactly as a `POST /v1/pins` body (`issuance.prepare`: rules,
jurisdiction, registration key, idempotency digest) and issued by `batch.issue_many` (the same
registration locks, lookups, replays and conflicts, and whatever else issuance checks); only
the source of the number differs: instead of drawing one, the claimer takes the reserved PIN the
office gave (`_take_reserved`). Around that, the rules of contract 8:

1. the PIN must be one of this reservation's and of the birth's bucket (`pin_not_reserved`);
2. the same registration with the same PIN again: `200`, event `replayed` (so a stream cut and
   re-sent applies nothing twice);
3. a PIN already used for another registration: `reservation_conflict`;
4. a registration already issued another PIN: `registration_conflict` with both PINs in
   `details.pins`.

Accepted after `exp` and after release: a retired number is still the reserving client's
(a paper certificate may already carry it). Each line writes one `pin.issue` event with
`details.offline`, `reservation_id`, `issued_offline_at` and the office's signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import (
    InvalidField,
    PinNotReserved,
    ProblemError,
    RegistrationConflict,
    ReservationConflict,
)
from idservice.persons.allocation import Claim
from idservice.persons.batch import issue_many, run_chunk
from idservice.persons.context import PersonsContext
from idservice.persons.issuance import IssueOutcome, PreparedIssue, prepare
from idservice.persons.models import IssueRequest
from idservice.persons.office_records import signed_payload, verify_issuance
from idservice.persons.refusals import refusal
from idservice.persons.reservations import Reservation, load_owned
from idservice.pin.format import is_well_formed
from idservice.queries import reservations as q

__all__ = ["OfflineLine", "OfflinePrepared", "SyncLine", "SyncResult", "open_sync",
           "prepare_line", "sync_chunk"]


class OfflineLine(BaseModel):
    """One line of a sync: the PIN the office gave, when, to which birth; and the office's
    signature of that (extension: optional, checked when present)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    pin: Annotated[str, Field(max_length=64)]
    issued_offline_at: AwareDatetime
    birth: IssueRequest
    office_signature: Annotated[str, Field(max_length=2048)] | None = None


@dataclass(frozen=True)
class OfflinePrepared(PreparedIssue):
    pin: str
    issued_offline_at: str
    office_signature: str | None


SyncLine = tuple[int, "OfflinePrepared | ProblemError"]
SyncResult = tuple[int, "IssueOutcome | ProblemError"]


@dataclass(frozen=True)
class SyncTarget:
    """A reservation its client is syncing, and that client's key (for office signatures)."""

    reservation: Reservation
    office_key: Any


async def open_sync(ctx: PersonsContext, principal: Principal, reservation_id: str
                    ) -> SyncTarget:
    """Before the first line: only the reserving client may sync (403 for the whole
    request otherwise), 404 for an unknown reservation."""
    async with ctx.pool.acquire() as conn:
        res = await load_owned(conn, principal, reservation_id, admin_too=False)
        pem = await conn.fetchval(q.CLIENT_KEY, res.client_id)
    return SyncTarget(res, load_pem_public_key(pem.encode()) if pem else None)


def prepare_line(ctx: PersonsContext, principal: Principal, target: SyncTarget,
                 line: OfflineLine) -> OfflinePrepared:
    """A line checked as its birth would be online, plus its PIN's form and its signature.
    The time signed is `issued_offline_at` as `datetime.isoformat()` writes it."""
    raw_issued_at = line.issued_offline_at.isoformat()
    if not is_well_formed(line.pin):
        raise InvalidField("pin must be 12 ASCII digits", field="pin")
    p = prepare(ctx, principal, line.birth)
    if line.office_signature is not None:
        payload = signed_payload(target.reservation.id, line.pin, raw_issued_at, p.digest)
        if target.office_key is None or not verify_issuance(
                target.office_key, line.office_signature, payload):
            raise InvalidField("office_signature does not verify with this client's key for "
                               "this line: send the record as the office journal wrote it",
                               field="office_signature")
    return OfflinePrepared(p.req, p.registration, p.row, p.digest, p.principal, line.pin,
                           raw_issued_at, line.office_signature)


async def _take_reserved(conn: Conn, ctx: PersonsContext, items: Sequence[PreparedIssue]
                         ) -> list[Claim | ProblemError]:
    """The claimer of offline lines: each new registration takes the PIN it carries if that
    PIN is still unused (reserved or retired); otherwise `reservation_conflict`."""
    offered = [item.pin for item in items if isinstance(item, OfflinePrepared)]
    assert len(offered) == len(items)
    first: dict[str, int] = {}
    for i, pin in enumerate(offered):
        first.setdefault(pin, i)
    order = sorted(first.values())
    taken = {r["pin"]: r["issued_at"] for r in await conn.fetch(
        q.TAKE_RESERVED, [offered[i] for i in order], [items[i].row.composite() for i in order])}
    claims: list[Claim | ProblemError] = []
    for i, pin in enumerate(offered):
        if first[pin] == i and pin in taken:
            claims.append(Claim(pin, taken[pin]))
        else:
            claims.append(ReservationConflict(
                f"PIN {pin} was already given to another registration: check the office "
                "journal; the second child needs a new PIN", field="pin"))
    return claims


def _offline(item: OfflinePrepared, reservation_id: str, line: int) -> dict[str, Any]:
    return {"line": line, "offline": True, "reservation_id": reservation_id,
            "issued_offline_at": item.issued_offline_at,
            "office_signature": item.office_signature}


def _settle(item: OfflinePrepared, result: IssueOutcome | ProblemError, event: AuditEvent
            ) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    """Rule 4: a registration that already has another PIN is a conflict naming both."""
    existing = result.pin if isinstance(result, IssueOutcome) else event.pin
    if existing is None or existing == item.pin or (
            isinstance(result, IssueOutcome) and result.created):
        return result, event
    if isinstance(result, ProblemError) and not isinstance(result, RegistrationConflict):
        return result, event
    conflict = RegistrationConflict(
        f"this registration already has PIN {existing}; the office gave {item.pin}: keep "
        f"{existing} and report {item.pin} to the province as unused", field="registration",
        extra={"details": {"pins": [existing, item.pin]}})
    return conflict, refusal("pin.issue", conflict, pin=existing,
                             **{**event.details, "pins": [existing, item.pin]})


async def sync_chunk(ctx: PersonsContext, rctx: RequestContext, target: SyncTarget,
                     lines: Sequence[SyncLine]) -> list[SyncResult]:
    """One transaction per chunk, one `pin.issue` event per line (as a batch chunk), and
    `pin.duplicate_override` beside it when the line overrides the duplicate check."""
    return await run_chunk(lambda: _sync_chunk_once(ctx, rctx, target, lines))


async def _sync_chunk_once(ctx: PersonsContext, rctx: RequestContext, target: SyncTarget,
                           lines: Sequence[SyncLine]) -> list[SyncResult]:
    res_id = target.reservation.id
    async with ctx.pool.acquire() as conn, conn.transaction():
        offered = [item.pin for _, item in lines if isinstance(item, OfflinePrepared)]
        buckets = {r["pin"] for r in await conn.fetch(q.RESERVED_PINS, res_id, offered)}
        checked: list[tuple[int, OfflinePrepared | ProblemError]] = []
        for line, item in lines:
            if isinstance(item, OfflinePrepared) and (
                    item.pin not in buckets or item.pin[:6] != item.row.prefix):
                checked.append((line, PinNotReserved(
                    f"PIN {item.pin} is not one of reservation {res_id}'s numbers for a "
                    f"birth of bucket {item.row.prefix}: check the sex and birth date, or the "
                    "reservation the office used", field="pin")))
            else:
                checked.append((line, item))
        good = [item for _, item in checked if isinstance(item, OfflinePrepared)]
        issued = iter(await issue_many(conn, ctx, good, claimer=_take_reserved))
        results: list[SyncResult] = []
        events: list[AuditEvent] = []
        for (line, item), (_, original) in zip(checked, lines, strict=True):
            offline = _offline(original, res_id, line) \
                if isinstance(original, OfflinePrepared) else {"line": line, "offline": True,
                                                              "reservation_id": res_id}
            if isinstance(item, ProblemError):
                results.append((line, item))
                events.append(refusal("pin.issue", item, **offline))
                continue
            result, line_events = next(issued)
            result, first = _settle(item, result, line_events[0])
            results.append((line, result))
            events.extend(AuditEvent(event.action, event.outcome, pin=event.pin,
                                     details={**event.details, **offline})
                          for event in (first, *line_events[1:]))
        await record(conn, rctx, events)
    return results
