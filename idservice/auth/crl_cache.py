"""CRLs for officer login, loaded from files and http(s) URLs (`IDSERVICE_CRLS`), refreshed in
the background every `IDSERVICE_CRL_REFRESH_SECONDS`.

A source that fails to load keeps its last good CRL: whether that is still fresh enough is
decided at each validation (a CRL past its nextUpdate counts as no data, so logins fail closed
with `revocation_unavailable`). After each refresh, the serials revoked by CRLs whose signature
verifies against a configured CA are handed on (`on_refresh`) so that live tokens of officers
whose certificate was revoked stop working (contract 3.3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.background import PeriodicTask
from idservice.logging import get_logger

__all__ = ["CrlCache", "CrlStatus", "load_crl"]

_log = get_logger(__name__)
_MAX_CRL_BYTES = 16 * 1024 * 1024


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in DER or PEM."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


@dataclass(frozen=True)
class CrlStatus:
    """What is loaded from one source (None: nothing yet), for /readyz and /metrics."""
    source: str
    this_update: datetime | None
    next_update: datetime | None


class CrlCache:
    def __init__(self, sources: Sequence[str], ca_certs: Sequence[x509.Certificate],
                 interval: float, *, timeout: float = 10.0) -> None:
        self._sources = list(sources)
        self._cas = list(ca_certs)
        self._interval = interval
        self._timeout = timeout
        self._by_source: dict[str, x509.CertificateRevocationList] = {}
        self._der: list[bytes] = []
        self.version = 0  # bumped whenever the set of CRLs changes (validation cache key)
        self._revoked: frozenset[tuple[str, str]] = frozenset()
        self._loop: PeriodicTask | None = None

    def crls(self) -> Sequence[bytes]:
        return self._der

    @property
    def sources(self) -> Sequence[str]:
        return self._sources

    def status(self) -> list[CrlStatus]:
        out = []
        for source in self._sources:
            crl = self._by_source.get(source)  # (an empty CRL is falsy: len() = entries)
            if crl is None:
                out.append(CrlStatus(source, None, None))
            else:
                out.append(CrlStatus(source, crl.last_update_utc, crl.next_update_utc))
        return out

    def revoked(self) -> frozenset[tuple[str, str]]:
        """(issuer RFC 4514, serial hex) revoked by a CRL signed by one of our CAs."""
        return self._revoked

    async def _read(self, source: str, client: httpx.AsyncClient) -> bytes:
        if source.startswith(("http://", "https://")):
            response = await client.get(source)
            response.raise_for_status()
            if len(response.content) > _MAX_CRL_BYTES:
                raise ValueError("CRL too large")
            return response.content
        return await asyncio.to_thread(Path(source).read_bytes)

    async def refresh(self) -> None:
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            for source in self._sources:
                try:
                    self._by_source[source] = load_crl(await self._read(source, client))
                except (OSError, ValueError, httpx.HTTPError) as exc:
                    _log.warning("crl_load_failed", source=source, error=type(exc).__name__,
                                 kept_previous=source in self._by_source)
        der = [crl.public_bytes(Encoding.DER) for crl in self._by_source.values()]
        if der != self._der:
            self._der = der
            self.version += 1
        self._revoked = frozenset(
            (crl.issuer.rfc4514_string(), format(entry.serial_number, "x"))
            for crl in self._by_source.values() if self._signed_by_our_ca(crl)
            for entry in crl)

    def _signed_by_our_ca(self, crl: x509.CertificateRevocationList) -> bool:
        for ca in self._cas:
            if ca.subject == crl.issuer:
                with contextlib.suppress(TypeError, ValueError):
                    if crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
                        return True
        return False

    def start(self, on_refresh: Callable[[], Awaitable[None]] | None = None) -> None:
        async def step() -> None:
            await self.refresh()
            if on_refresh is not None:
                await on_refresh()

        self._loop = PeriodicTask("crl-refresh", self._interval, step, sleep_first=True)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
