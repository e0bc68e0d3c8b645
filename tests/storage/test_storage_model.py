"""Model-based test: `LmdbLogStore` behaves exactly like `MemoryStorage` plus the sim disk.

Hypothesis generates a sequence of operations that a Raft driver could issue (batches of
snapshot / entries / hard state, stale snapshots, local snapshot + compaction, restarts)
and applies each to the LMDB store and to two models: `SimDisk` (for `load()`, the
`LogStore` side) and `MemoryStorage` (for the six `Storage` reads, errors included).
After every step every observable answer must be identical.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cairn.env import LogBatch
from cairn.raft.errors import StorageError
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata
from cairn.sim.disk import SimDisk
from cairn.storage import LmdbLogStore, LmdbOptions

MAP_SIZE = 64 << 20


@dataclass
class Models:
    """The two reference implementations, fed the same operations as the store."""

    memory: MemoryStorage
    disk: SimDisk

    def max_term(self) -> int:
        """The largest term seen so far (hard state or log)."""
        last = self.memory.last_index()
        return max(self.memory.hard_state.term, self.memory.term(last))


def apply_batch_to_memory(ms: MemoryStorage, batch: LogBatch) -> None:
    """Apply a `LogBatch` to a `MemoryStorage` with the batch's documented semantics."""
    snap = batch.snapshot
    current = ms.snapshot().metadata.index
    stale = snap is not None and (
        snap.metadata.index < current
        or (snap.metadata.index == current and not ms.snapshot().is_empty())
    )
    if snap is not None and not stale:
        meta = snap.metadata
        offset = ms.first_index() - 1
        if offset < meta.index <= ms.last_index() and ms.term(meta.index) == meta.term:
            ms.create_snapshot(meta.index, meta.conf_state, snap.data)
            ms.compact(meta.index)
        else:
            ms.apply_snapshot(snap)
    ms.append(batch.entries)
    if batch.hard_state is not None:
        ms.set_hard_state(batch.hard_state)


Op = Callable[[LmdbLogStore, Models], LmdbLogStore]
"""One step: applied to the store and the models; returns the (maybe reopened) store."""


@st.composite
def batch_op(draw: st.DrawFn, models: Models) -> LogBatch:
    """A batch a driver could write now: it never truncates below the commit index."""
    ms = models.memory
    hs = ms.hard_state
    snap = draw(snapshot_for(models)) if draw(st.integers(0, 5)) == 0 else None
    first, last, commit = ms.first_index(), ms.last_index(), hs.commit
    prev_term = models.max_term()
    if snap is not None and not _stale(ms, snap):
        first, last, commit = _after_snapshot(ms, snap, commit)
        prev_term = max(prev_term, snap.metadata.term)
    entries: tuple[Entry, ...] = ()
    if draw(st.booleans()):
        start = draw(st.integers(max(first, commit + 1), last + 1))
        count = draw(st.integers(1, 6))
        entries = draw(entry_run(start, count, prev_term))
        last = start + count - 1
    hard_state = None
    top = max([prev_term, *(e.term for e in entries)])
    if top > hs.term or draw(st.booleans()):
        new_commit = draw(st.integers(min(commit, last), last))
        hard_state = HardState(term=top, vote=draw(st.integers(0, 3)), commit=new_commit)
    return LogBatch(snapshot=snap, entries=entries, hard_state=hard_state)


def _stale(ms: MemoryStorage, snap: Snapshot) -> bool:
    current = ms.snapshot()
    index = snap.metadata.index
    return index < current.metadata.index or (
        index == current.metadata.index and not current.is_empty()
    )


def _after_snapshot(ms: MemoryStorage, snap: Snapshot, commit: int) -> tuple[int, int, int]:
    """(first, last, commit) once `snap` is installed."""
    index, term = snap.metadata.index, snap.metadata.term
    keeps = ms.first_index() - 1 < index <= ms.last_index() and ms.term(index) == term
    last = ms.last_index() if keeps else index
    return index + 1, last, max(commit, index) if not keeps else commit


@st.composite
def snapshot_for(draw: st.DrawFn, models: Models) -> Snapshot:
    """A snapshot: stale, matching an entry (compaction), or from a leader (replacing the log)."""
    ms = models.memory
    commit, current = ms.hard_state.commit, ms.snapshot().metadata.index
    kind = draw(st.sampled_from(["stale", "match", "leader"]))
    event(f"snapshot {kind}")
    conf = ConfState(voters=tuple(sorted(draw(st.sets(st.integers(1, 5), min_size=1)))))
    data = draw(st.binary(max_size=40))
    if kind == "stale" and current > 0:
        index = draw(st.integers(1, current))
        return Snapshot(data, SnapshotMetadata(index, draw(st.integers(1, 5)), conf))
    if kind == "match" and current < commit:
        index = draw(st.integers(max(current + 1, ms.first_index()), commit))
        return Snapshot(data, SnapshotMetadata(index, ms.term(index), conf))
    index = draw(st.integers(max(commit, current + 1), ms.last_index() + 3))
    term = models.max_term() + draw(st.integers(0, 1))
    return Snapshot(data, SnapshotMetadata(index, term, conf))


