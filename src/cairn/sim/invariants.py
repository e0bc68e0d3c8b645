"""Raft's safety properties, checked incrementally at every step of a simulation.

Theory of operation. The checker keeps global maps over the whole run, fed by observations
of what each node persists, commits and applies (through `ReplicaObserver`):

* election safety — `term -> leader`: at most one node ever leads a term;
* log matching — `(index, term) -> (entry digest, term at index-1)`: two logs holding an
  entry with the same index and term hold the same entry, preceded by the same term (by
  induction, identical prefixes);
* committed entries — `index -> (term, digest)` from every node's commit index: a node that
  overwrites an entry at or below its own commit index, or commits a different entry at an
  index committed elsewhere, has lost a committed entry (a deposed leader may still append
  at a committed index: that entry is never committed and will be overwritten);
* leader completeness — a node that becomes leader of term T holds every entry known
  committed in a term before T (an entry is "known committed in term t" when a node in
  term t saw it committed);
* state machine safety — `index -> digest` of applied entries: no two nodes apply
  different entries at one index.

Each check is O(entries touched), so it runs after every event. A broken property raises
`InvariantViolationError` carrying a typed `Violation` (kind, step, virtual time, text).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cairn.raft.types import Entry, NodeId


class InvariantKind(enum.Enum):
    """Which property a violation breaks."""

    ELECTION_SAFETY = "election-safety"
    LOG_MATCHING = "log-matching"
    LEADER_COMPLETENESS = "leader-completeness"
    STATE_MACHINE_SAFETY = "state-machine-safety"
    COMMITTED_ENTRY_LOST = "committed-entry-lost"
    NODE_FAILED = "node-failed"
    """A node's driver hit an unexpected exception (a broken assertion, a corrupt log)."""


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken invariant: what, at which step and virtual time (ns), and a description."""

    kind: InvariantKind
    step: int
    time: int
    description: str

    def __str__(self) -> str:
        return f"{self.kind.value} at step {self.step} (t={self.time}ns): {self.description}"


class InvariantViolationError(Exception):
    """Raised by the checker to stop a run at the first broken invariant."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


TermAt = Callable[[int], int | None]
"""A node's log as seen by the checker: the term at an index, None if absent or compacted."""


def entry_digest(entry: Entry) -> str:
    """A short stable fingerprint of an entry's type and data."""
    h = hashlib.sha256(entry.type.value.encode())
    h.update(entry.data)
    return h.hexdigest()[:16]


