"""The running service's parts, built once at start-up and shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from hsm.async_keystore import AsyncKeyStore
from idservice.audit.checkpoints import CheckpointSigner
from idservice.audit.integrator import Integrator
from idservice.auth.client_login import ClientLogin
from idservice.auth.crl_cache import CrlCache
from idservice.auth.officer_login import OfficerLogin
from idservice.auth.rate_limit import AuthLimits
from idservice.auth.token_revocation import RevocationState
from idservice.auth.tokens import AccessTokenIssuer, AccessTokenVerifier, TokenKey
from idservice.clock import Clock
from idservice.notify.subscriptions import NotifyContext
from idservice.persons.context import PersonsContext
from idservice.settings import Settings

__all__ = ["Services"]


@dataclass
class Services:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    keystore: AsyncKeyStore
    token_key: TokenKey
    retired_token_keys: list[TokenKey]
    issuer: AccessTokenIssuer
    verifier: AccessTokenVerifier
    revocation: RevocationState
    persons: PersonsContext
    client_login: ClientLogin
    auth_limits: AuthLimits
    officer_login: OfficerLogin | None = None
    audit_signer: CheckpointSigner | None = None
    audit_integrator: Integrator | None = None
    crls: CrlCache | None = None  # officer login's CRLs (/readyz, /metrics)
    notify: NotifyContext | None = None  # notifications out (contract 9)
