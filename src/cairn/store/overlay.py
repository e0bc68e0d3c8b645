"""`OverlayKeyspace`: a keyspace that reads through to a real one and records its writes.

Theory of operation. A region's leader runs a script once, on its applied state, and
replicates what the script wrote (`cairn.store.scripting.effects`). It runs it against an
overlay: every read goes to the overlay's own writes first and to the base keyspace
after, so the script sees its own writes; nothing is written to the base. What the
overlay ends with is the script's effect at the record level: the puts and deletes of
``M``, ``F``, ``G`` records and of the scope's system records.

Ordered scans merge the two: the base rows of the interval, without those the overlay
has written (a put replaces, a delete hides), plus the overlay's puts, in key order. Each
overlay record in the interval hides at most one base row, so asking the base for
`limit` plus that many rows is always enough.

Counters. The scope's key counts (`Scope.count_key`, `Scope.slot_count_key`) are read
and rewritten by every write that creates or deletes a key. Replayed as values they
would be wrong as soon as another entry created a key elsewhere in the region between
the run and the apply, so the overlay keeps them as deltas against the base
(`counter_deltas`), which the apply adds to the values it finds then.

What the run depended on. The overlay names the Redis key behind every record it is
asked for (`touched`): the key of an ``M`` record, the key whose ``F`` or ``G`` prefix a
read or scan stays within. A read that no single key accounts for (a walk over the
metadata range, as KEYS or SCAN do; a system record other than the counters and the
deletion stamp) makes the run `untracked`: its outcome may depend on keys no
fingerprint covers, and the caller must not replicate it by its effects.

Pure: no I/O; one batch at a time, as `Keyspace` requires.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from cairn.store.keyspace import KeyspaceReader, WriteBatch
from cairn.store.layout import (
    FIELD_TAG,
    GARBAGE_TAG,
    META_TAG,
    decode_u64,
    encode_u64,
    prefix_end,
)

__all__ = ["OverlayKeyspace", "record_owner"]

_KEYED_TAGS = (FIELD_TAG[0], GARBAGE_TAG[0])
_PREFIX_HEAD = 7
"""Tag (1), slot (2) and key length (4) in front of the key in ``F`` and ``G`` records."""


def record_owner(internal: bytes) -> bytes | None:
    """The Redis key whose record `internal` is (an ``M``, ``F`` or ``G`` key naming
    its whole user key), or None."""
    if not internal:
        return None
    tag = internal[0]
    if tag == META_TAG[0]:
        return internal[3:] if len(internal) >= 3 else None
    if tag in _KEYED_TAGS and len(internal) >= _PREFIX_HEAD:
        length = int.from_bytes(internal[3:_PREFIX_HEAD], "big")
        if len(internal) >= _PREFIX_HEAD + length:
            return internal[_PREFIX_HEAD : _PREFIX_HEAD + length]
    return None


def _scan_owner(start: bytes, end: bytes | None) -> bytes | None:
    """The Redis key whose ``F`` or ``G`` records interval ``[start, end)`` stays
    within (None: it spans more than one key's records)."""
    if not start or start[0] not in _KEYED_TAGS or end is None:
        return None
    key = record_owner(start)
    if key is None:
        return None
    prefix = start[: _PREFIX_HEAD + len(key)]
    bound = prefix_end(prefix)
    return key if bound is not None and end <= bound else None


class OverlayKeyspace:
    """A `Keyspace` over `base` whose batches write only to the overlay (module
    docstring). `is_counter(key)`: whether a system record is a key count (kept as a
    delta); `tracked_system(key)`: whether a read of a system record is accounted for
    (the counters and the deletion stamp: what writes read to update).

    Invariant: `_keys` is sorted and holds exactly the keys of `_writes` (a value of None
    is a delete); `_base_counters` holds the base value of every counter written.
    """

    durable = False

    def __init__(
        self,
        base: KeyspaceReader,
        is_counter: Callable[[bytes], bool],
        tracked_system: Callable[[bytes], bool],
    ) -> None:
        self._base = base
        self._is_counter = is_counter
        self._tracked_system = tracked_system
        self._writes: dict[bytes, bytes | None] = {}
        self._keys: list[bytes] = []
        self._base_counters: dict[bytes, int] = {}
        self._batch: _OverlayBatch | None = None
        self.touched: set[bytes] = set()
        """The Redis keys whose records the run read or wrote."""
        self.untracked = False
        """Whether the run read something no single key accounts for (module docstring)."""

    # -- reads -------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The overlay's value of `key` if it wrote one, else the base's."""
        self._note(key)
        if key in self._writes:
            return self._writes[key]
        return self._base.get(key)

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records with `start <= key < end`, base and overlay merged."""
        self._note_scan(start, end)
        mine = self._range(start, end)
        extra = None if limit is None else limit + len(mine)
        rows = self._merge(self._base.scan(start, end, extra), mine)
        return rows if limit is None else rows[:limit]

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Like `scan`, in descending key order."""
        self._note_scan(start, end)
        mine = self._range(start, end)
        extra = None if limit is None else limit + len(mine)
        rows = self._merge(self._base.rscan(start, end, extra), mine)
        rows.reverse()
        return rows if limit is None else rows[:limit]

    def count(self) -> int:
        """Refused: no script asks for the record count of the keyspace."""
        raise NotImplementedError("an overlay keyspace does not count records")

    # -- batches -----------------------------------------------------------------------

    def begin(self) -> WriteBatch:
        """Open a batch writing to the overlay; raises if one is already open."""
        if self._batch is not None:
            raise RuntimeError("a write batch is already open")
        self._batch = _OverlayBatch(self)
        return self._batch

    def transaction(self) -> AbstractContextManager[None]:
        """Nothing to share: the overlay is in memory."""
        return nullcontext()

    # -- the outcome -------------------------------------------------------------------

    def record_writes(self) -> list[tuple[bytes, bytes | None]]:
        """The overlay's record writes but the counters, in key order (None: a delete)."""
        return [(k, self._writes[k]) for k in self._keys if k not in self._base_counters]

    def counter_deltas(self) -> list[tuple[bytes, int, bool]]:
        """(counter record, change against the base, whether the run deleted it) of every
        counter the run wrote, in key order."""
        found = []
        for key in sorted(self._base_counters):
            value = self._writes[key]
            delta = decode_u64(value) - self._base_counters[key]
            found.append((key, delta, value is None))
        return found

    def written_keys(self) -> list[bytes]:
        """The Redis keys whose metadata the run wrote (created or changed), sorted."""
        return sorted(
            {k[3:] for k, v in self._writes.items() if v is not None and k[:1] == META_TAG}
        )

    @property
    def wrote(self) -> bool:
        """Whether the run wrote anything."""
        return bool(self._writes)

    # -- internals ---------------------------------------------------------------------

    def _note(self, key: bytes) -> None:
        owner = record_owner(key)
        if owner is not None:
            self.touched.add(owner)
        elif not self._tracked_system(key):
            self.untracked = True

    def _note_scan(self, start: bytes, end: bytes | None) -> None:
        owner = _scan_owner(start, end)
        if owner is None:
            self.untracked = True
        else:
            self.touched.add(owner)

    def _range(self, start: bytes, end: bytes | None) -> list[tuple[bytes, bytes | None]]:
        keys = self._keys
        lo = bisect_left(keys, start)
        hi = len(keys) if end is None else bisect_left(keys, end, lo=lo)
        return [(k, self._writes[k]) for k in keys[lo:hi]]

    @staticmethod
    def _merge(
        base: list[tuple[bytes, bytes]], mine: list[tuple[bytes, bytes | None]]
    ) -> list[tuple[bytes, bytes]]:
        """Base rows (any order) not overridden, plus the overlay's puts: ascending."""
        if not mine:
            return sorted(base)
        written = {k for k, _ in mine}
        rows = [row for row in base if row[0] not in written]
        rows += [(k, v) for k, v in mine if v is not None]
        rows.sort()
        return rows

    def _write(self, key: bytes, value: bytes | None) -> None:
        owner = record_owner(key)
        if owner is not None:
            self.touched.add(owner)
        elif self._is_counter(key) and key not in self._base_counters:
            self._base_counters[key] = decode_u64(self._base.get(key))
        if key not in self._writes:
            insort(self._keys, key)
        self._writes[key] = value

    def _snapshot(self) -> tuple[dict[bytes, bytes | None], dict[bytes, int]]:
        return dict(self._writes), dict(self._base_counters)

    def _restore(self, saved: tuple[dict[bytes, bytes | None], dict[bytes, int]]) -> None:
        self._writes, self._base_counters = saved
        self._keys = sorted(self._writes)

    def _close(self, batch: _OverlayBatch) -> None:
        if self._batch is not batch:
            raise RuntimeError("write batch is not open")
        self._batch = None


class _OverlayBatch:
    """A write batch of an `OverlayKeyspace`: writes into the overlay; `abort` restores
    the overlay as it was when the batch began."""

    def __init__(self, space: OverlayKeyspace) -> None:
        self._space = space
        self._saved = space._snapshot()

    def get(self, key: bytes) -> bytes | None:
        return self._space.get(key)

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        return self._space.scan(start, end, limit)

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        return self._space.rscan(start, end, limit)

    def put(self, key: bytes, value: bytes) -> None:
        self._space._write(key, value)

    def delete(self, key: bytes) -> None:
        self._space._write(key, None)

    def clear(self) -> None:
        """Not recorded: clearing the whole keyspace is no record-level effect. The run
        is marked untracked, so it is replicated as the script instead (FLUSHALL in a
        script names no key, which marks it already)."""
        self._space.untracked = True

    def commit(self) -> None:
        self._space._close(self)

    def abort(self) -> None:
        self._space._restore(self._saved)
        self._space._close(self)


def encode_counter(value: int) -> bytes:
    """A counter's stored bytes (`encode_u64`), never below zero."""
    return encode_u64(max(0, value))
