"""`LmdbLogStore`: a node's durable Raft log, hard state and snapshot, on LMDB.

Theory of operation. One object serves both sides of the Raft boundary: the driver
writes each Ready through `write(LogBatch, sync)` (the `LogStore` protocol of
`cairn.env`) and the core reads through the six methods of
`cairn.raft.storage.Storage`, with exactly `MemoryStorage`'s answers and named errors.

On disk (see `records` for the byte layouts):
- `raft_log`: one record per entry, key = big-endian u64 index; the keys are always the
  contiguous range `[first, last]`;
- `raft_state`: the hard state; the "first" record, the dummy entry `(first - 1, term)`
  that `term(first - 1)` answers from; the snapshot record; the snapshot's data in chunks.
Invariant: `dummy index <= snapshot index <= last`, so the entries after the snapshot are
all present and `load()` can hand back a `DurableState` (entries right after the snapshot).

A `write` runs in ONE LMDB write transaction (snapshot, then entries, then hard state,
as `LogBatch` prescribes) and, when `sync` is true, one fdatasync after the commit. The
in-memory view (indexes, hard state, a cache of the newest entries) changes only once the
transaction has committed. A disk failure fails the environment: see `lmdb_env`.

At open, `verify()` walks every record. LMDB never exposes a torn transaction (a crash
rolls back to the last committed one, and `sync` orders durability), so there is no
"torn unsynced tail" to forgive here: any checksum failure, gap, or a log shorter than the
hard state's commit index is real damage and the store refuses to open, naming it.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import lmdb

from cairn.env import DurableState, LogBatch
from cairn.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from cairn.raft.storage import bootstrap_snapshot, limit_size
from cairn.raft.types import (
    EMPTY_HARD_STATE,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from cairn.storage import records
from cairn.storage.errors import CorruptLogError, UncoveredCompactionError
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions, WriteTxn, open_built
from cairn.storage.raft_keys import RaftKeys
from cairn.storage.records import SnapshotRecord
from cairn.storage.snapshot_writer import SnapshotWriter

__all__ = [
    "DEFAULT_CACHE_ENTRIES",
    "DEFAULT_CHUNK_SIZE",
    "LmdbLogStore",
    "LogState",
    "SnapshotWriter",
]

DEFAULT_CHUNK_SIZE = 1 << 20
"""Bytes per stored snapshot chunk (and per chunk streamed by `snapshot_chunks`)."""

DEFAULT_CACHE_ENTRIES = 4096
"""How many of the newest entries are kept decoded in memory."""

CACHE_BYTES = 4 << 20
"""The most entry data the cache holds (per group), whatever `cache_entries` allows: 4096
write entries of 10 to 16 KB (variadic RPUSH/ZADD of 1,000 elements) held 40 to 65 MB
per region. Older entries are read from LMDB when a follower needs them."""

MAP_PASS_EVERY = 256
"""Entries a compaction deletes between two calls of the env's `map_pass_hook`."""
MAP_PASS_ENTRY_BYTES = 64 << 10
"""The most of the map deleting one entry may touch: LMDB reads a large entry's first
overflow page to free it, and the kernel maps the cached pages around a read fault too
(`fault_around_bytes`, 64 KiB by default)."""


@dataclass(frozen=True, slots=True)
class LogState:
    """The store's position, mirrored in memory. Invariant: `dummy_index <= last_index`."""

    hard_state: HardState = EMPTY_HARD_STATE
    dummy_index: int = 0
    dummy_term: int = 0
    last_index: int = 0
    snapshot: SnapshotRecord | None = None

    @property
    def snapshot_index(self) -> int:
        """The index the stored snapshot stands for (0 when there is none)."""
        return 0 if self.snapshot is None else self.snapshot.metadata.index


