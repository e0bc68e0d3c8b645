"""Lock (``L``) and status (``S``) records travel with their keys' ranges: splits, merges,
snapshot images and region drops, on an in-memory keyspace and on a node's LMDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.meta.region import Region, split_region
from cairn.raft.types import ConfState
from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Reply
from cairn.storage import LmdbOptions, region_data
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.storage.region_meta import RegionLocalState
from cairn.store import (
    KeyspaceImages,
    MemoryKeyspace,
    Scope,
    StoreMachine,
    encode_command,
    merge_machines,
    split_machine,
)
from cairn.store.keyspace import Keyspace, write_batch
from cairn.store.layout import lock_key, status_key
from cairn.store.ranges import ImageError, delete_records, iter_scope, load_image, owns
from cairn.store.scope import range_key
from cairn.store.txn_locks import LOCK_COMMAND, ROLLBACK_COMMAND, STATUS_COMMAND, read_lock

T0 = 1_700_000_000_000
TS = 1000 << 18
LEFT_KEY = b"{t}j"
RIGHT_KEY = b"{t}j\x00"
"""Two keys of one slot; the split falls between them, inside the slot, and the right
one's status record sorts BEFORE the left one's (no length prefix in ``S`` keys)."""
SPLIT = range_key(RIGHT_KEY)
KEYS = (LEFT_KEY, RIGHT_KEY, b"a", b"x")
LEFT = tuple(k for k in KEYS if range_key(k) < SPLIT)
RIGHT = tuple(k for k in KEYS if range_key(k) >= SPLIT)


class Log:
    """Applies internal commands to one machine as consecutive entries."""

    def __init__(self, machine: StoreMachine, index: int = 0) -> None:
        self.machine = machine
        self.index = index

    def apply(self, name: str, *args: bytes) -> Reply:
        self.index += 1
        return self.machine.apply(self.index, encode_command(name, list(args), T0))


def _lock_and_decide(log: Log) -> None:
    """A lock on each key and a rolled-back status record with each key as primary."""
    for key in KEYS:
        got = log.apply(LOCK_COMMAND, b"%d" % TS, key, b"3000", b"1000", b"0", key)
        assert isinstance(got, Array) and got.items[0] == Bulk(b"ok")
        assert log.apply(ROLLBACK_COMMAND, b"%d" % (TS + 1), b"1", key) == Array((Bulk(b"ok"),))


def _txn_records(space: Keyspace, scope: Scope) -> set[bytes]:
    return {k for k, _ in iter_scope(space, scope) if k[:1] in (b"L", b"S")}


def _expected(*keys: bytes) -> set[bytes]:
    return {lock_key(k) for k in keys} | {status_key(k, TS + 1) for k in keys}


def _locked(machine: StoreMachine, key: bytes) -> bool:
    got = machine.execute_read("get", [key], T0)
    return isinstance(got, ErrorReply) and got.message.startswith("LOCKED")


def test_the_status_key_order_needs_the_filter() -> None:
    assert status_key(RIGHT_KEY, TS) < status_key(LEFT_KEY, TS)
    assert range_key(LEFT_KEY) < SPLIT


def test_a_split_carries_locks_and_status_records() -> None:
    space = MemoryKeyspace()
    log = Log(StoreMachine(space, scope=Scope.region(1)))
    _lock_and_decide(log)
    right = split_machine(log.machine, SPLIT, 2, index=log.index + 1, right_index=5)
    left = log.machine
    assert _txn_records(space, left.scope) == _expected(*LEFT)
    assert _txn_records(space, right.scope) == _expected(*RIGHT)
    assert _locked(right, RIGHT_KEY) and _locked(left, LEFT_KEY)
    status = right.apply(6, encode_command(STATUS_COMMAND, [RIGHT_KEY, b"%d" % (TS + 1)], T0))
    assert status == Array((Bulk(b"rolledback"), Integer(0)))
    assert right.apply(7, encode_command(ROLLBACK_COMMAND, [b"%d" % TS, b"0", RIGHT_KEY], T0))
    assert read_lock(space, RIGHT_KEY) is None
    merge_machines(right, left, index=log.index + 2)
    assert _txn_records(space, left.scope) == _expected(*KEYS) - {lock_key(RIGHT_KEY)}


def test_a_snapshot_install_carries_locks_and_status_records() -> None:
    source = Log(StoreMachine(MemoryKeyspace(), scope=Scope.region(1)))
    _lock_and_decide(source)
    scope = Scope.region(2, SPLIT)
    right = split_machine(source.machine, SPLIT, 2, index=source.index + 1, right_index=5)
    image = right.snapshot()
    target_space = MemoryKeyspace()
    target = StoreMachine(target_space, scope=scope)
    target.restore(image)
    assert _txn_records(target_space, scope) == _expected(*RIGHT)
    assert _locked(target, RIGHT[-1])
    status = target.apply(6, encode_command(STATUS_COMMAND, [RIGHT[-1], b"%d" % (TS + 1)], T0))
    assert status == Array((Bulk(b"rolledback"), Integer(0)))
    target.restore(b"")  # a region dropped: its lock and status records go too
    assert _txn_records(target_space, scope) == set()


def test_records_outside_the_region_are_refused_and_deleted_with_it() -> None:
    scope = Scope.region(2, SPLIT)
    assert owns(scope, status_key(RIGHT_KEY, TS)) and not owns(scope, status_key(LEFT_KEY, TS))
    assert owns(scope, lock_key(RIGHT_KEY)) and not owns(scope, lock_key(LEFT_KEY))
    with pytest.raises(ImageError):
        owns(scope, b"S\x00\x01k")  # shorter than a start_ts
    space = MemoryKeyspace()
    log = Log(StoreMachine(space, scope=Scope.region(1)))
    _lock_and_decide(log)
    image = KeyspaceImages(space).snapshot(Scope.region(1))
    with pytest.raises(ImageError), write_batch(MemoryKeyspace()) as batch:
        load_image(batch, Scope.region(1, b"", SPLIT), image)
    with write_batch(space) as batch:
        delete_records(batch, Scope.region(1))
    assert list(space.scan(b"", None, None)) == []


# -- on LMDB ------------------------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeStore]:
    opened = NodeStore.open(tmp_path / "n1", 1, "test", LmdbOptions(map_size=32 << 20))
    yield opened
    opened.close()


def test_on_lmdb_a_split_and_a_snapshot_install_carry_the_records(node: NodeStore) -> None:
    voters = ConfState(voters=(1, 2, 3))
    node.create_region(RegionLocalState(1, region=Region(1)), conf_state=voters)
    log = Log(StoreMachine(node.keyspace, scope=Scope.region(1)), RAFT_INIT_INDEX)
    _lock_and_decide(log)
    assert _locked(log.machine, LEFT_KEY)  # the machine saw its own lock entries
    left_region, right_region = split_region(Region(1), SPLIT, 2, ())
    with node.env.write() as wtx, node.keyspace.group(wtx):
        right = split_machine(log.machine, SPLIT, 2, index=log.index + 1, right_index=5)
        node.stage_split(wtx, left_region, right_region, voters)
    assert _txn_records(node.keyspace, right.scope) == _expected(*RIGHT)
    assert _locked(right, RIGHT_KEY)
    image = b"".join(region_data.range_snapshot(node.keyspace, right.scope))
    region_data.delete_range(node.keyspace, right.scope)
    assert _txn_records(node.keyspace, right.scope) == set()
    assert _txn_records(node.keyspace, log.machine.scope) == _expected(*LEFT)
    region_data.install_range(node.keyspace, right.scope, [image])
    assert _txn_records(node.keyspace, right.scope) == _expected(*RIGHT)
    right.reload()
    assert _locked(right, RIGHT[-1])
