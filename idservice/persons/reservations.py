"""Reservations of PINs for offline registration offices (contract 8).

A reservation draws its numbers through the one allocation path (`allocation.claim_pins`,
uniform over the bucket's free numbers, `pin_space_exhausted` exactly) with placeholder person
rows that become `status = 'reserved'` in the same transaction: the primary key of `person`
stays the one uniqueness of PINs, so online issuance never draws a reserved number and nothing
in its hot path changed (migrations/0030_reservations.sql). The answer is a JWS signed in the
HSM with the access-token key (its `kid` is in the JWKS), so an office can check offline that
its numbers really are reserved for it.

Retirement: a reservation's unused numbers are retired when it is released, or when it
reaches `exp`, computed at the time of asking (no sweep job, so no window where an expired
reservation still counts as open). A retired number stays 'reserved' in `person`: it is never
drawn again, and only the reserving client may still sync it (docs/decisions.md).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.jws import Signer, sign_compact
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.auth.tokens import TokenKey
from idservice.db.types import Conn
from idservice.errors import (
    Forbidden,
    InvalidField,
    NotFound,
    PinSpaceExhausted,
    ReservationLimit,
)
from idservice.persons.allocation import Claim, claim_pins
from idservice.persons.context import PersonsContext
from idservice.persons.refusals import refusals_recorded
from idservice.persons.rows import PersonRow
from idservice.persons.rules import check_birth_year, check_province_exists
from idservice.pin.format import bucket_prefix
from idservice.pin.provinces import ProvinceNotValidOn, UnknownProvince
from idservice.queries import reservations as q

__all__ = ["LIST_LIMIT", "RESERVATION_TYP", "BucketRequest", "ReservationRequest",
           "ReservationSigner", "bucket_name", "get", "list_for_admin", "load_owned", "release",
           "reserve"]

RESERVATION_TYP = "pin-reservation+jwt"
MAX_BUCKETS = 40  # 2 sexes x 20 birth years: enough for any office, bounded for the service
LIST_LIMIT = 500  # the administrator's list: the newest reservations of the province


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BucketRequest(_Body):
    sex: Literal["M", "F"]
    birth_year: Annotated[int, Field(ge=1900, le=2399)]
    count: Annotated[int, Field(ge=1, le=1000)]


class ReservationRequest(_Body):
    buckets: Annotated[list[BucketRequest], Field(min_length=1, max_length=MAX_BUCKETS)]
    days: Annotated[int, Field(ge=1, le=366)]
    province_code: Annotated[str, Field(pattern=r"^[0-9]{3}$")] | None = None


@dataclass(frozen=True)
class ReservationSigner:
    """The HSM and the key reservations are signed with (the access-token key: JWKS)."""

    signer: Signer
    key: TokenKey


def bucket_name(sex: str, birth_year: int) -> str:
    """A bucket as the reservation names it: `M2026`."""
    return f"{sex}{birth_year:04d}"


def _province(ctx: PersonsContext, principal: Principal, req: ReservationRequest) -> str:
    """The client's own province; `province_code` only for a client of jurisdiction `*`."""
    code = req.province_code
    if principal.jurisdiction == "*":
        if code is None:
            raise InvalidField("a client of every province names the reservation's "
                               "province_code", field="province_code")
    elif code is None:
        code = principal.jurisdiction
    check_province_exists(ctx.provinces, code, "province_code")
    require_jurisdiction(principal, Action.PIN_RESERVE, province_code=code, field="province_code")
    try:
        ctx.provinces.valid_on(code, ctx.clock.today())
    except (UnknownProvince, ProvinceNotValidOn) as exc:
        raise InvalidField(f"{exc}: reserve with the province's current code",
                           field="province_code") from exc
    return code


def _placeholder(province: str, sex: Literal["M", "F"], year: int, reservation_id: str
                 ) -> PersonRow:
    """The row that holds a reserved number until an office's birth replaces it (never read
    as a person: queries leave status 'reserved' out)."""
    day = date(year, 1, 1)
    return PersonRow(registration_authority="", registration_number=reservation_id,
                     registered_on=day, province_code=province, full_name="", name_folded="",
                     other_names_folded=[], sex=sex, date_of_birth=day,
                     record=json.dumps({"reservation_id": reservation_id}),
                     mother_pin=None, mother_name_folded=None)


