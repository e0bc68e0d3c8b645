"""`NodeStore`: many regions' Raft storage and metadata in one environment, group commit,
create / split / merge / destroy / snapshot install, crash safety by failpoint and reopen."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from storage_helpers import SMALL_MAP

from cairn.env import LogBatch
from cairn.meta.region import (
    Peer,
    PeerRole,
    Region,
    RegionEpoch,
    range_key,
    slot_bound,
    split_region,
)
from cairn.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from cairn.storage import LmdbLogStore, failpoints, region_data
from cairn.storage.errors import (
    CorruptLogError,
    DiskFailedError,
    RegionDataError,
    UnknownRegionError,
)
from cairn.storage.lmdb_env import FP_COMMIT, FP_SYNC, LmdbOptions
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore, region_scope
from cairn.storage.raft_keys import RaftKeys, region_prefix
from cairn.storage.region_data import count_region
from cairn.storage.region_meta import PeerState, RegionLocalState, decode_state, encode_state
from cairn.store.layout import field_prefix, meta_key
from cairn.store.ranges import iter_scope
from cairn.store.scope import WHOLE_KEYSPACE, Scope

OpenNode = Callable[..., NodeStore]
VOTERS = ConfState(voters=(1, 2, 3))


@pytest.fixture
def open_node(data_dir: Path) -> Iterator[OpenNode]:
    """Opens node stores on `data_dir`; closes what is still open at the end."""
    opened: list[NodeStore] = []

    def opener(path: Path = data_dir) -> NodeStore:
        node = NodeStore.open(path, 1, "test", LmdbOptions(map_size=SMALL_MAP))
        opened.append(node)
        return node

    yield opener
    for node in opened:
        node.close()


def region(rid: int, start: int = 0, end: int = 16384) -> Region:
    """Region `rid` over slots [start, end), with three peers."""
    peers = tuple(Peer(rid * 10 + n, n, PeerRole.VOTER) for n in (1, 2, 3))
    return Region(rid, slot_bound(start), slot_bound(end), RegionEpoch(3, 2), peers)


def ents(lo: int, hi: int, term: int = 5, tag: bytes = b"") -> tuple[Entry, ...]:
    return tuple(Entry(term=term, index=i, data=tag + b"%d" % i) for i in range(lo, hi))


def put_keys(node: NodeStore, keys: list[bytes]) -> None:
    """A string M record and one F record per key (as a hash would have)."""
    batch = node.keyspace.begin()
    for key in keys:
        batch.put(meta_key(key), b"v" + key)
        batch.put(field_prefix(key) + b"f", b"fv" + key)
    batch.commit()


def keys_in(rng: Scope, count: int = 400) -> list[bytes]:
    return [k for k in (b"key%d" % i for i in range(count)) if rng.contains(range_key(k))]


def raft_record_count(node: NodeStore, region_id: int) -> int:
    keys = RaftKeys.region(node.env, region_id)
    prefix = region_prefix(region_id)
    total = 0
    with node.env.read() as txn:
        for db in (keys.log_db, keys.state_db):
            with txn.cursor(db=db) as cur:
                present = cur.set_range(prefix)
                while present and cur.key().startswith(prefix):
                    total += 1
                    present = cur.next()
    return total


def two_regions(node: NodeStore) -> tuple[Region, Region]:
    left, right = region(1, 0, 8000), region(2, 8000, 16384)
    node.create_region(RegionLocalState(1, region=left), conf_state=VOTERS)
    node.create_region(RegionLocalState(2, region=right), conf_state=VOTERS)
    return left, right


# -- per-region stores ---------------------------------------------------------------------


def test_regions_keep_separate_logs_across_a_restart(open_node: OpenNode) -> None:
    node = open_node()
    two_regions(node)
    node.write_many(
        [(1, LogBatch(entries=ents(6, 20, tag=b"a"), hard_state=HardState(6, 1, 19)))], True
    )
    node.write_many(
        [(2, LogBatch(entries=ents(6, 9, tag=b"b"), hard_state=HardState(6, 2, 7)))], True
    )
    node.close()
    again = open_node()
    one, two = again.store(1).load(), again.store(2).load()
    assert [e.data for e in one.entries] == [b"a%d" % i for i in range(6, 20)]
    assert [e.data for e in two.entries] == [b"b%d" % i for i in range(6, 9)]
    assert (one.hard_state, two.hard_state) == (HardState(6, 1, 19), HardState(6, 2, 7))
    assert one.snapshot.metadata.index == RAFT_INIT_INDEX
    assert again.store(2).term(RAFT_INIT_INDEX) == RAFT_INIT_INDEX


def test_a_snapshot_replacing_one_regions_log_leaves_the_others(open_node: OpenNode) -> None:
    node = open_node()
    two_regions(node)
    node.write_many([(1, LogBatch(entries=ents(6, 30))), (2, LogBatch(entries=ents(6, 30)))], True)
    snap = Snapshot(data=b"x", metadata=SnapshotMetadata(100, 9, VOTERS))
    node.write_many([(1, LogBatch(snapshot=snap, hard_state=HardState(9, 0, 100)))], True)
    assert node.store(1).first_index() == 101
    assert node.store(1).last_index() == 100
    assert node.store(2).last_index() == 29
    node.close()
    again = open_node()
    again.verify()
    assert [e.index for e in again.store(2).entries(6, 30)] == list(range(6, 30))
    assert again.store(1).snapshot().data == b"x"


def test_an_entry_copied_to_another_region_fails_its_checksum(open_node: OpenNode) -> None:
    node = open_node()
    two_regions(node)
    node.write_many([(1, LogBatch(entries=ents(6, 8)))], True)
    one, two = RaftKeys.region(node.env, 1), RaftKeys.region(node.env, 2)
    with node.env.write() as wtx:
        value = wtx.txn.get(one.index_key(6), db=one.log_db)
        assert value is not None
        wtx.txn.put(two.index_key(6), value, db=two.log_db)
    node.close()
    again = open_node()
    with pytest.raises(CorruptLogError, match="region 2: log entry 6 fails its checksum"):
        again.store(2)
    again.store(1).verify()


def test_unknown_and_removed_regions_have_no_store(open_node: OpenNode) -> None:
    node = open_node()
    two_regions(node)
    with pytest.raises(UnknownRegionError):
        node.store(7)
    node.destroy_region(2)
    with pytest.raises(UnknownRegionError):
        node.store(2)


# -- group commit --------------------------------------------------------------------------


def test_group_commit_writes_sixteen_regions_in_one_transaction_and_one_sync(
    open_node: OpenNode,
) -> None:
    node = open_node()
    with node.env.write() as wtx:
        for rid in range(1, 17):
            node.stage_create(
                wtx, RegionLocalState(rid, region=region(rid, rid, rid + 1)), conf_state=VOTERS
            )
    failpoints.enable(FP_SYNC, failpoints.Call(lambda _: None))
    failpoints.enable(FP_COMMIT, failpoints.Call(lambda _: None))
    batches = [
        (rid, LogBatch(entries=ents(6, 10, tag=b"%d-" % rid), hard_state=HardState(6, 1, 9)))
        for rid in range(1, 17)
    ]
    node.write_many(batches, sync=True)
    assert failpoints.hits(FP_SYNC) == 1
    assert failpoints.hits(FP_COMMIT) == 1
    failpoints.reset()
    node.close()
    again = open_node()
    for rid in range(1, 17):
        assert [e.data for e in again.store(rid).load().entries] == [
            b"%d-%d" % (rid, i) for i in range(6, 10)
        ]


def test_a_failed_group_commit_keeps_none_of_its_batches(open_node: OpenNode) -> None:
    node = open_node()
    two_regions(node)
    failpoints.enable(FP_COMMIT, failpoints.Return(), times=1)
    with pytest.raises(DiskFailedError):
        node.write_many(
            [(1, LogBatch(entries=ents(6, 9))), (2, LogBatch(entries=ents(6, 9)))], True
        )
    assert node.store(1).last_index() == node.store(2).last_index() == RAFT_INIT_INDEX
    node.close()
    again = open_node()
    assert again.store(1).last_index() == again.store(2).last_index() == RAFT_INIT_INDEX


def test_region_state_changes_commit_with_the_raft_batch(open_node: OpenNode) -> None:
    node = open_node()
    left, _ = two_regions(node)
    grown = Region(1, left.start, left.end, left.epoch.next_conf_ver(), left.peers[:2])
    node.write_many([(1, LogBatch(entries=ents(6, 7)))], True, [RegionLocalState(1, region=grown)])
    node.close()
    again = open_node()
    assert again.state(1) == RegionLocalState(1, region=grown)
    assert again.store(1).last_index() == 6


# -- metadata ------------------------------------------------------------------------------


def test_region_records_round_trip_and_damage_is_named(open_node: OpenNode) -> None:
    node = open_node()
    rec = RegionLocalState(3, PeerState.TOMBSTONE, region(3, 5, 9), pending_delete=True)
    uninit = RegionLocalState(4)
    with node.env.write() as wtx:
        node.stage_state(wtx, rec)
        node.stage_state(wtx, uninit)
    node.close()
    again = open_node()
    assert again.regions() == [rec, uninit]
    assert again.pending() == [rec]
    assert again.live() == [uninit]
    with again.env.write() as wtx:
        wtx.txn.put(region_prefix(3), b"\0\0\0\0garbage", db=again.env.regions_db)
    again.close()
    with pytest.raises(CorruptLogError, match="region 3: metadata record fails its checksum"):
        open_node()


def test_verify_finds_raft_records_of_a_region_without_a_record(open_node: OpenNode) -> None:
    node = open_node()
    two_regions(node)
    with node.env.write() as wtx:
        wtx.txn.put(RaftKeys.region(node.env, 9).index_key(1), b"x", db=node.env.region_log_db)
    with pytest.raises(CorruptLogError, match="region 9 has Raft records"):
        node.verify()


def test_a_thousand_regions_list_and_open_fast(open_node: OpenNode) -> None:
    node = open_node()
    with node.env.write() as wtx:
        for rid in range(1, 1001):
            rec = RegionLocalState(rid, region=region(rid, rid, rid + 1))
            node.stage_create(wtx, rec, conf_state=VOTERS)
    node.close()
    began = time.perf_counter()
    again = open_node()
    listed = again.regions()
    listed_in = time.perf_counter() - began
    for rid in range(1, 1001):
        again.store(rid)
    opened_in = time.perf_counter() - began
    assert [s.region_id for s in listed] == list(range(1, 1001))
    assert listed_in < 0.5, listed_in
    assert opened_in < 3.0, opened_in
    began = time.perf_counter()
    again.write_many([(rid, LogBatch(entries=ents(6, 7))) for rid in range(1, 1001)], True)
    assert time.perf_counter() - began < 2.0


# -- split, merge, destroy -----------------------------------------------------------------


def test_split_moves_no_data_and_founds_the_new_region(open_node: OpenNode) -> None:
    node = open_node()
    whole = region(1)
    node.create_region(RegionLocalState(1, region=whole), conf_state=VOTERS)
    put_keys(node, keys_in(region_scope(whole)))
    records_before = node.keyspace.count()
    left, right = split_region(whole, slot_bound(9000), 2, (21, 22, 23))
    with node.env.write() as wtx:
        node.stage_split(wtx, left, right, VOTERS)
    assert node.keyspace.count() == records_before + 1  # the new region's applied index
    node.close()
    again = open_node()
    assert again.state(1) == RegionLocalState(1, region=left)
    assert again.state(2) == RegionLocalState(2, region=right)
    assert again.applied_index(2) == RAFT_INIT_INDEX
    assert again.store(2).load().snapshot.metadata == SnapshotMetadata(5, 5, VOTERS)
    data_left = count_region(again.keyspace, region_scope(left))
    data_right = count_region(again.keyspace, region_scope(right))
    assert data_left + data_right == records_before + 1
    assert data_left > 0 and data_right > 1


def test_split_replaces_an_uninitialized_peer_but_not_an_initialized_one(
    open_node: OpenNode,
) -> None:
    node = open_node()
    whole = region(1)
    node.create_region(RegionLocalState(1, region=whole), conf_state=VOTERS)
    node.create_region(RegionLocalState(2))
    node.write_many([(2, LogBatch(hard_state=HardState(7, 3, 0)))], True)
    left, right = split_region(whole, slot_bound(9000), 2, (21, 22, 23))
    with node.env.write() as wtx:
        node.stage_split(wtx, left, right, VOTERS)
    assert node.state(2) == RegionLocalState(2, region=right)
    assert node.store(2).last_index() == RAFT_INIT_INDEX


def test_merge_tombstones_the_source_and_keeps_its_data(open_node: OpenNode) -> None:
    node = open_node()
    left, right = two_regions(node)
    put_keys(node, keys_in(WHOLE_KEYSPACE))
    node.write_many([(2, LogBatch(entries=ents(6, 9)))], True)
    total = node.keyspace.count()
    merged = Region(1, left.start, right.end, RegionEpoch(4, 2), left.peers)
    with node.env.write() as wtx:
        node.stage_merge(wtx, 2, merged)
    node.close()
    again = open_node()
    assert again.state(2) == RegionLocalState(2, PeerState.TOMBSTONE, right)
    assert raft_record_count(again, 2) == 0
    assert again.applied_index(2) == 0
    assert count_region(again.keyspace, region_scope(merged)) == total - 1
    again.verify()


def test_destroy_leaves_no_record_of_the_region(open_node: OpenNode) -> None:
    node = open_node()
    left, right = two_regions(node)
    put_keys(node, keys_in(WHOLE_KEYSPACE))
    node.write_many([(2, LogBatch(entries=ents(6, 40), hard_state=HardState(6, 1, 39)))], True)
    left_before = count_region(node.keyspace, region_scope(left))
    deleted = node.destroy_region(2, txn_records=7)
    assert deleted > 7
    assert raft_record_count(node, 2) == 0
    assert count_region(node.keyspace, region_scope(right)) == 0
    assert count_region(node.keyspace, region_scope(left)) == left_before
    assert node.state(2) == RegionLocalState(2, PeerState.TOMBSTONE, right)
    node.verify()


def test_a_tombstone_written_with_the_group_commit_removes_the_replica(
    open_node: OpenNode,
) -> None:
    """The region host removes a replica by writing its tombstone record in a group
    commit: its Raft and system records go with it, its data range is deleted, a node
    reopened after it verifies, and a new peer of the region created later starts with an
    empty log under the id it was given."""
    node = open_node()
    left, right = two_regions(node)
    put_keys(node, keys_in(WHOLE_KEYSPACE))
    left_before = count_region(node.keyspace, region_scope(left))
    node.write_many([(2, LogBatch(entries=ents(6, 40), hard_state=HardState(6, 1, 39)))], True)
    node.write_many([], True, [RegionLocalState(2, PeerState.TOMBSTONE, right)])
    assert raft_record_count(node, 2) == 0
    assert node.applied_index(2) == 0
    assert count_region(node.keyspace, region_scope(right)) == 0
    assert count_region(node.keyspace, region_scope(left)) == left_before
    assert node.state(2) == RegionLocalState(2, PeerState.TOMBSTONE, right)
    node.close()
    node = open_node()
    node.verify()
    node.write_many([], True, [RegionLocalState(2, peer_id=7001)])
    assert node.store(2).load().entries == ()
    assert node.store(2).load().hard_state == HardState()
    node.close()
    assert open_node().state(2) == RegionLocalState(2, peer_id=7001)


def test_a_tombstone_keeps_data_a_live_region_here_holds(open_node: OpenNode) -> None:
    """A removed replica whose range a live region here overlaps (a merge target, or a
    newer region of the range) leaves that data alone (what no region holds is replaced
    when a snapshot of its range is installed here)."""
    node = open_node()
    _, right = two_regions(node)
    put_keys(node, keys_in(WHOLE_KEYSPACE))
    right_before = count_region(node.keyspace, region_scope(right))
    stale = region(1, 0, 9000)
    node.write_many([], True, [RegionLocalState(1, PeerState.TOMBSTONE, stale)])
    assert raft_record_count(node, 1) == 0
    assert node.pending() == []
    assert count_region(node.keyspace, region_scope(right)) == right_before


@pytest.mark.parametrize("crash_after", [0, 1, 3])
def test_destroy_interrupted_by_a_crash_is_finished_after_reopen(
    open_node: OpenNode, crash_after: int
) -> None:
    node = open_node()
    left, right = two_regions(node)
    put_keys(node, keys_in(WHOLE_KEYSPACE))
    left_before = count_region(node.keyspace, region_scope(left))
    failpoints.enable(region_data.FP_DELETE_STEP, failpoints.Panic(), skip=crash_after)
    with pytest.raises(failpoints.FailpointPanic):
        node.destroy_region(2, txn_records=10)
    failpoints.reset()
    node.close()
    again = open_node()
    assert again.pending() == [RegionLocalState(2, PeerState.TOMBSTONE, right, True)]
    assert raft_record_count(again, 2) == 0
    again.finish_destroy(2)
    assert again.pending() == []
    assert count_region(again.keyspace, region_scope(right)) == 0
    assert count_region(again.keyspace, region_scope(left)) == left_before


def test_a_crash_before_the_tombstone_commits_leaves_the_region_whole(
    open_node: OpenNode,
) -> None:
    node = open_node()
    _, right = two_regions(node)
    put_keys(node, keys_in(WHOLE_KEYSPACE))
    node.write_many([(2, LogBatch(entries=ents(6, 9)))], True)
    before = count_region(node.keyspace, region_scope(right))
    failpoints.enable(FP_COMMIT, failpoints.Panic(), times=1)
    with pytest.raises(failpoints.FailpointPanic):
        node.destroy_region(2)
    node.close()
    again = open_node()
    assert again.state(2) == RegionLocalState(2, region=right)
    assert again.store(2).last_index() == 8
    assert count_region(again.keyspace, region_scope(right)) == before


# -- snapshots -----------------------------------------------------------------------------


def install_from(source: NodeStore, target: NodeStore, reg: Region) -> Snapshot:
    """Ship region `reg`'s data from `source` to `target` as a Raft snapshot (APPLYING)."""
    data = b"".join(source.snapshot_data(reg.id, chunk_bytes=300))
    index = source.applied_index(reg.id)
    snap = Snapshot(data=data, metadata=SnapshotMetadata(index, 6, VOTERS))
    applying = RegionLocalState(reg.id, PeerState.APPLYING, reg)
    target.write_many(
        [(reg.id, LogBatch(snapshot=snap, hard_state=HardState(6, 0, index)))], True, [applying]
    )
    return snap


