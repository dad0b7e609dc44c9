"""The garbage collector of a serving process, set for a request server (issue 16).

Measured under `bench/osia.py` load with the interpreter's defaults (thresholds 700, 10, 10):
a worker holds ~115,000 long-lived objects after start-up (modules, routes, models, caches)
and ran a full collection about once a second, each traversing all of them: ~50 microseconds of
worker CPU per issuance, in pauses of tens of milliseconds (the p99). Its ~1,900 young
collections per 12 s cost another ~20 microseconds per issuance, and collected nothing of
note: they were triggered by the objects of the 32 requests in flight, which reference
counting frees a moment later anyway.

So, once everything long-lived exists (the app is built, every module imported): collect what
start-up left, `gc.freeze()` the rest (never traversed again; frozen objects are still freed
by reference counting, only cycles among them stay), and collect the young generation only
after `YOUNG_THRESHOLD` net allocations, above what the requests in flight hold. Cycles made
by requests (an exception and its traceback) are still collected, a little later; memory per
worker stays bounded (bench/memory.py, issue 16 goal 6). Only serving processes do this
(`idservice serve`): the test suite runs apps inside pytest, whose heap is not ours to freeze.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_heap"]

YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
