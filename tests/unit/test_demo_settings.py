"""Dev mode points officer login at the demo PKI only where nothing is configured (contract 6.1:
trust anchors "dev: demo root", CRLs "dev: demo CRL")."""

from __future__ import annotations

from pathlib import Path

from idservice.demo import demo_pki_settings
from idservice.devpki import DemoPki
from idservice.settings import Settings

PKI = DemoPki(Path("/d"), "/m.so", Path("/d/softhsm2.conf"), Path("/d/root.pem"),
              Path("/d/ca.pem"), (Path("/d/ca.crl"), Path("/d/root.crl")), ())


def test_unset_settings_get_the_demo_files() -> None:
    assert demo_pki_settings(Settings(trust_anchors=None, issuing_cas=None, crls=None), PKI) == {
        "trust_anchors": ["/d/root.pem"], "issuing_cas": ["/d/ca.pem"],
        "crls": ["/d/ca.crl", "/d/root.crl"]}


def test_configured_settings_are_kept() -> None:
    assert demo_pki_settings(Settings(trust_anchors="/r.pem", crls="/x.crl"), PKI) == {}


def test_demo_issuing_ca_is_not_the_allow_list_under_another_anchor() -> None:
    own_root = Settings(trust_anchors="/r.pem", issuing_cas=None, crls=None)
    assert demo_pki_settings(own_root, PKI) == {"crls": ["/d/ca.crl", "/d/root.crl"]}
