"""A region's data in the shared keyspace: range scans of M and F records with boundaries
inside a slot (against a sorted-dict model), range snapshot, install and delete."""

from __future__ import annotations

from collections.abc import Iterator

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import SMALL_MAP

from cairn.meta.region import range_key
from cairn.storage import LmdbEnv, LmdbKeyspace, LmdbOptions
from cairn.storage.errors import RegionDataError
from cairn.storage.region_data import delete_range, install_range, range_snapshot
from cairn.store.layout import field_prefix, meta_key
from cairn.store.ranges import iter_fields, iter_meta, iter_scope
from cairn.store.scope import Scope

REGION = 7
APPLIED = Scope.region(REGION).applied_key
LIMIT = 24
"""Direct-key limit of the test keyspaces: long keys go to shared buckets."""

Model = dict[bytes, tuple[bytes, bytes]]
"""internal key -> (user key it belongs to (b"" for a system record), value)."""


@pytest.fixture(scope="module")
def spaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LmdbKeyspace, LmdbKeyspace]]:
    """Two keyspaces (a source node and a target node), each in its own environment."""
    envs = [
        LmdbEnv.open(tmp_path_factory.mktemp(name), 1, "test", LmdbOptions(map_size=SMALL_MAP))
        for name in ("source", "target")
    ]
    yield LmdbKeyspace(envs[0], LIMIT), LmdbKeyspace(envs[1], LIMIT)
    for env in envs:
        env.close()


def fill(space: LmdbKeyspace, model: Model) -> None:
    batch = space.begin()
    batch.clear()
    for key, (_, value) in model.items():
        batch.put(key, value)
    batch.commit()


def contents(space: LmdbKeyspace) -> dict[bytes, bytes]:
    return dict(space.scan(b""))


def build(keys: dict[bytes, list[bytes]], tag: bytes = b"") -> Model:
    """M records for every key, F records for its fields, and the region's system record."""
    model: Model = {APPLIED: (b"", b"\0" * 7 + b"\x09")}
    for key, fields in keys.items():
        model[meta_key(key)] = (key, tag + b"m" + key)
        for field in fields:
            model[field_prefix(key) + field] = (key, tag + b"f" + field)
    return model


def in_region(model: Model, rng: Scope) -> dict[bytes, bytes]:
    """The model's records of region `REGION` over `rng`."""
    return {
        k: v
        for k, (user, v) in model.items()
        if (not user and k == APPLIED) or (user and rng.contains(range_key(user)))
    }


tags = st.sampled_from([b"{a}", b"{b}", b"{c}", b""])
user_keys = st.builds(lambda t, s: t + s, tags, st.binary(min_size=1, max_size=30))
key_sets = st.dictionaries(user_keys, st.lists(st.binary(max_size=8), max_size=4), max_size=25)


