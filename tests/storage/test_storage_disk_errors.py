"""A disk that refuses a write (full, failed fsync, failed commit) fails the store for good."""

from __future__ import annotations

import errno

import lmdb
import pytest
from storage_helpers import OpenStore

from cairn.env import LogBatch
from cairn.raft.types import Entry, HardState
from cairn.storage import DiskFailedError, failpoints
from cairn.storage.lmdb_env import FP_COMMIT, FP_SYNC


def batch(lo: int, hi: int, size: int = 100) -> LogBatch:
    """Entries lo..hi of term 1 with `size`-byte payloads, and a hard state committing lo - 1."""
    ents = tuple(Entry(term=1, index=i, data=b"x" * size) for i in range(lo, hi + 1))
    return LogBatch(entries=ents, hard_state=HardState(1, 0, lo - 1))


def test_disk_full_fails_the_store_and_every_later_write(open_store: OpenStore) -> None:
    store = open_store(map_size=256 << 10)
    store.write(batch(1, 10), sync=True)
    with pytest.raises(DiskFailedError, match="LMDB map is full") as full:
        for lo in range(11, 100_000, 50):
            store.write(batch(lo, lo + 49, size=2000), sync=True)
    last_good = store.last_index()
    assert "raise the storage map size" in str(full.value)
    with pytest.raises(DiskFailedError, match="failed earlier"):
        store.write(LogBatch(hard_state=HardState(1, 0, 1)), sync=False)
    with pytest.raises(DiskFailedError):
        store.sync()
    assert store.entries(1, 3)[0].index == 1, "what was committed can still be read"
    store.close()
    again = open_store(map_size=256 << 10)
    assert again.last_index() == last_good
    assert again.env.failed is None


def test_sync_failure_fails_the_store(open_store: OpenStore) -> None:
    store = open_store()
    store.write(batch(1, 5), sync=True)
    failpoints.enable(FP_SYNC, failpoints.Return(errno=errno.EIO), times=1)
    with pytest.raises(DiskFailedError, match="fsync failed") as failed:
        store.write(batch(6, 8), sync=True)
    cause = failed.value.__cause__
    assert type(cause) is lmdb.Error, "the failpoint raises what py-lmdb raises for EIO"
    assert str(cause) == "mdb_env_sync: Input/output error"
    assert failpoints.enabled() == [], "the failpoint fired once and switched itself off"
    with pytest.raises(DiskFailedError):
        store.write(batch(9, 9), sync=True)
    with pytest.raises(DiskFailedError):
        store.write(LogBatch(hard_state=HardState(2, 1, 5)), sync=False)


def test_disk_full_at_sync_names_the_cause(open_store: OpenStore) -> None:
    store = open_store()
    failpoints.enable(FP_SYNC, failpoints.Return(errno=errno.ENOSPC))
    with pytest.raises(DiskFailedError, match="no space left"):
        store.write(batch(1, 1), sync=True)


def test_commit_failure_leaves_nothing_behind(open_store: OpenStore) -> None:
    store = open_store()
    store.write(batch(1, 5), sync=True)
    with failpoints.scoped(FP_COMMIT, failpoints.Return()), pytest.raises(DiskFailedError):
        store.write(batch(6, 9), sync=True)
    assert store.last_index() == 5, "the in-memory view did not move"
    store.close()
    assert open_store().last_index() == 5, "the aborted transaction is not on disk"


def test_unsynced_writes_are_not_failed_by_a_sync_failpoint(open_store: OpenStore) -> None:
    store = open_store()
    failpoints.enable(FP_SYNC, failpoints.Return())
    store.write(batch(1, 3), sync=False)
    assert failpoints.hits(FP_SYNC) == 0
    assert store.env.failed is None
