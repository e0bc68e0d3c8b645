"""Region machines on a node's LMDB: entries, a split or merge and the region records in ONE
write transaction; images interchangeable with `cairn.storage.region_data`'s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from region_harness import is_refusal

from cairn.meta.region import Region, merge_regions, split_region
from cairn.raft.types import ConfState
from cairn.resp.reply import OK, Bulk, Integer, NullBulk
from cairn.storage import LmdbOptions, region_data
from cairn.storage.lmdb_keyspace import LmdbKeyspace
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.storage.region_meta import RegionLocalState
from cairn.store import (
    KeyspaceImages,
    Scope,
    StoreMachine,
    encode_command,
    merge_machines,
    split_machine,
)
from cairn.store.scope import range_key

T0 = 1_700_000_000_000
VOTERS = ConfState(voters=(1, 2, 3))
SPLIT = range_key(b"m")
KEYS = [b"a", b"b", b"m", b"x", b"{m}1", b"{m}2", b"zz"]

OpenNode = Callable[[], NodeStore]


class StorageImages:
    """`RangeImages` through the storage layer's bounded-transaction range functions (what
    a node on LMDB plugs into its region machines)."""

    def __init__(self, space: LmdbKeyspace) -> None:
        self.space = space

    def snapshot(self, scope: Scope) -> bytes:
        return b"".join(region_data.range_snapshot(self.space, scope))

    def restore(self, scope: Scope, data: bytes) -> None:
        if data:
            region_data.install_range(self.space, scope, [data])
        else:
            region_data.delete_range(self.space, scope)


@pytest.fixture
def open_node(tmp_path: Path) -> Iterator[OpenNode]:
    opened: list[NodeStore] = []

    def opener() -> NodeStore:
        node = NodeStore.open(tmp_path / "n1", 1, "test", LmdbOptions(map_size=32 << 20))
        opened.append(node)
        return node

    yield opener
    for node in opened:
        node.close()  # a no-op for one already closed


def _cmd(index: int, name: str, *args: bytes) -> tuple[int, bytes]:
    return index, encode_command(name, list(args), T0 + index)


def _founded(node: NodeStore) -> StoreMachine:
    node.create_region(RegionLocalState(1, region=Region(1)), conf_state=VOTERS)
    return StoreMachine(node.keyspace, scope=Scope.region(1))


def test_a_new_region_machine_reads_the_applied_index_the_node_founded_it_with(
    open_node: OpenNode,
) -> None:
    node = open_node()
    machine = _founded(node)
    assert machine.applied_index == RAFT_INIT_INDEX == node.applied_index(1)


def test_split_is_atomic_with_the_entries_and_the_region_records(
    open_node: OpenNode,
) -> None:
    node = open_node()
    left = _founded(node)
    entries = [_cmd(6 + i, "hset", key, b"f", b"v") for i, key in enumerate(KEYS)]
    split_index = 6 + len(KEYS)
    left_region, right_region = split_region(Region(1), SPLIT, 2, ())
    with node.env.write() as wtx, node.keyspace.group(wtx):
        assert left.apply_many_within(entries) == [Integer(1)] * len(KEYS)
        right = split_machine(left, SPLIT, 2, index=split_index, right_index=RAFT_INIT_INDEX)
        node.stage_split(wtx, left_region, right_region, VOTERS)
        assert right.apply_many_within([_cmd(6, "set", b"x", b"new")]) == [OK]
        assert is_refusal(left.apply_many_within([_cmd(split_index + 1, "get", b"x")])[0])
    node.close()
    node = open_node()
    assert (node.applied_index(1), node.applied_index(2)) == (split_index + 1, 6)
    left = StoreMachine(node.keyspace, scope=Scope.region(1, b"", SPLIT))
    right = StoreMachine(node.keyspace, scope=Scope.region(2, SPLIT, b""))
    below = [k for k in KEYS if range_key(k) < SPLIT]
    assert left.key_count() == len(below)
    assert right.key_count() == len(KEYS) - len(below)
    assert right.execute_read("get", [b"x"], T0) == Bulk(b"new")
    assert [s.region for s in node.live()] == [left_region, right_region]


def test_an_aborted_transaction_keeps_nothing_and_reload_recovers(
    open_node: OpenNode,
) -> None:
    node = open_node()
    machine = _founded(node)
    failed = pytest.raises(RuntimeError, match="driver failed")
    with failed, node.env.write() as wtx, node.keyspace.group(wtx):
        machine.apply_many_within([_cmd(6, "set", b"a", b"1")])
        assert machine.applied_index == 6
        raise RuntimeError("driver failed")
    machine.reload()
    assert machine.applied_index == RAFT_INIT_INDEX
    assert machine.execute_read("get", [b"a"], T0) == NullBulk()
    assert machine.key_count() == 0


def test_merge_is_atomic_with_the_region_records(open_node: OpenNode) -> None:
    node = open_node()
    left = _founded(node)
    left_region, right_region = split_region(Region(1), SPLIT, 2, ())
    with node.env.write() as wtx, node.keyspace.group(wtx):
        left.apply_many_within([_cmd(6 + i, "set", k, b"v") for i, k in enumerate(KEYS)])
        right = split_machine(left, SPLIT, 2, index=20, right_index=RAFT_INIT_INDEX)
        node.stage_split(wtx, left_region, right_region, VOTERS)
    merged = merge_regions(right_region, left_region)
    with node.env.write() as wtx, node.keyspace.group(wtx):
        merge_machines(right, left, index=21)
        node.stage_merge(wtx, 2, merged)
    node.close()
    node = open_node()
    assert (node.applied_index(1), node.applied_index(2)) == (21, 0)
    whole = StoreMachine(node.keyspace, scope=Scope.region(1))
    assert whole.key_count() == len(KEYS)
    assert whole.execute_read("dbsize", [], T0) == Integer(len(KEYS))


@pytest.mark.parametrize("chunk_bytes", [64, 1 << 20])
def test_images_are_those_of_the_storage_layer(open_node: OpenNode, chunk_bytes: int) -> None:
    node = open_node()
    left = _founded(node)
    left.apply_many([_cmd(6 + i, "hset", k, b"f%d" % i, b"v") for i, k in enumerate(KEYS)])
    right = split_machine(left, SPLIT, 2, index=20, right_index=RAFT_INIT_INDEX)
    for machine in (left, right):
        scope = machine.scope
        assert scope.region_id is not None
        ours = KeyspaceImages(node.keyspace, chunk_bytes).snapshot(scope)
        theirs = region_data.range_snapshot(node.keyspace, scope, chunk_bytes)
        assert ours == b"".join(theirs)


def test_storage_images_plug_into_a_region_machine(open_node: OpenNode) -> None:
    node = open_node()
    node.create_region(RegionLocalState(1, region=Region(1)), conf_state=VOTERS)
    images = StorageImages(node.keyspace)
    left = StoreMachine(node.keyspace, scope=Scope.region(1), images=images)
    left.apply_many([_cmd(6 + i, "set", k, b"v1") for i, k in enumerate(KEYS)])
    right = split_machine(left, SPLIT, 2, index=20, right_index=RAFT_INIT_INDEX)
    image = right.snapshot()
    right.apply_many([_cmd(6, "flushdb"), _cmd(7, "set", b"x", b"v2")])
    left.apply_many([_cmd(21, "set", b"a", b"v3")])
    right.restore(image)
    assert right.applied_index == RAFT_INIT_INDEX
    assert right.execute_read("get", [b"x"], T0) == Bulk(b"v1")
    assert left.execute_read("get", [b"a"], T0) == Bulk(b"v3")
    assert right.key_count() == sum(range_key(k) >= SPLIT for k in KEYS)
    plain = StoreMachine(node.keyspace, scope=right.scope)
    assert plain.snapshot() == image
