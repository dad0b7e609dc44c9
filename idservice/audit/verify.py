"""Full verification of the audit log: rows, tree and signed checkpoints (contract section 5).

Storage sits behind `AuditSource` (the database or the HTTP API, `sources.py`); this module only
computes. One pass over the rows in index order, O(log n) memory (the database source hashes
aligned chunks of rows in worker processes, `leaves.py`; a chunk joins the pass as the compact
ranges of its leaves, or row by row where anything in it is unusual, with the same result):

1. Every checkpoint's signature is checked with the trusted key; a checkpoint that fails is
   reported and not used.
2. Indexes must be 0, 1, 2, ... without gaps. Each row's leaf hash is recomputed from the event
   (`entry.leaf_hash`) and the tree is rebuilt (`merkle.CompactRange`); at every signed size the
   recomputed root must be the signed root. Successive checkpoints are thereby consistent: both
   roots come from the same prefix of rows (stronger than a consistency proof). Trusted
   checkpoints kept outside the database are checked the same way (and in step 6).
3. Where the source has the integrated leaf hashes (database), a root mismatch is pinned to the
   exact row: if the stored leaves reproduce the signed root they are authentic, and the first
   row whose recomputed hash differs is the altered one. If the stored tree was rewritten too,
   the first index no valid checkpoint vouches for is reported.
4. Rows must cover every signed size and the integrated tree (a cut tail is named).
5. Checkpoints must cover the rows (contract 7): a log with events and no valid checkpoint
   fails, and so do events older than `CHECKPOINT_GRACE_SECONDS` beyond the newest valid
   checkpoint (checkpoints deleted); a younger tail is reported as not yet checkpointed.
6. With trusted checkpoints and no problem so far, the source's consistency proof from each
   to the newest signed checkpoint must verify.

`verify_log` runs these as named steps and raises `AuditVerificationError` listing the
problems, the first index first.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from idservice.audit import entry, merkle
from idservice.audit.leaves import LeafChunk
from idservice.audit.merkle import CompactRange, ProofError
from idservice.audit.signed_note import CheckpointError, NoteVerifier

__all__ = ["AuditSource", "AuditVerificationError", "Problem", "Report", "verify_log"]


class AuditSource(Protocol):
    async def checkpoints(self) -> list[str]:
        """Every signed checkpoint note, oldest first."""

    def events(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of events (as the API renders them) in index order, from index 0."""

    async def leaf_hashes(self, start: int, end: int) -> dict[int, bytes] | None:
        """Integrated leaf hashes for [start, end), or None if the source has none."""

    def chunks(self, sizes: Collection[int]) -> AsyncGenerator[LeafChunk, None] | None:
        """The rows as hashed chunks in index order (the compact ranges at `sizes` inside a
        chunk included), or None: then `events` and `leaf_hashes` are read."""

    async def integrated_size(self) -> int | None:
        """Size of the integrated tree, or None if unknown."""

    async def consistency(self, first: int, second: int) -> list[bytes]:
        """The source's consistency proof between two tree sizes."""

    async def uncovered_age(self, start: int) -> float | None:
        """Seconds since the first event from index `start` on joined the log (None: none)."""


@dataclass(frozen=True, order=True)
class Problem:
    index: int
    message: str


class AuditVerificationError(Exception):
    def __init__(self, problems: Sequence[Problem], report: Report) -> None:
        self.problems = sorted(problems, key=lambda p: p.index)
        self.report = report
        first = self.problems[0]
        super().__init__(f"first bad index {first.index}: {first.message}")

    @property
    def first(self) -> Problem:
        return self.problems[0]


@dataclass
class Report:
    rows: int = 0
    checkpoints: int = 0
    proven_size: int = 0
    trusted: list[int] = field(default_factory=list)
    not_yet_checkpointed: int = 0  # the young tail no checkpoint covers yet


@dataclass
class _Target:
    label: str
    root: bytes


def _claimed_size(note: str) -> int | None:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 2 and lines[1].isdigit() else None


