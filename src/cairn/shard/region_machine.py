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
* A merge is two admin commands (see docs/multiraft.md for the safety argument).
  `encode_prepare_merge`, in the source's log, freezes the source: its version moves on,
  and from then on it applies no command (every normal one yields `KeyNotInRegion`, every
  admin one `EpochNotMatch`), so its data is final. `encode_commit_merge`, in the
  target's log, carries that final data and the source's description; applied under the
  target epoch it was proposed with, it absorbs the data (`absorb`), grows the range over
  the source's, and calls `on_merge`, which destroys this node's source peer. Because
  the data travels in the target's log, every target replica merges the same bytes at the
  same index whatever state its local source replica is in.

Durable region storage. A machine whose data lives on disk with the region's description
(the real node: LMDB) is given a `RegionStorage`. Every change of the description is then
written by it in ONE transaction with the machine's applied index, so a restart finds the
description that matches the applied state and replays the rest of the log idempotently:
a split (`store_split`: the left's narrowed range, the right region founded, key counts
carried, no data copied), a commit-merge (`store_merge`), a prepare-merge or a membership
change (`store_description`, which also records the freeze), and a snapshot
(`store_restore`). `SplitHook` then gets no image (None): the right region is already on
disk and its peer only has to be started.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol, runtime_checkable

import msgpack

from cairn.meta.region import (
    Peer,
    PeerRole,
    Region,
    RegionEpoch,
    merge_regions,
    range_key,
    split_region,
)
from cairn.raft.config import PlantedBug

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

    def absorb(self, image: bytes) -> None:
        """Add every key of `image` (a `snapshot()` of a machine over a disjoint range),
        leaving `applied_index` as it is: a merge's target takes in its source's data."""
        ...


@runtime_checkable
class RegionStorage(Protocol):
    """Storage that writes a region's description in the transaction applying its change
    (see the module docstring); every method is all or nothing."""

    def store_split(self, inner: RangeMachine, index: int, left: Region, right: Region) -> None:
        """Apply the split entry at `index`: `inner` narrows to `left`, `right` is founded."""
        ...

    def store_merge(
        self, inner: RangeMachine, index: int, source: Region, merged: Region, data: bytes
    ) -> None:
        """Apply the commit-merge at `index`: `inner` grows to `merged` over `source`, whose
        final data (its inner `snapshot()`) is `data`."""
        ...

    def store_description(
        self, inner: RangeMachine, index: int, region: Region, merging_into: int | None
    ) -> None:
        """Record `region` (and the freeze, if any) as applied at `index`."""
        ...

    def store_restore(
        self, inner: RangeMachine, region: Region, data: bytes, merging_into: int | None
    ) -> None:
        """Replace `inner`'s state by image `data` of `region` (a snapshot)."""
        ...

    def stored_merge_target(self, inner: RangeMachine) -> int | None:
        """The target a durable freeze of `inner`'s region names (None: not frozen)."""
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


@dataclass(frozen=True, slots=True)
class MergePrepared:
    """The result of an applied prepare-merge: the source, frozen under its new epoch."""

    region: Region


@dataclass(frozen=True, slots=True)
class MergeDone:
    """The result of an applied commit-merge: the target grown over `source`."""

    source: Region
    merged: Region


SplitHook = Callable[[Region, Region, bytes | None], None]
"""Called as a split applies: (left, right, the right part's image, as `snapshot()` makes;
None when a `RegionStorage` has already founded the right region on disk)."""

MergeHook = Callable[[Region, Region], None]
"""Called as a commit-merge applies: (the source as frozen, the grown target)."""


def encode_region(region: Region) -> list[object]:
    """A region as msgpack-ready fields."""
    peers = [[p.id, p.node_id, int(p.role)] for p in region.peers]
    return [region.id, region.start, region.end, region.epoch.version, region.epoch.conf_ver, peers]


def decode_region(fields: Sequence[object]) -> Region:
    """The inverse of `encode_region`; `ValueError` unless every field has its type.

    The fields come from peers (region maps, commit-merge entries): nothing is converted,
    so a number where bytes belong cannot become `bytes(n)`, n zero bytes."""
    if not isinstance(fields, list | tuple) or len(fields) != 6:
        raise ValueError("a region is [id, start, end, version, conf_ver, peers]")
    rid, start, end, version, conf_ver, peers = fields
    if not isinstance(start, bytes) or not isinstance(end, bytes):
        raise ValueError("a region's bounds are bytes")
    if not isinstance(peers, list | tuple):
        raise ValueError("a region's peers are a list")
    return Region(
        id=_count(rid),
        start=start,
        end=end,
        epoch=RegionEpoch(_count(version), _count(conf_ver)),
        peers=tuple(_decode_peer(p) for p in peers),
    )


def _count(value: object) -> int:
    """`value` if it is a non-negative int (not a bool), else `ValueError`."""
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r:.20}")
    return value


