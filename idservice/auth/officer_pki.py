"""The running parts of officer login: the validator, the CRL cache that feeds it, and the
re-check of certificates behind live tokens; the last two feed the revoked-certificate list of
`RevocationState` (CRL-listed certificates of operators, plus certificates whose OCSP status
says revoked or can no longer be confirmed, `auth/live_certs.py`). Started and stopped by the
app's lifespan."""

from __future__ import annotations

import asyncpg

from idservice.auth.challenge import NonceKey
from idservice.auth.crl_cache import CrlCache
from idservice.auth.live_certs import LiveCertificates
from idservice.auth.operators import revoked_operator_thumbprints
from idservice.auth.token_revocation import RevocationState
from idservice.auth.validator import LoginValidator, OfficerPkiFiles
from idservice.clock import Clock
from idservice.settings import Settings

__all__ = ["OfficerPki"]


class _RevokedCertificates:
    """The union of both sources, pushed to `RevocationState` whenever one changes."""

    def __init__(self, revocation: RevocationState) -> None:
        self._revocation = revocation
        self.by_crl: frozenset[str] = frozenset()
        self.by_ocsp: frozenset[str] = frozenset()

    def set_by_crl(self, thumbprints: frozenset[str]) -> None:
        self.by_crl = thumbprints
        self._revocation.set_revoked_certificates(self.by_crl | self.by_ocsp)

    def set_by_ocsp(self, thumbprints: frozenset[str]) -> None:
        self.by_ocsp = thumbprints
        self._revocation.set_revoked_certificates(self.by_crl | self.by_ocsp)


class OfficerPki:
    def __init__(self, validator: LoginValidator, crls: CrlCache,
                 live: LiveCertificates, nonce_key: NonceKey) -> None:
        self.validator = validator
        self.nonce_key = nonce_key
        self.crls = crls
        self.live = live

    @classmethod
    async def start(cls, settings: Settings, pool: asyncpg.Pool, revocation: RevocationState,
                    clock: Clock) -> OfficerPki:
        pki = OfficerPkiFiles(settings)
        crls = CrlCache(settings.crls, pki.all_cas, settings.crl_refresh_seconds)
        revoked = _RevokedCertificates(revocation)

        async def push_revoked() -> None:
            async with pool.acquire() as conn:
                revoked.set_by_crl(await revoked_operator_thumbprints(conn, crls.revoked()))

        await crls.refresh()
        await push_revoked()
        crls.start(push_revoked)
        nonce_key = await NonceKey.load(pool)
        validator = LoginValidator.from_settings(settings, pki, crls, clock, nonce_key)
        assert validator.trust is not None and validator.revocation is not None
        live = LiveCertificates(
            pool, validator.trust, validator.revocation, clock, revoked.set_by_ocsp,
            recheck=settings.ocsp_recheck_seconds,
            interval=min(settings.ocsp_recheck_seconds, settings.revocation_poll_interval))
        live.start()
        return cls(validator, crls, live, nonce_key)

    async def stop(self) -> None:
        await self.live.stop()
        await self.crls.stop()
