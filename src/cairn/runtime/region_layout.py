"""The layout a new cluster is founded with: `initial_regions` regions on every node.

Every founding node computes the same layout from its configuration alone, without
talking to the others: the 16,384 hash slots are cut into `count` regions at slot
boundaries, as evenly as possible (region sizes differ by at most one slot), and every
region has a voter on every node of `[peers]`, or, given a replica count, on that many
founders dealt round-robin (region 1 on the first `replicas` nodes, region 2 on the next
`replicas`, wrapping around), so five founders with three replicas each carry 3/5 of the
regions, and no node more than one replica above another.

Ids are deterministic: regions are numbered 1..count in slot order, and the peer of
region `r` on node `n` has id `r * PEER_ID_STRIDE + n` (so node ids must stay below
`PEER_ID_STRIDE`). Peer ids are then unique in the cluster, and any node can tell which
node a founding peer lives on (`peer_node`).
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn.meta.region import Peer, Region, slot_bound
from cairn.store.slot import SLOT_COUNT

PEER_ID_STRIDE = 1000
"""Peer id = region id * PEER_ID_STRIDE + node id (node ids must be smaller)."""


class LayoutError(ValueError):
    """The founding layout cannot be built from these settings."""


def peer_id(region_id: int, node_id: int) -> int:
    """The id of region `region_id`'s founding peer on node `node_id`."""
    return region_id * PEER_ID_STRIDE + node_id


def peer_node(peer: int) -> int:
    """The node a founding peer id lives on (the inverse of `peer_id`)."""
    return peer % PEER_ID_STRIDE


def slot_cuts(count: int) -> list[int]:
    """The first slot of each of `count` even regions, then `SLOT_COUNT`."""
    if not 1 <= count <= SLOT_COUNT:
        raise LayoutError(f"initial_regions must be in 1..{SLOT_COUNT}, got {count}")
    return [i * SLOT_COUNT // count for i in range(count + 1)]


def regions_on(node_id: int, layout: Iterable[Region]) -> list[Region]:
    """The founding regions with a peer on `node_id`: what that node founds on its disk."""
    return [r for r in layout if r.peer_on(node_id) is not None]


def initial_layout(
    node_ids: Iterable[int], count: int, replicas: int | None = None
) -> list[Region]:
    """The founding regions, in slot order, each with a voter on every node (`replicas`
    None) or on `replicas` nodes round-robin (all of them if there are fewer)."""
    nodes = sorted(set(node_ids))
    if not nodes or nodes[0] <= 0 or nodes[-1] >= PEER_ID_STRIDE:
        raise LayoutError(f"node ids must be in 1..{PEER_ID_STRIDE - 1}, got {nodes}")
    if replicas is not None and replicas < 1:
        raise LayoutError(f"replicas must be at least 1, got {replicas}")
    width = len(nodes) if replicas is None else min(replicas, len(nodes))
    cuts = slot_cuts(count)
    regions = []
    for i in range(count):
        region_id = i + 1
        start = b"" if i == 0 else slot_bound(cuts[i])
        end = slot_bound(cuts[i + 1])  # b"" for the last: the end of the keyspace
        chosen = sorted({nodes[(i * width + k) % len(nodes)] for k in range(width)})
        peers = tuple(Peer(peer_id(region_id, n), n) for n in chosen)
        regions.append(Region(region_id, start, end, peers=peers))
    return regions
