"""MemoryKeyspace: ordered scans, and batches that commit or abort atomically (checked
against a dict model with hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.store.keyspace import MemoryKeyspace, write_batch


def test_scan_bounds_and_limit() -> None:
    space = MemoryKeyspace()
    batch = space.begin()
    for key in (b"b", b"a", b"d", b"c"):
        batch.put(key, key.upper())
    batch.commit()
    assert space.scan(b"") == [(b"a", b"A"), (b"b", b"B"), (b"c", b"C"), (b"d", b"D")]
    assert space.scan(b"b", b"d") == [(b"b", b"B"), (b"c", b"C")]
    assert space.scan(b"a", None, 1) == [(b"a", b"A")]
    assert space.scan(b"bb") == [(b"c", b"C"), (b"d", b"D")]
    assert space.count() == 4


def test_one_batch_at_a_time() -> None:
    space = MemoryKeyspace()
    batch = space.begin()
    with pytest.raises(RuntimeError):
        space.begin()
    batch.abort()
    space.begin().commit()


def test_write_batch_commits_the_block_or_aborts_it() -> None:
    space = MemoryKeyspace()
    with write_batch(space) as batch:
        batch.put(b"a", b"1")
    with pytest.raises(KeyError), write_batch(space) as batch:
        batch.put(b"a", b"2")
        batch.put(b"b", b"2")
        raise KeyError("refused")
    assert space.scan(b"") == [(b"a", b"1")]
    space.begin().commit()  # no batch was left open


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.binary(max_size=3), st.binary(max_size=3)),
        st.tuples(st.just("delete"), st.binary(max_size=3), st.just(b"")),
        st.tuples(st.just("clear"), st.just(b""), st.just(b"")),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.tuples(_OPS, st.booleans()), max_size=6))
def test_batches_match_a_dict_model(
    batches: list[tuple[list[tuple[str, bytes, bytes]], bool]],
) -> None:
    space, model = MemoryKeyspace(), dict[bytes, bytes]()
    for ops, commit in batches:
        pending = dict(model)
        batch = space.begin()
        for op, key, value in ops:
            if op == "put":
                batch.put(key, value)
                pending[key] = value
            elif op == "delete":
                batch.delete(key)
                pending.pop(key, None)
            else:
                batch.clear()
                pending.clear()
            assert batch.scan(b"") == sorted(pending.items())
        if commit:
            batch.commit()
            model = pending
        else:
            batch.abort()
        assert space.scan(b"") == sorted(model.items())
        assert space.count() == len(model)
        assert all(space.get(k) == v for k, v in model.items())
