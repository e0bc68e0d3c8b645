"""A simulated disk holding every region's Raft log of one node, written in group commits.

The multi-region counterpart of `SimDisk`, with the same contract: a `write_many` lands in
the operating system's cache; a synced one flushes the whole cache in order, then itself;
the cache may flush a prefix on its own; a crash keeps a random prefix of the cache and
loses the rest. A write is atomic across its regions and records (LMDB's one transaction),
and writes become durable in the order they were made, across regions too — which is what
lets a split's new region be written without a sync before the left part's later writes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.env import Clock, DurableState, LogBatch
from cairn.env.host_store import PeerState, RegionRecord, SyncDone
from cairn.sim.disk import SimDisk


@dataclass(frozen=True, slots=True)
class _Write:
    batches: tuple[tuple[int, LogBatch], ...]
    records: tuple[RegionRecord, ...]


def _never(site: str) -> bool:
    return False


class SimNodeDisk:
    """The `HostStore` of one simulated node; it outlives the node's crashes.

    Buggify site `disk.crash_loses_all_unsynced`: a crash keeps nothing of the cache (no
    lucky prefix survives), the harshest outcome the contract allows."""

    def __init__(
        self,
        rng: random.Random,
        background_flush: float = 0.05,
        buggify: Callable[[str], bool] = _never,
    ) -> None:
        self._rng = rng
        self.buggify = buggify
        self._background_flush = background_flush
        self._logs: dict[int, SimDisk] = {}
        self._records: dict[int, RegionRecord] = {}
        self.pending: list[_Write] = []
        self.writes = 0
        self.syncs = 0
        self.lost_writes = 0

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        records: Sequence[RegionRecord] = (),
        apply: Callable[[], None] | None = None,
    ) -> None:
        """See `HostStore.write_many` (the machines are in memory: `apply` just runs
        after the write is cached, and if it raises the write is not made)."""
        if apply is not None:
            apply()
        if batches or records:
            self.writes += 1
            self.pending.append(_Write(tuple(batches), tuple(records)))
        if sync:
            self.syncs += 1
            self.flush(len(self.pending))
        elif self.pending and self._rng.random() < self._background_flush:
            self.flush(self._rng.randint(0, len(self.pending)))

    def load(self, region_id: int) -> DurableState:
        """See `HostStore.load`: only what was flushed."""
        log = self._logs.get(region_id)
        return log.load() if log is not None else DurableState()

    def records(self) -> list[RegionRecord]:
        """See `HostStore.records`."""
        return [self._records[i] for i in sorted(self._records)]

    def flush(self, count: int) -> None:
        """Make the first `count` cached writes durable, in order."""
        for write in self.pending[:count]:
            for region_id, batch in write.batches:
                log = self._logs.get(region_id)
                if log is None:
                    log = self._logs[region_id] = SimDisk(random.Random(0), 0.0)
                log.write(batch, sync=True)
            for record in write.records:
                self._records[record.region_id] = record
                if record.state is PeerState.TOMBSTONE:
                    # A removed replica's log goes with it (as `NodeStore.write_many`
                    # drops it): a later peer of the region starts empty.
                    self._logs.pop(record.region_id, None)
        del self.pending[:count]

    def crash(self) -> int:
        """Lose the cache but a random prefix of it; return how many writes were lost."""
        kept = self._rng.randint(0, len(self.pending))
        if self.pending and self.buggify("disk.crash_loses_all_unsynced"):
            kept = 0
        self.flush(kept)
        lost = len(self.pending)
        self.lost_writes += lost
        self.pending.clear()
        return lost


FSYNC_LATENCY = (0.0002, 0.003)
"""The range (seconds) a simulated background fsync's duration is drawn from."""
SLOW_FSYNC = (0.02, 0.2)
"""The range (seconds) of a slow fsync (buggify site `disk.slow_fsync`)."""
LATE_REPORT = (0.005, 0.1)
"""How long (seconds) a finished fsync's report waits (buggify `disk.sync_reported_late`):
the writes are durable, the node does not know it yet (a crash now loses no data but
every acknowledgement that waited for it)."""


class BackgroundSyncDisk(SimNodeDisk):
    """A `SimNodeDisk` whose fsync also runs in the background (`BackgroundSync`), as the
    real node's does: the host then writes unsynced and waits for `done`, and whatever
    the node does meanwhile runs in the simulation too.

    The fsync takes a random time; it makes durable the writes made before it started
    (not those made after) and reports to the incarnation that started it (`clock` is
    the current incarnation's: a crashed one hears nothing). Buggify sites
    `disk.slow_fsync`: an fsync takes 20 to 200 ms (a disk busy with something else);
    `disk.sync_reported_late`: an fsync is done, but the thread's report of it reaches the
    node 5 to 100 ms later (a busy event loop).
    """

    def __init__(
        self,
        rng: random.Random,
        latency: tuple[float, float] = FSYNC_LATENCY,
        buggify: Callable[[str], bool] = _never,
    ):
        super().__init__(rng, buggify=buggify)
        self.clock: Clock | None = None
        self.latency = latency
        """The range (seconds) an fsync's duration is drawn from."""

    def sync_in_background(self, done: SyncDone) -> None:
        """See `BackgroundSync`."""
        assert self.clock is not None, "the node's clock is set at each start"
        last = self.pending[-1] if self.pending else None
        clock = self.clock

        def finish() -> None:
            self.syncs += 1
            for i, write in enumerate(self.pending):
                if write is last:
                    self.flush(i + 1)
                    break
            if self.buggify("disk.sync_reported_late"):
                clock.call_later(self._rng.uniform(*LATE_REPORT), lambda: done(None))
                return
            done(None)

        latency = SLOW_FSYNC if self.buggify("disk.slow_fsync") else self.latency
        clock.call_later(self._rng.uniform(*latency), finish)
