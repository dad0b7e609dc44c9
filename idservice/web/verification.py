"""In-service verification of the whole audit log, on an auditor's demand (the UI's "Verify now").

The same code as `idservice audit verify` (`audit/verify.py` over `audit/sources.DatabaseSource`
in one REPEATABLE READ snapshot), checked with the key the service signs checkpoints with (the
HSM key). It runs as a background task of the process that got the request (one at a time per
process), in small batches so requests keep being served; the result is recorded as an
`audit.verify` event (actor = the auditor who asked) in the log itself, so the "last
verification" shown by every process is durable and tamper-evident like any event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.audit.sources import DatabaseSource
from idservice.audit.verify import AuditVerificationError, verify_log
from idservice.logging import get_logger
from idservice.services import Services

__all__ = ["VerificationRunner"]

_log = get_logger(__name__)
_BATCH = 1000  # rows per batch: short CPU slices between awaits


@dataclass
class VerificationRunner:
    """Per process: at most one verification at a time."""

    task: asyncio.Task[None] | None = None
    started_at: datetime | None = None
    rows_done: int = 0
    finished_at: float | None = None  # monotonic

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def recently_finished(self, within: float = 5.0) -> bool:
        """Finished moments ago: its event may not be sequenced yet (the page keeps polling)."""
        return self.finished_at is not None and time.monotonic() - self.finished_at < within

    def start(self, svc: Services, rctx: RequestContext) -> bool:
        """Start a verification unless one runs already; True if this call started it."""
        if self.running:
            return False
        self.started_at = datetime.now(UTC)
        self.rows_done = 0
        self.finished_at = None
        self.task = asyncio.create_task(self._run(svc, rctx), name="audit-ui-verify")
        return True

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def _progress(self, n: int) -> None:
        self.rows_done += n

    async def _run(self, svc: Services, rctx: RequestContext) -> None:
        started = time.perf_counter()
        details: dict[str, Any] = {"trigger": "ui", "code": "audit/verify.py"}
        outcome = "ok"
        try:
            if svc.audit_signer is None:
                raise RuntimeError("the audit checkpoint key is not available")
            verifier = svc.audit_signer.verifier
            async with svc.pool.acquire() as conn, \
                    conn.transaction(isolation="repeatable_read", readonly=True):
                report = await verify_log(DatabaseSource(conn, batch=_BATCH), verifier,
                                          progress=self._progress)
            details.update(rows=report.rows, checkpoints=report.checkpoints,
                           proven_size=report.proven_size)
        except AuditVerificationError as exc:
            outcome = "failed"
            details.update(rows=exc.report.rows, checkpoints=exc.report.checkpoints,
                           proven_size=exc.report.proven_size, first_bad_index=exc.first.index,
                           problem=exc.first.message[:500], problems=len(exc.problems))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database or the HSM failed: say so, do not guess
            outcome = "error"
            details["problem"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        details["seconds"] = round(time.perf_counter() - started, 3)
        try:
            async with svc.pool.acquire() as conn, conn.transaction():
                await record(conn, rctx, [AuditEvent("audit.verify", outcome, details=details)])
        except Exception as exc:
            _log.warning("audit_ui_verify_record_failed", error=type(exc).__name__)
            raise
        self.finished_at = time.monotonic()
        _log.info("audit_ui_verify", outcome=outcome, **{k: v for k, v in details.items()
                                                         if k in ("rows", "seconds")})
