"""The order-statistics index against a sorted list: ranks, selections and the stored
counts after every addition and removal (a fan-out of 2 reaches every level with a few
dozen entries, a fan-out of 8 does with a few thousand)."""

from __future__ import annotations

import struct
from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.store import order_index
from cairn.store.db import Db
from cairn.store.keyspace import MemoryKeyspace, write_batch
from cairn.store.order_index import OrderIndex, level

SMALL = OrderIndex(b"e", b"f", b"c", bits=1, levels=4)
KEY = b"k"
ENTRIES = st.binary(max_size=3)


def _add(db: Db, index: OrderIndex, entry: bytes) -> None:
    db.put_field(KEY, index.entries + entry, b"")
    index.added(db, KEY, entry)


def _remove(db: Db, index: OrderIndex, entry: bytes) -> None:
    db.delete_field(KEY, index.entries + entry)
    index.removed(db, KEY, entry)


def expected_counts(index: OrderIndex, model: list[bytes]) -> dict[bytes, int]:
    """The count records a correct index holds for the sorted entries `model`."""
    counts: dict[bytes, int] = {}
    for lvl in range(1, index.levels + 1):
        pivots = [i for i, e in enumerate(model) if level(e, index.bits, index.levels) >= lvl]
        for at, i in enumerate(pivots):
            end = pivots[at + 1] if at + 1 < len(pivots) else len(model)
            counts[index.counts + bytes((lvl,)) + model[i]] = end - i
    return counts


def check(db: Db, index: OrderIndex, model: list[bytes], probes: list[bytes]) -> None:
    """Every count record, every selection and the ranks of `probes` and the entries."""
    stored = {
        field: struct.unpack(">Q", raw)[0]
        for field, raw in db.fields(KEY, index.counts, None, index.entries)
    }
    assert stored == expected_counts(index, model)
    for rank, entry in enumerate(model):
        assert index.select(db, KEY, len(model), rank) == entry
        assert index.rank(db, KEY, len(model), entry) == rank
    for probe in probes:
        assert index.rank(db, KEY, len(model), probe) == bisect_left(model, probe)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), ENTRIES), max_size=40),
    st.lists(ENTRIES, max_size=5),
)
def test_index_matches_a_sorted_list(ops: list[tuple[bool, bytes]], probes: list[bytes]) -> None:
    space = MemoryKeyspace()
    model: list[bytes] = []
    for add, entry in ops:
        present = entry in model
        with write_batch(space) as batch:
            db = Db(space, batch, 0)
            if add and not present:
                _add(db, SMALL, entry)
                model.insert(bisect_left(model, entry), entry)
            elif not add and present:
                _remove(db, SMALL, entry)
                model.remove(entry)
    check(Db(space, None, 0), SMALL, model, probes)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sets(ENTRIES, max_size=12), max_size=4),
    st.sampled_from([SMALL, OrderIndex(b"e", b"f", b"c", bits=2, levels=2)]),
)
def test_batches_count_like_single_additions(batches: list[set[bytes]], index: OrderIndex) -> None:
    space = MemoryKeyspace()
    model: list[bytes] = []
    for batch_entries in batches:
        fresh = [e for e in batch_entries if e not in model]
        with write_batch(space) as batch:
            db = Db(space, batch, 0)
            for entry in fresh:
                db.put_field(KEY, index.entries + entry, b"")
            index.added_many(db, KEY, fresh)
        model = sorted(model + fresh)
        check(Db(space, None, 0), index, model, [])


