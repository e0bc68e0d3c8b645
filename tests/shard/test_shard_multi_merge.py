"""Region merges on simulated hosts: prepare freezes the source, commit grows the target,
stale epochs are refused, and a crash in between loses nothing."""

from __future__ import annotations

import random

from cairn.meta.region import Peer, Region, slot_bound
from cairn.raft.config import Config
from cairn.raft.types import ConfChangeType
from cairn.shard.host import HostConfig, RegionHost, StaleEpochError
from cairn.shard.region_machine import MergeDone, MergePrepared, encode_commit_merge
from cairn.shard.replica import Completion, Outcome, ReplicaConfig
from cairn.sim.kv_machine import KVCommand, KVOp
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.multiraft import MultiCluster
from cairn.sim.network import NetworkFaults, SimNetwork
from cairn.sim.range_kv import RangeKVMachine
from cairn.store.slot import key_slot


def make_cluster(nodes: int = 3) -> MultiCluster:
    loop = EventLoop()
    net = SimNetwork(loop, random.Random(1), NetworkFaults())
    raft = Config(id=1, election_tick=10, heartbeat_tick=2)
    cluster = MultiCluster(loop, net, HostConfig(ReplicaConfig(raft, tick_interval=0.01)))
    rng = random.Random(5)
    for i in range(1, nodes + 1):
        cluster.add_node(i, random.Random(rng.getrandbits(64)))
        cluster.start(i)
    return cluster


def found(c: MultiCluster, region_id: int, start: bytes, end: bytes) -> None:
    peers = tuple(Peer(region_id * 100 + n, n) for n in (1, 2, 3))
    for n in (1, 2, 3):
        host = c.host(n)
        assert host is not None
        host.bootstrap_region(Region(region_id, start, end, peers=peers))


def run(c: MultiCluster, seconds: float) -> None:
    deadline = c.loop.now + int(seconds * NS_PER_SECOND)
    while c.loop.now < deadline and c.loop.run_one():
        pass


def leader_of(c: MultiCluster, region_id: int) -> RegionHost:
    hosts = [
        h
        for n in sorted(c.nodes)
        if (h := c.host(n)) is not None
        and region_id in h.peers
        and h.peers[region_id].replica.is_leader
    ]
    assert len(hosts) == 1, f"region {region_id}: {len(hosts)} leaders"
    return hosts[0]


def key_in_slot(slot: int) -> str:
    i = 0
    while key_slot(f"k{i}".encode()) != slot:
        i += 1
    return f"k{i}"


def put(c: MultiCluster, region_id: int, key: str, value: str) -> Completion:
    leader = leader_of(c, region_id)
    done: list[Completion] = []
    command = KVCommand(KVOp.PUT, key, value).encode()
    leader.propose(region_id, leader.peers[region_id].region.epoch, command, done.append)
    run(c, 0.3)
    return done[0]


def data(host: RegionHost, region_id: int) -> dict[str, str]:
    inner = host.peers[region_id].machine.inner
    assert isinstance(inner, RangeKVMachine)
    return inner.data


def prepare(c: MultiCluster, source: int, target: int) -> Completion:
    leader = leader_of(c, source)
    done: list[Completion] = []
    leader.prepare_merge(source, leader.peers[source].region.epoch, target, done.append)
    run(c, 0.3)
    return done[0]


def commit(c: MultiCluster, source: int, target: int) -> Completion:
    frozen = leader_of(c, source).peers[source]
    image = frozen.machine.inner.snapshot()
    leader = leader_of(c, target)
    done: list[Completion] = []
    epoch = leader.peers[target].region.epoch
    leader.commit_merge(target, epoch, frozen.region, image, done.append)
    run(c, 0.3)
    return done[0]


def two_regions() -> tuple[MultiCluster, str, str]:
    c = make_cluster()
    found(c, 1, b"", slot_bound(5000))
    found(c, 2, slot_bound(5000), b"")
    run(c, 1.0)
    a, b = key_in_slot(10), key_in_slot(9000)
    assert put(c, 1, a, "1").outcome is Outcome.OK
    assert put(c, 2, b, "2").outcome is Outcome.OK
    return c, a, b


