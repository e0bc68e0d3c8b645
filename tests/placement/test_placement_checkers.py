"""Each checker and scheduler, driven through the facade with hand-made reports."""

from __future__ import annotations

from dataclasses import replace

from placement_support import T0, driver_with_nodes, heartbeat_all, only, region, report

from cairn.meta.region import Peer, PeerRole, Region, slot_bound, split_region
from cairn.placement import EventKind, NodeState, OperatorKind, PlacementConfig, PlacementRules
from cairn.placement.model import DownPeer, HostedPeer, RangeRule
from cairn.placement.steps import (
    AddLearner,
    MergeRegion,
    PromoteLearner,
    RemovePeer,
    SplitPolicy,
    SplitRegion,
    TransferLeader,
)

ZONES3 = ["a", "b", "c", "a", "b", "c"]


def slotted(i: int, nodes: tuple[int, ...] = (1, 2, 3)) -> Region:
    """Region `i` covering slot `i` only."""
    return region(i, list(nodes), start=slot_bound(i), end=slot_bound(i + 1))


def test_missing_replicas_go_to_new_zones_first() -> None:
    d = driver_with_nodes(["a", "a", "b", "c"])
    d.region_heartbeat(report(region(1, [1])), T0)
    op = only(d.tick(T0))
    assert op.kind is OperatorKind.ADD_REPLICA
    add = op.steps[0]
    assert isinstance(add, AddLearner) and add.node_id == 3  # zone b, not node 2 in zone a
    assert op.steps[1] == PromoteLearner(3, add.peer_id)


def test_a_down_node_is_repaired_only_after_the_down_time() -> None:
    d = driver_with_nodes(ZONES3)
    r = region(1, [1, 2, 3])
    d.region_heartbeat(report(r), T0)
    assert d.tick(T0) == []
    at = T0 + 20_000
    heartbeat_all(d, at, skip=(3,))
    assert d.tick(at) == []  # silent, not yet down
    at = T0 + 31_000
    heartbeat_all(d, at, skip=(3,))
    d.region_heartbeat(report(r, down_peers=(DownPeer(103, 31_000),)), at)
    op = only(d.tick(at))
    assert op.kind is OperatorKind.REPAIR
    assert op.steps[0] == AddLearner(6, op.steps[0].peer_id)  # type: ignore[union-attr]
    assert op.steps[-1] == RemovePeer(3, 103)
    assert {row.id: row.state for row in d.nodes()}[3] is NodeState.DOWN
    assert [e.kind for e in d.events() if e.node_id == 3][-1] is EventKind.NODE_DOWN


def test_surplus_after_a_node_returns_removes_the_worst_placed() -> None:
    d = driver_with_nodes(ZONES3)
    r = region(1, [1, 2, 3, 6])  # 6 repaired 3's replica; 3 came back before removal
    d.region_heartbeat(report(r), T0)
    op = only(d.tick(T0))
    assert op.kind is OperatorKind.REMOVE_REPLICA
    removed = op.steps[0]
    assert isinstance(removed, RemovePeer) and removed.node_id in (3, 6)  # zone c twice


def test_a_caught_up_learner_is_promoted_and_a_pending_one_waits() -> None:
    d = driver_with_nodes(ZONES3)
    r = region(1, [1, 2, 3], learners=(3,))
    d.region_heartbeat(report(r, pending_peers=(103,)), T0)
    assert d.tick(T0) == []
    d.region_heartbeat(report(r), T0)
    op = only(d.tick(T0))
    assert op.steps == (PromoteLearner(3, 103),)


def test_drain_moves_leaders_first_then_replicas() -> None:
    d = driver_with_nodes(ZONES3)
    r = region(1, [1, 2, 3])
    d.region_heartbeat(report(r, 1), T0)
    assert d.drain_node(1, T0).ok
    op = only(d.tick(T0))
    assert op.kind is OperatorKind.DRAIN_LEADER
    step = d.region_heartbeat(report(r, 1), T0 + 1)
    assert isinstance(step, TransferLeader) and step.node_id in (2, 3)
    d.region_heartbeat(report(r, step.node_id), T0 + 2)
    op = only(d.tick(T0 + 2))
    assert op.kind is OperatorKind.REPLACE
    assert op.steps[0] == AddLearner(4, op.steps[0].peer_id)  # type: ignore[union-attr]
    assert op.steps[-1] == RemovePeer(1, 101)


def test_two_voters_in_one_zone_move_apart_when_zones_allow() -> None:
    d = driver_with_nodes(ZONES3)
    d.region_heartbeat(report(region(1, [1, 4, 2])), T0)  # 1 and 4 share zone a
    op = only(d.tick(T0))
    assert op.kind is OperatorKind.FIX_ZONE
    assert op.steps[0] == AddLearner(3, op.steps[0].peer_id) or op.steps[0].node_id == 6  # type: ignore[union-attr]
    assert isinstance(op.steps[-1], RemovePeer) and op.steps[-1].node_id in (1, 4)


def test_zones_that_do_not_allow_spreading_are_tolerated() -> None:
    d = driver_with_nodes(["a", "a", "b"])
    d.region_heartbeat(report(region(1, [1, 2, 3])), T0)
    assert d.tick(T0) == []


