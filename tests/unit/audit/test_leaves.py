"""The fast leaf pipeline must give exactly what the simple one gives (issue 4's benchmarks).

- `entry.row_leaf_hashes` (canonical JSON written directly) = `leaf_hash(render_row(row))`, for
  generated rows full of odd values (the general path's own proof is test_canonical_json.py);
- `CompactRange.extend_nodes` = `extend`, `append_range` of `levels`/`frontier` = the root;
- the verifier's pass over chunks (`leaves.make_chunk`, `verify._Pass.add_chunk`) = its pass
  row by row, for generated logs with every kind of damage, every chunk size.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785

from idservice.audit import entry, merkle
from idservice.audit.leaves import make_chunk
from idservice.audit.merkle import CompactRange
from idservice.audit.verify import _Pass, _Target
from tests.unit.audit.test_canonical_json import TRICKY_STRINGS, _random_value

# -- row_leaf_hashes -------------------------------------------------------------------------

FLOATS = [0.1, 1.5, -2.25, 1e21, 1e-7, 5e-324, 123456789.125, -0.0]


def _details(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(6)
    if kind == 0:  # what the service writes
        return {"what": "events", "count": rng.randrange(1000), "ok": True,
                "filters": {"pin": "052326415904"}, "line": None}
    if kind == 1:
        return {"x": rng.choice(FLOATS), "n": rng.randrange(10**6)}
    if kind == 2:
        return {"n": rng.choice([10**15 - 1, 10**15, 2**53 - 1, -(2**53) + 1])}
    value = _random_value(rng, 1)
    return value if isinstance(value, dict) else {"v": value}


def _text(rng: random.Random) -> str | None:
    if rng.randrange(5) == 0:
        return None
    return rng.choice([*TRICKY_STRINGS, "officer-12", "052326415904", "10.0.0.1", ""]) + \
        rng.choice(["", "x", "Đ", "\x1f", "😀"])


def _row(rng: random.Random, index: int) -> tuple[Any, ...]:
    details = _details(rng)
    # the database's jsonb text: ", " and ": ", non-ASCII as is, controls as \u00xx; sometimes
    # everything escaped, which must be parsed (not copied) too
    text = json.dumps(details, ensure_ascii=rng.randrange(4) == 0, separators=(", ", ": "))
    tz = UTC if rng.randrange(5) else timezone(timedelta(hours=rng.randrange(-12, 13)))
    at = datetime(rng.randrange(1, 10000), rng.randrange(1, 13), rng.randrange(1, 29),
                  rng.randrange(24), rng.randrange(60), rng.randrange(60),
                  rng.choice([0, 1000, 123456, 999999, rng.randrange(10**6)]), tzinfo=tz)
    return (index, at, rng.choice(["operator", "client", "anonymous"]),
            _text(rng) or "id", "person.read", _text(rng), _text(rng), _text(rng) or "ok",
            _text(rng), _text(rng), text)


def _simple(row: tuple[Any, ...]) -> bytes:
    named = dict(zip(entry.ROW_COLUMNS, row, strict=True))
    named["details"] = json.loads(named["details"])
    return entry.leaf_hash(entry.render_row(named))


@pytest.mark.parametrize("seed", range(4))
def test_row_leaf_hashes_equal_the_leaf_hash_of_the_rendered_row(seed: int) -> None:
    rng = random.Random(seed)
    rows = [_row(rng, rng.choice([i, 2**53 - 1, 2**62])) for i in range(1500)]
    safe = [r for r in rows if "2**53" not in r[10] and r[0] < 2**53]
    simple = []
    for row in safe:
        try:
            simple.append(_simple(row))
        except rfc8785.IntegerDomainError:
            simple.append(b"refused")
    fast = []
    for row in safe:
        try:
            fast.extend(entry.row_leaf_hashes([row])[1])
        except rfc8785.IntegerDomainError:
            fast.append(b"refused")
    assert fast == simple
    assert simple.count(b"refused") < len(simple) // 4
    # the direct path is really taken for most rows, not always bypassed
    assert sum(entry._plain_details(r[10]) is not None for r in safe) > len(safe) // 3


def test_row_leaf_hashes_of_the_usual_row_and_its_index() -> None:
    at = datetime(2026, 3, 1, 8, 9, 10, 123456, tzinfo=UTC)
    row = (7, at, "operator", "officer-1", "person.read", "052326415904", "kiểm tra",
           "found", "r-1", "10.0.0.1", '{"b": 1, "a": [true, null]}')
    indexes, leaves = entry.row_leaf_hashes([row])
    jcs = ('{"action":"person.read","actor":{"id":"officer-1","type":"operator"},'
           '"at":"2026-03-01T08:09:10.123Z","details":{"a":[true,null],"b":1},"index":7,'
           '"outcome":"found","pin":"052326415904","purpose":"kiểm tra","request_id":"r-1",'
           '"source_ip":"10.0.0.1"}').encode()
    assert indexes == [7]
    assert leaves == [hashlib.sha256(b"\x00" + jcs).digest()]


def test_integers_beyond_the_safe_domain_are_refused_as_before() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for details in ('{"n": 9007199254740992}', '{"n": 1' + "0" * 400 + "}"):
        row = (1, at, "client", "c", "pin.issue", None, None, "ok", None, None, details)
        with pytest.raises(rfc8785.IntegerDomainError):
            entry.row_leaf_hashes([row])


def test_format_at_pads_the_year_and_truncates_to_milliseconds() -> None:
    assert entry.format_at(datetime(999, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)) == \
        "0999-01-02T03:04:05.999Z"
    assert entry.format_at(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"


# -- bulk Merkle helpers ---------------------------------------------------------------------

LEAVES = [merkle.leaf_hash(b"%d" % i) for i in range(600)]


@pytest.mark.parametrize("seed", range(3))
def test_extend_nodes_stores_what_extend_does(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        start, count = rng.randrange(300), rng.randrange(300)
        one = CompactRange()
        one.extend(LEAVES[:start])
        bulk = one.copy()
        expected = one.extend(LEAVES[start:start + count])
        levels, idxs, hashes = bulk.extend_nodes(LEAVES[start:start + count])
        assert sorted(zip(levels, idxs, hashes, strict=True)) == \
            sorted((n.level, n.index, h) for n, h in expected)
        assert (bulk.size, bulk.hashes) == (one.size, one.hashes)


def test_append_range_of_aligned_chunks_gives_every_root() -> None:
    for chunk in (1, 4, 16, 64):
        tree = CompactRange()
        for start in range(0, 333, chunk):
            part = LEAVES[start:min(333, start + chunk)]
            levels = merkle.levels(part)
            for m in range(len(part) + 1):
                prefix = tree.copy()
                prefix.append_range(m, merkle.frontier(levels, m))
                assert prefix.root() == merkle.root(LEAVES[:start + m])
            tree.append_range(len(part), merkle.frontier(levels, len(part)))
        assert tree.size == 333


def test_append_subtree_refuses_a_misaligned_subtree() -> None:
    tree = CompactRange()
    tree.extend(LEAVES[:3])
    with pytest.raises(ValueError, match="cannot start"):
        tree.append_subtree(2, LEAVES[0])
    with pytest.raises(ValueError, match="subtrees"):
        tree.append_range(3, [LEAVES[0]])


# -- the verifier's pass: chunks = row by row ------------------------------------------------

def _damaged_log(rng: random.Random) -> tuple[list[tuple[int, bytes]], dict[int, bytes],
                                              dict[int, list[_Target]]]:
    """Rows (index, recomputed leaf), stored leaves and signed targets, with random damage."""
    n = rng.randrange(0, 70)
    original = [merkle.leaf_hash(b"e%d" % i) for i in range(n)]
    integrated = rng.choice([n, n, max(0, n - rng.randrange(1, 20))])
    stored = {i: original[i] for i in range(integrated)}
    rows = list(enumerate(original))
    for _ in range(rng.randrange(3)):
        if not rows:
            break
        damage, at = rng.randrange(7), rng.randrange(len(rows))
        if damage == 0:  # edited row
            rows[at] = (rows[at][0], merkle.leaf_hash(b"forged%d" % at))
        elif damage == 1:  # deleted row
            del rows[at]
        elif damage == 2:  # duplicated index
            rows.insert(at, (rows[at][0], merkle.leaf_hash(b"dup")))
        elif damage == 3:  # cut tail
            del rows[at:]
        elif damage == 4 and rows[at][0] in stored:  # altered stored leaf
            stored[rows[at][0]] = merkle.leaf_hash(b"stored")
        elif damage == 5:  # a stored leaf missing in the middle
            stored.pop(rows[at][0], None)
        elif damage == 6:  # a row before index 0
            rows.insert(0, (-1, merkle.leaf_hash(b"neg")))
    rows.sort(key=lambda r: r[0])
    targets: dict[int, list[_Target]] = {}
    for _ in range(rng.randrange(6)):
        size = rng.randrange(1, n + 4)
        which = rng.randrange(4)
        root = (merkle.root(original[:size]) if which < 2 or size > n
                else merkle.root([stored.get(i, b"\0" * 32) for i in range(size)]) if which == 2
                else merkle.leaf_hash(b"garbage"))
        targets.setdefault(size, []).append(_Target(f"target {size}", root))
    return rows, stored, targets


def _outcome(state: _Pass) -> tuple[Any, ...]:
    return (state.problems, state.rows.size, state.rows.root(), state.proven, state.stopped,
            state.first_diff, state.stored_complete)


def _by_rows(rows: list[tuple[int, bytes]], stored: dict[int, bytes],
             targets: dict[int, list[_Target]]) -> _Pass:
    state = _Pass(targets)
    for index, leaf in rows:
        state.add(index, leaf, stored.get(index))
        if state.stopped:
            break
    return state


def _by_chunks(rows: list[tuple[int, bytes]], stored: dict[int, bytes],
               targets: dict[int, list[_Target]], chunk: int) -> _Pass:
    """As `DatabaseSource` splits [0, max index + 1): the first and last chunks open."""
    state = _Pass(targets)
    count = max((i for i, _ in rows), default=-1) + 1
    n = max(1, -(-count // chunk))
    for k in range(n):
        low = -(2**63) if k == 0 else k * chunk
        high = 2**63 if k == n - 1 else (k + 1) * chunk - 1
        part = [(i, leaf) for i, leaf in rows if low <= i <= high]
        indexes = [i for i, _ in part]
        span = {i: stored[i] for i in range(min(indexes, default=0), max(indexes, default=-1) + 1)
                if i in stored}
        state.add_chunk(make_chunk(k * chunk, indexes, [leaf for _, leaf in part], span,
                                   [s for s in targets if k * chunk < s <= (k + 1) * chunk]))
        if state.stopped:
            break
    return state


@pytest.mark.parametrize("seed", range(6))
def test_chunked_pass_equals_the_pass_row_by_row(seed: int) -> None:
    rng = random.Random(seed)
    regular = irregular = problems = 0
    for _ in range(300):
        rows, stored, targets = _damaged_log(rng)
        expected = _outcome(_by_rows(rows, stored, targets))
        problems += bool(expected[0])
        for chunk in (1, 2, 4, 8, 64):
            assert _outcome(_by_chunks(rows, stored, targets, chunk)) == expected, \
                (rows, stored, targets, chunk)
        part = [leaf for i, leaf in rows if 0 <= i < 8]
        shape = make_chunk(0, [i for i, _ in rows if 0 <= i < 8], part, stored, [])
        regular += shape.rows is None
        irregular += shape.rows is not None
    assert problems > 100 and regular > 20 and irregular > 20  # every case really exercised
