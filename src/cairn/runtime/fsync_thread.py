"""`FsyncThread`: fsyncs run on a thread of their own, one at a time, off the event loop.

LMDB lets go of the GIL while it syncs, so a node keeps serving clients while its log
reaches the disk; whoever asked learns the outcome on the event loop (`SyncDone`), and
only then acknowledges what the fsync covers. The region host's store
(`LmdbHostStore`) and a placement member's (`PlacementHostStore`) each use one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cairn.env.host_store import SyncDone


class FsyncThread:
    """Runs `sync` on its own thread when asked; counts the fsyncs that succeeded."""

    def __init__(
        self,
        sync: Callable[[], None],
        name: str,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self._sync = sync
        self._name = name
        self.on_failure = on_failure
        self.syncs = 0
        self._thread: ThreadPoolExecutor | None = None
        self._syncing: asyncio.Future[None] | None = None

    def start(self, done: SyncDone) -> None:
        """Make every write so far durable; `done` runs on the event loop afterwards, with
        the error if the fsync failed (after `on_failure` has heard of it)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        future = asyncio.get_running_loop().run_in_executor(self._thread, self._sync)
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
            if error is not None and self.on_failure is not None:
                self.on_failure(error)
            done(error)

        future.add_done_callback(finished)

    async def drain(self) -> None:
        """Wait for an fsync still running, then stop the thread."""
        if self._syncing is not None:
            await asyncio.wait([self._syncing])
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the thread, waiting for an fsync still running (at most one): the
        environment must not be closed under it."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
