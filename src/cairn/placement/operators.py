"""Operators: an ordered list of steps that changes one region, and its progress.

Theory of operation. A checker builds an operator against the region as last reported (its
`epoch`). Each time the region's leader heartbeats, `advance` moves the step pointer over
every step the report shows done (the pointer never goes back, so a later change cannot
make a finished step look undone), then compares the report's epoch with the epoch those
done steps explain: the operator's epoch plus their conf and version changes. Any other
epoch means someone else changed the region (a concurrent split, an operator by hand, a
lost and retried conf change), so the operator's plan is stale and it is cancelled; the
checkers build a fresh one on the next tick. When every step is done the operator
succeeded. `next_step` is what the heartbeat reply carries: the first unfinished step,
except that a learner is not promoted while it is still catching up (nothing is sent), and
a `RemovePeer` of the current leader is preceded by a leader transfer to a healthy voter
(a leader cannot remove itself). An operator that outlives its timeout is given up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from cairn.meta.region import RegionEpoch
from cairn.placement.model import RegionReport
from cairn.placement.steps import (
    AddLearner,
    MergeRegion,
    PromoteLearner,
    RemovePeer,
    SplitRegion,
    Step,
    TransferLeader,
    describe_step,
)


class OperatorKind(enum.StrEnum):
    """Why an operator exists; the checker that made it."""

    REPAIR = "repair"
    """Replace a replica on a down or removed node."""
    REPLACE = "replace"
    """Move a replica off a draining node."""
    ADD_REPLICA = "add-replica"
    REMOVE_REPLICA = "remove-replica"
    PROMOTE_LEARNER = "promote-learner"
    FIX_ZONE = "fix-zone"
    """Move a replica out of a zone holding two, into one holding fewer."""
    DRAIN_LEADER = "drain-leader"
    BALANCE_LEADER = "balance-leader"
    BALANCE_REGION = "balance-region"
    SPLIT = "split"
    ALIGN_FOR_MERGE = "align-for-merge"
    MERGE = "merge"


class OperatorStatus(enum.IntEnum):
    """Where an operator is in its life."""

    RUNNING = 0
    SUCCEEDED = 1
    CANCELLED = 2
    TIMED_OUT = 3


@dataclass(frozen=True, slots=True)
class Operator:
    """A plan of `steps` for region `region_id`, built when it was at `epoch`.

    Invariant: steps before `step_index` have been seen done, in order.
    `related_region_ids` are regions the operator also depends on (a merge's target);
    no other operator is started on them meanwhile.
    """

    id: int
    region_id: int
    kind: OperatorKind
    steps: tuple[Step, ...]
    epoch: RegionEpoch
    created_ms: int
    timeout_ms: int
    reason: str
    related_region_ids: tuple[int, ...] = ()
    step_index: int = 0
    status: OperatorStatus = OperatorStatus.RUNNING
    finished_ms: int = 0
    outcome: str = ""

    @property
    def finished(self) -> bool:
        """Whether the operator has ended, one way or another."""
        return self.status is not OperatorStatus.RUNNING

    def expected_epoch(self, done: int) -> RegionEpoch:
        """The region's epoch after the first `done` steps and nothing else."""
        conf = sum(s.conf_changes for s in self.steps[:done])
        version = sum(s.version_changes for s in self.steps[:done])
        return RegionEpoch(self.epoch.version + version, self.epoch.conf_ver + conf)

    def advance(self, report: RegionReport | None, now_ms: int) -> Operator:
        """This operator after seeing `report` (`None`: the region is gone)."""
        if self.finished:
            return self
        done = self.step_index
        while done < len(self.steps) and self.steps[done].is_done(report):
            done += 1
        if done == len(self.steps):
            return self.finish(OperatorStatus.SUCCEEDED, now_ms, "all steps done")
        if report is None:
            return self.finish(OperatorStatus.CANCELLED, now_ms, "region is gone")
        if report.region.epoch != self.expected_epoch(done):
            why = f"region changed under it: epoch {report.region.epoch}"
            return self.finish(OperatorStatus.CANCELLED, now_ms, why)
        return replace(self, step_index=done)

    def check_timeout(self, now_ms: int) -> Operator:
        """This operator, timed out if it has run longer than its timeout."""
        if self.finished or now_ms - self.created_ms <= self.timeout_ms:
            return self
        return self.finish(OperatorStatus.TIMED_OUT, now_ms, f"not done in {self.timeout_ms} ms")

    def finish(self, status: OperatorStatus, now_ms: int, outcome: str) -> Operator:
        """This operator, ended with `status` at `now_ms`."""
        return replace(self, status=status, finished_ms=now_ms, outcome=outcome)

    def next_step(self, report: RegionReport) -> Step | None:
        """The order for the region's leader now, or `None` to wait (see the module doc)."""
        if self.finished or self.step_index >= len(self.steps):
            return None
        step = self.steps[self.step_index]
        if isinstance(step, PromoteLearner) and step.peer_id in report.pending_peers:
            return None
        if isinstance(step, RemovePeer) and step.peer_id == report.leader_peer_id:
            return self._leader_escape(report, step)
        return step

    def _leader_escape(self, report: RegionReport, removing: RemovePeer) -> Step | None:
        down = {d.peer_id for d in report.down_peers}
        for peer in sorted(report.region.voters(), key=lambda p: p.id):
            if peer.id != removing.peer_id and peer.id not in down | set(report.pending_peers):
                return TransferLeader(peer.node_id, peer.id)
        return None

    def pending_steps(self) -> tuple[Step, ...]:
        """The steps not yet seen done."""
        return self.steps[self.step_index :]

    def nodes(self) -> tuple[int, ...]:
        """The nodes the unfinished steps touch (for per-node limits), sorted."""
        return tuple(sorted({n for s in self.pending_steps() for n in s.nodes()}))

    def adds_on(self) -> tuple[int, ...]:
        """The nodes receiving a replica whose snapshot may still be in progress: an
        unfinished add, or an added learner not yet promoted (the snapshot rate limit)."""
        adding = (AddLearner, PromoteLearner)
        return tuple(sorted({s.node_id for s in self.pending_steps() if isinstance(s, adding)}))

    def regions(self) -> tuple[int, ...]:
        """This operator's region and the regions it depends on."""
        return (self.region_id, *self.related_region_ids)

    def describe(self) -> str:
        """One line: kind, region, steps with the current one marked."""
        parts = [
            ("> " if i == self.step_index and not self.finished else "") + describe_step(s)
            for i, s in enumerate(self.steps)
        ]
        return f"#{self.id} {self.kind} region {self.region_id}: " + "; ".join(parts)


def moves_data(steps: tuple[Step, ...]) -> bool:
    """Whether any step adds a replica (the operator then waits for a snapshot)."""
    return any(isinstance(s, AddLearner) for s in steps)


def is_range_change(steps: tuple[Step, ...]) -> bool:
    """Whether the operator splits or merges."""
    return any(isinstance(s, SplitRegion | MergeRegion) for s in steps)
