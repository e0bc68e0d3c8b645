"""Regions: contiguous ranges of the ordered keyspace, each replicated by one Raft group.

The keyspace is ordered by (Redis Cluster hash slot, key). A key's position in that order
is its *range key*: the slot as two big-endian bytes, then the key. A region covers the
range keys in ``[start, end)``; ``start == b""`` means from the beginning and ``end == b""``
means to the end, so one region covering everything is ``Region(start=b"", end=b"")``.
A boundary that is exactly two bytes long falls between two slots (`slot_bound`), which is
where splits go when they can, so that a slot, and so a `MOVED` answer, has one owner.

A region's `RegionEpoch` (TiKV's): `version` grows with every split and merge (the range
changed), `conf_ver` with every membership change (the peers changed). A request or a
routing entry carrying an older epoch than the replica's is stale and is refused; two
descriptions of overlapping ranges are reconciled by keeping the newer version.

Peers have cluster-unique ids, distinct from node ids (TiKV's peer ids): a replica removed
from a node and added back later is a new peer, so messages addressed to the old one cannot
reach it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from cairn.store.slot import SLOT_COUNT, key_slot

_SLOT_BYTES = 2

PLACEMENT_REGION_ID = (1 << 63) - 1
"""The reserved id of the placement group's region (`cairn.placement.group_host`). It lives
in a region host of its own on each member, never among a node's data regions: it owns no
key, the placement driver never allocates its id (ids count up from the founding layout's),
a host never creates a peer of it from a message, and the envelope transport hands its
envelopes to the placement host alone."""


def range_key(key: bytes) -> bytes:
    """The position of a Redis key in the ordered keyspace: its slot, then the key."""
    return key_slot(key).to_bytes(_SLOT_BYTES, "big") + key


def slot_bound(slot: int) -> bytes:
    """The boundary just before the first key of `slot` (`b""` for `SLOT_COUNT`: the end)."""
    if not 0 <= slot <= SLOT_COUNT:
        raise ValueError(f"slot {slot} out of range 0..{SLOT_COUNT}")
    return b"" if slot == SLOT_COUNT else slot.to_bytes(_SLOT_BYTES, "big")


def bound_slot(bound: bytes, *, end: bool = False) -> int:
    """The slot a boundary lies in (`SLOT_COUNT` for the open end when `end` is set)."""
    if not bound:
        return SLOT_COUNT if end else 0
    return int.from_bytes(bound[:_SLOT_BYTES].ljust(_SLOT_BYTES, b"\0"), "big")


def is_range_bound(bound: bytes) -> bool:
    """Whether `bound` can cut the keyspace: a slot (2 bytes, below `SLOT_COUNT`) and
    perhaps a key, as `range_key` and `slot_bound` make (a split key from a peer's entry
    is checked with this before the store carves its slot counts by it)."""
    return len(bound) >= _SLOT_BYTES and bound_slot(bound) < SLOT_COUNT


def is_slot_bound(bound: bytes) -> bool:
    """Whether `bound` falls between two slots rather than inside one."""
    return len(bound) in (0, _SLOT_BYTES)


class PeerRole(enum.IntEnum):
    """A voter counts toward quorums; a learner only receives the log (it is caught up
    before it is promoted, and it can serve stale-bounded reads in another zone)."""

    VOTER = 0
    LEARNER = 1


@dataclass(frozen=True, slots=True, order=True)
class RegionEpoch:
    """`version` counts range changes (split, merge), `conf_ver` membership changes."""

    version: int = 1
    conf_ver: int = 1

    def is_stale(self, current: RegionEpoch) -> bool:
        """Whether something stamped with this epoch predates `current` in either part."""
        return self.version < current.version or self.conf_ver < current.conf_ver

    def next_version(self) -> RegionEpoch:
        """The epoch after a split or merge."""
        return replace(self, version=self.version + 1)

    def next_conf_ver(self) -> RegionEpoch:
        """The epoch after a membership change."""
        return replace(self, conf_ver=self.conf_ver + 1)


@dataclass(frozen=True, slots=True)
class Peer:
    """One replica of a region: a Raft member with a cluster-unique `id` on node `node_id`."""

    id: int
    node_id: int
    role: PeerRole = PeerRole.VOTER


@dataclass(frozen=True, slots=True)
class Region:
    """A range ``[start, end)`` of range keys, its epoch and its replicas."""

    id: int
    start: bytes = b""
    end: bytes = b""
    epoch: RegionEpoch = RegionEpoch()
    peers: tuple[Peer, ...] = ()

    def __post_init__(self) -> None:
        if self.end and self.start >= self.end:
            raise ValueError(f"region {self.id}: start {self.start!r} >= end {self.end!r}")
        ids = [p.id for p in self.peers]
        nodes = [p.node_id for p in self.peers]
        if len(set(ids)) != len(ids) or len(set(nodes)) != len(nodes):
            raise ValueError(f"region {self.id}: a peer id or node appears twice: {self.peers}")

    def contains(self, rkey: bytes) -> bool:
        """Whether range key `rkey` lies in this region."""
        return self.start <= rkey and (not self.end or rkey < self.end)

    def contains_key(self, key: bytes) -> bool:
        """Whether Redis key `key` lies in this region."""
        return self.contains(range_key(key))

    def overlaps(self, other: Region) -> bool:
        """Whether this region's range and `other`'s share a key."""
        before_end = not self.end or other.start < self.end
        return before_end and (not other.end or self.start < other.end)

    def slots(self) -> range:
        """The slots this region holds keys of (the first and last may be shared)."""
        first = bound_slot(self.start)
        last = bound_slot(self.end, end=True)
        if self.end and not is_slot_bound(self.end):
            last += 1  # the end lies inside a slot: that slot is partly ours
        return range(first, last)

    def whole_slots(self) -> range:
        """The slots all of whose keys lie in this region."""
        first = bound_slot(self.start)
        if not is_slot_bound(self.start):
            first += 1
        last = bound_slot(self.end, end=True)
        return range(first, max(first, last))

    def peer(self, peer_id: int) -> Peer | None:
        """The peer with id `peer_id`, if it is a member."""
        return next((p for p in self.peers if p.id == peer_id), None)

    def peer_on(self, node_id: int) -> Peer | None:
        """This region's peer on node `node_id`, if it has one."""
        return next((p for p in self.peers if p.node_id == node_id), None)

    def voters(self) -> tuple[Peer, ...]:
        """The peers that count toward quorums."""
        return tuple(p for p in self.peers if p.role is PeerRole.VOTER)

    def learners(self) -> tuple[Peer, ...]:
        """The peers that receive the log without voting."""
        return tuple(p for p in self.peers if p.role is PeerRole.LEARNER)

    def with_peers(self, peers: tuple[Peer, ...]) -> Region:
        """This region after a membership change to `peers` (conf_ver + 1)."""
        return replace(self, peers=peers, epoch=self.epoch.next_conf_ver())


def split_region(
    region: Region, split_key: bytes, new_id: int, new_peer_ids: tuple[int, ...]
) -> tuple[Region, Region]:
    """`region` cut at range key `split_key`: the left part keeps the id and the peers, the
    right part is region `new_id` with peers `new_peer_ids` on the same nodes, in order.

    Both parts get the next version, so a request routed by the old description is stale
    at either.
    """
    if not region.contains(split_key) or split_key == region.start:
        raise ValueError(f"split key {split_key!r} is not strictly inside region {region.id}")
    if not is_range_bound(split_key):
        raise ValueError(f"split key {split_key!r} is not a range key")
    if new_id == region.id:
        raise ValueError(f"the right part of region {region.id} needs an id of its own")
    if len(new_peer_ids) != len(region.peers):
        raise ValueError(
            f"region {region.id} has {len(region.peers)} peers, got new ids {new_peer_ids}"
        )
    epoch = region.epoch.next_version()
    left = replace(region, end=split_key, epoch=epoch)
    peers = tuple(replace(p, id=i) for p, i in zip(region.peers, new_peer_ids, strict=True))
    right = Region(new_id, split_key, region.end, epoch, peers)
    return left, right


def merge_regions(source: Region, target: Region) -> Region:
    """`target` grown over its neighbour `source` (which ceases to exist).

    The result's version exceeds both inputs', so neither old description can pass for it.
    """
    if source.id == target.id:
        raise ValueError(f"region {source.id} cannot merge into itself")
    if source.end == target.start and source.end:
        start, end = source.start, target.end
    elif target.end == source.start and target.end:
        start, end = target.start, source.end
    else:
        raise ValueError(f"regions {source.id} and {target.id} are not neighbours")
    version = max(source.epoch.version, target.epoch.version) + 1
    epoch = RegionEpoch(version, target.epoch.conf_ver)
    return replace(target, start=start, end=end, epoch=epoch)
