"""A cross-region transaction's entries meeting a split, on a real node's LMDB below the
network: the region machine must refuse the internal commands (``cairn.txn.*``,
``cairn.effects``, ``cairn.exec``, ``cairn.idem``) whose keys the split moved away,
exactly as it refuses a client command, and never apply them in the left half.

The chaos finding this reproduces (docs/reliability.md, Known findings): a transaction
locked and prewrote a key, the region split, and the commit, proposed before the split,
was applied after it by the left half, whose range no longer held the key. The machine
shares one keyspace with the right half, so RESTORE REPLACE found the key's metadata and
took it off the LEFT half's count of a slot the split had handed to the right: the count
went below zero and every replica of the region stopped on that entry, again after each
restart."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.meta.region import Region, range_key, slot_bound
from cairn.resp.reply import Array, Bulk
from cairn.runtime.host_store import LmdbHostStore, found_regions
from cairn.runtime.range_store import StoreRangeMachine
from cairn.runtime.region_layout import initial_layout, peer_id
from cairn.shard.region_machine import KeyNotInRegion, RegionMachine, SplitDone, encode_split
from cairn.storage import LmdbOptions
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.store import MemoryKeyspace, StoreMachine
from cairn.store.layout import decode_u64, split_meta_key
from cairn.store.machine import encode_command
from cairn.store.ranges import iter_meta
from cairn.store.scripting.effects import (
    EFFECTS_COMMAND,
    Effects,
    encode_effects,
    run_for_effects,
)
from cairn.store.transaction import TXN_COMMAND, encode_transaction
from cairn.store.txn_locks import COMMIT_COMMAND, LOCK_COMMAND, PREWRITE_COMMAND

T0 = 1_700_000_000_000
NODES = (1, 2, 3)
CUT = slot_bound(8192)
RIGHT = 2
TS = 1000 << 18
LEFT_KEY = b"acct1"  # slot 4439
RIGHT_KEY = b"acct2"  # slot 8500


def _side(key: bytes) -> bool:
    return range_key(key) >= CUT


assert not _side(LEFT_KEY) and _side(RIGHT_KEY)


class Node:
    """One node's store, and the region machines built from its records."""

    def __init__(self, path: Path) -> None:
        self.store = NodeStore.open(path, 1, "test", LmdbOptions(map_size=64 << 20))
        self.host_store = LmdbHostStore(self.store, 1)
        found_regions(self.store, initial_layout(NODES, 1), RAFT_INIT_INDEX)
        self.left = self.machine(1)
        self.index = RAFT_INIT_INDEX

    def machine(self, region_id: int) -> RegionMachine:
        state = self.store.state(region_id)
        assert state is not None
        region = state.region or Region(region_id)
        inner = StoreRangeMachine(self.store.keyspace, region_id, state.region)
        return RegionMachine(inner, region, lambda *_: None, lambda *_: None, self.host_store)

    def entry(self, name: str, *args: bytes) -> tuple[int, bytes]:
        self.index += 1
        return self.index, encode_command(name, list(args), T0 + self.index)

    def split_entry(self) -> tuple[int, bytes]:
        self.index += 1
        ids = [peer_id(RIGHT, n) for n in NODES]
        return self.index, encode_split(self.left.region.epoch, CUT, RIGHT, ids)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    opened = Node(tmp_path / "n1")
    yield opened
    opened.store.close()


def _apply(rm: RegionMachine, entries: list[tuple[int, bytes]]) -> list[object]:
    many = rm.apply_many
    assert many is not None
    return many(entries)


def _store(rm: RegionMachine) -> StoreMachine:
    assert isinstance(rm.inner, StoreRangeMachine)
    return rm.inner.store


def _assert_counts_exact(machine: StoreMachine) -> None:
    """The region's total and per-slot key counts equal its M records."""
    by_slot = Counter(split_meta_key(k)[0] for k, _ in iter_meta(machine.keyspace, machine.scope))
    bounds = machine.scope.slot_count_bounds()
    assert bounds is not None
    stored = {
        int.from_bytes(k[-2:], "big"): decode_u64(v) for k, v in machine.keyspace.scan(*bounds)
    }
    assert stored == dict(by_slot)
    assert machine.key_count() == sum(by_slot.values())