def _decode_peer(fields: object) -> Peer:
    if not isinstance(fields, list | tuple) or len(fields) != 3:
        raise ValueError("a peer is [id, node id, role]")
    pid, node, role = fields
    return Peer(_count(pid), _count(node), PeerRole(role))


def conf_change_nodes(context: bytes) -> dict[int, int]:
    """Peer id -> node id of the peers a region's membership change names, from the
    context its entry carries (`encode_request(request id, msgpack [[peer id, node id],
    ...])`, see `RegionHost.change_peer`); empty for an empty context. `ValueError`
    unless it is exactly that: the context comes from a peer's log entry, and the apply
    that reads it must not fail (`cairn.runtime.frame_checks` calls this at the edge)."""
    if not context:
        return {}
    outer = msgpack.unpackb(context)
    if not isinstance(outer, list | tuple) or len(outer) != 2:
        raise ValueError("a membership change's context is [request id, nodes]")
    extra = outer[1]
    if not isinstance(extra, bytes):
        raise ValueError("a membership change's nodes are bytes")
    if not extra:
        return {}
    pairs = msgpack.unpackb(extra)
    if not isinstance(pairs, list | tuple):
        raise ValueError("a membership change's nodes are a list of [peer id, node id]")
    nodes = {}
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError("a membership change's node is [peer id, node id]")
        nodes[_count(pair[0])] = _count(pair[1])
    return nodes


def encode_split(
    epoch: RegionEpoch, split_key: bytes, new_id: int, new_peer_ids: Sequence[int]
) -> bytes:
    """The command that splits a region at range key `split_key` (see the module doc)."""
    body = ["split", epoch.version, epoch.conf_ver, split_key, new_id, list(new_peer_ids)]
    return ADMIN_TAG + bytes(msgpack.packb(body))


def encode_prepare_merge(epoch: RegionEpoch, target_id: int) -> bytes:
    """The command, proposed to the source, that freezes it before merging into `target_id`
    (applied only while the source is still at `epoch`)."""
    body = ["prepare_merge", epoch.version, epoch.conf_ver, target_id]
    return ADMIN_TAG + bytes(msgpack.packb(body))


def encode_commit_merge(target_epoch: RegionEpoch, source: Region, source_data: bytes) -> bytes:
    """The command, proposed to the target, that absorbs the frozen `source` and its data
    (the source machine's inner `snapshot()`), applied only while the target is at
    `target_epoch`."""
    body = [
        "commit_merge",
        target_epoch.version,
        target_epoch.conf_ver,
        encode_region(source),
        source_data,
    ]
    return ADMIN_TAG + bytes(msgpack.packb(body))


