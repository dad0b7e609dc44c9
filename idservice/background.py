"""One way to run a background loop: call `step` every `interval` seconds until stopped.

Used by the audit sequencer and integrator, the revocation poller and the CRL refresher. A step
that fails is logged and tried again next round, so a database restart or an unreachable CRL
source never kills the loop; cancelling (stop) ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from idservice.logging import get_logger

__all__ = ["PeriodicTask"]

_log = get_logger(__name__)


class PeriodicTask:
    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[object]], *,
                 sleep_first: bool = False) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._sleep_first = sleep_first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if self._sleep_first:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("background_step_failed", task=self.name, error=type(exc).__name__)
            await asyncio.sleep(self.interval)
