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
- `txn-secondaries-first`: the coordinator of a cross-region transaction commits its
  secondaries before its primary (`cairn.txn.coordinator.SECONDARIES_FIRST`). The bug only
  shows when the coordinator dies between the two commits, and a kill -9 lands in that
  moment (a few milliseconds) too rarely for a short run, so the plant also brings the
  crash: node `CRASH_NODE`, once per data directory, on the `CRASH_ON_COMMIT`-th
  transaction it coordinates that has secondaries, waits until their commits are
  acknowledged and then exits (status `CRASH_STATUS`) instead of sending its primary's
  commit (`CrashBeforePrimaryCommit`; one node, so that the cluster keeps a majority),
  logging `CRASH_LOG` first. The primary's lock then expires and the next reader rolls it
  back: the transaction is half applied, and the bank's totals change. A correct
  coordinator crashing at the same point leaves nothing committed (its locks expire and
  are rolled back whole).
- `txn-reads-ignore-locks`: a read outside a transaction ignores the locks of
  cross-region transactions (`StoreMachine.reads_ignore_locks`): a read of a secondary
  key just after its transaction was acknowledged, before the secondary's commit applied,
  answers the value from before the transaction. The list-append workload's plain reads
  must find it (a real-time cycle).
- `tso-backwards`: a new placement leader's timestamp oracle serves from its own clock at
  once, without first committing a bound above the saved one
  (`cairn.placement.tso.TSO_BACKWARDS`, wired by `cairn.runtime.tso_wiring.tso_settings`).
  A new leader whose clock is behind (the chaos clock-skew fault, which the TSO's
  physical time follows) hands out timestamps below ones already handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cairn.env import DurableState, LogBatch
from cairn.env.host_store import RegionRecord, SyncDone
from cairn.placement.tso import TSO_BACKWARDS
from cairn.resp.reply import Reply
from cairn.runtime.host_store import LmdbHostStore
from cairn.store.commands import COMMANDS, run_in_batch
from cairn.store.idempotency_txn import COMMIT_COMMAND as TAGGED_COMMIT_COMMAND
from cairn.store.layout import encode_stamp
from cairn.store.machine import StoreMachine
from cairn.txn.coordinator import SECONDARIES_FIRST, Done, TxnIO
from cairn.txn.protocol import COMMIT_COMMAND

log = logging.getLogger("cairn.plants")

PLANT_ENV = "CAIRN_PLANT"
ACK_BEFORE_SYNC = "ack-before-sync"
STALE_FOLLOWER_READ = "stale-follower-read"
STREAM_ACK_LEADER_ONLY = "stream-ack-leader-only"
EXEC_SPLIT = "exec-split"
TXN_SECONDARIES_FIRST = SECONDARIES_FIRST
TXN_READS_IGNORE_LOCKS = "txn-reads-ignore-locks"
PLANTS = (
    ACK_BEFORE_SYNC,
    STALE_FOLLOWER_READ,
    STREAM_ACK_LEADER_ONLY,
    EXEC_SPLIT,
    TXN_SECONDARIES_FIRST,
    TXN_READS_IGNORE_LOCKS,
    TSO_BACKWARDS,
)
CRASH_NODE = 1
"""Under `txn-secondaries-first`: the node that crashes between the commits."""
CRASH_ON_COMMIT = 1
"""Under `txn-secondaries-first`: the transaction with secondaries (counted from the
node's start) before whose primary commit the node crashes, once per data directory."""
CRASH_STATUS = 70
CRASH_MARK = "plant-crashed"
"""The file a node writes in its data directory before its planted crash (so that it
crashes once, not again after every restart)."""
CRASH_LOG = "planted crash between the secondaries' and the primary's commits"
SECONDARIES_WAIT_S = 2.0
"""How long the planted crash waits for the secondaries' commits to be acknowledged."""

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


def planted_io(io: TxnIO, plant: str, node_id: int, data_dir: Path) -> TxnIO:
    """The coordinator's `TxnIO` on node `node_id` under node plant `plant`: `io`, or
    under `txn-secondaries-first` on `CRASH_NODE` the planted crash around it."""
    if plant != TXN_SECONDARIES_FIRST or node_id != CRASH_NODE:
        return io
    return CrashBeforePrimaryCommit(io, data_dir / CRASH_MARK)


def txn_plants(plant: str) -> frozenset[str]:
    """The coordinator's planted bugs (`TxnSettings.plants`) for node plant `plant`."""
    return frozenset({SECONDARIES_FIRST}) if plant == TXN_SECONDARIES_FIRST else frozenset()


class CrashBeforePrimaryCommit:
    """A coordinator's `TxnIO` under `txn-secondaries-first` (see the module docstring):
    it counts the transactions whose primary commit follows secondaries' commits, and
    before the `CRASH_ON_COMMIT`-th one's primary commit, once its secondaries' commits
    are acknowledged, ends the process (`exit`), unless `mark` exists (it is created
    first). Everything else goes straight to the wrapped `TxnIO`."""

    def __init__(self, io: TxnIO, mark: Path, exit: Callable[[int], object] = os._exit) -> None:
        self.io = io
        self.mark = mark
        self.exit = exit
        self.pending: dict[bytes, int] = {}
        """Per transaction (its start_ts, as sent): secondaries' commits unanswered."""
        self.seen = 0

    def send(self, argv: list[bytes], done: Done) -> None:
        """Send `argv`; see the class docstring for a primary's commit."""
        if len(argv) >= 7 and argv[0] == TAGGED_COMMIT_COMMAND.encode():
            start_ts, primary = argv[6], True  # an IDEMPOTENT request's primary commit
        elif len(argv) >= 4 and argv[0] == COMMIT_COMMAND.encode():
            start_ts, primary = argv[1], argv[3] == b"1"
        else:
            self.io.send(argv, done)
            return
        if not primary:  # a secondary's commit: count it until answered
            self.pending[start_ts] = self.pending.get(start_ts, 0) + 1

            def answered(reply: Reply) -> None:
                left = self.pending.get(start_ts, 1) - 1
                if left > 0:
                    self.pending[start_ts] = left
                else:
                    self.pending.pop(start_ts, None)
                done(reply)

            self.io.send(argv, answered)
            return
        if start_ts in self.pending:
            self.seen += 1
            if self.seen == CRASH_ON_COMMIT and not self.mark.exists():
                self._crash_when_committed(start_ts, self.io.now() + SECONDARIES_WAIT_S)
                return
        self.io.send(argv, done)

    def _crash_when_committed(self, start_ts: bytes, give_up: float) -> None:
        if start_ts in self.pending and self.io.now() < give_up:
            self.io.later(0.01, lambda: self._crash_when_committed(start_ts, give_up))
            return
        self.mark.write_text("crashed before a primary commit (txn-secondaries-first)\n")
        log.warning("%s (txn-secondaries-first)", CRASH_LOG)
        for handler in logging.getLogger().handlers:
            handler.flush()
        self.exit(CRASH_STATUS)

    def group(self, keys: Sequence[bytes]) -> list[list[bytes]] | None:
        """See `TxnIO.group`."""
        return self.io.group(keys)

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        """See `TxnIO.later`."""
        self.io.later(delay_s, action)

    def now(self) -> float:
        """See `TxnIO.now`."""
        return self.io.now()
