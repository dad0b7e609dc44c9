"""PeriodicTask: keeps running through failing steps, stops at once when asked."""

from __future__ import annotations

import asyncio

from idservice.background import PeriodicTask


async def test_failing_step_is_retried_and_stop_ends_the_loop() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("database restarting")

    task = PeriodicTask("test", 0.01, step)
    task.start()
    for _ in range(200):
        if calls >= 4:
            break
        await asyncio.sleep(0.01)
    await task.stop()
    assert calls >= 4  # the two failures did not end the loop
    seen = calls
    await asyncio.sleep(0.05)
    assert calls == seen  # stopped means stopped


async def test_sleep_first_waits_one_interval_before_the_first_step() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1

    task = PeriodicTask("test", 0.2, step, sleep_first=True)
    task.start()
    await asyncio.sleep(0.05)
    assert calls == 0
    await task.stop()
