"""Durable splits and merges of a real node's regions on LMDB, below the network: the
region machine applying admin entries through `LmdbHostStore` (one write transaction
each), crashes injected inside that transaction, restarts and idempotent replays, the
region records of membership changes and freezes, snapshots restored into their own
range, and the inspector's figures and split keys."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cairn.meta.region import Peer, PeerRole, Region, range_key, slot_bound
from cairn.resp.reply import Bulk, NullBulk
from cairn.runtime.host_store import (
    FP_MERGE_STAGED,
    FP_SPLIT_STAGED,
    LmdbHostStore,
    found_regions,
)
from cairn.runtime.range_store import StoreRangeMachine
from cairn.runtime.region_inspector import estimate_size, slot_counts, split_key_of
from cairn.runtime.region_layout import initial_layout, peer_id
from cairn.shard.region_machine import (
    EpochNotMatch,
    KeyNotInRegion,
    MergeDone,
    RegionMachine,
    SplitDone,
    encode_commit_merge,
    encode_prepare_merge,
    encode_split,
)
from cairn.storage import LmdbOptions, failpoints
from cairn.storage.errors import DiskFailedError
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.storage.region_meta import PeerState, RegionLocalState
from cairn.store.machine import encode_command
from cairn.store.slot import key_slot

T0 = 1_700_000_000_000
NODES = (1, 2, 3)
KEYS = [f"k{i}".encode() for i in range(200)]
CUT = slot_bound(8192)
RIGHT = 2
SPLIT_INDEX = RAFT_INIT_INDEX + len(KEYS) + 1


@dataclass
class Stack:
    """One node's store and the region machines built from its records."""

    node: NodeStore
    host_store: LmdbHostStore
    splits: list[tuple[Region, Region, bytes | None]] = field(default_factory=list)
    merges: list[tuple[Region, Region]] = field(default_factory=list)

    def machine(self, region_id: int) -> RegionMachine:
        state = self.node.state(region_id)
        assert state is not None
        region = state.region or Region(region_id)
        inner = StoreRangeMachine(self.node.keyspace, region_id, state.region)
        return RegionMachine(
            inner,
            region,
            lambda left, right, image: self.splits.append((left, right, image)),
            lambda source, merged: self.merges.append((source, merged)),
            self.host_store,
        )


def open_stack(path: Path) -> Stack:
    node = NodeStore.open(path, 1, "test", LmdbOptions(map_size=64 << 20))
    return Stack(node, LmdbHostStore(node, 1))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    opened = open_stack(tmp_path / "n1")
    found_regions(opened.node, initial_layout(NODES, 1), RAFT_INIT_INDEX)
    yield opened
    opened.node.close()
    failpoints.reset()


def crash_and_reopen(stack: Stack, path: Path) -> Stack:
    """What a restart after kill -9 finds: every committed transaction, nothing else (a
    killed process's commits are in the page cache; the close only syncs them early)."""
    stack.node.close()
    return open_stack(path)


def sets(first: int, keys: Sequence[bytes]) -> list[tuple[int, bytes]]:
    return [
        (first + i, encode_command("set", [k, b"v" + k], T0 + first + i))
        for i, k in enumerate(keys)
    ]


def split_entry(rm: RegionMachine) -> tuple[int, bytes]:
    ids = [peer_id(RIGHT, n) for n in NODES]
    return SPLIT_INDEX, encode_split(rm.region.epoch, CUT, RIGHT, ids)


def apply(rm: RegionMachine, entries: Sequence[tuple[int, bytes]]) -> list[object]:
    """As a replica applies: only what lies past the applied index, in runs."""
    many = rm.apply_many
    assert many is not None
    return many([(i, d) for i, d in entries if i > rm.applied_index])


def on_right(key: bytes) -> bool:
    return range_key(key) >= CUT


def get(rm: RegionMachine, key: bytes) -> object:
    assert isinstance(rm.inner, StoreRangeMachine)
    return rm.inner.store.execute_read("get", [key], T0 + 10_000)