def test_split_when_large_between_slots() -> None:
    cfg = PlacementConfig(split_size_bytes=1000, merge_size_bytes=100)
    d = driver_with_nodes(ZONES3, cfg)
    d.region_heartbeat(report(region(1, [1, 2, 3]), approximate_size=1000), T0)
    op = only(d.tick(T0))
    split = op.steps[0]
    assert isinstance(split, SplitRegion)
    assert split.policy is SplitPolicy.HALF_BY_SIZE and split.slot_aligned
    assert len(split.new_peer_ids) == 3


def test_split_at_a_rule_boundary_then_the_rule_applies() -> None:
    rule = RangeRule(slot_bound(100), slot_bound(200), replicas=5, name="hot")
    d = driver_with_nodes(ZONES3, rules=PlacementRules(ranges=(rule,)))
    r = region(1, [1, 2, 3])
    d.region_heartbeat(report(r), T0)
    op = only(d.tick(T0))
    split = op.steps[0]
    assert isinstance(split, SplitRegion) and split.split_key == slot_bound(100)
    left, right = split_region(r, slot_bound(100), split.new_region_id, split.new_peer_ids)
    d.region_heartbeat(report(left), T0 + 1)
    assert d.status().gaps == 0  # the right half is inferred until it reports
    ops = [o for o in d.tick(T0 + 1) if o.kind is OperatorKind.SPLIT]
    step = only(ops).steps[0]
    assert ops[0].region_id == right.id
    assert isinstance(step, SplitRegion) and step.policy is SplitPolicy.KEY
    assert (step.split_key, step.epoch) == (slot_bound(200), right.epoch)


def test_small_neighbours_align_then_merge() -> None:
    cfg = PlacementConfig(split_merge_interval_ms=0)
    d = driver_with_nodes(ZONES3, cfg)
    left = region(1, [1, 2, 3], end=slot_bound(100))
    right = region(2, [4, 2, 3], start=slot_bound(100))
    d.region_heartbeat(report(left, approximate_size=10), T0)
    d.region_heartbeat(report(right, approximate_size=10), T0)
    op = only(d.tick(T0))
    assert op.kind is OperatorKind.ALIGN_FOR_MERGE and op.related_region_ids == (2,)
    add = op.steps[0]
    assert isinstance(add, AddLearner) and add.node_id == 4
    moved = left.with_peers((*left.peers, Peer(add.peer_id, 4, PeerRole.LEARNER)))
    moved = moved.with_peers(tuple(replace(p, role=PeerRole.VOTER) for p in moved.peers))
    moved = moved.with_peers(tuple(p for p in moved.peers if p.node_id != 1))
    d.region_heartbeat(report(moved, 2, approximate_size=10), T0 + 1)
    assert d.operators() == []
    op = only(d.tick(T0 + 1))
    assert op.steps == (MergeRegion(1, moved.epoch, 2, right.epoch),)


def test_leaders_balance_and_settle() -> None:
    d = driver_with_nodes(["a", "b", "c"])
    for i in range(1, 7):
        d.region_heartbeat(report(slotted(i), 1), T0)
    ops = d.tick(T0)
    assert {o.kind for o in ops} == {OperatorKind.BALANCE_LEADER}
    targets = sorted(o.steps[0].node_id for o in ops)  # type: ignore[union-attr]
    assert targets == [2, 2, 3, 3]  # 6/0/0 -> 2/2/2
    assert d.tick(T0 + 1) == []  # counted in flight: nothing more to do


def test_a_new_node_receives_replicas() -> None:
    d = driver_with_nodes([None, None, None])
    for i in range(1, 7):
        d.region_heartbeat(report(slotted(i), i % 3 + 1), T0)
    assert d.tick(T0) == []
    d.add_node(4, "n4", "c4", {}, T0)
    ops = d.tick(T0 + 1)
    assert ops and {o.kind for o in ops} == {OperatorKind.BALANCE_REGION}
    assert all(o.steps[0].node_id == 4 for o in ops)  # type: ignore[union-attr]
    assert len(ops) <= PlacementConfig().max_node_snapshots


def test_rate_limits_hold_back_repair() -> None:
    cfg = PlacementConfig(max_node_snapshots=1, max_operators=3)
    d = driver_with_nodes([None, None, None, None], cfg)
    for i in range(1, 6):
        d.region_heartbeat(report(slotted(i, (1,))), T0)
    ops = d.tick(T0)
    assert len(ops) == 3  # one snapshot each on nodes 2, 3, 4
    assert sorted(o.steps[0].node_id for o in ops) == [2, 3, 4]  # type: ignore[union-attr]


def test_stale_heartbeats_are_refused() -> None:
    d = driver_with_nodes(ZONES3)
    r = region(1, [1, 2, 3])
    newer = r.with_peers(r.peers)
    assert d.region_heartbeat_reply(report(newer), T0).accepted
    reply = d.region_heartbeat_reply(report(r), T0)
    assert not reply.accepted and d.status().refused_heartbeats == 1


def test_a_returning_node_is_told_to_destroy_removed_peers() -> None:
    d = driver_with_nodes(ZONES3)
    r = region(1, [1, 2, 6])  # peer 103 on node 3 was removed at conf_ver 2
    r = r.with_peers(r.peers)
    d.region_heartbeat(report(r), T0)
    stale = HostedPeer(1, 103, 1)
    fresh = HostedPeer(1, 999, 3)  # added after the driver's view: left alone
    reply = d.node_heartbeat(3, T0, hosted=(stale, fresh))
    assert reply.stale_peers == (stale,)
    assert not d.node_heartbeat(99, T0).known