async def reserve(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                  req: ReservationRequest, signer: ReservationSigner,
                  max_open: int) -> dict[str, Any]:
    """Reserve every bucket's numbers in one transaction (all or nothing) and sign them."""
    authorize(principal, Action.PIN_RESERVE)
    province = _province(ctx, principal, req)
    today = ctx.clock.today()
    seen: set[str] = set()
    for i, b in enumerate(req.buckets):
        field = f"buckets[{i}].birth_year"
        check_birth_year(date(b.birth_year, 1, 1), field=field)
        if b.birth_year > today.year + 1:
            raise InvalidField("reserve for births of this year or the next at most",
                               field=field)
        name = bucket_name(b.sex, b.birth_year)
        if name in seen:
            raise InvalidField(f"bucket {name} is named twice: ask for its total once",
                               field=f"buckets[{i}]")
        seen.add(name)

    reservation_id = str(uuid.uuid4())
    now = ctx.clock.now()
    iat = int(now.timestamp())
    exp = iat + req.days * 86400
    rows = [_placeholder(province, b.sex, b.birth_year, reservation_id)
            for b in req.buckets for _ in range(b.count)]
    names = [bucket_name(b.sex, b.birth_year) for b in req.buckets for _ in range(b.count)]
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(q.LOCK_CLIENT, principal.id)
        open_now = await conn.fetchval(q.OPEN_PINS, principal.id, now)
        if open_now + len(rows) > max_open:
            raise ReservationLimit(
                f"this client holds {open_now} unused reserved PINs; {len(rows)} more would "
                f"pass the limit of {max_open}: sync or release earlier reservations first")
        for b in req.buckets:
            await _check_free(conn, ctx, bucket_prefix(province, b.birth_year, b.sex), b.count)
        claims = await claim_pins(conn, ctx, rows)
        pins: list[str] = []
        for claim in claims:
            if not isinstance(claim, Claim):  # a concurrent issuance took the last numbers
                raise claim
            pins.append(claim.pin)
        await conn.execute(q.MARK_RESERVED, pins)
        by_bucket: dict[str, list[str]] = {}
        for name, pin in zip(names, pins, strict=True):
            by_bucket.setdefault(name, []).append(pin)
        payload: dict[str, Any] = {
            "reservation_id": reservation_id, "client_id": principal.id,
            "province_code": province, "iat": iat, "exp": exp,
            "pins": {name: sorted(values) for name, values in by_bucket.items()},
        }
        jws = await sign_compact(signer.signer, signer.key.label, signer.key.kid, RESERVATION_TYP,
                                 payload)
        counts = {name: len(values) for name, values in by_bucket.items()}
        await conn.execute(q.INSERT_RESERVATION, reservation_id, principal.id, province, now,
                           now + timedelta(days=req.days), json.dumps(counts), jws)
        await conn.execute(q.INSERT_PINS, pins, reservation_id, names)
        await record(conn, rctx, [AuditEvent("pin.reserve", "reserved", details={
            "reservation_id": reservation_id, "province_code": province, "counts": counts,
            "exp": exp})])
    return {"reservation": jws, **payload}


async def _check_free(conn: Conn, ctx: PersonsContext, prefix: str, count: int) -> None:
    """Exact answer before drawing: fewer free numbers than asked is 409 and nothing is
    reserved (the draw itself answers the same if a concurrent issuance wins the last ones)."""
    used = await conn.fetchval(q.BUCKET_USED, prefix)
    free = ctx.allocator.space - int(used)
    if free < count:
        raise PinSpaceExhausted(f"bucket {prefix} has {free} free numbers, fewer than the "
                                f"{count} asked: ask for fewer")