def assert_split_state(stack: Stack, right_version: int = 2) -> None:
    left_state, right_state = stack.node.state(1), stack.node.state(RIGHT)
    assert left_state is not None and right_state is not None
    left, right = left_state.region, right_state.region
    assert left is not None and right is not None
    assert (left.end, right.start, right.end) == (CUT, CUT, b"")
    assert left.epoch.version == 2 and right.epoch.version == right_version
    assert stack.node.applied_index(1) >= SPLIT_INDEX
    assert stack.node.applied_index(RIGHT) >= RAFT_INIT_INDEX
    durable = stack.node.store(RIGHT).load()
    assert durable.snapshot.metadata.index == RAFT_INIT_INDEX
    assert durable.hard_state.term == RAFT_INIT_INDEX
    assert set(durable.snapshot.metadata.conf_state.voters) == {peer_id(RIGHT, n) for n in NODES}
    lm, rm = stack.machine(1), stack.machine(RIGHT)
    assert isinstance(lm.inner, StoreRangeMachine) and isinstance(rm.inner, StoreRangeMachine)
    n_right = sum(on_right(k) for k in KEYS)
    assert 0 < n_right < len(KEYS)
    assert rm.inner.store.key_count() == n_right
    assert lm.inner.store.key_count() == len(KEYS) - n_right
    for machine in (lm.inner.store, rm.inner.store):
        for slot, count in slot_counts(machine):
            assert count == sum(key_slot(k) == slot for k in KEYS)
    for key in KEYS:
        owner = rm if on_right(key) else lm
        assert get(owner, key) == Bulk(b"v" + key)


def test_a_split_entry_is_applied_in_one_transaction_with_every_record(stack: Stack) -> None:
    rm = stack.machine(1)
    apply(rm, sets(RAFT_INIT_INDEX + 1, KEYS))
    writes = stack.host_store.writes
    results = apply(rm, [split_entry(rm)])
    assert isinstance(results[0], SplitDone)
    assert stack.host_store.writes == writes + 1
    assert [(left.id, right.id, image) for left, right, image in stack.splits] == [(1, 2, None)]
    assert_split_state(stack)
    later = sets(SPLIT_INDEX + 1, [KEYS[0], KEYS[-1]])
    refused = [isinstance(r, KeyNotInRegion) for r in apply(rm, later)]
    assert refused == [on_right(KEYS[0]), on_right(KEYS[-1])]


@pytest.mark.parametrize(
    "point",
    [FP_SPLIT_STAGED, "storage.lmdb.commit"],
)
def test_a_crash_inside_the_split_transaction_leaves_none_of_it_and_the_log_redoes_it(
    stack: Stack, tmp_path: Path, point: str
) -> None:
    rm = stack.machine(1)
    apply(rm, sets(RAFT_INIT_INDEX + 1, KEYS))
    failpoints.enable(point, failpoints.Panic(), times=1)
    with pytest.raises(failpoints.FailpointPanic):
        apply(rm, [split_entry(rm)])
    stack = crash_and_reopen(stack, tmp_path / "n1")
    state = stack.node.state(1)
    assert state is not None and state.region is not None
    assert (state.region.end, state.region.epoch.version) == (b"", 1)
    assert stack.node.state(RIGHT) is None
    assert stack.node.applied_index(1) == SPLIT_INDEX - 1
    assert stack.node.applied_index(RIGHT) == 0
    rm = stack.machine(1)
    assert isinstance(rm.inner, StoreRangeMachine)
    assert rm.inner.store.key_count() == len(KEYS)
    apply(rm, [split_entry(rm)])  # the log replays the entry
    assert_split_state(stack)
    stack.node.close()


