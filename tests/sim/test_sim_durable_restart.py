"""Replicas whose state machine is durable (a real node's LMDB) restart with the membership
in force at their applied index, so a region keeps its leader after restarts and moves.

The chaos run of 2026-12-07 (`cairn chaos --nodes 5 --faults basic,regions --seed 5
--duration 180`) lost region 2 for good: its three replicas had each restarted after
membership changes, and a durable machine restarts with an applied index past the log's
snapshot, whose membership the Raft core used to take as the current one. The conf
changes in between were never applied again, so each core counted votes among peers
long gone (and one believed itself a learner): a leader transfer to a restarted peer
could not win, and once one real voter died no election could. The simulator's machines
are not durable (they replay the log from the snapshot), which is why no simulated run
saw it; these tests give the replicas a machine that survives its crash, as LMDB does.
The replicas are hosted (one region on simulated region hosts), peer `10 + n` on node n.
"""

from __future__ import annotations

import random

from cairn.env import Clock
from cairn.env.host_store import RegionRecord
from cairn.meta.region import Peer, Region
from cairn.raft.config import Config
from cairn.raft.types import ConfChangeType, NodeId, StateRole
from cairn.shard.host import HostConfig, RegionHost
from cairn.shard.replica import Completion, Outcome, Replica, ReplicaConfig
from cairn.sim.env import SimClock
from cairn.sim.kv_machine import KVCommand, KVOp
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.multiraft import SimHostTransport
from cairn.sim.network import NetworkFaults, SimNetwork
from cairn.sim.node_disk import SimNodeDisk
from cairn.sim.range_kv import RangeKVMachine

FOUNDERS = (1, 2, 3, 4, 5)
REGION = 1


def peer(node: NodeId) -> int:
    return 10 + node


class DurableKV(RangeKVMachine):
    """A `RangeKVMachine` kept across its replica's crash: its applied index survives, as a
    durable machine's does (every apply here follows a synced log write)."""

    durable = True


class Group:
    """One region's replicas on simulated hosts on a perfect network, durable machines."""

    def __init__(self) -> None:
        self.loop = EventLoop()
        self.rng = random.Random(7)
        self.net = SimNetwork(self.loop, self.rng, NetworkFaults())
        raft = Config(id=1, election_tick=10, heartbeat_tick=2)
        self.config = HostConfig(ReplicaConfig(raft, tick_interval=0.01), hibernate=False)
        self.disks: dict[NodeId, SimNodeDisk] = {}
        self.machines: dict[NodeId, DurableKV] = {}
        self.hosts: dict[NodeId, RegionHost] = {}
        self.up: dict[NodeId, int] = {}
        self.done: list[Completion] = []

    def start(self, i: NodeId, founder: bool = True) -> None:
        incarnation = self.up.get(i, 0) + 1
        self.up[i] = incarnation
        clock: Clock = SimClock(self.loop, i, 1.0, lambda: self.up.get(i) == incarnation)
        disk = self.disks.setdefault(i, SimNodeDisk(random.Random(i), background_flush=0.0))
        machine = self.machines.setdefault(i, DurableKV())

        def machine_for(record: RegionRecord) -> DurableKV:
            return machine

        host = RegionHost(
            i, clock, SimHostTransport(self.net, i), disk, random.Random(100 + i),
            self.config, DurableKV, machine_for=machine_for,
        )  # fmt: skip
        self.hosts[i] = host
        if founder and REGION not in host.peers:
            region = Region(REGION, peers=tuple(Peer(peer(n), n) for n in FOUNDERS))
            host.bootstrap_region(region)

    def crash(self, i: NodeId) -> None:
        self.hosts.pop(i).stop()
        self.up.pop(i)
        self.net.register(i, None)
        self.disks[i].crash()

    def restart(self, i: NodeId) -> None:
        self.crash(i)
        self.start(i)

    def run(self, seconds: float) -> None:
        deadline = self.loop.now + int(seconds * NS_PER_SECOND)
        while self.loop.now < deadline and self.loop.run_one():
            pass

    def replica(self, i: NodeId) -> Replica:
        return self.hosts[i].peers[REGION].replica

    def leader(self) -> NodeId | None:
        leaders = [
            i for i, h in self.hosts.items() if REGION in h.peers and self.replica(i).is_leader
        ]
        assert len(leaders) <= 1
        return leaders[0] if leaders else None

    def change(self, kind: ConfChangeType, node: NodeId) -> None:
        leader = self.leader()
        assert leader is not None
        self.hosts[leader].change_peer(REGION, kind, Peer(peer(node), node), self.ok)
        self.run(0.5)

    def write(self, key: str) -> Outcome:
        leader = self.leader()
        if leader is None:
            return Outcome.REJECTED
        self.replica(leader).propose(KVCommand(KVOp.PUT, key, "v").encode(), self.ok)
        self.run(0.3)
        return self.done[-1].outcome

    def ok(self, completion: Completion) -> None:
        self.done.append(completion)


def moved_group(restart_second_voter: bool = True) -> Group:
    """Region 2 of the chaos run in small: founded on five nodes, cut to {2, 3, 4}; node
    4 down while node 3's replica moves to a new node 6; then 4, 2 and 6 restart (only 4
    without `restart_second_voter`). Ends with {2, 4, 6} voting and 2 leading."""
    g = Group()
    for i in FOUNDERS:
        g.start(i)
    g.run(1.0)
    leader = g.leader()
    assert leader is not None
    if leader != 2:
        g.hosts[leader].transfer_leader(REGION, peer(2))
        g.run(1.0)
    for gone in (5, 1):
        g.change(ConfChangeType.REMOVE_NODE, gone)
        g.crash(gone)
    assert g.write("a") is Outcome.OK
    g.crash(4)
    g.start(6, founder=False)
    g.change(ConfChangeType.ADD_LEARNER, 6)
    g.run(0.5)  # the learner catches up by snapshot (voters {2, 3, 4}, learner 6)
    g.change(ConfChangeType.ADD_NODE, 6)
    g.change(ConfChangeType.REMOVE_NODE, 3)
    g.crash(3)
    assert g.write("b") is Outcome.OK
    g.start(4)
    g.run(1.0)
    if restart_second_voter:
        g.restart(2)
        g.run(1.0)
        g.restart(6)
        g.run(1.0)
    assert [c.outcome for c in g.done] == [Outcome.OK] * len(g.done)
    return g


VOTERS = (peer(2), peer(4), peer(6))


def test_restarted_replicas_count_votes_among_the_members_they_applied() -> None:
    g = moved_group()
    for i in (2, 4, 6):
        conf = g.replica(i).raw.status().conf_state
        assert conf.voters == VOTERS and not conf.voters_outgoing, f"replica {i}"
        assert not conf.learners, f"replica {i}"
        assert g.replica(i).conf_state.voters == VOTERS, f"replica {i}"


def test_a_region_whose_replicas_restarted_survives_losing_one_voter() -> None:
    g = moved_group()
    g.crash(6)
    g.run(5.0)
    leader = g.leader()
    assert leader is not None and leader in (2, 4)
    assert g.write("c") is Outcome.OK


def test_leadership_moves_to_a_restarted_replica_while_another_voter_is_down() -> None:
    g = moved_group(restart_second_voter=False)
    assert g.leader() == 2
    g.crash(6)
    term = g.replica(2).term
    g.hosts[2].transfer_leader(REGION, peer(4))
    g.run(1.0)
    assert g.leader() == 4
    assert g.replica(4).term == term + 1  # one forced election, won at once
    assert g.replica(4).role is StateRole.LEADER
    assert g.write("c") is Outcome.OK
