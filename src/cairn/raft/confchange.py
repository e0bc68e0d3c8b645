"""Membership changes: turn a `ConfChange` into the next configuration and progress map.

Two protocols (Raft thesis ch. 4). A simple change alters at most one voter, so any
majority of the old configuration overlaps any majority of the new one. A joint change
first moves to `C_old,new`, where every decision needs majorities of both halves, then
leaves to `C_new`. Either way a node uses a configuration as soon as it is appended to
the log... here, as in etcd-raft, when it is applied: the leader refuses a new change
while one is still unapplied, which keeps the overlap argument valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.raft.errors import LocalRaftError
from cairn.raft.progress import Progress
from cairn.raft.quorum import JointConfig, MajorityConfig
from cairn.raft.tracker import ProgressTracker, TrackerConfig
from cairn.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    NodeId,
)


class ConfChangeError(LocalRaftError):
    """A membership change is invalid in the current configuration."""


@dataclass(slots=True)
class _Draft:
    """A mutable copy of a configuration being changed."""

    incoming: set[NodeId]
    outgoing: set[NodeId]
    learners: set[NodeId]
    learners_next: set[NodeId]
    auto_leave: bool
    progress: dict[NodeId, Progress]

    @staticmethod
    def of(tracker: ProgressTracker) -> _Draft:
        cfg = tracker.config
        return _Draft(
            incoming=set(cfg.voters.incoming.voters),
            outgoing=set(cfg.voters.outgoing.voters),
            learners=set(cfg.learners),
            learners_next=set(cfg.learners_next),
            auto_leave=cfg.auto_leave,
            progress=dict(tracker.progress),
        )

    def config(self) -> TrackerConfig:
        return TrackerConfig(
            voters=JointConfig(
                MajorityConfig(frozenset(self.incoming)), MajorityConfig(frozenset(self.outgoing))
            ),
            learners=frozenset(self.learners),
            learners_next=frozenset(self.learners_next),
            auto_leave=self.auto_leave,
        )


class Changer:
    """Computes configurations from changes; new members' progress starts at `last_index`."""

    def __init__(self, tracker: ProgressTracker, last_index: int) -> None:
        self.tracker = tracker
        self.last_index = last_index

    def apply(self, cc: ConfChange) -> tuple[TrackerConfig, dict[NodeId, Progress]]:
        """The configuration after `cc`, choosing simple or joint as `cc.transition` says."""
        if cc.leave_joint():
            return self.leave_joint()
        auto_leave, use_joint = self._transition(cc)
        if use_joint:
            return self.enter_joint(auto_leave, cc.changes)
        return self.simple(cc.changes)

    def _transition(self, cc: ConfChange) -> tuple[bool, bool]:
        voter_changes = sum(1 for c in cc.changes if c.type is not ConfChangeType.ADD_LEARNER)
        match cc.transition:
            case ConfChangeTransition.AUTO:
                return True, len(cc.changes) > 1 or voter_changes > 1
            case ConfChangeTransition.JOINT_IMPLICIT:
                return True, True
            case ConfChangeTransition.JOINT_EXPLICIT:
                return False, True

    def enter_joint(
        self, auto_leave: bool, changes: tuple[ConfChangeSingle, ...]
    ) -> tuple[TrackerConfig, dict[NodeId, Progress]]:
        """Move to `C_old,new`: the outgoing half is a copy of today's voters."""
        draft = _Draft.of(self.tracker)
        if draft.outgoing:
            raise ConfChangeError("configuration is already joint")
        if not draft.incoming:
            raise ConfChangeError("cannot make a zero-voter configuration joint")
        draft.outgoing = set(draft.incoming)
        self._apply_all(draft, changes)
        draft.auto_leave = auto_leave
        return self._checked(draft)

    def leave_joint(self) -> tuple[TrackerConfig, dict[NodeId, Progress]]:
        """Move from `C_old,new` to `C_new`, demoting the voters meant to be learners."""
        draft = _Draft.of(self.tracker)
        if not draft.outgoing:
            raise ConfChangeError("cannot leave a non-joint configuration")
        for node_id in sorted(draft.learners_next):
            draft.learners.add(node_id)
            draft.progress[node_id].is_learner = True
        draft.learners_next.clear()
        for node_id in sorted(draft.outgoing):
            if node_id not in draft.incoming and node_id not in draft.learners:
                del draft.progress[node_id]
        draft.outgoing.clear()
        draft.auto_leave = False
        return self._checked(draft)

    def simple(
        self, changes: tuple[ConfChangeSingle, ...]
    ) -> tuple[TrackerConfig, dict[NodeId, Progress]]:
        """Apply changes that alter at most one voter, outside joint consensus."""
        draft = _Draft.of(self.tracker)
        if draft.outgoing:
            raise ConfChangeError("cannot apply a simple change in a joint configuration")
        before = set(draft.incoming)
        self._apply_all(draft, changes)
        if len(before ^ draft.incoming) > 1:
            raise ConfChangeError("more than one voter changed without joint consensus")
        return self._checked(draft)

    def _apply_all(self, draft: _Draft, changes: tuple[ConfChangeSingle, ...]) -> None:
        for change in changes:
            if change.node_id == 0:
                continue
            match change.type:
                case ConfChangeType.ADD_NODE:
                    self._make_voter(draft, change.node_id)
                case ConfChangeType.ADD_LEARNER:
                    self._make_learner(draft, change.node_id)
                case ConfChangeType.REMOVE_NODE:
                    self._remove(draft, change.node_id)
        if not draft.incoming:
            raise ConfChangeError("removed all voters")

    def _ensure_progress(self, draft: _Draft, node_id: NodeId, is_learner: bool) -> Progress:
        pr = draft.progress.get(node_id)
        if pr is None:
            pr = self.tracker.new_progress(max(self.last_index, 1), is_learner)
            # A new member counts as active so check-quorum does not depose the leader
            # before the member has had a chance to answer.
            pr.recent_active = True
            draft.progress[node_id] = pr
        return pr

    def _make_voter(self, draft: _Draft, node_id: NodeId) -> None:
        pr = self._ensure_progress(draft, node_id, is_learner=False)
        pr.is_learner = False
        draft.learners.discard(node_id)
        draft.learners_next.discard(node_id)
        draft.incoming.add(node_id)

    def _make_learner(self, draft: _Draft, node_id: NodeId) -> None:
        pr = self._ensure_progress(draft, node_id, is_learner=True)
        if node_id in draft.learners:
            return
        draft.incoming.discard(node_id)
        if node_id in draft.outgoing:
            # Still a voter of C_old until the joint state is left.
            draft.learners_next.add(node_id)
        else:
            pr.is_learner = True
            draft.learners.add(node_id)

    def _remove(self, draft: _Draft, node_id: NodeId) -> None:
        if node_id not in draft.progress:
            return
        draft.incoming.discard(node_id)
        draft.learners.discard(node_id)
        draft.learners_next.discard(node_id)
        if node_id not in draft.outgoing:
            del draft.progress[node_id]

    def _checked(self, draft: _Draft) -> tuple[TrackerConfig, dict[NodeId, Progress]]:
        voters = draft.incoming | draft.outgoing
        both = sorted(draft.learners & voters)
        if both:
            raise ConfChangeError(f"nodes {both} are voters and learners")
        if not draft.learners_next <= draft.outgoing:
            raise ConfChangeError("a learner-to-be is not an outgoing voter")
        if not draft.outgoing and draft.auto_leave:
            raise ConfChangeError("auto_leave set outside a joint configuration")
        for node_id in voters | draft.learners | draft.learners_next:
            if node_id not in draft.progress:
                raise ConfChangeError(f"node {node_id} has no progress")
        return draft.config(), draft.progress


