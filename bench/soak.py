"""Soak test: N issuances at C clients through two primary kills (synchronous HA pair).

    .venv/bin/python -m bench.soak [--issuances 1000000] [--clients 64] [--max-minutes 30]

- Debian PostgreSQL primary + synchronous standby (tests/support/debian_pg.py: pg_basebackup,
  physical slot, `synchronous_standby_names`), the service as `idservice serve --workers 2`
  (bench/_harness.py `Stack`: its own temp data dir and SoftHSM token) on a multi-host URL
  with `target_session_attrs=read-write`.
- C asyncio (aiohttp) clients issue unique registrations; each attempt that gets no answer or
  a 503 is retried with the same body (same registration key) and a new X-Request-ID until it
  is acknowledged (201/200); a 401 (the access token expired) renews the token, then retries.
- At 1/3 and 2/3 of the acknowledged issuances: SIGKILL the primary, `pg_ctl promote` the
  standby, then rebuild a new synchronous standby from the new primary (pg_basebackup) on the
  dead primary's port, so that the multi-host URL stays valid and the second kill has
  somewhere to fail over to.
- Afterwards, on the final primary: duplicate PINs, lost acknowledgements, audit completeness
  (one `issued` pin.issue event per registration, one event per acknowledged attempt with
  the matching outcome, every event sequenced into the audit log).

Report on stdout; JSON in bench/results/soak-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

from bench._harness import REPO, CpuMeter, Stack, _percentiles_ms, free_port, log
from idservice.db.migrate import migrate
from idservice.db.roles import APP_ROLE, OWNER_ROLE
from tests.support.bodies import issue_body
from tests.support.debian_pg import DebianCluster, make_cluster_dir, remove_cluster_dir

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PRIMARY_SETTINGS = {"wal_level": "replica", "max_wal_senders": "5",
                    "max_replication_slots": "5", "wal_sender_timeout": "5s"}


async def _sql(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _wait_sync(primary: DebianCluster, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _sql(primary.superuser_url,
                      "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 "
                      "AND sync_state = 'sync' AND state = 'streaming'", name):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"standby {name} did not become synchronous")


class HaPair:
    """Primary + synchronous standby; `fail_over()` kills, promotes and rebuilds."""

    def __init__(self) -> None:
        self.directory = make_cluster_dir("idservice-soak-")
        self.ports = (free_port(), free_port())
        self.primary = DebianCluster(self.directory, self.ports[0], name="pg0")
        self.standby: DebianCluster | None = DebianCluster(self.directory, self.ports[1],
                                                           name="pg1")
        self.all: list[DebianCluster] = [self.primary, self.standby]
        self.generation = 1
        self.events: list[dict[str, Any]] = []

    async def start(self) -> tuple[str, str]:
        """Both clusters up and synchronous; returns (service URL, owner URL)."""
        assert self.standby is not None
        self.primary.init(replication=True, settings=PRIMARY_SETTINGS).start()
        urls = await self.primary.ensure_database()
        await migrate(urls.owner)
        await asyncio.to_thread(self.primary.create_replication_role, "standby1")
        await self._attach(self.primary, self.standby, "standby1")
        password = quote(self.primary.role_passwords[APP_ROLE], safe="")
        service_url = (f"postgresql://{APP_ROLE}:{password}@127.0.0.1:{self.ports[0]},"
                       f"127.0.0.1:{self.ports[1]}/idservice?target_session_attrs=read-write")
        owner_password = quote(self.primary.role_passwords[OWNER_ROLE], safe="")
        owner_url = (f"postgresql://{OWNER_ROLE}:{owner_password}@127.0.0.1:{self.ports[0]},"
                     f"127.0.0.1:{self.ports[1]}/idservice?target_session_attrs=read-write")
        return service_url, owner_url

    async def _attach(self, primary: DebianCluster, standby: DebianCluster, name: str) -> None:
        await asyncio.to_thread(primary.base_backup_to, standby, slot=name,
                                application_name=name)
        await asyncio.to_thread(standby.start)
        # after the base backup, so the standby's copy of postgresql.auto.conf has no sync name
        await _sql(primary.superuser_url,
                   f"ALTER SYSTEM SET synchronous_standby_names = '{name}'")
        await _sql(primary.superuser_url, "SELECT pg_reload_conf()")
        await _wait_sync(primary, name)

    async def fail_over(self, outage_s: float = 1.0) -> dict[str, Any]:
        assert self.standby is not None
        old, new = self.primary, self.standby
        t0 = time.monotonic()
        await asyncio.to_thread(old.kill)
        killed = time.monotonic()
        await asyncio.to_thread(old.kill_orphans)
        await asyncio.sleep(outage_s)  # clients see the outage (503 / no answer)
        await asyncio.to_thread(new.promote)
        promoted = time.monotonic()
        self.primary, self.standby = new, None
        # a new standby on the dead primary's port: the service's multi-host URL stays valid
        self.generation += 1
        name = f"standby{self.generation}"
        new.replication_password = old.replication_password  # the role came over by WAL
        await _sql(new.superuser_url, "SELECT pg_create_physical_replication_slot($1)", name)
        fresh = DebianCluster(self.directory, old.port, name=f"pg{self.generation}")
        self.all.append(fresh)
        await self._attach(new, fresh, name)
        self.standby = fresh
        event = {"killed_port": old.port, "promoted_port": new.port,
                 "kill_s": round(killed - t0, 2), "promote_at_s": round(promoted - killed, 2),
                 "new_standby_sync_at_s": round(time.monotonic() - killed, 2)}
        self.events.append(event)
        return event

    def postmaster_pids(self) -> dict[str, int]:
        pids = {}
        for role, cluster in (("postgresql primary", self.primary),
                              ("postgresql standby", self.standby)):
            pid = cluster.postmaster_pid() if cluster else None
            if pid:
                pids[role] = pid
        return pids

    def close(self) -> None:
        for cluster in self.all:
            try:
                cluster.stop("immediate")
            except Exception as exc:  # keep cleaning up
                log(f"stopping {cluster.name} failed: {exc}")
            cluster.kill_orphans()
        remove_cluster_dir(self.directory)


@dataclass
class Run:
    acks: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # number -> pin, st, rid
    ack_latency: list[float] = field(default_factory=list)  # of the acknowledged attempt
    reg_latency: list[float] = field(default_factory=list)  # first try -> acknowledgement
    statuses: Counter[str] = field(default_factory=Counter)
    attempts: dict[str, str] = field(default_factory=dict)  # request id -> number
    unexpected: list[str] = field(default_factory=list)
    next_index: int = 0
    kill_in_progress: bool = False
    kills: list[dict[str, Any]] = field(default_factory=list)


class Tokens:
    """The registrar's access token, renewed as a real client does: when an answer says 401
    (the token lived `IDSERVICE_TOKEN_TTL`, 15 min by default, shorter than a 1M soak). One
    renewal per expiry, however many clients saw the 401."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._lock = asyncio.Lock()
        self.token = ""
        self.renewals = 0

    async def renew(self, stale: str) -> None:
        async with self._lock:
            if self.token == stale:
                self.token = await asyncio.to_thread(self._stack.token)
                self.renewals += 1


