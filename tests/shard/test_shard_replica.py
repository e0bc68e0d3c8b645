"""The replica driver, hosted, against the simulated network and disks: proposals, reads,
failures, recovery.

Every replica runs in a `RegionHost` (there is no other kind): these tests found one region
on a few simulated nodes (`MultiCluster`) and drive its replicas directly, as the hosts'
callers (the node, the placement member) do. Hibernation is off, so each test sees the
replica's own behaviour rather than quiescence's (`test_shard_host_ticking` has that); the
background-fsync path is `test_shard_multi_host`'s, catching up a new peer by snapshot too.
"""

from __future__ import annotations

import random

import pytest

from cairn.meta.region import Peer, Region
from cairn.raft.config import Config, ReadOnlyOption
from cairn.raft.types import ConfChangeType, NodeId, StateRole
from cairn.shard.host import HostConfig, RegionHost
from cairn.shard.replica import Completion, Outcome, Replica, ReplicaConfig
from cairn.sim.kv_machine import KVCommand, KVOp
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.multiraft import MultiCluster
from cairn.sim.network import NetworkFaults, SimNetwork, isolate
from cairn.sim.range_kv import RangeKVMachine

REGION = 1


class Harness:
    """One region on `n` simulated nodes, its replicas driven by hand."""

    def __init__(
        self,
        n: int,
        snapshot_threshold: int = 1000,
        read_only: ReadOnlyOption = ReadOnlyOption.SAFE,
    ) -> None:
        loop = EventLoop()
        self.net = SimNetwork(loop, random.Random(7), NetworkFaults())
        raft = Config(id=1, election_tick=10, heartbeat_tick=2, read_only_option=read_only)
        replica = ReplicaConfig(raft, tick_interval=0.01, snapshot_threshold=snapshot_threshold)
        self.cluster = MultiCluster(loop, self.net, HostConfig(replica, hibernate=False))
        self.ids = list(range(1, n + 1))
        rng = random.Random(5)
        region = Region(REGION, peers=tuple(Peer(10 + i, i) for i in self.ids))
        for i in self.ids:
            self.cluster.add_node(i, random.Random(rng.getrandbits(64)))
            self.host(i, started=True).bootstrap_region(region)

    def host(self, i: NodeId, started: bool = False) -> RegionHost:
        if started:
            return self.cluster.start(i)
        host = self.cluster.host(i)
        assert host is not None
        return host

    def replica(self, i: NodeId) -> Replica:
        return self.host(i).peers[REGION].replica

    def machine(self, i: NodeId) -> RangeKVMachine:
        inner = self.host(i).peers[REGION].machine.inner
        assert isinstance(inner, RangeKVMachine)
        return inner

    def run(self, seconds: float) -> None:
        loop = self.cluster.loop
        deadline = loop.now + int(seconds * NS_PER_SECOND)
        while loop.now < deadline and loop.run_one():
            pass

    def leader(self) -> Replica:
        live = [self.replica(i) for i in self.cluster.live()]
        leaders = [r for r in live if r.is_leader]
        assert len(leaders) == 1
        return leaders[0]

    def node_of(self, replica: Replica) -> NodeId:
        return next(i for i in self.cluster.live() if self.replica(i) is replica)


def put(key: str, value: str) -> bytes:
    return KVCommand(KVOp.PUT, key, value).encode()


def collect() -> tuple[list[Completion], object]:
    done: list[Completion] = []
    return done, done.append


def test_single_node_elects_itself_applies_and_reads() -> None:
    h = Harness(1)
    h.run(0.5)
    replica = h.leader()
    done, cb = collect()
    replica.propose(KVCommand(KVOp.CAS, "k", "v", expected=None).encode(), cb)  # type: ignore[arg-type]
    h.run(0.1)
    assert done == [Completion(Outcome.OK, value=True)]
    replica.read(cb)  # type: ignore[arg-type]
    h.run(0.1)
    assert done[1].outcome is Outcome.OK
    assert h.machine(1).get("k") == "v"


