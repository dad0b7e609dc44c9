"""The PostgreSQL side of one issuance (issue 16 goal 1): plans, time per row alone and in
groups, and the indexes every issuance writes.

A throw-away embedded cluster (fsync and synchronous_commit on), migrated, seeded with
`--seed` persons (`issue_pins()` groups of 500). Then, on one connection, one after the other:
- `--calls` single `issue_pin()` statements (each its own transaction and commit), and the same
  number of rows as `issue_pins()` groups of 4, 16 and 32: wall ms per row (round trip, plan,
  execution and commit; the client is idle meanwhile, so this is the database's own time);
- auto_explain (analyze, buffers, wal, nested statements) of one `issue_pin()` and of one
  `issue_pins()` group of 16: every statement inside them with its plan;
- every index of `person` and `audit_event` (each partition): size and scans during the run.

    .venv/bin/python bench/issue_plan.py --seed 50000 --calls 2000

Report on stdout; nothing is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from idservice.db.embedded import EmbeddedPostgres
from idservice.db.migrate import migrate
from idservice.db.pool import connect
from idservice.db.roles import ensure_database, url_for
from idservice.pin.format import Sex, bucket_prefix
from idservice.queries import persons as q

TRIES = 16
BLOCK = 1000


def _row(n: int, tag: str) -> tuple[tuple[Any, ...], str]:
    rnd = random.Random(n)
    sex: Sex = "F" if n % 2 else "M"
    dob = date(2010, 1, 1) + timedelta(days=rnd.randrange(5000))
    name = f"nguyen thi {tag} {n}"
    record = json.dumps({"registration": {"authority": "UBND", "number": f"{tag}-{n}",
                                          "province_code": "052",
                                          "registered_on": dob.isoformat()},
                         "child": {"full_name": name}})
    row: tuple[Any, ...] = ("UBND", f"{tag}-{n}", dob, "052", name, name, [], sex, dob,
                            record, None, "tran thi lan")
    return row, bucket_prefix("052", dob.year, sex)


def _args(rows: list[tuple[tuple[Any, ...], str]]) -> list[Any]:
    n = len(rows)
    return [[r for r, _ in rows], [b"x" * 32] * n, [p for _, p in rows],
            [random.randrange(1_000_000) for _ in range(n * TRIES)], TRIES, BLOCK,
            ["client"] * n, ["bench"] * n, [None] * n, [None] * n,
            ['{"registration": {}}'] * n, [None] * n,
            [None] * n, [None] * n, [None] * n]  # no external (OSIA) claims: migration 0060


async def _groups(conn: asyncpg.Connection, tag: str, total: int, size: int) -> float:
    start = time.perf_counter()
    for first in range(0, total, size):
        await conn.fetch(q.ISSUE_PINS, *_args([_row(n, tag) for n in
                                               range(first, min(total, first + size))]))
    return (time.perf_counter() - start) * 1000 / total


async def _alone(conn: asyncpg.Connection, tag: str, total: int) -> float:
    start = time.perf_counter()
    for n in range(total):
        row, prefix = _row(n, tag)
        await conn.fetchrow(q.ISSUE_PIN, row, b"x" * 32, prefix,
                            [random.randrange(1_000_000) for _ in range(TRIES)], BLOCK,
                            "client", "bench", None, None, '{"registration": {}}', None)
    return (time.perf_counter() - start) * 1000 / total


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="idservice-plan-", dir="/tmp"))
    pg = EmbeddedPostgres(data)
    try:
        superuser = pg.ensure_running()
        urls = await ensure_database(superuser)
        await migrate(urls.owner)
        service = await connect(urls.service)
        t0 = time.perf_counter()
        await _groups(service, "SEED", args.seed, 500)
        print(f"seeded {args.seed:,} persons in {time.perf_counter() - t0:.1f} s")
        admin = await connect(url_for(superuser, database="idservice"))
        await admin.execute("SELECT pg_stat_reset()")
        print(f"\nwall ms per row, {args.calls:,} rows, one connection, each statement "
              "its own transaction (commit = WAL flush)")
        print(f"  issue_pin() alone          {await _alone(service, 'ALONE', args.calls):7.3f}")
        for size in (4, 16, 32, 128):
            per_row = await _groups(service, f"G{size}", args.calls, size)
            print(f"  issue_pins() groups of {size:<3} {per_row:7.3f}")

        notices: list[str] = []
        admin.add_log_listener(lambda _c, m: notices.append(m.message))
        await admin.execute("""
            LOAD 'auto_explain';
            SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
            SET auto_explain.log_buffers = on; SET auto_explain.log_wal = on;
            SET auto_explain.log_nested_statements = on; SET auto_explain.log_timing = on;
            SET client_min_messages = log""")
        row, prefix = _row(0, "EXPLAIN1")
        await admin.fetchrow(q.ISSUE_PIN, row, b"x" * 32, prefix,
                             [random.randrange(1_000_000) for _ in range(TRIES)], BLOCK,
                             "client", "bench", None, None, '{"registration": {}}', None)
        await asyncio.sleep(0.2)
        print("\n==== auto_explain: one issue_pin() (new registration) ====")
        print("\n".join(n for n in notices if "typeinfo_tree" not in n
                        and "set_config('jit'" not in n))
        notices.clear()
        await admin.fetch(q.ISSUE_PINS, *_args([_row(n, "EXPLAIN16") for n in range(16)]))
        await asyncio.sleep(0.2)
        print("\n==== auto_explain: issue_pins(), a group of 16 (outer statement only) ====")
        print(notices[-1] if notices else "(none)")
        await admin.execute("SET client_min_messages = warning")
        await service.close()  # a backend reports its index scans when it ends
        await asyncio.sleep(1.5)
        print("\n==== indexes of person and audit_event (each partition) ====")
        for r in await admin.fetch("""
            SELECT coalesce(pi.relname, i.relname) AS index, t.relname AS table_name,
                   sum(pg_relation_size(i.oid)) AS bytes, sum(s.idx_scan) AS scans
              FROM pg_index x
              JOIN pg_class i ON i.oid = x.indexrelid
              JOIN pg_class t ON t.oid = x.indrelid
              LEFT JOIN pg_inherits h ON h.inhrelid = i.oid
              LEFT JOIN pg_class pi ON pi.oid = h.inhparent
              LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.oid
             WHERE t.relname = 'person' OR t.relname LIKE 'audit_event%'
             GROUP BY 1, 2 ORDER BY 2, 1"""):
            print(f"  {r['table_name']:<22} {r['index']:<40} {int(r['bytes']) / 1e6:8.2f} MB "
                  f"{r['scans'] or 0:>8} scans")
        await admin.close()
    finally:
        pg.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=2_000)
    asyncio.run(main(parser.parse_args()))