def test_a_failed_split_transaction_puts_the_machine_back_as_the_disk_has_it(
    stack: Stack,
) -> None:
    rm = stack.machine(1)
    apply(rm, sets(RAFT_INIT_INDEX + 1, KEYS))
    failpoints.enable(FP_SPLIT_STAGED, failpoints.Return(errno=5), times=1)
    with pytest.raises(DiskFailedError):
        apply(rm, [split_entry(rm)])
    assert isinstance(rm.inner, StoreRangeMachine)
    assert rm.inner.store.scope.end == b""
    assert rm.applied_index == SPLIT_INDEX - 1
    assert rm.region.epoch.version == 1 and not stack.splits


def test_after_a_restart_the_split_is_whole_and_replaying_the_log_changes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    log = [*sets(RAFT_INIT_INDEX + 1, KEYS)]
    rm = stack.machine(1)
    apply(rm, log)
    log.append(split_entry(rm))
    log += sets(SPLIT_INDEX + 1, [k for k in KEYS[:20] if not on_right(k)])
    apply(rm, log)
    stack = crash_and_reopen(stack, tmp_path / "n1")
    assert_split_state(stack)
    rm = stack.machine(1)
    assert rm.applied_index == log[-1][0]
    assert apply(rm, log) == []
    # Even handed the split again, the region's epoch refuses it.
    again = rm.apply(SPLIT_INDEX, log[SPLIT_INDEX - RAFT_INIT_INDEX - 1][1])
    assert isinstance(again, EpochNotMatch)
    assert_split_state(stack)
    stack.node.close()


def test_membership_changes_and_freezes_are_durable_with_their_index(
    stack: Stack, tmp_path: Path
) -> None:
    rm = stack.machine(1)
    apply(rm, sets(RAFT_INIT_INDEX + 1, KEYS[:3]))
    peers = (*rm.region.peers, Peer(peer_id(1, 4), 4, PeerRole.LEARNER))
    rm.set_peers(peers, 9)
    stack = crash_and_reopen(stack, tmp_path / "n1")
    state = stack.node.state(1)
    assert state is not None and state.region is not None
    assert state.region.peers == peers and state.region.epoch.conf_ver == 2
    assert stack.node.applied_index(1) == 9
    rm = stack.machine(1)
    frozen = apply(rm, [(10, encode_prepare_merge(rm.region.epoch, 7))])
    assert rm.merging_into == 7 and not isinstance(frozen[0], EpochNotMatch)
    stack = crash_and_reopen(stack, tmp_path / "n1")
    rm = stack.machine(1)
    assert rm.merging_into == 7 and rm.applied_index == 10
    assert rm.region.epoch.version == 2
    assert isinstance(apply(rm, sets(11, KEYS[:1]))[0], KeyNotInRegion)
    stack.node.close()


def split_stack(stack: Stack) -> tuple[RegionMachine, RegionMachine]:
    rm = stack.machine(1)
    apply(rm, sets(RAFT_INIT_INDEX + 1, KEYS))
    apply(rm, [split_entry(rm)])
    return rm, stack.machine(RIGHT)


@pytest.mark.parametrize("source_here", [True, False])
def test_a_commit_merge_grows_the_target_over_the_source_data(
    stack: Stack, source_here: bool
) -> None:
    left, right = split_stack(stack)
    apply(right, [(RAFT_INIT_INDEX + 1, encode_prepare_merge(right.region.epoch, 1))])
    assert right.merging_into == 1
    data = right.inner.snapshot()
    if not source_here:  # this node lost its source replica: the entry's data is all
        stack.node.destroy_region(RIGHT)
    entry = encode_commit_merge(left.region.epoch, right.region, data)
    (done,) = apply(left, [(SPLIT_INDEX + 1, entry)])
    assert isinstance(done, MergeDone)
    assert left.region.start == b"" and left.region.end == b""
    source = stack.node.state(RIGHT)
    assert source is not None and source.state is PeerState.TOMBSTONE
    target = stack.node.state(1)
    assert target is not None and target.region == left.region
    assert stack.node.applied_index(1) == SPLIT_INDEX + 1
    assert stack.node.applied_index(RIGHT) == 0
    assert isinstance(left.inner, StoreRangeMachine)
    assert left.inner.store.key_count() == len(KEYS)
    assert all(get(left, k) == Bulk(b"v" + k) for k in KEYS)


