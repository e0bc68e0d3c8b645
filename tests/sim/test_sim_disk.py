"""The simulated disk: synced writes survive a crash, unsynced ones may not."""

from __future__ import annotations

import random

from cairn.env import LogBatch
from cairn.raft.types import Entry, HardState, Snapshot, SnapshotMetadata
from cairn.sim.disk import SimDisk


def entries(lo: int, hi: int, term: int) -> tuple[Entry, ...]:
    return tuple(Entry(term=term, index=i) for i in range(lo, hi + 1))


def test_synced_writes_survive_a_crash() -> None:
    disk = SimDisk(random.Random(1), background_flush=0.0)
    disk.write(LogBatch(entries=entries(1, 3, 1), hard_state=HardState(1, 2, 0)), sync=True)
    disk.crash()
    state = disk.load()
    assert [e.index for e in state.entries] == [1, 2, 3]
    assert state.hard_state == HardState(1, 2, 0)


def test_unsynced_writes_are_lost_by_some_crashes_and_always_in_order() -> None:
    lost_any = False
    for seed in range(50):
        disk = SimDisk(random.Random(seed), background_flush=0.0)
        disk.write(LogBatch(entries=entries(1, 1, 1)), sync=True)
        for i in range(2, 6):
            disk.write(LogBatch(entries=entries(i, i, 1)), sync=False)
        lost = disk.crash()
        kept = [e.index for e in disk.load().entries]
        assert kept == list(range(1, 6 - lost))  # a prefix of the writes survives
        lost_any = lost_any or lost > 0
    assert lost_any


def test_a_sync_flushes_earlier_unsynced_writes() -> None:
    disk = SimDisk(random.Random(3), background_flush=0.0)
    disk.write(LogBatch(hard_state=HardState(2, 1, 0)), sync=False)
    disk.write(LogBatch(entries=entries(1, 1, 2)), sync=True)
    disk.crash()
    assert disk.load().hard_state == HardState(2, 1, 0)


def test_appending_truncates_the_overwritten_suffix() -> None:
    disk = SimDisk(random.Random(0))
    disk.write(LogBatch(entries=entries(1, 5, 1)), sync=True)
    disk.write(LogBatch(entries=entries(3, 3, 2)), sync=True)
    assert [(e.index, e.term) for e in disk.load().entries] == [(1, 1), (2, 1), (3, 2)]


def test_a_local_snapshot_keeps_later_entries_a_foreign_one_replaces_the_log() -> None:
    disk = SimDisk(random.Random(0))
    disk.write(LogBatch(entries=entries(1, 5, 1)), sync=True)
    local = Snapshot(b"s", SnapshotMetadata(index=3, term=1))
    disk.write(LogBatch(snapshot=local), sync=True)
    assert [e.index for e in disk.load().entries] == [4, 5]
    foreign = Snapshot(b"t", SnapshotMetadata(index=4, term=7))
    disk.write(LogBatch(snapshot=foreign), sync=True)
    state = disk.load()
    assert state.entries == ()
    assert state.snapshot == foreign
