"""Check 1: the challenge nonce is ours, fresh and unused; it is used up whatever the outcome.

Its MAC and expiry are checked first, without the database (`verify_nonce`). Whether it was
used is decided where it is recorded as used: in the login's one statement (`officer_login()`,
migrations/0040) when every other check passed, or by `consume` (its own autocommit) before a
later check's refusal is reported, so a used nonce is always the answer, in the contract's
order, and a refused login burns its nonce too.
"""

from __future__ import annotations

from idservice.auth.challenge import NonceKey, consume_nonce, verify_nonce
from idservice.auth.checks.base import LoginAttempt
from idservice.clock import Clock

__all__ = ["NonceCheck"]


class NonceCheck:
    name = "nonce"

    def __init__(self, key: NonceKey, clock: Clock) -> None:
        self._key = key
        self._clock = clock

    async def run(self, attempt: LoginAttempt) -> None:
        attempt.verified_nonce = verify_nonce(self._key, attempt.nonce, self._clock)

    async def consume(self, attempt: LoginAttempt) -> None:
        """Record the verified nonce as used (committed); raise `NonceNotFound` if it was."""
        assert attempt.verified_nonce is not None
        async with attempt.pool.acquire() as conn:
            await consume_nonce(conn, attempt.verified_nonce)