class LmdbLogStore:
    """The durable `LogStore` and the core's `Storage`, from the same LMDB records."""

    def __init__(
        self,
        env: LmdbEnv,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        keys: RaftKeys | None = None,
    ) -> None:
        """Load and `verify` the log held by `env`; raises `CorruptLogError` if damaged.

        `keys` places the group's records (default: the node's single group; a region's
        store is handed out by `NodeStore`).
        """
        if chunk_size <= 0 or cache_entries < 0:
            raise ValueError("chunk_size must be positive and cache_entries non-negative")
        self.env = env
        self.keys = keys if keys is not None else RaftKeys.single(env)
        self.chunk_size = chunk_size
        self.cache_entries = cache_entries
        self._state = self._read_state()
        self._tail: list[Entry] = []
        self._tail_bytes = 0
        """The sum of the cached entries' data lengths (`CACHE_BYTES`)."""
        self._snapshot_cache: Snapshot | None = None
        self.verify()
        self._next_generation = self._drop_orphan_chunks() + 1

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        node_id: int,
        cluster_id: str,
        options: LmdbOptions | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> LmdbLogStore:
        """Open the data directory and the log in it; closes the directory on failure."""
        return open_built(
            path,
            node_id,
            cluster_id,
            options,
            lambda env: cls(env, chunk_size=chunk_size, cache_entries=cache_entries),
        )

    def close(self) -> None:
        """Close the underlying environment (syncing it if healthy)."""
        self.env.close()

    @property
    def state(self) -> LogState:
        """The store's position (hard state, first/last index, snapshot record)."""
        return self._state

    # -- LogStore ------------------------------------------------------------------------

    def write(self, batch: LogBatch, sync: bool) -> None:
        """See `LogStore.write`: one transaction, then one fsync when `sync`."""
        if not batch.is_empty():
            with self.env.write() as wtx:
                self.stage(wtx, batch)
        if sync:
            self.env.sync()

    def stage(self, wtx: WriteTxn, batch: LogBatch) -> None:
        """Write `batch` inside a caller's transaction (group commit across stores).

        Several batches may be staged in one transaction; each sees the ones before it.
        """
        staged = wtx.staged.get(self)
        state = staged if isinstance(staged, LogState) else self._state
        snap: Snapshot | None = None
        if batch.snapshot is not None and not _is_stale(state, batch.snapshot.metadata):
            snap = batch.snapshot
            generation = self._take_generation()
            self._put_chunks(wtx.txn, generation, snap.data)
            state = self._stage_snapshot(wtx.txn, state, snap, generation)
        appended = _fresh_entries(state, batch.entries)
        if appended:
            state = self._stage_entries(wtx.txn, state, appended)
        if batch.hard_state is not None:
            wtx.txn.put(
                self.keys.hard_state_key,
                self.keys.encode_hard_state(batch.hard_state),
                db=self.keys.state_db,
            )
            state = replace(state, hard_state=batch.hard_state)
        wtx.staged[self] = state
        wtx.after_commit(lambda: self._committed(state, snap, appended))

    def load(self) -> DurableState:
        """See `LogStore.load`: the hard state, the snapshot and the entries after it."""
        state = self._state
        snap = self.snapshot()
        lo = state.snapshot_index + 1
        entries = self.entries(lo, state.last_index + 1) if lo <= state.last_index else []
        return DurableState(state.hard_state, snap, tuple(entries))

    def sync(self) -> None:
        """Make every committed write durable."""
        self.env.sync()

    # -- Storage (the core's reads) ------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """See `Storage.initial_state`."""
        state = self._state
        conf = ConfState() if state.snapshot is None else state.snapshot.metadata.conf_state
        return state.hard_state, conf

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """See `Storage.entries`."""
        state = self._state
        if lo <= state.dummy_index:
            raise CompactedError(f"index {lo} is compacted (first is {state.dummy_index + 1})")
        if hi > state.last_index + 1:
            raise UnavailableError(f"entries up to {hi - 1} requested, last is {state.last_index}")
        if lo >= hi:
            return []
        if self._tail and lo >= self._tail[0].index:
            start = self._tail[0].index
            return limit_size(self._tail[lo - start : hi - start], max_size)
        return self._read_entries(lo, hi, max_size)

    def term(self, index: int) -> int:
        """See `Storage.term`."""
        state = self._state
        if index < state.dummy_index:
            raise CompactedError(f"index {index} is compacted (first is {state.dummy_index + 1})")
        if index > state.last_index:
            raise UnavailableError(f"index {index} is past the last index {state.last_index}")
        if index == state.dummy_index:
            return state.dummy_term
        if self._tail and index >= self._tail[0].index:
            return self._tail[index - self._tail[0].index].term
        with self.env.read() as txn:
            value = txn.get(self.keys.index_key(index), db=self.keys.log_db)
        if value is None:
            raise CorruptLogError(self.keys.describe(f"log entry {index} is missing"))
        return records.entry_term(index, value)

    def first_index(self) -> int:
        """See `Storage.first_index`."""
        return self._state.dummy_index + 1

    def last_index(self) -> int:
        """See `Storage.last_index`."""
        return self._state.last_index

    def snapshot(self) -> Snapshot:
        """See `Storage.snapshot`: the stored snapshot with its data."""
        rec = self._state.snapshot
        if rec is None:
            return Snapshot()
        if self._snapshot_cache is None:
            data = b"".join(self.snapshot_chunks())
            self._snapshot_cache = Snapshot(data=data, metadata=rec.metadata)
        return self._snapshot_cache

    # -- MemoryStorage's other operations ------------------------------------------------

    def bootstrap(self, conf_state: ConfState) -> bool:
        """Found a group on a brand-new store, as `MemoryStorage.bootstrap` does (synced).

        Returns False, writing nothing, when the store already holds state (a restart).
        """
        if not self.load().is_empty():
            return False
        snap = bootstrap_snapshot(conf_state)
        hs = HardState(term=snap.metadata.term, commit=snap.metadata.index)
        self.write(LogBatch(snapshot=snap, hard_state=hs), sync=True)
        return True

    def create_snapshot(
        self, index: int, conf_state: ConfState, data: bytes, *, sync: bool = False
    ) -> Snapshot:
        """Record a snapshot at applied `index`, keeping the log (see `MemoryStorage`)."""
        state = self._state
        if index <= state.snapshot_index:
            raise SnapshotOutOfDateError(
                f"snapshot at {index} is not newer than {state.snapshot_index}"
            )
        if index > state.last_index:
            raise UnavailableError(f"snapshot index {index} is past the last index")
        snap = Snapshot(data=data, metadata=SnapshotMetadata(index, self.term(index), conf_state))
        with self.env.write() as wtx:
            generation = self._take_generation()
            self._put_chunks(wtx.txn, generation, data)
            new = self._put_snapshot_record(wtx.txn, state, snap.metadata, generation, data)
            wtx.after_commit(lambda: self._committed(new, snap, ()))
        if sync:
            self.env.sync()
        return snap

    def compact(self, compact_index: int, *, sync: bool = False) -> None:
        """Discard entries before `compact_index`, which becomes the dummy entry.

        Unlike `MemoryStorage`, the index may not pass the stored snapshot: a durable log
        may only forget what a durable snapshot covers (`UncoveredCompactionError`).
        """
        state = self._state
        if compact_index <= state.dummy_index:
            raise CompactedError(f"index {compact_index} is already compacted")
        if compact_index > state.last_index:
            raise UnavailableError(f"compact index {compact_index} is past the last index")
        if compact_index > state.snapshot_index:
            raise UncoveredCompactionError(
                f"compact index {compact_index} is past the snapshot at {state.snapshot_index}"
            )
        term = self.term(compact_index)
        with self.env.write() as wtx:
            self._delete_through(wtx.txn, compact_index)
            wtx.txn.put(
                self.keys.first_key,
                self.keys.encode_first(compact_index, term),
                db=self.keys.state_db,
            )
            new = replace(state, dummy_index=compact_index, dummy_term=term)
            wtx.after_commit(lambda: self._committed(new, None, ()))
        if sync:
            self.env.sync()

    # -- snapshot streaming --------------------------------------------------------------

    def snapshot_chunks(self) -> Iterator[bytes]:
        """The stored snapshot's data, chunk by chunk, each checked against its checksum.

        Each chunk is read in its own short transaction, so streaming a large snapshot to
        a slow follower pins no old pages; `SnapshotOutOfDateError` if a newer snapshot
        replaces this one meanwhile.
        """
        rec = self._state.snapshot
        if rec is None:
            return
        crc = 0
        for number in range(rec.chunks):
            if self._state.snapshot is not rec:
                raise SnapshotOutOfDateError(f"snapshot at {rec.metadata.index} was replaced")
            data = self._read_chunk(rec.generation, number)
            crc = zlib.crc32(data, crc)
            yield data
        if crc != rec.data_crc:
            raise CorruptLogError(f"snapshot at {rec.metadata.index}: data fails its checksum")

    def snapshot_writer(self) -> SnapshotWriter:
        """A writer that receives a snapshot's data in pieces and installs it at the end."""
        return SnapshotWriter(self, self._take_generation())

    def install_streamed(
        self,
        generation: int,
        metadata: SnapshotMetadata,
        size: int,
        chunks: int,
        crc: int,
        hard_state: HardState | None,
        sync: bool,
    ) -> bool:
        """Install chunks already written under `generation` (used by `SnapshotWriter`)."""
        rec = SnapshotRecord(metadata, generation, size, chunks, crc)
        installed = False
        with self.env.write() as wtx:
            state = self._state
            if not _is_stale(state, metadata):
                state = self._stage_snapshot_record(wtx.txn, state, rec)
                installed = True
            else:
                self._delete_generation(wtx.txn, generation)
            if hard_state is not None:
                wtx.txn.put(
                    self.keys.hard_state_key,
                    self.keys.encode_hard_state(hard_state),
                    db=self.keys.state_db,
                )
                state = replace(state, hard_state=hard_state)
            final = state
            wtx.after_commit(lambda: self._committed(final, None, (), snapshot_changed=installed))
        if sync:
            self.env.sync()
        return installed

    # -- verification --------------------------------------------------------------------

    def verify(self) -> None:
        """Check every record; raise `CorruptLogError` naming the first damage found."""
        try:
            self._verify()
        except CorruptLogError as exc:
            raise CorruptLogError(self.keys.describe(str(exc))) from exc

    def _verify(self) -> None:
        state = self._state
        last, last_term = self._verify_entries(state)
        if last != state.last_index:
            raise CorruptLogError(f"log ends at {last}, expected {state.last_index}")
        self._verify_snapshot(state)
        hs = state.hard_state
        if hs.commit > last:
            raise CorruptLogError(
                f"the log ends at index {last} but the hard state's commit index is "
                f"{hs.commit}: acknowledged entries are missing, and a node that forgets "
                "what it acknowledged breaks Raft; refusing to start"
            )
        if hs.term < last_term:
            raise CorruptLogError(
                f"the hard state's term {hs.term} is below the last entry's term {last_term}"
            )

    def _verify_entries(self, state: LogState) -> tuple[int, int]:
        """Walk the log: checksums, contiguity, non-decreasing terms. Returns (last, term)."""
        expected, prev_term = state.dummy_index + 1, state.dummy_term
        keys = self.keys
        with self.env.read() as txn, txn.cursor(db=keys.log_db) as cur:
            for key, value in keys.log_records(cur):
                index = keys.key_index(key)
                if index != expected:
                    what = "below the first index" if index < expected else "after a gap"
                    raise CorruptLogError(
                        keys.describe(
                            f"log entry {index} is {what}: expected entry {expected} next"
                        )
                    )
                entry = keys.decode_entry(index, value)
                if entry.term < prev_term:
                    raise CorruptLogError(
                        keys.describe(
                            f"log entry {index} has term {entry.term}, below its predecessor's "
                            f"{prev_term}"
                        )
                    )
                expected, prev_term = index + 1, entry.term
        return expected - 1, prev_term

    def _verify_snapshot(self, state: LogState) -> None:
        rec = state.snapshot
        if rec is None:
            if state.dummy_index != 0:
                raise CorruptLogError(
                    f"the log starts after {state.dummy_index} but no snapshot record exists"
                )
            return
        if not state.dummy_index <= rec.metadata.index <= state.last_index:
            raise CorruptLogError(
                f"snapshot at {rec.metadata.index} lies outside the log "
                f"[{state.dummy_index}, {state.last_index}]"
            )
        size = sum(len(chunk) for chunk in self.snapshot_chunks())
        if size != rec.size:
            raise CorruptLogError(
                f"snapshot at {rec.metadata.index} holds {size} bytes, expected {rec.size}"
            )

    # -- internals -----------------------------------------------------------------------

    def _read_state(self) -> LogState:
        keys = self.keys
        db = keys.state_db
        with self.env.read() as txn:
            hs_value = txn.get(keys.hard_state_key, db=db)
            first_value = txn.get(keys.first_key, db=db)
            snap_value = txn.get(keys.snapshot_key, db=db)
            with txn.cursor(db=keys.log_db) as cur:
                last_key = keys.last_log_key(cur)
        try:
            hs = EMPTY_HARD_STATE if hs_value is None else keys.decode_hard_state(hs_value)
            dummy_index, dummy_term = (
                (0, 0) if first_value is None else keys.decode_first(first_value)
            )
            snap = None if snap_value is None else keys.decode_snapshot(snap_value)
        except CorruptLogError as exc:
            raise CorruptLogError(keys.describe(str(exc))) from exc
        last = dummy_index if last_key is None else keys.key_index(last_key)
        return LogState(hs, dummy_index, dummy_term, max(last, dummy_index), snap)

    def _read_entries(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        out: list[Entry] = []
        size = 0
        keys = self.keys
        with self.env.read() as txn, txn.cursor(db=keys.log_db) as cur:
            found = cur.set_key(keys.index_key(lo))
            for key, value in cur.iternext() if found else ():
                if not keys.owns(key):
                    break
                index = keys.key_index(key)
                if index >= hi:
                    break
                if index != lo + len(out):
                    raise CorruptLogError(keys.describe(f"log entry {lo + len(out)} is missing"))
                entry = keys.decode_entry(index, value)
                size += len(entry.data)
                if out and max_size is not None and size > max_size:
                    break
                out.append(entry)
        if not out:
            raise CorruptLogError(keys.describe(f"log entry {lo} is missing"))
        return out

    def _stage_snapshot(
        self, txn: lmdb.Transaction[bytes], state: LogState, snap: Snapshot, generation: int
    ) -> LogState:
        return self._put_snapshot_record(
            txn, state, snap.metadata, generation, snap.data, trim=True
        )

    def _put_snapshot_record(
        self,
        txn: lmdb.Transaction[bytes],
        state: LogState,
        meta: SnapshotMetadata,
        generation: int,
        data: bytes,
        *,
        trim: bool = False,
    ) -> LogState:
        chunks = -(-len(data) // self.chunk_size)
        rec = SnapshotRecord(meta, generation, len(data), chunks, zlib.crc32(data))
        if trim:
            return self._stage_snapshot_record(txn, state, rec)
        self._replace_snapshot_record(txn, state, rec)
        return replace(state, snapshot=rec)

    def _stage_snapshot_record(
        self, txn: lmdb.Transaction[bytes], state: LogState, rec: SnapshotRecord
    ) -> LogState:
        """Install `rec` and cut the log as `LogBatch` says (keep a matching suffix only)."""
        index, term = rec.metadata.index, rec.metadata.term
        keeps_suffix = state.dummy_index <= index <= state.last_index and (
            self._term_in(txn, state, index) == term
        )
        if keeps_suffix:
            self._delete_through(txn, index)
            last = state.last_index
        else:
            self.keys.clear_log(txn)
            last = index
        txn.put(self.keys.first_key, self.keys.encode_first(index, term), db=self.keys.state_db)
        self._replace_snapshot_record(txn, state, rec)
        return replace(state, dummy_index=index, dummy_term=term, last_index=last, snapshot=rec)

    def _replace_snapshot_record(
        self, txn: lmdb.Transaction[bytes], state: LogState, rec: SnapshotRecord
    ) -> None:
        if state.snapshot is not None and state.snapshot.generation != rec.generation:
            self._delete_generation(txn, state.snapshot.generation)
        txn.put(self.keys.snapshot_key, self.keys.encode_snapshot(rec), db=self.keys.state_db)

    def _term_in(self, txn: lmdb.Transaction[bytes], state: LogState, index: int) -> int:
        if index == state.dummy_index:
            return state.dummy_term
        value = txn.get(self.keys.index_key(index), db=self.keys.log_db)
        if value is None:
            raise CorruptLogError(self.keys.describe(f"log entry {index} is missing"))
        return records.entry_term(index, value)

    def _stage_entries(
        self, txn: lmdb.Transaction[bytes], state: LogState, entries: tuple[Entry, ...]
    ) -> LogState:
        first = entries[0].index
        if first > state.last_index + 1:
            raise UnavailableError(
                f"missing log entries: last {state.last_index}, appending at {first}"
            )
        if first <= state.last_index:
            self._delete_from(txn, first)
        keys = self.keys
        with txn.cursor(db=keys.log_db) as cur:
            cur.putmulti(
                ((keys.index_key(e.index), keys.encode_entry(e)) for e in entries),
                # Appending (no B-tree search) is valid only at the end of the database.
                append=keys.end is None,
            )
        return replace(state, last_index=entries[-1].index)

    def _delete_from(self, txn: lmdb.Transaction[bytes], index: int) -> None:
        """Delete every entry at or after `index`."""
        keys = self.keys
        with txn.cursor(db=keys.log_db) as cur:
            if cur.set_range(keys.index_key(index)) and keys.owns(cur.key()):
                # After a delete the cursor sits on the next record; key() is b"" past the end.
                while cur.delete() and keys.owns(cur.key()):
                    pass

    def _delete_through(self, txn: lmdb.Transaction[bytes], index: int) -> None:
        """Delete every entry at or before `index`.

        A compaction drops thousands of entries at once on the event loop, so the loop
        only compares keys: a group's log keys are its prefix and a fixed-width big-endian
        index, so the keys from the prefix up to `index`'s are exactly those entries. LMDB
        still reads the first page of each large entry to free it, which maps its
        neighbours too: the env's `map_pass_hook` hears of it every `MAP_PASS_EVERY`."""
        last = self.keys.index_key(index)
        hook, deleted = self.env.map_pass_hook, 0
        with txn.cursor(db=self.keys.log_db) as cur:
            present = cur.set_range(self.keys.prefix)
            while present and (key := cur.key()) and key <= last:
                present = cur.delete()
                deleted += 1
                if hook is not None and deleted % MAP_PASS_EVERY == 0:
                    hook(MAP_PASS_EVERY * MAP_PASS_ENTRY_BYTES)

    def _take_generation(self) -> int:
        generation = self._next_generation
        self._next_generation += 1
        return generation

    def _put_chunks(self, txn: lmdb.Transaction[bytes], generation: int, data: bytes) -> None:
        keys = self.keys
        for number, start in enumerate(range(0, len(data), self.chunk_size)):
            piece = data[start : start + self.chunk_size]
            txn.put(
                keys.chunk_key(generation, number),
                keys.encode_chunk(generation, number, piece),
                db=keys.state_db,
            )

    def _read_chunk(self, generation: int, number: int) -> bytes:
        with self.env.read() as txn:
            value = txn.get(self.keys.chunk_key(generation, number), db=self.keys.state_db)
        if value is None:
            raise CorruptLogError(
                self.keys.describe(f"snapshot chunk {number} (generation {generation}) is missing")
            )
        try:
            return self.keys.decode_chunk(generation, number, value)
        except CorruptLogError as exc:
            raise CorruptLogError(self.keys.describe(str(exc))) from exc

    def _delete_generation(self, txn: lmdb.Transaction[bytes], generation: int) -> None:
        with txn.cursor(db=self.keys.state_db) as cur:
            cur.set_range(self.keys.chunk_key(generation, 0))
            while cur.key():
                fields = self.keys.chunk_key_fields(cur.key())
                if fields is None or fields[0] != generation:
                    break
                cur.delete()

    def _drop_orphan_chunks(self) -> int:
        """Delete chunks of no installed snapshot (an interrupted stream); the max generation."""
        current = -1 if self._state.snapshot is None else self._state.snapshot.generation
        orphans: set[int] = set()
        with self.env.read() as txn, txn.cursor(db=self.keys.state_db) as cur:
            present = cur.set_range(self.keys.chunk_prefix)
            while present:
                fields = self.keys.chunk_key_fields(cur.key())
                if fields is None:
                    break
                if fields[0] != current:
                    orphans.add(fields[0])
                present = cur.next()
        # Inside an open transaction (a region store opened while a group commit is being
        # staged) the orphans wait for the next open.
        if orphans and self.env.failed is None and not self.env.writing:
            with self.env.write() as wtx:
                for generation in sorted(orphans):
                    self._delete_generation(wtx.txn, generation)
        return max([current, 0, *orphans])

    def _committed(
        self,
        state: LogState,
        snap: Snapshot | None,
        appended: tuple[Entry, ...],
        *,
        snapshot_changed: bool = False,
    ) -> None:
        """Adopt a committed state: the new position, snapshot cache and entry cache."""
        if snap is not None or snapshot_changed:
            self._snapshot_cache = snap
        # The tail is in ascending index order, so its ends tell whether a filter (a copy
        # of up to `cache_entries` entries, costly on every write) would drop anything.
        tail = self._tail
        if tail and (tail[0].index <= state.dummy_index or tail[-1].index > state.last_index):
            self._tail = [e for e in tail if state.dummy_index < e.index <= state.last_index]
        if appended and self._tail and self._tail[-1].index >= appended[0].index:
            self._tail = [e for e in self._tail if e.index < appended[0].index]
        if appended and self._tail and self._tail[-1].index + 1 != appended[0].index:
            self._tail = []
        if self._tail is not tail:  # rebuilt (rare): count its bytes again
            self._tail_bytes = sum(len(e.data) for e in self._tail)
        if appended:
            self._tail.extend(appended)
            self._tail_bytes += sum(len(e.data) for e in appended)
        self._trim_tail()
        self._state = state

    def _trim_tail(self) -> None:
        """Keep at most `cache_entries` entries and `CACHE_BYTES` of entry data (beyond
        it, the newest entry alone), dropping the oldest."""
        tail = self._tail
        drop = 0
        while len(tail) - drop > self.cache_entries or (
            self._tail_bytes > CACHE_BYTES and len(tail) - drop > 1
        ):
            self._tail_bytes -= len(tail[drop].data)
            drop += 1
        if drop:
            del tail[:drop]


def _is_stale(state: LogState, meta: SnapshotMetadata) -> bool:
    """Whether a snapshot is no newer than the stored one (then a write ignores it)."""
    current = state.snapshot_index
    return meta.index < current or (meta.index == current and state.snapshot is not None)


def _fresh_entries(state: LogState, entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
    """The entries of a batch past the dummy entry; checks the batch is contiguous."""
    for prev, cur in itertools.pairwise(entries):
        if cur.index != prev.index + 1:
            raise ValueError(f"batch entries are not contiguous: {prev.index} then {cur.index}")
    skip = state.dummy_index + 1 - entries[0].index if entries else 0
    return entries[max(skip, 0) :]
