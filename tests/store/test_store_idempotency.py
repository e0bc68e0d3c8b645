"""Idempotent writes in the store: a request id is applied at most once, retries get the
first reply, and the request table survives expiry rules, snapshots, splits and merges."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_harness import MachineClient

from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    OK,
    Array,
    Boolean,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    NestedMap,
    Pairs,
    Push,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)
from cairn.storage import LmdbOptions, region_data
from cairn.storage.node_store import NodeStore
from cairn.store import StoreMachine, encode_command, merge_machines, split_machine
from cairn.store.idempotency import BAD_ID, tag_command, tag_transaction
from cairn.store.idempotency_entries import PURGE_COMMAND
from cairn.store.idempotency_table import (
    MAX_KEPT_REPLY,
    MISMATCH,
    REPLY_NOT_KEPT,
    request_count,
    table_full,
)
from cairn.store.keyspace import MemoryKeyspace
from cairn.store.reply_codec import decode_reply, encode_reply
from cairn.store.scope import Scope, range_key
from cairn.store.slot import key_slot
from cairn.store.transaction import encode_transaction

TTL = 60_000


class Tagged:
    """Applies tagged writes to one machine at chosen times."""

    def __init__(self, machine: StoreMachine | None = None) -> None:
        self.machine = machine if machine is not None else StoreMachine()
        self.index = machine.applied_index if machine is not None else 0

    def apply(self, argv: list[bytes], now: int) -> Reply:
        self.index += 1
        entry = encode_command(argv[0].decode(), argv[1:], now)
        return self.machine.apply(self.index, entry)

    def tagged(self, rid: str, *cmd: str, now: int = 1000, ttl: int = TTL, cap: int = 100) -> Reply:
        made = tag_command([b"IDEMPOTENT", rid.encode(), *(c.encode() for c in cmd)], ttl, cap)
        assert not isinstance(made, ErrorReply), made
        return self.apply(made[0], now)

    def plain(self, *cmd: str, now: int = 1000) -> Reply:
        return self.apply([cmd[0].lower().encode(), *(c.encode() for c in cmd[1:])], now)

    def read(self, *cmd: str, now: int = 1000) -> Reply:
        return self.machine.execute_read(cmd[0].lower(), [c.encode() for c in cmd[1:]], now)


def test_a_retry_applies_nothing_and_answers_the_first_reply() -> None:
    t = Tagged()
    assert t.tagged("r1", "INCR", "k") == Integer(1)
    assert t.tagged("r1", "INCR", "k", now=2000) == Integer(1)
    assert t.tagged("r1", "incr", "k", now=3000) == Integer(1)  # names are case-blind
    assert t.read("GET", "k") == Bulk(b"1")
    assert t.tagged("r2", "INCR", "k") == Integer(2)
    assert t.read("GET", "k") == Bulk(b"2")
    assert request_count(t.machine.keyspace, t.machine.scope) == 2


def test_the_same_id_with_another_command_is_refused() -> None:
    t = Tagged()
    assert t.tagged("r1", "INCRBY", "k", "5") == Integer(5)
    assert t.tagged("r1", "INCRBY", "k", "6") == MISMATCH
    assert t.tagged("r1", "SET", "k", "x") == MISMATCH
    assert t.read("GET", "k") == Bulk(b"5")


def test_an_error_is_the_first_outcome_too_and_changes_nothing() -> None:
    t = Tagged()
    t.plain("SET", "k", "abc")
    first = t.tagged("r1", "INCR", "k")
    assert isinstance(first, ErrorReply) and "not an integer" in first.message
    t.plain("SET", "k", "1")
    assert t.tagged("r1", "INCR", "k") == first
    assert t.read("GET", "k") == Bulk(b"1")


def test_an_id_expires_after_its_time_to_live() -> None:
    t = Tagged()
    assert t.tagged("r1", "INCR", "k", now=1000, ttl=500) == Integer(1)
    assert t.tagged("r1", "INCR", "k", now=1499, ttl=500) == Integer(1)
    assert t.tagged("r1", "INCR", "k", now=1500, ttl=500) == Integer(2)  # a new request
    assert request_count(t.machine.keyspace, t.machine.scope) == 1


def test_the_purge_entry_drops_expired_ids_only() -> None:
    t = Tagged()
    for i in range(5):
        t.tagged(f"old{i}", "INCR", f"k{i}", now=1000, ttl=100)
    t.tagged("young", "INCR", "y", now=1000, ttl=10_000)
    assert not t.machine.has_expired_requests(1099)
    assert t.machine.has_expired_requests(1100)
    assert t.apply([PURGE_COMMAND.encode()], 1100) == Integer(5)
    assert not t.machine.has_expired_requests(1100)
    assert request_count(t.machine.keyspace, t.machine.scope) == 1
    assert t.tagged("young", "INCR", "y", now=1200, ttl=10_000) == Integer(1)
    assert t.tagged("old0", "INCR", "k0", now=1200) == Integer(2)


def test_a_full_table_refuses_new_ids_and_applies_nothing() -> None:
    t = Tagged()
    assert t.tagged("a", "INCR", "k", cap=2, ttl=1000) == Integer(1)
    assert t.tagged("b", "INCR", "k", cap=2, ttl=1000) == Integer(2)
    assert t.tagged("c", "INCR", "k", cap=2, ttl=1000) == table_full(2)
    assert t.read("GET", "k") == Bulk(b"2")
    assert t.tagged("a", "INCR", "k", cap=2, ttl=1000) == Integer(1)  # known ids still answer
    # Once expired, the ids make room again (each tagged write purges a few first).
    assert t.tagged("c", "INCR", "k", now=2000, cap=2, ttl=1000) == Integer(3)
    assert request_count(t.machine.keyspace, t.machine.scope) == 1


def test_a_reply_too_large_to_keep_is_still_applied_once() -> None:
    t = Tagged()
    big = "x" * (MAX_KEPT_REPLY + 1)
    t.plain("SET", "k", big)
    assert t.tagged("r1", "SET", "k", "small", "GET") == Bulk(big.encode())
    assert t.tagged("r1", "SET", "k", "small", "GET") == REPLY_NOT_KEPT
    assert t.read("GET", "k") == Bulk(b"small")


def test_a_tagged_transaction_runs_once_even_with_new_watch_fingerprints() -> None:
    t = Tagged()
    commands = [[b"INCR", b"k"], [b"RPUSH", b"l", b"a"]]
    first = tag_transaction(b"tx1", encode_transaction([], commands), TTL, 100)
    assert not isinstance(first, ErrorReply)
    assert t.apply(first, 1000) == Array((Integer(1), Integer(1)))
    watched = [(b"k", b"P" + b"\0" * 16)]  # a retry's fresh WATCH: other fingerprints
    again = tag_transaction(b"tx1", encode_transaction(watched, commands), TTL, 100)
    assert not isinstance(again, ErrorReply)
    assert t.apply(again, 2000) == Array((Integer(1), Integer(1)))
    assert t.read("LLEN", "l") == Integer(1)
    other = tag_transaction(b"tx1", encode_transaction([], commands[:1]), TTL, 100)
    assert not isinstance(other, ErrorReply)
    assert t.apply(other, 2000) == MISMATCH


def test_a_watch_abort_is_recorded_as_the_first_outcome() -> None:
    t = Tagged()
    stale = [(b"k", b"P" + b"\1" * 16)]
    entry = tag_transaction(b"tx", encode_transaction(stale, [[b"INCR", b"k"]]), TTL, 100)
    assert not isinstance(entry, ErrorReply)
    t.plain("SET", "k", "1")
    assert t.apply(entry, 1000) == NULL_ARRAY
    assert t.read("GET", "k") == Bulk(b"1")


def test_the_prefix_is_checked_before_anything_is_proposed() -> None:
    def tag(*argv: bytes) -> object:
        made = tag_command([b"IDEMPOTENT", *argv], TTL, 100)
        return made if isinstance(made, ErrorReply) else made[0]

    assert tag(b"", b"SET", b"k", b"v") == BAD_ID
    assert tag(b"x" * 65, b"SET", b"k", b"v") == BAD_ID
    assert tag(b"x" * 64, b"SET", b"k", b"v") == [
        b"cairn.idem",
        b"x" * 64,
        b"60000",
        b"100",
        b"set",
        b"k",
        b"v",
    ]
    assert tag(b"id", b"GET", b"k") == ErrorReply(
        "ERR IDEMPOTENT cannot wrap 'get': not a write command"
    )
    assert tag(b"id", b"BLPOP", b"k", b"0") == ErrorReply(
        "ERR IDEMPOTENT cannot wrap 'blpop': it may block"
    )
    assert tag(b"id", b"FLUSHALL") == ErrorReply(
        "ERR IDEMPOTENT cannot wrap 'flushall': it names no key"
    )
    assert tag(b"id", b"SET", b"k") == ErrorReply("ERR wrong number of arguments for 'set' command")
    unknown = tag(b"id", b"NOPE", b"k")
    assert isinstance(unknown, ErrorReply) and unknown.message.startswith("ERR unknown command")
    assert tag(b"id") == ErrorReply("ERR wrong number of arguments for 'idempotent' command")


def test_a_malformed_entry_changes_nothing() -> None:
    t = Tagged()
    for args in (
        [b"id", b"zz", b"100", b"incr", b"k"],
        [b"id", b"0", b"100", b"incr", b"k"],
        [b"id", b"100", b"100", b"get", b"k"],
        [b"", b"100", b"100", b"incr", b"k"],
        [b"id", b"100", b"100", b"cairn.exec", b"junk"],
    ):
        reply = t.apply([b"cairn.idem", *args], 1000)
        assert isinstance(reply, ErrorReply), args
    assert t.read("EXISTS", "k") == Integer(0)
    assert request_count(t.machine.keyspace, t.machine.scope) == 0


@pytest.mark.parametrize(
    "reply",
    [
        OK,
        SimpleString("QUEUED"),
        ErrorReply("ERR nope"),
        Integer(-(1 << 63)),
        Integer((1 << 64) - 1),
        Bulk(b"\x00\xff"),
        NULL,
        NULL_ARRAY,
        Double(float("inf")),
        Double(-0.5),
        Boolean(True),
        Verbatim(b"text", "mkd"),
        Array((Integer(1), Array((Bulk(b"a"), NULL)))),
        Set((Bulk(b"a"),)),
        Push((Bulk(b"m"),)),
        Map(((Bulk(b"k"), Integer(1)),)),
        Pairs(((Bulk(b"m"), Double(1.5)),)),
        NestedMap(((Bulk(b"s"), Array(())),)),
    ],
)
def test_replies_survive_the_table(reply: Reply) -> None:
    assert decode_reply(encode_reply(reply)) == reply


def _region(space: MemoryKeyspace, region_id: int = 1) -> StoreMachine:
    return StoreMachine(space, scope=Scope.region(region_id))


def _owner(machines: list[StoreMachine], key: bytes) -> Tagged:
    (owner,) = [m for m in machines if m.scope.contains(range_key(key))]
    return Tagged(owner)


def test_snapshot_and_restore_keep_the_table() -> None:
    t = Tagged(_region(MemoryKeyspace()))
    assert t.tagged("r1", "INCR", "k") == Integer(1)
    image = t.machine.snapshot()
    copy = Tagged(_region(MemoryKeyspace()))
    copy.machine.restore(image)
    copy.index = t.index
    assert copy.tagged("r1", "INCR", "k", now=2000) == Integer(1)
    assert copy.read("GET", "k") == Bulk(b"1")
    assert request_count(copy.machine.keyspace, copy.machine.scope) == 1


def test_ids_follow_their_keys_through_a_split_and_a_merge() -> None:
    space = MemoryKeyspace()
    t = Tagged(_region(space))
    keys = [f"key{i}" for i in range(40)]
    for i, key in enumerate(keys):
        assert t.tagged(f"id{i}", "INCR", key) == Integer(1)
    left = t.machine
    right = split_machine(left, b"\x20\x00", 2, index=t.index + 1, right_index=5)
    machines = [left, right]
    counts = [request_count(space, m.scope) for m in machines]
    assert sum(counts) == len(keys) and all(counts)
    for i, key in enumerate(keys):
        assert _owner(machines, key.encode()).tagged(f"id{i}", "INCR", key) == Integer(1)
    merge_machines(right, left, index=left.applied_index + 1)
    assert request_count(space, left.scope) == len(keys)
    merged = Tagged(left)
    for i, key in enumerate(keys):
        assert merged.tagged(f"id{i}", "INCR", key) == Integer(1)
        assert merged.read("GET", key) == Bulk(b"1")
    assert merged.tagged("id0", "INCR", "key0", now=10**9) == Integer(2)  # expired


def test_a_split_inside_a_slot_sends_each_id_with_its_key() -> None:
    space = MemoryKeyspace()
    t = Tagged(_region(space))
    assert key_slot(b"{a}1") == key_slot(b"{a}9")
    assert t.tagged("same", "INCR", "{a}1") == Integer(1)
    assert t.tagged("other", "INCR", "{a}9") == Integer(1)
    right = split_machine(t.machine, range_key(b"{a}5"), 2, index=t.index + 1, right_index=5)
    assert request_count(space, t.machine.scope) == 1
    assert request_count(space, right.scope) == 1
    assert Tagged(right).tagged("other", "INCR", "{a}9") == Integer(1)
    assert Tagged(t.machine).tagged("same", "INCR", "{a}1") == Integer(1)


def test_a_region_refuses_a_tagged_key_outside_its_range() -> None:
    space = MemoryKeyspace()
    left = _region(space)
    right = split_machine(left, b"\x20\x00", 2, index=1, right_index=1)
    outside = next(k for k in (f"k{i}" for i in range(100)) if key_slot(k.encode()) < 0x2000)
    reply = Tagged(right).tagged("r", "INCR", outside)
    assert isinstance(reply, ErrorReply) and reply.message.startswith("TRYAGAIN")
    assert request_count(space, right.scope) == 0


def test_untagged_commands_are_unaffected() -> None:
    client = MachineClient(clock=lambda: 1000)
    assert client.call("INCR", "k") == Integer(1)
    assert client.call("INCR", "k") == Integer(2)


def test_the_table_travels_in_a_region_image_on_lmdb(tmp_path: Path) -> None:
    nodes = [
        NodeStore.open(tmp_path / f"n{i}", 1, "test", LmdbOptions(map_size=32 << 20))
        for i in (1, 2)
    ]
    try:
        scope = Scope.region(1)
        source = Tagged(StoreMachine(nodes[0].keyspace, scope=scope))
        assert source.tagged("r1", "RPUSH", "l", "a", "b") == Integer(2)
        image = b"".join(region_data.range_snapshot(nodes[0].keyspace, scope))
        region_data.install_range(nodes[1].keyspace, scope, [image])
        copy = Tagged(StoreMachine(nodes[1].keyspace, scope=scope))
        assert copy.tagged("r1", "RPUSH", "l", "a", "b", now=2000) == Integer(2)
        assert copy.read("LLEN", "l") == Integer(2)
        assert request_count(nodes[1].keyspace, scope) == 1
    finally:
        for node in nodes:
            node.close()