def _dump(value: bytes) -> bytes:
    scratch = StoreMachine(MemoryKeyspace())
    scratch.apply(1, encode_command("set", [b"k", value], T0))
    got = scratch.execute_read("dump", [b"k"], T0)
    assert isinstance(got, Bulk)
    return got.value


def _locked_and_prewritten(node: Node, key: bytes, value: bytes) -> list[tuple[int, bytes]]:
    ts = b"%d" % TS
    lock = node.entry(LOCK_COMMAND, ts, key, b"30000", b"100000", b"0", key)
    prewrite = node.entry(PREWRITE_COMMAND, ts, b"1", key, b"1", b"0", _dump(value))
    return [lock, prewrite]


@pytest.mark.parametrize("existed", [True, False], ids=["replace", "create"])
def test_a_commit_applied_after_the_split_is_refused_by_the_left_half(
    node: Node, existed: bool
) -> None:
    before = [node.entry("set", LEFT_KEY, b"100")]
    if existed:
        before.append(node.entry("set", RIGHT_KEY, b"100"))
    before += _locked_and_prewritten(node, RIGHT_KEY, b"70")
    split = node.split_entry()
    commit = node.entry(COMMIT_COMMAND, b"%d" % TS, b"%d" % (TS + 1), b"1", RIGHT_KEY)
    # One Ready: the commit was proposed to the region before the split applied.
    results = _apply(node.left, [*before, split, commit])
    assert isinstance(results[-2], SplitDone)
    assert isinstance(results[-1], KeyNotInRegion)
    right = node.machine(RIGHT)
    for half in (node.left, right):
        _assert_counts_exact(_store(half))
    # The coordinator, told the key moved, commits it in the right half.
    assert _apply(right, [(RAFT_INIT_INDEX + 1, commit[1])]) == [Array((Bulk(b"ok"),))]
    assert _store(right).execute_read("get", [RIGHT_KEY], T0 + 10**6) == Bulk(b"70")
    assert _store(right).key_count() == 1
    assert _store(node.left).key_count() == 1
    for half in (node.left, right):
        _assert_counts_exact(_store(half))


def test_every_internal_command_family_names_its_keys_to_the_range_check(node: Node) -> None:
    """What the region machine checks against its range before it lets the store skip its
    own check: every family of entries carrying keys must name them."""
    inner = node.left.inner
    assert isinstance(inner, StoreRangeMachine)
    txn = encode_transaction([], [[b"set", RIGHT_KEY, b"1"]])
    effects = run_for_effects(
        _store(node.left).keyspace,
        _store(node.left).scope,
        "eval",
        [b"return redis.call('set', KEYS[1], 'x')", b"1", RIGHT_KEY],
        T0,
        random.Random(1),
    )
    assert isinstance(effects, Effects)
    ts = b"%d" % TS
    entries = [
        encode_command("set", [RIGHT_KEY, b"1"], T0),
        encode_command(TXN_COMMAND, [txn], T0),
        encode_command(EFFECTS_COMMAND, [encode_effects(effects)], T0),
        encode_command(LOCK_COMMAND, [ts, RIGHT_KEY, b"1", b"1", b"0", RIGHT_KEY], T0),
        encode_command(PREWRITE_COMMAND, [ts, b"1", RIGHT_KEY, b"0", b"0", b""], T0),
        encode_command(COMMIT_COMMAND, [ts, ts, b"1", RIGHT_KEY], T0),
        encode_command("cairn.txn.rollback", [ts, b"1", RIGHT_KEY], T0),
        encode_command("cairn.txn.status", [RIGHT_KEY, ts], T0),
    ]
    for data in entries:
        assert list(inner.keys_of(data)) == [RIGHT_KEY], data[:40]
