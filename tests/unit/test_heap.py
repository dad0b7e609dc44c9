"""A serving process's garbage collector (idservice/heap.py): what start-up built is frozen,
young collections wait for more than the requests in flight allocate, cycles are still freed.

Each check runs in a fresh interpreter (a real subprocess): the pytest process's own heap and
thresholds must stay as they are, and a frozen heap cannot be unfrozen for the next test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from idservice.heap import YOUNG_THRESHOLD


def _run(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_worker_app_is_built_on_a_settled_heap() -> None:
    """`create_app_from_env` is what `serve --workers N` runs in each worker."""
    result = _run("""
        import gc, json
        from idservice.app import create_app_from_env
        create_app_from_env()
        print(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}))
    """)
    assert result["frozen"] > 20_000  # modules, routes, models: tens of thousands of objects
    assert result["threshold"] == [YOUNG_THRESHOLD, 10, 10]


def test_objects_of_requests_in_flight_trigger_no_collection_and_cycles_are_still_freed() -> None:
    result = _run("""
        import gc, json, weakref
        from idservice.heap import YOUNG_THRESHOLD, settle_heap
        settle_heap()
        before = gc.get_stats()[0]["collections"]
        for _ in range(200):  # 32 requests in flight, ~100 containers each, then freed
            in_flight = [{"request": [i]} for i in range(3200 // 2)]
            del in_flight
        quiet = gc.get_stats()[0]["collections"] - before

        class Node:
            pass
        freed = []
        node = Node()
        node.self = node  # a cycle: reference counting alone never frees it
        weakref.finalize(node, freed.append, True)
        del node
        keep = [[] for _ in range(YOUNG_THRESHOLD + 100)]  # enough for a young collection
        print(json.dumps({"quiet": quiet, "freed": freed == [True], "kept": len(keep)}))
    """)
    assert result["quiet"] == 0
    assert result["freed"] is True
