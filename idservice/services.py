"""The running service's parts, built once at start-up and shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from hsm.async_keystore import AsyncKeyStore
from idservice.auth.revocation import RevocationState
from idservice.auth.tokens import AccessTokenIssuer, AccessTokenVerifier, TokenKey
from idservice.clock import Clock
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
    issuer: AccessTokenIssuer
    verifier: AccessTokenVerifier
    revocation: RevocationState
    persons: PersonsContext
