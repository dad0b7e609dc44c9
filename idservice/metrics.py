"""Prometheus metrics of the service (served at /metrics).

Three kinds of values:

- Counted or measured by the process handling the work (request latency, issuances, audit
  events sequenced, HSM errors) and per-process state (DB pool use, CRL freshness of that
  process's CRL cache): ordinary `prometheus_client` metrics. With `idservice serve --workers N`
  they live in memory-mapped files under `PROMETHEUS_MULTIPROC_DIR` (set by `serve` to a fresh
  directory before the workers start) and every scrape, whichever worker answers it, reports
  the aggregate over all workers: counters and histograms are summed, pool gauges summed over
  live workers (`livesum`), CRL age the worst live worker (`livemax` / `livemin`).
- Facts of the shared database (the fullest PIN buckets, the audit integration lag): the same
  for every worker, so each worker refreshes a snapshot every `IDSERVICE_METRICS_REFRESH_SECONDS`
  (the fullest buckets, a sum over the whole `pin_block` table, every
  `IDSERVICE_METRICS_BUCKET_REFRESH_SECONDS`) and the worker that answers a scrape reports its
  own (`DatabaseFacts`, a custom collector).
  A gauge with a changing top-N label set cannot be kept in multiprocess files (labels cannot
  be removed there); a snapshot can.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from idservice.background import PeriodicTask
from idservice.clock import Clock
from idservice.procs import pid_alive
from idservice.queries.notify import BACKLOG as NOTIFY_BACKLOG

if TYPE_CHECKING:
    import asyncpg

    from idservice.auth.crl_cache import CrlCache

__all__ = [
    "AUDIT_SEQUENCED",
    "CONTENT_TYPE_LATEST",
    "HSM_ERRORS",
    "ISSUANCES",
    "NOTIFY_ATTEMPTS",
    "NOTIFY_DROPPED",
    "REQUEST_LATENCY",
    "MetricsRefresher",
    "exposition",
    "prepare_multiprocess_dir",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client chose its value storage when it was imported (just above); so do we.
_MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV) or None

REQUEST_LATENCY = Histogram(
    "idservice_request_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
ISSUANCES = Counter("idservice_pins_issued_total", "PINs issued", ["province"])
AUDIT_SEQUENCED = Counter("idservice_audit_sequenced_total", "Audit events given an index")
NOTIFY_ATTEMPTS = Counter("idservice_notify_attempts_total",
                          "Notification requests sent to subscribers, by outcome "
                          "(delivered: 2xx; refused: another status; failed: no answer)",
                          ["outcome"])
NOTIFY_DROPPED = Counter("idservice_notify_given_up_total",
                         "Notifications given up after the subscription's last retry")
HSM_ERRORS = Counter("idservice_hsm_errors_total",
                     "HSM failures answered 503 (request) or seen by /readyz (readyz)", ["where"])
for _where in ("request", "readyz"):
    HSM_ERRORS.labels(_where)  # present at 0 from the start

DB_POOL_IN_USE = Gauge("idservice_db_pool_connections_in_use",
                       "Database connections checked out of the pool (sum over workers)",
                       multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("idservice_db_pool_connections",
                     "Database connections open in the pool (sum over workers)",
                     multiprocess_mode="livesum")
DB_POOL_MAX = Gauge("idservice_db_pool_max_connections",
                    "Largest pool size allowed (sum over workers)", multiprocess_mode="livesum")
CRL_AGE = Gauge("idservice_crl_age_seconds",
                "Seconds since the thisUpdate of the CRL loaded from a source (worst worker)",
                ["source"], multiprocess_mode="livemax")
CRL_REMAINING = Gauge("idservice_crl_next_update_seconds",
                      "Seconds until the nextUpdate of the CRL loaded from a source; negative "
                      "once stale (worst worker)", ["source"], multiprocess_mode="livemin")


@dataclass
class _Facts:
    """The last snapshot of database facts; None until the first refresh succeeded."""
    buckets: list[tuple[str, int]] = field(default_factory=list)
    sequenced: int | None = None
    integrated: int | None = None
    checkpoint_at: float | None = None  # epoch seconds of the newest checkpoint
    partitioned_until: float | None = None  # epoch seconds where the last audit partition ends
    notify_backlog: int | None = None  # undelivered (subscription, event) pairs
    notify_oldest: float | None = None  # age in seconds of the oldest of them
    refreshed_at: float | None = None


class DatabaseFacts(Collector):
    """Custom collector over the process's latest snapshot (see the module docstring)."""

    def __init__(self) -> None:
        self.facts = _Facts()

    def collect(self) -> Iterable[Metric]:
        facts = self.facts
        fill = GaugeMetricFamily(
            "idservice_pin_bucket_fill_ratio",
            "Share of the 10^6 numbers used in the fullest (province, G, YY) buckets (top N)",
            labels=["bucket"])
        for prefix, used in facts.buckets:
            fill.add_metric([prefix], used / 1_000_000)
        yield fill
        if facts.sequenced is not None and facts.integrated is not None:
            yield GaugeMetricFamily(
                "idservice_audit_unintegrated_events",
                "Audit events sequenced (given an index) but not yet in the Merkle tree",
                value=max(facts.sequenced - facts.integrated, 0))
        if facts.checkpoint_at is not None:
            yield GaugeMetricFamily(
                "idservice_audit_checkpoint_age_seconds",
                "Seconds since the newest signed audit checkpoint",
                value=max(time.time() - facts.checkpoint_at, 0.0))
        if facts.partitioned_until is not None:
            yield GaugeMetricFamily(
                "idservice_audit_partition_horizon_seconds",
                "Seconds until the last audit_event partition ends (audit writes fail after it)",
                value=facts.partitioned_until - time.time())
        if facts.notify_backlog is not None:
            yield GaugeMetricFamily(
                "idservice_notify_backlog",
                "Notifications not yet delivered: (subscription, event) pairs of confirmed "
                "subscriptions, plus outbox events not yet sequenced",
                value=facts.notify_backlog)
            yield GaugeMetricFamily(
                "idservice_notify_oldest_undelivered_seconds",
                "Age of the oldest notification not yet delivered (0: none)",
                value=facts.notify_oldest or 0.0)
        if facts.refreshed_at is not None:
            yield GaugeMetricFamily(
                "idservice_metrics_refreshed_timestamp_seconds",
                "When this worker last read the database facts above",
                value=facts.refreshed_at)


