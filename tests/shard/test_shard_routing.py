"""Routing decisions: run here, forward, MOVED, region-by-region fanout and merge, CROSSSLOT.

The layout used throughout: region 1 holds slots 0..8191 and is led by node 1, region 2
holds the rest and is led by node 2; every node hosts a peer of both. `foo` (slot 12182)
and `a` (15495) fall in region 2, `bar` (5061) and `b` (3300) in region 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.meta.region import Peer, Region, RegionEpoch, range_key, slot_bound
from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Reply
from cairn.shard.routing import (
    CROSSSLOT,
    SLOT_NOT_SERVED,
    ClientRouting,
    Fanout,
    Forward,
    Local,
    Merge,
    Moved,
    NoRoute,
    Redirect,
    Refuse,
    RoutingPolicy,
    merge,
    observe,
    route,
)
from cairn.shard.topology import NodeAddress, Topology
from cairn.store import COMMANDS
from cairn.store.slot import key_slot

ADDRESSES = {n: NodeAddress(f"10.0.0.{n}", 6379, 16379) for n in (1, 2, 3)}
AWARE = ClientRouting(cluster_aware=True)
PLAIN = ClientRouting()
DEFAULT = RoutingPolicy()
EPOCH = RegionEpoch(3, 2)
R1 = Region(1, b"", slot_bound(8192), EPOCH, (Peer(11, 1), Peer(12, 2), Peer(13, 3)))
R2 = Region(2, slot_bound(8192), b"", EPOCH, (Peer(21, 2), Peer(22, 3), Peer(23, 1)))


def layout(my_id: int = 1, leaders: dict[int, int] | None = None) -> Topology:
    lead = {1: 1, 2: 2} if leaders is None else leaders
    return Topology([R1, R2], lead, ADDRESSES, my_id, "test")


def decide(
    *argv: bytes,
    topo: Topology | None = None,
    client: ClientRouting = PLAIN,
    policy: RoutingPolicy = DEFAULT,
) -> object:
    spec = COMMANDS[argv[0].decode().lower()]
    return route(list(argv), spec, topo or layout(), client, policy)


def test_the_fixture_keys_are_where_the_doc_says() -> None:
    assert [key_slot(k) for k in (b"foo", b"a", b"bar", b"b")] == [12182, 15495, 5061, 3300]


# -- one region ---------------------------------------------------------------------------


def test_a_key_whose_region_this_node_leads_runs_here() -> None:
    assert decide(b"GET", b"bar") == Local(R1)
    assert decide(b"SET", b"bar", b"1", client=AWARE) == Local(R1)


def test_a_plain_client_is_forwarded_never_redirected() -> None:
    assert decide(b"GET", b"foo") == Forward(R2, 2)
    always = RoutingPolicy(redirect=Redirect.ALWAYS)
    assert decide(b"GET", b"foo", policy=always) == Moved(12182, ADDRESSES[2])


def test_a_cluster_aware_client_is_redirected_to_the_slots_leader() -> None:
    moved = decide(b"GET", b"foo", client=AWARE)
    assert moved == Moved(12182, ADDRESSES[2])
    assert isinstance(moved, Moved)
    assert moved.reply == ErrorReply("MOVED 12182 10.0.0.2:6379")


def test_redirect_never_forwards_even_cluster_clients() -> None:
    never = RoutingPolicy(redirect=Redirect.NEVER)
    assert decide(b"GET", b"foo", client=AWARE, policy=never) == Forward(R2, 2)


def test_without_a_known_leader_nobody_is_redirected() -> None:
    topo = layout(leaders={1: 1})
    assert decide(b"GET", b"foo", topo=topo, client=AWARE) == Forward(R2, None)


def test_forwarding_carries_the_epoch_the_leader_checks() -> None:
    decision = decide(b"INCR", b"foo")
    assert isinstance(decision, Forward) and decision.region.epoch == EPOCH


def test_multi_key_commands_in_one_region_run_whole_even_across_slots() -> None:
    assert key_slot(b"foo") != key_slot(b"a")
    assert decide(b"MSET", b"foo", b"1", b"a", b"2", topo=layout(my_id=2)) == Local(R2)
    assert decide(b"MSET", b"foo", b"1", b"a", b"2") == Forward(R2, 2)
    moved = decide(b"MSET", b"a", b"1", b"foo", b"2", client=AWARE)
    assert moved == Moved(key_slot(b"a"), ADDRESSES[2])


def test_readonly_clients_reading_from_a_replica_are_not_bounced() -> None:
    readonly = observe(PLAIN, [b"READONLY"])
    assert decide(b"GET", b"foo", client=readonly) == Forward(R2, 2)
    assert decide(b"SET", b"foo", b"v", client=readonly) == Moved(12182, ADDRESSES[2])
    follower = RoutingPolicy(follower_reads=True)
    assert decide(b"GET", b"foo", client=readonly, policy=follower) == Local(R2, follower=True)
    assert decide(b"GET", b"foo", client=AWARE, policy=follower) == Moved(12182, ADDRESSES[2])


# -- a slot split inside ------------------------------------------------------------------


def split_slot_layout(my_id: int) -> tuple[Topology, Region, Region]:
    cut = range_key(b"{foo}m")
    left = Region(1, b"", cut, EPOCH, (Peer(11, 1), Peer(12, 2)))
    right = Region(2, cut, b"", EPOCH, (Peer(21, 2), Peer(22, 1)))
    return Topology([left, right], {1: 1, 2: 2}, ADDRESSES, my_id, "t"), left, right


def test_keys_past_a_split_inside_a_slot_are_forwarded_by_the_slots_owner() -> None:
    topo, _, right = split_slot_layout(my_id=1)
    assert topo.owner(key_slot(b"{foo}z")) is not right
    assert decide(b"GET", b"{foo}z", topo=topo, client=AWARE) == Forward(right, 2)


def test_moved_always_names_the_slot_owner_so_clients_never_ping_pong() -> None:
    topo, left, right = split_slot_layout(my_id=2)
    slot = key_slot(b"foo")
    assert topo.owner(slot) == left
    assert decide(b"GET", b"{foo}a", topo=topo, client=AWARE) == Moved(slot, ADDRESSES[1])
    assert decide(b"GET", b"{foo}z", topo=topo, client=AWARE) == Local(right)
    owner_view, _, _ = split_slot_layout(my_id=1)
    assert decide(b"GET", b"{foo}z", topo=owner_view, client=AWARE) == Forward(right, 2)


# -- several regions ----------------------------------------------------------------------


def test_keys_in_several_regions_answer_crossslot_for_atomic_commands() -> None:
    for argv in (
        (b"MSET", b"foo", b"1", b"bar", b"2"),
        (b"MSETNX", b"foo", b"1", b"bar", b"2"),
        (b"RENAME", b"foo", b"bar"),
        (b"RENAMENX", b"foo", b"bar"),
    ):
        assert decide(*argv, client=AWARE) == Refuse(CROSSSLOT), argv
    assert CROSSSLOT.message == "CROSSSLOT Keys in request don't hash to the same slot"


def test_no_split_policy_refuses_every_cross_region_command() -> None:
    strict = RoutingPolicy(split=frozenset())
    assert decide(b"MGET", b"foo", b"bar", policy=strict) == Refuse(CROSSSLOT)


def test_mget_is_split_by_region_keeping_key_order() -> None:
    decision = decide(b"MGET", b"foo", b"bar", b"a", b"b", b"foo")
    assert isinstance(decision, Fanout)
    assert decision.merge is Merge.BY_POSITION and decision.key_count == 5
    (first, second) = decision.parts
    assert first.target == Forward(R2, 2)
    assert first.argv == (b"MGET", b"foo", b"a", b"foo") and first.positions == (0, 2, 4)
    assert second.target == Local(R1)
    assert second.argv == (b"MGET", b"bar", b"b") and second.positions == (1, 3)
    replies: list[Reply] = [
        Array((Bulk(b"F"), NULL, Bulk(b"F"))),
        Array((Bulk(b"B"), Bulk(b"b"))),
    ]
    merged = merge(decision, replies)
    assert merged == Array((Bulk(b"F"), Bulk(b"B"), NULL, Bulk(b"b"), Bulk(b"F")))


@pytest.mark.parametrize("name", [b"DEL", b"UNLINK", b"EXISTS", b"TOUCH"])
def test_counting_commands_are_split_and_summed(name: bytes) -> None:
    decision = decide(name, b"foo", b"bar", b"foo", client=AWARE)
    assert isinstance(decision, Fanout) and decision.merge is Merge.SUM
    assert [p.argv for p in decision.parts] == [(name, b"foo", b"foo"), (name, b"bar")]
    assert merge(decision, [Integer(2), Integer(1)]) == Integer(3)


def test_an_error_from_any_part_is_the_answer() -> None:
    decision = decide(b"DEL", b"foo", b"bar")
    assert isinstance(decision, Fanout)
    tryagain = ErrorReply("TRYAGAIN no leader")
    assert merge(decision, [Integer(1), tryagain]) == tryagain
    wrong = merge(decision, [Integer(1), Bulk(b"x")])
    assert isinstance(wrong, ErrorReply) and "unexpected" in wrong.message
    with pytest.raises(ValueError):
        merge(decision, [Integer(1)])


def mget_model(data: dict[bytes, bytes], keys: Sequence[bytes]) -> Reply:
    return Array(tuple(Bulk(data[k]) if k in data else NULL for k in keys))


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=3), st.binary(max_size=3), max_size=6),
    st.lists(st.binary(max_size=3), min_size=1, max_size=10),
)
def test_split_mget_and_exists_answer_what_one_region_would(
    data: dict[bytes, bytes], keys: list[bytes]
) -> None:
    topo = layout()
    for name in (b"MGET", b"EXISTS"):
        decision = route([name, *keys], COMMANDS[name.decode().lower()], topo)
        if not isinstance(decision, Fanout):
            assert isinstance(decision, Local | Forward)
            assert len({topo.region_of(k) for k in keys}) == 1
            continue
        assert sorted(i for p in decision.parts for i in p.positions) == list(range(len(keys)))
        replies: list[Reply] = []
        for part in decision.parts:
            assert isinstance(part.target, Local | Forward)
            region = part.target.region
            assert all(region.contains_key(k) for k in part.argv[1:])
            part_keys = part.argv[1:]
            if name == b"MGET":
                replies.append(mget_model(data, part_keys))
            else:
                replies.append(Integer(sum(k in data for k in part_keys)))
        expected = (
            mget_model(data, keys) if name == b"MGET" else Integer(sum(k in data for k in keys))
        )
        assert merge(decision, replies) == expected


# -- gaps and keyless commands ------------------------------------------------------------


def test_a_key_in_a_gap_has_no_route_until_the_map_fills() -> None:
    topo = Topology([R1], {1: 1}, ADDRESSES, 1, "t")
    assert decide(b"GET", b"foo", topo=topo) == NoRoute(12182)
    assert NoRoute(1).reply == SLOT_NOT_SERVED
    assert SLOT_NOT_SERVED.message == "CLUSTERDOWN Hash slot not served"
    assert decide(b"DBSIZE", topo=topo) == NoRoute(8192)


def test_keyless_commands_with_one_region_route_like_a_key() -> None:
    whole = Region(1, peers=(Peer(1, 1), Peer(2, 2)))
    here = Topology([whole], {1: 1}, ADDRESSES, 1, "t")
    there = Topology([whole], {1: 1}, ADDRESSES, 2, "t")
    assert decide(b"DBSIZE", topo=here) == Local(whole)
    assert decide(b"FLUSHALL", topo=there, client=AWARE) == Forward(whole, 1)


def test_keyless_commands_fan_out_to_every_region() -> None:
    dbsize = decide(b"DBSIZE")
    assert isinstance(dbsize, Fanout) and dbsize.merge is Merge.SUM
    assert [p.target for p in dbsize.parts] == [Local(R1), Forward(R2, 2)]
    assert merge(dbsize, [Integer(3), Integer(4)]) == Integer(7)
    keys = decide(b"KEYS", b"*")
    assert isinstance(keys, Fanout) and keys.parts[1].argv == (b"KEYS", b"*")
    merged = merge(keys, [Array((Bulk(b"b"),)), Array((Bulk(b"a"), Bulk(b"foo")))])
    assert merged == Array((Bulk(b"b"), Bulk(b"a"), Bulk(b"foo")))
    flush = decide(b"FLUSHDB")
    assert isinstance(flush, Fanout) and merge(flush, [OK, OK]) == OK
    random_key = decide(b"RANDOMKEY")
    assert isinstance(random_key, Fanout)
    assert merge(random_key, [NULL, Bulk(b"a")]) == Bulk(b"a")
    assert merge(random_key, [NULL, NULL]) == NULL


def test_scan_goes_to_the_region_holding_its_cursor() -> None:
    assert decide(b"SCAN", b"0") == Local(R1), "cursor 0 starts at slot 0"
    assert decide(b"SCAN", b"8191", b"COUNT", b"5") == Local(R1)
    assert decide(b"SCAN", b"8192") == Forward(R2, 2), "a slot cursor names its slot"
    after_foo = int.from_bytes(b"\x01" + key_slot(b"foo").to_bytes(2, "big") + b"foo", "big")
    assert decide(b"SCAN", str(after_foo).encode()) == Forward(R2, 2)
    assert decide(b"SCAN", b"notanumber") == Local(R1), "region 1 answers the cursor error"


# -- awareness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "aware"),
    [
        ([b"CLUSTER", b"SLOTS"], True),
        ([b"cluster", b"shards"], True),
        ([b"CLUSTER", b"NODES"], True),
        ([b"CLUSTER", b"INFO"], False),
        ([b"CLUSTER", b"KEYSLOT", b"x"], False),
        ([b"CLUSTER", b"SLOTS", b"extra"], False),
        ([b"READWRITE"], True),
        ([b"ASKING"], True),
        ([b"GET", b"x"], False),
        ([b"CLIENT", b"SETINFO", b"LIB-NAME", b"redis-py"], False),
    ],
)
def test_what_makes_a_connection_cluster_aware(argv: list[bytes], aware: bool) -> None:
    assert observe(PLAIN, argv).cluster_aware is aware


def test_readonly_lasts_until_readwrite_and_awareness_stays() -> None:
    state = observe(PLAIN, [b"READONLY"])
    assert state == ClientRouting(cluster_aware=True, readonly=True)
    assert observe(state, [b"ASKING"]).readonly
    assert observe(state, [b"READWRITE"]) == ClientRouting(cluster_aware=True)
    assert observe(AWARE, [b"GET", b"k"]) is AWARE
