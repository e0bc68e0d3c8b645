"""Stream consumer groups: RESP3 bytes from redis-server 7.0.15, exact idle and delivery
times on a fixed clock, XREADGROUP BLOCK's `Blocked` outcome, group records following the
key through DEL/RENAME/expiry, and a model test of XADD/XREADGROUP/XACK/XCLAIM/XAUTOCLAIM
keeping the PEL invariants."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, bulks, run_steps

from cairn.resp.codec import encode
from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    OK,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Map,
    NestedMap,
    Reply,
)
from cairn.store.commands.blocking import Blocked, command_timeout_ms
from cairn.store.commands.stream_group_read import xreadgroup_keys

T0 = 1_700_000_000_000


def two_entries_one_group() -> MachineClient:
    return run_steps(
        [
            ("XADD s 1-1 a 1", Bulk(b"1-1")),
            ("XADD s 2-1 b 2", Bulk(b"2-1")),
            ("XGROUP CREATE s g 0", OK),
        ]
    )


def call(client: MachineClient, line: str) -> Reply:
    return client.call(*line.split())


def test_resp3_bytes_match_redis() -> None:
    client = two_entries_one_group()
    assert encode(call(client, "XPENDING s g"), 3) == b"*4\r\n:0\r\n_\r\n_\r\n_\r\n"
    assert encode(call(client, "XREADGROUP GROUP g c STREAMS s >"), 3) == (
        b"%1\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n"
        b"2-1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    )
    group_g = (
        b"%6\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:2\r\n"
        b"$17\r\nlast-delivered-id\r\n$3\r\n2-1\r\n$12\r\nentries-read\r\n:2\r\n$3\r\nlag\r\n"
        b":0\r\n"
    )
    assert encode(call(client, "XINFO GROUPS s"), 3) == b"*1\r\n" + group_g
    assert call(client, "XDEL s 1-1") == Integer(1)
    assert encode(call(client, "XREADGROUP GROUP g c STREAMS s 0"), 3) == (
        b"%1\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-1\r\n_\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nb"
        b"\r\n$1\r\n2\r\n"
    )
    assert call(client, "XGROUP CREATE s g2 $ ENTRIESREAD -1") == OK
    assert call(client, "XGROUP SETID s g2 1-1") == OK
    assert encode(call(client, "XINFO GROUPS s"), 3) == b"*2\r\n" + group_g + (
        b"%6\r\n$4\r\nname\r\n$2\r\ng2\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n"
        b"$17\r\nlast-delivered-id\r\n$3\r\n1-1\r\n$12\r\nentries-read\r\n_\r\n$3\r\nlag\r\n"
        b":1\r\n"
    )
    assert encode(call(client, "XAUTOCLAIM s g d 0 0"), 3) == (
        b"*3\r\n$3\r\n0-0\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n*1\r\n$3\r\n"
        b"1-1\r\n"
    )


def pending_row(entry_id: str, consumer: str, idle: int, count: int) -> Array:
    return Array((Bulk(entry_id.encode()), Bulk(consumer.encode()), Integer(idle), Integer(count)))


def consumer_info(name: str, pending: int, idle: int) -> Map:
    return Map(
        (
            (Bulk(b"name"), Bulk(name.encode())),
            (Bulk(b"pending"), Integer(pending)),
            (Bulk(b"idle"), Integer(idle)),
        )
    )


def test_idle_and_delivery_times_on_a_fixed_clock() -> None:
    client = two_entries_one_group()
    assert call(client, "XGROUP CREATECONSUMER s g early") == Integer(1)
    client.clock.now += 1000  # type: ignore[attr-defined]
    call(client, "XREADGROUP GROUP g alice COUNT 1 STREAMS s >")
    client.clock.now += 500  # type: ignore[attr-defined]
    call(client, "XREADGROUP GROUP g bob COUNT 1 STREAMS s >")
    client.clock.now += 250  # type: ignore[attr-defined]
    assert call(client, "XPENDING s g - + 10") == Array(
        (pending_row("1-1", "alice", 750, 1), pending_row("2-1", "bob", 250, 1))
    )
    assert call(client, "XPENDING s g IDLE 300 - + 10") == Array(
        (pending_row("1-1", "alice", 750, 1),)
    )
    assert call(client, "XINFO CONSUMERS s g") == Array(
        (
            consumer_info("alice", 1, 750),
            consumer_info("bob", 1, 250),
            consumer_info("early", 0, 1750),
        )
    )
    # Re-reading history counts a delivery and resets the idle time; XCLAIM IDLE/TIME set it.
    call(client, "XREADGROUP GROUP g alice STREAMS s 0")
    assert call(client, "XPENDING s g - 1-1 1") == Array((pending_row("1-1", "alice", 0, 2),))
    assert call(client, "XCLAIM s g carol 0 1-1 IDLE 400 JUSTID") == bulks(b"1-1")
    assert call(client, "XCLAIM s g carol 300 2-1 JUSTID") == Array(())  # bob's: 250 ms idle
    assert call(client, "XPENDING s g - + 10 carol") == Array(
        (pending_row("1-1", "carol", 400, 2),)
    )
    now = client.clock.now  # type: ignore[attr-defined]
    assert call(client, f"XCLAIM s g carol 0 2-1 TIME {now - 900} RETRYCOUNT 5 JUSTID") == bulks(
        b"2-1"
    )
    assert call(client, "XPENDING s g 2-1 2-1 1") == Array((pending_row("2-1", "carol", 900, 5),))
    assert call(client, "XAUTOCLAIM s g dave 500 0 JUSTID") == Array(
        (Bulk(b"0-0"), bulks(b"2-1"), Array(()))
    )
    full = call(client, "XINFO STREAM s FULL")
    assert isinstance(full, Map)
    groups = dict(full.pairs)[Bulk(b"groups")]
    assert isinstance(groups, Array) and isinstance(groups.items[0], Map)
    group = dict(groups.items[0].pairs)
    assert group[Bulk(b"pending")] == Array(
        (
            Array((Bulk(b"1-1"), Bulk(b"carol"), Integer(now - 400), Integer(2))),
            Array((Bulk(b"2-1"), Bulk(b"dave"), Integer(now), Integer(5))),  # JUSTID: no count
        )
    )
    consumers = group[Bulk(b"consumers")]
    assert isinstance(consumers, Array) and isinstance(consumers.items[0], Map)
    alice = dict(consumers.items[0].pairs)
    assert alice[Bulk(b"seen-time")] == Integer(T0 + 1750)
    assert alice[Bulk(b"pel-count")] == Integer(0)


def test_xreadgroup_block_waits_with_its_arguments() -> None:
    client = two_entries_one_group()
    call(client, "XREADGROUP GROUP g c STREAMS s >")
    outcome = call(client, "XREADGROUP GROUP g c BLOCK 1500 NOACK STREAMS s >")
    assert isinstance(outcome, Blocked)
    assert outcome.keys == (b"s",) and outcome.timeout_ms == 1500
    assert outcome.retry_args == (
        b"BLOCK",
        b"1500",
        b"COUNT",
        b"1000",
        b"NOACK",
        b"GROUP",
        b"g",
        b"c",
        b"STREAMS",
        b"s",
        b">",
    )
    # A blocked attempt writes nothing: no consumer "d" appears.
    assert isinstance(call(client, "XREADGROUP GROUP g d BLOCK 10 STREAMS s >"), Blocked)
    info = call(client, "XINFO CONSUMERS s g")
    assert isinstance(info, Array) and len(info.items) == 1
    call(client, "XADD s 3-1 c 3")
    retried = client.call(b"XREADGROUP", *outcome.retry_args)
    assert retried == call(client, "XREAD STREAMS s 2-1")
    assert call(client, "XPENDING s g") == Array(
        (Integer(2), Bulk(b"1-1"), Bulk(b"2-1"), Array((bulks(b"c", b"2"),)))
    )
    argv = [b"XREADGROUP", b"GROUP", b"block", b"count", b"BLOCK", b"250", b"STREAMS", b"s", b">"]
    assert command_timeout_ms("xreadgroup", argv) == 250
    assert xreadgroup_keys([b"XREADGROUP", b"GROUP", b"streams", b"c", b"STREAMS", b"k", b">"]) == [
        b"k"
    ]


def test_group_records_follow_the_key() -> None:
    client = two_entries_one_group()
    call(client, "XREADGROUP GROUP g c STREAMS s >")
    assert call(client, "RENAME s s2") == OK
    assert call(client, "XPENDING s2 g") == Array(
        (Integer(2), Bulk(b"1-1"), Bulk(b"2-1"), Array((bulks(b"c", b"2"),)))
    )
    assert call(client, "DEL s2") == Integer(1)
    assert call(client, "XGROUP CREATE s2 g 0 MKSTREAM") == OK
    assert call(client, "XPENDING s2 g") == Array((Integer(0), NULL, NULL, NULL_ARRAY))
    assert call(client, "XINFO CONSUMERS s2 g") == Array(())
    assert call(client, "PEXPIRE s2 100") == Integer(1)
    client.clock.now += 200  # type: ignore[attr-defined]
    assert call(client, "XPENDING s2 g") == ErrorReply(
        "NOGROUP No such key 's2' or consumer group 'g'"
    )


def test_destroy_and_delconsumer_leave_no_records() -> None:
    client = two_entries_one_group()
    call(client, "XREADGROUP GROUP g a COUNT 1 STREAMS s >")
    call(client, "XREADGROUP GROUP g b COUNT 1 STREAMS s >")
    assert call(client, "XGROUP DELCONSUMER s g a") == Integer(1)
    assert call(client, "XPENDING s g") == Array(
        (Integer(1), Bulk(b"2-1"), Bulk(b"2-1"), Array((bulks(b"b", b"1"),)))
    )
    assert call(client, "XGROUP CREATECONSUMER s g a") == Integer(1)
    empty_history = NestedMap(((Bulk(b"s"), Array(())),))
    assert call(client, "XREADGROUP GROUP g a STREAMS s 0") == empty_history
    assert call(client, "XGROUP DESTROY s g") == Integer(1)
    assert call(client, "XGROUP CREATE s g 0") == OK
    assert call(client, "XPENDING s g") == Array((Integer(0), NULL, NULL, NULL_ARRAY))
    assert call(client, "XINFO CONSUMERS s g") == Array(())
    info = call(client, "XINFO STREAM s")
    assert isinstance(info, Map) and dict(info.pairs)[Bulk(b"groups")] == Integer(1)
    assert call(client, "XLEN s") == Integer(2)


def test_wrong_types() -> None:
    client = MachineClient(clock=FakeClock())
    call(client, "SET k v")
    wrongtype = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
    for line in (
        "XGROUP CREATE k g $",
        "XREADGROUP GROUP g c STREAMS k >",
        "XACK k g 1-1",
        "XPENDING k g",
        "XCLAIM k g c 0 1-1",
        "XAUTOCLAIM k g c 0 0",
        "XINFO GROUPS k",
    ):
        assert call(client, line) == wrongtype, line


# -- the model test -------------------------------------------------------------------

CONSUMERS = ("a", "b", "c")

operation = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 3)),
    st.tuples(st.just("read"), st.sampled_from(CONSUMERS), st.integers(0, 3)),
    st.tuples(st.just("history"), st.sampled_from(CONSUMERS)),
    st.tuples(st.just("ack"), st.lists(st.integers(1, 12), max_size=3)),
    st.tuples(
        st.just("claim"), st.sampled_from(CONSUMERS), st.lists(st.integers(1, 12), max_size=3)
    ),
    st.tuples(st.just("autoclaim"), st.sampled_from(CONSUMERS), st.integers(1, 3)),
    st.tuples(st.just("del"), st.integers(1, 12)),
)


class Model:
    """What the group should hold: the PEL (id -> owner, deliveries) and what was acked."""

    def __init__(self) -> None:
        self.entries: list[int] = []
        self.next = 1
        self.last = 0
        self.pel: dict[int, tuple[str, int]] = {}
        self.acked: set[int] = set()
        self.delivered: set[int] = set()

    def apply(self, client: MachineClient, op: tuple) -> None:  # type: ignore[type-arg]
        kind = op[0]
        if kind == "add":
            for _ in range(op[1]):
                call(client, f"XADD s {self.next}-0 f v")
                self.entries.append(self.next)
                self.next += 1
        elif kind == "read":
            count = f"COUNT {op[2]} " if op[2] else ""
            call(client, f"XREADGROUP GROUP g {op[1]} {count}STREAMS s >")
            new = [e for e in self.entries if e > self.last]
            for e in new[: op[2] or None]:
                self.pel[e] = (op[1], 1)
                self.delivered.add(e)
                self.last = e
        elif kind == "history":
            call(client, f"XREADGROUP GROUP g {op[1]} STREAMS s 0")
            for e, (owner, n) in self.pel.items():
                if owner == op[1] and e in self.entries:
                    self.pel[e] = (owner, n + 1)
        elif kind == "ack":
            ids = " ".join(f"{i}-0" for i in op[1])
            if ids:
                expected = len({i for i in op[1] if i in self.pel})
                assert call(client, f"XACK s g {ids}") == Integer(expected)
                for i in op[1]:
                    if self.pel.pop(i, None) is not None:
                        self.acked.add(i)
        elif kind == "claim":
            if op[2]:
                ids = " ".join(f"{i}-0" for i in op[2])
                call(client, f"XCLAIM s g {op[1]} 0 {ids} JUSTID")
                for i in op[2]:
                    if i in self.pel:
                        if i in self.entries:
                            self.pel[i] = (op[1], self.pel[i][1])
                        else:
                            del self.pel[i]
        elif kind == "autoclaim":
            reply = call(client, f"XAUTOCLAIM s g {op[1]} 0 0 COUNT {op[2]} JUSTID")
            budget = op[2]
            for i in sorted(self.pel)[: op[2] * 10]:
                if not budget:
                    break
                budget -= 1
                if i in self.entries:
                    self.pel[i] = (op[1], self.pel[i][1])
                else:
                    del self.pel[i]
            assert isinstance(reply, Array)
        else:
            call(client, f"XDEL s {op[1]}-0")
            if op[1] in self.entries:
                self.entries.remove(op[1])

    def check(self, client: MachineClient) -> None:
        rows = call(client, "XPENDING s g - + 1000")
        assert isinstance(rows, Array)
        seen = {}
        for row in rows.items:
            assert isinstance(row, Array)
            entry_id, owner, _, count = row.items
            assert isinstance(entry_id, Bulk) and isinstance(owner, Bulk)
            assert isinstance(count, Integer)
            number = int(entry_id.value.split(b"-")[0])
            assert number not in seen  # pending once
            seen[number] = (owner.value.decode(), count.value)
        assert seen == self.pel
        assert not (set(seen) & self.acked)  # acked: never pending again
        assert set(seen) <= self.delivered
        for consumer in CONSUMERS:
            mine = call(client, f"XPENDING s g - + 1000 {consumer}")
            assert isinstance(mine, Array)
            assert len(mine.items) == sum(1 for o, _ in self.pel.values() if o == consumer)
        summary = call(client, "XPENDING s g")
        assert isinstance(summary, Array) and summary.items[0] == Integer(len(self.pel))


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, max_size=25))
def test_model_pel_invariants(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    client = MachineClient(clock=FakeClock())
    assert call(client, "XGROUP CREATE s g 0 MKSTREAM") == OK
    model = Model()
    for op in ops:
        model.apply(client, op)
        model.check(client)
