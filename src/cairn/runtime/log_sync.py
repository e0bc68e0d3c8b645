"""`BackgroundSyncLog`: a standalone replica's LMDB log whose fsync runs off the event loop.

The placement group runs a standalone `Replica` over its own `LmdbLogStore`. Its leader
proposes a tick every 100 ms, and every such write was fsynced inside the event loop on
each of the three members, holding up every client command for the length of an fsync
(py-spy: 8 % of a region leader's samples and 13 % of a follower's under a SET load, on
a loaded machine). With this wrapper the replica writes such a batch unsynced, the fsync
runs on a thread of its own (LMDB lets go of the GIL while it syncs), and the replica
finishes the Ready when it ends (`Replica._write_in_background`), as the region host does
with `LmdbHostStore.sync_in_background`.
"""

from __future__ import annotations

from cairn.env import DurableState, LogBatch
from cairn.runtime.fsync_thread import FsyncThread
from cairn.shard.replica import SyncDone
from cairn.storage.log_store import LmdbLogStore


class BackgroundSyncLog:
    """`LogStore` over an `LmdbLogStore`, plus `sync_in_background` (one fsync at a time)."""

    def __init__(self, store: LmdbLogStore) -> None:
        self.store = store
        self._fsync = FsyncThread(store.sync, "cairn-pd-fsync")

    def write(self, batch: LogBatch, sync: bool) -> None:
        """See `LogStore.write`."""
        self.store.write(batch, sync)

    def load(self) -> DurableState:
        """See `LogStore.load`."""
        return self.store.load()

    def sync_in_background(self, done: SyncDone) -> None:
        """Make every write so far durable on this log's thread; `done` runs on the event
        loop afterwards (with the error, if the fsync failed)."""
        self._fsync.start(done)

    @property
    def syncs(self) -> int:
        """The background fsyncs that succeeded."""
        return self._fsync.syncs

    def close(self) -> None:
        """Wait for an fsync still running (at most one), then close the log: the
        environment must not be closed under the sync thread."""
        self._fsync.shutdown()
        self.store.close()
