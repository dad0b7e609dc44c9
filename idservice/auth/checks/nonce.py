"""Check 1: the challenge nonce is ours, fresh and unused; it is used up before anything else."""

from __future__ import annotations

from idservice.auth.challenge import NonceKey, consume_nonce
from idservice.auth.checks.base import LoginAttempt
from idservice.clock import Clock

__all__ = ["NonceCheck"]


class NonceCheck:
    name = "nonce"

    def __init__(self, key: NonceKey, clock: Clock) -> None:
        self._key = key
        self._clock = clock

    async def run(self, attempt: LoginAttempt) -> None:
        await consume_nonce(attempt.conn, self._key, attempt.nonce, self._clock)
