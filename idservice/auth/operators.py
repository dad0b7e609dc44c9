"""The operator registry (officers, auditors, admins with USB-token certificates): add, list,
disable (`idservice operators ...`, as the administrator database role, each change with its
`admin.*` audit event), and how a certificate identifies its operator.

An operator is mapped by the SHA-256 of its certificate or by issuer (RFC 4514 string) and
serial (lowercase hex), as Keycloak's X.509 authenticator does. Access tokens carry
`cnf.x5t#S256` (RFC 8705 section 3.1: base64url SHA-256 of the DER certificate).
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.auth.administration import record_admin
from idservice.auth.certificates import CertificateIdentity, certificate_identity, x5t_s256
from idservice.auth.client_registry import (
    Organisation,
    RegistryError,
    parse_jurisdiction,
    parse_roles,
)
from idservice.auth.principal import Actor
from idservice.db.types import Conn
from idservice.queries import officers as q

__all__ = [
    "CertificateIdentity",
    "RegistryError",
    "add_operator",
    "certificate_identity",
    "disable_operator",
    "list_operators",
    "parse_jurisdiction",
    "parse_roles",
    "revoked_operator_thumbprints",
    "x5t_s256",
]

_ID = re.compile(r"[^A-Za-z0-9._-]+")


def _default_id(cert: x509.Certificate, identity: CertificateIdentity) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    base = _ID.sub("-", str(names[0].value) if names else "operator").strip("-._")[:40]
    return f"{base or 'operator'}-{identity.sha256[:8]}"


async def add_operator(conn: Conn, *, cert_pem: bytes, name: str, roles: list[str],
                       jurisdiction: str, by: Actor, operator_id: str | None = None,
                       org: Organisation | None = None) -> str:
    """Register the certificate's holder; returns the operator id."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise RegistryError("--cert is not a PEM certificate") from exc
    identity = certificate_identity(cert)
    new_id = operator_id or _default_id(cert, identity)
    org = org or Organisation()
    try:
        async with conn.transaction():
            await conn.execute(q.INSERT_OPERATOR, new_id, name, identity.sha256,
                               identity.issuer, identity.serial,
                               cert.public_bytes(Encoding.PEM).decode(), roles, jurisdiction,
                               org.code, org.name, org.system)
            await record_admin(conn, by, "admin.operator_add", {
                "operator_id": new_id, "roles": roles, "jurisdiction": jurisdiction,
                "cert_sha256": identity.sha256, "org_code": org.code, "org_name": org.name,
                "system": org.system})
    except asyncpg.UniqueViolationError as exc:
        raise RegistryError(
            "an operator with this id or certificate is already registered") from exc
    except asyncpg.CheckViolationError as exc:
        raise RegistryError(f"invalid operator: {exc.constraint_name}") from exc
    return new_id


async def list_operators(conn: Conn) -> list[dict[str, Any]]:
    return [
        {"id": r["id"], "name": r["name"], "roles": list(r["roles"]),
         "jurisdiction": r["jurisdiction"], "enabled": r["enabled"],
         "cert_sha256": r["cert_sha256"], "cert_issuer": r["cert_issuer"],
         "cert_serial": r["cert_serial"], "created_at": r["created_at"].isoformat(),
         "org_code": r["org_code"], "org_name": r["org_name"], "system": r["system"]}
        for r in await conn.fetch(q.LIST_OPERATORS)
    ]


async def disable_operator(conn: Conn, operator_id: str, *, by: Actor) -> bool:
    async with conn.transaction():
        if await conn.fetchval(q.DISABLE_OPERATOR, operator_id) is None:
            return False
        await record_admin(conn, by, "admin.operator_disable", {"operator_id": operator_id})
    return True


async def revoked_operator_thumbprints(conn: Conn, revoked: frozenset[tuple[str, str]]
                                       ) -> frozenset[str]:
    """`cnf.x5t#S256` of enabled operators whose (issuer, serial) a CRL lists as revoked."""
    if not revoked:
        return frozenset()
    found: set[str] = set()
    for row in await conn.fetch(q.OPERATOR_CERTIFICATES):
        if (row["cert_issuer"], row["cert_serial"]) in revoked:
            try:
                cert = x509.load_pem_x509_certificate(row["cert_pem"].encode())
            except ValueError:
                continue
            found.add(x5t_s256(cert.public_bytes(Encoding.DER)))
    return frozenset(found)
