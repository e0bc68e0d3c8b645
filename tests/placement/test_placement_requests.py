"""Operators asked for by hand (`cairn.placement.requests`): validated, then executed.

The validation cases use a bare driver; the executions run on the toy cluster of
`placement_harness`, whose leaders carry out the steps, so a requested split, merge (with
the replicas aligned first), replica move and leader transfer are seen to finish."""

from __future__ import annotations

from dataclasses import replace
from random import Random

from placement_harness import HARNESS_CONFIG, ModelCluster
from placement_support import T0, driver_with_nodes, region, report

from cairn.meta.region import Region, slot_bound
from cairn.placement import OperatorKind, OperatorStatus, PlacementDriver
from cairn.placement.commands import (
    RequestKind,
    RequestOperator,
    RequestReply,
    SplitChoice,
    decode_command,
    decode_result,
    encode_command,
    encode_result,
)
from cairn.placement.requests import middle_slot_bound
from cairn.placement.steps import MergeRegion, SplitPolicy, SplitRegion

CONFIG = replace(
    HARNESS_CONFIG, split_size_bytes=10**9, split_write_bytes_per_s=10**9, merge_size_bytes=0
)


def _driver() -> tuple[PlacementDriver, Region]:
    driver = driver_with_nodes([None] * 5)
    r = region(1, [1, 2, 3])
    assert driver.region_heartbeat_reply(report(r, 1), T0).accepted
    return driver, r


def test_requests_and_replies_travel() -> None:
    command = RequestOperator(RequestKind.MOVE, 7, 5, from_node=1, to_node=2, reason="x")
    assert decode_command(encode_command(command)) == command
    reply = RequestReply(True, "started", 3, "#3 split")
    assert decode_result(encode_result(reply)) == reply


def test_refusals_say_why() -> None:
    driver, _ = _driver()
    cases = [
        (driver.request_split(9, T0), "region 9 is not known"),
        (driver.request_split(1, T0, slot=0), "does not start inside"),
        (driver.request_split(1, T0, slot=16384), "not in 0..16383"),
        (driver.request_merge(1, T0), "no neighbour"),
        (driver.request_move(1, 4, 5, T0), "no replica on node 4"),
        (driver.request_move(1, 1, 2, T0), "already has a replica on node 2"),
        (driver.request_move(1, 1, 1, T0), "two different nodes"),
        (driver.request_move(1, 1, 9, T0), "node 9 is not a member"),
        (driver.request_transfer(1, 4, T0), "no voter on node 4"),
        (driver.request_transfer(1, 1, T0), "already leads"),
    ]
    for reply, text in cases:
        assert not reply.ok and text in reply.reason, (reply, text)
    assert driver.operators() == []


def test_a_down_or_draining_target_is_refused() -> None:
    driver, _ = _driver()
    assert driver.drain_node(4, T0).ok
    reply = driver.request_move(1, 1, 4, T0)
    assert not reply.ok and "node 4 is draining, not up" in reply.reason
    driver.node_heartbeat(1, T0 + 40_000)  # the others fall silent: down
    driver.tick(T0 + 40_000)
    reply = driver.request_transfer(1, 2, T0 + 40_000)
    assert not reply.ok and "node 2 is down" in reply.reason


def test_a_busy_region_is_refused_and_the_operator_is_recorded() -> None:
    driver, r = _driver()
    reply = driver.request_transfer(1, 2, T0)
    assert reply.ok and reply.operator_id and "transfer-leader" in reply.description
    op = driver.operator(reply.operator_id)
    assert op is not None and op.kind is OperatorKind.BALANCE_LEADER
    assert op.reason == "requested"
    again = driver.request_split(1, T0)
    assert not again.ok and f"already under operator #{op.id}" in again.reason
    step = driver.region_heartbeat(report(r, 1), T0 + 1)
    assert step == op.steps[0]  # the leader is told, as for any operator
    driver.region_heartbeat(replace(report(r, 2), term=1), T0 + 2)
    assert driver.operator(op.id).status is OperatorStatus.SUCCEEDED  # type: ignore[union-attr]


def test_split_choices() -> None:
    whole = Region(1)
    assert middle_slot_bound(whole) == slot_bound(8192)
    assert middle_slot_bound(Region(1, slot_bound(10), slot_bound(11))) is None
    assert middle_slot_bound(Region(1, slot_bound(10), slot_bound(13))) == slot_bound(11)
    driver, _ = _driver()
    reply = driver.request(
        RequestOperator(RequestKind.SPLIT, 1, T0, split_choice=SplitChoice.HALF_BY_SIZE)
    )
    op = driver.operator(reply.operator_id)
    assert op is not None and isinstance(op.steps[0], SplitRegion)
    assert op.steps[0].policy is SplitPolicy.HALF_BY_SIZE


def _settle(cluster: ModelCluster, rounds: int = 200) -> None:
    quiet = 0
    for _ in range(rounds):
        cluster.round()
        quiet = 0 if cluster.driver.operators() else quiet + 1
        if quiet >= 3:
            return
    raise AssertionError(f"not settled: {cluster.driver.operators()}")


def _finish(cluster: ModelCluster, reply: RequestReply, rounds: int = 100) -> None:
    assert reply.ok, reply.reason
    for _ in range(rounds):
        op = cluster.driver.operator(reply.operator_id)
        assert op is not None
        if op.finished:
            assert op.status is OperatorStatus.SUCCEEDED, op
            return
        cluster.round()
    raise AssertionError(f"operator not finished: {cluster.driver.operator(reply.operator_id)}")


def test_requested_operators_run_to_completion() -> None:
    cluster = ModelCluster(Random(5), [None] * 5, config=CONFIG, loss=0.0)
    _settle(cluster)
    (first,) = cluster.regions.values()
    now = cluster.now_ms
    _finish(cluster, cluster.driver.request_split(first.region.id, now))
    assert len(cluster.regions) == 2
    left, right = sorted(cluster.regions.values(), key=lambda m: m.region.start)
    assert left.region.end == right.region.start == slot_bound(8192)
    _settle(cluster)

    voters = [p for p in right.region.voters() if p.id != right.leader]
    to = voters[0].node_id
    _finish(cluster, cluster.driver.request_transfer(right.region.id, to, cluster.now_ms))
    assert right.region.peer(right.leader or 0).node_id == to  # type: ignore[union-attr]

    src = next(p.node_id for p in right.region.peers if p.id != right.leader)
    dst = min(n for n in cluster.nodes if right.region.peer_on(n) is None)
    _finish(cluster, cluster.driver.request_move(right.region.id, src, dst, cluster.now_ms))
    assert right.region.peer_on(dst) is not None and right.region.peer_on(src) is None
    _settle(cluster)

    left, right = sorted(cluster.regions.values(), key=lambda m: m.region.start)
    misaligned = {p.node_id for p in left.region.peers} != {p.node_id for p in right.region.peers}
    reply = cluster.driver.request_merge(right.region.id, cluster.now_ms)
    op = cluster.driver.operator(reply.operator_id)
    assert op is not None and isinstance(op.steps[-1], MergeRegion)
    assert (len(op.steps) > 1) == misaligned  # align steps first when the nodes differ
    _finish(cluster, reply)
    assert [m.region.id for m in cluster.regions.values()] == [left.region.id]
    assert cluster.tiling_problems() == []
