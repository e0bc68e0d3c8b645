"""Planted bugs for real nodes: test-only switches that prove the chaos harness bites.

A node started with the environment variable `CAIRN_PLANT` set to one of these names
misbehaves on purpose (nothing changes when the variable is absent):

- `ack-before-sync`: the node's storage never fsyncs what it acknowledges. Every group
  write of its regions' Raft state (entries, hard state, votes) is committed to LMDB
  without a sync, so the node answers clients and votes with data only in volatile memory.
  A real crash of such a node loses that memory, but `kill -9` does not (the page cache
  survives the process), so the plant also models the disk: what is durable is an image of
  the environment taken by a "writeback" once per `WRITEBACK_INTERVAL` (like the kernel
  flushing dirty pages), written beside the data as `POWER_LOSS_IMAGE`. The chaos runner's
  power-loss fault kills every node with -9 and puts that image back in place of the data
  file, so the cluster restarts with what its disks really held: up to a second behind
  what was acknowledged.
- `stale-follower-read`: a follower answers reads from its own applied state at once,
  without ReadIndex or forwarding to the leader (see `cairn.runtime.node`).
- `stream-ack-leader-only`: the leader applies XACK to its own state and answers, without
  proposing it: the followers never remove the entries from their PEL, so after the next
  election acknowledged entries are pending again (redelivered by XREADGROUP `0` and
  XAUTOCLAIM, and in the final XPENDING). The stream chaos workload must find it.
- `exec-split`: EXEC proposes each queued command as an entry of its own, one after the
  other (WATCH checked with the first only), instead of the whole transaction as one
  entry: a transaction is no longer atomic, and other clients see and interleave with its
  halves (see `cairn.runtime.transactions`). The bank and list-append workloads must see
  it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cairn.env import DurableState, LogBatch
from cairn.env.host_store import RegionRecord, SyncDone
from cairn.resp.reply import Reply
from cairn.runtime.host_store import LmdbHostStore
from cairn.store.commands import COMMANDS, run_in_batch
from cairn.store.layout import encode_stamp
from cairn.store.machine import StoreMachine

PLANT_ENV = "CAIRN_PLANT"
ACK_BEFORE_SYNC = "ack-before-sync"
STALE_FOLLOWER_READ = "stale-follower-read"
STREAM_ACK_LEADER_ONLY = "stream-ack-leader-only"
EXEC_SPLIT = "exec-split"
PLANTS = (ACK_BEFORE_SYNC, STALE_FOLLOWER_READ, STREAM_ACK_LEADER_ONLY, EXEC_SPLIT)

POWER_LOSS_IMAGE = "power-loss-image.mdb"
"""The durable image of a node running `ack-before-sync`, in its data directory."""
WRITEBACK_INTERVAL = 1.0


class UnsyncedHostStore:
    """A region host's store that writes every group write without an fsync
    (acknowledging at once) and keeps the power-loss image up to date once per
    `WRITEBACK_INTERVAL`.

    Everything else is the wrapped `LmdbHostStore`'s (attribute access falls through).
    """

    def __init__(self, store: LmdbHostStore, data_dir: str | os.PathLike[str]) -> None:
        self.store = store
        self.image = Path(data_dir) / POWER_LOSS_IMAGE
        self._task: asyncio.Task[None] | None = None
        self.writeback()

    def write_many(
        self,
        batches: Sequence[tuple[int, LogBatch]],
        sync: bool,
        records: Sequence[RegionRecord] = (),
        apply: Callable[[], None] | None = None,
    ) -> None:
        """The planted bug: `sync` is ignored."""
        self.store.write_many(batches, False, records, apply)

    def sync_in_background(self, done: SyncDone) -> None:
        """The planted bug again: reported durable at once, without an fsync."""
        asyncio.get_running_loop().call_soon(done, None)

    def load(self, region_id: int) -> DurableState:
        """See `HostStore.load`."""
        return self.store.load(region_id)

    def records(self) -> list[RegionRecord]:
        """See `HostStore.records`."""
        return self.store.records()

    def start(self) -> None:
        """Run the writeback on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._writeback_loop())

    async def _writeback_loop(self) -> None:
        while True:
            await asyncio.sleep(WRITEBACK_INTERVAL)
            self.writeback()

    def writeback(self) -> None:
        """Replace the durable image by a consistent copy of the environment as it is."""
        tmp = self.image.parent / (self.image.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.store.store.env.raw.copy(str(tmp))
        os.replace(tmp / "data.mdb", self.image)
        shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        """Stop the writeback; a graceful stop syncs, so the image becomes the data."""
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(OSError):
            self.writeback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def restore_power_loss_image(data_dir: Path) -> bool:
    """After a power loss, put a planted node's durable image in place of its data file.

    Returns whether there was an image (a correct node has none: everything it
    acknowledged was fsynced, so its files after kill -9 are what a disk would hold).
    """
    image = data_dir / POWER_LOSS_IMAGE
    if not image.exists():
        return False
    shutil.copyfile(image, data_dir / "data.mdb")
    with contextlib.suppress(FileNotFoundError):
        (data_dir / "lock.mdb").unlink()
    return True


def ack_on_leader_only(machine: StoreMachine, args: Sequence[bytes], now_ms: int) -> Reply:
    """The planted bug `stream-ack-leader-only`: run XACK on this node's applied state
    alone, outside Raft (the followers never see it), and return its reply."""
    stamp = encode_stamp(machine.scope.region_id or 0, machine.applied_index)
    with machine.keyspace.transaction():
        return run_in_batch(
            machine.keyspace, COMMANDS["xack"], args, now_ms, machine.scope, stamp, 0
        )
