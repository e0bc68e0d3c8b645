"""The read side of a node's stable storage, as the Raft core sees it, and an in-memory one.

The core only reads storage; the application writes what a `Ready` hands it (entries,
hard state, snapshot) and only then calls `advance`. `MemoryStorage` is the reference
implementation, used by tests, by the simulator (backed by a simulated disk) and as the
model the LMDB storage follows.
"""

from __future__ import annotations

from typing import Protocol

from cairn.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from cairn.raft.types import (
    EMPTY_HARD_STATE,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)


class Storage(Protocol):
    """What the core reads from stable storage (etcd-raft's six methods).

    Errors: `CompactedError` for an index at or below the snapshot, `UnavailableError`
    for an index past the last entry, `SnapshotTemporarilyUnavailableError` while a
    snapshot is being built.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership in force at the index the core
        starts from as applied (`Config.applied`, else the snapshot's): the core never
        applies again the conf changes at or below that index, so a membership older than
        it would be the core's for good (TiKV's `PeerStorage` reports the region's current
        peers for the same reason)."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in [lo, hi), at least one if any, at most `max_size` bytes of data."""
        ...

    def term(self, index: int) -> int:
        """The term of the entry at `index`; valid from `first_index() - 1`."""
        ...

    def first_index(self) -> int:
        """The index of the first entry that may be read (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """The index of the last entry (the snapshot's index when the log is empty)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot."""
        ...


BOOTSTRAP_INDEX = 1
"""The log index (and term) of the snapshot that founding members start from."""


def bootstrap_snapshot(conf_state: ConfState) -> Snapshot:
    """The empty-state snapshot that founds a group with `conf_state`."""
    meta = SnapshotMetadata(index=BOOTSTRAP_INDEX, term=BOOTSTRAP_INDEX, conf_state=conf_state)
    return Snapshot(metadata=meta)


def limit_size(entries: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix within `max_size` bytes of data, never fewer than one entry."""
    if max_size is None or not entries:
        return entries
    size = len(entries[0].data)
    for i in range(1, len(entries)):
        size += len(entries[i].data)
        if size > max_size:
            return entries[:i]
    return entries


class MemoryStorage:
    """A `Storage` held in memory.

    Invariant: `self._ents[0]` is a dummy entry whose index and term are the snapshot's,
    so `first_index() == self._ents[0].index + 1` and `term(first_index() - 1)` works.
    """

    def __init__(self) -> None:
        self.hard_state: HardState = EMPTY_HARD_STATE
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(term=0, index=0)]
        self._conf_state: ConfState | None = None
        """The membership at the applied index, when it is not the snapshot's."""

    @classmethod
    def bootstrap(cls, conf_state: ConfState) -> MemoryStorage:
        """A storage for a founding member of a group whose initial membership is given.

        The membership is recorded as a snapshot at `BOOTSTRAP_INDEX` (term 1), not as log
        entries: a member added later has an empty log, so the leader must send it a
        snapshot, which carries both the membership and the state machine (TiKV does the
        same with its initial index).
        """
        storage = cls()
        storage.apply_snapshot(bootstrap_snapshot(conf_state))
        storage.hard_state = HardState(term=BOOTSTRAP_INDEX, commit=BOOTSTRAP_INDEX)
        return storage

    def initial_state(self) -> tuple[HardState, ConfState]:
        """See `Storage.initial_state`."""
        if self._conf_state is not None:
            return self.hard_state, self._conf_state
        return self.hard_state, self._snapshot.metadata.conf_state

    def set_conf_state(self, conf_state: ConfState) -> None:
        """Record the membership in force at the applied index the core will start from.

        A durable state machine restarts with an applied index past the snapshot (it
        holds its state on its own); the conf changes between the two are in the log, and
        the core, told they are applied, does not apply them again. Without this the core
        would count votes among the snapshot's members (peers long removed, or itself as
        the learner it was), and a region could elect no leader again. A newer snapshot
        (`apply_snapshot`) replaces it by its own membership.
        """
        self._conf_state = conf_state

    def set_hard_state(self, hs: HardState) -> None:
        """Record the hard state handed out by a `Ready`."""
        self.hard_state = hs

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """See `Storage.entries`."""
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} is compacted (first is {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to {hi - 1} requested, last is {self.last_index()}")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        """See `Storage.term`."""
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(f"index {index} is compacted (first is {offset + 1})")
        if index - offset >= len(self._ents):
            raise UnavailableError(f"index {index} is past the last index {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        """See `Storage.first_index`."""
        return self._ents[0].index + 1

    def last_index(self) -> int:
        """See `Storage.last_index`."""
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        """See `Storage.snapshot`."""
        return self._snapshot

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        if snap.metadata.index <= self._snapshot.metadata.index:
            current = self._snapshot.metadata.index
            raise SnapshotOutOfDateError(
                f"snapshot at {snap.metadata.index} is not newer than {current}"
            )
        self._snapshot = snap
        self._ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]
        self._conf_state = None

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine at `index` (which must be applied)."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {index} is not newer than {self._snapshot.metadata.index}"
            )
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} is past the last index")
        meta = SnapshotMetadata(index=index, term=self.term(index), conf_state=conf_state)
        self._snapshot = Snapshot(data=data, metadata=meta)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries before `compact_index`; it becomes the dummy entry."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise CompactedError(f"index {compact_index} is already compacted")
        if compact_index > self.last_index():
            raise UnavailableError(f"compact index {compact_index} is past the last index")
        i = compact_index - offset
        self._ents = [Entry(term=self._ents[i].term, index=compact_index), *self._ents[i + 1 :]]

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append entries, truncating any conflicting suffix they overwrite."""
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise UnavailableError(
                f"missing log entries: last {self.last_index()}, appending at {entries[0].index}"
            )
        if offset == len(self._ents):
            self._ents.extend(entries)  # the common case: no copy of the whole log
        else:
            self._ents = [*self._ents[:offset], *entries]
