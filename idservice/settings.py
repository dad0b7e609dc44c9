"""Service configuration (contract section 6.1).

One cached `Settings` object built from `IDSERVICE_*` environment variables, or from a TOML file
named by `IDSERVICE_CONFIG` (environment wins over the file). Unset database and HSM settings mean
the zero-setup default: embedded PostgreSQL and a SoftHSM token under `data_dir`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from idservice.pin.provinces import PrefixRule

__all__ = ["CommaList", "Settings", "env_value", "get_settings", "split_list"]

_SOFTHSM_MODULE = "softhsm"  # in the file name of SoftHSM's PKCS#11 module (libsofthsm2.so)


def split_list(value: str | None) -> list[str]:
    """Comma-separated setting -> list, the contract's format for file and OID lists."""
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


# A list setting: comma-separated in the environment (contract 6.1), a string or an array in
# the TOML file; NoDecode keeps pydantic-settings from expecting JSON in the variable.
CommaList = Annotated[list[str], NoDecode]


def env_value(value: object) -> str:
    """A setting's value as its environment variable spells it (lists comma-separated)."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IDSERVICE_", extra="ignore")

    database_url: str | None = None
    owner_database_url: str | None = None
    # The `operators` / `clients` commands connect as this role (a member of
    # idservice_administrator), never as the service's: unset means embedded (or refused).
    admin_database_url: str | None = None
    # `quality report` reads as this role (a member of idservice_auditor); unset: embedded.
    auditor_database_url: str | None = None
    data_dir: Path = Path("./var")
    origin: str = "http://127.0.0.1:8000"
    agent_url: str = "http://127.0.0.1:8765"  # the officer's signing agent, for the web UI
    # Proxies whose X-Forwarded-For is believed for `source_ip` in the audit log (nginx on the
    # same host overwrites the header); any other client's header is ignored.
    forwarded_allow_ips: CommaList = ["127.0.0.1"]

    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_pin: SecretStr | None = None
    jwt_key_label: str = "idservice-access-token-es256"
    # Rotation with kid overlap: labels of retired signing keys whose live tokens must still
    # verify (comma-separated); they are published in the JWKS and never sign.
    jwt_previous_key_labels: CommaList = []

    trust_anchors: CommaList = []
    issuing_cas: CommaList = []
    crls: CommaList = []
    revocation: Literal["require", "ocsp-then-crl"] = "require"
    cert_policies: CommaList = []
    clock_skew_seconds: int = Field(default=30, ge=0, le=600)  # officer certificate validity
    crl_refresh_seconds: float = Field(default=30.0, gt=0, le=3600)
    ocsp_timeout_seconds: float = Field(default=3.0, gt=0, le=30)  # per OCSP request
    ocsp_max_age_seconds: int = Field(default=120, ge=10, le=86_400)  # thisUpdate (Web eID: 2 min)
    # How long a successful path validation (with CRLs) is reused for the same certificate
    # (0 = off); never past a CRL's nextUpdate or a certificate's notAfter.
    validation_cache_seconds: float = Field(default=60.0, ge=0, le=60)
    # How often the OCSP status of the certificates behind live officer tokens is asked again;
    # live tokens stop when it is revoked, or has gone unconfirmed for two of these periods.
    ocsp_recheck_seconds: float = Field(default=30.0, gt=0, le=30)
    # Machine clients whose certificate a CA here issued are checked against its CRLs
    # (contract 7; refreshed like the officers' every crl_refresh_seconds).
    client_trust_anchors: CommaList = []
    client_crls: CommaList = []

    token_ttl: int = Field(default=900, ge=60, le=86_400)
    token_issuer: str = "idservice"
    client_assertion_max_lifetime: int = 300
    province_prefix_rule: PrefixRule = PrefixRule.ZERO_PLUS_NEW_CODE

    max_body_bytes: int = 1024 * 1024
    max_batch_body_bytes: int = 1024 * 1024 * 1024
    batch_chunk_lines: int = Field(default=500, ge=1, le=10_000)
    db_pool_min: int = 4
    db_pool_max: int = 40
    # Single issuances of one worker waiting at the same moment go to the database as one
    # statement and transaction (persons/coalesce.py): at most this many per statement
    # (1 = each alone), at most `issue_groups_in_flight` such statements at once per worker.
    issue_group_max: int = Field(default=32, ge=1, le=500)
    issue_groups_in_flight: int = Field(default=2, ge=1, le=64)
    # The same for PIN verifications (persons/verification.py): one statement counts and reads
    # for the group, one writes its events, one commit.
    verify_group_max: int = Field(default=32, ge=1, le=500)
    verify_groups_in_flight: int = Field(default=2, ge=1, le=64)
    # The same for officer logins (auth/login_group.py): the officer_login() statements of the
    # group in one statement and commit.
    login_group_max: int = Field(default=32, ge=1, le=500)
    login_groups_in_flight: int = Field(default=2, ge=1, le=64)
    sequencer_interval: float = 0.2
    audit_key_label: str = "idservice-audit-checkpoint"
    # Rotation with key-ID overlap: labels of retired checkpoint keys (comma-separated) whose
    # checkpoints must still verify; published in /v1/audit/keys, they never sign.
    audit_previous_key_labels: CommaList = []
    audit_integrator_interval: float = Field(default=0.25, gt=0, le=5)
    audit_checkpoint_interval: float = Field(default=2.0, ge=0, le=9)  # contract: <= 10 s
    # audit_event partitions (one per UTC month) kept this many months ahead of the current one.
    audit_partition_months_ahead: int = Field(default=3, ge=1, le=120)
    # Authentication limits (contract 7; auth/rate_limit.py), counted in the database across
    # all processes, per minute (0 = off): per source address (IPv6: /64) over the three
    # endpoints; per verified client / operator; per caller of /v1/pins/verify. Failed logins
    # whose identity did not verify get their own event up to this many per source and minute.
    auth_source_rate_limit: int = Field(default=120, ge=0)
    auth_rate_limit: int = Field(default=600, ge=0)
    verify_rate_limit: int = Field(default=120, ge=0)
    auth_failure_events_per_minute: int = Field(default=30, ge=0, le=10_000)
    # How often the `auth.rate_limited` events of past minutes are written (well inside 60 s).
    auth_report_interval: float = Field(default=10.0, gt=0, le=30)
    revocation_poll_interval: float = Field(default=5.0, gt=0, le=30)
    # Contract 8: unused, unretired reserved PINs a client may hold at once (409
    # reservation_limit beyond).
    reservation_max_open: int = Field(default=20_000, ge=0)
    log_level: str = "INFO"
    # Covert access (contract 11): how far ahead an investigator may hide a read from the
    # citizen's report (`hidden_until`), in days.
    max_hidden_days: int = Field(default=365, ge=1, le=3650)
    # The citizen's page (/citizen/usage): lifetime of the single-use link a portal gets, and
    # of the page session it opens (never longer than the portal's access token).
    citizen_link_seconds: int = Field(default=120, ge=10, le=900)
    citizen_session_seconds: int = Field(default=900, ge=60, le=3600)
    # /metrics: how often each process re-reads the database facts (fullest PIN buckets, audit
    # lag) and its pool/CRL gauges; how many of the fullest buckets are reported.
    metrics_refresh_seconds: float = Field(default=10.0, gt=0, le=300)
    # ... except the fullest PIN buckets: a sum over every `pin_block` row (seconds of work for
    # the country), for a fill ratio that moves slowly.
    metrics_bucket_refresh_seconds: float = Field(default=300.0, gt=0, le=3600)
    metrics_top_buckets: int = Field(default=10, ge=1, le=1000)
    # `serve` refuses the zero-setup parts (embedded PostgreSQL, a SoftHSM token) unless this
    # says they are meant (a trial or staging install); `dev` always uses them.
    allow_dev_parts: bool = False
    # Notifications out (contract 9; docs/notifications.md).
    notify_allow_private: bool = False  # deliver to loopback/private addresses (dev, tests)
    notify_interval: float = Field(default=0.2, gt=0, le=10)  # delivery worker round
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=60)  # per delivery request
    notify_max_subscriptions: int = Field(default=20, ge=1, le=1000)  # per client
    notify_batch: int = Field(default=500, ge=1, le=10_000)  # events per subscription round
    # requests in flight per subscription (each on a kept-alive connection of its own)
    notify_concurrency: int = Field(default=4, ge=1, le=256)
    notify_confirm_seconds: int = Field(default=3 * 86_400, ge=60)  # unconfirmed kept so long

    @field_validator("forwarded_allow_ips", "jwt_previous_key_labels", "trust_anchors",
                     "issuing_cas", "crls", "cert_policies", "audit_previous_key_labels",
                     "client_trust_anchors", "client_crls", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return split_list(value)
        return value

    @field_validator("origin", "agent_url")
    @classmethod
    def _origin_has_no_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("http://", "https://")) or "/" in value.split("://", 1)[1]:
            raise ValueError("must be scheme://host[:port] without a path")
        return value

    @property
    def token_audience(self) -> str:
        """Access tokens are audience-bound to this service's origin."""
        return self.origin

    @property
    def client_token_url(self) -> str:
        return f"{self.origin}/v1/auth/client-token"

    def dev_parts(self) -> list[str]:
        """The zero-setup parts this configuration would run on: fine for `dev` and trials,
        never what a production `serve` should fall back to silently."""
        parts = []
        if not self.database_url:
            parts.append("embedded PostgreSQL (IDSERVICE_DATABASE_URL is not set)")
        if not self.pkcs11_module:
            parts.append("a SoftHSM token in the data dir (IDSERVICE_PKCS11_MODULE is not set)")
        elif _SOFTHSM_MODULE in Path(self.pkcs11_module).name.lower():
            parts.append(f"SoftHSM ({self.pkcs11_module}), which keeps keys in files")
        return parts

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("IDSERVICE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings` and pass it explicitly."""
    return Settings()