class RegionMachine:
    """A region's replicated state: `region` and the application's data inside it.

    Invariant: while `merging_into` is set the region applies nothing (its data is final).
    """

    def __init__(
        self,
        inner: RangeMachine,
        region: Region,
        on_split: SplitHook,
        on_merge: MergeHook = lambda source, merged: None,
        storage: RegionStorage | None = None,
        planted: frozenset[PlantedBug] = frozenset(),
    ) -> None:
        self.inner = inner
        self.planted = planted
        """Deliberate node-level bugs (`PlantedBug`), for the simulator's tests only."""
        self.region = region
        self.on_split = on_split
        self.on_merge = on_merge
        self.storage = storage
        """Writes description changes with the data (None: they live in images only)."""
        self.merging_into: int | None = (
            storage.stored_merge_target(inner) if storage is not None else None
        )
        """The target this region is frozen to merge into (a prepare-merge applied)."""
        self.absorbed: tuple[int, ...] = ()
        """Ids of the regions merged into this one (their peers here must be destroyed)."""

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
        if self.merging_into is not None or not self._in_range(data):
            return KeyNotInRegion(self.region)
        return self.inner.apply(index, data)

    def _in_range(self, data: bytes) -> bool:
        """Whether every key normal command `data` touches lies in the region now."""
        if PlantedBug.APPLY_OUT_OF_RANGE in self.planted:
            return True
        region = self.region
        return all(region.contains(range_key(k)) for k in self.inner.keys_of(data))

    @staticmethod
    def is_plain(data: bytes) -> bool:
        """Whether command `data` is an ordinary one (not an admin command): only those
        may be applied inside the transaction that writes the log (`Replica.apply_in_txn`);
        an admin command writes its own transaction (`RegionStorage`)."""
        return data[:1] != ADMIN_TAG

    @property
    def apply_many(self) -> Callable[[Sequence[tuple[int, bytes]]], list[object]] | None:
        """`apply` over consecutive entries, with the runs of in-range commands between
        admin commands handed to the inner machine's `apply_many` (one storage transaction
        each); None when the inner machine has none, so the driver applies one by one."""
        inner_many = getattr(self.inner, "apply_many", None)
        if inner_many is None:
            return None
        return partial(self._apply_runs, inner_many)

    def _apply_runs(
        self,
        inner_many: Callable[[Sequence[tuple[int, bytes]]], Sequence[object]],
        entries: Sequence[tuple[int, bytes]],
    ) -> list[object]:
        results: list[object] = []
        run: list[tuple[int, bytes]] = []
        for index, data in entries:
            if data[:1] != ADMIN_TAG and self.merging_into is None and self._in_range(data):
                run.append((index, data))
                continue
            if run:  # what precedes an admin or refused entry applies first, in log order
                results.extend(inner_many(run))
                run = []
            results.append(self.apply(index, data))
        if run:
            results.extend(inner_many(run))
        return results

    def _apply_admin(self, index: int, body: list[object]) -> object:
        kind, version, conf_ver, *args = body
        epoch = RegionEpoch(version, conf_ver)  # type: ignore[arg-type]
        if kind not in ("split", "prepare_merge", "commit_merge"):
            raise ValueError(f"unknown admin command {kind!r}")
        if self.merging_into is not None or epoch != self.region.epoch:
            return EpochNotMatch(self.region)
        if kind == "prepare_merge":
            return self._prepare_merge(index, args)
        if kind == "commit_merge":
            return self._commit_merge(index, args)
        return self._split(index, args)

    def _prepare_merge(self, index: int, args: list[object]) -> object:
        (target_id,) = args
        assert isinstance(target_id, int)
        frozen = replace(self.region, epoch=self.region.epoch.next_version())
        if self.storage is not None:
            self.storage.store_description(self.inner, index, frozen, target_id)
        self.region = frozen
        self.merging_into = target_id
        return MergePrepared(self.region)

    def _commit_merge(self, index: int, args: list[object]) -> object:
        fields, data = args
        assert isinstance(fields, list) and isinstance(data, bytes)
        source = decode_region(fields)
        try:
            merged = merge_regions(source, self.region)
        except ValueError:
            return EpochNotMatch(self.region)
        if self.storage is not None:
            self.storage.store_merge(self.inner, index, source, merged, data)
        else:
            self.inner.absorb(data)
        self.region = merged
        self.absorbed = (*self.absorbed, source.id)
        self.on_merge(source, merged)
        return MergeDone(source, merged)

    def _split(self, index: int, args: list[object]) -> object:
        split_key, new_id, peer_ids = args
        region = self.region
        assert isinstance(split_key, bytes) and isinstance(new_id, int)
        assert isinstance(peer_ids, list)
        if not region.contains(split_key) or split_key == region.start:
            return EpochNotMatch(region)
        try:
            left, right = split_region(region, split_key, new_id, tuple(peer_ids))
        except ValueError:  # new peer ids that do not fit this membership: change nothing
            return EpochNotMatch(region)
        if self.storage is not None:
            self.storage.store_split(self.inner, index, left, right)
            self.region = left
            self.on_split(left, right, None)
            return SplitDone(left, right)
        moves = right.contains
        if PlantedBug.SPLIT_KEY_LEFT_BEHIND in self.planted:
            moves = partial(_above, split_key, right)
        moved = self.inner.split_off(moves, SPLIT_INIT_INDEX)
        self.region = left
        self.on_split(left, right, bytes(msgpack.packb([encode_region(right), moved])))
        return SplitDone(left, right)

    def set_peers(self, peers: tuple[Peer, ...], index: int | None = None) -> None:
        """A membership change was applied (at `index`, which durable storage records it
        at): the new peers, conf_ver + 1."""
        changed = self.region.with_peers(peers)
        if self.storage is not None and index is not None:
            self.storage.store_description(self.inner, index, changed, self.merging_into)
        self.region = changed

    def snapshot(self) -> bytes:
        """The description, the data and the merge state, as one image."""
        fields: list[object] = [encode_region(self.region), self.inner.snapshot()]
        if self.merging_into is not None or self.absorbed:
            fields += [self.merging_into, list(self.absorbed)]
        return bytes(msgpack.packb(fields))

    def restore(self, data: bytes) -> None:
        """Adopt a `snapshot()` image (description included)."""
        region, inner, *merge = msgpack.unpackb(data)
        described = decode_region(region)
        merging_into = int(merge[0]) if merge and merge[0] is not None else None
        if self.storage is not None:
            self.storage.store_restore(self.inner, described, inner, merging_into)
        else:
            self.inner.restore(inner)
        self.region = described
        self.merging_into = merging_into
        self.absorbed = tuple(int(i) for i in merge[1]) if merge else ()


def _above(split_key: bytes, right: Region, key: bytes) -> bool:
    """`PlantedBug.SPLIT_KEY_LEFT_BEHIND`'s handover: the right part's keys but those at
    the split point (the split key, or the keys of the slot a slot-bound split starts)."""
    return right.contains(key) and not key.startswith(split_key)


def initial_image(inner: RangeMachine, region: Region) -> bytes:
    """The image a region's first snapshot carries: `region` over `inner`'s data."""
    return bytes(msgpack.packb([encode_region(region), inner.snapshot()]))


def region_of_image(data: bytes) -> Region:
    """The description inside an image made by `snapshot()` or `initial_image`."""
    return decode_region(msgpack.unpackb(data)[0])
