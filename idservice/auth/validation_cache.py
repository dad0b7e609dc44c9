"""A short-lived cache of successful certificate path validations (officer login).

RFC 5280 path validation with CRLs (pyhanko-certvalidator) costs milliseconds; an officer logs
in with the same certificate again and again. A *successful* validation is remembered under a
key that names everything its outcome depends on:

- the SHA-256 of the certificate (DER),
- the frozen trust configuration (anchors, issuing CAs, clock skew: one fingerprint),
- what kind of validation it was (`trust`: path only; `crl`: path + CRL revocation) and, for
  `crl`, the version of the CRL set (`CrlCache.version`, bumped whenever a refresh brings a
  different set of CRLs: a newly listed serial makes the old entries unreachable, and they
  are dropped at once).

An entry lives at most `ttl` (default 60 s) and never past the earliest notAfter of the
certificates of the path, nor past the nextUpdate of the CRLs of the path's CAs; it is only
used at moments between the validation and that bound (the injected clock going backwards
misses). Failures are never cached. OCSP-checked results are not cached either: every login
asks the responder with a fresh nonce, so no two answers are the same.

What is *not* cached: the nonce, the token format, the certificate's purpose, policies and
validity, the signature and the operator. Those run on every login.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509 as asn1_x509

__all__ = ["CacheKey", "ValidationCache"]

# (kind, certificate SHA-256, config fingerprint, CRL version; 0 for `trust`)
CacheKey = tuple[str, str, str, int]


@dataclass(frozen=True)
class _Entry:
    path: tuple[asn1_x509.Certificate, ...]
    validated_at: datetime
    valid_until: datetime


class ValidationCache:
    def __init__(self, ttl: timedelta, *, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._crl_version = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: datetime) -> tuple[asn1_x509.Certificate, ...] | None:
        self._follow_crl_version(key)
        entry = self._entries.get(key)
        if entry is None or not entry.validated_at <= now < entry.valid_until:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self.hits += 1
        return entry.path

    def put(self, key: CacheKey, path: Sequence[asn1_x509.Certificate], now: datetime,
            bounds: Sequence[datetime] = ()) -> None:
        """Remember a successful validation made at `now`; `bounds`: moments it must not
        outlive (CRL nextUpdates). The path certificates' notAfter are added here."""
        if self.ttl <= timedelta(0) or (key[0] == "crl" and key[3] < self._crl_version):
            return  # disabled, or validated against a CRL set replaced meanwhile
        self._follow_crl_version(key)
        until = min([now + self.ttl, *bounds,
                     *(c["tbs_certificate"]["validity"]["not_after"].native for c in path)])
        if until <= now:
            return
        self._entries[key] = _Entry(tuple(path), now, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def _follow_crl_version(self, key: CacheKey) -> None:
        """A newer CRL set: drop every `crl` entry (they are unreachable anyway)."""
        if key[0] == "crl" and key[3] > self._crl_version:
            self._crl_version = key[3]
            for key in [k for k in self._entries if k[0] == "crl"]:
                del self._entries[key]
