"""Splitting and merging region machines: counts carried exactly, answers unchanged, a split
followed by a merge back round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from region_harness import assert_counts_exact, data_records, is_refusal

from cairn.resp.reply import OK, Bulk, Integer
from cairn.store import (
    CarveError,
    MemoryKeyspace,
    RetiredMachineError,
    Scope,
    StoreMachine,
    encode_command,
    merge_machines,
    split_machine,
)
from cairn.store.scope import range_key

T0 = 1_700_000_000_000
KEYS = [b"{a}1", b"{a}2", b"{a}33", b"{a}444", b"{b}x", b"{b}yy", b"c", b"d", b"e", b"f", b"g"]
SPLIT_CANDIDATES = sorted(
    {range_key(k)[:2] for k in KEYS if range_key(k)[:2] != b"\0\0"}
    | {range_key(k) for k in KEYS}
    | {range_key(b"{a}3")}  # inside the slot of {a}, between keys
)

write_st = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.just(b"v")),
    st.tuples(st.just("hset"), st.sampled_from(KEYS), st.sampled_from([b"f", b"g"]), st.just(b"1")),
    st.tuples(st.just("del"), st.sampled_from(KEYS)),
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.just(b"t"), st.just(b"PX"), st.just(b"3")),
)


def _machine(space: MemoryKeyspace, region_id: int = 1) -> StoreMachine:
    return StoreMachine(space, scope=Scope.region(region_id))


def _apply(machine: StoreMachine, command: tuple[object, ...], now: int) -> object:
    args = [a for a in command[1:] if isinstance(a, bytes)]
    index = machine.applied_index + 1
    return machine.apply(index, encode_command(str(command[0]), args, now))


def _owner(machines: list[StoreMachine], key: bytes) -> StoreMachine:
    return next(m for m in machines if m.scope.contains(range_key(key)))


@settings(max_examples=80, deadline=None)
@given(
    before=st.lists(write_st, max_size=30),
    split_key=st.sampled_from(SPLIT_CANDIDATES),
    after=st.lists(write_st, max_size=20),
    merge_into_right=st.booleans(),
)
def test_split_then_merge_round_trips(
    before: list[tuple[object, ...]],
    split_key: bytes,
    after: list[tuple[object, ...]],
    merge_into_right: bool,
) -> None:
    space, model = MemoryKeyspace(), StoreMachine()
    left = _machine(space)
    for i, command in enumerate(before):
        assert _apply(left, command, T0 + i) == _apply(model, command, T0 + i)
    now = T0 + len(before)
    answers = {k: model.execute_read("get", [k], now) for k in KEYS}
    index = left.applied_index + 1
    right = split_machine(left, split_key, 2, index=index, right_index=5)
    assert (left.applied_index, right.applied_index) == (index, 5)
    assert right.max_now_ms == left.max_now_ms
    assert left.scope == Scope.region(1, b"", split_key)
    assert right.scope == Scope.region(2, split_key, b"")
    for machine in (left, right):
        assert_counts_exact(machine)
    assert left.key_count() + right.key_count() == model.key_count()
    for key in KEYS:
        assert _owner([left, right], key).execute_read("get", [key], now) == answers[key]
    for i, command in enumerate(after):
        target = _owner([left, right], command[1])  # type: ignore[arg-type]
        assert _apply(target, command, now + i) == _apply(model, command, now + i)
    source, target = (left, right) if merge_into_right else (right, left)
    merge_machines(source, target, index=target.applied_index + 1)
    assert target.scope == Scope.region(target.scope.region_id or 0, b"", b"")
    assert source.retired
    assert_counts_exact(target)
    assert target.key_count() == model.key_count()
    assert data_records(space) == data_records(model.keyspace)  # type: ignore[arg-type]
    system = target.scope.system_bounds()
    assert system is not None
    assert all(system[0] <= k < system[1] for k, _ in space.scan(b"X"))


def test_split_inside_a_slot_shares_its_count() -> None:
    space = MemoryKeyspace()
    left = _machine(space)
    for i, key in enumerate([b"{a}1", b"{a}22", b"{a}333", b"{b}x"]):
        left.apply(i + 1, encode_command("set", [key, b"v"], T0))
    right = split_machine(left, range_key(b"{a}22"), 2, index=10, right_index=10)
    slot = int.from_bytes(range_key(b"{a}1")[:2], "big")
    assert left.execute_read("dbsize", [], T0) == Integer(2)  # {b} sorts before {a}
    assert right.execute_read("dbsize", [], T0) == Integer(2)
    for machine, expected in ((left, 1), (right, 2)):
        assert machine.slot_key_count(slot) == expected
    assert is_refusal(left.apply(11, encode_command("set", [b"{a}333", b"w"], T0)))
    assert right.apply(11, encode_command("set", [b"{a}333", b"w"], T0)) == OK
    assert right.execute_read("get", [b"{a}333"], T0) == Bulk(b"w")


def test_carving_refuses_what_cannot_be_done() -> None:
    space = MemoryKeyspace()
    with pytest.raises(CarveError):
        split_machine(StoreMachine(space), b"\x00\x05", 2, index=1, right_index=1)
    region = StoreMachine(space, scope=Scope.region(1, b"\x00\x05", b"\x00\x09"))
    for key in (b"\x00\x05", b"\x00\x09", b"\x00\x01"):
        with pytest.raises(CarveError):
            split_machine(region, key, 2, index=1, right_index=1)
    with pytest.raises(CarveError):
        split_machine(region, b"\x00\x07", 1, index=1, right_index=1)
    far = StoreMachine(space, scope=Scope.region(3, b"\x00\x0a", b"\x00\x0f"))
    with pytest.raises(CarveError):
        merge_machines(far, region, index=2)
    with pytest.raises(CarveError):
        elsewhere = StoreMachine(MemoryKeyspace(), scope=Scope.region(4, b"\x00\x09"))
        merge_machines(elsewhere, region, 2)


def test_a_merged_source_refuses_further_use() -> None:
    space = MemoryKeyspace()
    left = _machine(space)
    right = split_machine(left, b"\x10\x00", 2, index=1, right_index=1)
    merge_machines(right, left, index=2)
    with pytest.raises(RetiredMachineError):
        right.apply(2, encode_command("set", [b"k", b"v"], T0))
    with pytest.raises(RetiredMachineError):
        right.execute_read("dbsize", [], T0)
    with pytest.raises(CarveError):
        merge_machines(right, left, index=3)
