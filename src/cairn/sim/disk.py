"""A simulated disk holding one node's Raft log, with an operating system's write cache.

Theory of operation. A write lands in the cache (`pending`); a synced write flushes the
whole cache, in order, then itself. Like an OS, the disk may also flush a prefix of the
cache on its own at any write. When the node crashes, a random prefix of the cache
survives and the rest is lost — so data is durable only if synced, exactly the contract
`LogStore` states, and a driver that skips an fsync it owes is caught by a crash.
"""

from __future__ import annotations

import random

from cairn.env import DurableState, LogBatch
from cairn.raft.types import EMPTY_HARD_STATE, Entry, HardState, Snapshot


class SimDisk:
    """The `LogStore` of one simulated node; it outlives the node's crashes.

    Invariant: `_entries` are contiguous and start at `_snapshot.metadata.index + 1`.
    """

    def __init__(self, rng: random.Random, background_flush: float = 0.05) -> None:
        self._rng = rng
        self._background_flush = background_flush
        self._hard_state: HardState = EMPTY_HARD_STATE
        self._snapshot = Snapshot()
        self._entries: list[Entry] = []
        self.pending: list[LogBatch] = []
        self.writes = 0
        self.syncs = 0
        self.lost_writes = 0

    def write(self, batch: LogBatch, sync: bool) -> None:
        """See `LogStore.write`."""
        self.writes += 1
        self.pending.append(batch)
        if sync:
            self.syncs += 1
            self.flush(len(self.pending))
        elif self._rng.random() < self._background_flush:
            self.flush(self._rng.randint(0, len(self.pending)))

    def load(self) -> DurableState:
        """See `LogStore.load`: only what was flushed."""
        return DurableState(self._hard_state, self._snapshot, tuple(self._entries))

    def flush(self, count: int) -> None:
        """Make the first `count` cached writes durable, in order."""
        for batch in self.pending[:count]:
            self._apply(batch)
        del self.pending[:count]

    def crash(self) -> int:
        """Lose the cache but a random prefix of it; return how many writes were lost."""
        self.flush(self._rng.randint(0, len(self.pending)))
        lost = len(self.pending)
        self.lost_writes += lost
        self.pending.clear()
        return lost

    def _apply(self, batch: LogBatch) -> None:
        if batch.snapshot is not None:
            self._apply_snapshot(batch.snapshot)
        if batch.entries:
            self._append(batch.entries)
        if batch.hard_state is not None:
            self._hard_state = batch.hard_state

    def _apply_snapshot(self, snap: Snapshot) -> None:
        index = snap.metadata.index
        if index < self._snapshot.metadata.index or (
            index == self._snapshot.metadata.index and not self._snapshot.is_empty()
        ):
            return
        offset = self._snapshot.metadata.index
        kept = index - offset
        if 0 < kept <= len(self._entries) and self._entries[kept - 1].term == snap.metadata.term:
            self._entries = self._entries[kept:]
        else:
            self._entries = []
        self._snapshot = snap

    def _append(self, entries: tuple[Entry, ...]) -> None:
        offset = self._snapshot.metadata.index
        fresh = [e for e in entries if e.index > offset]
        if not fresh:
            return
        keep = fresh[0].index - offset - 1
        if keep > len(self._entries):
            raise AssertionError(
                f"gap in the log: appending {fresh[0].index} after {offset + len(self._entries)}"
            )
        self._entries = self._entries[:keep] + fresh
