"""Registering, listing and disabling machine clients (used by `idservice clients ...`).

A client's registered key is the public key of the certificate it presents at enrolment. The
whole certificate is kept (contract 7): its notAfter ends the client's tokens, and its issuer and
serial are matched against the client CAs' CRLs (`auth/client_pki.py`). An expired certificate
is refused here.
Adding and disabling are administration: run as the administrator database role, each with
its `admin.*` audit event in the same transaction (`auth/administration.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from idservice.auth.administration import record_admin
from idservice.auth.certificates import certificate_identity
from idservice.auth.principal import ROLES, Actor
from idservice.db.types import Conn
from idservice.persons.names import check_text
from idservice.queries import auth as q

__all__ = [
    "Organisation",
    "RegistryError",
    "add_client",
    "disable_client",
    "list_clients",
    "parse_jurisdiction",
    "parse_organisation",
    "parse_purpose",
    "parse_roles",
]

_JURISDICTION = re.compile(r"^([0-9]{3}|\*)$")
_ORG_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_ORG_TEXT = 200


@dataclass(frozen=True, slots=True)
class Organisation:
    """Who a citizen's access report names for this client or operator (contract 11:
    `receiverCode`, `receiverName`, `receiverSystem`); each part optional."""

    code: str | None = None
    name: str | None = None
    system: str | None = None


class RegistryError(ValueError):
    """An `operators` or `clients` command refused its input (both registries share the role
    and jurisdiction rules, hence one error)."""


def parse_roles(value: str) -> list[str]:
    roles = sorted({r.strip() for r in value.split(",") if r.strip()})
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise RegistryError(f"roles must be some of {sorted(ROLES)}; got {value!r}")
    return roles


def parse_jurisdiction(value: str) -> str:
    if not _JURISDICTION.match(value):
        raise RegistryError("jurisdiction must be a 3-digit province code or *")
    return value


def parse_purpose(value: str | None) -> str | None:
    """The purpose a `reader` client reads under (OSIA Data Access, contract 10): recorded in
    every audit event of its reads, so it must be readable text (1-500 characters)."""
    if value is None:
        return None
    try:
        return check_text(value, max_length=500)
    except ValueError as exc:
        raise RegistryError(f"--purpose {exc}") from exc


def parse_organisation(code: str | None, name: str | None, system: str | None
                       ) -> Organisation:
    """`--org-code` (letters, digits, `.`, `_`, `-`; at most 64), `--org-name`, `--system`
    (1-200 printable characters, what the citizen reads)."""
    if code is not None and not _ORG_CODE.match(code):
        raise RegistryError("--org-code must be 1-64 letters, digits, '.', '_' or '-'")
    texts = {"--org-name": name, "--system": system}
    for option, value in texts.items():
        if value is not None and not (value.strip() and len(value) <= _MAX_ORG_TEXT
                                      and value.isprintable()):
            raise RegistryError(f"{option} must be 1-{_MAX_ORG_TEXT} printable characters")
    return Organisation(code, name.strip() if name else None, system.strip() if system else None)


async def add_client(conn: Conn, *, client_id: str, cert_pem: bytes, roles: list[str],
                     jurisdiction: str, by: Actor, name: str | None = None,
                     purpose: str | None = None, org: Organisation | None = None,
                     now: datetime | None = None) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise RegistryError("--cert is not a PEM certificate") from exc
    not_after = cert.not_valid_after_utc
    if not_after <= (now or datetime.now(UTC)):
        raise RegistryError(
            f"the certificate expired on {not_after.isoformat()}: ask the software's supplier "
            "for a current certificate and register that one")
    public_pem = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    identity = certificate_identity(cert)
    display = name or cert.subject.rfc4514_string() or client_id
    org = org or Organisation()
    try:
        async with conn.transaction():
            await conn.execute(q.INSERT_CLIENT, client_id, display, public_pem.decode(),
                               identity.sha256, roles, jurisdiction,
                               cert.public_bytes(Encoding.PEM).decode(), not_after,
                               identity.issuer, identity.serial, parse_purpose(purpose),
                               org.code, org.name, org.system)
            await record_admin(conn, by, "admin.client_add", {
                "client_id": client_id, "roles": roles, "jurisdiction": jurisdiction,
                "cert_sha256": identity.sha256, "cert_not_after": not_after.isoformat(),
                "purpose": purpose, "org_code": org.code, "org_name": org.name,
                "system": org.system})
    except asyncpg.UniqueViolationError as exc:
        raise RegistryError(f"client {client_id} already exists") from exc
    except asyncpg.CheckViolationError as exc:
        raise RegistryError(f"invalid client: {exc.constraint_name}") from exc


async def list_clients(conn: Conn) -> list[dict[str, Any]]:
    return [
        {"id": r["id"], "name": r["name"], "roles": list(r["roles"]),
         "jurisdiction": r["jurisdiction"], "enabled": r["enabled"],
         "cert_sha256": r["cert_sha256"],
         "cert_not_after": r["cert_not_after"].isoformat() if r["cert_not_after"] else None,
         "created_at": r["created_at"].isoformat(), "purpose": r["purpose"],
         "org_code": r["org_code"], "org_name": r["org_name"], "system": r["system"]}
        for r in await conn.fetch(q.LIST_CLIENTS)
    ]


async def disable_client(conn: Conn, client_id: str, *, by: Actor) -> bool:
    async with conn.transaction():
        if await conn.fetchval(q.DISABLE_CLIENT, client_id) is None:
            return False
        await record_admin(conn, by, "admin.client_disable", {"client_id": client_id})
    return True
