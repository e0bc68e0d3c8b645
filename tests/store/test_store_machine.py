"""StoreMachine: entries, applied index, determinism, active expiry, snapshots."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.resp.reply import NULL, OK, Bulk, ErrorReply, Integer
from cairn.store import EXPIRE_DELETE, MemoryKeyspace, StoreMachine, encode_command
from cairn.store.machine import decode_command

T0 = 1_700_000_000_000


def test_command_entries_round_trip() -> None:
    data = encode_command("set", [b"k", b"\xff"], T0)
    assert decode_command(data) == ("set", [b"k", b"\xff"], T0)


def test_apply_records_applied_index_with_the_data() -> None:
    space = MemoryKeyspace()
    machine = StoreMachine(space)
    assert machine.apply(7, encode_command("set", [b"k", b"v"], T0)) == OK
    reopened = StoreMachine(space)
    assert reopened.applied_index == 7
    assert reopened.max_now_ms == T0
    assert reopened.execute_read("get", [b"k"], T0) == Bulk(b"v")


def test_failed_command_leaves_only_the_applied_index() -> None:
    machine = StoreMachine()
    machine.apply(1, encode_command("hset", [b"h", b"f", b"v"], T0))
    before = machine.keyspace.scan(b"", b"X")
    reply = machine.apply(2, encode_command("incr", [b"h"], T0))
    assert reply == ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert machine.keyspace.scan(b"", b"X") == before
    assert machine.applied_index == 2


def test_msetnx_is_all_or_nothing() -> None:
    machine = StoreMachine()
    machine.apply(1, encode_command("set", [b"b", b"x"], T0))
    assert machine.apply(2, encode_command("msetnx", [b"a", b"1", b"b", b"2"], T0)) == Integer(0)
    assert machine.execute_read("get", [b"a"], T0) == NULL


def test_malformed_and_unknown_entries_are_answered_not_raised() -> None:
    machine = StoreMachine()
    assert isinstance(machine.apply(1, b"\x93garbage"), ErrorReply)
    assert isinstance(machine.apply(2, encode_command("nosuch", [], T0)), ErrorReply)
    assert machine.apply(3, encode_command("get", [b"a", b"b"], T0)) == ErrorReply(
        "ERR wrong number of arguments for 'get' command"
    )
    assert machine.applied_index == 3


def test_execute_read_refuses_writes() -> None:
    machine = StoreMachine()
    assert isinstance(machine.execute_read("set", [b"k", b"v"], T0), ErrorReply)
    assert machine.keyspace.count() == 0


def test_time_never_runs_backwards() -> None:
    machine = StoreMachine()
    machine.apply(1, encode_command("set", [b"k", b"v", b"PX", b"1000"], T0))
    # An entry stamped by a leader whose clock is behind still applies at T0 or later.
    machine.apply(2, encode_command("pexpire", [b"j", b"5"], T0 - 60_000))
    assert machine.max_now_ms == T0
    assert machine.effective_now(T0 - 60_000) == T0
    assert machine.effective_now(T0 + 5) == T0 + 5
    machine.apply(3, encode_command("set", [b"old", b"v", b"PX", b"10"], T0 - 60_000))
    assert machine.execute_read("pttl", [b"old"], T0) == Integer(10)


def test_active_expiry_deletes_only_still_expired_keys() -> None:
    machine = StoreMachine()
    machine.apply(1, encode_command("mset", [b"a", b"1", b"b", b"2", b"c", b"3"], T0))
    machine.apply(2, encode_command("pexpire", [b"a", b"10"], T0))
    machine.apply(3, encode_command("pexpire", [b"b", b"10"], T0))
    assert machine.expired_keys(T0 + 5, 10) == []
    expired = machine.expired_keys(T0 + 10, 10)
    assert sorted(expired) == [b"a", b"b"]
    # b is refreshed before the deletion entry applies: it must survive.
    machine.apply(4, encode_command("set", [b"b", b"fresh"], T0 + 11))
    assert machine.apply(5, encode_command(EXPIRE_DELETE, expired, T0 + 12)) == Integer(1)
    assert machine.execute_read("dbsize", [], T0 + 12) == Integer(2)
    assert machine.execute_read("get", [b"b"], T0 + 12) == Bulk(b"fresh")


def test_expired_keys_walks_the_keyspace_incrementally() -> None:
    machine = StoreMachine()
    keys = [b"k%d" % i for i in range(100)]
    machine.apply(1, encode_command("mset", [x for k in keys for x in (k, b"v")], T0))
    for i, key in enumerate(keys[::2]):
        machine.apply(2 + i, encode_command("pexpire", [key, b"1"], T0))
    found: set[bytes] = set()
    for _ in range(20):  # 3 per call: 50 keys need at least 17 calls
        found |= set(machine.expired_keys(T0 + 1, 3))
    assert found == set(keys[::2])


_COMMANDS = st.one_of(
    st.tuples(
        st.just("set"), st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=2, max_size=2)
    ),
    st.tuples(
        st.just("hset"), st.lists(st.sampled_from([b"h", b"f", b"g", b"1"]), min_size=3, max_size=3)
    ),
    st.tuples(st.just("del"), st.lists(st.sampled_from([b"a", b"h"]), min_size=1, max_size=2)),
    st.tuples(st.just("incr"), st.lists(st.sampled_from([b"a", b"n"]), min_size=1, max_size=1)),
    st.tuples(
        st.just("pexpire"),
        st.tuples(st.sampled_from([b"a", b"h", b"n"]), st.sampled_from([b"1", b"50", b"-1"])).map(
            list
        ),
    ),
    st.tuples(
        st.just("rename"), st.lists(st.sampled_from([b"a", b"h", b"z"]), min_size=2, max_size=2)
    ),
    st.tuples(st.just("hincrbyfloat"), st.just([b"h", b"x", b"0.1"])),
    st.tuples(st.just("flushdb"), st.just([])),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_COMMANDS, st.integers(0, 30)), max_size=40))
def test_same_entries_same_state_and_snapshots_restore_it(
    commands: list[tuple[tuple[str, list[bytes]], int]],
) -> None:
    one, two = StoreMachine(rng=random.Random(1)), StoreMachine(rng=random.Random(2))
    now = T0
    entries = []
    for index, ((name, args), step) in enumerate(commands, start=1):
        now += step
        entries.append(encode_command(name, args, now))
        assert one.apply(index, entries[-1]) == two.apply(index, entries[-1])
    assert one.keyspace.scan(b"") == two.keyspace.scan(b"")
    restored = StoreMachine()
    restored.restore(one.snapshot())
    assert restored.keyspace.scan(b"") == one.keyspace.scan(b"")
    assert restored.applied_index == one.applied_index == len(commands)
    assert restored.max_now_ms == one.max_now_ms


def test_restore_replaces_everything() -> None:
    source, target = StoreMachine(), StoreMachine()
    source.apply(1, encode_command("set", [b"a", b"1"], T0))
    target.apply(1, encode_command("set", [b"b", b"2"], T0))
    target.apply(2, encode_command("set", [b"c", b"3"], T0))
    target.restore(source.snapshot())
    assert target.execute_read("keys", [b"*"], T0) == source.execute_read("keys", [b"*"], T0)
    assert target.applied_index == 1


def test_restoring_the_founding_snapshot_empties_the_machine() -> None:
    from cairn.store.keyspace import MemoryKeyspace
    from cairn.store.machine import StoreMachine, encode_command

    machine = StoreMachine(MemoryKeyspace())
    machine.apply(5, encode_command("set", [b"k", b"v"], 1))
    machine.restore(b"")
    assert machine.applied_index == 0
    assert machine.execute_read("dbsize", [], 1).value == 0  # type: ignore[union-attr]
