"""`idservice audit verify` recomputes the tree from the rows and checks every checkpoint; every
kind of tampering by a database superuser is detected and the right index named (contract 5).

Tampering happens in a fresh database per test (never the shared session one): events are
written there with the recorder, sequenced, integrated and checkpointed by the real code, then
altered as the superuser with the append-only triggers disabled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio

from hsm.async_keystore import AsyncKeyStore
from hsm.keystore import KeyStore
from hsm.softhsm import SoftHsmToken
from idservice.audit.checkpoints import CheckpointSigner
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.integrator import Integrator, checkpoint_once, integrate_once
from idservice.audit.recorder import record
from idservice.audit.sequencer import sequence_once
from idservice.audit.signed_note import NoteVerifier
from idservice.audit.sources import DatabaseSource
from idservice.audit.verify import AuditVerificationError, Report, verify_log
from idservice.auth.principal import Actor
from idservice.db.migrate import migrate
from idservice.db.pool import connect, create_pool
from idservice.db.roles import DatabaseUrls, url_for
from idservice.settings import Settings
from tests.integration.test_audit_log_api import flush
from tests.support.bodies import issue_body
from tests.support.fixtures_db import cli_env
from tests.support.horizon import wait_for_older_transactions
from tests.support.server import ServerThread

IDSERVICE = [sys.executable, "-m", "idservice.cli"]
ORIGIN = "tamper.test/idservice/audit"
BATCHES, PER_BATCH = 6, 5  # checkpoints at 5, 10, ..., 30


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **cli_env(settings), **env}
    return subprocess.run([*IDSERVICE, *args], env=full_env, capture_output=True, text=True,
                          timeout=120, check=False)


# -- the session database, through the CLI ----------------------------------------------------

def test_cli_verifies_the_service_database_and_its_api(
    settings: Settings, server: ServerThread, registrar: httpx.Client,
    officer_token: Callable[..., str], tmp_path: Path,
) -> None:
    for _ in range(3):
        registrar.post("/v1/pins", json=issue_body("052"))
    flush(server)
    printed = _cli(settings, "audit", "checkpoints")
    assert printed.returncode == 0, printed.stderr
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(printed.stdout)
    assert printed.stdout.count("\u2014 ") >= 1

    result = _cli(settings, "audit", "verify", "--trusted-checkpoint", str(trusted))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK:")

    since = _cli(settings, "audit", "checkpoints", "--since", "10000000")
    assert since.returncode == 0 and since.stdout == ""

    token = officer_token("*", roles=("auditor",))
    over_http = _cli(settings, "audit", "verify", "--server", server.base_url,
                     "--trusted-checkpoint", str(trusted), IDSERVICE_ACCESS_TOKEN=token)
    assert over_http.returncode == 0, over_http.stderr
    no_token = _cli(settings, "audit", "verify", "--server", server.base_url,
                    IDSERVICE_ACCESS_TOKEN="")
    assert no_token.returncode == 2 and "IDSERVICE_ACCESS_TOKEN" in no_token.stderr


# -- tampering in a fresh database ------------------------------------------------------------

@dataclass
class Log:
    urls: DatabaseUrls
    superuser: str
    pool: asyncpg.Pool
    signer: CheckpointSigner
    verifier: NoteVerifier
    notes: list[str]
    mode: str = "chunks"

    def source(self, conn: asyncpg.Connection) -> DatabaseSource:
        """Every way the verifier reads the rows must name the same index: row by row (as
        from the API), in chunks of 4 in this process, in chunks of 8 in 2 worker processes
        (checkpoints every 5 rows: inside chunks and on their edges)."""
        if self.mode == "rows":
            return _RowByRow(conn, batch=7)
        if self.mode == "workers":
            return DatabaseSource(conn, url=self.urls.auditor, workers=2, chunk=8)
        return DatabaseSource(conn, batch=7)

    async def sql(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.superuser)
        try:
            for table in ("audit_event", "audit_log", "audit_node", "audit_tree",
                          "audit_checkpoint"):
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            for statement in statements:
                await conn.execute(statement)
            for table in ("audit_event", "audit_log", "audit_node", "audit_tree",
                          "audit_checkpoint"):
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        finally:
            await conn.close()

    async def verify(self, verifier: NoteVerifier | None = None,
                     trusted: tuple[str, ...] = ()) -> Report:
        conn = await connect(self.urls.auditor)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await verify_log(self.source(conn), verifier or self.verifier, trusted)
        finally:
            await conn.close()

    async def failure(self, **kwargs: object) -> AuditVerificationError:
        with pytest.raises(AuditVerificationError) as caught:
            await self.verify(**kwargs)  # type: ignore[arg-type]
        return caught.value


class _RowByRow(DatabaseSource):
    def chunks(self, sizes: Collection[int]) -> None:
        return None


@pytest.fixture(scope="module")
def tamper_token(softhsm_token_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    return softhsm_token_factory("audit-tamper")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tamper_keystore(tamper_token: SoftHsmToken) -> AsyncIterator[AsyncKeyStore]:
    store = AsyncKeyStore(KeyStore(tamper_token.module_path, tamper_token.token_label,
                                   tamper_token.user_pin))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def _write(pool: asyncpg.Pool, batch: int) -> None:
    ctx = RequestContext(Actor("operator", f"officer-{batch}"), f"req-{batch}", "10.1.2.3")
    async with pool.acquire() as conn, conn.transaction():
        await record(conn, ctx, [AuditEvent("person.read", "found", pin=f"05224{batch}{i:06d}",
                                            purpose="kiểm tra", details={"i": i, "b": batch})
                                 for i in range(PER_BATCH)])


async def _sequence_all(pool: asyncpg.Pool, expected: int) -> None:
    """Sequence the events just written, once the sequencer's horizon (the cluster's oldest
    running transaction, any database of the shared test cluster) has passed them."""
    await wait_for_older_transactions(pool)
    done = await sequence_once(pool)
    assert done >= expected, f"only {done} of {expected} events sequenced"


@pytest_asyncio.fixture(loop_scope="session", params=["rows", "chunks", "workers"])
async def log(request: pytest.FixtureRequest, fresh_database: DatabaseUrls,
              pg_superuser_url: str, tamper_keystore: AsyncKeyStore) -> AsyncIterator[Log]:
    await migrate(fresh_database.owner)
    pool = await create_pool(fresh_database.service, min_size=1, max_size=3)
    signer = CheckpointSigner(tamper_keystore, "audit-checkpoint", ORIGIN)
    verifier = await signer.open()
    try:
        for batch in range(BATCHES):
            await _write(pool, batch)
            await _sequence_all(pool, PER_BATCH)
            assert await integrate_once(pool, wait=True) == PER_BATCH
            assert await checkpoint_once(pool, signer, wait=True) == (batch + 1) * PER_BATCH
        notes = [r["note"] for r in await pool.fetch(
            "SELECT note FROM audit_checkpoint ORDER BY tree_size")]
        superuser = url_for(pg_superuser_url,
                            database=urlsplit(fresh_database.service).path.lstrip("/"))
        yield Log(fresh_database, superuser, pool, signer, verifier, notes, request.param)
    finally:
        await pool.close()


EVENT_OF = "(SELECT event_id FROM audit_log WHERE index = {})"


async def test_untouched_log_verifies(log: Log) -> None:
    report = await log.verify(trusted=(log.notes[2],))
    assert (report.rows, report.checkpoints, report.proven_size) == (30, 6, 30)
    assert report.trusted == [15]


async def test_edited_field_is_named(log: Log) -> None:
    await log.sql(f"UPDATE audit_event SET outcome = 'not_found' WHERE id = {EVENT_OF.format(12)}")
    error = await log.failure()
    assert error.first.index == 12
    assert "row 12 is not the event signed in the checkpoint of size 15" in error.first.message


async def test_deleted_row_is_named(log: Log) -> None:
    await log.sql("DELETE FROM audit_log WHERE index = 12")
    error = await log.failure()
    assert error.first.index == 12 and "index 12 is missing" in error.first.message


async def test_forged_row_inserted_in_the_middle_is_named(log: Log) -> None:
    await log.sql(
        "UPDATE audit_log SET index = index + 1000 WHERE index >= 12",
        "UPDATE audit_log SET index = index - 999 WHERE index >= 1000",
        "INSERT INTO audit_event (id, txid, at, actor_type, actor_id, action, pin, outcome) "
        "OVERRIDING SYSTEM VALUE VALUES (100000, pg_current_xact_id(), now(), 'operator', "
        "'forger', 'person.read', '052240000001', 'found')",
        "INSERT INTO audit_log (index, event_id, event_at, txid) "
        "SELECT 12, id, at, txid FROM audit_event WHERE id = 100000",
    )
    error = await log.failure()
    assert error.first.index == 12 and "not the event signed" in error.first.message


async def test_swapped_rows_are_named(log: Log) -> None:
    a, b = [r["event_id"] for r in await log.pool.fetch(
        "SELECT event_id FROM audit_log WHERE index IN (12, 17) ORDER BY index")]
    event = "(SELECT id, at FROM audit_event WHERE id = {})"
    await log.sql("UPDATE audit_log SET event_id = -1 WHERE index = 12",
                  f"UPDATE audit_log SET (event_id, event_at) = {event.format(a)} WHERE index = 17",
                  f"UPDATE audit_log SET (event_id, event_at) = {event.format(b)} WHERE index = 12")
    error = await log.failure()
    assert error.first.index == 12 and "not the event signed" in error.first.message


async def test_truncated_tail_is_named(log: Log) -> None:
    await log.sql("DELETE FROM audit_log WHERE index >= 22")
    error = await log.failure()
    assert error.first.index == 22 and "rows end before index 22" in error.first.message


async def test_rows_cut_after_the_last_checkpoint_are_named(log: Log) -> None:
    await _write(log.pool, 9)
    await _sequence_all(log.pool, PER_BATCH)
    await integrate_once(log.pool, wait=True)  # integrated to 35, last checkpoint still 30
    await log.sql("DELETE FROM audit_log WHERE index >= 33")
    error = await log.failure()
    assert error.first.index == 33 and "35 events were integrated" in error.first.message


async def test_rewritten_tree_and_checkpoints_under_another_key_are_detected(
    log: Log, tamper_keystore: AsyncKeyStore,
) -> None:
    """The smart forger: edits row 12, rebuilds the stored tree from the last checkpoint that
    does not cover it (10) and re-signs every later checkpoint with a key of its own."""
    await log.sql(
        f"UPDATE audit_event SET outcome = 'not_found' WHERE id = {EVENT_OF.format(12)}",
        "DELETE FROM audit_node WHERE ((idx + 1) << level) > 10",
        "DELETE FROM audit_checkpoint WHERE tree_size > 10",
        "DELETE FROM audit_tree WHERE size > 10",
    )
    forger = CheckpointSigner(tamper_keystore, "forger", ORIGIN)
    await forger.open()
    assert await integrate_once(log.pool, wait=True) == 20
    assert await checkpoint_once(log.pool, forger, wait=True) == 30

    error = await log.failure()
    # Nothing can pin the edit closer than "after the last checkpoint that still verifies".
    assert error.first.index == 10 <= 12 < 15
    assert "checkpoint of size 30" in error.first.message
    assert "not signed by the key" in error.first.message
    with_trusted = await log.failure(trusted=(log.notes[-1],))
    assert with_trusted.first.index == 10
    assert any("trusted checkpoint of size 30" in p.message for p in with_trusted.problems)
    # An auditor who took the forger's key from the database still has the trusted copy.
    fooled = await log.failure(verifier=forger.verifier, trusted=(log.notes[-1],))
    assert fooled.first.index == 0
    assert any(p.message.startswith("trusted checkpoint: ") for p in fooled.problems)


async def test_altered_stored_leaf_is_named(log: Log) -> None:
    await log.sql("UPDATE audit_node SET hash = sha256(hash) WHERE level = 0 AND idx = 7")
    error = await log.failure()
    assert error.first.index == 7 and "tree store was altered" in error.first.message


AGE_ROWS = "UPDATE audit_log SET sequenced_at = sequenced_at - interval '2 minutes'"


async def test_deleted_checkpoints_fail_verification(log: Log) -> None:
    """Contract 7: the log has events and no checkpoint at all. Young events do not excuse
    it: deleting every checkpoint must not look like a log that was just started."""
    await log.sql("DELETE FROM audit_checkpoint")
    error = await log.failure()
    assert error.first.index == 0
    assert "30 events and no valid checkpoint at all" in error.first.message


async def test_old_events_no_checkpoint_covers_fail_verification(log: Log) -> None:
    """The newest checkpoints deleted: events 10..29, in the log for 2 minutes, are covered by
    none."""
    await log.sql("DELETE FROM audit_checkpoint WHERE tree_size > 10", AGE_ROWS)
    error = await log.failure()
    assert error.first.index == 10
    assert "events 10..29 are not covered by any checkpoint" in error.first.message
    assert "joined the log 12" in error.first.message  # about 120 s ago


async def test_young_uncovered_tail_is_reported_not_failed(log: Log) -> None:
    await log.sql("DELETE FROM audit_checkpoint WHERE tree_size > 25")
    report = await log.verify()
    assert (report.rows, report.proven_size, report.not_yet_checkpointed) == (30, 25, 5)


async def test_cli_fails_naming_missing_checkpoints(log: Log, settings: Settings,
                                                    key_file: Callable[[NoteVerifier], Path],
                                                    ) -> None:
    env = {"IDSERVICE_DATABASE_URL": log.urls.auditor,
           "IDSERVICE_ORIGIN": "http://tamper.test"}
    key = str(key_file(log.verifier))
    await log.sql("DELETE FROM audit_checkpoint WHERE tree_size > 25")
    young = _cli(settings, "audit", "verify", "--key", key, **env)
    assert young.returncode == 0, young.stderr
    assert "5 newer events not yet checkpointed" in young.stdout
    await log.sql(AGE_ROWS)
    old = _cli(settings, "audit", "verify", "--key", key, **env)
    assert old.returncode == 1
    assert "first bad index 25: events 25..29 are not covered by any checkpoint" in old.stderr


@pytest.fixture
def key_file(tmp_path: Path) -> Iterator[Callable[[NoteVerifier], Path]]:
    def write(verifier: NoteVerifier) -> Path:
        path = tmp_path / "audit-key.pem"
        path.write_text(verifier.public_pem())
        return path

    yield write


async def test_cli_names_the_first_bad_index(log: Log, settings: Settings,
                                             key_file: Callable[[NoteVerifier], Path]) -> None:
    env = {"IDSERVICE_DATABASE_URL": log.urls.auditor,
           "IDSERVICE_ORIGIN": "http://tamper.test"}
    key = str(key_file(log.verifier))
    ok = _cli(settings, "audit", "verify", "--key", key, **env)
    assert ok.returncode == 0, ok.stderr
    await log.sql(f"UPDATE audit_event SET details = '{{\"i\": 99}}' WHERE id = "
                  f"{EVENT_OF.format(21)}")
    bad = _cli(settings, "audit", "verify", "--key", key, **env)
    assert bad.returncode == 1
    assert "first bad index 21" in bad.stderr


async def test_backlog_gets_checkpoints_while_it_is_integrated(
    fresh_database: DatabaseUrls, tamper_keystore: AsyncKeyStore
) -> None:
    """Integrating a backlog of several batches signs between batches, not only at the end:
    the contract wants a checkpoint at least every 10 s while events arrive."""
    await migrate(fresh_database.owner)
    pool = await create_pool(fresh_database.service, min_size=1, max_size=3)
    try:
        for batch in range(4):
            await _write(pool, batch)
        await _sequence_all(pool, 4 * PER_BATCH)
        signer = CheckpointSigner(tamper_keystore, "audit-checkpoint", ORIGIN)
        await signer.open()
        integrator = Integrator(pool, signer, checkpoint_interval=0.0, batch=PER_BATCH)
        await integrator.run_once()
        sizes = [r[0] for r in await pool.fetch(
            "SELECT tree_size FROM audit_checkpoint ORDER BY tree_size")]
    finally:
        await pool.close()
    assert sizes == [PER_BATCH * (b + 1) for b in range(4)]
