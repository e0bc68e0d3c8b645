"""Region hosts in the simulator: group commit, epochs, splits, peer creation, quiescence."""

from __future__ import annotations

import random

from cairn.meta.region import Peer, PeerRole, Region, range_key, slot_bound
from cairn.raft.config import Config
from cairn.raft.types import ConfChangeType, NodeId
from cairn.shard.host import HostConfig, RegionHost, StaleEpochError
from cairn.shard.replica import Completion, Outcome, ReplicaConfig
from cairn.sim.kv_machine import KVCommand, KVOp
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.multiraft import MultiCluster
from cairn.sim.network import NetworkFaults, SimNetwork
from cairn.sim.node_disk import FSYNC_LATENCY, BackgroundSyncDisk
from cairn.sim.range_kv import RangeKVMachine


def make_cluster(
    nodes: int = 3, hibernate: bool = True, background_sync: bool = False
) -> MultiCluster:
    loop = EventLoop()
    net = SimNetwork(loop, random.Random(1), NetworkFaults())
    raft = Config(id=1, election_tick=10, heartbeat_tick=2)
    config = HostConfig(ReplicaConfig(raft, tick_interval=0.01), hibernate=hibernate)
    cluster = MultiCluster(loop, net, config)
    rng = random.Random(5)
    for i in range(1, nodes + 1):
        cluster.add_node(i, random.Random(rng.getrandbits(64)), background_sync=background_sync)
        cluster.start(i)
    return cluster


def found(cluster: MultiCluster, region_id: int, start: bytes, end: bytes, nodes: int) -> None:
    peers = tuple(Peer(region_id * 100 + n, n) for n in range(1, nodes + 1))
    region = Region(region_id, start, end, peers=peers)
    for n in range(1, nodes + 1):
        host = cluster.host(n)
        assert host is not None
        host.bootstrap_region(region)


def run(cluster: MultiCluster, seconds: float) -> None:
    deadline = cluster.loop.now + int(seconds * NS_PER_SECOND)
    while cluster.loop.now < deadline and cluster.loop.run_one():
        pass


def leader_of(cluster: MultiCluster, region_id: int) -> RegionHost:
    hosts = [
        h
        for n in sorted(cluster.nodes)
        if (h := cluster.host(n)) is not None
        and region_id in h.peers
        and h.peers[region_id].replica.is_leader
    ]
    assert len(hosts) == 1, f"region {region_id}: {len(hosts)} leaders"
    return hosts[0]


def put(key: str, value: str) -> bytes:
    return KVCommand(KVOp.PUT, key, value).encode()


def machine(host: RegionHost, region_id: int) -> RangeKVMachine:
    inner = host.peers[region_id].machine.inner
    assert isinstance(inner, RangeKVMachine)
    return inner


def test_many_regions_elect_and_share_one_write_per_drain() -> None:
    c = make_cluster()
    for r in range(1, 9):
        found(c, r, slot_bound(r * 100), slot_bound(r * 100 + 100), 3)
    run(c, 1.0)
    done: list[Completion] = []
    for r in range(1, 9):
        leader = leader_of(c, r)
        key = _key_in_slot(r * 100 + 1)
        leader.propose(r, leader.peers[r].region.epoch, put(key, "v"), done.append)
    disk_writes = {n: c.nodes[n].disk.writes for n in c.nodes}
    run(c, 0.2)
    assert [d.outcome for d in done] == [Outcome.OK] * 8
    # Each node wrote far fewer times than regions x Readies: the batches were grouped.
    for n in c.nodes:
        assert c.nodes[n].disk.writes - disk_writes[n] < 8 * 3


def _key_in_slot(slot: int) -> str:
    from cairn.store.slot import key_slot

    i = 0
    while key_slot(f"k{i}".encode()) != slot:
        i += 1
    return f"k{i}"


