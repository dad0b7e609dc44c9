"""Merkle tree hashing, proofs and a compact range (RFC 9162 section 2.1). Pure: stdlib only.

- Leaf hash `SHA-256(0x00 || leaf)`, node hash `SHA-256(0x01 || left || right)`, and the root of
  n leaves (MTH) with the split at the largest power of two smaller than n (2.1.1).
- Inclusion proofs (2.1.3) and consistency proofs (2.1.4): generated from leaf hashes in memory,
  or as a *plan* naming the perfect subtrees (`NodeID`) a store must supply, so a database
  holding every completed perfect subtree answers a proof with O(log n) lookups.
- Verification follows the algorithms of 2.1.3.2 and 2.1.4.2 literally. Verifiers raise
  `ProofError` (never return a bool).
- `CompactRange`: the O(log n) frontier of a growing tree (the roots of its perfect subtrees,
  largest first). Appending a leaf returns every perfect subtree it completes, which is what an
  integrator stores; `extend_nodes` does the same for a batch level by level (no per-leaf Python
  objects), and `append_range` adds an aligned range given by its own frontier (a verifier
  joining chunks of leaves hashed elsewhere).
- `levels` / `frontier`: every perfect subtree over a run of leaves, and the compact range of
  any prefix of it, for hashing a chunk of leaves in one go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "ConsistencyProofError",
    "InclusionProofError",
    "NodeID",
    "ProofError",
    "assemble",
    "consistency_plan",
    "consistency_proof",
    "frontier",
    "inclusion_plan",
    "inclusion_proof",
    "leaf_hash",
    "levels",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify, or its parameters are impossible."""


class InclusionProofError(ProofError):
    pass


class ConsistencyProofError(ProofError):
    pass


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True, order=True, slots=True)
class NodeID:
    """The perfect subtree of 2**level leaves starting at leaf `index << level`."""

    level: int
    index: int

    @property
    def begin(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Root of consecutive perfect subtrees, largest first (right-to-left fold)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class CompactRange:
    """The frontier of a tree of `size` leaves: one hash per set bit of size, largest first."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        frontier = [bytes(h) for h in hashes]
        if size < 0 or len(frontier) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} hashes, "
                             f"not {len(frontier)}")
        if any(len(h) != HASH_SIZE for h in frontier):
            raise ValueError("frontier hashes must be 32 bytes")
        self._size = size
        self._hashes = frontier

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        return list(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[NodeID, bytes]]:
        """Add a leaf hash; returns the perfect subtrees completed by it (the leaf first)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("leaf hashes must be 32 bytes")
        index, level, acc = self._size, 0, bytes(leaf)
        completed = [(NodeID(0, index), acc)]
        while index & 1:
            acc = node_hash(self._hashes.pop(), acc)
            index >>= 1
            level += 1
            completed.append((NodeID(level, index), acc))
        self._hashes.append(acc)
        self._size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeID, bytes]]:
        completed: list[tuple[NodeID, bytes]] = []
        for leaf in leaves:
            completed.extend(self.append(leaf))
        return completed

    def extend_nodes(self, leaves: Sequence[bytes]) -> tuple[list[int], list[int], list[bytes]]:
        """`extend` for a batch, computed level by level (what an integrator stores, fast):
        the completed perfect subtrees as parallel lists (levels, indexes, hashes), by level."""
        if any(len(h) != HASH_SIZE for h in leaves):
            raise ValueError("leaf hashes must be 32 bytes")
        old, new = self._size, self._size + len(leaves)
        by_level = {lvl: h for lvl, h in zip(_bits_desc(old), self._hashes, strict=True)}
        out_levels: list[int] = []
        out_idxs: list[int] = []
        out_hashes: list[bytes] = []
        last: dict[int, tuple[int, bytes]] = {}  # per level: its newest completed node
        level, current = 0, list(leaves)
        while current:
            first = old >> level  # index of current[0] at this level
            out_levels.extend([level] * len(current))
            out_idxs.extend(range(first, first + len(current)))
            out_hashes.extend(current)
            last[level] = (first + len(current) - 1, current[-1])
            if first & 1:  # its left sibling is the old frontier's node at this level
                current.insert(0, by_level[level])
            current = _parents(current)
            level += 1
        self._size = new
        self._hashes = [last[lvl][1] if lvl in last and last[lvl][0] == (new >> lvl) - 1
                        else by_level[lvl] for lvl in _bits_desc(new)]
        return out_levels, out_idxs, out_hashes

    def append_subtree(self, level: int, digest: bytes) -> None:
        """Add the perfect subtree of 2**level leaves starting at the current size (which must
        be a multiple of 2**level), merging completed subtrees as `append` does."""
        if len(digest) != HASH_SIZE:
            raise ValueError("subtree hashes must be 32 bytes")
        if level < 0 or self._size & ((1 << level) - 1):
            raise ValueError(f"a subtree of 2**{level} leaves cannot start at {self._size}")
        index, acc = self._size >> level, bytes(digest)
        while index & 1:
            acc = node_hash(self._hashes.pop(), acc)
            index >>= 1
        self._hashes.append(acc)
        self._size += 1 << level

    def append_range(self, size: int, hashes: Sequence[bytes]) -> None:
        """Add `size` leaves given by their own compact range (largest subtree first), as the
        tree starting at the current size has them; each subtree must be aligned."""
        bits = list(_bits_desc(size))
        if len(bits) != len(hashes):
            raise ValueError(f"a range of {size} leaves has {len(bits)} subtrees, "
                             f"not {len(hashes)}")
        for level, digest in zip(bits, hashes, strict=True):
            self.append_subtree(level, digest)

    def root(self) -> bytes:
        return _fold(self._hashes)

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._hashes)


