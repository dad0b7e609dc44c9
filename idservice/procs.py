"""Whether a process still exists: the embedded PostgreSQL's lifecycle and the metrics'
clean-up of dead workers both ask, for processes that may belong to another user."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True
