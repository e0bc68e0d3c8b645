"""`LmdbHostStore.sync_in_background`: the fsync a region host runs off the event loop.

The host writes a drain's batches unsynced and finishes them (acknowledgements, apply)
only in `done`; these tests pin the contract it relies on: `done` runs later on the loop,
never inside the call; a failed fsync reaches `done` and `on_failure` and fails the
environment; a stopping node can wait for the fsync before closing the environment.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.env import LogBatch
from cairn.env.host_store import BackgroundSync
from cairn.raft.types import Entry
from cairn.runtime.host_store import LmdbHostStore, found_regions
from cairn.runtime.range_store import StoreRangeMachine
from cairn.runtime.region_layout import initial_layout
from cairn.storage import LmdbOptions, failpoints
from cairn.storage.errors import DiskFailedError
from cairn.storage.lmdb_env import FP_SYNC
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.store.machine import encode_command


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeStore]:
    store = NodeStore.open(tmp_path / "n1", 1, "test", LmdbOptions(map_size=64 << 20))
    found_regions(store, initial_layout((1, 2, 3), 1), RAFT_INIT_INDEX)
    yield store
    store.close()
    failpoints.reset()


def append(index: int) -> list[tuple[int, LogBatch]]:
    entry = Entry(term=RAFT_INIT_INDEX, index=index, data=b"set k v")
    return [(1, LogBatch(entries=(entry,)))]


def test_done_runs_on_the_loop_after_the_fsync(node: NodeStore) -> None:
    host_store = LmdbHostStore(node, 1)
    assert isinstance(host_store, BackgroundSync)
    outcomes: list[Exception | None] = []

    async def run() -> None:
        host_store.write_many(append(RAFT_INIT_INDEX + 1), sync=False)
        host_store.sync_in_background(outcomes.append)
        assert outcomes == []  # never from inside the call
        await host_store.drain_syncs()
        await asyncio.sleep(0)  # the done callback is scheduled on the loop

    asyncio.run(run())
    assert outcomes == [None]
    assert host_store.syncs == 1
    assert node.store(1).state.last_index == RAFT_INIT_INDEX + 1


def test_a_failed_fsync_reaches_done_and_fails_the_store(node: NodeStore) -> None:
    failures: list[Exception] = []
    host_store = LmdbHostStore(node, 1, failures.append)
    outcomes: list[Exception | None] = []
    failpoints.enable(FP_SYNC, failpoints.Return(errno=errno.EIO))

    async def run() -> None:
        host_store.write_many(append(RAFT_INIT_INDEX + 1), sync=False)
        host_store.sync_in_background(outcomes.append)
        await host_store.drain_syncs()
        await asyncio.sleep(0)

    asyncio.run(run())
    assert len(outcomes) == 1 and isinstance(outcomes[0], DiskFailedError)
    assert failures == outcomes
    assert host_store.syncs == 0
    with pytest.raises(DiskFailedError):
        host_store.write_many(append(RAFT_INIT_INDEX + 2), sync=False)


def test_apply_commits_with_the_log_in_one_transaction_or_not_at_all(node: NodeStore) -> None:
    """`write_many(apply=...)`: the machine's writes join the log's LMDB transaction (the
    pipelined host applies a Ready's entries there), so both commit, or, if the apply
    raises, neither does."""
    host_store = LmdbHostStore(node, 1)
    region = node.state(1).region
    machine = StoreRangeMachine(node.keyspace, 1, region)
    index = RAFT_INIT_INDEX + 1
    set_k = encode_command("set", [b"k", b"v1"], 1)
    replies: list[object] = []
    host_store.write_many(
        append(index),
        sync=False,
        apply=lambda: replies.extend(machine.apply_many([(index, set_k)])),
    )
    assert node.store(1).state.last_index == index
    assert machine.applied_index == index
    assert len(replies) == 1, replies
    assert machine.store.key_count() == 1, replies

    def failing() -> None:
        machine.apply_many([(index + 1, encode_command("set", [b"k", b"v2"], 2))])
        raise RuntimeError("the apply of a later entry failed")

    with pytest.raises(RuntimeError):
        host_store.write_many(append(index + 1), sync=False, apply=failing)
    machine.store.reload()
    # Neither the log entry nor the machine's write of that transaction is there.
    assert node.store(1).state.last_index == index
    assert machine.applied_index == index
    assert StoreRangeMachine(node.keyspace, 1, region).applied_index == index
