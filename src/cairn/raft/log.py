"""The Raft log as the core sees it: stable entries in `Storage` plus an unstable tail.

Entries proposed or received enter `Unstable`; the application persists them from a
`Ready` and the core then moves its stable mark (`stable_to`). Invariants:
`applied <= committed`, `committed <= last_index()`, and the unstable tail starts right
after the stable log (or after the unstable snapshot).
"""

from __future__ import annotations

from cairn.raft.errors import CompactedError, UnavailableError
from cairn.raft.storage import Storage, limit_size
from cairn.raft.types import Entry, Snapshot


class Unstable:
    """Entries and a snapshot not yet known to be on stable storage.

    Invariant: `entries[i].index == offset + i`; with a snapshot, `offset` is the index
    just after it. `in_progress` (etcd's offsetInProgress): entries before it were already
    handed out in a `Ready` whose write may still be under way, so the next `Ready` starts
    there; `snapshot_in_progress` likewise for the snapshot. `offset <= in_progress <=
    offset + len(entries)`.
    """

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset
        self.in_progress = offset
        self.snapshot_in_progress = False

    def maybe_first_index(self) -> int | None:
        """The first log index after the unstable snapshot, if there is one."""
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        """The last index held here (entries, or else the snapshot)."""
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, index: int) -> int | None:
        """The term of `index` if this tail knows it."""
        if index < self.offset:
            snap = self.snapshot
            if snap is not None and snap.metadata.index == index:
                return snap.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """Drop entries up to `index` once persisted, if the tail still holds that entry."""
        got = self.maybe_term(index)
        if got is None or got != term or index < self.offset:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1
        self.in_progress = max(self.in_progress, self.offset)

    def stable_snap_to(self, index: int) -> None:
        """Drop the snapshot once persisted."""
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None
            self.snapshot_in_progress = False

    def restore(self, snap: Snapshot) -> None:
        """Replace everything by a snapshot."""
        self.offset = snap.metadata.index + 1
        self.in_progress = self.offset
        self.entries = []
        self.snapshot = snap
        self.snapshot_in_progress = False

    def truncate_and_append(self, entries: list[Entry]) -> None:
        """Append, replacing any suffix from `entries[0].index` on."""
        after = entries[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= self.offset:
            # The new entries replace everything we hold, stable or not.
            self.offset = after
            self.in_progress = after
            self.entries = list(entries)
        else:
            self.entries = [*self.entries[: after - self.offset], *entries]
            self.in_progress = min(self.in_progress, after)

    def next_entries(self) -> list[Entry]:
        """The entries not yet handed out for persisting."""
        return self.entries[self.in_progress - self.offset :]

    def accept_in_progress(self) -> None:
        """Everything held now has been handed out (its write is under way)."""
        self.in_progress = self.offset + len(self.entries)
        self.snapshot_in_progress = self.snapshot is not None

    def has_next(self) -> bool:
        """Whether entries or a snapshot wait to be handed out."""
        return self.in_progress < self.offset + len(self.entries) or (
            self.snapshot is not None and not self.snapshot_in_progress
        )

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries in [lo, hi), which must lie inside this tail."""
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    """Stable storage plus the unstable tail, with the commit and apply marks."""

    def __init__(self, storage: Storage, max_committed_size_per_ready: int) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.applying = first - 1
        """Committed entries up to here were handed out for applying (`applied <=
        applying <= committed`); the next Ready hands out those after it."""
        self.max_committed_size_per_ready = max_committed_size_per_ready

    def __repr__(self) -> str:
        return (
            f"RaftLog(committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, len(unstable)={len(self.unstable.entries)})"
        )

    def first_index(self) -> int:
        """The first index readable from the log."""
        first = self.unstable.maybe_first_index()
        return first if first is not None else self.storage.first_index()

    def last_index(self) -> int:
        """The index of the last entry."""
        last = self.unstable.maybe_last_index()
        return last if last is not None else self.storage.last_index()

    def last_term(self) -> int:
        """The term of the last entry."""
        return self.term(self.last_index())

    def term(self, index: int) -> int:
        """The term of `index`; 0 when it is compacted away or beyond the log."""
        dummy = self.first_index() - 1
        if index < dummy or index > self.last_index():
            return 0
        term = self.unstable.maybe_term(index)
        if term is not None:
            return term
        try:
            return self.storage.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def match_term(self, index: int, term: int) -> bool:
        """Whether the log holds an entry at `index` with `term`."""
        return self.term(index) == term and (index == 0 or index >= self.first_index() - 1)

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a log ending at (last_index, term) is at least as up to date (§5.4.1)."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and last_index >= self.last_index())

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """The first index whose entry differs from ours, or 0 if all match."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term`, with that term.

        A follower that rejects an append uses it to tell the leader where its log can
        possibly match, skipping a whole term of divergent entries per round trip.
        """
        first = self.first_index()
        while index >= first:
            t = self.term(index)
            if t <= term:
                return index, t
            index -= 1
        return index, self.term(index)

    def maybe_append(
        self,
        index: int,
        log_term: int,
        committed: int,
        entries: tuple[Entry, ...],
        truncate: bool = True,
    ) -> int | None:
        """Append entries that follow (index, log_term); None if that entry does not match.

        Returns the index of the last entry now known to match the leader's log.
        `truncate=False` is the planted NO_TRUNCATE bug: a conflicting suffix is kept.
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise AssertionError(
                    f"entry {conflict} conflicts with committed entry (committed {self.committed})"
                )
            start = conflict if truncate else max(conflict, self.last_index() + 1)
            if start <= last_new:
                self.append(list(entries[start - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, entries: list[Entry]) -> int:
        """Append entries (truncating what they overwrite) and return the last index."""
        if not entries:
            return self.last_index()
        after = entries[0].index - 1
        if after < self.committed:
            raise AssertionError(f"append after {after} is below committed {self.committed}")
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def unstable_entries(self) -> list[Entry]:
        """Entries to persist that no earlier Ready handed out."""
        return self.unstable.next_entries()

    def has_next_committed_entries(self) -> bool:
        """Whether committed entries wait to be handed out for applying."""
        return self.committed > self.applying and self.applying + 1 >= self.first_index()

    def next_committed_entries(self) -> list[Entry]:
        """Committed entries to apply, up to the per-Ready size limit."""
        lo = max(self.applying + 1, self.first_index())
        if self.committed < lo:
            return []
        return self.slice(lo, self.committed + 1, self.max_committed_size_per_ready)

    def snapshot(self) -> Snapshot:
        """The newest snapshot, unstable or stable."""
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def entries(self, index: int, max_size: int | None) -> list[Entry]:
        """Entries from `index` to the end, at most `max_size` bytes (at least one)."""
        if index > self.last_index():
            return []
        return self.slice(index, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        """Every entry in the log (tests and invariant checks)."""
        return self.entries(self.first_index(), None)

    def slice(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        """Entries in [lo, hi); raises `CompactedError` when `lo` is compacted."""
        if lo < self.first_index():
            raise CompactedError(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"slice [{lo},{hi}) is out of bounds")
        if lo == hi:
            return []
        ents: list[Entry] = []
        offset = self.unstable.offset
        if lo < offset:
            ents = self.storage.entries(lo, min(hi, offset), max_size)
            if len(ents) < min(hi, offset) - lo:
                return ents
        if hi > offset:
            ents = ents + self.unstable.slice(max(lo, offset), hi)
        return limit_size(ents, max_size)

    def commit_to(self, index: int) -> None:
        """Move the commit mark forward (never back)."""
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} is past the last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, max_index: int, term: int, any_term: bool = False) -> bool:
        """Commit up to `max_index` if that entry is of `term` (Raft paper §5.4.2).

        `any_term=True` is the planted COMMIT_OLD_TERM bug.
        """
        if max_index > self.committed and (any_term or self.term(max_index) == term):
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        """Record that entries up to `index` are applied."""
        if index == 0:
            return
        if not self.applied <= index <= self.committed:
            raise AssertionError(
                f"applied {index} is out of range [{self.applied}, {self.committed}]"
            )
        self.applied = index
        self.applying = max(self.applying, index)

    def applying_to(self, index: int) -> None:
        """Record that committed entries up to `index` were handed out for applying."""
        self.applying = max(self.applying, index)

    def stable_to(self, index: int, term: int) -> None:
        """Record that entries up to `index` (of `term`) are persisted."""
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        """Record that the snapshot at `index` is persisted."""
        self.unstable.stable_snap_to(index)

    def restore(self, snap: Snapshot) -> None:
        """Replace the log by a snapshot received from the leader."""
        self.committed = snap.metadata.index
        self.unstable.restore(snap)