async def client(http: aiohttp.ClientSession, url: str, tokens: Tokens, run: Run, total: int,
                 stop_at: float) -> None:
    while run.next_index < total and time.monotonic() < stop_at:
        run.next_index += 1
        number = f"SOAK-{run.next_index}"
        body = json.dumps(issue_body("052", number=number))
        first = time.perf_counter()
        while time.monotonic() < stop_at:
            rid = uuid.uuid4().hex
            run.attempts[rid] = number
            token = tokens.token
            t0 = time.perf_counter()
            try:
                async with http.post(url, data=body, headers={
                        "Authorization": f"Bearer {token}", "X-Request-ID": rid,
                        "Content-Type": "application/json"}) as response:
                    status = response.status
                    payload = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                run.statuses["no answer"] += 1
                await asyncio.sleep(0.05)
                continue
            run.statuses[str(status)] += 1
            if status in (200, 201):
                now = time.perf_counter()
                run.acks[number] = (json.loads(payload)["pin"], status, rid)
                run.ack_latency.append(now - t0)
                run.reg_latency.append(now - first)
                break
            if status == 503:
                await asyncio.sleep(0.05)
                continue
            if status == 401:  # expired: renew and send the same body again
                await tokens.renew(token)
                continue
            run.unexpected.append(f"{number}: {status} {payload[:200]!r}")
            return


async def killer(pair: HaPair, run: Run, total: int, stop_at: float) -> None:
    for k, fraction in enumerate((1 / 3, 2 / 3), 1):
        while len(run.acks) < total * fraction:
            if time.monotonic() > stop_at:
                return
            await asyncio.sleep(0.05)
        log(f"kill {k}: SIGKILL primary at {len(run.acks)} acknowledgements")
        acked_before = len(run.acks)
        run.kill_in_progress = True
        event = await pair.fail_over()
        run.kill_in_progress = False
        event["acknowledged_before"] = acked_before
        run.kills.append(event)
        log(f"kill {k}: promoted, new synchronous standby ready: {event}")


