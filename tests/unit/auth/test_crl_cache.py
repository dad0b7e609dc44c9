"""The CRL cache (`auth/crl_cache.py`) takes a CRL only if its issuer's signature verifies and it
is not older than the one it holds (issue 9 item 4): a forgery, a lower CRL number or an older
thisUpdate is logged and ignored, and the held CRL stays. Real CRLs, signed in the test by the
test PKI's keys (and by a key of an impostor), read from files by the real cache; why a CRL was
refused is in the cache's status (and in the `crl_refused` log line)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.auth.crl_cache import CrlCache
from idservice.devpki import Ca
from tests.support.officer_pki import OfficerPki

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)


def _crl(ca: Ca, *, number: int, this_update: datetime, revoked: tuple[int, ...] = (),
         key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """A DER CRL in `ca`'s name, signed by `key` (default: the CA's own key)."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject)
               .last_update(this_update).next_update(this_update + 24 * HOUR)
               .add_extension(x509.CRLNumber(number), critical=False))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(this_update - HOUR).build())
    return builder.sign(key or ca.key, hashes.SHA256()).public_bytes(Encoding.DER)


class _Source:
    """One CRL file and a cache reading it (the configured CAs: the PKI's root and issuing)."""

    def __init__(self, tmp_path: Path) -> None:
        self.pki = OfficerPki.build(NOW)
        self.path = tmp_path / "officer.crl"
        self.cache = CrlCache([str(self.path)], [self.pki.root.cert, self.pki.issuing.cert],
                              interval=3600)

    async def publish(self, der: bytes) -> str | None:
        """Write `der`, refresh, and return why it was refused (None: it was taken)."""
        self.path.write_bytes(der)
        await self.cache.refresh()
        [status] = self.cache.status()
        return status.refused

    def held(self) -> bytes:
        [der] = self.cache.crls()
        return der

    def revoked_serials(self) -> set[int]:
        return {int(serial, 16) for _, serial in self.cache.revoked()}


@pytest.fixture
def source(tmp_path: Path) -> _Source:
    return _Source(tmp_path)


async def test_newer_crl_replaces_the_held_one(source: _Source) -> None:
    first = _crl(source.pki.issuing, number=10, this_update=NOW - 2 * HOUR)
    assert await source.publish(first) is None
    newer = _crl(source.pki.issuing, number=11, this_update=NOW - HOUR, revoked=(77,))
    assert await source.publish(newer) is None
    assert source.held() == newer and source.revoked_serials() == {77}


async def test_same_crl_fetched_again_is_kept_without_warning(source: _Source) -> None:
    der = _crl(source.pki.issuing, number=10, this_update=NOW - HOUR)
    await source.publish(der)
    version = source.cache.version
    assert await source.publish(der) is None
    assert source.held() == der and source.cache.version == version


async def test_forged_signature_is_refused_and_the_held_crl_stays(source: _Source) -> None:
    good = _crl(source.pki.issuing, number=10, this_update=NOW - 2 * HOUR, revoked=(77,))
    await source.publish(good)
    impostor = ec.generate_private_key(ec.SECP256R1())
    forged = _crl(source.pki.issuing, number=11, this_update=NOW - HOUR, key=impostor)
    refused = await source.publish(forged)
    assert source.held() == good and source.revoked_serials() == {77}
    assert refused is not None and "signature does not verify" in refused


async def test_forged_first_crl_is_never_used(source: _Source) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    refused = await source.publish(_crl(source.pki.issuing, number=1, this_update=NOW - HOUR,
                                        revoked=(5,), key=impostor))
    assert source.cache.crls() == [] and source.cache.revoked() == frozenset()
    assert refused is not None and "signature does not verify" in refused
    assert source.cache.status()[0].this_update is None


async def test_lower_crl_number_is_refused_and_the_held_crl_stays(source: _Source) -> None:
    """A replayed CRL from before a revocation, with a newer thisUpdate to look fresh: the
    number decides."""
    revoking = _crl(source.pki.issuing, number=20, this_update=NOW - 2 * HOUR, revoked=(77,))
    await source.publish(revoking)
    replay = _crl(source.pki.issuing, number=19, this_update=NOW - HOUR)
    refused = await source.publish(replay)
    assert source.held() == revoking and source.revoked_serials() == {77}
    assert refused is not None and "CRL number 19 is lower than the held CRL's 20" in refused


async def test_older_this_update_is_refused_and_the_held_crl_stays(source: _Source) -> None:
    revoking = _crl(source.pki.issuing, number=20, this_update=NOW - HOUR, revoked=(77,))
    await source.publish(revoking)
    older = _crl(source.pki.issuing, number=20, this_update=NOW - 3 * HOUR)
    refused = await source.publish(older)
    assert source.held() == revoking and source.revoked_serials() == {77}
    assert refused is not None and "thisUpdate" in refused and "older" in refused


async def test_crl_of_another_configured_ca_is_not_compared_by_number(source: _Source) -> None:
    """Numbers are per issuer: a source that moves to another CA's CRL is not a rollback."""
    await source.publish(_crl(source.pki.issuing, number=500, this_update=NOW - HOUR))
    root_crl = _crl(source.pki.root, number=3, this_update=NOW - 2 * HOUR)
    assert await source.publish(root_crl) is None
    assert source.held() == root_crl
