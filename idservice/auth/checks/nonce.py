"""Check 1: the challenge nonce exists and is fresh; it is consumed before anything else."""

from __future__ import annotations

from idservice.auth.challenge import consume_nonce
from idservice.auth.checks.base import LoginAttempt
from idservice.clock import Clock

__all__ = ["NonceCheck"]


class NonceCheck:
    name = "nonce"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def run(self, attempt: LoginAttempt) -> None:
        await consume_nonce(attempt.conn, attempt.nonce, self._clock)
