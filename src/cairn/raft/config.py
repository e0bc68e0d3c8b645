"""Configuration of one Raft node, validated once when the node is built."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cairn.raft.errors import ConfigError
from cairn.raft.types import NONE, NodeId, ReadOnlyOption


class PlantedBug(enum.Enum):
    """Deliberate safety bugs, switched on only by tests to prove the harness bites.

    Each breaks one rule the simulator's invariants or the linearizability checker must
    catch. Production configurations never set any (`Config.validate` does not forbid
    them, but nothing outside `tests/` and `cairn sim --plant` names them).
    """

    DOUBLE_VOTE = "double-vote"
    """Grant a vote even when this term's vote already went to another candidate."""
    NO_TRUNCATE = "no-truncate"
    """A follower appends after a conflicting suffix instead of truncating it."""
    COMMIT_OLD_TERM = "commit-old-term"
    """The leader commits entries of earlier terms by counting replicas (paper §5.4.2)."""
    STALE_LEASE_READ = "stale-lease-read"
    """A leader serves lease reads without checking that its lease is still valid."""
    UNSYNCED_VOTE = "unsynced-vote"
    """A new vote or term is not marked `must_sync`, so a crash may forget it."""
    SPLIT_KEY_LEFT_BEHIND = "split-key-left-behind"
    """Node level (`RegionMachine`): a split hands the new region the keys past the split
    point but keeps those at it (the split key, or the first slot of a split at a slot
    bound), which the left part no longer owns: the new region lacks them."""
    APPLY_OUT_OF_RANGE = "apply-out-of-range"
    """Node level (`RegionMachine`): a write whose key a split moved away between its
    proposal and its apply is applied anyway, in the region that no longer owns it."""


@dataclass(frozen=True, slots=True)
class Config:
    """Parameters of a Raft node; all times are counted in ticks.

    Invariant: `heartbeat_tick < election_tick`. The election timeout is drawn uniformly
    from `[election_tick, 2 * election_tick)` with the node's injected random source.
    A lease read is valid only while fewer than `election_tick - max_clock_drift_ticks`
    ticks have passed since a quorum last acknowledged the leader, so a clock that runs
    up to `max_clock_drift_ticks / election_tick` slower than its peers' stays safe.
    """

    id: NodeId
    election_tick: int = 10
    heartbeat_tick: int = 1
    applied: int = 0
    max_size_per_msg: int = 1 << 20
    max_committed_size_per_ready: int = 1 << 24
    max_inflight_msgs: int = 256
    max_uncommitted_entries_size: int = 0
    check_quorum: bool = True
    pre_vote: bool = True
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    max_clock_drift_ticks: int = 2
    disable_proposal_forwarding: bool = False
    bugs: frozenset[PlantedBug] = frozenset()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad field."""
        if self.id == NONE:
            raise ConfigError("id: must not be 0 (0 means 'no node')")
        if self.heartbeat_tick <= 0:
            raise ConfigError("heartbeat_tick: must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election_tick: must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max_inflight_msgs: must be greater than 0")
        if self.read_only_option is ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ConfigError("read_only_option: lease-based reads need check_quorum")
        if not 0 <= self.max_clock_drift_ticks < self.election_tick:
            raise ConfigError("max_clock_drift_ticks: must be in [0, election_tick)")

    def has_bug(self, bug: PlantedBug) -> bool:
        """Whether a planted bug is switched on (always false outside tests)."""
        return bug in self.bugs