class _Pass:
    """State of the single pass over the rows."""

    def __init__(self, targets: dict[int, list[_Target]]) -> None:
        self.targets = targets
        self.problems: list[Problem] = []
        self.rows = CompactRange()
        self.stored = CompactRange()
        self.stored_complete = True  # every row so far had a stored leaf
        self.first_diff: int | None = None
        self.proven = 0
        self.stopped = False

    def add(self, index: int, leaf: bytes, stored: bytes | None) -> None:
        if index != self.rows.size:
            self._out_of_order(index)
            return
        self.rows.append(leaf)
        if stored is None:
            self.stored_complete = False
        elif self.stored_complete:
            self.stored.append(stored)
            if stored != leaf and self.first_diff is None:
                self.first_diff = index
        size = self.rows.size
        if size in self.targets:
            self._check(size)

    def add_chunk(self, chunk: LeafChunk) -> None:
        """A chunk of rows: exactly what `add` of each of its rows would do."""
        if chunk.rows is not None:
            for index, leaf, stored in chunk.rows:
                self.add(index, leaf, stored)
                if self.stopped:
                    return
            return
        if chunk.count == 0:
            return
        if chunk.start != self.rows.size:
            self._out_of_order(chunk.start)
            return
        assert chunk.frontiers is not None  # a regular chunk
        rows_before = self.rows
        stored_before = self.stored if self.stored_complete and chunk.stored_all else None
        if not chunk.stored_all:
            self.stored_complete = False
        for size, hashes in chunk.frontiers.items():  # ascending; the last is the chunk's end
            self.rows = rows_before.copy()
            self.rows.append_range(size - chunk.start, hashes)
            if stored_before is not None:
                self.stored = stored_before.copy()
                self.stored.append_range(size - chunk.start, hashes)
            if size in self.targets:
                self._check(size)
                if self.stopped:
                    return

    def _out_of_order(self, index: int) -> None:
        expected = self.rows.size
        what = (f"index {expected} is missing (the next row has index {index})"
                if index > expected else f"index {index} appears again after {expected - 1}")
        self._stop(Problem(expected, what))

    def _stop(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.stopped = True

    def _check(self, size: int) -> None:
        recomputed = self.rows.root()
        for target in self.targets[size]:
            if recomputed == target.root:
                continue
            if (self.stored_complete and self.stored.root() == target.root
                    and self.first_diff is not None):
                self._stop(Problem(self.first_diff, f"row {self.first_diff} is not the event "
                                   f"signed in {target.label}: its leaf hash differs from the "
                                   "integrated one"))
            else:
                self._stop(Problem(self.proven, f"rows {self.proven}..{size - 1} do not "
                                   f"reproduce the root of {target.label}, and the stored tree "
                                   f"does not either; index {self.proven} is the first one "
                                   "no valid checkpoint vouches for"))
            return
        if self.first_diff is not None:
            self.problems.append(Problem(self.first_diff, f"stored leaf hash {self.first_diff} "
                                         "differs from its row, though the rows reproduce the "
                                         "signed root: the tree store was altered"))
            self.first_diff = None
        self.proven = size


CHECKPOINT_GRACE_SECONDS = 60.0
"""Events younger than this may wait for their checkpoint (one is due every 10 s while events
arrive, contract 5); older ones that no checkpoint covers fail the verification (contract 7)."""


@dataclass
class _Signed:
    """What the checkpoints say: the roots to reach, by tree size."""

    targets: dict[int, list[_Target]] = field(default_factory=dict)
    valid: list[int] = field(default_factory=list)  # sizes of the log's valid checkpoints
    trusted_roots: dict[int, bytes] = field(default_factory=dict)


def _read_checkpoints(notes: Sequence[str], verifier: NoteVerifier, signed: _Signed,
                      report: Report) -> list[Problem]:
    """Step 1: the log's checkpoints. One that fails its signature is reported (at the
    largest valid size below the one it claims) and not used."""
    bad: list[tuple[int | None, str]] = []
    for note in notes:
        report.checkpoints += 1
        try:
            cp = verifier.verify(note)
        except CheckpointError as exc:
            bad.append((_claimed_size(note), str(exc)))
            continue
        signed.valid.append(cp.size)
        signed.targets.setdefault(cp.size, []).append(
            _Target(f"the checkpoint of size {cp.size}", cp.root))
    problems = []
    for size, why in bad:
        below = [v for v in signed.valid if size is not None and v < size]
        problems.append(Problem(max(below, default=0), f"checkpoint of size {size}: {why}"))
    return problems


def _read_trusted(trusted: Sequence[str], verifier: NoteVerifier, signed: _Signed,
                  report: Report) -> list[Problem]:
    """Step 2: checkpoints kept outside the database join the targets."""
    problems = []
    for note in trusted:
        try:
            cp = verifier.verify(note)
        except CheckpointError as exc:
            problems.append(Problem(0, f"trusted checkpoint: {exc}"))
            continue
        signed.trusted_roots[cp.size] = cp.root
        report.trusted.append(cp.size)
        signed.targets.setdefault(cp.size, []).append(
            _Target(f"the trusted checkpoint of size {cp.size}", cp.root))
    return problems


async def _replay(source: AuditSource, state: _Pass,
                  progress: Callable[[int], None] | None) -> None:
    """Step 3: the one pass over the rows, as hashed chunks where the source has them."""
    chunks = source.chunks(state.targets.keys())
    if chunks is not None:
        async with aclosing(chunks):
            async for chunk in chunks:
                state.add_chunk(chunk)
                if progress is not None:
                    progress(chunk.count)
                if state.stopped:
                    return
        return
    async for batch in source.events():
        if not batch:
            continue
        stored = await source.leaf_hashes(int(batch[0]["index"]), int(batch[-1]["index"]) + 1)
        for event in batch:
            index = int(event["index"])
            state.add(index, entry.leaf_hash(event), stored.get(index) if stored else None)
            if state.stopped:
                break
        if progress is not None:
            progress(len(batch))
        if state.stopped:
            return


async def _check_tail(source: AuditSource, state: _Pass, signed: _Signed) -> list[Problem]:
    """Step 4: the rows reach every signed size and the integrated tree."""
    rows = state.rows.size
    problems = [Problem(rows, f"the rows end before index {rows} but "
                              f"{signed.targets[size][0].label} covers {size} events")
                for size in sorted(s for s in signed.targets if s > rows)]
    integrated = await source.integrated_size()
    if integrated is not None and integrated > rows:
        problems.append(Problem(rows, f"{integrated} events were integrated into the tree "
                                f"but the rows end before index {rows}"))
    if state.first_diff is not None:
        problems.append(Problem(state.first_diff, f"row {state.first_diff} differs from "
                                "its integrated leaf hash (not yet in a checkpoint)"))
    return problems


async def _check_coverage(source: AuditSource, rows: int, signed: _Signed, report: Report,
                          grace: float) -> list[Problem]:
    """Step 5 (contract 7): every event is covered by a valid checkpoint of the log, except a
    tail younger than `grace` ("not yet checkpointed"). A log with events and no checkpoint at
    all fails whatever their age: deleting every checkpoint must not look like a young log."""
    if rows == 0:
        return []
    if not signed.valid:
        return [Problem(0, f"the log has {rows} events and no valid checkpoint at all "
                           "(checkpoints deleted, or never signed)")]
    covered = min(max(signed.valid), rows)
    if covered == rows:
        return []
    age = await source.uncovered_age(covered)
    if age is not None and age > grace:
        return [Problem(covered, f"events {covered}..{rows - 1} are not covered by any "
                                 f"checkpoint and the oldest of them joined the log {age:.0f} "
                                 f"s ago (a checkpoint is due every 10 s: checkpoints are "
                                 "missing)")]
    report.not_yet_checkpointed = rows - covered
    return []


async def _check_trusted_consistency(source: AuditSource, signed: _Signed) -> list[Problem]:
    """Step 6: the source proves each trusted checkpoint consistent with its newest one."""
    if not signed.valid or not signed.trusted_roots:
        return []
    newest = max(signed.valid)
    newest_root = signed.targets[newest][0].root
    problems = []
    for size, trusted_root in signed.trusted_roots.items():
        if size > newest:
            continue
        try:
            merkle.verify_consistency(size, newest, trusted_root, newest_root,
                                      await source.consistency(size, newest))
        except ProofError as exc:
            problems.append(Problem(size, f"no valid consistency proof from the trusted "
                                    f"checkpoint {size} to checkpoint {newest}: {exc}"))
    return problems


async def verify_log(source: AuditSource, verifier: NoteVerifier, trusted: Sequence[str] = (),
                     progress: Callable[[int], None] | None = None, *,
                     grace: float = CHECKPOINT_GRACE_SECONDS) -> Report:
    """The steps in the module docstring; raises `AuditVerificationError` on any problem."""
    report = Report()
    signed = _Signed()
    problems = _read_checkpoints(await source.checkpoints(), verifier, signed, report)
    problems += _read_trusted(trusted, verifier, signed, report)
    state = _Pass(signed.targets)
    await _replay(source, state, progress)
    problems += state.problems
    report.rows = state.rows.size
    report.proven_size = state.proven
    if not state.stopped:
        problems += await _check_tail(source, state, signed)
        problems += await _check_coverage(source, report.rows, signed, report, grace)
    if not problems:
        problems += await _check_trusted_consistency(source, signed)
    if problems:
        raise AuditVerificationError(problems, report)
    return report