def restore(
    tracker: ProgressTracker, cs: ConfState, last_index: int
) -> tuple[TrackerConfig, dict[NodeId, Progress]]:
    """The configuration and progress map that a `ConfState` (from a snapshot) describes."""
    tracker.config = TrackerConfig()
    tracker.progress = {}
    changer = Changer(tracker, last_index)
    incoming = tuple(ConfChangeSingle(ConfChangeType.ADD_NODE, i) for i in cs.voters)
    learners = tuple(ConfChangeSingle(ConfChangeType.ADD_LEARNER, i) for i in cs.learners)
    if not cs.voters_outgoing:
        draft = _Draft.of(tracker)
        if cs.voters:
            changer._apply_all(draft, incoming + learners)
        return draft.config(), draft.progress
    # Joint: build C_old first, then enter joint with the incoming voters and learners.
    outgoing = tuple(ConfChangeSingle(ConfChangeType.ADD_NODE, i) for i in cs.voters_outgoing)
    draft = _Draft.of(tracker)
    changer._apply_all(draft, outgoing)
    tracker.config, tracker.progress = draft.config(), draft.progress
    removes = tuple(
        ConfChangeSingle(ConfChangeType.REMOVE_NODE, i) for i in cs.voters_outgoing
    )
    learners_next = tuple(ConfChangeSingle(ConfChangeType.ADD_LEARNER, i) for i in cs.learners_next)
    return changer.enter_joint(cs.auto_leave, removes + incoming + learners + learners_next)
