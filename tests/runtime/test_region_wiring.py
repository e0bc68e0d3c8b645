"""The real node's multi-raft wiring, without processes: the founding layout, envelopes on
the wire (plain and chunked over two real `TcpTransport`s), RESP2 reply decoding, and the
host store over LMDB."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.env import LogBatch
from cairn.env.host_store import PeerState, RegionRecord
from cairn.meta.region import Peer, RegionEpoch, bound_slot, range_key
from cairn.raft.types import (
    LOCAL_MESSAGES,
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from cairn.resp.encoder import encode
from cairn.resp.reply import NULL, NULL_ARRAY, Array, Bulk, ErrorReply, Integer, Reply, SimpleString
from cairn.runtime.envelope_codec import TcpHostTransport, decode_envelope, encode_envelope
from cairn.runtime.frames import FrameError
from cairn.runtime.host_store import LmdbHostStore, RegionCreationError, found_regions
from cairn.runtime.range_store import SplitRefusedError, StoreRangeMachine
from cairn.runtime.region_layout import (
    PEER_ID_STRIDE,
    LayoutError,
    initial_layout,
    peer_id,
    peer_node,
)
from cairn.runtime.reply_decode import ReplyDecodeError, decode_reply
from cairn.runtime.transport import TcpTransport, TransportConfig
from cairn.shard.envelope import Envelope, EnvelopeKind
from cairn.shard.replica import encode_request
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.store.machine import encode_command
from cairn.store.slot import SLOT_COUNT, key_slot

# -- the founding layout -------------------------------------------------------------------


@settings(deadline=None, max_examples=50)
@given(
    st.integers(1, 300) | st.sampled_from([SLOT_COUNT - 1, SLOT_COUNT]),
    st.sets(st.integers(1, PEER_ID_STRIDE - 1), min_size=1, max_size=5),
)
def test_layout_covers_every_slot_once_evenly_with_a_peer_per_node(
    count: int, nodes: set[int]
) -> None:
    regions = initial_layout(nodes, count)
    assert [r.id for r in regions] == list(range(1, count + 1))
    assert regions[0].start == b"" and regions[-1].end == b""
    for left, right in itertools.pairwise(regions):
        assert left.end == right.start and len(left.end) == 2  # cut at a slot boundary
    sizes = [bound_slot(r.end, end=True) - bound_slot(r.start) for r in regions]
    assert sum(sizes) == SLOT_COUNT and max(sizes) - min(sizes) <= 1
    for r in regions:
        assert sorted(p.node_id for p in r.peers) == sorted(nodes)
        assert all(
            peer_node(p.id) == p.node_id and p.id == peer_id(r.id, p.node_id) for p in r.peers
        )


def test_layout_is_the_same_on_every_founding_node_and_peer_ids_are_unique() -> None:
    assert initial_layout([3, 1, 2], 16) == initial_layout((1, 2, 3), 16)
    ids = [p.id for r in initial_layout([1, 2, 3], 1000) for p in r.peers]
    assert len(ids) == len(set(ids)) == 3000


def test_every_key_falls_in_the_region_of_its_slot() -> None:
    regions = initial_layout([1], 7)
    for key in (b"a", b"foo", b"{user}:1", b"zzz"):
        (owner,) = [r for r in regions if r.contains(range_key(key))]
        assert bound_slot(owner.start) <= key_slot(key) < bound_slot(owner.end, end=True)


@pytest.mark.parametrize(
    ("nodes", "count"), [([1], 0), ([1], SLOT_COUNT + 1), ([0], 1), ([1000], 1)]
)
def test_impossible_layouts_are_refused(nodes: list[int], count: int) -> None:
    with pytest.raises(LayoutError):
        initial_layout(nodes, count)


# -- envelopes -------------------------------------------------------------------------------

small = st.integers(0, 2**40)
entry_data = st.builds(
    lambda rid, key: encode_request(rid, encode_command("set", [key, b"v"], 1)),
    st.binary(max_size=4),
    st.binary(max_size=4),
)  # what a region's normal entry carries (anything else is refused at the edge)
messages = st.builds(
    Message,
    type=st.sampled_from([t for t in MessageType if t not in LOCAL_MESSAGES]),
    to=small,
    frm=small,
    term=small,
    index=small,
    entries=st.lists(
        st.builds(Entry, term=small, index=small, data=st.just(b"") | entry_data), max_size=2
    ).map(tuple),
    commit=small,
    snapshot=st.none()
    | st.builds(
        Snapshot,
        data=st.binary(max_size=32),
        metadata=st.builds(
            SnapshotMetadata, index=small, term=small, conf_state=st.just(ConfState(voters=(1, 2)))
        ),
    ),
)
envelopes = st.builds(
    Envelope,
    kind=st.sampled_from(EnvelopeKind),
    region_id=small,
    from_peer=st.builds(Peer, small, small),
    to_peer=st.builds(Peer, small, small),
    epoch=st.builds(RegionEpoch, small, small),
    start=st.binary(max_size=6),
    end=st.binary(max_size=6),
    message=st.none() | messages,
    term=small,
    commit=small,
)


@given(envelopes)
def test_envelopes_round_trip_through_msgpack(env: Envelope) -> None:
    packed = msgpack.packb(encode_envelope(env), use_bin_type=True)
    assert decode_envelope(msgpack.unpackb(packed, raw=False)) == env


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        [0] * 12,
        [99, 1, 1, 1, 1, 1, 1, 1, b"", b"", None, 0, 0],
        [0, 1, 1, 1, 1, 1, 1, 1, "s", b"", None, 0, 0],
    ],
)
def test_malformed_envelopes_are_frame_errors(bad: object) -> None:
    with pytest.raises(FrameError):
        decode_envelope(bad)


def test_envelopes_cross_real_tcp_transports_plain_and_chunked() -> None:
    async def main() -> list[Envelope]:
        config = TransportConfig(cluster_id="t", snapshot_chunk=64)
        a = TcpTransport(1, ("127.0.0.1", 0), {}, config)
        await a.start()
        b = TcpTransport(2, ("127.0.0.1", 0), {1: a.bound_address}, config)
        await b.start()
        a.add_peer(2, b.bound_address)
        got: list[Envelope] = []
        TcpHostTransport(a).set_handler(got.extend)
        sender = TcpHostTransport(b)
        while not b.connected(1) or not a.connected(2):
            await asyncio.sleep(0.01)
        snap = Snapshot(
            data=bytes(range(256)) * 3,
            metadata=SnapshotMetadata(9, 2, ConfState(voters=(1001, 1002))),
        )
        plain = Envelope(EnvelopeKind.QUIESCE, 4, Peer(4002, 2), Peer(4001, 1), term=3, commit=7)
        big = Envelope(
            EnvelopeKind.RAFT, 4, Peer(4002, 2), Peer(4001, 1),
            message=Message(MessageType.SNAP, to=4001, frm=4002, term=2, snapshot=snap),
        )  # fmt: skip
        sender.send(1, [plain, big])
        for _ in range(200):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        await a.stop()
        await b.stop()
        return got

    got = asyncio.run(main())
    assert [e.kind for e in got] == [EnvelopeKind.QUIESCE, EnvelopeKind.RAFT]
    assert got[0].commit == 7
    assert got[1].message is not None and got[1].message.snapshot is not None
    assert got[1].message.snapshot.data == bytes(range(256)) * 3


# -- RESP2 replies ----------------------------------------------------------------------

leaves = st.one_of(
    st.builds(Integer, st.integers(-(2**63), 2**63 - 1)),
    st.builds(Bulk, st.binary(max_size=20)),
    st.builds(SimpleString, st.text("abcXYZ ", max_size=10)),
    st.builds(ErrorReply, st.text("ERR bad", min_size=1, max_size=10)),
    st.just(NULL),
    st.just(NULL_ARRAY),
)
replies = st.recursive(
    leaves, lambda inner: st.builds(Array, st.lists(inner, max_size=4).map(tuple)), max_leaves=12
)


@given(replies)
def test_resp2_replies_decode_to_what_was_encoded(reply: Reply) -> None:
    assert decode_reply(encode(reply, 2)) == reply


@pytest.mark.parametrize(
    "bad", [b"", b":1", b"$3\r\nab\r\n", b"*2\r\n:1\r\n", b"%1\r\n", b":1\r\n:2\r\n", b":x\r\n"]
)
def test_broken_replies_are_refused(bad: bytes) -> None:
    with pytest.raises(ReplyDecodeError):
        decode_reply(bad)


# -- the host store over LMDB -------------------------------------------------------------


def test_host_store_lists_founded_regions_and_group_writes(tmp_path: Path) -> None:
    store = NodeStore.open(tmp_path, 2, "c")
    layout = initial_layout([1, 2, 3], 4)
    found_regions(store, layout, RAFT_INIT_INDEX)
    failures: list[Exception] = []
    host_store = LmdbHostStore(store, 2, failures.append)
    records = host_store.records()
    assert [(r.region_id, r.peer_id, r.state) for r in records] == [
        (i, i * 1000 + 2, PeerState.NORMAL) for i in (1, 2, 3, 4)
    ]
    assert records[2].region == layout[2]
    loaded = host_store.load(3)
    assert loaded.snapshot.metadata.index == RAFT_INIT_INDEX
    assert loaded.snapshot.metadata.conf_state.voters == (3001, 3002, 3003)
    entries = (Entry(term=6, index=6, data=b"x"),)
    batches = [
        (i, LogBatch(entries=entries, hard_state=HardState(term=6, commit=5))) for i in (1, 4)
    ]
    host_store.write_many(batches, sync=True)
    assert host_store.load(1).entries == entries and host_store.load(4).entries == entries
    assert host_store.load(2).entries == ()
    tomb = RegionRecord(4, 4002, PeerState.TOMBSTONE, layout[3])
    host_store.write_many([], sync=True, records=[tomb])
    assert host_store.records()[3].state is PeerState.TOMBSTONE
    assert host_store.load(9).is_empty()
    with pytest.raises(RegionCreationError):
        host_store.write_many([(9, LogBatch(entries=entries))], sync=False)
    store.close()
    reopened = NodeStore.open(tmp_path, 2, "c")
    assert [s.region_id for s in reopened.live()] == [1, 2, 3]
    assert LmdbHostStore(reopened, 2).load(1).entries == entries
    reopened.close()
    assert failures == []


def test_a_failed_group_write_is_reported_then_raised(tmp_path: Path) -> None:
    store = NodeStore.open(tmp_path, 1, "c")
    found_regions(store, initial_layout([1], 1), RAFT_INIT_INDEX)
    failures: list[Exception] = []
    host_store = LmdbHostStore(store, 1, failures.append)
    store.env.close()
    with pytest.raises(Exception) as caught:
        host_store.write_many([(1, LogBatch(entries=(Entry(term=6, index=6),)))], sync=True)
    assert failures == [caught.value]


def test_region_machines_share_the_keyspace_within_their_ranges(tmp_path: Path) -> None:
    store = NodeStore.open(tmp_path, 1, "c")
    left, right = initial_layout([1], 2)
    found_regions(store, [left, right], RAFT_INIT_INDEX)
    a = StoreRangeMachine(store.keyspace, 1, left)
    b = StoreRangeMachine(store.keyspace, 2, right)
    assert a.durable and a.applied_index == b.applied_index == RAFT_INIT_INDEX
    key_a = next(k for k in (b"k%d" % i for i in range(100)) if left.contains(range_key(k)))
    key_b = next(k for k in (b"k%d" % i for i in range(100)) if right.contains(range_key(k)))
    assert a.keys_of(encode_command("mset", [key_a, b"1", key_b, b"2"], 0)) == [key_a, key_b]
    assert a.keys_of(b"junk") == ()
    assert a.apply(6, encode_command("set", [key_a, b"1"], 0)) is not None
    b.apply(6, encode_command("set", [key_b, b"2"], 0))
    assert (a.store.key_count(), b.store.key_count()) == (1, 1)
    assert a.store.execute_read("get", [key_a], 0) == Bulk(b"1")
    image = b.snapshot()
    c = StoreRangeMachine(store.keyspace, 2, right)
    c.restore(image)
    assert c.store.execute_read("get", [key_b], 0) == Bulk(b"2")
    with pytest.raises(SplitRefusedError):
        a.split_off(lambda k: True, 5)
    with pytest.raises(SplitRefusedError):
        a.absorb(image)
    store.close()
