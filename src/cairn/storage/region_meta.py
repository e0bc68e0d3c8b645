"""`RegionLocalState`: what a node records about each region it hosts (TiKV's namesake).

One record per region in the `regions` database, key = region id (big-endian u64), so
listing the regions of a node at start-up is one cursor walk. The record holds the
region's current description (range, epoch, peers) and the state of this node's replica:

- `NORMAL`: serving; `region` is None for an *uninitialized* peer, created by a message
  from a leader before any snapshot told it its range (it owns no data);
- `APPLYING`: a snapshot's data is being installed into `region`'s range in several
  transactions; after a crash the install is redone from the stored Raft snapshot;
- `TOMBSTONE`: the replica was removed (or merged away). The record stays, so a message
  from the old peer (an older epoch) is recognised and dropped; `pending_delete` says that
  the region's data range still has to be deleted (set when a removal starts, cleared
  when its last deletion transaction commits).

The record changes in the same write transaction as the Raft write that causes the
change, so the two never disagree after a crash.
Value layout: crc u32 (seeded with the CRC-32 of the key) | msgpack
[format, state, pending_delete, region(, peer id)] with region = None or
[start, end, version, conf_ver, [[peer id, node id, role], ...]]; the peer id is there
only for an uninitialized peer that the placement driver numbered.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import msgpack

from cairn.meta.region import Peer, PeerRole, Region, RegionEpoch
from cairn.storage.errors import CorruptLogError

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_FORMAT = 1


class PeerState(enum.IntEnum):
    """The state of this node's replica of a region (see the module docstring)."""

    NORMAL = 0
    APPLYING = 1
    TOMBSTONE = 2


@dataclass(frozen=True, slots=True)
class RegionLocalState:
    """This node's record of one hosted region.

    Invariants: `region` is None or has id `region_id`; `APPLYING` has a region;
    `pending_delete` only on a `TOMBSTONE` with a region.
    """

    region_id: int
    state: PeerState = PeerState.NORMAL
    region: Region | None = None
    pending_delete: bool = False
    peer_id: int = 0
    """This node's peer of an uninitialized region (created by a message, its id chosen
    by the placement driver); 0 when `region` names it, or for a founding-scheme id."""

    def __post_init__(self) -> None:
        if self.region is not None and self.region.id != self.region_id:
            raise ValueError(f"record of region {self.region_id} holds region {self.region.id}")
        if self.state is PeerState.APPLYING and self.region is None:
            raise ValueError(f"region {self.region_id}: applying a snapshot needs its range")
        if self.pending_delete and (self.state is not PeerState.TOMBSTONE or not self.region):
            raise ValueError(f"region {self.region_id}: only a tombstone has data to delete")

    @property
    def initialized(self) -> bool:
        """Whether this replica knows its range (and so may own data)."""
        return self.region is not None


def meta_key(region_id: int) -> bytes:
    """The `regions` key of a region's record."""
    return _U64.pack(region_id)


def key_region(key: bytes) -> int:
    """The inverse of `meta_key`."""
    if len(key) != _U64.size:
        raise CorruptLogError(f"the regions database holds a key of {len(key)} bytes: {key!r}")
    region_id: int = _U64.unpack(key)[0]
    return region_id


def encode_state(rec: RegionLocalState) -> bytes:
    """The stored value of a region's record."""
    fields = [_FORMAT, int(rec.state), rec.pending_delete, _region_fields(rec.region)]
    if rec.peer_id:
        fields.append(rec.peer_id)
    body: bytes = msgpack.packb(fields, use_bin_type=True)
    return _U32.pack(zlib.crc32(body, zlib.crc32(meta_key(rec.region_id)))) + body


def decode_state(region_id: int, value: bytes) -> RegionLocalState:
    """Region `region_id`'s record; `CorruptLogError` naming it if it is damaged."""
    body = value[_U32.size :]
    seed = zlib.crc32(meta_key(region_id))
    if len(value) < _U32.size or zlib.crc32(body, seed) != _U32.unpack_from(value)[0]:
        raise CorruptLogError(f"region {region_id}: metadata record fails its checksum")
    try:
        fmt, state, pending, region, *rest = msgpack.unpackb(body, raw=False)
        if fmt != _FORMAT or len(rest) > 1:
            raise ValueError(f"unknown format {fmt} with {4 + len(rest)} fields")
        peer_id = int(rest[0]) if rest else 0
        return RegionLocalState(
            region_id, PeerState(state), _region_from(region_id, region), bool(pending), peer_id
        )
    except (ValueError, TypeError) as exc:
        raise CorruptLogError(f"region {region_id}: metadata record is malformed: {exc}") from exc


def _region_fields(region: Region | None) -> list[object] | None:
    if region is None:
        return None
    peers = [[p.id, p.node_id, int(p.role)] for p in region.peers]
    return [region.start, region.end, region.epoch.version, region.epoch.conf_ver, peers]


def _region_from(region_id: int, fields: list[object] | None) -> Region | None:
    if fields is None:
        return None
    start, end, version, conf_ver, peers = fields
    if not isinstance(start, bytes) or not isinstance(end, bytes) or not isinstance(peers, list):
        raise ValueError("region fields have the wrong types")
    if not isinstance(version, int) or not isinstance(conf_ver, int):
        raise ValueError("region epoch fields are not integers")
    epoch = RegionEpoch(version, conf_ver)
    members = tuple(Peer(int(p[0]), int(p[1]), PeerRole(int(p[2]))) for p in peers)
    return Region(region_id, start, end, epoch, members)
