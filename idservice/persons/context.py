"""What the person services need from the running system, bundled once at start-up."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import asyncpg

from idservice.clock import Clock, SystemClock
from idservice.persons.coalesce import IssueCoalescer
from idservice.persons.verification import VerifyCoalescer
from idservice.pin.allocator import AllocatorConfig
from idservice.pin.provinces import ProvinceTable, default_table

__all__ = ["PersonsContext"]


@dataclass(frozen=True)
class PersonsContext:
    pool: asyncpg.Pool
    provinces: ProvinceTable = field(default_factory=default_table)
    clock: Clock = field(default_factory=SystemClock)
    allocator: AllocatorConfig = field(default_factory=AllocatorConfig)
    rng: random.Random | None = None  # None: the OS CSPRNG
    max_hidden_days: int = 365  # IDSERVICE_MAX_HIDDEN_DAYS (persons/covert.py)
    # Single issuances grouped into one statement (persons/coalesce.py); None: each alone.
    coalescer: IssueCoalescer | None = None
    # Verifications grouped likewise (persons/verification.py); None: each alone.
    verifier: VerifyCoalescer | None = None
