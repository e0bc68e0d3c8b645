"""A placement member's region host on a real node: its own LMDB store, the node's links.

Theory of operation (`cairn.placement.group_host` says why the placement group is a region
in a host of its own). On a member node, `MemberHost` opens `<data_dir>/placement` as a
`NodeStore` holding one region, `PLACEMENT_REGION_ID`, founds it there on the first start
(one transaction, `found_regions`), and builds the member's `RegionHost` over it:

* **Store.** `PlacementHostStore`: the `HostStore` of that environment (group writes of
  the host's drains, as every region host's) with its fsyncs on a thread of their own
  (`BackgroundSync`), so a heartbeat round's write never holds the event loop for an
  fsync. It is not a `RegionStorage`: the placement machine keeps its state in its images
  and the log, not in LMDB records of its own.
* **Links.** `PlacementHostTransport`: the node's envelope transport, sending in the same
  `ENVELOPES` and `ENVELOPE_CHUNK` frames as the regions; the transport hands it the
  envelopes of the placement region only. It sends no `LIVENESS`: the node's host does.
* **Upgrade.** A member's directory from before (the lone group's layout of one Raft log,
  written by the standalone replica) is migrated on start, in place and in one transaction
  (`cairn.storage.lone_group`), keeping its term, vote, entries and snapshot; the group
  carries on from there. A node of that older version cannot talk to the group any more
  (its RAFT frames are dropped, `cairn.runtime.transport`): upgrade every member.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import msgpack

from cairn.env import DurableState, LogBatch
from cairn.env.host_store import RegionRecord, SyncDone
from cairn.meta.region import PLACEMENT_REGION_ID, Region
from cairn.placement.group_host import (
    KeylessMachine,
    machine_for_region,
    placement_host_config,
    placement_region,
)
from cairn.raft.types import NodeId
from cairn.runtime.envelope_codec import TcpHostTransport
from cairn.runtime.fsync_thread import FsyncThread
from cairn.runtime.host_store import FailureHandler, LmdbHostStore, found_regions
from cairn.runtime.real_env import LoopClock
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.host import EnvelopeHandler, RegionHost
from cairn.shard.region_machine import encode_region
from cairn.shard.replica import ReplicaConfig
from cairn.storage.lmdb_env import LmdbOptions
from cairn.storage.lone_group import migrate_lone_group
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.storage.region_meta import RegionLocalState

log = logging.getLogger("cairn.placement")

PLACEMENT_DIR = "placement"
"""The placement member's store, under the node's data directory."""
PLACEMENT_MAP_SIZE = 1 << 30


class PlacementHostStore:
    """The placement host's `HostStore` and `BackgroundSync` (see the module docstring)."""

    def __init__(self, store: NodeStore, node_id: NodeId, on_failure: FailureHandler | None):
        self.store = store
        self._records = LmdbHostStore(store, node_id, on_failure)
        self._fsync = FsyncThread(store.env.sync, "cairn-pd-fsync", on_failure)

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        records: Sequence[RegionRecord] = (),
        apply: Callable[[], None] | None = None,
    ) -> None:
        """See `HostStore.write_many`."""
        self._records.write_many(batches, sync, records, apply)

    def load(self, region_id: int) -> DurableState:
        """See `HostStore.load`."""
        return self._records.load(region_id)

    def records(self) -> list[RegionRecord]:
        """See `HostStore.records`."""
        return self._records.records()

    def sync_in_background(self, done: SyncDone) -> None:
        """See `BackgroundSync`."""
        self._fsync.start(done)

    @property
    def syncs(self) -> int:
        """The fsyncs of this store, inline and background."""
        return self._records.syncs + self._fsync.syncs

    def close(self) -> None:
        """Wait for an fsync still running (at most one), then close the environment."""
        self._fsync.shutdown()
        self.store.close()


class PlacementHostTransport:
    """The placement host's `HostTransport` (see the module docstring)."""

    def __init__(self, inner: TcpHostTransport) -> None:
        self.inner = inner

    def send(self, to: NodeId, envelopes: Sequence[Envelope]) -> None:
        """See `HostTransport.send`."""
        kept = [e for e in envelopes if e.kind is not EnvelopeKind.LIVENESS]
        if kept:
            self.inner.send(to, kept)

    def set_handler(self, handler: EnvelopeHandler | None) -> None:
        """See `HostTransport.set_handler`: the placement region's envelopes go there."""
        self.inner.placement_handler = handler


def wrap_image(region: Region, data: bytes) -> bytes:
    """A lone group's snapshot image as the placement region's machine reads it."""
    return bytes(msgpack.packb([encode_region(region), data]))


def open_placement_store(
    path: Path, node_id: NodeId, cluster_id: str, members: Sequence[NodeId]
) -> NodeStore:
    """The member's store at `path`: migrated from the lone group's layout if it has it,
    with the placement region founded if it has none (both durable on return)."""
    path.mkdir(parents=True, exist_ok=True)
    store = NodeStore.open(path, node_id, cluster_id, LmdbOptions(map_size=PLACEMENT_MAP_SIZE))
    try:
        region = placement_region(members)
        state = RegionLocalState(PLACEMENT_REGION_ID, region=region)
        if migrate_lone_group(store, state, lambda data: wrap_image(region, data)):
            log.warning("moved the placement log in %s to the hosted layout", path)
        if not store.is_live(PLACEMENT_REGION_ID):
            found_regions(store, [region], RAFT_INIT_INDEX)
    except BaseException:
        store.close()
        raise
    return store


class MemberHost:
    """What a member node needs to build its placement host, and to close it."""

    def __init__(
        self,
        data_dir: Path,
        node_id: NodeId,
        cluster_id: str,
        members: Sequence[NodeId],
        clock: LoopClock,
        links: TcpHostTransport,
        replica: ReplicaConfig,
        on_failure: FailureHandler | None = None,
    ) -> None:
        self.node_id = node_id
        self.clock = clock
        self.links = links
        self.replica = replica
        node_store = open_placement_store(data_dir / PLACEMENT_DIR, node_id, cluster_id, members)
        self.store = PlacementHostStore(node_store, node_id, on_failure)
        self.host: RegionHost | None = None

    def host_for(self, machine: KeylessMachine) -> RegionHost:
        """See `cairn.placement.group_host.HostFactory`."""
        self.host = RegionHost(
            self.node_id,
            self.clock,
            PlacementHostTransport(self.links),
            self.store,
            random.Random(),
            placement_host_config(self.replica),
            lambda: machine,
            machine_for=machine_for_region(machine),
        )
        return self.host

    def close(self) -> None:
        """Stop the host (if built), then close its store."""
        if self.host is not None:
            self.host.stop()
        self.links.placement_handler = None
        self.store.close()