def test_a_wider_shape_on_a_few_thousand_entries() -> None:
    index = OrderIndex(b"e", b"f", b"c", bits=3, levels=3)
    space = MemoryKeyspace()
    model = sorted(b"%05d" % (i * 7919 % 3000) for i in range(3000))
    with write_batch(space) as batch:
        db = Db(space, batch, 0)
        for entry in model[::2] + model[1::2]:
            _add(db, index, entry)
        for entry in model[::3]:
            _remove(db, index, entry)
    kept = [e for i, e in enumerate(model) if i % 3]
    db = Db(space, None, 0)
    stored = {f: struct.unpack(">Q", r)[0] for f, r in db.fields(KEY, b"c", None, b"e")}
    assert stored == expected_counts(index, kept)
    assert any(f[1] == 3 for f in stored)  # the top level has pivots
    for rank in (0, 1, 1234, len(kept) // 2, len(kept) - 1):
        assert index.select(db, KEY, len(kept), rank) == kept[rank]
        assert index.rank(db, KEY, len(kept), kept[rank]) == rank
    assert index.rank(db, KEY, len(kept), b"01500x") == bisect_left(kept, b"01500x")


@settings(max_examples=60, deadline=None)
@given(
    st.sets(ENTRIES, max_size=40),
    st.lists(st.integers(min_value=0, max_value=1000), max_size=12),
    st.sampled_from([1, 2, 16]),
)
def test_selection_then_removal_matches_a_sorted_list(
    entries: set[bytes], draws: list[int], chunk: int
) -> None:
    """`select_path` finds the entry at a rank (reading spans a `chunk` of pivots at a
    time, from the nearer end), and the path it reports is the pivot holding the entry at
    each level; after `removed` every count, selection and rank stays what a sorted list
    says."""
    space = MemoryKeyspace()
    model = sorted(entries)
    with write_batch(space) as batch:
        db = Db(space, batch, 0)
        for entry in model:
            _add(db, SMALL, entry)
    original = order_index._CHUNK
    order_index._CHUNK = chunk
    try:
        for draw in draws:
            if not model:
                break
            rank = draw % len(model)
            with write_batch(space) as batch:
                db = Db(space, batch, 0)
                entry, path = SMALL.select_path(db, KEY, len(model), rank)
                assert entry == model[rank]
                db.delete_field(KEY, SMALL.entries + entry)
                for lvl, held in enumerate(path, 1):
                    if held is not None:
                        assert held[0] <= entry, (lvl, held, entry)
                SMALL.removed(db, KEY, entry)
            model.remove(entry)
            check(Db(space, None, 0), SMALL, model, [])
    finally:
        order_index._CHUNK = original


def test_selection_reads_long_spans_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans of many pivots (a fan-out of 8, a chunk of 2 pivots): a selection at every
    rank still finds its entry, walking from either end across chunk boundaries."""
    monkeypatch.setattr(order_index, "_CHUNK", 2)
    index = OrderIndex(b"e", b"f", b"c", bits=3, levels=2)
    space = MemoryKeyspace()
    model = sorted(b"%04d" % i for i in range(700))
    with write_batch(space) as batch:
        db = Db(space, batch, 0)
        for entry in model:
            _add(db, index, entry)
    db = Db(space, None, 0)
    for rank, entry in enumerate(model):
        assert index.select(db, KEY, len(model), rank) == entry


@settings(max_examples=60, deadline=None)
@given(st.sets(ENTRIES, max_size=40), st.integers(min_value=0, max_value=40))
def test_removing_the_first_entries_keeps_the_index(entries: set[bytes], pops: int) -> None:
    """ZPOPMIN's path: `removed_first` on the lowest entry, again and again."""
    space = MemoryKeyspace()
    model = sorted(entries)
    with write_batch(space) as batch:
        db = Db(space, batch, 0)
        for entry in model:
            _add(db, SMALL, entry)
    for _ in range(min(pops, len(model))):
        entry = model.pop(0)
        with write_batch(space) as batch:
            db = Db(space, batch, 0)
            db.delete_field(KEY, SMALL.entries + entry)
            SMALL.removed_first(db, KEY, entry)
        check(Db(space, None, 0), SMALL, model, [])



@settings(max_examples=60, deadline=None)
@given(
    st.sets(ENTRIES, min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 39), ENTRIES), max_size=30),
    st.sampled_from([SMALL, OrderIndex(b"e", b"f", b"c", bits=2, levels=2)]),
)
def test_moves_count_like_removal_then_addition(
    entries: set[bytes], moves: list[tuple[int, bytes]], index: OrderIndex
) -> None:
    """`moved` (a score change: one entry replaced by another) keeps every count record,
    rank and selection exact, whether either side is a pivot or not."""
    space = MemoryKeyspace()
    model = sorted(entries)
    with write_batch(space) as batch:
        db = Db(space, batch, 0)
        for entry in model:
            db.put_field(KEY, index.entries + entry, b"")
        index.added_many(db, KEY, model)
    for at, new in moves:
        old = model[at % len(model)]
        if new in model:
            continue
        with write_batch(space) as batch:
            db = Db(space, batch, 0)
            db.delete_field(KEY, index.entries + old)
            db.put_field(KEY, index.entries + new, b"")
            index.moved(db, KEY, old, new)
        model.remove(old)
        model.insert(bisect_left(model, new), new)
        check(Db(space, None, 0), index, model, [])
