"""Operators: progress from reports, idempotent steps, cancellation, timeouts."""

from __future__ import annotations

from dataclasses import replace

from placement_support import region, report

from cairn.meta.region import Peer, PeerRole, RegionEpoch, slot_bound, split_region
from cairn.placement.model import RegionReport
from cairn.placement.operators import Operator, OperatorKind, OperatorStatus
from cairn.placement.steps import (
    AddLearner,
    MergeRegion,
    PromoteLearner,
    RemovePeer,
    SplitPolicy,
    SplitRegion,
    TransferLeader,
)

BASE = region(1, [1, 2, 3])
MOVE = (AddLearner(4, 900), PromoteLearner(4, 900), RemovePeer(3, 103))


def move_op(steps: tuple = MOVE) -> Operator:  # type: ignore[type-arg]
    return Operator(1, 1, OperatorKind.REPAIR, steps, BASE.epoch, 0, 10_000, "test")


def with_learner() -> RegionReport:
    r = BASE.with_peers((*BASE.peers, Peer(900, 4, PeerRole.LEARNER)))
    return report(r, 1)


def test_steps_advance_in_order_and_the_operator_succeeds() -> None:
    op = move_op()
    assert op.next_step(report(BASE, 1)) == MOVE[0]
    learner = with_learner()
    op = op.advance(learner, 1)
    assert op.step_index == 1
    assert op.next_step(replace(learner, pending_peers=(900,))) is None  # catching up: wait
    assert op.next_step(learner) == MOVE[1]
    promoted = learner.region.with_peers((*BASE.peers, Peer(900, 4)))
    removed = promoted.with_peers(tuple(p for p in promoted.peers if p.id != 103))
    op = op.advance(report(removed, 1), 2)
    assert op.status is OperatorStatus.SUCCEEDED


def test_re_reporting_the_same_state_is_harmless() -> None:
    op = move_op().advance(with_learner(), 1)
    again = op.advance(with_learner(), 2)
    assert again == op
    assert again.next_step(with_learner()) == MOVE[1]


def test_a_change_the_operator_did_not_make_cancels_it() -> None:
    foreign = BASE.with_peers(BASE.peers[:2])  # someone removed peer 103
    op = move_op().advance(report(foreign, 1), 5)
    assert op.status is OperatorStatus.CANCELLED
    assert "changed" in op.outcome
    assert op.next_step(report(foreign, 1)) is None


def test_a_split_it_did_not_order_cancels_it() -> None:
    left, _ = split_region(BASE, slot_bound(100), 2, (21, 22, 23))
    op = move_op().advance(report(left, 1), 5)
    assert op.status is OperatorStatus.CANCELLED


def test_the_leader_is_moved_before_it_is_removed() -> None:
    op = Operator(1, 1, OperatorKind.REMOVE_REPLICA, (RemovePeer(1, 101),), BASE.epoch, 0, 10, "")
    step = op.next_step(report(BASE, 1))
    assert step == TransferLeader(2, 102)
    assert op.next_step(report(BASE, 2)) == RemovePeer(1, 101)


def test_timeout() -> None:
    op = move_op()
    assert op.check_timeout(10_000) is op
    assert op.check_timeout(10_001).status is OperatorStatus.TIMED_OUT


def test_split_is_done_when_the_version_moves() -> None:
    step = SplitRegion(BASE.epoch, SplitPolicy.HALF_BY_SIZE, 2, (21, 22, 23))
    op = Operator(1, 1, OperatorKind.SPLIT, (step,), BASE.epoch, 0, 10, "")
    left, _ = split_region(BASE, slot_bound(100), 2, (21, 22, 23))
    assert op.advance(report(BASE, 1), 1).status is OperatorStatus.RUNNING
    assert op.advance(report(left, 1), 1).status is OperatorStatus.SUCCEEDED


def test_merge_is_done_when_the_source_is_gone() -> None:
    step = MergeRegion(1, BASE.epoch, 2, RegionEpoch())
    op = Operator(1, 1, OperatorKind.MERGE, (step,), BASE.epoch, 0, 10, "", (2,))
    assert op.regions() == (1, 2)
    assert op.advance(None, 1).status is OperatorStatus.SUCCEEDED
    other = move_op()
    assert other.advance(None, 1).status is OperatorStatus.CANCELLED


def test_limits_accounting_views() -> None:
    op = move_op()
    assert op.nodes() == (3, 4)
    assert op.adds_on() == (4,)
    later = op.advance(with_learner(), 1)
    assert later.adds_on() == (4,)  # the learner may still be receiving its snapshot
    promoted = with_learner().region.with_peers((*BASE.peers, Peer(900, 4)))
    assert later.advance(report(promoted, 1), 2).adds_on() == ()
    assert "> promote peer 900 on node 4" in later.describe()