async def issue(stack: Stack, pair: HaPair, args: argparse.Namespace) -> dict[str, Any]:
    tokens = Tokens(stack)
    await tokens.renew("")
    run = Run()
    stop_at = time.monotonic() + args.max_minutes * 60
    roots = {"idservice": stack.server.pid} if stack.server else {}
    meter = CpuMeter(roots).start()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=args.clients)
    last = [0, time.monotonic()]

    async def progress() -> None:
        while True:
            await asyncio.sleep(10)
            now, done = time.monotonic(), len(run.acks)
            log(f"{done} acknowledged ({(done - last[0]) / (now - last[1]):.0f}/s), "
                f"{dict(run.statuses)}")
            last[:] = [done, now]

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        reporter = asyncio.create_task(progress())
        kill_task = asyncio.create_task(killer(pair, run, args.issuances, stop_at))
        await asyncio.gather(*(client(http, f"{stack.origin}/v1/pins", tokens, run,
                                      args.issuances, stop_at) for _ in range(args.clients)))
        elapsed = time.perf_counter() - t0
        reporter.cancel()
        if run.kill_in_progress:  # finish it: the final primary must be the promoted one
            await kill_task
        elif not kill_task.done():
            kill_task.cancel()
        await asyncio.gather(kill_task, return_exceptions=True)
    cpu = meter.stop()
    run.ack_latency.sort()
    run.reg_latency.sort()
    return {"run": run, "elapsed_s": elapsed, "cpu": cpu, "timed_out": time.monotonic() > stop_at,
            "token_renewals": tokens.renewals - 1}


async def verify(pair: HaPair, run: Run, audit_wait_s: float = 120) -> dict[str, Any]:
    primary = pair.primary
    url = primary.url("postgres", primary.superuser_password, "idservice")
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + audit_wait_s
        while True:
            unsequenced = await conn.fetchval(
                "SELECT count(*) FROM audit_event e WHERE NOT EXISTS "
                "(SELECT 1 FROM audit_log l WHERE l.event_id = e.id)")
            if unsequenced == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        dup_pins = await conn.fetchval(
            "SELECT count(*) FROM (SELECT pin FROM person WHERE registration_number "
            "LIKE 'SOAK-%' GROUP BY pin HAVING count(*) > 1) d")
        dup_regs = await conn.fetchval(
            "SELECT count(*) FROM (SELECT registration_number FROM person WHERE "
            "registration_number LIKE 'SOAK-%' GROUP BY registration_number "
            "HAVING count(*) > 1) d")
        persons = await conn.fetch(
            "SELECT registration_number, pin FROM person WHERE registration_number LIKE 'SOAK-%'")
        registrations = await conn.fetch(
            "SELECT number, pin FROM registration WHERE number LIKE 'SOAK-%'")
        events = await conn.fetch(
            "SELECT request_id, outcome, pin, details->'registration'->>'number' AS number "
            "FROM audit_event WHERE action = 'pin.issue'")
    finally:
        await conn.close()
    stored = {r["registration_number"]: r["pin"] for r in persons}
    registered = {r["number"]: r["pin"] for r in registrations}
    lost = [n for n, (pin, _, _) in run.acks.items()
            if stored.get(n) != pin or registered.get(n) != pin]
    unasked = set(stored) - set(run.acks)  # committed, never acknowledged (cut-off attempts)
    events = [e for e in events if (e["number"] or "").startswith("SOAK-")]
    issued = Counter(e["number"] for e in events if e["outcome"] == "issued")
    by_rid = {e["request_id"]: e for e in events}
    rid_counts = Counter(e["request_id"] for e in events)
    not_one_issued = sum(1 for n in stored if issued.get(n) != 1) + \
        sum(1 for n in issued if n not in stored)
    acked_without_event = 0
    wrong_event = 0
    for number, (pin, status, rid) in run.acks.items():
        event = by_rid.get(rid)
        if event is None:
            acked_without_event += 1
        elif (event["outcome"] != ("issued" if status == 201 else "replayed")
              or event["pin"] != pin or event["number"] != number):
            wrong_event += 1
    foreign = sum(1 for rid in rid_counts if rid not in run.attempts)
    return {
        "persons": len(persons), "registrations": len(registrations),
        "duplicate_pins": dup_pins, "registrations_with_several_persons": dup_regs,
        "registration_rows_not_matching_person": sum(
            1 for n, p in registered.items() if stored.get(n) != p) + len(
            set(stored) - set(registered)),
        "lost_acknowledgements": len(lost), "lost_examples": lost[:5],
        "stored_but_never_acknowledged": len(unasked),
        "audit": {
            "pin_issue_events": len(events),
            "registrations_without_exactly_one_issued_event": not_one_issued,
            "acknowledged_attempts_without_event": acked_without_event,
            "acknowledged_attempts_with_wrong_event": wrong_event,
            "events_of_attempts_not_made": foreign,
            "requests_with_several_events": sum(1 for c in rid_counts.values() if c > 1),
            "events_not_sequenced": unsequenced,
        },
    }


