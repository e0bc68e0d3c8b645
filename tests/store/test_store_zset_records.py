"""The sorted-set record layout: score order is byte order, and both families agree."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from cairn.store.db import Db
from cairn.store.keyspace import MemoryKeyspace, write_batch
from cairn.store.zset_records import (
    by_score,
    from_sortable,
    index_field,
    members,
    put_member,
    remove_member,
    score_of,
    sortable,
)

SCORES = st.floats(allow_nan=False)


@given(a=SCORES, b=SCORES)
def test_sortable_bytes_order_like_the_scores(a: float, b: float) -> None:
    assert (sortable(a) < sortable(b)) == (a < b)
    assert (sortable(a) == sortable(b)) == (a == b)
    assert from_sortable(sortable(a)) == a


def test_negative_zero_sorts_with_zero() -> None:
    assert sortable(-0.0) == sortable(0.0)
    assert math.copysign(1, from_sortable(sortable(-0.0))) == 1


@given(st.dictionaries(st.binary(max_size=4), SCORES, max_size=12), st.data())
def test_families_agree_with_a_model(model: dict[bytes, float], data: st.DataObject) -> None:
    space = MemoryKeyspace()
    with write_batch(space) as batch:
        db = Db(space, batch, 0)
        for member, score in model.items():
            put_member(db, b"z", member, 0.5, None)
            put_member(db, b"z", member, score, 0.5)
        gone = data.draw(st.sampled_from(sorted(model))) if model else None
        if gone is not None:
            remove_member(db, b"z", gone, model.pop(gone))
    db = Db(space, None, 0)
    expected = sorted(model.items(), key=lambda kv: (kv[1], kv[0]))
    assert list(by_score(db, b"z")) == expected
    assert list(by_score(db, b"z", reverse=True)) == expected[::-1]
    assert members(db, b"z") == sorted(model.items())
    for member, score in model.items():
        assert score_of(db, b"z", member) == score
    low = data.draw(SCORES)
    assert [m for m, _ in by_score(db, b"z", index_field(low))] == [
        m for m, s in expected if s >= low
    ]
