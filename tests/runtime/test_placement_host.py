"""A member's placement host on LMDB: the upgrade of the old layout, and the envelope split.

A member's `<data_dir>/placement` written by the standalone replica (the lone group's
layout) is migrated on start, in one transaction, and a member built over the migrated
store recovers the metadata the old log held. The node's envelope transport hands the
placement region's envelopes to the placement host and nothing else.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import msgpack
import pytest

from cairn.env import DurableState, LogBatch
from cairn.env.host_store import RegionRecord
from cairn.meta.region import PLACEMENT_REGION_ID, Peer
from cairn.placement.commands import AddNode
from cairn.placement.driver import PlacementDriver
from cairn.placement.group_host import (
    KeylessMachine,
    machine_for_region,
    placement_host_config,
)
from cairn.placement.service import PlacementMachine, PlacementMember, encode_batch
from cairn.raft.config import Config
from cairn.raft.types import ConfState, Entry, HardState, Message, MessageType, Snapshot
from cairn.raft.types import SnapshotMetadata as Meta
from cairn.runtime.envelope_codec import TcpHostTransport
from cairn.runtime.host_store import LmdbHostStore
from cairn.runtime.placement_host import PLACEMENT_DIR, open_placement_store
from cairn.runtime.transport import TcpTransport, TransportConfig
from cairn.shard.envelope import Envelope, EnvelopeKind, liveness
from cairn.shard.host import RegionHost
from cairn.shard.replica import ReplicaConfig, encode_request
from cairn.sim.env import SimClock
from cairn.sim.loop import EventLoop
from cairn.storage.errors import CorruptLogError
from cairn.storage.log_store import LmdbLogStore
from cairn.storage.lone_group import has_lone_group
from cairn.storage.node_store import NodeStore
from cairn.storage.raft_keys import RaftKeys

MEMBERS = (1, 2, 3)
REPLICA = ReplicaConfig(Config(id=1, election_tick=10, heartbeat_tick=2), tick_interval=0.01)


def _old_layout(path: Path) -> None:
    """What the standalone replica left: a compaction snapshot holding node 7, then one
    committed entry adding node 8, in the lone group's layout."""
    machine = PlacementMachine(PlacementDriver())
    machine.apply(10, encode_batch([AddNode(7, "h:7", "", (), 5)]))
    meta = Meta(index=10, term=2, conf_state=ConfState(voters=MEMBERS))
    entry = Entry(2, 11, data=encode_request(b"rid", encode_batch([AddNode(8, "h:8", "", (), 6)])))
    store = LmdbLogStore.open(path, 1, "c")
    store.write(
        LogBatch(
            snapshot=Snapshot(data=machine.snapshot(), metadata=meta),
            entries=(entry,),
            hard_state=HardState(term=2, vote=1, commit=11),
        ),
        sync=True,
    )
    store.close()


def test_an_old_placement_log_is_migrated_in_place_on_start(tmp_path: Path) -> None:
    path = tmp_path / PLACEMENT_DIR
    _old_layout(path)
    store = open_placement_store(path, 1, "c", MEMBERS)
    try:
        assert not has_lone_group(store)
        state = store.state(PLACEMENT_REGION_ID)
        assert state is not None and state.region is not None
        assert [p.id for p in state.region.peers] == list(MEMBERS)
        durable = store.store(PLACEMENT_REGION_ID).load()
        assert durable.hard_state == HardState(term=2, vote=1, commit=11)
        assert [e.index for e in durable.entries] == [11]
        assert durable.snapshot.metadata.index == 10
        region_fields, inner = msgpack.unpackb(durable.snapshot.data)
        assert region_fields[0] == PLACEMENT_REGION_ID and isinstance(inner, bytes)
    finally:
        store.close()
    again = open_placement_store(path, 1, "c", MEMBERS)  # a second start changes nothing
    try:
        assert again.store(PLACEMENT_REGION_ID).load() == durable
    finally:
        again.close()
    with pytest.raises(Exception, match="node 1"):
        open_placement_store(path, 2, "c", MEMBERS)  # still this node's directory


