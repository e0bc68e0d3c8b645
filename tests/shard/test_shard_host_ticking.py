"""Region hosts' time: founding elections, ticks after a stall, quiescence that holds.

Simulated 3-node clusters with the real node's Raft options (pre-vote, check-quorum,
lease reads), shorter timeouts: a tick is 10 ms, an election timeout 20 ticks.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cairn.meta.region import Peer, Region, slot_bound
from cairn.raft.config import Config, ReadOnlyOption
from cairn.raft.types import Message, MessageType
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.host import HostConfig, RegionHost, founding_leader
from cairn.shard.replica import ReplicaConfig
from cairn.sim.loop import NS_PER_SECOND, EventLoop
from cairn.sim.multiraft import MultiCluster
from cairn.sim.network import NetworkFaults, SimNetwork

ELECTION = 20
BOOTSTRAP_TERM = 1


def make_cluster(hibernate: bool = True) -> MultiCluster:
    loop = EventLoop()
    net = SimNetwork(loop, random.Random(1), NetworkFaults())
    raft = Config(
        id=1,
        election_tick=ELECTION,
        heartbeat_tick=2,
        check_quorum=True,
        pre_vote=True,
        read_only_option=ReadOnlyOption.LEASE_BASED,
    )
    config = HostConfig(ReplicaConfig(raft, tick_interval=0.01), hibernate=hibernate)
    cluster = MultiCluster(loop, net, config)
    rng = random.Random(5)
    for i in (1, 2, 3):
        cluster.add_node(i, random.Random(rng.getrandbits(64)))
        cluster.start(i)
    return cluster


def found(cluster: MultiCluster, count: int) -> list[Region]:
    """`count` regions over slots 16 * i.., every one on the three nodes."""
    regions = []
    for r in range(1, count + 1):
        peers = tuple(Peer(r * 100 + n, n) for n in (1, 2, 3))
        region = Region(r, slot_bound(r * 16), slot_bound(r * 16 + 16), peers=peers)
        regions.append(region)
        for n in (1, 2, 3):
            host = cluster.host(n)
            assert host is not None
            host.bootstrap_region(region)
    return regions


def run(cluster: MultiCluster, seconds: float) -> None:
    deadline = cluster.loop.now + int(seconds * NS_PER_SECOND)
    while cluster.loop.now < deadline and cluster.loop.run_one():
        pass


def hosts(cluster: MultiCluster) -> list[RegionHost]:
    return [h for n in sorted(cluster.nodes) if (h := cluster.host(n)) is not None]


def leaders(cluster: MultiCluster) -> dict[int, int]:
    """region id -> the node leading it (regions without a leader left out)."""
    return {
        region_id: h.node_id
        for h in hosts(cluster)
        for region_id, peer in h.peers.items()
        if peer.replica.is_leader
    }


def terms(cluster: MultiCluster) -> dict[tuple[int, int], int]:
    return {(h.node_id, r): p.replica.term for h in hosts(cluster) for r, p in h.peers.items()}


def all_quiescent(cluster: MultiCluster) -> bool:
    return all(p.replica.quiesced for h in hosts(cluster) for p in h.peers.values())


def test_founding_leaders_are_spread_over_the_voters() -> None:
    peers = tuple(Peer(7 * 1000 + n, n) for n in (3, 1, 2))
    assert [founding_leader(Region(r, peers=peers)).node_id for r in (1, 2, 3, 4)] == [1, 2, 3, 1]  # type: ignore[union-attr]
    assert founding_leader(Region(1)) is None


def test_founding_regions_sleep_then_each_elects_its_founding_leader_once() -> None:
    c = make_cluster()
    regions = found(c, 30)
    run(c, 1.5 * ELECTION * 0.01)
    # Before the founding leaders' alarms nothing is ticked and nobody has campaigned.
    assert sum(h.region_ticks for h in hosts(c)) == 0
    assert all_quiescent(c) and not leaders(c)
    run(c, 1.5)
    expected = {r.id: founding_leader(r).node_id for r in regions}  # type: ignore[union-attr]
    assert leaders(c) == expected
    assert sorted(expected.values()).count(1) == 10
    # One election each: no collision, no second term.
    assert set(terms(c).values()) == {BOOTSTRAP_TERM + 1}
    assert all_quiescent(c)


def test_without_hibernation_founding_regions_elect_as_before() -> None:
    c = make_cluster(hibernate=False)
    found(c, 5)
    run(c, 1.5)
    assert len(leaders(c)) == 5
    assert not any(p.replica.quiesced for h in hosts(c) for p in h.peers.values())


def test_regions_whose_founding_leader_is_down_elect_another() -> None:
    c = make_cluster()
    regions = found(c, 9)
    c.crash(3)
    run(c, 2.0)
    led = leaders(c)
    assert sorted(led) == [r.id for r in regions]
    for r in regions:
        chosen = founding_leader(r)
        assert chosen is not None
        assert led[r.id] == chosen.node_id if chosen.node_id != 3 else led[r.id] in (1, 2)


def test_a_stalled_host_skips_the_ticks_it_missed_but_its_leases_count_them() -> None:
    c = make_cluster(hibernate=False)
    found(c, 10)
    run(c, 1.0)
    host = c.host(2)
    assert host is not None
    before_ticks, before_region_ticks = host.ticks, host.region_ticks
    lease_clocks = {r: p.replica.raw.lease_clock for r, p in host.peers.items()}
    c.loop.pause(2)
    run(c, 2.0)  # 200 ticks go by while node 2 runs nothing
    c.loop.resume(2)
    run(c, 0.005)  # the held events run, the host's timer among them
    assert host.ticks - before_ticks >= 200
    # Each region was ticked once or twice for those 200 ticks, not 200 times ...
    assert host.region_ticks - before_region_ticks <= 2 * len(host.peers)
    # ... yet every lease clock counted them all.
    for region_id, peer in host.peers.items():
        assert peer.replica.raw.lease_clock - lease_clocks[region_id] >= 200


def test_an_idle_host_wakes_only_for_liveness_rounds() -> None:
    c = make_cluster()
    found(c, 20)
    run(c, 2.0)
    assert all_quiescent(c)
    counts = {h.node_id: 0 for h in hosts(c)}
    for h in hosts(c):
        h._on_tick = _counting(h._on_tick, counts, h.node_id)  # type: ignore[method-assign]
    run(c, 1.0)
    interval = c.config.liveness_interval_ticks
    # 100 ticks a second; a round every `interval` ticks (one firing may still be armed).
    assert all(100 // interval - 1 <= n <= 100 // interval + 1 for n in counts.values()), counts


def test_a_quiescent_leader_ignores_late_answers_but_wakes_for_news() -> None:
    c = make_cluster()
    found(c, 1)
    run(c, 1.5)
    leader = next(h for h in hosts(c) if 1 in h.peers and h.peers[1].replica.is_leader)
    replica = leader.peers[1].replica
    assert replica.quiesced
    follower = next(p for p in leader.peers[1].region.peers if p.node_id != leader.node_id)
    me = Peer(leader.peers[1].peer_id, leader.node_id)
    term, last = replica.term, replica.raw.log.last_index()

    def deliver(msg: Message) -> None:
        region = leader.peers[1].region
        leader.on_envelopes(
            [Envelope(EnvelopeKind.RAFT, 1, follower, me, region.epoch, message=msg)]
        )

    deliver(Message(type=MessageType.HEARTBEAT_RESP, to=me.id, frm=follower.id, term=term))
    deliver(Message(type=MessageType.APP_RESP, to=me.id, frm=follower.id, term=term, index=last))
    assert replica.quiesced
    deliver(Message(type=MessageType.HEARTBEAT_RESP, to=me.id, frm=follower.id, term=term + 1))
    assert not replica.quiesced


def test_followers_woken_for_a_silent_node_sleep_again_when_it_is_heard() -> None:
    c = make_cluster()
    found(c, 12)
    run(c, 2.0)
    assert all_quiescent(c)
    before = terms(c)
    led_by_1 = [r for r, n in leaders(c).items() if n == 1]
    cut = frozenset({(1, 2), (2, 1), (1, 3), (3, 1)})
    c.network.set_partition(cut)
    run(c, 0.15)  # longer than the liveness timeout (10 ticks), shorter than an election
    h2 = c.host(2)
    assert h2 is not None and not h2.is_live(1)
    assert all(not h2.peers[r].replica.quiesced for r in led_by_1)
    c.network.heal()
    run(c, 0.05)
    assert h2.is_live(1)
    assert all(h2.peers[r].replica.quiesced for r in led_by_1)
    run(c, 1.0)
    assert terms(c) == before
    assert all_quiescent(c)


def _counting(action: Callable[[], None], counts: dict[int, int], node: int) -> Callable[[], None]:
    def counted() -> None:
        counts[node] += 1
        action()

    return counted
