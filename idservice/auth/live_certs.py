"""Live officer tokens whose certificate only OCSP can revoke (contract 3.3: within 60 s).

A revocation on a configured CRL reaches `RevocationState` with the CRL refresh. A revocation
known only to the certificate's OCSP responder used to refuse the next login and nothing more;
so every successful login with a certificate that names an OCSP responder records it in
`officer_live_cert` (hex SHA-256, DER, until when tokens bound to it live; in the login's one
statement, `officer_login()`), and every service process runs `LiveCertificates.step` every
few seconds:

1. claim the certificates due (not re-checked for `recheck` seconds; `FOR UPDATE SKIP LOCKED`,
   so the processes share the work) and ask again with the login's own revocation check
   (`RevocationCheck.status`: the configured `IDSERVICE_REVOCATION` policy, a fresh nonce, the
   same freshness rules): `good` confirms it, a verified `revoked` marks it revoked;
2. read back the certificates whose tokens must stop and hand their `x5t#S256` on (`RevocationState`
   refuses tokens bound to them).

Fail closed: a certificate whose status could not be confirmed (responder down, bad answers,
under `ocsp-then-crl` no fresh CRL either) for longer than `grace` (two re-check periods, 60 s
by default) stops its tokens too, as a login would be refused then. A later successful login
with it (a confirmed `good`) lets its tokens work again. A verified `revoked` is not re-checked
any more: it lasts until its tokens have expired (only a successful login, i.e. a responder
saying `good` again, as after a lifted certificateHold, clears it).

Worst case from revocation to refusal: one re-check period + one step + the OCSP timeout
(30 + 5 + 3 s with the defaults).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Literal

import asyncpg
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from idservice.auth.checks.revocation import RevocationCheck
from idservice.auth.checks.trust import TrustCheck
from idservice.auth.login_errors import CertRevoked, LoginFailed
from idservice.background import PeriodicTask
from idservice.clock import Clock
from idservice.logging import get_logger
from idservice.queries import officers as q

__all__ = ["LiveCertificates"]

_log = get_logger(__name__)
_BATCH = 200
_CONCURRENCY = 8

Status = Literal["good", "revoked", "unknown"]


def _x5t_s256(sha256_hex: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(sha256_hex)).rstrip(b"=").decode()


class LiveCertificates:
    def __init__(self, pool: asyncpg.Pool, trust: TrustCheck, revocation: RevocationCheck,
                 clock: Clock, publish: Callable[[frozenset[str]], None], *,
                 recheck: float, interval: float) -> None:
        self._pool = pool
        self._trust = trust
        self._revocation = revocation
        self._clock = clock
        self._publish = publish
        self.recheck = recheck
        self.grace = 2 * recheck
        self._task = PeriodicTask("ocsp-recheck", interval, self.step)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def step(self) -> None:
        async with self._pool.acquire() as conn:
            due = await conn.fetch(q.CLAIM_LIVE_CERTS, self.recheck, _BATCH)
        if due:
            limit = asyncio.Semaphore(_CONCURRENCY)

            async def one(sha256: str, der: bytes) -> tuple[str, Status]:
                async with limit:
                    return sha256, await self.status(sha256, der)

            results = await asyncio.gather(*(one(r["cert_sha256"], r["cert_der"]) for r in due))
            good = [sha for sha, status in results if status == "good"]
            revoked = [sha for sha, status in results if status == "revoked"]
            async with self._pool.acquire() as conn:
                if good:
                    await conn.execute(q.LIVE_CERTS_GOOD, good)
                if revoked:
                    await conn.execute(q.LIVE_CERTS_REVOKED, revoked)
        async with self._pool.acquire() as conn:
            blocked = await conn.fetch(q.BLOCKED_LIVE_CERTS, self.grace)
            await conn.execute(q.PURGE_LIVE_CERTS)
        self._publish(frozenset(_x5t_s256(r["cert_sha256"]) for r in blocked))

    async def status(self, sha256: str, der: bytes) -> Status:
        """The certificate's status now, by the login's trust and revocation checks."""
        now = self._clock.now()
        try:
            cert = x509.load_der_x509_certificate(der)
            asn1_cert = asn1_x509.Certificate.load(der)
            path = await self._trust.trusted_path(asn1_cert, sha256, now)
            await self._revocation.status(cert, asn1_cert, sha256, path, now)
        except CertRevoked:
            _log.warning("live_certificate_revoked", cert_sha256=sha256)
            return "revoked"
        except (LoginFailed, ValueError) as exc:
            _log.warning("live_certificate_unconfirmed", cert_sha256=sha256,
                         code=getattr(exc, "code", type(exc).__name__), reason=str(exc))
            return "unknown"
        return "good"
