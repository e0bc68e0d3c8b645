"""Transactions in the store: one entry runs every queued command, WATCH fingerprints."""

from __future__ import annotations

from dataclasses import replace

import pytest
from region_harness import Regions
from store_harness import MachineClient

from cairn.resp.reply import NULL, NULL_ARRAY, OK, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store import StoreMachine
from cairn.store.layout import Meta, ValueType, decode_meta, encode_meta, encode_stamp
from cairn.store.machine import encode_command
from cairn.store.transaction import (
    TRANSACTION_COMMANDS,
    TXN_COMMAND,
    WATCH_COMMAND,
    decode_transaction,
    encode_transaction,
)

NOW = 1_700_000_000_000


class Txn:
    """A machine driven as a node drives it: commands, WATCH probes and EXEC entries."""

    def __init__(self) -> None:
        self.now = NOW
        self.client = MachineClient(lambda: self.now)

    def call(self, *argv: str) -> Reply:
        return self.client.call(*argv)

    def entry(self, name: str, args: list[bytes]) -> Reply:
        self.client.index += 1
        data = encode_command(name, args, self.now)
        return self.client.machine.apply(self.client.index, data)

    def watch(self, *keys: str) -> list[tuple[bytes, bytes]]:
        reply = self.entry(WATCH_COMMAND, [k.encode() for k in keys])
        assert isinstance(reply, Array)
        prints = [b.value for b in reply.items if isinstance(b, Bulk)]
        return list(zip([k.encode() for k in keys], prints, strict=True))

    def exec(
        self, commands: list[list[str]], watches: list[tuple[bytes, bytes]] | None = None
    ) -> Reply:
        argvs = [[a.encode() for a in c] for c in commands]
        return self.entry(TXN_COMMAND, [encode_transaction(watches or [], argvs)])


@pytest.fixture
def txn() -> Txn:
    return Txn()


def test_every_command_runs_in_order_with_its_own_reply(txn: Txn) -> None:
    reply = txn.exec([["set", "a", "1"], ["incr", "a"], ["get", "a"], ["lpush", "l", "x"]])
    assert reply == Array((OK, Integer(2), Bulk(b"2"), Integer(1)))
    assert txn.call("get", "a") == Bulk(b"2")


def test_a_runtime_error_keeps_the_other_commands(txn: Txn) -> None:
    reply = txn.exec([["set", "a", "x"], ["incr", "a"], ["set", "b", "2"], ["rpush", "a", "y"]])
    assert isinstance(reply, Array)
    assert reply.items[1] == ErrorReply("ERR value is not an integer or out of range")
    assert isinstance(reply.items[3], ErrorReply) and reply.items[3].message.startswith("WRONGTYPE")
    assert txn.call("get", "b") == Bulk(b"2")
    assert txn.call("get", "a") == Bulk(b"x")


def test_watch_unchanged_key_lets_exec_run(txn: Txn) -> None:
    txn.call("set", "k", "v")
    watches = txn.watch("k", "missing")
    txn.call("set", "other", "1")
    assert txn.exec([["set", "k", "w"]], watches) == Array((OK,))
    assert txn.call("get", "k") == Bulk(b"w")


@pytest.mark.parametrize(
    "change",
    [
        ["set", "k", "v"],  # the same value written again is still a write
        ["append", "k", "x"],
        ["del", "k"],
        ["pexpire", "k", "1"],
        ["rename", "k", "k2"],
    ],
)
def test_any_write_to_a_watched_key_aborts_exec(txn: Txn, change: list[str]) -> None:
    txn.call("set", "k", "v")
    watches = txn.watch("k")
    txn.call(*change)
    txn.now += 10
    assert txn.exec([["set", "k", "mine"]], watches) == NULL_ARRAY
    assert txn.call("get", "k") != Bulk(b"mine")


@pytest.mark.parametrize(
    "setup,change",
    [
        (["hset", "h", "f", "1"], ["hset", "h", "f", "2"]),  # a field rewritten, size kept
        (["rpush", "h", "a", "b"], ["lset", "h", "0", "z"]),
        (["zadd", "h", "1", "m"], ["zadd", "h", "2", "m"]),
        (["sadd", "h", "m"], ["sadd", "h", "n"]),
    ],
)
def test_sub_record_changes_stamp_the_key(txn: Txn, setup: list[str], change: list[str]) -> None:
    txn.call(*setup)
    watches = txn.watch("h")
    txn.call(*change)
    assert txn.exec([["del", "h"]], watches) == NULL_ARRAY


