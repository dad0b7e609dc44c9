"""Who administers, and the audit trail of it (contract 7: `admin.*` events).

The `operators` / `clients` commands are the only writers of those tables; they run as the
administrator database role (migration 0016) and name the OS user who ran them as the actor
(`{"type": "admin", "id": <user>}`). Each change and its event share one transaction.
"""

from __future__ import annotations

import os
import pwd
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Actor
from idservice.db.types import Conn

__all__ = ["admin_actor", "record_admin"]


def admin_actor() -> Actor:
    """The OS account running this process (not $USER, which the caller sets at will)."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid:{os.getuid()}"
    return Actor("admin", user)


async def record_admin(conn: Conn, by: Actor, action: str, details: dict[str, Any]) -> None:
    """One `admin.*` event in the caller's transaction. `sudo` is noted, for the record only."""
    if by.type != "admin" or not action.startswith("admin."):
        raise ValueError("administration events are admin.* by an admin actor")
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        details = {**details, "sudo_user": sudo_user[:64]}
    await record(conn, RequestContext(by, None, None), [AuditEvent(action, "success",
                                                                   details=details)])