@st.composite
def entry_run(draw: st.DrawFn, start: int, count: int, prev_term: int) -> tuple[Entry, ...]:
    """`count` contiguous entries from `start`, terms non-decreasing from `prev_term`."""
    out: list[Entry] = []
    term = prev_term + draw(st.integers(0, 1))
    for index in range(start, start + count):
        term += draw(st.integers(0, 1)) if draw(st.integers(0, 3)) == 0 else 0
        kind = draw(st.sampled_from([EntryType.NORMAL, EntryType.CONF_CHANGE]))
        out.append(
            Entry(term=max(term, 1), index=index, type=kind, data=draw(st.binary(max_size=24)))
        )
    return tuple(out)


def check_same(store: LmdbLogStore, models: Models, rng: random.Random) -> None:
    """Every observable answer of the store equals the models'."""
    ms = models.memory
    assert store.load() == models.disk.load()
    assert store.initial_state() == ms.initial_state()
    assert store.first_index() == ms.first_index()
    assert store.last_index() == ms.last_index()
    assert store.snapshot() == ms.snapshot()
    first, last = ms.first_index(), ms.last_index()
    for index in range(max(first - 3, 0), last + 3):
        assert _outcome(lambda i=index: store.term(i)) == _outcome(lambda i=index: ms.term(i))
    for _ in range(6):
        lo = rng.randint(max(first - 2, 0), last + 2)
        hi = rng.randint(lo, last + 3)
        size = rng.choice([None, 0, 10, 40])
        got = _outcome(lambda lo=lo, hi=hi, size=size: store.entries(lo, hi, size))
        want = _outcome(lambda lo=lo, hi=hi, size=size: ms.entries(lo, hi, size))
        assert got == want, (lo, hi, size)


def _outcome(fn: Callable[[], object]) -> object:
    """The value, or the type of the `StorageError` raised."""
    try:
        return fn()
    except StorageError as exc:
        return type(exc)


def run_ops(data: st.DataObject, cache_entries: int) -> None:
    """Drive a store and its models through a generated sequence of operations."""
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    models = Models(MemoryStorage(), SimDisk(random.Random(0), background_flush=0.0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node"

        def open_store() -> LmdbLogStore:
            return LmdbLogStore.open(
                path,
                1,
                "model",
                LmdbOptions(map_size=MAP_SIZE),
                chunk_size=7,
                cache_entries=cache_entries,
            )

        store = open_store()
        try:
            if data.draw(st.booleans()):
                conf = ConfState(voters=(1, 2, 3))
                assert store.bootstrap(conf)
                boot = MemoryStorage.bootstrap(conf)
                models.memory = boot
                models.disk.write(LogBatch(boot.snapshot(), (), boot.hard_state), sync=True)
            for _ in range(data.draw(st.integers(1, 25))):
                store = step(data, store, models, open_store)
                check_same(store, models, rng)
        finally:
            store.close()


def step(
    data: st.DataObject, store: LmdbLogStore, models: Models, reopen: Callable[[], LmdbLogStore]
) -> LmdbLogStore:
    """Apply one generated operation; returns the store (a new object after a restart)."""
    kind = data.draw(st.sampled_from(["batch"] * 6 + ["restart", "local_snapshot"]))
    event(kind)
    if kind == "restart":
        store.close()
        return reopen()
    if kind == "local_snapshot":
        local_snapshot(data, store, models)
        return store
    batch = data.draw(batch_op(models))
    store.write(batch, sync=data.draw(st.integers(0, 4)) == 0)
    models.disk.write(batch, sync=True)
    apply_batch_to_memory(models.memory, batch)
    return store


def local_snapshot(data: st.DataObject, store: LmdbLogStore, models: Models) -> None:
    """`create_snapshot` at a committed index, then maybe `compact` up to it."""
    ms = models.memory
    current, commit = ms.snapshot().metadata.index, ms.hard_state.commit
    lo = max(current + 1, ms.first_index())
    if lo > commit:
        return
    index = data.draw(st.integers(lo, commit))
    conf = ConfState(voters=(1, 2))
    payload = data.draw(st.binary(max_size=30))
    assert store.create_snapshot(index, conf, payload) == ms.create_snapshot(index, conf, payload)
    snap = ms.snapshot()
    models.disk.write(LogBatch(snapshot=snap), sync=True)
    if data.draw(st.booleans()):
        upto = data.draw(st.integers(ms.first_index(), index))
        store.compact(upto)
        ms.compact(upto)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_matches_models_with_entry_cache(data: st.DataObject) -> None:
    """With a small entry cache: reads come from the cache and from LMDB."""
    run_ops(data, cache_entries=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_matches_models_without_cache(data: st.DataObject) -> None:
    """With no cache: every read goes to LMDB."""
    run_ops(data, cache_entries=0)