def test_prepare_freezes_the_source_and_commit_grows_the_target() -> None:
    c, a, b = two_regions()
    prepared = prepare(c, 1, 2)
    assert prepared.outcome is Outcome.OK and isinstance(prepared.value, MergePrepared)
    refused = put(c, 1, a, "late")
    assert refused.outcome is Outcome.REJECTED
    assert isinstance(refused.value, StaleEpochError)
    done = commit(c, 1, 2)
    assert done.outcome is Outcome.OK and isinstance(done.value, MergeDone)
    run(c, 0.5)
    for n in (1, 2, 3):
        host = c.host(n)
        assert host is not None
        assert 1 not in host.peers and host.tombstones[1] == 100 + n
        assert host.peers[2].region.start == b"" and host.peers[2].region.end == b""
        assert data(host, 2) == {a: "1", b: "2"}
    assert put(c, 2, a, "3").outcome is Outcome.OK
    assert c.applied[2].epoch.version == 3


def test_a_commit_under_a_stale_target_epoch_changes_nothing() -> None:
    c, _, b = two_regions()
    assert prepare(c, 1, 2).outcome is Outcome.OK
    frozen = leader_of(c, 1).peers[1]
    image = frozen.machine.inner.snapshot()
    leader = leader_of(c, 2)
    stale = leader.peers[2].region.epoch
    done: list[Completion] = []
    # The target's membership changes after the commit was planned: its conf_ver moves on.
    leader.change_peer(2, ConfChangeType.REMOVE_NODE, Peer(203, 3), done.append)
    run(c, 0.3)
    peer = leader.peers[2]
    peer.replica.propose(encode_commit_merge(stale, frozen.region, image), done.append)
    run(c, 0.3)
    assert done[0].outcome is Outcome.OK
    assert done[1].outcome is Outcome.OK and not isinstance(done[1].value, MergeDone)
    assert peer.region.end == b"" and peer.region.start == slot_bound(5000)
    assert data(leader, 2) == {b: "2"}


def test_a_prepare_under_a_stale_epoch_is_refused_and_a_frozen_region_refuses_changes() -> None:
    c, _, _ = two_regions()
    leader = leader_of(c, 1)
    old = leader.peers[1].region.epoch
    assert prepare(c, 1, 2).outcome is Outcome.OK
    done: list[Completion] = []
    leader.prepare_merge(1, old, 2, done.append)
    leader.change_peer(1, ConfChangeType.REMOVE_NODE, Peer(103, 3), done.append)
    leader.split(1, leader.peers[1].region.epoch, slot_bound(10), 9, (901, 902, 903), done.append)
    run(c, 0.3)
    assert [d.outcome for d in done] == [Outcome.REJECTED] * 3
    assert all(isinstance(d.value, StaleEpochError) for d in done)


def test_a_crash_of_every_node_between_prepare_and_commit_and_after_loses_nothing() -> None:
    c, a, b = two_regions()
    assert prepare(c, 1, 2).outcome is Outcome.OK
    for n in (1, 2, 3):
        c.crash(n)
    for n in (1, 2, 3):
        c.start(n)
    run(c, 1.5)
    assert put(c, 1, a, "late").outcome is Outcome.REJECTED
    assert commit(c, 1, 2).outcome is Outcome.OK
    for n in (1, 2, 3):
        c.crash(n)
    for n in (1, 2, 3):
        c.start(n)
    run(c, 1.5)
    for n in (1, 2, 3):
        host = c.host(n)
        assert host is not None
        assert 1 not in host.peers
        assert data(host, 2) == {a: "1", b: "2"}


def test_a_lagging_node_merges_the_same_data_from_the_commit_entry() -> None:
    c, a, b = two_regions()
    c.crash(3)
    assert prepare(c, 1, 2).outcome is Outcome.OK
    assert commit(c, 1, 2).outcome is Outcome.OK
    c.start(3)
    run(c, 1.5)
    host = c.host(3)
    assert host is not None
    assert 1 not in host.peers
    assert data(host, 2) == {a: "1", b: "2"}
