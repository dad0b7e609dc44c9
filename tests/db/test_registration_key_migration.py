"""Migration 0014 keys registrations by (province_code, authority, number): existing rows take
their person's province, and the same authority and number in another province can then be
registered (real PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg

from idservice.db.migrate import default_migrations_dir, migrate
from idservice.db.roles import DatabaseUrls

PERSON = ("INSERT INTO person (pin, registration_authority, registration_number, registered_on, "
          "province_code, full_name, name_folded, sex, date_of_birth, record) VALUES "
          "($1, $2, $3, '2024-03-10', $4, 'A', 'a', 'F', '2024-03-02', '{}')")


def _copy(migrations: Path, up_to: int) -> None:
    for path in sorted(default_migrations_dir().glob("[0-9]*.sql")):
        if int(path.name[:4]) <= up_to:
            shutil.copy(path, migrations / path.name)


async def test_existing_registrations_take_their_persons_province(
    fresh_database: DatabaseUrls, migrations_dir: Path,
) -> None:
    _copy(migrations_dir, 13)
    await migrate(fresh_database.owner, migrations_dir)
    owner = await asyncpg.connect(fresh_database.owner)
    try:
        for pin, province, number in (("052324000001", "052", "1/2024"),
                                      ("079324000001", "079", "2/2024")):
            await owner.execute(PERSON, pin, "UBND", number, province)
            await owner.execute("INSERT INTO registration (authority, number, body_sha256, pin) "
                                "VALUES ('UBND', $1, '\\x00', $2)", number, pin)
    finally:
        await owner.close()

    _copy(migrations_dir, 14)
    assert [m.version for m in await migrate(fresh_database.owner, migrations_dir)] == [14]

    owner = await asyncpg.connect(fresh_database.owner)
    try:
        rows = await owner.fetch("SELECT province_code, number, pin FROM registration "
                                 "ORDER BY pin")
        assert [tuple(r) for r in rows] == [("052", "1/2024", "052324000001"),
                                            ("079", "2/2024", "079324000001")]
        # the same authority and number in another province is another registration
        await owner.execute(PERSON, "001324000001", "UBND", "1/2024", "001")
        await owner.execute("INSERT INTO registration (province_code, authority, number, "
                            "body_sha256, pin) VALUES ('001', 'UBND', '1/2024', '\\x00', "
                            "'001324000001')")
        assert await owner.fetchval("SELECT count(*) FROM registration "
                                    "WHERE number = '1/2024'") == 2
    finally:
        await owner.close()
