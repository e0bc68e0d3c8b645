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
directly in `NodeStore` (one transaction for all of them, `found_regions`), and a split's
right region in the transaction applying the split.

Structural changes (`RegionStorage`, which `RegionMachine` calls as it applies them) are
each ONE LMDB write transaction holding the machine's records and the region records:

* split: `carve.split_machine` (the left's range narrowed, its applied index = the split
  entry, the per-slot key counts of the right carried to it) + `NodeStore.stage_split`
  (both region records, the right's Raft state at `RAFT_INIT_INDEX` and applied index).
  No data is copied. A right peer that already exists here (created by a message,
  waiting for a snapshot) or was removed from here is not founded: its system records
  are dropped, and the snapshot it gets (or none) decides its state;
* commit-merge: the source's final data (carried in the entry) replaces whatever this
  node holds of the source's range, `carve.merge_machines` folds its counts into the
  target's, and `NodeStore.stage_merge` tombstones the local source replica;
* prepare-merge and membership changes: the region record with the applied index (and
  the freeze, `carve.freeze`), so a restart never replays a change already recorded;
* snapshot restore: the image installed in the range it describes, with the record.

A crash before the commit leaves none of it and the entry is applied again from the log
(the applied index is in the same transaction); after, all of it. If the transaction
fails, the machine's in-memory range and applied index are reloaded from the disk and the
error propagates (the replica fails, the node stops).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cairn.env import DurableState, LogBatch
from cairn.env.host_store import PeerState, RegionRecord, SyncDone
from cairn.meta.region import Region
from cairn.raft.types import ConfState
from cairn.runtime.fsync_thread import FsyncThread
from cairn.runtime.range_store import StoreRangeMachine
from cairn.runtime.region_layout import peer_id
from cairn.shard.region_machine import RangeMachine
from cairn.storage.failpoints import fail_point
from cairn.storage.lmdb_env import WriteTxn
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore, region_scope
from cairn.storage.region_meta import PeerState as LocalPeerState
from cairn.storage.region_meta import RegionLocalState
from cairn.store.carve import freeze, frozen_target, merge_machines, split_machine
from cairn.store.keyspace import write_batch
from cairn.store.layout import encode_u64, region_system_prefix
from cairn.store.machine import StoreMachine
from cairn.store.ranges import KeyspaceImages
from cairn.store.scope import Scope

FailureHandler = Callable[[Exception], None]

FP_SPLIT_STAGED = "region.split.staged"
"""Failpoint inside a split's transaction, between the machine's records and the region
records (a crash there must leave neither)."""
FP_MERGE_STAGED = "region.merge.staged"
"""Failpoint inside a merge's transaction, likewise."""


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
        self._inline_syncs = 0
        self._fsync = FsyncThread(store.env.sync, "cairn-fsync", self._failed)

    # -- BackgroundSync ----------------------------------------------------------------

    def sync_in_background(self, done: SyncDone) -> None:
        """See `BackgroundSync`: the fsync runs on this store's own thread (LMDB lets go
        of the GIL while it syncs), one at a time, and `done` runs on the event loop."""
        self._fsync.start(done)

    def _failed(self, error: Exception) -> None:
        if self.on_failure is not None:
            self.on_failure(error)

    @property
    def syncs(self) -> int:
        """The fsyncs of this store: inline (`write_many` with `sync`) and background."""
        return self._inline_syncs + self._fsync.syncs

    async def drain_syncs(self) -> None:
        """Wait for a background fsync still running and stop the sync thread: what a
        stopping node does before it closes the environment under it."""
        await self._fsync.drain()

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        records: Sequence[RegionRecord] = (),
        apply: Callable[[], None] | None = None,
    ) -> None:
        """See `HostStore.write_many`: `apply` runs with the node's keyspace grouped into
        the log's transaction, so the machines' writes join it."""
        for region_id, batch in batches:
            if not batch.is_empty() and not self.store.is_live(region_id):
                raise RegionCreationError(
                    f"region {region_id} has no Raft state on this node to write to"
                )
        states = [self._local(r) for r in records]
        try:
            self.store.write_many(batches, sync, states, apply)
        except Exception as exc:
            if self.on_failure is not None:
                self.on_failure(exc)
            raise
        self.writes += 1
        self._inline_syncs += sync

    def load(self, region_id: int) -> DurableState:
        """See `HostStore.load`."""
        if not self.store.is_live(region_id):
            return DurableState()
        return self.store.store(region_id).load()

    def records(self) -> list[RegionRecord]:
        """See `HostStore.records`."""
        return [self._record(s) for s in self.store.regions()]

    # -- RegionStorage -----------------------------------------------------------------

    def store_split(self, inner: RangeMachine, index: int, left: Region, right: Region) -> None:
        """See `RegionStorage.store_split` and the module docstring."""
        machine = _machine_of(inner)
        conf = ConfState(
            voters=tuple(p.id for p in right.voters()),
            learners=tuple(p.id for p in right.learners()),
        )
        keyspace = self.store.keyspace
        prior = self.store.state(right.id)
        ahead = prior is not None and prior.state is LocalPeerState.NORMAL and prior.initialized
        kept = _system_records(machine, right.id) if ahead else []

        def stage(wtx: WriteTxn) -> None:
            split_machine(machine, right.start, right.id, index, RAFT_INIT_INDEX)
            fail_point(FP_SPLIT_STAGED)
            if self.store.stage_split(wtx, left, right, conf, replace_uninitialized=False):
                return
            keyspace.stage_delete_prefix(wtx, region_system_prefix(right.id))
            for key, value in kept:  # a right replica already past the split keeps its own
                keyspace.stage_put(wtx, key, value)

        self._structural(machine, stage)

    def store_merge(
        self, inner: RangeMachine, index: int, source: Region, merged: Region, data: bytes
    ) -> None:
        """See `RegionStorage.store_merge` and the module docstring."""
        target = _machine_of(inner)
        keyspace = self.store.keyspace

        def stage(wtx: WriteTxn) -> None:
            scope = Scope.region(source.id, source.start, source.end)
            KeyspaceImages(keyspace).restore(scope, data)
            merge_machines(StoreMachine(keyspace, scope=scope), target, index)
            fail_point(FP_MERGE_STAGED)
            if self.store.is_live(source.id):
                self.store.stage_merge(wtx, source.id, merged)
            else:
                self.store.stage_state(wtx, RegionLocalState(merged.id, region=merged))

        self._structural(target, stage)

    def store_description(
        self, inner: RangeMachine, index: int, region: Region, merging_into: int | None
    ) -> None:
        """See `RegionStorage.store_description`."""
        machine = _machine_of(inner)

        def stage(wtx: WriteTxn) -> None:
            with write_batch(machine.keyspace) as batch:
                if merging_into is not None:
                    freeze(batch, region.id, merging_into)
                batch.put(machine.scope.applied_key, encode_u64(index))
            self.store.stage_state(wtx, RegionLocalState(region.id, region=region))

        self._structural(machine, stage)
        machine.reload()

    def store_restore(
        self, inner: RangeMachine, region: Region, data: bytes, merging_into: int | None
    ) -> None:
        """See `RegionStorage.store_restore`: the image goes into the range it describes,
        never the (wider, or placeholder) range the replica had before."""
        machine = _machine_of(inner)

        def stage(wtx: WriteTxn) -> None:
            machine.scope = region_scope(region)
            machine.restore(data)
            if merging_into is not None:
                with write_batch(machine.keyspace) as batch:
                    freeze(batch, region.id, merging_into)
            self.store.stage_state(wtx, RegionLocalState(region.id, region=region))

        self._structural(machine, stage)

    def stored_merge_target(self, inner: RangeMachine) -> int | None:
        """See `RegionStorage.stored_merge_target`."""
        machine = _machine_of(inner)
        region_id = machine.scope.region_id
        return None if region_id is None else frozen_target(machine.keyspace, region_id)

    def _structural(self, machine: StoreMachine, stage: Callable[[WriteTxn], None]) -> None:
        """Run `stage` in one write transaction; if it does not commit, put the machine's
        range and progress back as the disk has them."""
        scope = machine.scope
        try:
            with self.store.env.write() as wtx, self.store.keyspace.group(wtx):
                stage(wtx)
        except BaseException:
            machine.scope = scope
            machine.reload()
            raise
        self.writes += 1

    def _record(self, state: RegionLocalState) -> RegionRecord:
        region = state.region
        mine = region.peer_on(self.node_id) if region is not None else None
        pid = mine.id if mine is not None else state.peer_id
        pid = pid or peer_id(state.region_id, self.node_id)
        tomb = state.state is LocalPeerState.TOMBSTONE
        return RegionRecord(
            state.region_id, pid, PeerState.TOMBSTONE if tomb else PeerState.NORMAL, region
        )

    def _local(self, record: RegionRecord) -> RegionLocalState:
        if record.state is PeerState.TOMBSTONE:
            return RegionLocalState(record.region_id, LocalPeerState.TOMBSTONE, record.region)
        numbered = record.peer_id if record.region is None else 0
        return RegionLocalState(
            record.region_id, LocalPeerState.NORMAL, record.region, peer_id=numbered
        )


def _machine_of(inner: RangeMachine) -> StoreMachine:
    if not isinstance(inner, StoreRangeMachine):
        raise TypeError(f"LMDB regions hold StoreRangeMachines, not {type(inner).__name__}")
    return inner.store


def _system_records(machine: StoreMachine, region_id: int) -> list[tuple[bytes, bytes]]:
    """Region `region_id`'s system records (applied index, counts), at most 16,387."""
    bounds = Scope.region(region_id).system_bounds()
    assert bounds is not None
    return machine.keyspace.scan(*bounds)
