"""Registering, listing and disabling machine clients (used by `idservice clients ...`).

A client's registered key is the public key of the certificate it presents at enrolment; the
certificate's SHA-256 is kept to identify it. Only the public key is used to verify assertions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from idservice.auth.principal import ROLES
from idservice.db.types import Conn
from idservice.queries import auth as q

__all__ = [
    "ClientRegistryError",
    "Organisation",
    "add_client",
    "disable_client",
    "list_clients",
    "parse_jurisdiction",
    "parse_organisation",
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


class ClientRegistryError(ValueError):
    pass


def parse_roles(value: str) -> list[str]:
    roles = sorted({r.strip() for r in value.split(",") if r.strip()})
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise ClientRegistryError(f"roles must be some of {sorted(ROLES)}; got {value!r}")
    return roles


def parse_jurisdiction(value: str) -> str:
    if not _JURISDICTION.match(value):
        raise ClientRegistryError("jurisdiction must be a 3-digit province code or *")
    return value


def parse_organisation(code: str | None, name: str | None, system: str | None
                       ) -> Organisation:
    """`--org-code` (letters, digits, `.`, `_`, `-`; at most 64), `--org-name`, `--system`
    (1-200 printable characters, what the citizen reads)."""
    if code is not None and not _ORG_CODE.match(code):
        raise ClientRegistryError("--org-code must be 1-64 letters, digits, '.', '_' or '-'")
    texts = {"--org-name": name, "--system": system}
    for option, value in texts.items():
        if value is not None and not (value.strip() and len(value) <= _MAX_ORG_TEXT
                                      and value.isprintable()):
            raise ClientRegistryError(f"{option} must be 1-{_MAX_ORG_TEXT} printable characters")
    return Organisation(code, name.strip() if name else None, system.strip() if system else None)


async def add_client(conn: Conn, *, client_id: str, cert_pem: bytes,
                     roles: list[str], jurisdiction: str, name: str | None = None,
                     org: Organisation | None = None) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ClientRegistryError("--cert is not a PEM certificate") from exc
    public_pem = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    display = name or cert.subject.rfc4514_string() or client_id
    org = org or Organisation()
    try:
        await conn.execute(q.INSERT_CLIENT, client_id, display, public_pem.decode(), fingerprint,
                           roles, jurisdiction, org.code, org.name, org.system)
    except asyncpg.UniqueViolationError as exc:
        raise ClientRegistryError(f"client {client_id} already exists") from exc
    except asyncpg.CheckViolationError as exc:
        raise ClientRegistryError(f"invalid client: {exc.constraint_name}") from exc


async def list_clients(conn: Conn) -> list[dict[str, Any]]:
    return [
        {"id": r["id"], "name": r["name"], "roles": list(r["roles"]),
         "jurisdiction": r["jurisdiction"], "enabled": r["enabled"],
         "cert_sha256": r["cert_sha256"], "created_at": r["created_at"].isoformat(),
         "org_code": r["org_code"], "org_name": r["org_name"], "system": r["system"]}
        for r in await conn.fetch(q.LIST_CLIENTS)
    ]


async def disable_client(conn: Conn, client_id: str) -> bool:
    return await conn.fetchval(q.DISABLE_CLIENT, client_id) is not None
