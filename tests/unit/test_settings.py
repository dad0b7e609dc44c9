"""Settings (contract 6.1; issue 10 item 7): list settings are lists, typed once, whatever the
source (comma-separated environment variable, a TOML string or array); `dev_parts` names the
zero-setup parts a configuration would run on."""

from __future__ import annotations

from pathlib import Path

import pytest

from idservice.settings import Settings, env_value

LIST_VARIABLES = ("IDSERVICE_TRUST_ANCHORS", "IDSERVICE_CRLS", "IDSERVICE_CERT_POLICIES",
                  "IDSERVICE_FORWARDED_ALLOW_IPS", "IDSERVICE_ISSUING_CAS",
                  "IDSERVICE_JWT_PREVIOUS_KEY_LABELS", "IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*LIST_VARIABLES, "IDSERVICE_CONFIG", "IDSERVICE_DATABASE_URL",
                 "IDSERVICE_PKCS11_MODULE"):
        monkeypatch.delenv(name, raising=False)


def test_comma_separated_env_is_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDSERVICE_CRLS", "/etc/a.crl, https://ca.example/b.crl,")
    monkeypatch.setenv("IDSERVICE_CERT_POLICIES", "1.2.3")
    monkeypatch.setenv("IDSERVICE_FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2")
    settings = Settings()
    assert settings.crls == ["/etc/a.crl", "https://ca.example/b.crl"]
    assert settings.cert_policies == ["1.2.3"]
    assert settings.forwarded_allow_ips == ["10.0.0.1", "10.0.0.2"]
    assert settings.trust_anchors == [] and settings.jwt_previous_key_labels == []
    assert env_value(settings.crls) == "/etc/a.crl,https://ca.example/b.crl"


def test_unset_lists_are_empty_and_proxies_default_to_loopback() -> None:
    settings = Settings()
    for name in LIST_VARIABLES:
        value = getattr(settings, name.removeprefix("IDSERVICE_").lower())
        assert isinstance(value, list), name
    assert settings.forwarded_allow_ips == ["127.0.0.1"]


def test_toml_takes_a_string_or_an_array(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    config = tmp_path / "idservice.toml"
    config.write_text('crls = "/a.crl,/b.crl"\ntrust_anchors = ["/r1.pem", "/r2.pem"]\n')
    monkeypatch.setenv("IDSERVICE_CONFIG", str(config))
    settings = Settings()
    assert settings.crls == ["/a.crl", "/b.crl"]
    assert settings.trust_anchors == ["/r1.pem", "/r2.pem"]


def test_dev_parts_name_embedded_database_and_softhsm() -> None:
    assert len(Settings().dev_parts()) == 2
    assert Settings(database_url="postgresql://db/x",
                    pkcs11_module="/usr/lib/softhsm/libsofthsm2.so").dev_parts() == [
        "SoftHSM (/usr/lib/softhsm/libsofthsm2.so), which keeps keys in files"]
    assert Settings(database_url="postgresql://db/x",
                    pkcs11_module="/usr/lib/x86_64-linux-gnu/hsm-vendor.so").dev_parts() == []
