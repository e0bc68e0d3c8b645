"""The placement group as a hosted region (`cairn.placement.group_host`), in simulation.

Its members keep the metadata on their own disks across a restart of the whole group, and
no node's region host ever creates a peer of the placement region from a message.
"""

from __future__ import annotations

import random

from pd_group_harness import MEMBERS, new_group

from cairn.meta.region import PLACEMENT_REGION_ID, Peer, Region
from cairn.placement.commands import AddNode
from cairn.placement.group_host import KeylessMachine, placement_region
from cairn.raft.config import Config
from cairn.raft.types import Entry, Message, MessageType
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.host import HostConfig, RegionHost
from cairn.shard.replica import ReplicaConfig
from cairn.sim.env import SimClock
from cairn.sim.loop import EventLoop
from cairn.sim.node_disk import SimNodeDisk
from cairn.sim.range_kv import RangeKVMachine


def test_the_whole_group_restarts_from_its_disks_with_its_metadata() -> None:
    group = new_group()
    for node in (4, 5):
        group.ask_leader(node, (AddNode(node, f"n{node}", "", (), 0),))
    for node in MEMBERS:
        group.crash(node)
    for node in MEMBERS:
        group.start(node)
    leader = group.wait_leader()
    assert {4, 5} <= set(leader.driver.metadata.nodes)
    assert all(m.replica.term > 1 for m in group.members.values())


def _append_to(region: Region, to: int) -> Envelope:
    msg = Message(MessageType.APP, to=to, frm=2, term=5, index=0, entries=(Entry(5, 1),))
    return Envelope(EnvelopeKind.RAFT, region.id, Peer(2, 2), Peer(to, 1), message=msg)


def test_a_region_host_never_creates_the_placement_region_from_a_message() -> None:
    loop = EventLoop()
    disk = SimNodeDisk(random.Random(1))
    raft = Config(id=1, election_tick=10, heartbeat_tick=2)
    host = RegionHost(
        1,
        SimClock(loop, 1, 1.0, lambda: True),
        _Silent(),
        disk,
        random.Random(2),
        HostConfig(ReplicaConfig(raft, tick_interval=0.01)),
        RangeKVMachine,
    )
    host.on_envelopes([_append_to(placement_region(MEMBERS), 1)])
    assert host.peers == {} and disk.records() == []
    host.on_envelopes([_append_to(Region(5), 51)])  # any other region's would
    assert list(host.peers) == [5]
    host.stop()


def test_the_keyless_machine_never_splits_nor_merges() -> None:
    machine = KeylessMachine(RangeKVMachine())
    assert machine.keys_of(b"anything") == ()
    for call in (lambda: machine.split_off(lambda key: True, 1), lambda: machine.absorb(b"")):
        try:
            call()
        except ValueError:
            continue
        raise AssertionError("a placement machine was cut or grown")
    assert placement_region(MEMBERS).id == PLACEMENT_REGION_ID


class _Silent:
    def send(self, to: int, envelopes: object) -> None:
        pass

    def set_handler(self, handler: object) -> None:
        pass