def test_a_no_op_write_does_not_abort(txn: Txn) -> None:
    txn.call("sadd", "s", "m")
    watches = txn.watch("s")
    assert txn.call("sadd", "s", "m") == Integer(0)
    assert txn.exec([["scard", "s"]], watches) == Array((Integer(1),))


def test_expiry_of_a_watched_key_aborts_exec(txn: Txn) -> None:
    txn.call("set", "k", "v", "px", "100")
    watches = txn.watch("k")
    txn.now += 200  # expired, not yet deleted
    assert txn.exec([["get", "k"]], watches) == NULL_ARRAY


def test_created_and_deleted_absent_key_aborts_exec(txn: Txn) -> None:
    watches = txn.watch("ghost")
    txn.call("set", "ghost", "1")
    txn.call("del", "ghost")
    assert txn.exec([["set", "ghost", "2"]], watches) == NULL_ARRAY
    assert txn.call("exists", "ghost") == Integer(0)


def test_failed_watch_writes_nothing(txn: Txn) -> None:
    txn.call("set", "k", "v")
    watches = txn.watch("k")
    txn.call("set", "k", "v2")
    assert txn.exec([["set", "a", "1"], ["set", "b", "1"]], watches) == NULL_ARRAY
    assert txn.call("exists", "a", "b") == Integer(0)


def test_blocking_commands_run_without_blocking(txn: Txn) -> None:
    reply = txn.exec([["blpop", "l", "0"], ["blmove", "l", "m", "left", "left", "0"]])
    assert reply == Array((NULL_ARRAY, NULL))


def test_random_commands_replay_identically() -> None:
    commands = [[b"sadd", b"s", *[b"%d" % i for i in range(50)]], [b"spop", b"s", b"3"]]
    data = encode_command(TXN_COMMAND, [encode_transaction([], commands)], NOW)
    assert StoreMachine().apply(1, data) == StoreMachine().apply(1, data)


def test_malformed_transaction_is_an_error(txn: Txn) -> None:
    reply = txn.entry(TXN_COMMAND, [b"\x93junk"])
    assert isinstance(reply, ErrorReply) and "malformed" in reply.message
    with pytest.raises(ValueError):
        decode_transaction(b"\x01")


def test_unknown_or_bad_arity_command_in_an_entry_is_its_error(txn: Txn) -> None:
    reply = txn.exec([["nosuch"], ["get"], ["set", "a", "1"]])
    assert isinstance(reply, Array)
    assert [isinstance(r, ErrorReply) for r in reply.items] == [True, True, False]


def test_meta_stamp_round_trips_and_old_records_decode() -> None:
    old = encode_meta(Meta(ValueType.STRING, 5, value=b"abc"))
    assert decode_meta(old).stamp == b""
    stamp = encode_stamp(7, 99)
    meta = Meta(ValueType.LIST, None, size=3, head=10)
    assert decode_meta(encode_meta(meta, stamp)) == replace(meta, stamp=stamp)
    text = Meta(ValueType.STRING, 1, value=b"xyz")
    assert decode_meta(encode_meta(text, stamp)) == replace(text, stamp=stamp)


def test_region_refuses_keys_outside_its_range_and_fingerprints_name_it() -> None:
    regions = Regions([b"\x20\x00"])
    low, high = regions.machines
    data = encode_command(TXN_COMMAND, [encode_transaction([], [[b"set", b"a", b"1"]])], NOW)
    outside = high if low.scope.contains_key(b"a") else low
    inside = low if outside is high else high
    reply = outside.apply(1, data)
    assert isinstance(reply, ErrorReply) and reply.message.startswith("TRYAGAIN")
    assert inside.apply(1, data) == Array((OK,))
    probe = inside.apply(3, encode_command(WATCH_COMMAND, [b"nokey"], NOW))
    assert isinstance(probe, Array) and isinstance(probe.items[0], Bulk)
    region_id = inside.scope.region_id or 0
    assert probe.items[0].value[1:9] == region_id.to_bytes(8, "big")


def test_transaction_spec_lists_every_key() -> None:
    spec = TRANSACTION_COMMANDS[TXN_COMMAND]
    payload = encode_transaction([(b"w", b"")], [[b"mset", b"a", b"1", b"b", b"2"], [b"ping"]])
    assert spec.keys([TXN_COMMAND.encode(), payload]) == [b"w", b"a", b"b"]
