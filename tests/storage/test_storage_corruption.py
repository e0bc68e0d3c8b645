"""Damage to a closed data directory is detected at open, and the message names it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest
from storage_helpers import SMALL_MAP

from cairn.env import LogBatch
from cairn.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from cairn.storage import CorruptLogError, LmdbLogStore, LmdbOptions
from cairn.storage.lmdb_env import LOG_DB, STATE_DB
from cairn.storage.records import HARD_STATE_KEY, index_key

MARKER = b"<<entry-seven-payload>>"


def build(data_dir: Path, commit: int = 8) -> None:
    """A closed store: entries 1..10 (entry 7 carries MARKER), a snapshot, a hard state."""
    store = LmdbLogStore.open(data_dir, 1, "test", LmdbOptions(map_size=SMALL_MAP), chunk_size=8)
    ents = tuple(
        Entry(term=1, index=i, data=MARKER if i == 7 else b"d%d" % i) for i in range(1, 11)
    )
    store.write(LogBatch(entries=ents, hard_state=HardState(1, 1, commit)), sync=True)
    snap = Snapshot(b"snapshot-image-data", SnapshotMetadata(2, 1, ConfState(voters=(1,))))
    store.write(LogBatch(snapshot=snap), sync=True)
    store.close()


def edit(
    data_dir: Path, db_name: bytes, change: Callable[[lmdb.Transaction[bytes], object], None]
) -> None:
    """Change the raw records of one named database behind the store's back."""
    raw = lmdb.open(str(data_dir), max_dbs=8)
    db = raw.open_db(db_name)
    with raw.begin(write=True) as txn:
        change(txn, db)
    raw.close()


def reopen(data_dir: Path) -> LmdbLogStore:
    """Open the store again (the tests expect this to raise)."""
    return LmdbLogStore.open(data_dir, 1, "test", LmdbOptions(map_size=SMALL_MAP))


def test_undamaged_store_opens(data_dir: Path) -> None:
    build(data_dir)
    reopen(data_dir).close()


def test_bit_rot_in_an_entry_is_detected(data_dir: Path) -> None:
    build(data_dir)
    path = data_dir / "data.mdb"
    image = bytearray(path.read_bytes())
    at = image.find(MARKER)
    assert at >= 0
    while at >= 0:  # copy-on-write may have left older copies of the page: flip them all
        image[at + 3] ^= 0x04
        at = image.find(MARKER, at + 1)
    path.write_bytes(bytes(image))
    with pytest.raises(CorruptLogError, match="log entry 7 fails its checksum"):
        reopen(data_dir)


def test_entry_moved_to_another_index_is_detected(data_dir: Path) -> None:
    build(data_dir)

    def move(txn: lmdb.Transaction[bytes], db: object) -> None:
        value = txn.get(index_key(5), db=db)
        assert value is not None
        txn.put(index_key(6), value, db=db)

    edit(data_dir, LOG_DB, move)
    with pytest.raises(CorruptLogError, match="log entry 6 fails its checksum"):
        reopen(data_dir)


def test_damaged_hard_state_is_detected(data_dir: Path) -> None:
    build(data_dir)

    def flip(txn: lmdb.Transaction[bytes], db: object) -> None:
        value = bytearray(txn.get(HARD_STATE_KEY, db=db) or b"")
        value[-1] ^= 0x01
        txn.put(HARD_STATE_KEY, bytes(value), db=db)

    edit(data_dir, STATE_DB, flip)
    with pytest.raises(CorruptLogError, match="hard state record fails its checksum"):
        reopen(data_dir)


def test_damaged_snapshot_chunk_is_detected(data_dir: Path) -> None:
    build(data_dir)

    def flip(txn: lmdb.Transaction[bytes], db: object) -> None:
        with txn.cursor(db=db) as cur:
            assert cur.set_range(b"chunk")
            key, value = bytes(cur.key()), bytearray(cur.value())
        value[-1] ^= 0x10
        txn.put(key, bytes(value), db=db)

    edit(data_dir, STATE_DB, flip)
    with pytest.raises(CorruptLogError, match=r"snapshot chunk 0 \(generation \d+\) fails"):
        reopen(data_dir)


def test_log_shorter_than_the_commit_index_is_refused(data_dir: Path) -> None:
    build(data_dir, commit=8)

    def truncate(txn: lmdb.Transaction[bytes], db: object) -> None:
        for index in range(6, 11):
            txn.delete(index_key(index), db=db)

    edit(data_dir, LOG_DB, truncate)
    with pytest.raises(CorruptLogError, match=r"commit index is 8.*forgets what it acknowledged"):
        reopen(data_dir)


def test_gap_in_the_log_is_detected(data_dir: Path) -> None:
    build(data_dir)
    edit(data_dir, LOG_DB, lambda txn, db: txn.delete(index_key(5), db=db))
    with pytest.raises(CorruptLogError, match="log entry 6 is after a gap: expected entry 5"):
        reopen(data_dir)


def test_failed_open_releases_the_data_dir(data_dir: Path) -> None:
    build(data_dir)
    edit(data_dir, LOG_DB, lambda txn, db: txn.delete(index_key(5), db=db))
    for _ in range(2):  # the lock and the environment were released by the first failure
        with pytest.raises(CorruptLogError):
            reopen(data_dir)
