"""What a leader knows of each follower's log, and the flow-control window per follower."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class ProgressState(enum.Enum):
    """How a leader currently replicates to one follower (etcd-raft's three states).

    PROBE: one append per heartbeat interval until the follower's match is found.
    REPLICATE: optimistic, pipelined appends, bounded by `Inflights`.
    SNAPSHOT: a snapshot is in flight; appends wait until it is reported.
    """

    PROBE = "StateProbe"
    REPLICATE = "StateReplicate"
    SNAPSHOT = "StateSnapshot"


class Inflights:
    """A bounded window of append messages sent but not yet acknowledged.

    Each entry is the last index carried by one message; acknowledgements free every
    message up to the acknowledged index. Invariant: the stored indexes increase.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._last_indexes: deque[int] = deque()

    def add(self, last_index: int) -> None:
        """Record a message carrying entries up to `last_index`."""
        if self.full():
            raise OverflowError("cannot add into a full inflights window")
        if self._last_indexes and last_index < self._last_indexes[-1]:
            raise ValueError(f"inflight index {last_index} goes backwards")
        self._last_indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose entries are all at or below `index`."""
        while self._last_indexes and self._last_indexes[0] <= index:
            self._last_indexes.popleft()

    def free_first_one(self) -> None:
        """Forget the oldest message, so a stalled window can probe again."""
        if self._last_indexes:
            self._last_indexes.popleft()

    def full(self) -> bool:
        """Whether no more messages may be sent until some are acknowledged."""
        return len(self._last_indexes) >= self.capacity

    def count(self) -> int:
        """The number of messages in flight."""
        return len(self._last_indexes)

    def reset(self) -> None:
        """Forget all messages in flight."""
        self._last_indexes.clear()


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower.

    Invariant: `match < next_index`. `match` is the highest index known to be on the
    follower; `next_index` is the next index to send. `pending_snapshot` is set only in
    SNAPSHOT state. `recent_active` is set by any message from the follower and cleared by
    each check-quorum round.
    """

    match: int
    next_index: int
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    pending_snapshot: int = 0
    recent_active: bool = False
    probe_sent: bool = False
    is_learner: bool = False

    def reset_state(self, state: ProgressState) -> None:
        """Enter `state` with no message in flight."""
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Go back to probing from just after `match` (or after a reported snapshot)."""
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self.reset_state(ProgressState.PROBE)
            self.next_index = max(self.match + 1, pending + 1)
        else:
            self.reset_state(ProgressState.PROBE)
            self.next_index = self.match + 1

    def become_replicate(self) -> None:
        """Start pipelining appends from just after `match`."""
        self.reset_state(ProgressState.REPLICATE)
        self.next_index = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """Wait for a snapshot at `snapshot_index` to be installed."""
        self.reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def update_on_entries_send(self, entries: int, last_index: int) -> None:
        """Account for an append of `entries` entries ending at `last_index`."""
        if self.state is ProgressState.REPLICATE:
            if entries:
                self.next_index = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, n: int) -> bool:
        """Record that the follower has everything up to `n`; true if `match` grew."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next_index = max(self.next_index, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Step `next_index` back after a rejection of an append at `rejected`.

        Returns false for a stale rejection (one that no longer describes our window).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next_index = self.match + 1
            return True
        if self.next_index - 1 != rejected:
            return False
        self.next_index = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        """Whether the leader must hold back appends to this follower now."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True
