"""Quality report benchmark (issue 11 item 3): `idservice quality report --json` on 1,736,600
person records (the population of Binh Dinh) must finish in <= 60 s on this machine.

Reproduce (from the repo root; needs root for the embedded PostgreSQL user)::

    .venv/bin/python bench/quality.py                      # 1,736,600 records
    .venv/bin/python bench/quality.py --records 200000     # smoke run

Method: a fresh data dir and embedded PostgreSQL (bench/_harness.Stack), migrated; the
records are generated in SQL (one INSERT ... SELECT from generate_series, as the owner; the
service's write path is measured by bench/issuance.py, not here): 3,000 names, birth dates
over 1928-2025 (1 in 10,000 in 1890), 1 in 500 registered late, 1 in 2,000 with a father
under 12, 1 in 5,000 with a malformed mother PIN, 1 in 1,000 a duplicate of the record
before it, mother PINs otherwise pseudo-random (some encode impossible ages); then
VACUUM ANALYZE (as autovacuum would have done on a live registry). The report runs as the
CLI does (a subprocess, auditor role, `quality.report` event) and is timed end to end,
process start included. The report goes to stdout and bench/results/quality-<UTC>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

if __package__ in (None, ""):  # run as `python bench/quality.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import BENCH_DIR, REPO, VENV_BIN, Stack, log
from idservice.db.migrate import migrate
from idservice.db.roles import ensure_database

BINH_DINH_POPULATION = 1_736_600
TARGET_S = 60.0
RESULTS_DIR = BENCH_DIR / "results"

FILL = """
INSERT INTO person (pin, registration_authority, registration_number, registered_on,
                    province_code, full_name, name_folded, sex, date_of_birth, record,
                    mother_pin, mother_name_folded)
SELECT pin, 'UBND xã Nhơn Lý', 'Q-' || i, dob + CASE WHEN i % 500 = 0 THEN 90 ELSE 5 END::int,
       '052', name, name, sex, dob,
       jsonb_build_object(
         'registration', jsonb_build_object('province_code', '052'),
         'child', jsonb_build_object('full_name', name, 'sex', sex, 'date_of_birth', dob),
         'father', jsonb_build_object('full_name', 'cha ' || i, 'pin',
            CASE WHEN i % 2000 = 0 THEN '0520' || lpad(((extract(year FROM dob)::int - 5)
                                                        % 100)::text, 2, '0') || '000001'
                 ELSE '0520' || lpad(((extract(year FROM dob)::int - 28) % 100)::text, 2, '0')
                      || lpad((i % 1000000)::text, 6, '0') END),
         'mother', jsonb_build_object('full_name', 'me ' || (i / 2), 'pin', mpin)),
       mpin, 'me ' || (i / 2)
  FROM (SELECT i, '052' || lpad(i::text, 9, '0') AS pin,
               CASE WHEN (CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END) % 2 = 0 THEN 'M'
                    ELSE 'F' END AS sex,
               CASE WHEN i % 10000 = 3 THEN date '1890-01-01' ELSE
               date '1928-01-01' + (((CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END)
                                     * 7919) % 35700)::int END AS dob,
               'nguyen van ' || ((CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END) % 3000)
                 AS name,
               CASE WHEN i % 5000 = 0 THEN '99' || lpad(i::text, 10, '0')
                    WHEN i % 1000 IN (0, 1) THEN NULL
                    ELSE '052' || lpad((i * 31 % 1000000000)::text, 9, '0') END AS mpin
          FROM generate_series($1::bigint, $2::bigint) i) g
"""


async def fill(owner_url: str, records: int) -> None:
    conn = await asyncpg.connect(owner_url)
    try:
        step = 200_000
        for first in range(1, records + 1, step):
            last = min(records, first + step - 1)
            await conn.execute(FILL, first, last)
            log(f"  {last:,} records")
        await conn.execute("VACUUM ANALYZE person")
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=BINH_DINH_POPULATION)
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args(argv)
    with Stack(keep=args.keep) as stack:
        stack.start_cluster()
        urls = asyncio.run(ensure_database(stack.superuser_url))
        asyncio.run(migrate(urls.owner))
        log(f"filling {args.records:,} person records")
        started = time.monotonic()
        asyncio.run(fill(urls.owner, args.records))
        log(f"filled in {time.monotonic() - started:.1f} s; running the report")
        env = {**stack.env, "COLUMNS": "200"}
        started = time.monotonic()
        result = subprocess.run([str(VENV_BIN / "idservice"), "quality", "report", "--json"],
                                env=env, cwd=REPO, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return 1
        report = json.loads(result.stdout)
    totals: dict[str, int] = {}
    for counts in report["counts"].values():
        for kind, n in counts.items():
            totals[kind] = totals.get(kind, 0) + n
    verdict = "met" if elapsed <= TARGET_S else "MISSED"
    print(f"quality report on {args.records:,} records: {elapsed:.1f} s "
          f"(target <= {TARGET_S:.0f} s: {verdict}); cores {os.cpu_count()}")
    print(f"  findings: {json.dumps(totals)}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"quality-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"records": args.records, "seconds": elapsed, "totals": totals},
                              indent=2))
    return 0 if elapsed <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
