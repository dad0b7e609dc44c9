"""Migration 0057 compares an OSIA transactionId's claim with the registration's body digest
(issue 12's speed): claims stored before it take the body digest of their registration, so a
caller's retry after the upgrade still replays; an OSIA claim without its registration is
dropped (it guarded nothing); OpenCRVS claims stay as they are (real PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg

from idservice.db.migrate import default_migrations_dir, migrate
from idservice.db.roles import DatabaseUrls

PERSON = ("INSERT INTO person (pin, registration_authority, registration_number, registered_on, "
          "province_code, full_name, name_folded, sex, date_of_birth, record) VALUES "
          "($1, 'UBND', $2, '2024-03-10', '052', 'A', 'a', 'F', '2024-03-02', '{}')")
REGISTRATION = ("INSERT INTO registration (province_code, authority, number, body_sha256, pin) "
                "VALUES ('052', 'UBND', $1, $2, $3)")
CLAIM = ("INSERT INTO external_registration (source, scope, external_id, province_code, "
         "authority, number, registered_on, request_sha256) "
         "VALUES ($1, $2, $3, '052', 'UBND', $4, '2024-03-10', $5)")
BODY, OLD, OTHER = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32


def _copy(migrations: Path, up_to: int) -> None:
    for path in sorted(default_migrations_dir().glob("[0-9]*.sql")):
        if int(path.name[:4]) <= up_to:
            shutil.copy(path, migrations / path.name)


async def test_stored_claims_take_their_registrations_body_digest(
    fresh_database: DatabaseUrls, migrations_dir: Path,
) -> None:
    _copy(migrations_dir, 56)
    await migrate(fresh_database.owner, migrations_dir)
    owner = await asyncpg.connect(fresh_database.owner)
    try:
        for pin, number in (("052324000001", "1/2024"), ("052324000002", "2/2024")):
            await owner.execute(PERSON, pin, number)
            await owner.execute(REGISTRATION, number, BODY, pin)
        await owner.execute(CLAIM, "osia", "client:a", "tx-issued", "1/2024", OLD)
        await owner.execute(CLAIM, "osia", "client:a", "tx-orphan", "9/2024", OLD)
        await owner.execute(CLAIM, "opencrvs", "052", "event-1", "2/2024", OTHER)
        await owner.execute(CLAIM, "opencrvs", "052", "event-2", "8/2024", OTHER)
    finally:
        await owner.close()

    _copy(migrations_dir, 57)
    assert [m.version for m in await migrate(fresh_database.owner, migrations_dir)] == [57]

    owner = await asyncpg.connect(fresh_database.owner)
    try:
        rows = await owner.fetch("SELECT external_id, request_sha256 FROM external_registration "
                                 "ORDER BY external_id")
    finally:
        await owner.close()
    assert [(r["external_id"], bytes(r["request_sha256"])) for r in rows] == [
        ("event-1", OTHER), ("event-2", OTHER), ("tx-issued", BODY)]