def test_both_layouts_at_once_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / PLACEMENT_DIR
    open_placement_store(path, 1, "c", MEMBERS).close()  # founded in the new layout
    store = NodeStore.open(path, 1, "c")
    with store.env.write() as wtx:  # an old record appears beside it
        LmdbLogStore(store.env, keys=RaftKeys.single(store.env)).stage(
            wtx, LogBatch(hard_state=HardState(term=1))
        )
    store.close()
    with pytest.raises(CorruptLogError, match="both the old single-group placement log"):
        open_placement_store(path, 1, "c", MEMBERS)


class _SyncedStore:
    """The store's `HostStore` without a background fsync (this test has no event loop)."""

    def __init__(self, store: NodeStore) -> None:
        self.inner = LmdbHostStore(store, 1)

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        records: Sequence[RegionRecord] = (),
        apply: Callable[[], None] | None = None,
    ) -> None:
        self.inner.write_many(batches, sync, records, apply)

    def load(self, region_id: int) -> DurableState:
        return self.inner.load(region_id)

    def records(self) -> list[RegionRecord]:
        return self.inner.records()


class _Silent:
    def send(self, to: int, envelopes: Sequence[Envelope]) -> None:
        pass

    def set_handler(self, handler: object) -> None:
        pass


def test_a_member_over_the_migrated_store_recovers_the_old_metadata(tmp_path: Path) -> None:
    path = tmp_path / PLACEMENT_DIR
    _old_layout(path)
    store = open_placement_store(path, 1, "c", MEMBERS)
    loop = EventLoop()
    clock = SimClock(loop, 1, 1.0, lambda: True)

    def host_for(machine: KeylessMachine) -> RegionHost:
        return RegionHost(
            1, clock, _Silent(), _SyncedStore(store), random.Random(1),
            placement_host_config(REPLICA), lambda: machine,
            machine_for=machine_for_region(machine),
        )  # fmt: skip

    member = PlacementMember(host_for, MEMBERS, lambda to, reply: None)
    try:
        deadline = loop.now + 50_000_000  # 50 ms: the committed entry applies
        while loop.now < deadline and loop.run_one():
            pass
        assert sorted(member.driver.metadata.nodes) == [7, 8]
        assert member.replica.term == 2 and member.replica.applied == 11
    finally:
        member.stop()
        store.close()


def test_the_placement_regions_envelopes_reach_the_placement_host_only() -> None:
    async def main() -> tuple[list[Envelope], list[Envelope]]:
        config = TransportConfig(cluster_id="t")
        a = TcpTransport(1, ("127.0.0.1", 0), {}, config)
        await a.start()
        b = TcpTransport(2, ("127.0.0.1", 0), {1: a.bound_address}, config)
        await b.start()
        a.add_peer(2, b.bound_address)
        regions: list[Envelope] = []
        placement: list[Envelope] = []
        receiver = TcpHostTransport(a)
        receiver.set_handler(regions.extend)
        receiver.placement_handler = placement.extend
        while not b.connected(1) or not a.connected(2):
            await asyncio.sleep(0.01)
        beat = Message(MessageType.HEARTBEAT, to=1, frm=2, term=3)
        pd = Envelope(EnvelopeKind.RAFT, PLACEMENT_REGION_ID, Peer(2, 2), Peer(1, 1), message=beat)
        region = Envelope(EnvelopeKind.RAFT, 4, Peer(42, 2), Peer(41, 1), message=beat)
        TcpHostTransport(b).send(1, [pd, region, liveness(2, 1)])
        for _ in range(200):
            if len(regions) + len(placement) == 3:
                break
            await asyncio.sleep(0.01)
        receiver.placement_handler = None  # not a member (any more): dropped
        TcpHostTransport(b).send(1, [pd])
        await asyncio.sleep(0.1)
        await a.stop()
        await b.stop()
        return regions, placement

    regions, placement = asyncio.run(main())
    assert [e.region_id for e in placement] == [PLACEMENT_REGION_ID]
    assert [e.region_id for e in regions] == [4, 0]
