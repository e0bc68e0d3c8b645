"""Tests of `MemoryStorage`, the reference `Storage` (etcd-raft's storage_test.go in spirit)."""

from __future__ import annotations

import random

import pytest

from cairn.raft.config import Config
from cairn.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from cairn.raft.raft import Raft
from cairn.raft.storage import BOOTSTRAP_INDEX, MemoryStorage, limit_size
from cairn.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

CS = ConfState(voters=(1, 2, 3))


def storage_with(*terms: int, offset: int = 3) -> MemoryStorage:
    """A storage whose snapshot is at `offset` (term 3) and whose entries follow it."""
    s = MemoryStorage()
    s.apply_snapshot(Snapshot(metadata=SnapshotMetadata(index=offset, term=3, conf_state=CS)))
    s.append([Entry(term=t, index=offset + 1 + i) for i, t in enumerate(terms)])
    return s


def test_bootstrap_starts_from_a_snapshot_holding_the_membership() -> None:
    s = MemoryStorage.bootstrap(CS)
    hs, cs = s.initial_state()
    assert cs == CS
    assert hs == HardState(term=BOOTSTRAP_INDEX, vote=0, commit=BOOTSTRAP_INDEX)
    assert (s.first_index(), s.last_index()) == (BOOTSTRAP_INDEX + 1, BOOTSTRAP_INDEX)
    assert s.term(BOOTSTRAP_INDEX) == BOOTSTRAP_INDEX
    assert s.snapshot().metadata.conf_state == CS


def test_a_new_storage_is_empty() -> None:
    s = MemoryStorage()
    assert s.initial_state() == (HardState(), ConfState())
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    assert s.snapshot().is_empty()


def test_hard_state_round_trips() -> None:
    s = MemoryStorage.bootstrap(CS)
    s.set_hard_state(HardState(term=2, vote=1, commit=0))
    assert s.initial_state()[0] == HardState(term=2, vote=1, commit=0)


@pytest.mark.parametrize(
    ("index", "outcome"),
    [(2, CompactedError), (3, 3), (4, 4), (5, 5), (6, UnavailableError)],
)
def test_term(index: int, outcome: int | type[Exception]) -> None:
    s = storage_with(4, 5)
    if isinstance(outcome, int):
        assert s.term(index) == outcome
    else:
        with pytest.raises(outcome):
            s.term(index)


def test_entries_bounds() -> None:
    s = storage_with(4, 5, 6)
    assert [e.index for e in s.entries(4, 7)] == [4, 5, 6]
    assert [e.index for e in s.entries(5, 6)] == [5]
    with pytest.raises(CompactedError):
        s.entries(3, 5)
    with pytest.raises(UnavailableError):
        s.entries(4, 8)


def test_entries_size_limit_returns_at_least_one() -> None:
    s = MemoryStorage()
    s.append([Entry(term=1, index=i, data=b"x" * 10) for i in range(1, 5)])
    assert len(s.entries(1, 5, max_size=0)) == 1
    assert len(s.entries(1, 5, max_size=25)) == 2
    assert len(s.entries(1, 5, max_size=40)) == 4
    assert limit_size([], 0) == []


def test_append_truncates_a_conflicting_suffix() -> None:
    s = storage_with(3, 4, 5)  # entries 4, 5, 6
    s.append([Entry(term=6, index=5), Entry(term=6, index=6), Entry(term=6, index=7)])
    assert [(e.index, e.term) for e in s.entries(4, 8)] == [(4, 3), (5, 6), (6, 6), (7, 6)]


def test_append_ignores_what_is_already_compacted() -> None:
    s = storage_with(4, 5)  # entries 4, 5
    s.append([Entry(term=3, index=2), Entry(term=3, index=3), Entry(term=4, index=4)])
    assert [(e.index, e.term) for e in s.entries(4, 5)] == [(4, 4)]
    s.append([Entry(term=3, index=1)])  # wholly compacted: a no-op
    assert s.last_index() == 4


def test_append_refuses_a_gap() -> None:
    s = storage_with(4)
    with pytest.raises(UnavailableError):
        s.append([Entry(term=4, index=6)])


def test_compact_keeps_the_term_of_the_compacted_index() -> None:
    s = storage_with(4, 5, 6)  # entries 4, 5, 6
    s.compact(5)
    assert (s.first_index(), s.last_index(), s.term(5)) == (6, 6, 5)
    with pytest.raises(CompactedError):
        s.compact(5)
    with pytest.raises(UnavailableError):
        s.compact(7)


def test_create_snapshot_and_apply_it_elsewhere() -> None:
    s = storage_with(4, 5)
    snap = s.create_snapshot(5, CS, b"image")
    assert snap.metadata == SnapshotMetadata(index=5, term=5, conf_state=CS)
    with pytest.raises(SnapshotOutOfDateError):
        s.create_snapshot(4, CS, b"")
    with pytest.raises(UnavailableError):
        s.create_snapshot(9, CS, b"")
    other = MemoryStorage()
    other.apply_snapshot(snap)
    assert (other.first_index(), other.last_index(), other.term(5)) == (6, 5, 5)
    assert other.snapshot().data == b"image"
    with pytest.raises(SnapshotOutOfDateError):
        other.apply_snapshot(snap)


def test_the_membership_at_the_applied_index_stands_until_a_newer_snapshot() -> None:
    # A durable state machine restarts past the snapshot: the conf changes in between
    # are applied already, so the core must start from the membership they made.
    s = storage_with(3, 3, 3)
    s.set_hard_state(HardState(term=3, commit=6))
    moved = ConfState(voters=(1, 2, 4))
    s.set_conf_state(moved)
    assert s.initial_state()[1] == moved
    core = Raft(Config(id=1, applied=5), s, random.Random(1))
    assert core.prs.config.voters.ids() == [1, 2, 4]
    s.compact(4)
    assert s.initial_state()[1] == moved
    s.apply_snapshot(Snapshot(metadata=SnapshotMetadata(index=9, term=4, conf_state=CS)))
    assert s.initial_state()[1] == CS