class InvariantChecker:
    """Global safety state of one run; `clock()` returns (step, time) for violations."""

    def __init__(self, clock: Callable[[], tuple[int, int]]) -> None:
        self._clock = clock
        self.leaders: dict[int, NodeId] = {}
        self.elections = 0
        self._log: dict[tuple[int, int], tuple[str, int | None]] = {}
        self.committed: dict[int, tuple[int, str]] = {}
        self._commit_term: dict[int, int] = {}
        self._applied: dict[int, str] = {}
        self._commit_seen: dict[NodeId, int] = {}
        self.violation: Violation | None = None
        """The first violation found. It is also raised, but the raise passes through the
        node driver, which may catch it; the runner looks here after every event."""

    @property
    def commit_index(self) -> int:
        """The highest index known committed anywhere."""
        return max(self.committed, default=0)

    def _fail(self, kind: InvariantKind, description: str) -> None:
        step, time = self._clock()
        violation = Violation(kind, step, time, description)
        if self.violation is None:
            self.violation = violation
        raise InvariantViolationError(violation)

    def node_failed(self, node: NodeId, error: Exception) -> None:
        """`node`'s driver stopped itself on an unexpected exception."""
        self._fail(InvariantKind.NODE_FAILED, f"node {node} failed: {error!r}")

    def leader_elected(self, node: NodeId, term: int, term_at: TermAt, first: int) -> None:
        """`node` became leader of `term`; its log answers `term_at`, complete from `first`."""
        other = self.leaders.get(term)
        if other is not None and other != node:
            self._fail(
                InvariantKind.ELECTION_SAFETY, f"nodes {other} and {node} both lead term {term}"
            )
        if other is None:
            self.elections += 1
        self.leaders[term] = node
        for index in sorted(self.committed):
            if index < first or self._commit_term[index] >= term:
                continue
            committed_term, _ = self.committed[index]
            have = term_at(index)
            if have != committed_term:
                self._fail(
                    InvariantKind.LEADER_COMPLETENESS,
                    f"node {node} leads term {term} without committed entry {index}"
                    f" (term {committed_term}); its log has term {have} there",
                )

    def entries_written(self, node: NodeId, entries: tuple[Entry, ...], term_at: TermAt) -> None:
        """`node` persisted `entries` (its log answers `term_at` after the write)."""
        for entry in entries:
            self._check_matching(node, entry, term_at(entry.index - 1))
            committed = self.committed.get(entry.index)
            own_commit = self._commit_seen.get(node, 0)
            if entry.index <= own_commit and committed is not None and committed[0] != entry.term:
                self._fail(
                    InvariantKind.COMMITTED_ENTRY_LOST,
                    f"node {node} overwrote entry {entry.index} (term {committed[0]}), committed"
                    f" up to {own_commit} in its own log, with one of term {entry.term}",
                )

    def _check_matching(self, node: NodeId, entry: Entry, prev_term: int | None) -> None:
        key = (entry.index, entry.term)
        digest = entry_digest(entry)
        seen = self._log.get(key)
        if seen is None:
            self._log[key] = (digest, prev_term)
            return
        same_prev = seen[1] is None or prev_term is None or seen[1] == prev_term
        if seen[0] != digest or not same_prev:
            self._fail(
                InvariantKind.LOG_MATCHING,
                f"node {node} holds entry {entry.index} of term {entry.term} (data {digest},"
                f" previous term {prev_term}) that differs from another log's"
                f" (data {seen[0]}, previous term {seen[1]})",
            )

    def commit_advanced(
        self,
        node: NodeId,
        commit: int,
        term: int,
        entry_at: Callable[[int], Entry | None],
    ) -> None:
        """`node`, in `term`, learned that its log is committed up to `commit`."""
        start = self._commit_seen.get(node, 0)
        for index in range(start + 1, commit + 1):
            entry = entry_at(index)
            if entry is None:
                continue
            self._record_committed(node, entry, term)
        self._commit_seen[node] = max(start, commit)

    def _record_committed(self, node: NodeId, entry: Entry, term: int) -> None:
        """Record `entry` as committed, known to `node` in `term`: it was committed in
        `term` or earlier, so every leader of a later term must hold it."""
        digest = entry_digest(entry)
        known = self.committed.get(entry.index)
        if known is None:
            self.committed[entry.index] = (entry.term, digest)
            self._commit_term[entry.index] = term
        elif known != (entry.term, digest):
            self._fail(
                InvariantKind.COMMITTED_ENTRY_LOST,
                f"node {node} committed entry {entry.index} of term {entry.term}, but entry"
                f" {entry.index} of term {known[0]} was committed before",
            )

    def applied(self, node: NodeId, entry: Entry, term: int) -> None:
        """`node`, in `term`, applied `entry` to its state machine."""
        digest = entry_digest(entry)
        known = self._applied.setdefault(entry.index, digest)
        if known != digest:
            self._fail(
                InvariantKind.STATE_MACHINE_SAFETY,
                f"node {node} applied entry {entry.index} (term {entry.term}, data {digest})"
                f" but another node applied {known} there",
            )
        self._record_committed(node, entry, term)

    def final_check(self, node: NodeId, term_at: TermAt, first: int) -> None:
        """At the end: the settled leader `node` still holds every committed entry."""
        for index in sorted(self.committed):
            if index >= first and term_at(index) != self.committed[index][0]:
                self._fail(
                    InvariantKind.COMMITTED_ENTRY_LOST,
                    f"after settling, leader {node} lacks committed entry {index}",
                )
