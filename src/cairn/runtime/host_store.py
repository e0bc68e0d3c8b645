"""`LmdbHostStore`: the region host's `HostStore` on the node's LMDB `NodeStore`.

`RegionHost` speaks in `RegionRecord`s (region id, this node's peer id, state, range);
`NodeStore` keeps `RegionLocalState` records (region id, state, range) and the Raft logs
of every region in one environment, written by one `write_many` transaction and one fsync
per drain (group commit). The adapter maps between the two: a record's peer id is the
peer of its region on this node, or, for a peer that has no range yet, the founding
scheme's (`region_layout.peer_id`).

A write that fails (a failed fsync, a full disk) is reported to `on_failure` before it is
raised to the host (which fails the replicas in it): the node then stops acknowledging
anything, as a single group did.

Creating a region's Raft state from a host write (a split's new region, a founding
snapshot) is refused with `RegionCreationError`: the real node founds its regions
directly in `NodeStore` (one transaction for all of them, `found_regions`) and does not
split yet (a durable split must be staged in the transaction that applies it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cairn.raft.types import ConfState
from cairn.runtime.env import DurableState, LogBatch
from cairn.runtime.region_layout import peer_id
from cairn.shard.host_store import PeerState, RegionRecord
from cairn.shard.region import Region
from cairn.storage.node_store import NodeStore
from cairn.storage.region_meta import PeerState as LocalPeerState
from cairn.storage.region_meta import RegionLocalState

FailureHandler = Callable[[Exception], None]


class RegionCreationError(Exception):
    """A host write would create a region's Raft state; the real node does not do that."""


def found_regions(store: NodeStore, regions: Sequence[Region], index: int) -> None:
    """Record every founding region with its initial Raft state (a snapshot at `index`
    holding its voters) in ONE transaction, then sync: a crash leaves all or none."""
    with store.env.write() as wtx:
        for region in regions:
            voters = tuple(p.id for p in region.voters())
            state = RegionLocalState(region.id, LocalPeerState.NORMAL, region)
            store.stage_create(wtx, state, conf_state=ConfState(voters=voters), index=index)
    store.env.sync()


class LmdbHostStore:
    """`HostStore` over a `NodeStore` (see the module docstring)."""

    def __init__(
        self, store: NodeStore, node_id: int, on_failure: FailureHandler | None = None
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.on_failure = on_failure
        self.writes = 0
        self.syncs = 0

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        records: Sequence[RegionRecord] = (),
    ) -> None:
        """See `HostStore.write_many`."""
        for region_id, batch in batches:
            if not batch.is_empty() and not self._live(region_id):
                raise RegionCreationError(
                    f"region {region_id} has no Raft state on this node to write to"
                )
        states = [self._local(r) for r in records]
        try:
            self.store.write_many(batches, sync, states)
        except Exception as exc:
            if self.on_failure is not None:
                self.on_failure(exc)
            raise
        self.writes += 1
        self.syncs += sync

    def load(self, region_id: int) -> DurableState:
        """See `HostStore.load`."""
        if not self._live(region_id):
            return DurableState()
        return self.store.store(region_id).load()

    def records(self) -> list[RegionRecord]:
        """See `HostStore.records`."""
        return [self._record(s) for s in self.store.regions()]

    def _live(self, region_id: int) -> bool:
        state = self.store.state(region_id)
        return state is not None and state.state is not LocalPeerState.TOMBSTONE

    def _record(self, state: RegionLocalState) -> RegionRecord:
        region = state.region
        mine = region.peer_on(self.node_id) if region is not None else None
        pid = mine.id if mine is not None else peer_id(state.region_id, self.node_id)
        tomb = state.state is LocalPeerState.TOMBSTONE
        return RegionRecord(
            state.region_id, pid, PeerState.TOMBSTONE if tomb else PeerState.NORMAL, region
        )

    def _local(self, record: RegionRecord) -> RegionLocalState:
        if record.state is PeerState.TOMBSTONE:
            return RegionLocalState(record.region_id, LocalPeerState.TOMBSTONE, record.region)
        return RegionLocalState(record.region_id, LocalPeerState.NORMAL, record.region)