def test_stale_epoch_is_refused_with_a_typed_error_and_split_moves_keys() -> None:
    c = make_cluster()
    found(c, 1, b"", b"", 3)
    run(c, 1.0)
    leader = leader_of(c, 1)
    epoch = leader.peers[1].region.epoch
    a, b = _key_in_slot(10), _key_in_slot(9000)
    done: list[Completion] = []
    leader.propose(1, epoch, put(a, "1"), done.append)
    leader.propose(1, epoch, put(b, "2"), done.append)
    run(c, 0.2)
    leader.split(1, epoch, slot_bound(5000), 2, (201, 202, 203), done.append)
    run(c, 0.3)
    assert [d.outcome for d in done] == [Outcome.OK] * 3
    leader.propose(1, epoch, put(a, "3"), done.append)
    assert done[-1].outcome is Outcome.REJECTED
    assert isinstance(done[-1].value, StaleEpochError)
    for n in (1, 2, 3):
        host = c.host(n)
        assert host is not None
        assert host.peers[1].region.end == slot_bound(5000)
        assert host.peers[2].region.start == slot_bound(5000)
        assert machine(host, 1).data == {a: "1"}
        assert machine(host, 2).data == {b: "2"}
    run(c, 1.0)
    right = leader_of(c, 2)
    on_right: list[Completion] = []
    right.propose(2, right.peers[2].region.epoch, put(b, "4"), on_right.append)
    # A key of the right half sent to the left region under its new epoch: not applied.
    left = leader_of(c, 1)
    on_left: list[Completion] = []
    left.propose(1, left.peers[1].region.epoch, put(b, "5"), on_left.append)
    run(c, 0.3)
    assert on_right[0].outcome is Outcome.OK
    assert on_left[0].outcome is Outcome.REJECTED
    assert isinstance(on_left[0].value, StaleEpochError)
    assert range_key(b.encode()) >= slot_bound(5000)


def test_a_crash_after_a_split_keeps_both_halves() -> None:
    c = make_cluster()
    found(c, 1, b"", b"", 3)
    run(c, 1.0)
    leader = leader_of(c, 1)
    a, b = _key_in_slot(10), _key_in_slot(9000)
    done: list[Completion] = []
    epoch = leader.peers[1].region.epoch
    leader.propose(1, epoch, put(a, "1"), done.append)
    leader.propose(1, epoch, put(b, "2"), done.append)
    leader.split(1, epoch, slot_bound(5000), 2, (201, 202, 203), done.append)
    run(c, 0.5)
    for n in (1, 2, 3):
        c.crash(n)
    for n in (1, 2, 3):
        c.start(n)
    run(c, 2.0)
    for n in (1, 2, 3):
        host = c.host(n)
        assert host is not None
        assert machine(host, 1).data == {a: "1"}
        assert machine(host, 2).data == {b: "2"}


def test_a_learner_added_on_a_new_node_is_created_by_a_message() -> None:
    c = make_cluster(4)
    found(c, 1, b"", b"", 3)
    run(c, 1.0)
    leader = leader_of(c, 1)
    done: list[Completion] = []
    leader.propose(1, leader.peers[1].region.epoch, put("x", "1"), done.append)
    leader.change_peer(1, ConfChangeType.ADD_LEARNER, Peer(104, 4), done.append)
    run(c, 1.0)
    assert [d.outcome for d in done] == [Outcome.OK, Outcome.OK]
    new = c.host(4)
    assert new is not None and 1 in new.peers
    assert machine(new, 1).data == {"x": "1"}
    assert new.peers[1].region.peer(104) == Peer(104, 4, PeerRole.LEARNER)


def test_idle_regions_quiesce_and_a_request_wakes_one() -> None:
    c = make_cluster()
    for r in range(1, 21):
        found(c, r, slot_bound(r * 100), slot_bound(r * 100 + 100), 3)
    run(c, 3.0)
    hosts = [h for n in (1, 2, 3) if (h := c.host(n)) is not None]
    assert all(not h.awake for h in hosts)
    before = sum(h.region_ticks for h in hosts)
    run(c, 1.0)
    assert sum(h.region_ticks for h in hosts) == before
    leader = leader_of(c, 7)
    done: list[Completion] = []
    leader.propose(7, leader.peers[7].region.epoch, put(_key_in_slot(701), "v"), done.append)
    run(c, 0.3)
    assert done[0].outcome is Outcome.OK