@pytest.mark.parametrize("crash_after", [None, 0, 2])
def test_snapshot_install_survives_a_crash_and_reproduces_the_data(
    open_node: OpenNode, tmp_path: Path, crash_after: int | None
) -> None:
    source = open_node(tmp_path / "source")
    left, right = two_regions(source)
    put_keys(source, keys_in(WHOLE_KEYSPACE))
    with source.env.write() as wtx:
        source.keyspace.stage_put(wtx, Scope.region(2).applied_key, (42).to_bytes(8, "big"))
    target = open_node()
    target.create_region(RegionLocalState(2))  # created by a message: no range yet
    put_keys(target, [b"stale%d" % i for i in range(50)])
    install_from(source, target, right)
    if crash_after is not None:
        failpoints.enable(region_data.FP_INSTALL_STEP, failpoints.Panic(), skip=crash_after)
        with pytest.raises(failpoints.FailpointPanic):
            target.apply_snapshot(2, txn_records=20)
        failpoints.reset()
        target.close()
        target = open_node()
        assert [s.region_id for s in target.pending()] == [2]
    target.apply_snapshot(2, txn_records=20)
    assert target.state(2) == RegionLocalState(2, region=right)
    assert target.applied_index(2) == 42
    with source.keyspace.view() as a, target.keyspace.view() as b:
        want = list(iter_scope(a, region_scope(right)))
        got = list(iter_scope(b, region_scope(right)))
    assert got == want and len(want) > 100
    assert count_region(target.keyspace, region_scope(left)) > 0  # stale keys outside stay


