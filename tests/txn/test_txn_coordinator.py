"""The cross-region transaction coordinator and the lock resolver, over real
`StoreMachine`s standing for regions (`txn_harness.World`); every test runs under both
commits: two-phase and async (`test_txn_async.py` has async commit's own cases)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from random import Random

import pytest
import txn_harness
from txn_harness import World

from cairn.resp.reply import NULL_ARRAY, OK, Array, Bulk, ErrorReply, Integer, NullBulk, Reply
from cairn.txn import Resolver, TxnSettings
from cairn.txn.coordinator import CHANGES_TOO_LARGE, SECONDARIES_FIRST, TOO_LARGE
from cairn.txn.protocol import lock_argv


@pytest.fixture(autouse=True, params=["two-phase", "async"])
def commit_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with async commit off, then on (`txn_harness.DEFAULT_SETTINGS`)."""
    saved = txn_harness.DEFAULT_SETTINGS
    if request.param == "two-phase":
        txn_harness.DEFAULT_SETTINGS = replace(saved, async_max_keys=0)
    yield request.param
    txn_harness.DEFAULT_SETTINGS = saved


def test_mset_over_three_regions_commits_everywhere() -> None:
    world = World()
    outcome = world.transaction([["MSET", "a1", "x", "b1", "y", "c1", "z"]])
    world.run()
    assert outcome.reply == Array((OK,))
    assert [world.raw("GET", k) for k in ("a1", "b1", "c1")] == [Bulk(b"x"), Bulk(b"y"), Bulk(b"z")]
    assert world.locks() == 0


def test_replies_follow_redis_and_a_failing_command_does_not_stop_the_others() -> None:
    world = World()
    world.raw("SET", "a", "5")
    world.raw("SADD", "b", "m")
    outcome = world.transaction(
        [["INCRBY", "a", "3"], ["INCR", "b"], ["RENAME", "a", "c"], ["GET", "c"]]
    )
    world.run()
    error = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert outcome.reply == Array((Integer(8), error, OK, Bulk(b"8")))
    assert world.raw("GET", "a") == NullBulk()
    assert world.raw("GET", "c") == Bulk(b"8")
    assert world.raw("SCARD", "b") == Integer(1)


def test_expiry_travels_with_the_value() -> None:
    world = World()
    world.raw("SET", "a", "v", "PX", "60000")
    outcome = world.transaction([["RENAME", "a", "b"]])
    world.run()
    assert outcome.reply == Array((OK,))
    ttl = world.raw("PTTL", "b")
    assert isinstance(ttl, Integer) and 59_000 < ttl.value <= 60_000


def test_read_only_transaction_releases_its_locks_without_commit() -> None:
    world = World()
    world.raw("SET", "a", "1")
    outcome = world.transaction([["GET", "a"], ["GET", "b"]])
    world.run()
    assert outcome.reply == Array((Bulk(b"1"), NullBulk()))
    assert world.locks() == 0
    assert not any(argv[0] == b"cairn.txn.commit" for argv in world.sent)


def test_watch_failure_aborts_with_the_null_array_and_leaves_no_lock() -> None:
    world = World()
    world.raw("SET", "a", "1")
    prints = world.raw("cairn.watch", "a")
    assert isinstance(prints, Array)
    (fp,) = prints.items
    assert isinstance(fp, Bulk)
    world.raw("SET", "a", "2")  # changed after WATCH
    outcome = world.transaction([["SET", "b", "x"]], watches=[(b"a", fp.value)])
    world.run()
    assert outcome.reply == NULL_ARRAY
    assert world.raw("GET", "b") == NullBulk()
    assert world.locks() == 0


def test_watch_unchanged_commits() -> None:
    world = World()
    prints = world.raw("cairn.watch", "a")
    assert isinstance(prints, Array) and isinstance(prints.items[0], Bulk)
    outcome = world.transaction([["SET", "b", "x"]], watches=[(b"a", prints.items[0].value)])
    world.run()
    assert outcome.reply == Array((OK,))
    assert world.raw("GET", "b") == Bulk(b"x")


def test_concurrent_transfers_conserve_the_total() -> None:
    """Many transactions on the same keys at once: locks conflict, the losers roll back
    and retry with backoff; every transfer lands exactly once."""
    world = World()
    world.raw("SET", "a", "100")
    world.raw("SET", "b", "100")
    world.raw("SET", "c", "100")
    outcomes = []
    pairs = [("a", "b"), ("b", "c"), ("c", "a"), ("a", "c")] * 5
    for source, target in pairs:
        outcomes.append(world.transaction([["DECRBY", source, "7"], ["INCRBY", target, "7"]]))
    world.run()
    assert all(isinstance(o.reply, Array) for o in outcomes), [o.reply for o in outcomes]
    values = [world.raw("GET", k) for k in ("a", "b", "c")]
    assert sum(int(v.value) for v in values if isinstance(v, Bulk)) == 300
    assert values == [Bulk(b"65"), Bulk(b"100"), Bulk(b"135")]  # a gives 35, c gets 35
    retried = sum(o.coordinator.attempts > 1 for o in outcomes if o.coordinator)
    assert retried > 0  # they did conflict
    assert world.locks() == 0


