"""Region-scoped machines: the union of regions answers like one machine, out-of-range keys
are refused, counts are exact, SCAN crosses regions, images cover exactly the range."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from region_harness import Regions, assert_counts_exact, data_records, is_refusal, region_scopes

from cairn.resp.reply import OK, Array, Bulk, Integer, NullBulk
from cairn.store import (
    ImageError,
    KeyOutOfRangeError,
    MemoryKeyspace,
    Scope,
    StoreMachine,
    encode_command,
)
from cairn.store.commands.scan import cursor_range_key, end_cursor, key_position
from cairn.store.layout import META_TAG, region_key
from cairn.store.ranges import owns
from cairn.store.scope import range_key

T0 = 1_700_000_000_000

# Keys in a few slots; "{a}" and "{b}" keys share a slot each, so a bound can fall inside.
KEYS = [b"{a}1", b"{a}2", b"{a}33", b"{b}x", b"{b}yy", b"c", b"d", b"e", b"f", b"g"]
RKEYS = sorted(range_key(k) for k in KEYS)
BOUND_CANDIDATES = sorted(
    {rk[:2] for rk in RKEYS if rk[:2] != b"\0\0"}
    | {range_key(b"{a}2"), range_key(b"{a}33"), range_key(b"{b}yy")}
)

key_st = st.sampled_from(KEYS)
value_st = st.sampled_from([b"1", b"22", b"x", b"-5"])
field_st = st.sampled_from([b"f1", b"f2", b"f3"])

command_st = st.one_of(
    st.tuples(st.just("set"), key_st, value_st),
    st.tuples(st.just("set"), key_st, value_st, st.just(b"PX"), st.sampled_from([b"5", b"50"])),
    st.tuples(st.just("del"), key_st),
    st.tuples(st.just("incr"), key_st),
    st.tuples(st.just("append"), key_st, value_st),
    st.tuples(st.just("getdel"), key_st),
    st.tuples(st.just("hset"), key_st, field_st, value_st),
    st.tuples(st.just("hdel"), key_st, field_st),
    st.tuples(st.just("pexpire"), key_st, st.sampled_from([b"0", b"10", b"1000"])),
    st.tuples(st.just("persist"), key_st),
    st.tuples(st.just("rename"), key_st, key_st),
    st.tuples(st.just("flushdb")),
    st.tuples(st.just("advance"), st.sampled_from([1, 7, 30])),
)

READS = [("get", 1), ("type", 1), ("pttl", 1), ("hgetall", 1), ("exists", 1)]


def _compare_reads(whole: StoreMachine, regions: Regions, now: int) -> None:
    for key in KEYS:
        for name, _ in READS:
            assert regions.call(name, [key], now) == whole.execute_read(name, [key], now), (
                name,
                key,
            )
    assert regions.call("dbsize", [], now) == whole.execute_read("dbsize", [], now)
    ours = regions.call("keys", [b"*"], now)
    theirs = whole.execute_read("keys", [b"*"], now)
    assert isinstance(ours, Array) and isinstance(theirs, Array)
    assert ours.items == theirs.items  # regions in order give (slot, key) order too
    for count in (1, 3, 100):
        scanned = regions.scan_all(now, count)
        assert sorted(scanned) == sorted(i.value for i in theirs.items if isinstance(i, Bulk))


@settings(max_examples=60, deadline=None)
@given(
    bounds=st.lists(st.sampled_from(BOUND_CANDIDATES), min_size=1, max_size=4, unique=True),
    commands=st.lists(command_st, max_size=40),
)
def test_union_of_regions_answers_like_one_machine(
    bounds: list[bytes], commands: list[tuple[object, ...]]
) -> None:
    whole = StoreMachine()
    regions = Regions(sorted(bounds))
    now, index = T0, 0
    for command in commands:
        name, args = str(command[0]), [a for a in command[1:] if isinstance(a, bytes)]
        if name == "advance":
            now += int(command[1])  # type: ignore[call-overload]
            continue
        if name == "rename" and not regions.same_region(args):
            continue
        index += 1
        expected = whole.apply(index, encode_command(name, args, now))
        assert regions.call(name, args, now) == expected, command
    _compare_reads(whole, regions, now)
    assert data_records(regions.keyspace) == data_records(whole.keyspace)  # type: ignore[arg-type]
    for machine in regions.machines:
        assert_counts_exact(machine)


def test_out_of_range_keys_are_refused_before_any_write() -> None:
    bound = range_key(b"{a}2")
    left, right = Regions([bound]).machines
    space = left.keyspace
    assert left.apply(1, encode_command("set", [b"{a}1", b"v"], T0)) == OK
    before = dict(space.scan(b"", b"X"))
    assert is_refusal(left.apply(2, encode_command("set", [b"{a}2", b"v"], T0)))
    assert is_refusal(left.apply(3, encode_command("rename", [b"{a}1", b"{a}2"], T0)))
    assert is_refusal(left.apply(4, encode_command("del", [b"{a}1", b"{a}33"], T0)))
    assert dict(space.scan(b"", b"X")) == before
    assert left.applied_index == 4
    assert is_refusal(left.execute_read("get", [b"{a}2"], T0))
    assert right.execute_read("get", [b"{a}2"], T0) == NullBulk()
    with pytest.raises(KeyOutOfRangeError) as raised:
        left.check_command("mget", [b"{a}1", b"{a}33"])
    assert raised.value.key == b"{a}33"
    left.check_command("get", [b"{a}1"])


def test_scan_cursor_outside_the_region_is_refused() -> None:
    left, right = Regions([range_key(b"{b}x")]).machines
    assert is_refusal(right.execute_read("scan", [b"0"], T0))
    with pytest.raises(KeyOutOfRangeError):
        right.check_command("scan", [b"0"])
    reply = left.execute_read("scan", [b"0"], T0)
    assert isinstance(reply, Array)


def test_end_cursor_names_the_next_regions_start() -> None:
    assert end_cursor(Scope.region(1, b"", b"")) == 0
    slot_end = Scope.region(1, b"", (700).to_bytes(2, "big"))
    assert end_cursor(slot_end) == 700
    inner = range_key(b"{a}2")
    cursor = end_cursor(Scope.region(1, b"", inner))
    assert key_position(cursor) == META_TAG + inner
    assert cursor_range_key(b"%d" % cursor) == inner
    assert cursor_range_key(b"0") == b"\0\0"
    assert cursor_range_key(b"nope") is None


def test_region_records_are_keyed_by_region_id() -> None:
    machine = StoreMachine(scope=Scope.region(9))
    machine.apply(4, encode_command("set", [b"k", b"v"], T0))
    space = machine.keyspace
    assert space.get(region_key(9, b"applied")) == (4).to_bytes(8, "big")
    assert space.get(region_key(9, b"now")) == T0.to_bytes(8, "big")
    assert space.get(region_key(9, b"keys")) == (1).to_bytes(8, "big")
    assert space.get(b"Xapplied") is None


def test_flushdb_clears_only_its_region() -> None:
    regions = Regions([range_key(b"{a}33")])
    for key in KEYS:
        regions.call("hset", [key, b"f", b"v"], T0)
    left, right = regions.machines
    right_keys = right.execute_read("keys", [b"*"], T0)
    assert regions.write(left, "flushdb", [], T0) == OK
    assert left.execute_read("dbsize", [], T0) == Integer(0)
    assert left.execute_read("keys", [b"*"], T0) == Array(())
    assert right.execute_read("keys", [b"*"], T0) == right_keys
    assert_counts_exact(left)
    assert_counts_exact(right)


def test_expired_keys_stay_in_the_region() -> None:
    regions = Regions([range_key(b"d")])
    for key in KEYS:
        regions.call("set", [key, b"v", b"PX", b"5"], T0)
    for machine in regions.machines:
        found = machine.expired_keys(T0 + 10, 100)
        assert found and all(machine.scope.contains(range_key(k)) for k in found)
    assert sum(len(m.expired_keys(T0 + 10, 100)) for m in regions.machines) == len(KEYS)


def test_randomkey_answers_a_key_of_the_region() -> None:
    regions = Regions([range_key(b"d")])
    for key in KEYS:
        regions.call("set", [key, b"v"], T0)
    for machine in regions.machines:
        reply = machine.execute_read("randomkey", [], T0)
        assert isinstance(reply, Bulk) and machine.scope.contains(range_key(reply.value))


def test_snapshot_restore_covers_exactly_the_range() -> None:
    regions = Regions([range_key(b"{a}33"), range_key(b"d")])
    for key in KEYS:
        regions.call("hset", [key, b"f", b"v"], T0)
        regions.call("set", [key + b"s", b"v"], T0)
    middle = regions.machines[1]
    image = middle.snapshot()
    before = dict(regions.keyspace.scan(b""))
    regions.write(middle, "flushdb", [], T0 + 1)
    for key in KEYS:
        regions.call("set", [key, b"changed"], T0 + 2)
    others = {k: v for k, v in regions.keyspace.scan(b"") if not _owned(middle.scope, k)}
    middle.restore(image)
    after = dict(regions.keyspace.scan(b""))
    assert {k: v for k, v in after.items() if _owned(middle.scope, k)} == {
        k: v for k, v in before.items() if _owned(middle.scope, k)
    }
    assert {k: v for k, v in after.items() if not _owned(middle.scope, k)} == others
    assert middle.applied_index == int.from_bytes(before[middle.scope.applied_key], "big")
    assert_counts_exact(middle)


def _owned(scope: Scope, key: bytes) -> bool:
    return owns(scope, key)


def test_restore_refuses_a_foreign_image_and_changes_nothing() -> None:
    regions = Regions([range_key(b"d")])
    for key in KEYS:
        regions.call("set", [key, b"v"], T0)
    left, right = regions.machines
    before = dict(regions.keyspace.scan(b""))
    with pytest.raises(ImageError):
        left.restore(right.snapshot())
    foreign = StoreMachine(MemoryKeyspace(), scope=Scope.region(left.scope.region_id or 0))
    foreign.apply(1, encode_command("set", [b"zzz-outside", b"v"], T0))
    if not left.scope.contains(range_key(b"zzz-outside")):
        with pytest.raises(ImageError):
            left.restore(foreign.snapshot())
    assert dict(regions.keyspace.scan(b"")) == before


def test_restore_into_another_node_keeps_its_other_regions() -> None:
    source = Regions([range_key(b"d")])
    target = Regions([range_key(b"d")])
    for key in KEYS:
        source.call("set", [key, b"src"], T0)
        target.call("set", [key, b"dst"], T0)
    target.machines[0].restore(source.machines[0].snapshot())
    for key in KEYS:
        left = target.machines[0].scope.contains(range_key(key))
        assert target.call("get", [key], T0) == Bulk(b"src" if left else b"dst")
    assert target.machines[0].applied_index == source.machines[0].applied_index
    target.machines[0].restore(b"")
    assert target.machines[0].key_count() == 0
    assert target.machines[0].applied_index == 0


def test_whole_keyspace_scope_keeps_the_single_group_layout() -> None:
    machine = StoreMachine()
    machine.apply(3, encode_command("set", [b"k", b"v"], T0))
    assert machine.keyspace.get(b"Xapplied") == (3).to_bytes(8, "big")
    assert machine.keyspace.get(b"Xkeys") == (1).to_bytes(8, "big")
    assert [k for k, _ in machine.keyspace.scan(b"X")] == [b"Xapplied", b"Xkeys", b"Xnow"]
    assert machine.slot_key_count(0) is None


def test_scopes_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        Scope.region(1, b"\x00\x05", b"\x00\x05")
    with pytest.raises(ValueError):
        Scope(b"\x00\x05", b"")
    assert [s.region_id for s in region_scopes([b"\x00\x05"], first_id=4)] == [4, 5]
