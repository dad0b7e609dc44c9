"""Where the database and the HSM are: configured, or the zero-setup defaults in the data dir.

The same resolution serves `serve`, `dev`, the CLI and the tests, so every command acts on the
same database and token as the server (contract 6.2): with nothing configured, an embedded
PostgreSQL cluster and a SoftHSM token under `IDSERVICE_DATA_DIR`, reused if already running.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hsm.errors import KeyNotFound
from hsm.keystore import KeyStore
from hsm.softhsm import ensure_softhsm_token, load_or_create_pins
from idservice.db.embedded import EmbeddedPostgres
from idservice.db.migrate import migrate
from idservice.db.roles import ensure_database
from idservice.settings import Settings

__all__ = [
    "DatabaseTarget",
    "HsmTarget",
    "ensure_service_keys",
    "resolve_database",
    "resolve_hsm",
]

DEV_TOKEN_LABEL = "idservice"


@dataclass(frozen=True)
class HsmTarget:
    module_path: str
    token_label: str
    user_pin: str

    def __repr__(self) -> str:
        return f"HsmTarget(module_path={self.module_path!r}, token_label={self.token_label!r})"


@dataclass
class DatabaseTarget:
    service_url: str
    owner_url: str | None
    auditor_url: str | None
    embedded: EmbeddedPostgres | None
    # The `operators` / `clients` commands' role (idservice_administrator); None: not configured.
    admin_url: str | None = None

    def close(self) -> None:
        """Stop the embedded cluster if (and only if) this process started it."""
        if self.embedded is not None:
            self.embedded.stop()


def ensure_service_keys(settings: Settings) -> None:
    """Create the service's signing keys (access tokens, audit checkpoints) if missing, once,
    before any worker starts: N workers racing to generate the same label would leave the
    token with duplicate keys or fail start-up. In production the keys come from the key
    ceremony and this only finds them."""
    target = resolve_hsm(settings)
    store = KeyStore(target.module_path, target.token_label, target.user_pin)
    store.open()
    try:
        store.ensure_key(settings.jwt_key_label, "EC_P256")
        store.ensure_key(settings.audit_key_label, "EC_P256")
        # Retired keys are never created: a missing one is a wrong label, say so before start.
        for variable, labels in (
                ("IDSERVICE_JWT_PREVIOUS_KEY_LABELS", settings.jwt_previous_key_labels),
                ("IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS", settings.audit_previous_key_labels)):
            for label in labels:
                try:
                    store.public_key(label)
                except KeyNotFound as exc:
                    raise KeyNotFound(f"{variable} names {label!r}, but the HSM has no such "
                                      f"key ({exc}); retired keys are never generated") from exc
    finally:
        store.close()


def resolve_hsm(settings: Settings) -> HsmTarget:
    if settings.pkcs11_module:
        if not settings.pkcs11_token_label or settings.pkcs11_pin is None:
            raise ValueError("IDSERVICE_PKCS11_TOKEN_LABEL and IDSERVICE_PKCS11_PIN are required "
                             "with IDSERVICE_PKCS11_MODULE")
        return HsmTarget(settings.pkcs11_module, settings.pkcs11_token_label,
                         settings.pkcs11_pin.get_secret_value())
    base = Path(settings.data_dir) / "softhsm"
    user_pin, so_pin = load_or_create_pins(base)
    token = ensure_softhsm_token(base, DEV_TOKEN_LABEL, user_pin, so_pin)
    return HsmTarget(token.module_path, token.token_label, token.user_pin)


async def resolve_database(settings: Settings, *, apply_migrations: bool = True) -> DatabaseTarget:
    """Configured URLs as they are; otherwise start or reuse the embedded cluster.

    Migrations are applied automatically only to the embedded cluster; a configured database
    is migrated deliberately with `idservice db migrate`.
    """
    if settings.database_url:
        return DatabaseTarget(settings.database_url,
                              settings.owner_database_url or settings.database_url, None, None,
                              settings.admin_database_url)
    embedded = EmbeddedPostgres(Path(settings.data_dir))
    try:
        superuser = embedded.ensure_running()
        urls = await ensure_database(superuser)
        if apply_migrations:
            await migrate(urls.owner)
    except BaseException:
        embedded.stop()
        raise
    return DatabaseTarget(urls.service, urls.owner, urls.auditor, embedded, urls.admin)