def test_a_live_foreign_lock_ends_in_tryagain_with_own_locks_rolled_back() -> None:
    world = World()
    world.settings = replace(world.settings, lock_ttl_ms=60_000)
    foreign = lock_argv(5, b"c", 60_000, 1 << 20, [], [b"c"])
    absent = Array((Integer(0), Integer(0), NullBulk()))
    assert world.regions[2].run(foreign, world.now_ms()) == Array((Bulk(b"ok"), Array((absent,))))
    outcome = world.transaction([["SET", "a", "1"], ["SET", "c", "2"]], timeout_s=0.3)
    world.run()
    assert outcome.reply.message.startswith("TRYAGAIN")  # type: ignore[union-attr]
    assert world.locks() == 1  # only the foreign one
    assert world.raw("GET", "a") == NullBulk()


def test_coordinator_dead_after_locking_a_reader_rolls_it_back() -> None:
    world = World()
    world.raw("SET", "a", "old")
    world.raw("SET", "b", "old")
    world.drops.append(lambda argv: argv[0] != b"cairn.txn.lock")  # dies after its locks
    world.transaction([["SET", "a", "new"], ["SET", "b", "new"]])
    world.run(until=0.05)
    assert world.locks() == 2
    assert world.raw("GET", "b").message.startswith("LOCKED ")  # type: ignore[union-attr]
    world.drops.clear()
    assert world.call("GET", "b") == Bulk(b"old")  # waits out the ttl, then rolls back
    assert world.clock >= 0.3
    assert world.call("GET", "a") == Bulk(b"old")
    assert world.locks() == 0


def _lose_all_after_the_primary_commit(world: World) -> None:
    """The coordinator dies once its primary's commit left it: everything it sends after
    that is lost."""
    committed: list[list[bytes]] = []

    def after_primary(argv: list[bytes]) -> bool:
        if argv[0] == b"cairn.txn.commit" and argv[3] == b"1":
            committed.append(argv)
            return False
        return bool(committed)

    world.drops.append(after_primary)


def test_coordinator_dead_after_committing_the_primary_a_reader_rolls_forward() -> None:
    world = World()
    _lose_all_after_the_primary_commit(world)
    outcome = world.transaction([["SET", "a", "1"], ["SET", "b", "2"], ["SET", "c", "3"]])
    world.run()
    assert outcome.reply == Array((OK, OK, OK))
    assert world.raw("GET", "a") == Bulk(b"1")
    assert world.raw("GET", "b").message.startswith("LOCKED ")  # type: ignore[union-attr]
    world.drops.clear()
    before = world.clock
    assert world.call("GET", "b") == Bulk(b"2")  # rolled forward at once: no ttl wait
    assert world.call("GET", "c") == Bulk(b"3")
    assert world.clock - before < 0.05
    assert world.locks() == 0


def test_primary_commit_failing_is_sent_again() -> None:
    world = World()
    world.failures.append(lambda argv: argv[0] == b"cairn.txn.commit" and argv[3] == b"1")
    outcome = world.transaction([["SET", "a", "1"], ["SET", "b", "2"]])
    world.run()
    assert outcome.reply == Array((OK, OK))
    commits = [a for a in world.sent if a[0] == b"cairn.txn.commit" and a[3] == b"1"]
    assert len(commits) == 2
    assert world.raw("GET", "b") == Bulk(b"2")
    assert world.locks() == 0


def test_a_lock_failure_rolls_back_and_retries_with_a_new_start_ts() -> None:
    world = World()
    world.failures.append(lambda argv: argv[0] == b"cairn.txn.lock" and argv[2] == b"a")
    outcome = world.transaction([["SET", "a", "1"], ["SET", "b", "2"]])
    world.run()
    assert outcome.reply == Array((OK, OK))
    starts = {a[1] for a in world.sent if a[0] == b"cairn.txn.lock"}
    assert len(starts) == 2
    assert outcome.coordinator is not None and outcome.coordinator.attempts == 2


def test_lost_locks_restart_the_transaction() -> None:
    """The coordinator stalls past its ttl after locking; a reader rolls it back; its
    prewrite finds the locks lost and it starts over, and still commits once."""
    world = World()
    world.raw("SET", "a", "0")
    world.delays.append((lambda argv: argv[0] == b"cairn.txn.prewrite", 1.0))
    outcome = world.transaction([["INCR", "a"], ["SET", "b", "x"]], timeout_s=5)
    world.run(until=0.02)
    assert world.call("GET", "a") == Bulk(b"0")  # resolved: rolled back after the ttl
    world.run()
    assert outcome.reply == Array((Integer(1), OK))
    assert outcome.coordinator is not None and outcome.coordinator.attempts == 2
    assert world.raw("GET", "a") == Bulk(b"1")
    assert world.locks() == 0


def test_a_keyless_command_is_refused() -> None:
    world = World()
    outcome = world.transaction([["SET", "a", "1"], ["DBSIZE"]])
    world.run()
    assert isinstance(outcome.reply, ErrorReply)
    assert world.raw("GET", "a") == NullBulk()


