"""Registering, listing and disabling machine clients (used by `idservice clients ...`).

A client's registered key is the public key of the certificate it presents at enrolment; the
certificate's SHA-256 is kept to identify it. Only the public key is used to verify assertions.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from idservice.auth.principal import ROLES
from idservice.db.types import Conn
from idservice.persons.names import check_text
from idservice.queries import auth as q

__all__ = [
    "ClientRegistryError",
    "add_client",
    "disable_client",
    "list_clients",
    "parse_jurisdiction",
    "parse_purpose",
    "parse_roles",
]

_JURISDICTION = re.compile(r"^([0-9]{3}|\*)$")


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


def parse_purpose(value: str | None) -> str | None:
    """The purpose a `reader` client reads under (OSIA Data Access, contract 10): recorded in
    every audit event of its reads, so it must be readable text (1-500 characters)."""
    if value is None:
        return None
    try:
        return check_text(value, max_length=500)
    except ValueError as exc:
        raise ClientRegistryError(f"--purpose {exc}") from exc


async def add_client(conn: Conn, *, client_id: str, cert_pem: bytes,
                     roles: list[str], jurisdiction: str, name: str | None = None,
                     purpose: str | None = None) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ClientRegistryError("--cert is not a PEM certificate") from exc
    public_pem = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    display = name or cert.subject.rfc4514_string() or client_id
    try:
        await conn.execute(q.INSERT_CLIENT, client_id, display, public_pem.decode(), fingerprint,
                           roles, jurisdiction, parse_purpose(purpose))
    except asyncpg.UniqueViolationError as exc:
        raise ClientRegistryError(f"client {client_id} already exists") from exc
    except asyncpg.CheckViolationError as exc:
        raise ClientRegistryError(f"invalid client: {exc.constraint_name}") from exc


async def list_clients(conn: Conn) -> list[dict[str, Any]]:
    return [
        {"id": r["id"], "name": r["name"], "roles": list(r["roles"]),
         "jurisdiction": r["jurisdiction"], "enabled": r["enabled"],
         "cert_sha256": r["cert_sha256"], "created_at": r["created_at"].isoformat(),
         "purpose": r["purpose"]}
        for r in await conn.fetch(q.LIST_CLIENTS)
    ]


async def disable_client(conn: Conn, client_id: str) -> bool:
    return await conn.fetchval(q.DISABLE_CLIENT, client_id) is not None
