"""Scripts as cross-region transactions (`cairn.store.scripting.confine`), over real
`StoreMachine`s standing for regions (`txn_harness.World`): a script runs once on the
coordinator's scratch machine over its locked keys, its effects are committed in every
region, it may use only its declared keys, and its errors keep Redis's replies."""

from __future__ import annotations

from txn_harness import World

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, NullBulk
from cairn.store.scripting.confine import KEYLESS, UNDECLARED

TRANSFER = """
local from = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if from < amount then return 0 end
redis.call('DECRBY', KEYS[1], amount)
redis.call('INCRBY', KEYS[2], amount)
return 1
"""


def test_a_transfer_script_over_two_regions_commits_in_both() -> None:
    world = World()
    world.raw("SET", "a", "10")
    outcome = world.transaction([["EVAL", TRANSFER, "2", "a", "b", "7"]])
    world.run()
    assert outcome.reply == Array((Integer(1),))
    assert (world.raw("GET", "a"), world.raw("GET", "b")) == (Bulk(b"3"), Bulk(b"7"))
    refused = world.transaction([["EVAL", TRANSFER, "2", "a", "b", "7"]])
    world.run()
    assert refused.reply == Array((Integer(0),))
    assert (world.raw("GET", "a"), world.raw("GET", "b")) == (Bulk(b"3"), Bulk(b"7"))
    assert world.locks() == 0


def test_a_read_only_script_takes_its_snapshot_under_locks_and_commits_nothing() -> None:
    world = World()
    world.raw("SET", "a", "1")
    world.raw("SET", "c", "2")
    body = "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}"
    outcome = world.transaction([["EVAL_RO", body, "2", "a", "c"]])
    world.run()
    assert outcome.reply == Array((Array((Bulk(b"1"), Bulk(b"2"))),))
    assert world.locks() == 0
    assert not any(argv[0] == b"cairn.txn.commit" for argv in world.sent)
    assert any(argv[0] == b"cairn.txn.lock" for argv in world.sent)
    setter = "return redis.call('SET', KEYS[1], 'x')"
    writes = world.transaction([["EVAL_RO", setter, "2", "a", "c"]])
    world.run()
    (reply,) = writes.reply.items  # type: ignore[union-attr]
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith("ERR Write commands are not allowed from read-only scripts.")
    assert world.raw("GET", "a") == Bulk(b"1")


def test_an_undeclared_key_fails_the_script_and_applies_nothing() -> None:
    world = World()
    world.raw("SET", "c", "secret")
    for body in (
        "redis.call('SET', KEYS[1], 'x'); redis.call('SET', KEYS[2], 'y'); "
        "return redis.call('GET', 'c')",
        "redis.call('SET', KEYS[1], 'x'); redis.pcall('SET', 'c', 'z'); return 1",
        "redis.call('SET', KEYS[1], 'x'); return redis.call('DBSIZE')",
    ):
        outcome = world.transaction([["EVAL", body, "2", "a", "b"]])
        world.run()
        expected = KEYLESS if "DBSIZE" in body else UNDECLARED
        assert outcome.reply == Array((expected,)), body
        assert [world.raw("GET", k) for k in ("a", "b", "c")] == [
            NullBulk(),
            NullBulk(),
            Bulk(b"secret"),
        ]
    assert world.locks() == 0


def test_a_failing_script_keeps_its_earlier_writes_as_redis_does() -> None:
    world = World()
    body = "redis.call('SET', KEYS[1], 'x'); redis.call('INCR', KEYS[2]); return 1"
    world.raw("SET", "b", "not a number")
    outcome = world.transaction([["EVAL", body, "2", "a", "b"]])
    world.run()
    (reply,) = outcome.reply.items  # type: ignore[union-attr]
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith("ERR value is not an integer or out of range script: ")
    assert world.raw("GET", "a") == Bulk(b"x")


def test_a_script_stopped_by_its_budget_writes_nothing() -> None:
    world = World()
    body = "redis.call('SET', KEYS[1], 'x'); while true do end"
    outcome = world.transaction([["EVAL", body, "2", "a", "b"]])
    world.run()
    (reply,) = outcome.reply.items  # type: ignore[union-attr]
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith("ERR Script exceeded the instruction budget")
    assert world.raw("GET", "a") == NullBulk()
    assert world.locks() == 0


def test_a_script_inside_a_cross_region_transaction() -> None:
    world = World()
    world.raw("SET", "a", "10")
    outcome = world.transaction(
        [
            ["SET", "c", "1"],
            ["EVAL", TRANSFER, "2", "a", "b", "4"],
            ["EVAL", "return redis.call('GET', 'c')", "1", "a"],
            ["MGET", "a", "b", "c"],
        ]
    )
    world.run()
    assert outcome.reply == Array(
        (OK, Integer(1), UNDECLARED, Array((Bulk(b"6"), Bulk(b"4"), Bulk(b"1"))))
    )
    assert [world.raw("GET", k) for k in ("a", "b", "c")] == [Bulk(b"6"), Bulk(b"4"), Bulk(b"1")]
    assert world.locks() == 0
