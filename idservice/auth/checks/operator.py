"""Check 10: the certificate maps to a registered operator (by SHA-256 of the certificate, or
issuer + serial) who is enabled."""

from __future__ import annotations

from idservice.auth.checks.base import LoginAttempt, MappedOperator
from idservice.auth.login_errors import OperatorDisabled, OperatorUnknown
from idservice.auth.operators import certificate_identity
from idservice.queries import officers as q

__all__ = ["OperatorCheck"]


class OperatorCheck:
    name = "operator"

    async def run(self, attempt: LoginAttempt) -> None:
        identity = certificate_identity(attempt.cert)
        row = await attempt.conn.fetchrow(q.FIND_OPERATOR, identity.sha256, identity.issuer,
                                          identity.serial)
        if row is None:
            raise OperatorUnknown("no operator is registered for this certificate")
        if not row["enabled"]:
            raise OperatorDisabled(f"operator {row['id']} is disabled")
        attempt.operator = MappedOperator(id=row["id"], name=row["name"], roles=list(row["roles"]),
                                          jurisdiction=row["jurisdiction"])
