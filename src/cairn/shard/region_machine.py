"""`RegionMachine`: a region's state machine — its data, its range, and admin commands.

Theory of operation. Every entry of a region's log is applied by a `RegionMachine`, which
wraps the application's machine (a `RangeMachine`) and owns the region's description
(`Region`: range, epoch, peers). Because the description changes only by applying entries,
every replica holds the same description at the same index, and a snapshot carries it
with the data (an image is `[region, inner image]`).

* A normal command is applied only if every key it touches lies in the range at the
  moment of applying; otherwise it changes nothing and yields `KeyNotInRegion` (a split
  committed between proposing and applying it moved the key away; the client retries at
  the new owner). The check is at apply time, in log order, so all replicas agree.
* An admin command (`encode_split`) starts with the byte `0xc1`, which msgpack never uses,
  so it cannot be confused with an application command. A split carries the epoch it was
  proposed under; if the region's epoch has moved on it yields `EpochNotMatch` and changes
  nothing. Otherwise the left part keeps the id and peers, the right part (new id,
  pre-allocated peer ids on the same nodes) takes the keys at and above the split key:
  `split_off` removes them here and returns their image, from which `on_split` creates the
  right region's peer on this node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgpack

from cairn.shard.region import Peer, PeerRole, Region, RegionEpoch, range_key, split_region

ADMIN_TAG = b"\xc1"
"""The first byte of an admin command (never the first byte of a msgpack value)."""

SPLIT_INIT_INDEX = 5
"""The index (and term) of the snapshot a region created by a split starts from (TiKV's
RAFT_INIT_INDEX): past the bootstrap index, so it is never confused with a founding log."""


class RangeMachine(Protocol):
    """An application state machine whose keys can be cut out by range."""

    @property
    def applied_index(self) -> int:
        """See `StateMachine.applied_index`."""
        ...

    def apply(self, index: int, data: bytes) -> object:
        """See `StateMachine.apply`."""
        ...

    def snapshot(self) -> bytes:
        """See `StateMachine.snapshot`."""
        ...

    def restore(self, data: bytes) -> None:
        """See `StateMachine.restore`."""
        ...

    def keys_of(self, data: bytes) -> Sequence[bytes]:
        """The Redis keys command `data` reads or writes."""
        ...

    def split_off(self, moves: Callable[[bytes], bool], applied: int) -> bytes:
        """Remove every key whose range key `moves`; return their image (a `snapshot()` of
        a machine holding only them, at `applied`)."""
        ...


@dataclass(frozen=True, slots=True)
class KeyNotInRegion:
    """The result of a command touching a key outside the region (nothing changed)."""

    region: Region


@dataclass(frozen=True, slots=True)
class EpochNotMatch:
    """The result of an admin command proposed under an older epoch (nothing changed)."""

    region: Region


@dataclass(frozen=True, slots=True)
class SplitDone:
    """The result of an applied split."""

    left: Region
    right: Region


SplitHook = Callable[[Region, Region, bytes], None]
"""Called as a split applies: (left, right, the right part's image, as `snapshot()` makes)."""


def encode_region(region: Region) -> list[object]:
    """A region as msgpack-ready fields."""
    peers = [[p.id, p.node_id, int(p.role)] for p in region.peers]
    return [region.id, region.start, region.end, region.epoch.version, region.epoch.conf_ver, peers]


def decode_region(fields: Sequence[object]) -> Region:
    """The inverse of `encode_region`."""
    rid, start, end, version, conf_ver, peers = fields
    assert isinstance(peers, list)
    return Region(
        id=int(rid),  # type: ignore[call-overload]
        start=bytes(start),  # type: ignore[call-overload]
        end=bytes(end),  # type: ignore[call-overload]
        epoch=RegionEpoch(int(version), int(conf_ver)),  # type: ignore[call-overload]
        peers=tuple(Peer(int(i), int(n), PeerRole(r)) for i, n, r in peers),
    )


def encode_split(
    epoch: RegionEpoch, split_key: bytes, new_id: int, new_peer_ids: Sequence[int]
) -> bytes:
    """The command that splits a region at range key `split_key` (see the module doc)."""
    body = ["split", epoch.version, epoch.conf_ver, split_key, new_id, list(new_peer_ids)]
    return ADMIN_TAG + bytes(msgpack.packb(body))


class RegionMachine:
    """A region's replicated state: `region` and the application's data inside it."""

    def __init__(self, inner: RangeMachine, region: Region, on_split: SplitHook) -> None:
        self.inner = inner
        self.region = region
        self.on_split = on_split

    @property
    def applied_index(self) -> int:
        """See `StateMachine.applied_index`."""
        return self.inner.applied_index

    @property
    def durable(self) -> bool:
        """Whether the inner machine's state survives a restart on its own (a machine
        without the attribute is not durable): the driver then compacts without images."""
        return bool(getattr(self.inner, "durable", False))

    def apply(self, index: int, data: bytes) -> object:
        """Apply a normal or admin command (see the module docstring)."""
        if data[:1] == ADMIN_TAG:
            return self._apply_admin(index, msgpack.unpackb(data[1:]))
        region = self.region
        if not all(region.contains(range_key(k)) for k in self.inner.keys_of(data)):
            return KeyNotInRegion(region)
        return self.inner.apply(index, data)

    def _apply_admin(self, index: int, body: list[object]) -> object:
        kind, version, conf_ver, split_key, new_id, peer_ids = body
        if kind != "split":
            raise ValueError(f"unknown admin command {kind!r}")
        region = self.region
        if RegionEpoch(version, conf_ver) != region.epoch:  # type: ignore[arg-type]
            return EpochNotMatch(region)
        assert isinstance(split_key, bytes) and isinstance(new_id, int)
        assert isinstance(peer_ids, list)
        if not region.contains(split_key) or split_key == region.start:
            return EpochNotMatch(region)
        left, right = split_region(region, split_key, new_id, tuple(peer_ids))
        moved = self.inner.split_off(right.contains, SPLIT_INIT_INDEX)
        self.region = left
        self.on_split(left, right, bytes(msgpack.packb([encode_region(right), moved])))
        return SplitDone(left, right)

    def set_peers(self, peers: tuple[Peer, ...]) -> None:
        """A membership change was applied: the new peers, conf_ver + 1."""
        self.region = self.region.with_peers(peers)

    def snapshot(self) -> bytes:
        """The description and the data, as one image."""
        return bytes(msgpack.packb([encode_region(self.region), self.inner.snapshot()]))

    def restore(self, data: bytes) -> None:
        """Adopt a `snapshot()` image (description included)."""
        region, inner = msgpack.unpackb(data)
        self.region = decode_region(region)
        self.inner.restore(inner)


def initial_image(inner: RangeMachine, region: Region) -> bytes:
    """The image a region's first snapshot carries: `region` over `inner`'s data."""
    return bytes(msgpack.packb([encode_region(region), inner.snapshot()]))


def region_of_image(data: bytes) -> Region:
    """The description inside an image made by `snapshot()` or `initial_image`."""
    return decode_region(msgpack.unpackb(data)[0])
