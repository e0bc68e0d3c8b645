"""Region ranges, epochs, split and merge, and the routing table's reconciliation."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.meta.region import (
    Peer,
    Region,
    RegionEpoch,
    merge_regions,
    range_key,
    slot_bound,
    split_region,
)
from cairn.shard.region_map import RegionMap
from cairn.store.slot import SLOT_COUNT, key_slot

PEERS = (Peer(1, 1), Peer(2, 2), Peer(3, 3))


def test_range_keys_order_by_slot_then_key() -> None:
    keys = [b"a", b"b", b"{user}x", b"{user}y", b"zzz"]
    ordered = sorted(keys, key=range_key)
    assert [key_slot(k) for k in ordered] == sorted(key_slot(k) for k in keys)
    assert range_key(b"{user}x") < range_key(b"{user}y")


def test_slots_of_a_region() -> None:
    whole = Region(1, slot_bound(100), slot_bound(200))
    assert whole.slots() == range(100, 200) == whole.whole_slots()
    inside = Region(2, slot_bound(100) + b"k", slot_bound(200) + b"k")
    assert inside.slots() == range(100, 201)
    assert inside.whole_slots() == range(101, 200)
    assert Region(3).slots() == range(SLOT_COUNT)


def test_split_bumps_both_versions_and_keeps_nodes() -> None:
    region = Region(1, b"", b"", RegionEpoch(3, 5), PEERS)
    left, right = split_region(region, slot_bound(8192), 9, (11, 12, 13))
    assert (left.id, left.start, left.end) == (1, b"", slot_bound(8192))
    assert (right.id, right.start, right.end) == (9, slot_bound(8192), b"")
    assert left.epoch == right.epoch == RegionEpoch(4, 5)
    assert [p.node_id for p in right.peers] == [1, 2, 3]
    assert [p.id for p in right.peers] == [11, 12, 13]
    with pytest.raises(ValueError):
        split_region(region, b"", 9, (11, 12, 13))
    with pytest.raises(ValueError):
        split_region(left, slot_bound(9000), 10, (1, 2, 3))


def test_merge_needs_neighbours_and_outranks_both() -> None:
    left, right = split_region(Region(1, peers=PEERS), slot_bound(10), 2, (4, 5, 6))
    right = right.with_peers(right.peers[:2])  # conf_ver 2
    merged = merge_regions(right, left)
    assert (merged.id, merged.start, merged.end) == (1, b"", b"")
    assert merged.epoch.version > max(left.epoch.version, right.epoch.version)
    far = Region(7, slot_bound(20), slot_bound(30))
    with pytest.raises(ValueError):
        merge_regions(far, left)


def test_the_map_prefers_newer_versions() -> None:
    whole = Region(1, peers=PEERS)
    table = RegionMap([whole])
    left, right = split_region(whole, slot_bound(100), 2, (4, 5, 6))
    assert table.update(right)
    assert table.locate_key(b"x") == right  # slot 16287
    assert table.gaps() == [(b"", slot_bound(100))]  # the older whole range was dropped
    assert not table.update(whole)  # a stale description comes back: refused
    assert table.update(left)
    assert table.gaps() == []
    assert [r.id for r in table] == [1, 2]
    assert table.get(1) == left
    for key in (b"a", b"foo", b"{tag}bar"):
        region = table.locate_key(key)
        assert region is not None and region.contains_key(key)


def test_gaps_are_reported() -> None:
    table = RegionMap([Region(1, slot_bound(5), slot_bound(9))])
    assert table.gaps() == [(b"", slot_bound(5)), (slot_bound(9), b"")]
    assert table.locate(slot_bound(4)) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10**6)), max_size=40))
def test_splits_and_merges_keep_the_keyspace_covered(steps: list[tuple[bool, int]]) -> None:
    table = RegionMap([Region(1, peers=PEERS)])
    next_id = 2
    for do_split, pick in steps:
        regions = list(table)
        region = regions[pick % len(regions)]
        if do_split:
            slots = region.slots()
            if len(slots) < 2:
                continue
            at = slot_bound(slots[1 + pick % (len(slots) - 1)])
            left, right = split_region(
                region, at, next_id, (next_id * 10, next_id * 10 + 1, next_id * 10 + 2)
            )
            next_id += 1
            # either half may reach the table first
            for part in (right, left) if pick % 2 else (left, right):
                assert table.update(part)
        elif len(regions) > 1:
            i = pick % (len(regions) - 1)
            merged = merge_regions(regions[i + 1], regions[i])
            assert table.update(merged)
            assert table.get(regions[i + 1].id) is None
        assert table.gaps() == []
        bounds = [(r.start, r.end) for r in table]
        assert all(a[1] == b[0] for a, b in pairwise(bounds))