@st.composite
def ranges(draw: st.DrawFn, keys: list[bytes]) -> Scope:
    """Bounds drawn near the keys: slot bounds, keys' own range keys, and bounds inside a
    slot between them (a range key's prefix, or just after one)."""
    points = [b"", b"\x00\x00"]
    for key in keys:
        rk = range_key(key)
        points += [rk[:2], rk, rk + b"\x00", rk[: 2 + len(rk[2:]) // 2]]
    a, b = draw(st.sampled_from(points)), draw(st.sampled_from(points))
    start, end = (a, b) if (not b or (a and a < b)) else (b, a)
    if end and start >= end:
        return Scope.region(REGION, start)
    return Scope.region(REGION, start, end)


@settings(max_examples=120, deadline=None)
@given(st.data(), key_sets)
def test_range_walks_match_a_sorted_model(
    spaces: tuple[LmdbKeyspace, LmdbKeyspace], data: st.DataObject, keys: dict[bytes, list[bytes]]
) -> None:
    source, _ = spaces
    model = build(keys)
    fill(source, model)
    rng = data.draw(ranges(list(keys)))
    want = in_region(model, rng)
    with source.view() as view:
        metas = list(iter_meta(view, rng))
        fields = list(iter_fields(view, rng))
        everything = list(iter_scope(view, rng))
    assert metas == sorted((k, v) for k, v in want.items() if k.startswith(b"M"))
    assert fields == sorted((k, v) for k, v in want.items() if k.startswith(b"F"))
    assert everything == sorted(want.items())


@settings(max_examples=60, deadline=None)
@given(st.data(), key_sets, key_sets, st.integers(1, 400), st.integers(1, 9))
def test_snapshot_install_and_delete_touch_exactly_the_region(
    spaces: tuple[LmdbKeyspace, LmdbKeyspace],
    data: st.DataObject,
    keys: dict[bytes, list[bytes]],
    other: dict[bytes, list[bytes]],
    chunk_bytes: int,
    txn_records: int,
) -> None:
    source, target = spaces
    model = build(keys)
    fill(source, model)
    stale = build(other, tag=b"old")
    fill(target, stale)
    rng = data.draw(ranges(list(keys) + list(other)))
    region = in_region(model, rng)
    frames = list(range_snapshot(source, rng, chunk_bytes))
    pieces = _resplit(b"".join(frames), data.draw(st.integers(1, 50)))
    loaded = install_range(target, rng, pieces, txn_records=txn_records)
    assert loaded == len(region)
    kept = {k: v for k, (_, v) in stale.items() if k not in in_region(stale, rng)}
    assert contents(target) == kept | region
    deleted = delete_range(source, rng, txn_records=txn_records)
    assert deleted == len(region)
    assert contents(source) == {k: v for k, (_, v) in model.items() if k not in region}


def _resplit(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_fields_of_a_boundary_slot_interleave_by_key_length(
    spaces: tuple[LmdbKeyspace, LmdbKeyspace],
) -> None:
    source, _ = spaces
    # In slot {a} the F order is by key length first: {a}z (short) < {a}bb < {a}yy < {a}ccc.
    keys = {b"{a}z": [b"1"], b"{a}bb": [b"2"], b"{a}yy": [b"3"], b"{a}ccc": [b"4"]}
    fill(source, build(keys))
    rng = Scope.region(REGION, range_key(b"{a}c"), range_key(b"{a}yz"))  # holds ccc and yy only
    with source.view() as view:
        got = [k for k, _ in iter_fields(view, rng)]
    assert got == [field_prefix(b"{a}yy") + b"3", field_prefix(b"{a}ccc") + b"4"]


def test_install_refuses_a_foreign_record_and_a_truncated_stream(
    spaces: tuple[LmdbKeyspace, LmdbKeyspace],
) -> None:
    _, target = spaces
    rng = Scope.region(REGION, range_key(b"{a}"), range_key(b"{a}m"))
    foreign = msgpack.packb([1, REGION, [meta_key(b"{a}z"), b"v"], True])
    with pytest.raises(RegionDataError, match="lies outside the region"):
        install_range(target, rng, [foreign])
    other_region = msgpack.packb([1, REGION + 1, [], True])
    with pytest.raises(RegionDataError, match="region 8"):
        install_range(target, rng, [other_region])
    truncated = msgpack.packb([1, REGION, [meta_key(b"{a}b"), b"v"], False])
    with pytest.raises(RegionDataError, match="ends before its last frame"):
        install_range(target, rng, [truncated])


def test_passing_over_a_foreign_key_stops_at_its_neighbour(
    spaces: tuple[LmdbKeyspace, LmdbKeyspace],
) -> None:
    source, _ = spaces
    # {a}yy's fields end just where {a}yz's begin: the seek past one must not skip the other.
    fill(source, build({b"{a}yy": [b"1", b"2"], b"{a}yz": [b"3"], b"{a}yz0": [b"4"]}))
    rng = Scope.region(REGION, range_key(b"{a}yz"))
    with source.view() as view:
        got = [k for k, _ in iter_fields(view, rng)]
    assert got == [field_prefix(b"{a}yz") + b"3", field_prefix(b"{a}yz0") + b"4"]
