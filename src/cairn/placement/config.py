"""The placement driver's knobs: every limit and threshold in one place, with defaults.

The config is part of the replicated metadata (`SetConfig` changes it), so every replica of
the placement group schedules with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


class InvalidConfigError(ValueError):
    """A config whose numbers contradict each other (see `PlacementConfig.validate`)."""


@dataclass(frozen=True, slots=True)
class PlacementConfig:
    """Limits and thresholds of the reconcile loops. Times are milliseconds."""

    down_after_ms: int = 30_000
    """A node silent this long is down and its replicas are rebuilt elsewhere."""
    disconnected_after_ms: int = 10_000
    """A node silent this long receives no new replicas or leaders (not yet repaired)."""
    max_operators: int = 64
    """Operators in flight in the whole cluster."""
    max_node_operators: int = 8
    """Operators in flight that touch one node (add, remove or leader move)."""
    max_node_snapshots: int = 2
    """Operators in flight that add a replica on one node (each costs a snapshot)."""
    max_leader_balance_operators: int = 4
    """Leader-balance operators in flight (balance is the lowest priority)."""
    max_region_balance_operators: int = 4
    """Region-balance operators in flight."""
    operator_timeout_ms: int = 60_000
    """Lifetime of an operator that moves no data (leader transfer, split, merge, remove)."""
    snapshot_operator_timeout_ms: int = 600_000
    """Lifetime of an operator that adds a replica (it waits for a snapshot)."""
    split_size_bytes: int = 96 * MIB
    """A region this large is split."""
    split_write_bytes_per_s: int = 32 * MIB
    """A region written this fast is split (load-based split)."""
    merge_size_bytes: int = 20 * MIB
    """A region smaller than this may merge with a neighbour that is small too."""
    merge_keys: int = 200_000
    """... and holding fewer keys than this."""
    split_merge_interval_ms: int = 3_600_000
    """A region born of a split is not merged again for this long (no split/merge churn)."""
    leader_balance_tolerance: int = 1
    """Leaders move only from a node holding more than this many more than the target."""
    region_balance_tolerance: int = 2
    """Replicas move only from a node holding more than this many more than the target."""
    event_log_size: int = 1000
    """Events kept (older ones are dropped)."""
    operator_history_size: int = 500
    """Finished operators kept."""
    patrol_interval_ms: int = 30_000
    """The reconcile loops run on a tick only when something they read changed since their
    last run (a report, a node's state, an operator, the rules), or this long after it
    (what only time changes: a region old enough to merge). An idle cluster of 1,000
    regions so costs its placement group little."""

    def validate(self) -> None:
        """Raise `InvalidConfigError` unless the numbers can work together."""
        positive = (
            self.down_after_ms,
            self.max_operators,
            self.max_node_operators,
            self.max_node_snapshots,
            self.operator_timeout_ms,
            self.snapshot_operator_timeout_ms,
            self.split_size_bytes,
            self.event_log_size,
            self.operator_history_size,
            self.patrol_interval_ms,
        )
        if min(positive) <= 0:
            raise InvalidConfigError(f"limits must be positive: {self}")
        if self.disconnected_after_ms > self.down_after_ms:
            raise InvalidConfigError("disconnected_after_ms exceeds down_after_ms")
        if self.merge_size_bytes * 2 > self.split_size_bytes:
            raise InvalidConfigError("two regions of merge size would be split again")
        if self.leader_balance_tolerance < 1 or self.region_balance_tolerance < 1:
            raise InvalidConfigError("balance tolerances below 1 never settle")
