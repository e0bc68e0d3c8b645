"""`FsyncThread`: fsyncs run on a thread of their own, in order, off the event loop.

LMDB lets go of the GIL while it syncs, so a node keeps serving clients while its log
reaches the disk; whoever asked learns the outcome on the event loop (`SyncDone`), and
only then acknowledges what the fsync covers. The region host's store
(`LmdbHostStore`) and a placement member's (`PlacementHostStore`) each use one.

The hand-off is as short as it can be, because a single client's write waits for it on
every node: the loop puts the request on a `SimpleQueue` (C code, no executor, no
future), the thread fsyncs and wakes the loop with one `call_soon_threadsafe`. (It was a
one-worker `ThreadPoolExecutor` through `run_in_executor`: `submit`, its work item and
condition variable, and the future chained to an asyncio one cost the leader about 4 %
of its samples at one client.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from queue import SimpleQueue

from cairn.env.host_store import SyncDone

_Request = tuple[asyncio.AbstractEventLoop, SyncDone] | None


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
        self._thread: threading.Thread | None = None
        self._requests: SimpleQueue[_Request] = SimpleQueue()
        self._running = 0
        """Fsyncs asked for whose `done` has not run yet."""
        self._idle: asyncio.Event | None = None

    def start(self, done: SyncDone) -> None:
        """Make every write so far durable; `done` runs on the event loop afterwards, with
        the error if the fsync failed (after `on_failure` has heard of it). Requests are
        served in order, one fsync each."""
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._running += 1
        self._requests.put((loop, done))

    def _serve(self) -> None:
        """The thread: fsync for each request, then wake the requester's loop."""
        while (request := self._requests.get()) is not None:
            loop, done = request
            error: Exception | None = None
            try:
                self._sync()
            except Exception as exc:
                error = exc
            except BaseException as exc:  # still no durability to report
                error = RuntimeError(f"fsync interrupted: {exc!r}")
            # A closed loop raises: nobody waits for the outcome any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finished, done, error)

    def _finished(self, done: SyncDone, error: Exception | None) -> None:
        self._running -= 1
        self.syncs += error is None
        if error is not None and self.on_failure is not None:
            self.on_failure(error)
        if self._running == 0 and self._idle is not None:
            self._idle.set()
        done(error)

    async def drain(self) -> None:
        """Wait for the fsyncs asked for, then stop the thread."""
        while self._running:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the thread, waiting for the fsyncs still queued or running: the
        environment must not be closed under it."""
        if self._thread is not None:
            self._requests.put(None)
            self._thread.join()
            self._thread = None
