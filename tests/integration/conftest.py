"""Fixtures of the Data Tracker tests (test_datatracker*.py, test_citizen_page.py): one
tracker server for the package, on a fresh database of the session cluster with its own
SoftHSM token, and a clock the tests move (tests/support/datatracker.py). Created only when a
test asks for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from hsm.softhsm import SoftHsmToken
from idservice.settings import Settings
from tests.conftest import run_db
from tests.support.datatracker import TrackerDatabase, TrackerEnv, start_tracker
from tests.support.debian_pg import PgServer
from tests.support.fixtures_db import drop_database
from tests.support.fixtures_hsm import SoftHsmDir


@pytest.fixture(scope="package")
def tracker_db(settings: Settings, pg_server: PgServer, pg_superuser_url: str,
               softhsm_dir: SoftHsmDir, softhsm_token_factory: Callable[[str], SoftHsmToken],
               ) -> Iterator[tuple[TrackerEnv, TrackerDatabase]]:
    env, db = start_tracker(settings, pg_server, softhsm_token_factory("tracker-svc"),
                            softhsm_dir.user_pin)
    yield env, db
    env.stop()
    asyncio.run(drop_database(pg_superuser_url, db.name))


@pytest.fixture(scope="package")
def tracker(tracker_db: tuple[TrackerEnv, TrackerDatabase]) -> Iterator[TrackerEnv]:
    yield tracker_db[0]


@pytest.fixture
def tracker_clock(tracker: TrackerEnv) -> Iterator[TrackerEnv]:
    """The tracker, its clock put back to now after the test."""
    yield tracker
    tracker.clock.offset = timedelta(0)


@pytest.fixture(scope="package")
def owner_sql(tracker_db: tuple[TrackerEnv, TrackerDatabase]) -> Callable[..., list[Any]]:
    """Statements as the owner of the tracker's database (what the service role cannot do)."""
    url = tracker_db[1].target.owner_url
    assert url is not None
    return lambda sql, *args: run_db(url, sql, *args)


# Tokens live 15 minutes and the package's other modules run in between: one per module.
@pytest.fixture(scope="module")
def portal(tracker: TrackerEnv) -> Iterator[httpx.Client]:
    with tracker.portal() as client:
        yield client


@pytest.fixture(scope="module")
def tracker_officer(tracker: TrackerEnv) -> Iterator[httpx.Client]:
    with tracker.operator(org_code="H40.001", org_name="UBND phường Hoàn Kiếm",
                          system="Phần mềm hộ tịch") as client:
        yield client
