"""`SimStoreMachine`: the real store as a region's machine; a split moves exactly the right
half's records (every type, element records included) and a merge puts them back."""

from __future__ import annotations

from cairn.meta.region import range_key
from cairn.resp.reply import Array, Bulk, Integer
from cairn.sim.store_range import EPOCH_MS, SimStoreMachine, machine_layout
from cairn.store.machine import encode_command

WRITES = [
    ("set", b"a", b"1"),
    ("rpush", b"b", b"x", b"y"),
    ("hset", b"c", b"f", b"v"),
    ("sadd", b"d", b"m"),
    ("zadd", b"e", b"1", b"z"),
    ("set", b"f", b"2"),
]


def _loaded() -> SimStoreMachine:
    machine = SimStoreMachine()
    for index, (name, *args) in enumerate(WRITES, start=1):
        machine.apply(index, encode_command(name, args, EPOCH_MS))
    return machine


def _dbsize(machine: SimStoreMachine) -> int:
    reply = machine.store.execute_read("dbsize", [], EPOCH_MS)
    assert isinstance(reply, Integer)
    return reply.value


def test_a_split_moves_the_right_records_and_a_merge_restores_them() -> None:
    machine = _loaded()
    before = machine.snapshot()
    cut = sorted(range_key(k) for k in (b"a", b"b", b"c", b"d", b"e", b"f"))[3]
    image = machine.split_off(lambda rkey: rkey >= cut, applied=5)
    right = SimStoreMachine()
    right.restore(image)
    assert right.applied_index == 5
    assert (_dbsize(machine), _dbsize(right)) == (3, 3)
    left_keys, _ = machine_layout(machine)
    right_keys, _ = machine_layout(right)
    assert all(k < cut for k in left_keys) and all(k >= cut for k in right_keys)
    for key in (b"a", b"b", b"c", b"d", b"e", b"f"):
        holder = right if range_key(key) >= cut else machine
        other = machine if holder is right else right
        assert holder.store.execute_read("exists", [key], EPOCH_MS) == Integer(1), key
        assert other.store.execute_read("exists", [key], EPOCH_MS) == Integer(0), key
    machine.absorb(right.snapshot())
    assert _dbsize(machine) == 6
    assert machine.snapshot() == before
    lrange = machine.store.execute_read("lrange", [b"b", b"0", b"-1"], EPOCH_MS)
    assert lrange == Array((Bulk(b"x"), Bulk(b"y")))


def test_keys_of_names_the_keys_of_a_command_and_none_of_garbage() -> None:
    machine = SimStoreMachine()
    assert list(machine.keys_of(encode_command("mset", [b"k1", b"v", b"k2", b"v"], 0))) == [
        b"k1",
        b"k2",
    ]
    assert machine.keys_of(b"\x00garbage") == ()
    assert machine.keys_of(encode_command("nosuchcommand", [b"k"], 0)) == ()


def test_keys_of_names_a_transactions_keys_so_the_region_can_refuse_it() -> None:
    from cairn.store.transaction import TXN_COMMAND, encode_transaction

    payload = encode_transaction([], [[b"DECRBY", b"{b}:1", b"3"], [b"INCRBY", b"{b}:2", b"3"]])
    entry = encode_command(TXN_COMMAND, [payload], 0)
    assert list(SimStoreMachine().keys_of(entry)) == [b"{b}:1", b"{b}:2"]
