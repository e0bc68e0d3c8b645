"""`SimObserver`: what region replicas persist, commit and apply, fed to the invariant
checker, and the moments the nemesis may strike at.

One observer per (node, group) replica (`cairn.sim.region_run` keeps one
`InvariantChecker` per region and one for the placement group). It tells the nemesis
when a node has just granted a vote (the moment a crash is most likely to expose a
missing fsync), become leader, or persisted a commit index as leader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cairn.raft.ready import Ready
from cairn.raft.types import Entry, MessageType, NodeId, Snapshot, StateRole
from cairn.shard.replica import Replica
from cairn.sim.invariants import InvariantChecker


class FaultHooks(Protocol):
    """Moments at which the nemesis may strike (it must only schedule, never act inline)."""

    def after_vote(self, node_id: NodeId) -> None:
        """`node_id` just granted a vote."""
        ...

    def after_election(self, node_id: NodeId) -> None:
        """`node_id` just became leader."""
        ...

    def after_commit(self, node_id: NodeId, commit: int) -> None:
        """`node_id`, a leader, just persisted a commit index of `commit`."""
        ...


class SimObserver:
    """Feeds replica events to the invariant checker (a `ReplicaObserver`)."""

    def __init__(self, checker: InvariantChecker, hooks: FaultHooks) -> None:
        self.checker = checker
        self.hooks = hooks

    def on_persist(self, replica: Replica, ready: Ready) -> None:
        """See `ReplicaObserver.on_persist`."""
        node = replica.node_id
        if ready.soft_state is not None and ready.soft_state.role is StateRole.LEADER:
            log = replica.raw.log
            # The term this Ready was prepared in (now persisted), not the core's current
            # one: a Ready finished after a background fsync may find the core, which
            # stepped messages meanwhile, already a follower of a later term.
            term = replica.storage.hard_state.term
            self.checker.leader_elected(node, term, _log_term_at(replica), log.first_index())
            self.hooks.after_election(node)
        if ready.entries:
            self.checker.entries_written(node, ready.entries, _storage_term_at(replica))
        if ready.hard_state is not None:
            hs = ready.hard_state
            self.checker.commit_advanced(node, hs.commit, hs.term, _storage_entry_at(replica))
            if replica.is_leader:
                self.hooks.after_commit(node, hs.commit)
        # A granted vote normally waits for the persist (`persisted_messages`); a core that
        # forgets to wait sends it at once (`messages`). Either way this is the moment.
        if any(
            m.type is MessageType.VOTE_RESP and not m.reject
            for m in (*ready.messages, *ready.persisted_messages)
        ):
            self.hooks.after_vote(node)

    def on_apply(self, replica: Replica, entry: Entry) -> None:
        """See `ReplicaObserver.on_apply`."""
        self.checker.applied(replica.node_id, entry, replica.term)

    def on_restore(self, replica: Replica, snapshot: Snapshot) -> None:
        """See `ReplicaObserver.on_restore`; snapshots are checked through their entries."""


def _log_term_at(replica: Replica) -> Callable[[int], int | None]:
    log = replica.raw.log

    def term_at(index: int) -> int | None:
        return log.term(index) or None

    return term_at


def _storage_term_at(replica: Replica) -> Callable[[int], int | None]:
    storage = replica.storage

    def term_at(index: int) -> int | None:
        if index < storage.first_index() - 1 or index > storage.last_index():
            return None
        return storage.term(index) if index >= 0 else None

    return term_at


def _storage_entry_at(replica: Replica) -> Callable[[int], Entry | None]:
    storage = replica.storage

    def entry_at(index: int) -> Entry | None:
        if index < storage.first_index() or index > storage.last_index():
            return None
        return storage.entries(index, index + 1)[0]

    return entry_at