def test_a_crash_inside_the_merge_transaction_leaves_none_of_it(
    stack: Stack, tmp_path: Path
) -> None:
    left, right = split_stack(stack)
    apply(right, [(RAFT_INIT_INDEX + 1, encode_prepare_merge(right.region.epoch, 1))])
    entry = encode_commit_merge(left.region.epoch, right.region, right.inner.snapshot())
    failpoints.enable(FP_MERGE_STAGED, failpoints.Panic(), times=1)
    with pytest.raises(failpoints.FailpointPanic):
        apply(left, [(SPLIT_INDEX + 1, entry)])
    stack = crash_and_reopen(stack, tmp_path / "n1")
    assert_split_state(stack, right_version=3)
    assert stack.machine(RIGHT).merging_into == 1
    left = stack.machine(1)
    assert isinstance(apply(left, [(SPLIT_INDEX + 1, entry)])[0], MergeDone)
    assert isinstance(left.inner, StoreRangeMachine)
    assert left.inner.store.key_count() == len(KEYS)
    stack.node.close()


def test_a_snapshot_is_restored_into_the_range_it_describes_only(stack: Stack) -> None:
    left, right = split_stack(stack)
    image = right.snapshot()
    stack.node.destroy_region(RIGHT)
    stack.node.create_region(RegionLocalState(RIGHT), conf_state=None)
    placeholder = stack.machine(RIGHT)  # uninitialized: its scope is every key
    placeholder.restore(image)
    assert placeholder.region == right.region
    state = stack.node.state(RIGHT)
    assert state is not None and state.region == right.region
    for key in KEYS:
        assert get(left if not on_right(key) else placeholder, key) == Bulk(b"v" + key)
    assert get(placeholder, KEYS[0] if not on_right(KEYS[0]) else KEYS[1]) != NullBulk


def test_the_inspector_cuts_at_the_slot_boundary_nearest_the_middle(stack: Stack) -> None:
    rm = stack.machine(1)
    apply(rm, sets(RAFT_INIT_INDEX + 1, KEYS))
    assert isinstance(rm.inner, StoreRangeMachine)
    machine = rm.inner.store
    at = split_key_of(machine, rm.region, big_slot_keys=1000)
    assert at is not None and len(at) == 2
    left = sum(range_key(k) < at for k in KEYS)
    best = min(abs(2 * sum(key_slot(k) < s for k in KEYS) - len(KEYS)) for s in range(16385))
    assert abs(2 * left - len(KEYS)) == best
    size = estimate_size(machine, machine.key_count())
    assert len(KEYS) * 8 <= size <= len(KEYS) * 64


def test_the_inspector_cuts_inside_a_slot_only_when_it_is_too_big(stack: Stack) -> None:
    rm = stack.machine(1)
    tagged = [f"{{t}}{i:03}".encode() for i in range(40)]
    apply(rm, sets(RAFT_INIT_INDEX + 1, [*tagged, b"other"]))
    assert isinstance(rm.inner, StoreRangeMachine)
    inside = split_key_of(rm.inner.store, rm.region, big_slot_keys=10)
    assert inside is not None and len(inside) > 2
    assert inside[:2] == range_key(b"{t}")[:2]
    assert sum(range_key(k) < inside for k in tagged) == len(tagged) // 2
    whole = split_key_of(rm.inner.store, rm.region, big_slot_keys=1000)
    assert whole is not None and len(whole) == 2
    single = Region(1, range_key(b"{t}")[:2], slot_bound(key_slot(b"{t}") + 1))
    assert split_key_of(rm.inner.store, single, big_slot_keys=1000) is None