def test_sort_patterns_are_refused() -> None:
    """(Scripts run, confined to their declared keys: `test_txn_scripts.py`.)"""
    world = World()
    world.raw("RPUSH", "a", "1")
    outcome = world.transaction([["SORT", "a", "BY", "w_*", "STORE", "b"]])
    world.run()
    assert isinstance(outcome.reply, ErrorReply)
    assert "cannot run" in outcome.reply.message
    assert world.raw("EXISTS", "b") == Integer(0)
    outcome = world.transaction([["SORT", "a", "STORE", "b"]])
    world.run()
    assert outcome.reply == Array((Integer(1),))
    assert world.raw("LRANGE", "b", "0", "-1") == Array((Bulk(b"1"),))


def test_a_transaction_rolls_forward_a_committed_lock_without_waiting_its_ttl() -> None:
    world = World()
    _lose_all_after_the_primary_commit(world)
    first = world.transaction([["SET", "a", "1"], ["SET", "b", "1"]])
    world.run()
    assert first.reply == Array((OK, OK))
    world.drops.clear()
    before = world.clock
    second = world.transaction([["INCR", "b"], ["INCR", "c"]])
    world.run()
    assert second.reply == Array((Integer(2), Integer(1)))
    assert world.clock - before < 0.1  # the ttl is 0.3 s: it did not wait for it
    assert world.locks() == 0


def test_changes_too_large_for_one_entry_are_refused() -> None:
    world = World()
    world.settings = replace(world.settings, max_bytes=1000)
    noise = Random(1).randbytes(1200)  # DUMP compresses: values that do not
    world.raw("SET", "a", noise[:600])
    outcome = world.transaction([["APPEND", "a", noise[600:]], ["SET", "b", "1"]])
    world.run()
    assert outcome.reply == CHANGES_TOO_LARGE
    world.raw("SET", "c", noise)
    outcome = world.transaction([["GET", "c"], ["SET", "b", "1"]])
    world.run()
    assert outcome.reply == TOO_LARGE
    assert world.raw("GET", "b") == NullBulk()
    assert world.raw("STRLEN", "a") == Integer(600)
    assert world.locks() == 0


def _die_after_first_commit(world: World) -> None:
    """The coordinator dies right after its first commit message left it."""
    sent: list[list[bytes]] = []

    def lost(argv: list[bytes]) -> bool:
        if argv[0] == b"cairn.txn.commit":
            sent.append(argv)
            return len(sent) > 1
        return bool(sent)

    world.drops.append(lost)


def _all_or_nothing(settings: TxnSettings, reads_ignore_locks: bool = False) -> list[Reply]:
    """A transaction over three regions whose coordinator dies after its first commit
    message; then readers read every key: all old or all new, unless a bug breaks it."""
    world = World()
    world.settings = settings
    world.resolver = Resolver(world, settings, world.rng)
    for region in world.regions:
        region.machine.reads_ignore_locks = reads_ignore_locks
    for key in ("a", "b", "c"):
        world.raw("SET", key, "old")
    _die_after_first_commit(world)
    world.transaction([["SET", "a", "new"], ["SET", "b", "new"], ["SET", "c", "new"]])
    world.run(until=0.05)
    world.drops.clear()
    return [world.call("GET", key) for key in ("a", "b", "c")]


def test_a_dead_coordinator_leaves_all_or_nothing() -> None:
    """The primary is committed first: readers roll the rest forward."""
    assert _all_or_nothing(txn_harness.DEFAULT_SETTINGS) == [Bulk(b"new")] * 3


def test_planted_secondaries_first_is_caught() -> None:
    """Planted bug: secondaries committed before the primary. The coordinator dies after
    committing one secondary; the primary's lock expires and is rolled back, so the
    transaction is half applied, which the all-or-nothing check sees."""
    plant = replace(txn_harness.DEFAULT_SETTINGS, plants=frozenset({SECONDARIES_FIRST}))
    values = _all_or_nothing(plant)
    assert Bulk(b"new") in values and Bulk(b"old") in values


def _read_after_ack(reads_ignore_locks: bool) -> Reply:
    """A transaction acknowledged once its primary committed, whose coordinator dies
    before the secondary's commit: a reader's GET of the secondary key."""
    world = World()
    for region in world.regions:
        region.machine.reads_ignore_locks = reads_ignore_locks
    world.raw("SET", "b", "old")
    _lose_all_after_the_primary_commit(world)
    outcome = world.transaction([["SET", "a", "1"], ["SET", "b", "2"]])
    world.run()
    assert outcome.reply == Array((OK, OK))  # acknowledged
    world.drops.clear()
    return world.call("GET", "b")


def test_a_read_after_the_acknowledgement_sees_the_transaction() -> None:
    assert _read_after_ack(reads_ignore_locks=False) == Bulk(b"2")


def test_planted_read_ignoring_a_lock_is_caught() -> None:
    """Planted bug: reads skip the lock check, so the read after the acknowledgement
    returns the value from before the transaction (not linearizable)."""
    assert _read_after_ack(reads_ignore_locks=True) == Bulk(b"old")
