"""The leader's bookkeeping of the configuration, each peer's progress and the votes."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.raft.progress import Inflights, Progress
from cairn.raft.quorum import JointConfig, MajorityConfig, VoteResult
from cairn.raft.types import ConfState, NodeId


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """A membership: voters (possibly joint), learners, and learners-to-be.

    Invariants: `learners` and the voters of either half are disjoint; `learners_next`
    holds voters of the outgoing half that become learners when the joint state is left
    (they cannot be learners and voters at once); `auto_leave` only when joint.
    """

    voters: JointConfig = field(default_factory=JointConfig)
    learners: frozenset[NodeId] = frozenset()
    learners_next: frozenset[NodeId] = frozenset()
    auto_leave: bool = False

    def conf_state(self) -> ConfState:
        """This membership as the `ConfState` that snapshots and the application see."""
        return ConfState(
            voters=tuple(self.voters.incoming.sorted()),
            learners=tuple(sorted(self.learners)),
            voters_outgoing=tuple(self.voters.outgoing.sorted()),
            learners_next=tuple(sorted(self.learners_next)),
            auto_leave=self.auto_leave,
        )

    @staticmethod
    def from_conf_state(cs: ConfState) -> TrackerConfig:
        """The membership a `ConfState` describes."""
        return TrackerConfig(
            voters=JointConfig(
                MajorityConfig(frozenset(cs.voters)), MajorityConfig(frozenset(cs.voters_outgoing))
            ),
            learners=frozenset(cs.learners),
            learners_next=frozenset(cs.learners_next),
            auto_leave=cs.auto_leave,
        )


@dataclass(slots=True)
class ProgressTracker:
    """The current membership, the progress of every member, and this term's votes."""

    max_inflight: int
    config: TrackerConfig = field(default_factory=TrackerConfig)
    progress: dict[NodeId, Progress] = field(default_factory=dict)
    votes: dict[NodeId, bool] = field(default_factory=dict)

    def new_progress(self, next_index: int, is_learner: bool) -> Progress:
        """A fresh progress entry for a member that just joined."""
        return Progress(
            match=0,
            next_index=next_index,
            inflights=Inflights(self.max_inflight),
            is_learner=is_learner,
        )

    def ids(self) -> list[NodeId]:
        """Every member with a progress entry, in increasing id order."""
        return sorted(self.progress)

    def is_voter(self, node_id: NodeId) -> bool:
        """Whether the node votes in either half of the configuration."""
        v = self.config.voters
        return node_id in v.incoming.voters or node_id in v.outgoing.voters

    def is_singleton(self) -> bool:
        """Whether this node alone decides (one voter, not joint)."""
        v = self.config.voters
        return len(v.incoming.voters) == 1 and not v.is_joint()

    def committed(self) -> int:
        """The largest index stored on a quorum of voters."""
        return self.config.voters.committed_index(self._match_of)

    def _match_of(self, node_id: NodeId) -> int | None:
        pr = self.progress.get(node_id)
        return pr.match if pr else None

    def reset_votes(self) -> None:
        """Forget this term's votes."""
        self.votes = {}

    def record_vote(self, node_id: NodeId, granted: bool) -> None:
        """Record a node's first answer in this election; later ones are ignored."""
        self.votes.setdefault(node_id, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        """Granted and rejected counts among voters, and the result so far."""
        granted = rejected = 0
        for node_id in self.config.voters.ids():
            vote = self.votes.get(node_id)
            if vote is True:
                granted += 1
            elif vote is False:
                rejected += 1
        return granted, rejected, self.config.voters.vote_result(self.votes)

    def quorum_active(self) -> bool:
        """Whether a quorum of voters was recently active (check-quorum, thesis §6.2)."""
        active = {i: pr.recent_active for i, pr in self.progress.items() if not pr.is_learner}
        return self.config.voters.vote_result(active) is VoteResult.WON
