"""Convergence: random faults against the toy cluster, then the cluster settles and stays.

During the fault phase nodes crash and return (some long enough to be declared down and
repaired), nodes join and drain, regions grow (and split) or shrink (and merge), heartbeats
are lost and steps run late or never. Throughout, the true regions tile the keyspace and so
does the driver's map, and no rate limit is exceeded. Once faults stop, every region must
reach the declared voters on distinct nodes and zones (when zones allow), balance must
settle within its tolerances, and the driver must then stay quiet: no ping-pong.
"""

from __future__ import annotations

from collections import Counter
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st
from placement_harness import ModelCluster

from cairn.placement.model import NodeAdmin

LAYOUTS: dict[str, list[str | None]] = {
    "no-zones": [None, None, None, None, None],
    "three-zones": ["a", "b", "c", "a", "b", "c"],
    "uneven-zones": ["a", "b", "c", "a"],
}
ACTIONS = ("crash", "restart", "join", "drain", "grow", "shrink")
FAULT_ROUNDS = 150
SETTLE_LIMIT = 700
QUIET_ROUNDS = 70
"""Longer than the harness' split-merge interval, so merges due later are not missed."""
REPLICAS = 3


def apply_action(cluster: ModelCluster, action: str, rng: Random) -> None:
    alive = [n for n in sorted(cluster.nodes) if cluster.nodes[n].alive]
    dead = [n for n in sorted(cluster.nodes) if not cluster.nodes[n].alive]
    active = [n for n in alive if cluster.driver.metadata.nodes[n].admin is NodeAdmin.ACTIVE]
    if action == "crash" and len(dead) < 2 and len(alive) > REPLICAS + 1:
        cluster.crash(rng.choice(alive))
    elif action == "restart" and dead:
        cluster.restart(rng.choice(dead))
    elif action == "join" and len(cluster.nodes) < 9:
        zones = sorted({n.zone or "" for n in cluster.nodes.values()})
        cluster.add_node(None if zones == [""] else rng.choice(zones))
    elif action == "drain" and len(active) > REPLICAS + 2:
        cluster.drain(rng.choice(active))
    elif action in ("grow", "shrink"):
        for model in sorted(cluster.regions.values(), key=lambda m: m.region.id):
            if rng.random() < 0.5:
                model.size = model.size + 600 if action == "grow" else rng.randint(0, 40)


def fault_phase(cluster: ModelCluster, plan: list[tuple[int, str]], rng: Random) -> None:
    for i in range(FAULT_ROUNDS):
        for at, action in plan:
            if at == i:
                apply_action(cluster, action, rng)
        region = rng.choice(sorted(cluster.regions))
        cluster.regions[region].size += rng.randint(0, 60)
        cluster.round()
        assert cluster.tiling_problems() == [], f"round {i}"


def settle(cluster: ModelCluster) -> int:
    for node_id in sorted(cluster.nodes):
        if not cluster.nodes[node_id].alive:
            cluster.restart(node_id)
    quiet = 0
    for i in range(SETTLE_LIMIT):
        started = cluster.round()
        assert cluster.tiling_problems() == [], f"settle round {i}"
        quiet = 0 if started or cluster.driver.operators() else quiet + 1
        if quiet >= QUIET_ROUNDS:
            return i
    raise AssertionError(f"not settled in {SETTLE_LIMIT} rounds: {cluster.driver.operators()}")


def usable_nodes(cluster: ModelCluster) -> list[int]:
    admin = cluster.driver.metadata.nodes
    return [n for n in sorted(cluster.nodes) if admin[n].admin is NodeAdmin.ACTIVE]


def check_placement(cluster: ModelCluster) -> None:
    usable = usable_nodes(cluster)
    zone_of = {n: cluster.nodes[n].zone or f"node-{n}" for n in cluster.nodes}
    zones_allow = len({zone_of[n] for n in usable}) >= REPLICAS
    known = {r.id: r for r in cluster.driver.metadata.region_map}
    for model in cluster.regions.values():
        region = model.region
        nodes = [p.node_id for p in region.voters()]
        assert len(nodes) == REPLICAS and not region.learners(), region
        assert set(nodes) <= set(usable), region
        assert model.leader is not None
        if zones_allow:
            assert len({zone_of[n] for n in nodes}) == REPLICAS, region
        assert known.get(region.id) == region
    assert len(known) == len(cluster.regions)


def check_balance(cluster: ModelCluster) -> None:
    cfg = cluster.driver.metadata.config
    usable = set(usable_nodes(cluster))
    replicas, leaders = Counter[int](), Counter[int]()
    for model in cluster.regions.values():
        replicas.update(p.node_id for p in model.region.peers)
        leader = model.region.peer(model.leader or 0)
        assert leader is not None
        leaders[leader.node_id] += 1
    for a in usable:
        for b in usable:
            if cluster.nodes[a].zone == cluster.nodes[b].zone:
                assert replicas[a] - replicas[b] <= cfg.region_balance_tolerance, replicas
    for model in cluster.regions.values():
        leader = model.region.peer(model.leader or 0)
        assert leader is not None
        for peer in model.region.voters():
            gap = leaders[leader.node_id] - leaders[peer.node_id]
            assert gap <= cfg.leader_balance_tolerance, (leaders, model.region)


def check_no_stale_replicas(cluster: ModelCluster) -> None:
    for node in cluster.nodes.values():
        for region_id, hosted in node.hosted.items():
            model = cluster.regions.get(region_id)
            if model is not None:
                assert model.region.peer(hosted.peer_id) is not None, (node.id, hosted)


@settings(max_examples=8, deadline=None)
@given(
    layout=st.sampled_from(sorted(LAYOUTS)),
    seed=st.integers(0, 2**32),
    plan=st.lists(
        st.tuples(st.integers(0, FAULT_ROUNDS - 1), st.sampled_from(ACTIONS)), max_size=10
    ),
)
def test_random_faults_converge_and_stay_quiet(
    layout: str, seed: int, plan: list[tuple[int, str]]
) -> None:
    rng = Random(seed)
    cluster = ModelCluster(rng, LAYOUTS[layout])
    fault_phase(cluster, plan, rng)
    settle(cluster)
    check_placement(cluster)
    check_balance(cluster)
    for _ in range(100):
        started = cluster.round()
        assert started == [], [op.describe() for op in cluster.driver.operators()]
    check_no_stale_replicas(cluster)
    assert cluster.stats.limit_violations == []
    assert cluster.driver.status().under_replicated == 0


def test_a_long_outage_is_repaired_and_the_returning_node_cleaned() -> None:
    rng = Random(11)
    cluster = ModelCluster(rng, LAYOUTS["three-zones"])
    for _ in range(40):
        cluster.regions[min(cluster.regions)].size += 100
        cluster.round()
    settle(cluster)
    victim = max(cluster.nodes, key=lambda n: len(cluster.nodes[n].hosted))
    held = set(cluster.nodes[victim].hosted)
    cluster.crash(victim)
    for _ in range(60):
        cluster.round()
    kinds = Counter(op.kind for op in cluster.driver.history())
    assert kinds["repair"] >= 1
    cluster.restart(victim)
    settle(cluster)
    check_placement(cluster)
    check_no_stale_replicas(cluster)
    assert held and cluster.stats.limit_violations == []
