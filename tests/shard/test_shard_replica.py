"""The node driver against the simulated `Env`: proposals, reads, failures, recovery."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from cairn.env import LogBatch
from cairn.raft.config import Config, ReadOnlyOption
from cairn.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    NodeId,
    StateRole,
)
from cairn.shard.replica import Completion, Outcome, Replica, ReplicaConfig
from cairn.sim.disk import SimDisk
from cairn.sim.env import Buggify, SimClock, SimEnv, SimTransport
from cairn.sim.kv_machine import KVCommand, KVMachine, KVOp
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.network import NetworkFaults, SimNetwork, isolate


class Harness:
    """A few replicas on a perfect simulated network, driven by hand."""

    def __init__(
        self,
        n: int,
        snapshot_threshold: int = 1000,
        read_only: ReadOnlyOption = ReadOnlyOption.SAFE,
        disk: Callable[[EventLoop, NodeId], SimDisk] | None = None,
    ) -> None:
        self.loop = EventLoop()
        self.rng = random.Random(7)
        self.net = SimNetwork(self.loop, self.rng, NetworkFaults())
        self.ids = list(range(1, n + 1))
        make = disk or (lambda _loop, i: SimDisk(random.Random(i), background_flush=0.0))
        self.disks = {i: make(self.loop, i) for i in self.ids}
        self.config = ReplicaConfig(
            Config(id=1, election_tick=10, heartbeat_tick=2, read_only_option=read_only),
            snapshot_threshold=snapshot_threshold,
        )
        self.replicas: dict[NodeId, Replica] = {}
        self.machines: dict[NodeId, KVMachine] = {}
        for i in self.ids:
            self.start(i)

    def start(self, i: NodeId, bootstrap: bool = True) -> None:
        clock = SimClock(self.loop, i, 1.0, lambda: True)
        env = SimEnv(
            i,
            clock,
            SimTransport(self.net, i),
            self.disks.setdefault(i, SimDisk(random.Random(i), background_flush=0.0)),
            random.Random(100 + i),
            Buggify(self.rng, False),
        )
        self.machines[i] = KVMachine()
        conf = ConfState(voters=tuple(self.ids)) if bootstrap else None
        self.replicas[i] = Replica(env, self.machines[i], self.config, conf)

    def crash(self, i: NodeId) -> None:
        self.replicas[i].stop()
        self.net.register(i, None)
        self.disks[i].crash()

    def run(self, seconds: float) -> None:
        deadline = self.loop.now + int(seconds * NS_PER_SECOND)
        while self.loop.now < deadline and self.loop.run_one():
            pass

    def leader(self) -> Replica:
        leaders = [r for r in self.replicas.values() if not r.stopped and r.is_leader]
        assert len(leaders) == 1
        return leaders[0]


class BackgroundSyncSimDisk(SimDisk):
    """A `SimDisk` with `sync_in_background` (as the placement group's LMDB log has),
    whose fsyncs end on the next loop turn, or, while `held`, only at `release`."""

    def __init__(self, loop: EventLoop, node: NodeId) -> None:
        super().__init__(random.Random(node), background_flush=0.0)
        self.loop = loop
        self.node = node
        self.held = False
        self.waiting: list[tuple[LogBatch | None, Callable[[Exception | None], None]]] = []
        self.background_syncs = 0

    def sync_in_background(self, done: Callable[[Exception | None], None]) -> None:
        self.background_syncs += 1
        self.waiting.append((self.pending[-1] if self.pending else None, done))
        if not self.held:
            self.loop.call_later(1, self.node, "fsync", self.release)

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for last, done in waiting:
            for i, write in enumerate(self.pending):
                if write is last:
                    self.flush(i + 1)
                    break
            done(None)


def test_a_background_fsync_acknowledges_nothing_before_a_quorum_synced() -> None:
    h = Harness(3, disk=BackgroundSyncSimDisk)
    disks = {i: d for i, d in h.disks.items() if isinstance(d, BackgroundSyncSimDisk)}
    h.run(1.0)
    leader = h.leader()
    assert all(d.background_syncs > 0 for d in disks.values())  # the path is taken
    followers = [i for i in h.ids if i != leader.node_id]
    for d in disks.values():
        d.held = True
    done, cb = collect()  # holds stay under the election timeout (10 ticks of 10 ms)
    leader.propose(put("a", "1"), cb)  # type: ignore[arg-type]
    h.run(0.03)
    assert done == [] and all(d.waiting for d in disks.values())
    assert all(m.get("a") is None for m in h.machines.values())
    disks[leader.node_id].release()  # the leader alone: no quorum
    h.run(0.03)
    assert done == []
    disks[followers[0]].release()  # a quorum has it on disk
    h.run(0.03)
    assert [c.outcome for c in done] == [Outcome.OK]
    assert h.machines[leader.node_id].get("a") == "1"
    h.crash(followers[1])  # its unsynced copy may be lost; the others hold the write
    for d in disks.values():
        d.held = False
        d.release()
    leader.propose(put("b", "2"), cb)  # type: ignore[arg-type]
    h.run(0.5)
    assert [c.outcome for c in done] == [Outcome.OK, Outcome.OK]
    assert h.machines[followers[0]].get("b") == "2"


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
    assert h.machines[1].get("k") == "v"


def test_proposals_replicate_and_followers_redirect_to_the_leader() -> None:
    h = Harness(3)
    h.run(1.0)
    leader = h.leader()
    follower = next(r for r in h.replicas.values() if r is not leader)
    done, cb = collect()
    follower.propose(put("a", "1"), cb)  # type: ignore[arg-type]
    assert done[0].outcome is Outcome.REJECTED
    assert done[0].leader_hint == leader.node_id
    leader.propose(put("a", "1"), cb)  # type: ignore[arg-type]
    h.run(0.2)
    assert done[1].outcome is Outcome.OK
    assert all(m.get("a") == "1" for m in h.machines.values())
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
    h.net.set_partition(isolate(leader.node_id, h.ids))
    h.run(0.2)
    leader.read(cb)  # type: ignore[arg-type]
    h.run(0.5)
    assert all(c.outcome is not Outcome.OK for c in done[2:])


def test_a_deposed_leader_completes_pending_proposals_as_unknown() -> None:
    h = Harness(3)
    h.run(1.0)
    old = h.leader()
    h.net.set_partition(isolate(old.node_id, h.ids))
    done, cb = collect()
    old.propose(put("x", "lost?"), cb)  # type: ignore[arg-type]
    h.run(1.0)
    assert done and done[0].outcome is Outcome.UNKNOWN
    h.net.heal()
    h.run(1.0)
    assert h.leader() is not old
    assert all(m.get("x") is None for m in h.machines.values())


def test_a_refused_conf_change_completes_as_rejected() -> None:
    h = Harness(3)
    h.run(1.0)
    leader = h.leader()
    done, cb = collect()
    add = ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_LEARNER, 4),))
    leader.propose_conf_change(add, cb)  # type: ignore[arg-type]
    leader.propose_conf_change(add, cb)  # type: ignore[arg-type]
    h.run(0.5)
    outcomes = sorted(c.outcome.value for c in done)
    assert outcomes == ["ok", "rejected"]
    assert leader.conf_state.learners == (4,)


def test_restart_recovers_from_disk_and_snapshots_compact_the_log() -> None:
    h = Harness(3, snapshot_threshold=10)
    h.run(1.0)
    done, cb = collect()
    for i in range(30):
        h.leader().propose(put(f"k{i % 3}", str(i)), cb)  # type: ignore[arg-type]
        h.run(0.02)
    h.run(0.5)
    assert [c.outcome for c in done] == [Outcome.OK] * 30
    victim = next(i for i in h.ids if not h.replicas[i].is_leader)
    assert h.replicas[victim].counters.snapshots_taken > 0
    assert h.disks[victim].load().snapshot.metadata.index > 1
    h.crash(victim)
    h.start(victim)
    assert h.machines[victim].get("k2") is not None  # restored from the durable snapshot
    h.run(1.0)
    assert h.machines[victim].data == h.machines[h.leader().node_id].data
    assert h.replicas[victim].role is StateRole.FOLLOWER


def test_a_new_node_catches_up_by_snapshot() -> None:
    h = Harness(3, snapshot_threshold=5)
    h.run(1.0)
    _, cb = collect()
    for i in range(20):
        h.leader().propose(put("k", str(i)), cb)  # type: ignore[arg-type]
        h.run(0.02)
    h.start(4, bootstrap=False)
    add = ConfChange(changes=(ConfChangeSingle(ConfChangeType.ADD_LEARNER, 4),))
    h.leader().propose_conf_change(add, cb)  # type: ignore[arg-type]
    h.run(1.0)
    assert h.machines[4].get("k") == "19"
    assert h.replicas[4].counters.snapshots_restored >= 1