def test_apply_snapshot_refuses_data_at_another_index(open_node: OpenNode, tmp_path: Path) -> None:
    source = open_node(tmp_path / "source")
    _, right = two_regions(source)
    put_keys(source, keys_in(region_scope(right), 60))
    with source.env.write() as wtx:
        source.keyspace.stage_put(wtx, Scope.region(2).applied_key, (42).to_bytes(8, "big"))
    data = b"".join(source.snapshot_data(2))
    target = open_node()
    target.create_region(RegionLocalState(2))
    snap = Snapshot(data=data, metadata=SnapshotMetadata(50, 6, VOTERS))
    target.write_many(
        [(2, LogBatch(snapshot=snap))], True, [RegionLocalState(2, PeerState.APPLYING, right)]
    )
    with pytest.raises(RegionDataError, match="applied index 42, its metadata at 50"):
        target.apply_snapshot(2)
    assert target.state(2) == RegionLocalState(2, PeerState.APPLYING, right)


# -- records, layouts ----------------------------------------------------------------------

peers_st = st.lists(st.integers(1, 2**40), min_size=0, max_size=4, unique=True)


@given(
    st.integers(0, 2**64 - 1),
    st.sampled_from(list(PeerState)),
    st.binary(max_size=12),
    st.binary(max_size=12),
    peers_st,
    st.booleans(),
)
def test_region_records_encode_and_decode(
    rid: int, state: PeerState, a: bytes, b: bytes, peer_ids: list[int], has_region: bool
) -> None:
    start, end = (a, b) if not b or a < b else (b, a) if a else (a, b)
    if end and start >= end:
        end = b""
    peers = tuple(Peer(p, n, PeerRole(n % 2)) for n, p in enumerate(peer_ids))
    reg = Region(rid, start, end, RegionEpoch(7, 9), peers) if has_region else None
    if reg is None and state is PeerState.APPLYING:
        state = PeerState.NORMAL
    pending = state is PeerState.TOMBSTONE and reg is not None
    rec = RegionLocalState(rid, state, reg, pending, 0 if reg is not None else rid % 5000)
    assert decode_state(rid, encode_state(rec)) == rec
    with pytest.raises(CorruptLogError):
        decode_state(rid ^ 1, encode_state(rec))