@dataclass(frozen=True)
class Reservation:
    id: str
    client_id: str
    province_code: str
    issued_at: datetime
    expires_at: datetime
    released_at: datetime | None

    def retired(self, now: datetime) -> bool:
        return self.released_at is not None or now >= self.expires_at


async def load_owned(conn: Conn, principal: Principal, reservation_id: str, *,
                     admin_too: bool, for_update: bool = False) -> Reservation:
    """The reservation if the caller may act on it: its reserving client (sync: only it), or,
    where `admin_too`, an administrator of its province. Anyone else: 403."""
    row = await conn.fetchrow(q.GET_RESERVATION_FOR_UPDATE if for_update else q.GET_RESERVATION,
                              reservation_id)
    if row is None:
        raise NotFound("no such reservation: check the reservation_id the office keeps")
    res = Reservation(row["id"], row["client_id"], row["province_code"], row["issued_at"],
                      row["expires_at"], row["released_at"])
    if principal.kind == "client" and principal.id == res.client_id:
        authorize(principal, Action.PIN_RESERVE)
        return res
    if not admin_too:
        raise Forbidden("only the client that made this reservation may use it")
    authorize(principal, Action.RESERVATION_ADMIN)
    require_jurisdiction(principal, Action.RESERVATION_ADMIN, province_code=res.province_code)
    return res


def _view(res: Reservation, unused: int, issued: int, now: datetime) -> dict[str, Any]:
    """The reservation as `GET /v1/reservations/{id}` answers it: unused PINs count as
    `reserved` while it is open, as `retired` once released or expired."""
    retired = res.retired(now)
    return {"reservation_id": res.id, "client_id": res.client_id,
            "province_code": res.province_code, "iat": int(res.issued_at.timestamp()),
            "exp": int(res.expires_at.timestamp()),
            "released_at": None if res.released_at is None else res.released_at.isoformat(),
            "counts": {"reserved": 0 if retired else unused, "issued": issued,
                       "retired": unused if retired else 0}}


async def _body(conn: Conn, res: Reservation, now: datetime) -> dict[str, Any]:
    counts = await conn.fetchrow(q.COUNTS, res.id, res.retired(now))
    assert counts is not None
    return _view(res, counts["reserved"] + counts["retired"], counts["issued"], now)


async def get(ctx: PersonsContext, principal: Principal, reservation_id: str) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        res = await load_owned(conn, principal, reservation_id, admin_too=True)
        return await _body(conn, res, ctx.clock.now())


async def list_for_admin(ctx: PersonsContext, principal: Principal,
                         limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The reservations of the administrator's province (every province for `*`), newest
    first, each as `get` answers it. Like `get`, a read of counts that names no person: not
    an audited access (docs/decisions.md)."""
    authorize(principal, Action.RESERVATION_ADMIN)
    province = None if principal.jurisdiction == "*" else principal.jurisdiction
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(q.LIST_RESERVATIONS, province, limit)
    return [_view(Reservation(r["id"], r["client_id"], r["province_code"], r["issued_at"],
                              r["expires_at"], r["released_at"]), r["unused"], r["issued"], now)
            for r in rows]


async def release(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                  reservation_id: str) -> dict[str, Any]:
    """Retire every unused number now (a lost laptop); releasing twice changes nothing.
    A refusal (another province's administrator, an unknown reservation) is audited as
    `pin.release` with outcome `refused`, as refusals that touch a record are (contract 7)."""
    now = ctx.clock.now()
    async with refusals_recorded(ctx, rctx, "pin.release", reservation_id=reservation_id), \
            ctx.pool.acquire() as conn, conn.transaction():
        res = await load_owned(conn, principal, reservation_id, admin_too=True, for_update=True)
        released = await conn.fetchval(q.RELEASE, res.id, now)
        if released is not None:
            res = Reservation(res.id, res.client_id, res.province_code, res.issued_at,
                              res.expires_at, released)
        body = await _body(conn, res, now)
        await record(conn, rctx, [AuditEvent(
            "pin.release", "released" if released is not None else "replayed",
            details={"reservation_id": res.id, "province_code": res.province_code,
                     "retired": body["counts"]["retired"]})])
    return body