def render(report: dict[str, Any]) -> str:
    v, lat = report["verification"], report["latency_ms"]
    audit = v["audit"]
    audit_ok = not any(audit[k] for k in (
        "registrations_without_exactly_one_issued_event", "acknowledged_attempts_without_event",
        "acknowledged_attempts_with_wrong_event", "events_of_attempts_not_made",
        "requests_with_several_events", "events_not_sequenced"))
    dup = v["duplicate_pins"] + v["registrations_with_several_persons"]
    lines = [
        f"soak: {report['acknowledged']}/{report['issuances']} issuances acknowledged at "
        f"{report['clients']} clients in {report['elapsed_s']} s"
        f"{' (TIME LIMIT HIT)' if report['timed_out'] else ''}",
        f"  throughput           : {report['issuances_per_s']} issuances/s (kills included)",
        f"  latency (ack'd try)  : p50 {lat['acknowledged_attempt'].get('p50')} ms, "
        f"p99 {lat['acknowledged_attempt'].get('p99')} ms, "
        f"max {lat['acknowledged_attempt'].get('max')} ms",
        f"  latency (first try -> ack, retries included): p50 "
        f"{lat['registration'].get('p50')} ms, p99 {lat['registration'].get('p99')} ms, "
        f"max {lat['registration'].get('max')} ms",
        f"  answers              : {report['statuses']} (401 = token expired: renewed "
        f"{report['token_renewals']} time(s), same body sent again)",
        f"  primary kills        : {len(report['kills'])} "
        + "; ".join(f"promote +{k['promote_at_s']} s, new sync standby +"
                    f"{k['new_standby_sync_at_s']} s" for k in report["kills"]),
        f"  duplicates           : {dup} ({v['duplicate_pins']} PINs on >1 registration, "
        f"{v['registrations_with_several_persons']} registrations with >1 person) "
        f"-> {'OK' if dup == 0 else 'FAIL'}",
        f"  lost acknowledgements: {v['lost_acknowledgements']} -> "
        f"{'OK' if v['lost_acknowledgements'] == 0 else 'FAIL'}",
        f"  audit completeness   : {'OK' if audit_ok else 'FAIL'} {audit}",
        f"  unexpected answers   : {len(report['unexpected'])}",
        f"  rows: {v['persons']} persons, {v['registrations']} registrations, "
        f"{v['stored_but_never_acknowledged']} stored but never acknowledged",
        f"  cpu cores            : {report['cpu'].get('cores')}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issuances", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--max-minutes", type=float, default=30.0,
                        help="bound of the issuance phase (verification comes after)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the service's data dir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pair = HaPair()
    try:
        with Stack(keep=args.keep) as stack:
            log(f"clusters in {pair.directory}")
            service_url, owner_url = asyncio.run(pair.start())
            log(f"primary :{pair.primary.port}, synchronous standby "
                f":{pair.standby.port if pair.standby else '-'}")
            stack.env.update({"IDSERVICE_DATABASE_URL": service_url,
                              "IDSERVICE_OWNER_DATABASE_URL": owner_url,
                              "IDSERVICE_DB_POOL_MAX": str(max(8, args.clients // args.workers
                                                               + 8))})
            stack.start_server(args.workers)
            result = asyncio.run(issue(stack, pair, args))
            run: Run = result["run"]
            log("issuance done; verifying on the final primary")
            verification = asyncio.run(verify(pair, run))
            stack.stop_server()
    finally:
        pair.close()
    elapsed = result["elapsed_s"]
    report = {
        "benchmark": "soak", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "issuances": args.issuances, "clients": args.clients, "workers": args.workers,
        "max_minutes": args.max_minutes, "timed_out": result["timed_out"],
        "acknowledged": len(run.acks), "elapsed_s": round(elapsed, 1),
        "issuances_per_s": round(len(run.acks) / elapsed, 1),
        "latency_ms": {"acknowledged_attempt": _percentiles_ms(run.ack_latency),
                       "registration": _percentiles_ms(run.reg_latency)},
        "statuses": dict(run.statuses), "token_renewals": result["token_renewals"],
        "unexpected": run.unexpected[:20],
        "kills": run.kills, "verification": verification, "cpu": result["cpu"],
        "postgres": {"server": "Debian", "bin": str(Path(os.path.realpath(
            "/usr/lib/postgresql")))},
        "command": " ".join([sys.executable, "-m", "bench.soak", *(argv or sys.argv[1:])]),
        "repo": str(REPO),
    }
    print(render(report))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"saved {out}")
    v = verification
    ok = (v["duplicate_pins"] == 0 and v["registrations_with_several_persons"] == 0
          and v["lost_acknowledgements"] == 0 and len(run.acks) == args.issuances
          and len(run.kills) == 2
          and not run.unexpected)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