def test_single_group_and_regions_share_an_environment(data_dir: Path) -> None:
    single = LmdbLogStore.open(data_dir, 1, "test", LmdbOptions(map_size=SMALL_MAP))
    try:
        node = NodeStore(single.env)
        two_regions(node)
        node.write_many([(1, LogBatch(entries=ents(6, 9)))], True)
        single.write(LogBatch(entries=ents(1, 4, term=1), hard_state=HardState(1, 1, 3)), True)
        # A leader's snapshot drops the single group's whole log; the regions keep theirs.
        snap = Snapshot(metadata=SnapshotMetadata(50, 2, VOTERS))
        single.write(LogBatch(snapshot=snap, hard_state=HardState(2, 0, 50)), True)
        assert node.store(1).last_index() == 8
    finally:
        single.close()
    again = LmdbLogStore.open(data_dir, 1, "test", LmdbOptions(map_size=SMALL_MAP))
    try:
        assert again.first_index() == 51
        node = NodeStore(again.env)
        node.verify()
        assert [e.index for e in node.store(1).load().entries] == [6, 7, 8]
    finally:
        again.close()


def test_a_region_store_opened_during_a_group_commit_keeps_orphans_for_later(
    open_node: OpenNode,
) -> None:
    node = open_node()
    two_regions(node)
    writer = node.store(2).snapshot_writer()
    writer.write(b"half a snapshot")  # a stream that never finishes: an orphan chunk
    node.close()
    again = open_node()
    with again.env.write() as wtx:
        again.stage_many(wtx, [(2, LogBatch(entries=ents(6, 7)))])
    assert again.store(2).last_index() == 6
    again.close()
    last = open_node()
    keys = RaftKeys.region(last.env, 2)
    last.store(2)
    with last.env.read() as txn, txn.cursor(db=keys.state_db) as cur:
        assert not cur.set_range(keys.chunk_prefix) or not cur.key().startswith(keys.chunk_prefix)
