"""CRLs for officer login, loaded from files and http(s) URLs (`IDSERVICE_CRLS`), refreshed in
the background every `IDSERVICE_CRL_REFRESH_SECONDS`.

A CRL is used only if its signature verifies against the configured CA that issued it, and it
replaces the CRL held for its source only if it is not older: a lower CRL number (RFC 5280
5.2.3) or an earlier thisUpdate than the held CRL of the same issuer is refused
(`crl_refusal`). Whoever controls the path to a CRL URL could otherwise swap in a forgery
(every login then fails) or replay an old, validly signed CRL from before a revocation (a
revoked officer logs in again). A source that fails to load or whose CRL is refused keeps its
last good CRL, and the refusal is logged (`crl_refused`): whether the held CRL is still fresh
enough is decided at each validation (a CRL past its nextUpdate counts as no data, so logins
fail closed with `revocation_unavailable`). After each refresh, the serials revoked by the held
CRLs are handed on (`on_refresh`) so that live tokens of officers whose certificate was revoked
stop working (contract 3.3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.background import PeriodicTask
from idservice.logging import get_logger
from idservice.outbound import OutboundClient, OutboundError

__all__ = ["CrlCache", "CrlStatus", "crl_refusal", "load_crl"]

_log = get_logger(__name__)
_MAX_CRL_BYTES = 16 * 1024 * 1024


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in DER or PEM."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _signed_by(crl: x509.CertificateRevocationList,
               cas: Sequence[x509.Certificate]) -> bool:
    """Whether one of `cas` named as the CRL's issuer verifies its signature."""
    for ca in cas:
        if ca.subject == crl.issuer:
            with contextlib.suppress(TypeError, ValueError):
                if crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
                    return True
    return False


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def crl_refusal(new: x509.CertificateRevocationList,
                held: x509.CertificateRevocationList | None,
                cas: Sequence[x509.Certificate]) -> str | None:
    """Why `new` must not replace `held` (None: it may). Pure: the signature against `cas`,
    then, against a held CRL of the same issuer, the CRL number and thisUpdate, neither of
    which may go back. An equal number and thisUpdate is accepted (the same CRL fetched again,
    or re-signed by the CA)."""
    if not _signed_by(new, cas):
        return "its signature does not verify against a configured CA named as its issuer"
    if held is None or held.issuer != new.issuer:
        return None
    held_number, new_number = _crl_number(held), _crl_number(new)
    if held_number is not None and (new_number is None or new_number < held_number):
        return f"its CRL number {new_number} is lower than the held CRL's {held_number}"
    if new.last_update_utc < held.last_update_utc:
        return (f"its thisUpdate {new.last_update_utc.isoformat()} is older than the held "
                f"CRL's {held.last_update_utc.isoformat()}")
    return None


@dataclass(frozen=True)
class CrlStatus:
    """What is loaded from one source (None: nothing yet), for /readyz and /metrics, and why
    the source's last refused CRL was refused (None: the last one read was taken)."""
    source: str
    this_update: datetime | None
    next_update: datetime | None
    refused: str | None = None


class CrlCache:
    def __init__(self, sources: Sequence[str], ca_certs: Sequence[x509.Certificate],
                 interval: float, *, timeout: float = 10.0) -> None:
        self._sources = list(sources)
        self._cas = list(ca_certs)
        self._interval = interval
        self._timeout = timeout
        self._by_source: dict[str, x509.CertificateRevocationList] = {}
        self._refused: dict[str, str] = {}
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
            refused = self._refused.get(source)
            if crl is None:
                out.append(CrlStatus(source, None, None, refused))
            else:
                out.append(CrlStatus(source, crl.last_update_utc, crl.next_update_utc, refused))
        return out

    def revoked(self) -> frozenset[tuple[str, str]]:
        """(issuer RFC 4514, serial hex) revoked by the held CRLs (each signed by one of our
        CAs)."""
        return self._revoked

    async def _read(self, source: str, client: OutboundClient) -> bytes:
        if source.startswith(("http://", "https://")):
            reply = await client.request("GET", source, max_bytes=_MAX_CRL_BYTES)
            if reply.status != 200:
                raise ValueError(f"CRL source answered HTTP {reply.status}")
            return reply.body
        return await asyncio.to_thread(Path(source).read_bytes)

    async def refresh(self) -> None:
        client = OutboundClient(timeout=self._timeout, max_connections=4)
        try:
            for source in self._sources:
                try:
                    crl = load_crl(await self._read(source, client))
                except (OSError, ValueError, OutboundError) as exc:
                    _log.warning("crl_load_failed", source=source, error=type(exc).__name__,
                                 kept_previous=source in self._by_source)
                    continue
                held = self._by_source.get(source)
                refusal = crl_refusal(crl, held, self._cas)
                if refusal is None:
                    self._by_source[source] = crl
                    self._refused.pop(source, None)
                else:
                    self._refused[source] = refusal
                    _log.warning("crl_refused", source=source, reason=refusal,
                                 kept_previous=held is not None)
        finally:
            await client.aclose()
        der = [crl.public_bytes(Encoding.DER) for crl in self._by_source.values()]
        if der != self._der:
            self._der = der
            self.version += 1
        self._revoked = frozenset(
            (crl.issuer.rfc4514_string(), format(entry.serial_number, "x"))
            for crl in self._by_source.values() for entry in crl)

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
