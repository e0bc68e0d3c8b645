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

import asyncio
from concurrent.futures import ThreadPoolExecutor

from cairn.runtime.env import DurableState, LogBatch
from cairn.shard.replica import SyncDone
from cairn.storage.log_store import LmdbLogStore


class BackgroundSyncLog:
    """`LogStore` over an `LmdbLogStore`, plus `sync_in_background` (one fsync at a time)."""

    def __init__(self, store: LmdbLogStore) -> None:
        self.store = store
        self.syncs = 0
        self._thread: ThreadPoolExecutor | None = None
        self._syncing: asyncio.Future[None] | None = None

    def write(self, batch: LogBatch, sync: bool) -> None:
        """See `LogStore.write`."""
        self.store.write(batch, sync)

    def load(self) -> DurableState:
        """See `LogStore.load`."""
        return self.store.load()

    def sync_in_background(self, done: SyncDone) -> None:
        """Make every write so far durable on this log's thread; `done` runs on the event
        loop afterwards (with the error, if the fsync failed)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="cairn-pd-fsync")
        future = asyncio.get_running_loop().run_in_executor(self._thread, self.store.sync)
        self._syncing = future

        def finished(f: asyncio.Future[None]) -> None:
            if self._syncing is f:
                self._syncing = None
            exc = f.exception()
            error: Exception | None
            if exc is None or isinstance(exc, Exception):
                error = exc
            else:  # a BaseException from the thread: still no durability to report
                error = RuntimeError(f"fsync interrupted: {exc!r}")
            self.syncs += error is None
            done(error)

        future.add_done_callback(finished)

    def close(self) -> None:
        """Wait for an fsync still running (at most one), then close the log: the
        environment must not be closed under the sync thread."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        self.store.close()
