"""The ordered byte key-value space the store runs on, and its in-memory implementation.

`Keyspace` is deliberately small so that it maps onto one LMDB named database: point reads,
ordered range scans with a limit, a record count, and writes that go through a
`WriteBatch`. A batch sees its own writes; `commit()` makes them part of the keyspace,
`abort()` forgets them. The store opens one batch per applied command (so a command's
changes apply atomically, together with the applied index). How durable a commit is, is the
implementation's business: the LMDB keyspace may run each batch as a nested transaction
inside the one write transaction the node opens for a whole `Ready` of applied entries,
and sync once (group commit).

The store is single-threaded: at most one batch is open at a time, and nothing reads the
keyspace around an open batch.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol


class KeyspaceReader(Protocol):
    """Read access to an ordered byte key-value space."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None."""
        ...

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records with `start <= key < end` (no bound when None), in key order."""
        ...

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records with `start <= key < end`, in descending key order (the
        last ones first): what ZREVRANGE and reverse stream reads walk."""
        ...


class WriteBatch(KeyspaceReader, Protocol):
    """A set of changes that applies atomically; reads through it see its own writes."""

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` at `key`, replacing any previous value."""
        ...

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        ...

    def clear(self) -> None:
        """Remove every record."""
        ...

    def commit(self) -> None:
        """Make the batch's changes part of the keyspace; the batch is then closed."""
        ...

    def abort(self) -> None:
        """Forget the batch's changes; the batch is then closed."""
        ...


class Keyspace(KeyspaceReader, Protocol):
    """An ordered byte key-value space with atomic write batches."""

    durable: bool
    """Whether committed batches survive a restart (on the node's disk, in the order they
    were committed, with whatever else the node writes there). The Raft driver then
    compacts its log without taking an image of the keyspace."""

    def count(self) -> int:
        """The number of records."""
        ...

    def begin(self) -> WriteBatch:
        """Open a write batch (at most one at a time)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose batches share one unit of durability (the store applies a whole
        Ready's entries in one). Each batch still commits or aborts on its own; if the
        block raises, the implementation may forget every batch committed in it."""
        ...


@contextmanager
def write_batch(keyspace: Keyspace) -> Iterator[WriteBatch]:
    """A batch of `keyspace` for the block: committed when the block ends, aborted when it
    raises (the exception goes on)."""
    batch = keyspace.begin()
    try:
        yield batch
    except BaseException:
        batch.abort()
        raise
    batch.commit()


class MemoryKeyspace:
    """A `Keyspace` in memory: a dict for point reads and a sorted key list for scans.

    Invariant: `_keys` is sorted and holds exactly the keys of `_data`. An open batch
    writes through to both and keeps an undo log, so reads during the batch see its
    writes and `abort()` restores the previous state.
    """

    durable = False

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._batch: _MemoryBatch | None = None

    def get(self, key: bytes) -> bytes | None:
        """The value stored at `key`, or None."""
        return self._data.get(key)

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records with `start <= key < end`, in key order."""
        keys = self._keys
        i = bisect_left(keys, start)
        stop = len(keys) if end is None else bisect_left(keys, end, lo=i)
        if limit is not None:
            stop = min(stop, i + limit)
        data = self._data
        return [(k, data[k]) for k in keys[i:stop]]

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Up to `limit` records with `start <= key < end`, in descending key order."""
        keys = self._keys
        lo = bisect_left(keys, start)
        stop = len(keys) if end is None else bisect_left(keys, end, lo=lo)
        first = lo if limit is None else max(lo, stop - limit)
        data = self._data
        return [(k, data[k]) for k in reversed(keys[first:stop])]

    def count(self) -> int:
        """The number of records."""
        return len(self._keys)

    def begin(self) -> WriteBatch:
        """Open a write batch; raises if one is already open."""
        if self._batch is not None:
            raise RuntimeError("a write batch is already open")
        self._batch = _MemoryBatch(self)
        return self._batch

    def transaction(self) -> AbstractContextManager[None]:
        """See `Keyspace.transaction`: memory has no durability to share, so a no-op."""
        return nullcontext()

    def _put(self, key: bytes, value: bytes) -> bytes | None:
        old = self._data.get(key)
        if old is None:
            insort(self._keys, key)
        self._data[key] = value
        return old

    def _delete(self, key: bytes) -> bytes | None:
        old = self._data.pop(key, None)
        if old is not None:
            del self._keys[bisect_left(self._keys, key)]
        return old

    def _restore(self, key: bytes, old: bytes | None) -> None:
        if old is None:
            self._delete(key)
        else:
            self._put(key, old)

    def _close(self, batch: _MemoryBatch) -> None:
        if self._batch is not batch:
            raise RuntimeError("write batch is not open")
        self._batch = None


class _MemoryBatch:
    """A write batch of a `MemoryKeyspace`: writes through, undo log for `abort()`."""

    def __init__(self, space: MemoryKeyspace) -> None:
        self._space = space
        self._undo: list[tuple[bytes, bytes | None]] = []
        self._cleared: tuple[dict[bytes, bytes], list[bytes]] | None = None

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
        self._undo.append((key, self._space._put(key, value)))

    def delete(self, key: bytes) -> None:
        old = self._space._delete(key)
        if old is not None:
            self._undo.append((key, old))

    def clear(self) -> None:
        space = self._space
        if self._cleared is None:
            self.abort_changes()
            self._cleared = (space._data, space._keys)
        self._undo.clear()
        space._data, space._keys = {}, []

    def commit(self) -> None:
        self._space._close(self)

    def abort(self) -> None:
        self.abort_changes()
        if self._cleared is not None:
            self._space._data, self._space._keys = self._cleared
        self._space._close(self)

    def abort_changes(self) -> None:
        """Undo the writes logged so far (the writes since the last `clear`)."""
        for key, old in reversed(self._undo):
            self._space._restore(key, old)
        self._undo.clear()
