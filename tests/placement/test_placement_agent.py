"""Placement agents against the Raft-backed placement driver, on four simulated nodes with
one region: registration and reports, leader discovery, repair of a lost node, stale
peers destroyed, steps executed once."""

from __future__ import annotations

import random

from cairn.meta.region import Peer, PeerRole, Region
from cairn.placement import NodeState, PlacementConfig, PlacementRules
from cairn.placement.agent import AgentSettings, PlacementAgent
from cairn.placement.service import PlacementMember
from cairn.placement.steps import AddLearner, TransferLeader
from cairn.raft.config import Config
from cairn.shard.host import HostConfig
from cairn.shard.replica import ReplicaConfig
from cairn.sim.loop import EventLoop
from cairn.sim.network import NetworkFaults, isolate
from cairn.sim.region_pd import (
    PlacementCluster,
    PlacementNetwork,
    PlacementSetup,
    SimPlacement,
)

MS = 1_000_000
CONFIG = PlacementConfig(
    down_after_ms=1200,
    disconnected_after_ms=600,
    operator_timeout_ms=3000,
    snapshot_operator_timeout_ms=6000,
)
REGION = Region(1, peers=(Peer(11, 1), Peer(12, 2), Peer(13, 3)))


def new_cluster(seed: int = 0) -> tuple[PlacementCluster, SimPlacement]:
    """Nodes 1..4, the placement group on 1..3, region 1 founded on 1..3."""
    loop = EventLoop()
    network = PlacementNetwork(loop, random.Random(seed), NetworkFaults())
    raft = Config(id=1, election_tick=10, heartbeat_tick=2, check_quorum=True, pre_vote=True)
    host_config = HostConfig(ReplicaConfig(raft, tick_interval=0.01, snapshot_threshold=50))
    cluster = PlacementCluster(loop, network, host_config, keep_history=False)
    setup = PlacementSetup((1, 2, 3), host_config.replica, CONFIG, PlacementRules(3), 100)
    placement = SimPlacement(cluster, setup, random.Random(seed))
    cluster.placement = placement
    for node_id in (1, 2, 3, 4):
        cluster.add_node(node_id, random.Random(node_id))
        host = cluster.start(node_id)
        if node_id <= 3:
            host.bootstrap_region(REGION)
    return cluster, placement


def run(cluster: PlacementCluster, seconds: float) -> None:
    deadline = cluster.loop.now + int(seconds * 1000) * MS
    while cluster.loop.now < deadline and cluster.loop.run_one():
        pass


def leader(placement: SimPlacement, within: float = 3.0) -> PlacementMember:
    for _ in range(int(within / 0.05)):
        found = placement.leader()
        if found is not None:
            return found
        run(placement.cluster, 0.05)  # type: ignore[arg-type]
    raise AssertionError("no placement leader")


def voter_nodes(cluster: PlacementCluster) -> list[int]:
    region = cluster.applied[1]
    return sorted(p.node_id for p in region.peers if p.role is PeerRole.VOTER)


def region_leader_agent(cluster: PlacementCluster, placement: SimPlacement) -> PlacementAgent:
    for node_id in cluster.live():
        host = cluster.host(node_id)
        if host is not None and 1 in host.peers and host.peers[1].replica.is_leader:
            return placement.agents[node_id]
    raise AssertionError("region 1 has no leader")


def test_every_node_registers_and_the_region_leader_reports() -> None:
    cluster, placement = new_cluster()
    run(cluster, 1.5)
    driver = leader(placement).driver
    assert [(r.id, r.state) for r in driver.nodes()] == [(n, NodeState.UP) for n in (1, 2, 3, 4)]
    (row,) = driver.regions()
    assert row.id == 1 and row.voter_nodes == (1, 2, 3) and row.leader_node in (1, 2, 3)
    assert placement.agent_stats.registrations == 4
    assert placement.agent_stats.served >= 4 * 10


def test_agents_follow_the_placement_leader_through_a_crash_and_a_partition() -> None:
    cluster, placement = new_cluster(seed=1)
    run(cluster, 1.0)
    first = leader(placement).node_id
    cluster.crash(first)
    run(cluster, 1.0)
    second = leader(placement).node_id
    assert second != first
    cluster.start(first)
    run(cluster, 0.5)
    cluster.network.set_partition(isolate(second, sorted(cluster.nodes)))
    run(cluster, 1.5)
    third = leader(placement).node_id
    assert third not in (second,)
    served = {n: a.stats.served for n, a in placement.agents.items()}
    run(cluster, 0.5)
    for node_id, agent in sorted(placement.agents.items()):
        if node_id != second:  # cut off from everyone, it reaches no member
            assert agent.target == third, node_id
            assert agent.stats.served > served[node_id], node_id
    stats = placement.agent_stats
    assert stats.timeouts + stats.refused > 0
    driver = leader(placement).driver
    assert all(r.state is NodeState.UP for r in driver.nodes() if r.id != second)


def test_a_lost_node_is_repaired_and_its_stale_peer_destroyed_when_it_returns() -> None:
    cluster, placement = new_cluster(seed=2)
    run(cluster, 1.0)
    cut = 3
    cluster.network.set_partition(isolate(cut, sorted(cluster.nodes)))
    for _ in range(100):
        run(cluster, 0.1)
        if voter_nodes(cluster) == [1, 2, 4] and not cluster.applied[1].learners():
            break
    assert voter_nodes(cluster) == [1, 2, 4]
    rows = {r.id: r.state for r in leader(placement).driver.nodes()}
    assert rows[cut] is NodeState.DOWN
    host = cluster.host(cut)
    assert host is not None and 1 in host.peers  # it never heard of its removal
    cluster.network.heal()
    run(cluster, 1.0)
    assert 1 not in host.peers
    assert placement.agent_stats.stale_peers >= 1
    assert placement.agent_stats.steps.get("AddLearner", 0) >= 1


def test_a_step_is_executed_once_per_retry_interval_and_not_once_it_shows() -> None:
    cluster, placement = new_cluster(seed=3)
    run(cluster, 1.0)
    agent = region_leader_agent(cluster, placement)
    step = AddLearner(node_id=4, peer_id=99)
    steps = agent.stats.steps  # shared by the agents of the run
    agent.execute(1, step)
    agent.execute(1, step)
    assert steps == {"AddLearner": 1}
    for _ in range(50):
        run(cluster, 0.01)
        if agent.host.peers[1].region.peer(99) is not None:
            break
    agent.settings = AgentSettings(step_retry=0.0)
    agent.execute(1, step)  # the learner is a member: nothing to do
    assert steps.get("AddLearner") == 1
    follower = next(p for p in cluster.applied[1].voters() if p.node_id != agent.node_id)
    placement.agents[follower.node_id].execute(1, TransferLeader(agent.node_id, 1))
    assert "TransferLeader" not in steps  # a follower executes nothing
