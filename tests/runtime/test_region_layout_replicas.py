"""The founding layout with a replica count: `replicas` voters per region, round-robin."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.runtime.region_layout import LayoutError, initial_layout, peer_id, regions_on


def test_five_founders_three_replicas_round_robin() -> None:
    layout = initial_layout([5, 4, 3, 2, 1], 5, replicas=3)
    assert [[p.node_id for p in r.peers] for r in layout] == [
        [1, 2, 3],
        [1, 4, 5],
        [2, 3, 4],
        [1, 2, 5],
        [3, 4, 5],
    ]
    assert all(p.id == peer_id(r.id, p.node_id) for r in layout for p in r.peers)
    assert [r.id for r in regions_on(4, layout)] == [2, 3, 5]


@settings(deadline=None, max_examples=40)
@given(
    st.integers(1, 200),
    st.sets(st.integers(1, 999), min_size=1, max_size=7),
    st.integers(1, 9),
)
def test_every_region_has_min_replicas_nodes_and_load_is_even(
    count: int, nodes: set[int], replicas: int
) -> None:
    layout = initial_layout(nodes, count, replicas=replicas)
    width = min(replicas, len(nodes))
    assert all(len({p.node_id for p in r.peers}) == width for r in layout)
    per_node = collections.Counter(p.node_id for r in layout for p in r.peers)
    assert max(per_node.values()) - min(per_node.get(n, 0) for n in nodes) <= 1
    # Without a count, every founder is in every region (the layout as before).
    assert initial_layout(nodes, count) == initial_layout(nodes, count, replicas=len(nodes))


def test_zero_replicas_is_refused() -> None:
    with pytest.raises(LayoutError):
        initial_layout([1, 2, 3], 4, replicas=0)