def test_a_dead_leader_of_a_quiescent_region_is_replaced() -> None:
    c = make_cluster()
    found(c, 1, b"", b"", 3)
    run(c, 3.0)
    old = leader_of(c, 1)
    assert not old.awake
    c.crash(old.node_id)
    run(c, 2.0)
    new = leader_of(c, 1)
    assert new.node_id != old.node_id
    done: list[Completion] = []
    new.propose(1, new.peers[1].region.epoch, put("k", "v"), done.append)
    run(c, 0.3)
    assert done[0].outcome is Outcome.OK


def _nodes(c: MultiCluster) -> list[NodeId]:
    return sorted(c.nodes)


def test_hundreds_of_idle_regions_cost_a_host_no_more_events_than_one() -> None:
    """Quiescent regions are not ticked: once 100 idle regions have quiesced, half a second
    of virtual time runs exactly as many events (host timers, liveness) as with one region,
    and without hibernation every region is ticked on every host tick."""
    counts = {}
    for n, hibernate in ((1, True), (100, True), (100, False)):
        c = make_cluster(hibernate=hibernate)
        for r in range(1, n + 1):
            found(c, r, slot_bound(r * 16), slot_bound(r * 16 + 16), 3)
        run(c, 1.5)
        hosts = [h for i in (1, 2, 3) if (h := c.host(i)) is not None]
        steps, ticks = c.loop.steps, sum(h.region_ticks for h in hosts)
        run(c, 0.5)
        counts[(n, hibernate)] = (c.loop.steps - steps, sum(h.region_ticks for h in hosts) - ticks)
    assert counts[(100, True)] == counts[(1, True)]
    assert counts[(100, True)][1] == 0
    assert counts[(100, False)][1] >= 100 * 3 * 45


def test_with_background_fsyncs_a_write_is_answered_only_once_a_quorum_synced_it() -> None:
    c = make_cluster(background_sync=True)
    found(c, 1, b"", b"", 3)
    run(c, 2.0)
    leader = leader_of(c, 1)
    disks = [c.nodes[n].disk for n in (1, 2, 3)]
    for disk in disks:
        assert isinstance(disk, BackgroundSyncDisk)
        disk.latency = (0.05, 0.05)  # slow fsyncs (half an election timeout)
    done: list[Completion] = []
    leader.propose(1, leader.peers[1].region.epoch, put("k", "v"), done.append)
    run(c, 0.03)
    assert done == []  # replicated everywhere by now, but synced nowhere
    run(c, 1.0)
    assert [d.outcome for d in done] == [Outcome.OK]
    for n in (1, 2, 3):  # acknowledged, so durable on a quorum: a crash of all keeps it
        c.crash(n)
    for disk in disks:
        disk.latency = FSYNC_LATENCY
    for n in (1, 2, 3):
        c.start(n)
    run(c, 3.0)
    assert machine(leader_of(c, 1), 1).data == {"k": "v"}


def test_with_a_slow_fsync_the_next_write_leaves_before_it_ends() -> None:
    """Pipelined writes: while the leader's first fsync runs, a second write is taken
    as its own Ready (numbered), written and sent to the followers at once; neither is
    answered before a quorum synced it, and they complete in log order."""
    c = make_cluster(background_sync=True)
    found(c, 1, b"", b"", 3)
    run(c, 2.0)
    leader = leader_of(c, 1)
    for n in (1, 2, 3):
        disk = c.nodes[n].disk
        assert isinstance(disk, BackgroundSyncDisk)
        disk.latency = (0.05, 0.05)
    replica = leader.peers[1].replica
    before = replica.raw.log.last_index()
    done: list[str] = []
    epoch = leader.peers[1].region.epoch
    leader.propose(1, epoch, put("a", "1"), lambda d: done.append(f"a {d.outcome.name}"))
    run(c, 0.01)
    leader.propose(1, epoch, put("b", "2"), lambda d: done.append(f"b {d.outcome.name}"))
    run(c, 0.01)
    # Both entries are on every follower's log, 20 ms into a 50 ms fsync.
    for n in (1, 2, 3):
        host = c.host(n)
        assert host is not None
        assert host.peers[1].replica.raw.log.last_index() == before + 2, n
    assert replica.raw.ready_in_progress and done == []
    run(c, 1.0)
    assert done == ["a OK", "b OK"]
    assert machine(leader, 1).data == {"a": "1", "b": "2"}