def _parents(level: Sequence[bytes]) -> list[bytes]:
    """The next level up: node hashes of consecutive pairs (a trailing odd node is left out).
    Inlined SHA-256 rather than node_hash per pair: this is the batch hot path."""
    sha = hashlib.sha256
    return [sha(b"\x01" + left + right).digest()
            for left, right in zip(level[::2], level[1::2], strict=False)]


def _bits_desc(n: int) -> Iterable[int]:
    """The set bits of n, highest first: the levels of a compact range of n leaves."""
    return (level for level in range(n.bit_length() - 1, -1, -1) if n >> level & 1)


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every perfect subtree over `leaves` taken as a tree starting at an aligned position:
    levels[k][j] covers leaves [j * 2**k, (j + 1) * 2**k)."""
    out = [list(leaves)]
    while len(out[-1]) > 1:
        out.append(_parents(out[-1]))
    return out


def frontier(tree_levels: Sequence[Sequence[bytes]], size: int) -> list[bytes]:
    """The compact range of the first `size` leaves of `levels(...)` (largest subtree first)."""
    if size < 0 or (size and size > len(tree_levels[0])):
        raise ValueError(f"no prefix of {size} leaves here")
    out: list[bytes] = []
    start = 0
    for level in _bits_desc(size):
        out.append(tree_levels[level][start >> level])
        start += 1 << level
    return out


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the given leaf hashes (the empty tree's root is SHA-256 of nothing)."""
    cr = CompactRange()
    cr.extend(leaves)
    return cr.root()


# -- proof generation ------------------------------------------------------------------------

def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PATH(index, D[0:size]) (2.1.3.1), in proof order."""
    lo, hi, m = 0, size, index
    outer_first: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            outer_first.append((lo + k, hi))
            hi = lo + k
        else:
            outer_first.append((lo, lo + k))
            lo += k
            m -= k
    return outer_first[::-1]


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PROOF(first, D[0:second]) (2.1.4.1), in proof order."""
    if first <= 0 or first >= second:
        return []
    lo, hi, m, whole = 0, second, first, True
    outer_first: list[tuple[int, int]] = []
    while True:
        if m == hi - lo:
            if not whole:
                outer_first.append((lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            outer_first.append((lo + k, hi))
            hi = lo + k
        else:
            outer_first.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    return outer_first[::-1]


def _range_nodes(begin: int, end: int) -> list[NodeID]:
    """Aligned perfect subtrees covering [begin, end), largest first."""
    nodes: list[NodeID] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length()
        while begin + (1 << level) > end:
            level -= 1
        nodes.append(NodeID(level, begin >> level))
        begin += 1 << level
    return nodes


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}")


def _check_sizes(first: int, second: int) -> None:
    if not 0 <= first <= second:
        raise ConsistencyProofError(f"sizes {first} and {second} are not 0 <= first <= second")


def inclusion_plan(index: int, size: int) -> list[list[NodeID]]:
    """The stored perfect subtrees each inclusion-proof hash is folded from."""
    _check_index(index, size)
    return [_range_nodes(a, b) for a, b in _inclusion_ranges(index, size)]


def consistency_plan(first: int, second: int) -> list[list[NodeID]]:
    _check_sizes(first, second)
    return [_range_nodes(a, b) for a, b in _consistency_ranges(first, second)]


def assemble(plan: Sequence[Sequence[NodeID]], nodes: Mapping[NodeID, bytes]) -> list[bytes]:
    """Proof hashes from a plan and the node hashes a store returned (KeyError if missing)."""
    return [_fold([nodes[n] for n in part]) for part in plan]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    _check_index(index, len(leaves))
    return [root(leaves[a:b]) for a, b in _inclusion_ranges(index, len(leaves))]


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    _check_sizes(first, len(leaves))
    return [root(leaves[a:b]) for a, b in _consistency_ranges(first, len(leaves))]


# -- verification ----------------------------------------------------------------------------

def _check_hashes(error: type[ProofError], *hashes: bytes) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise error("hashes must be 32 bytes")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     expected_root: bytes) -> None:
    """RFC 9162 2.1.3.2; raises InclusionProofError unless `leaf` is at `index` of that tree."""
    _check_index(index, size)
    _check_hashes(InclusionProofError, leaf, expected_root, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise InclusionProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError("inclusion proof is too short")
    if r != expected_root:
        raise InclusionProofError("inclusion proof does not lead to the expected root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2; raises ConsistencyProofError unless the second tree extends the first."""
    _check_sizes(first, second)
    _check_hashes(ConsistencyProofError, first_root, second_root, *proof)
    if first == second:
        if proof:
            raise ConsistencyProofError("proof between equal sizes must be empty")
        if first_root != second_root:
            raise ConsistencyProofError("trees of the same size have different roots")
        return
    if first == 0:
        if proof:
            raise ConsistencyProofError("proof from the empty tree must be empty")
        return
    if not proof:
        raise ConsistencyProofError("consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofError("consistency proof is too short")
    if fr != first_root:
        raise ConsistencyProofError("consistency proof does not lead to the first root")
    if sr != second_root:
        raise ConsistencyProofError("consistency proof does not lead to the second root")
