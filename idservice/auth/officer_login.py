"""The running parts of officer login: the validator and the CRL cache that feeds it and the
revoked-certificate list of `RevocationState`. Started and stopped by the app's lifespan."""

from __future__ import annotations

import asyncpg

from idservice.auth.crl_cache import CrlCache
from idservice.auth.operators import revoked_operator_thumbprints
from idservice.auth.revocation import RevocationState
from idservice.auth.validator import LoginValidator, OfficerPkiFiles
from idservice.clock import Clock
from idservice.settings import Settings, split_list

__all__ = ["OfficerLogin"]


class OfficerLogin:
    def __init__(self, validator: LoginValidator, crls: CrlCache) -> None:
        self.validator = validator
        self.crls = crls

    @classmethod
    async def start(cls, settings: Settings, pool: asyncpg.Pool, revocation: RevocationState,
                    clock: Clock) -> OfficerLogin:
        pki = OfficerPkiFiles(settings)
        crls = CrlCache(split_list(settings.crls), pki.all_cas, settings.crl_refresh_seconds)

        async def push_revoked() -> None:
            async with pool.acquire() as conn:
                revocation.set_revoked_certificates(
                    await revoked_operator_thumbprints(conn, crls.revoked()))

        await crls.refresh()
        await push_revoked()
        crls.start(push_revoked)
        return cls(LoginValidator.from_settings(settings, pki, crls, clock), crls)

    async def stop(self) -> None:
        await self.crls.stop()
