"""Quorum arithmetic: majorities, joint majorities, vote tallies, committed indexes.

A joint configuration (Raft thesis §4.3) is two majority configurations that must both
agree; while not joint, the outgoing half is empty and agrees with everything.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cairn.raft.types import NodeId


class VoteResult(enum.Enum):
    """The outcome of a vote so far."""

    PENDING = "VotePending"
    LOST = "VoteLost"
    WON = "VoteWon"


@dataclass(frozen=True, slots=True)
class MajorityConfig:
    """A set of voters; a decision needs more than half of them."""

    voters: frozenset[NodeId] = frozenset()

    def sorted(self) -> list[NodeId]:
        """The voters in increasing id order (stable iteration)."""
        return sorted(self.voters)

    def committed_index(self, acked: Callable[[NodeId], int | None]) -> int:
        """The largest index acknowledged by a majority.

        An empty configuration agrees with anything, so it returns a value that never
        limits a joint minimum.
        """
        if not self.voters:
            return 1 << 63
        indexes = sorted((acked(v) or 0 for v in self.voters), reverse=True)
        return indexes[len(indexes) // 2]

    def vote_result(self, votes: Mapping[NodeId, bool]) -> VoteResult:
        """Won with a majority of yes, lost once a majority can no longer be reached."""
        if not self.voters:
            return VoteResult.WON
        yes = sum(1 for v in self.voters if votes.get(v) is True)
        missing = sum(1 for v in self.voters if v not in votes)
        quorum = len(self.voters) // 2 + 1
        if yes >= quorum:
            return VoteResult.WON
        if yes + missing >= quorum:
            return VoteResult.PENDING
        return VoteResult.LOST


@dataclass(frozen=True, slots=True)
class JointConfig:
    """The incoming and outgoing voter sets; `outgoing` is empty outside a joint change."""

    incoming: MajorityConfig = field(default_factory=MajorityConfig)
    outgoing: MajorityConfig = field(default_factory=MajorityConfig)

    def ids(self) -> list[NodeId]:
        """Every voter of either half, in increasing order."""
        return sorted(self.incoming.voters | self.outgoing.voters)

    def is_joint(self) -> bool:
        """Whether a joint change is under way."""
        return bool(self.outgoing.voters)

    def committed_index(self, acked: Callable[[NodeId], int | None]) -> int:
        """The largest index both halves have committed."""
        return min(self.incoming.committed_index(acked), self.outgoing.committed_index(acked))

    def vote_result(self, votes: Mapping[NodeId, bool]) -> VoteResult:
        """Won only if both halves won; lost if either lost."""
        r1 = self.incoming.vote_result(votes)
        r2 = self.outgoing.vote_result(votes)
        if r1 is r2:
            return r1
        if VoteResult.LOST in (r1, r2):
            return VoteResult.LOST
        return VoteResult.PENDING


def majority(ids: Iterable[NodeId]) -> MajorityConfig:
    """A `MajorityConfig` of the given ids."""
    return MajorityConfig(frozenset(ids))