DATABASE_FACTS = DatabaseFacts()
REGISTRY.register(DATABASE_FACTS)

_BUCKETS_SQL = """
SELECT prefix, sum(used)::bigint AS used FROM pin_block
 GROUP BY prefix ORDER BY used DESC, prefix LIMIT $1
"""
_AUDIT_SQL = """
SELECT coalesce((SELECT index + 1 FROM audit_log ORDER BY index DESC LIMIT 1), 0) AS sequenced,
       (SELECT size FROM audit_tree ORDER BY size DESC LIMIT 1) AS integrated,
       (SELECT extract(epoch FROM created_at)::float8 FROM audit_checkpoint
         ORDER BY tree_size DESC LIMIT 1) AS checkpoint_at,
       extract(epoch FROM audit_event_partitioned_until())::float8 AS partitioned_until
"""


def _seconds(delta_end: datetime, delta_start: datetime) -> float:
    return (delta_end - delta_start).total_seconds()


class MetricsRefresher:
    """Per app: every `interval` seconds, read the database facts and set the per-process
    gauges (pool use, CRL freshness). Several apps in one process (tests) add up: the gauges
    are computed over every registered pool and CRL cache of the process."""

    _pools: dict[int, asyncpg.Pool] = {}  # noqa: RUF012 - process-wide on purpose
    _crls: dict[int, CrlCache] = {}  # noqa: RUF012

    def __init__(self, pool: asyncpg.Pool, crls: CrlCache | None, clock: Clock, *,
                 interval: float, top_buckets: int, bucket_interval: float) -> None:
        self._pool = pool
        self._crl_cache = crls
        self._clock = clock
        self._top = top_buckets
        # The fullest buckets are a sum over every `pin_block` row (up to 1,000 per bucket:
        # 1,152,000 rows and 200-700 ms at 10M persons, ~10x that for the country), for a
        # figure that moves by one per birth in a space of 10^6: read on a slower beat of its
        # own, not on every refresh (bench/README, "Session of 2026-12-07 05:20 UTC").
        self._bucket_interval = bucket_interval
        self._buckets: list[tuple[str, int]] = []
        self._buckets_read: float | None = None  # time.monotonic() of the last read
        self._loop = PeriodicTask("metrics-refresh", interval, self.refresh)

    def start(self) -> None:
        MetricsRefresher._pools[id(self._pool)] = self._pool
        if self._crl_cache is not None:
            MetricsRefresher._crls[id(self._crl_cache)] = self._crl_cache
        if _MULTIPROC_DIR:
            _forget_dead_workers(Path(_MULTIPROC_DIR))
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        MetricsRefresher._pools.pop(id(self._pool), None)
        if self._crl_cache is not None:
            MetricsRefresher._crls.pop(id(self._crl_cache), None)
        if _MULTIPROC_DIR:
            multiprocess.mark_process_dead(os.getpid(), _MULTIPROC_DIR)  # type: ignore[no-untyped-call]

    async def refresh(self) -> _Facts:
        """Read the database facts into this process's snapshot; returns it."""
        self.refresh_process_gauges()
        async with self._pool.acquire() as conn:
            now = time.monotonic()
            if self._buckets_read is None or now - self._buckets_read >= self._bucket_interval:
                self._buckets = [(row["prefix"], int(row["used"]))
                                 for row in await conn.fetch(_BUCKETS_SQL, self._top)]
                self._buckets_read = now
            audit = await conn.fetchrow(_AUDIT_SQL)
            backlog = await conn.fetchrow(NOTIFY_BACKLOG)
        assert audit is not None and backlog is not None
        facts = DATABASE_FACTS.facts = _Facts(
            buckets=self._buckets,
            sequenced=int(audit["sequenced"]),
            integrated=int(audit["integrated"]) if audit["integrated"] is not None else None,
            checkpoint_at=audit["checkpoint_at"],
            partitioned_until=audit["partitioned_until"],
            notify_backlog=int(backlog["n"]), notify_oldest=float(backlog["age"]),
            refreshed_at=time.time())
        return facts

    def refresh_process_gauges(self) -> None:
        pools = list(MetricsRefresher._pools.values())
        DB_POOL_SIZE.set(sum(p.get_size() for p in pools))
        DB_POOL_IN_USE.set(sum(p.get_size() - p.get_idle_size() for p in pools))
        DB_POOL_MAX.set(sum(p.get_max_size() for p in pools))
        now = self._clock.now()
        worst: dict[str, tuple[float, float | None]] = {}
        for cache in MetricsRefresher._crls.values():
            for status in cache.status():
                if status.this_update is None:
                    continue
                age = _seconds(now, status.this_update)
                left = None if status.next_update is None else _seconds(status.next_update, now)
                old_age, old_left = worst.get(status.source, (age, left))
                worst[status.source] = (
                    max(age, old_age),
                    left if old_left is None else old_left if left is None
                    else min(left, old_left))
        for source, (age, left) in worst.items():
            CRL_AGE.labels(source).set(age)
            if left is not None:
                CRL_REMAINING.labels(source).set(left)


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def _forget_dead_workers(directory: Path) -> None:
    """Drop the live-gauge files of workers that died without cleaning up (uvicorn restarts
    a crashed worker); their counters stay, as Prometheus counters must."""
    dead = {int(m.group(1)) for p in directory.glob("gauge_live*.db")
            if (m := _LIVE_GAUGE_FILE.match(p.name))}
    for pid in dead:
        if not pid_alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """A fresh, empty `<data dir>/prometheus` for the workers `serve` is about to start, named
    in the environment they inherit. Files of an earlier run would otherwise be summed in."""
    directory = (Path(data_dir) / "prometheus").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def exposition() -> bytes:
    """The text exposition for one scrape: in multiprocess mode the aggregate over all
    workers' files plus this worker's snapshot of database facts."""
    if not _MULTIPROC_DIR:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    registry.register(DATABASE_FACTS)
    return generate_latest(registry)


def iter_metric_names(text: str) -> Iterator[str]:
    """Names of the samples in an exposition (tests, debugging)."""
    for line in text.splitlines():
        if line and not line.startswith("#"):
            yield re.split(r"[{ ]", line, maxsplit=1)[0]
