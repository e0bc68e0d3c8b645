"""`LmdbLogStore`: restart recovery, the data directory's identity, snapshots and streaming."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest
from storage_helpers import SMALL_MAP, OpenStore

from cairn.env import DurableState, LogBatch
from cairn.raft.errors import (
    CompactedError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata
from cairn.storage import (
    DataDirMismatchError,
    FormatVersionError,
    LmdbEnv,
    LmdbLogStore,
    LmdbOptions,
    StartupError,
    UncoveredCompactionError,
)
from cairn.storage.lmdb_env import META_DB
from cairn.storage.log_store import CACHE_BYTES

CONF = ConfState(voters=(1, 2, 3))


def entries(lo: int, hi: int, term: int, payload: bytes = b"v") -> tuple[Entry, ...]:
    """Entries lo..hi (inclusive) of one term."""
    return tuple(
        Entry(term=term, index=i, data=payload + str(i).encode()) for i in range(lo, hi + 1)
    )


def test_restart_recovers_everything_synced(open_store: OpenStore) -> None:
    store = open_store()
    assert store.bootstrap(CONF)
    store.write(LogBatch(entries=entries(2, 50, 2), hard_state=HardState(2, 1, 40)), sync=True)
    store.write(LogBatch(entries=entries(45, 60, 3), hard_state=HardState(3, 2, 44)), sync=True)
    before = store.load()
    store.close()
    again = open_store()
    assert again.load() == before
    assert again.initial_state() == (HardState(3, 2, 44), CONF)
    assert (again.first_index(), again.last_index()) == (2, 60)
    assert again.term(44) == 2 and again.term(45) == 3
    assert not again.bootstrap(CONF), "bootstrap must leave an existing store alone"


def test_bootstrap_matches_memory_storage(open_store: OpenStore) -> None:
    store = open_store()
    store.bootstrap(CONF)
    ms = MemoryStorage.bootstrap(CONF)
    assert store.initial_state() == ms.initial_state()
    assert store.snapshot() == ms.snapshot()
    assert (store.first_index(), store.last_index()) == (ms.first_index(), ms.last_index())
    assert store.term(1) == ms.term(1)
    with pytest.raises(CompactedError):
        store.entries(1, 2)
    with pytest.raises(UnavailableError):
        store.term(2)


def test_entry_types_and_binary_data_round_trip(open_store: OpenStore) -> None:
    store = open_store(cache_entries=0)
    ents = (
        Entry(term=1, index=1, type=EntryType.CONF_CHANGE, data=bytes(range(256))),
        Entry(term=1, index=2, data=b""),
        Entry(term=2, index=3, data=b"\x00" * 5000),
    )
    store.write(LogBatch(entries=ents, hard_state=HardState(2, 0, 3)), sync=True)
    assert tuple(store.entries(1, 4)) == ents


def test_entries_respect_max_size_like_memory_storage(open_store: OpenStore) -> None:
    store = open_store(cache_entries=0)
    ms = MemoryStorage()
    batch = entries(1, 10, 1, payload=b"x" * 8)
    store.write(LogBatch(entries=batch, hard_state=HardState(1, 0, 0)), sync=False)
    ms.append(batch)
    for size in (None, 0, 9, 10, 25, 1000):
        assert store.entries(2, 9, size) == ms.entries(2, 9, size)


def test_the_entry_cache_is_bounded_in_bytes_and_older_entries_come_from_disk(
    open_store: OpenStore,
) -> None:
    """Entries of 1 MiB: the cache keeps about CACHE_BYTES of them however many
    `cache_entries` allows, and the older ones read back from LMDB."""
    store = open_store()
    big = tuple(Entry(term=1, index=i, data=bytes([i]) * (1 << 20)) for i in range(1, 11))
    for entry in big:
        store.write(LogBatch(entries=(entry,)), sync=False)
    cached = store._tail
    assert 1 <= len(cached) <= CACHE_BYTES >> 20
    assert store._tail_bytes == sum(len(e.data) for e in cached) <= CACHE_BYTES
    assert cached[-1] == big[-1]
    assert tuple(store.entries(1, 11)) == big


def test_overwrite_truncates_the_conflicting_suffix(open_store: OpenStore) -> None:
    store = open_store(cache_entries=4)
    store.write(LogBatch(entries=entries(1, 20, 1)), sync=False)
    store.write(LogBatch(entries=entries(8, 10, 2), hard_state=HardState(2, 0, 5)), sync=False)
    assert store.last_index() == 10
    assert [e.term for e in store.entries(6, 11)] == [1, 1, 2, 2, 2]
    with pytest.raises(UnavailableError):
        store.term(11)


def test_gap_in_appended_entries_is_refused_without_failing_the_store(
    open_store: OpenStore,
) -> None:
    store = open_store()
    store.write(LogBatch(entries=entries(1, 3, 1)), sync=False)
    with pytest.raises(UnavailableError, match="missing log entries"):
        store.write(LogBatch(entries=entries(6, 7, 1)), sync=False)
    with pytest.raises(ValueError, match="not contiguous"):
        store.write(LogBatch(entries=(Entry(1, 4), Entry(1, 6))), sync=False)
    store.write(LogBatch(entries=entries(4, 4, 1)), sync=True)
    assert store.last_index() == 4


def test_snapshot_matching_an_entry_keeps_the_suffix(open_store: OpenStore) -> None:
    store = open_store()
    store.write(LogBatch(entries=entries(1, 10, 1), hard_state=HardState(1, 0, 8)), sync=True)
    snap = Snapshot(b"state@6", SnapshotMetadata(6, 1, CONF))
    store.write(LogBatch(snapshot=snap), sync=True)
    assert (store.first_index(), store.last_index()) == (7, 10)
    assert store.load() == DurableState(HardState(1, 0, 8), snap, entries(7, 10, 1))


def test_snapshot_from_a_leader_replaces_a_conflicting_log(open_store: OpenStore) -> None:
    store = open_store()
    store.write(LogBatch(entries=entries(1, 10, 1), hard_state=HardState(1, 0, 3)), sync=True)
    snap = Snapshot(b"leader", SnapshotMetadata(8, 2, CONF))
    store.write(LogBatch(snapshot=snap, hard_state=HardState(2, 0, 8)), sync=True)
    assert (store.first_index(), store.last_index(), store.term(8)) == (9, 8, 2)
    stale = Snapshot(b"old", SnapshotMetadata(5, 1, CONF))
    store.write(LogBatch(snapshot=stale), sync=True)
    assert store.snapshot() == snap, "a stale snapshot is ignored, as the sim disk does"


def test_create_snapshot_and_compact_follow_memory_storage(open_store: OpenStore) -> None:
    store = open_store()
    store.write(LogBatch(entries=entries(1, 10, 1), hard_state=HardState(1, 0, 10)), sync=True)
    snap = store.create_snapshot(7, CONF, b"image")
    assert snap == Snapshot(b"image", SnapshotMetadata(7, 1, CONF))
    assert store.first_index() == 1, "creating a snapshot keeps the log"
    with pytest.raises(SnapshotOutOfDateError):
        store.create_snapshot(7, CONF, b"again")
    with pytest.raises(UnavailableError):
        store.create_snapshot(11, CONF, b"future")
    with pytest.raises(UncoveredCompactionError):
        store.compact(8)
    store.compact(5)
    assert (store.first_index(), store.term(5)) == (6, 1)
    with pytest.raises(CompactedError):
        store.compact(5)
    store.close()
    again = LmdbLogStore.open(store.env.path, 1, "test", LmdbOptions(map_size=SMALL_MAP))
    try:
        assert (again.first_index(), again.snapshot()) == (6, snap)
        assert again.load().entries == entries(8, 10, 1)
    finally:
        again.close()


def test_large_snapshot_is_chunked_and_streamed(open_store: OpenStore) -> None:
    store = open_store(chunk_size=1000)
    data = bytes(i % 251 for i in range(10_500))
    snap = Snapshot(data, SnapshotMetadata(5, 2, CONF))
    store.write(LogBatch(snapshot=snap, hard_state=HardState(2, 0, 5)), sync=True)
    chunks = list(store.snapshot_chunks())
    assert [len(c) for c in chunks] == [1000] * 10 + [500]
    assert b"".join(chunks) == data

    follower = LmdbLogStore.open(
        store.env.path.parent / "node2", 2, "test", LmdbOptions(map_size=SMALL_MAP)
    )
    try:
        writer = follower.snapshot_writer()
        for piece in store.snapshot_chunks():
            writer.write(piece)
        assert writer.finish(snap.metadata, HardState(2, 0, 5))
        assert follower.snapshot() == snap
        assert follower.initial_state() == (HardState(2, 0, 5), CONF)
        assert (follower.first_index(), follower.last_index()) == (6, 5)
        stale = follower.snapshot_writer()
        stale.write(b"old")
        assert not stale.finish(SnapshotMetadata(3, 1, CONF)), "a stale stream is dropped"
        assert follower.snapshot() == snap
    finally:
        follower.close()


def test_replaced_snapshot_stops_a_stream(open_store: OpenStore) -> None:
    store = open_store(chunk_size=4)
    store.write(LogBatch(snapshot=Snapshot(b"a" * 20, SnapshotMetadata(3, 1, CONF))), sync=False)
    stream = store.snapshot_chunks()
    assert next(stream) == b"aaaa"
    store.write(LogBatch(snapshot=Snapshot(b"b" * 20, SnapshotMetadata(9, 1, CONF))), sync=False)
    with pytest.raises(SnapshotOutOfDateError):
        next(stream)


def test_interrupted_stream_leaves_no_chunks_after_restart(open_store: OpenStore) -> None:
    store = open_store(chunk_size=4)
    writer = store.snapshot_writer()
    writer.write(b"partial data")
    store.close()
    again = open_store(chunk_size=4)
    with again.env.read() as txn, txn.cursor(db=again.env.state_db) as cur:
        keys = [bytes(k) for k in cur.iternext(values=False)]
    assert not [k for k in keys if k.startswith(b"chunk")]


def test_group_commit_stages_batches_in_one_transaction(open_store: OpenStore) -> None:
    store = open_store()
    with store.env.write() as wtx:
        store.stage(wtx, LogBatch(entries=entries(1, 3, 1)))
        store.stage(wtx, LogBatch(entries=entries(4, 5, 1), hard_state=HardState(1, 0, 5)))
        assert store.last_index() == 0, "the in-memory view changes only at commit"
    store.sync()
    assert store.last_index() == 5
    with pytest.raises(RuntimeError), store.env.write() as wtx:
        store.stage(wtx, LogBatch(entries=entries(6, 9, 1)))
        raise RuntimeError("the caller gives up")
    assert store.last_index() == 5
    assert store.env.failed is None, "an aborted transaction is not a disk failure"


def test_data_dir_of_another_node_or_cluster_is_refused(
    open_store: OpenStore, data_dir: Path
) -> None:
    open_store().close()
    with pytest.raises(DataDirMismatchError, match="belongs to node 1, not node 2"):
        LmdbLogStore.open(data_dir, 2, "test")
    with pytest.raises(DataDirMismatchError, match="belongs to cluster 'test', not 'other'"):
        LmdbLogStore.open(data_dir, 1, "other")


def test_newer_format_is_refused(open_store: OpenStore, data_dir: Path) -> None:
    open_store().close()
    raw = lmdb.open(str(data_dir), max_dbs=8)
    meta = raw.open_db(META_DB)
    with raw.begin(write=True) as txn:
        txn.put(b"format_version", (99).to_bytes(8, "big"), db=meta)
    raw.close()
    with pytest.raises(FormatVersionError, match="format 99, newer"):
        LmdbLogStore.open(data_dir, 1, "test")


def test_older_format_is_refused_with_the_way_forward(
    open_store: OpenStore, data_dir: Path
) -> None:
    open_store().close()
    raw = lmdb.open(str(data_dir), max_dbs=8)
    meta = raw.open_db(META_DB)
    with raw.begin(write=True) as txn:
        txn.put(b"format_version", (1).to_bytes(8, "big"), db=meta)
    raw.close()
    with pytest.raises(FormatVersionError, match=r"format 1, older .*`cairn ctl backup`"):
        LmdbLogStore.open(data_dir, 1, "test")


def test_foreign_lmdb_environment_is_not_adopted(data_dir: Path) -> None:
    raw = lmdb.open(str(data_dir), max_dbs=8)
    raw.open_db(b"somebody_elses")
    raw.close()
    with pytest.raises(DataDirMismatchError, match="without Cairn metadata"):
        LmdbLogStore.open(data_dir, 1, "test")


def test_second_open_of_a_data_dir_is_refused(open_store: OpenStore, data_dir: Path) -> None:
    open_store()
    with pytest.raises(StartupError, match="in use by another process"):
        LmdbEnv.open(data_dir, 1, "test", LmdbOptions(map_size=SMALL_MAP))
