"""What a region host needs from its node's disk: many regions' logs, one group write.

`HostStore` is the protocol; the simulator implements it on `cairn.sim.node_disk` and
the LMDB one is `cairn.storage.NodeStore` (its `write_many(batches, sync, states)` has
this shape; an adapter maps `RegionRecord` to its `RegionLocalState`). `RegionLogStore`
is the `LogStore` view of one region that a hosted `Replica` writes through for the
rare writes it makes on its own (a compaction snapshot); the Ready batches of all regions
go through `write_many` from the host.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cairn.env import DurableState, LogBatch
from cairn.meta.region import Region


class PeerState(enum.Enum):
    """A hosted peer is live, or a tombstone kept so stale messages for it are dropped."""

    NORMAL = "normal"
    TOMBSTONE = "tombstone"


@dataclass(frozen=True, slots=True)
class RegionRecord:
    """A region hosted on this node: this node's peer of it, and the last known range.

    `region` is None for a peer created by a message that waits for its first snapshot.
    """

    region_id: int
    peer_id: int
    state: PeerState = PeerState.NORMAL
    region: Region | None = None


class HostStore(Protocol):
    """The durable Raft state of every region on one node."""

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        records: Sequence[RegionRecord] = (),
        apply: Callable[[], None] | None = None,
    ) -> None:
        """Write every `(region id, batch)` and record in one atomic write, then fsync once
        when `sync`. Writes become durable in the order they were made.

        `apply` runs inside that write, after the batches are staged: the state
        machines' changes it makes (applying committed entries) commit with the log in
        the same transaction, or, if it raises, nothing of the write does."""
        ...

    def load(self, region_id: int) -> DurableState:
        """Region `region_id`'s durable log (empty when it has none)."""
        ...

    def records(self) -> list[RegionRecord]:
        """Every region record that is durable, by region id."""
        ...


SyncDone = Callable[[Exception | None], None]
"""Called when a background fsync ends: None once durable, else the error that failed it."""


@runtime_checkable
class BackgroundSync(Protocol):
    """A `HostStore` that can fsync without blocking its caller (a real disk).

    The host then writes a drain's batches unsynced, starts the fsync and goes on serving
    the event loop; what must wait for durability (a follower's acknowledgement, the
    leader's own match, the apply) waits for `done`. A store without it (the simulator's
    disk) syncs inside `write_many`.
    """

    def sync_in_background(self, done: SyncDone) -> None:
        """Make every write made so far durable off the caller's thread; `done` is then
        called on the caller's event loop (never from inside this call)."""
        ...


class RegionLogStore:
    """The `LogStore` of one region on a `HostStore`."""

    def __init__(self, store: HostStore, region_id: int) -> None:
        self._store = store
        self._region_id = region_id

    def write(self, batch: LogBatch, sync: bool) -> None:
        """See `LogStore.write`."""
        self._store.write_many([(self._region_id, batch)], sync)

    def load(self) -> DurableState:
        """See `LogStore.load`."""
        return self._store.load(self._region_id)