def test_proposals_replicate_and_followers_redirect_to_the_leader() -> None:
    h = Harness(3)
    h.run(1.0)
    leader = h.leader()
    follower = next(h.replica(i) for i in h.ids if h.replica(i) is not leader)
    done, cb = collect()
    follower.propose(put("a", "1"), cb)  # type: ignore[arg-type]
    assert done[0].outcome is Outcome.REJECTED
    assert done[0].leader_hint == leader.node_id  # its peer id
    leader.propose(put("a", "1"), cb)  # type: ignore[arg-type]
    h.run(0.2)
    assert done[1].outcome is Outcome.OK
    assert all(h.machine(i).get("a") == "1" for i in h.ids)
    follower.read(cb)  # type: ignore[arg-type]
    h.run(0.2)
    assert done[2].outcome is Outcome.OK


@pytest.mark.parametrize("mode", [ReadOnlyOption.LEASE_BASED, ReadOnlyOption.SAFE])
def test_a_leader_holding_its_lease_serves_reads_at_once(mode: ReadOnlyOption) -> None:
    h = Harness(3, read_only=mode)
    h.run(1.0)
    leader = h.leader()
    done, cb = collect()
    leader.propose(put("a", "1"), cb)  # type: ignore[arg-type]
    h.run(0.2)
    leader.read(cb)  # type: ignore[arg-type]
    at_once = mode is ReadOnlyOption.LEASE_BASED
    assert len(done) == (2 if at_once else 1)
    assert leader.counters.lease_reads == (1 if at_once else 0)
    h.run(0.2)
    assert [c.outcome for c in done] == [Outcome.OK, Outcome.OK]
    # Cut off from its quorum, the old leader's lease runs out (and check-quorum deposes
    # it): its reads are refused or wait, and never answer from the state it has.
    h.net.set_partition(isolate(h.node_of(leader), h.ids))
    h.run(0.2)
    leader.read(cb)  # type: ignore[arg-type]
    h.run(0.5)
    assert all(c.outcome is not Outcome.OK for c in done[2:])


def test_a_deposed_leader_completes_pending_proposals_as_unknown() -> None:
    h = Harness(3)
    h.run(1.0)
    old = h.leader()
    h.net.set_partition(isolate(h.node_of(old), h.ids))
    done, cb = collect()
    old.propose(put("x", "lost?"), cb)  # type: ignore[arg-type]
    h.run(1.0)
    assert done and done[0].outcome is Outcome.UNKNOWN
    h.net.heal()
    h.run(1.0)
    assert h.leader() is not old
    assert all(h.machine(i).get("x") is None for i in h.ids)


def test_a_refused_conf_change_completes_as_rejected() -> None:
    h = Harness(3)
    h.run(1.0)
    leader = h.leader()
    host = h.host(h.node_of(leader))
    done, cb = collect()
    learner = Peer(14, 4)
    host.change_peer(REGION, ConfChangeType.ADD_LEARNER, learner, cb)  # type: ignore[arg-type]
    host.change_peer(REGION, ConfChangeType.ADD_LEARNER, learner, cb)  # type: ignore[arg-type]
    h.run(0.5)
    outcomes = sorted(c.outcome.value for c in done)
    assert outcomes == ["ok", "rejected"]
    assert leader.conf_state.learners == (14,)


def test_restart_recovers_from_disk_and_snapshots_compact_the_log() -> None:
    h = Harness(3, snapshot_threshold=10)
    h.run(1.0)
    done, cb = collect()
    for i in range(30):
        h.leader().propose(put(f"k{i % 3}", str(i)), cb)  # type: ignore[arg-type]
        h.run(0.02)
    h.run(0.5)
    assert [c.outcome for c in done] == [Outcome.OK] * 30
    victim = next(i for i in h.ids if not h.replica(i).is_leader)
    assert h.replica(victim).counters.snapshots_taken > 0
    disk = h.cluster.nodes[victim].disk
    assert disk.load(REGION).snapshot.metadata.index > 1
    h.cluster.crash(victim)
    h.cluster.start(victim)
    assert h.machine(victim).get("k2") is not None  # restored from the durable snapshot
    h.run(1.0)
    assert h.machine(victim).data == h.machine(h.node_of(h.leader())).data
    assert h.replica(victim).role is StateRole.FOLLOWER
