"""Async commit (`cairn.txn.coordinator`, `cairn.txn.resolver`) over real store machines:
answered once every prewrite succeeded, committed in the background primary first; a
coordinator dead after its last prewrite rolled forward by a reader, one dead with a
prewrite missing rolled back; a coordinator still running racing a reader's check of its
secondaries, an ambiguous prewrite, the background commit racing a resolver; and
transactions over the limits keeping the two-phase commit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from txn_harness import World

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, NullBulk, Reply
from cairn.runtime.config import ConfigError, from_mapping
from cairn.runtime.txn_wiring import cross_region
from cairn.shard.topology import Topology
from cairn.store.txn_locks import COMMITTED, read_lock, read_status
from cairn.txn import Coordinator, TxnSettings
from cairn.txn.coordinator import SECONDARIES_FIRST
from cairn.txn.protocol import KIND_UNCHANGED
from cairn.txn.scratch import store_scratch

PREWRITE = b"cairn.txn.prewrite"
COMMIT = b"cairn.txn.commit"
ROLLBACK = b"cairn.txn.rollback"


class DyingIO:
    """The world as one coordinator sees it: it dies (sends nothing more, hears nothing
    more) once `dies_after(argv)` holds for a command it sent; `lose(argv)` delivers a
    command but loses its answer (an `-UNCERTAIN` comes back instead)."""

    def __init__(
        self,
        world: World,
        dies_after: Callable[[list[bytes]], bool] = lambda argv: False,
        lose: Callable[[list[bytes]], bool] = lambda argv: False,
        skip: Callable[[list[bytes]], bool] = lambda argv: False,
    ) -> None:
        self.world = world
        self.dies_after = dies_after
        self.lose = lose
        self.skip = skip
        self.dead = False
        self.sent: list[list[bytes]] = []

    def send(self, argv: list[bytes], done: Callable[[Reply], None]) -> None:
        if self.dead:
            return
        self.sent.append(argv)
        if self.skip(argv):
            return  # it never left
        lost = self.lose(argv)

        def back(reply: Reply) -> None:
            if not self.dead:
                done(ErrorReply("UNCERTAIN the answer was lost") if lost else reply)

        self.world.send(argv, back)
        if self.dies_after(argv):
            self.world.later(0, self.die)  # the commands sent with it still leave

    def die(self) -> None:
        self.dead = True

    def group(self, keys: list[bytes]) -> list[list[bytes]] | None:
        return self.world.group(keys)

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        self.world.later(delay_s, lambda: None if self.dead else action())

    def now(self) -> float:
        return self.world.now()


def start(
    world: World,
    io: DyingIO,
    commands: list[list[str]],
    answered_after: list[int] | None = None,
) -> list[Reply]:
    """Start a transaction whose coordinator talks through `io`; its answers (and in
    `answered_after`, how many commands it had sent when it answered)."""
    answers: list[Reply] = []
    argvs = [[a.encode() for a in c] for c in commands]

    def done(reply: Reply) -> None:
        answers.append(reply)
        if answered_after is not None:
            answered_after.append(len(io.sent))

    coordinator = Coordinator(
        [],
        argvs,
        io,
        world.oracle,
        store_scratch,
        world.settings,
        world.rng,
        world.clock + 2.0,
        done,
        world.resolver.resolve,
    )
    coordinator.start()
    return answers


def old_values(world: World, *keys: str) -> None:
    for key in keys:
        world.raw("SET", key, "old")


def primary_status(world: World, start_ts: int) -> int | None:
    status = read_status(world.regions[0].machine.keyspace, b"a", start_ts)
    return None if status is None else status.state


def start_ts_of(sent: list[list[bytes]]) -> int:
    return int(next(a for a in sent if a[0] == b"cairn.txn.lock")[1])


def once(match: Callable[[list[bytes]], bool]) -> Callable[[list[bytes]], bool]:
    """`match`, true for its first matching command only."""
    seen: list[bool] = []

    def first(argv: list[bytes]) -> bool:
        if seen or not match(argv):
            return False
        seen.append(True)
        return True

    return first


def test_answered_after_the_prewrites_then_committed_primary_first() -> None:
    world = World()
    io = DyingIO(world)
    answered_after: list[int] = []
    answers = start(world, io, [["MSET", "a", "1", "b", "2"], ["GET", "c"]], answered_after)
    world.run()
    assert answers == [Array((OK, NullBulk()))]
    assert not any(a[0] == COMMIT for a in io.sent[: answered_after[0]])  # no commit round
    commits = [a for a in world.sent if a[0] == COMMIT]
    assert commits[0][3] == b"1" and all(a[3] == b"0" for a in commits[1:])  # primary first
    start_ts = start_ts_of(world.sent)
    assert commits[0][2] == b"%d" % start_ts  # commit_ts: its start_ts, no oracle trip
    assert world.oracle.last == start_ts
    assert [world.raw("GET", k) for k in "ab"] == [Bulk(b"1"), Bulk(b"2")]
    assert world.raw("EXISTS", "c") == Integer(0)
    assert primary_status(world, start_ts) == COMMITTED
    assert world.locks() == 0


def test_every_locked_key_is_prewritten_the_unchanged_with_the_marker() -> None:
    world = World()
    world.raw("SET", "c", "kept")
    world.transaction([["SET", "a", "1"], ["SET", "b", "2"], ["GET", "c"]])
    world.run()
    prewrites = [a for a in world.sent if a[0] == PREWRITE]
    assert len(prewrites) == 3
    to_c = next(a for a in prewrites if a[3] == b"c")
    assert to_c[4] == b"%d" % KIND_UNCHANGED
    to_a = next(a for a in prewrites if a[3] == b"a")
    assert to_a[7:] == [b"2", b"b", b"c"]  # the primary's region lists the secondaries
    assert world.raw("GET", "c") == Bulk(b"kept")


def test_a_coordinator_dead_after_its_last_prewrite_is_rolled_forward_by_a_reader() -> None:
    world = World()
    old_values(world, "a", "b", "c")
    io = DyingIO(world, dies_after=lambda argv: argv[0] == PREWRITE)
    commands = [["SET", "a", "new"], ["SET", "b", "new"], ["GET", "c"], ["INCR", "cnt"]]
    answers = start(world, io, commands)
    world.run(until=0.02)
    assert answers == [] and io.dead and world.locks() == 4
    before = world.clock
    assert world.call("GET", "b") == Bulk(b"new")  # checked, committed, rolled forward
    assert world.clock - before < 0.05  # the ttl is 0.3 s: not waited for
    assert world.call("GET", "c") == Bulk(b"old")  # locked for the read only, unchanged
    assert world.call("GET", "a") == Bulk(b"new")
    assert world.call("GET", "cnt") == Bulk(b"1")
    assert world.locks() == 0
    assert world.resolver.checked >= 1


def test_a_coordinator_dead_with_a_prewrite_missing_is_rolled_back() -> None:
    world = World()
    old_values(world, "a", "b", "c")
    io = DyingIO(
        world,
        dies_after=lambda argv: argv[0] == PREWRITE,
        skip=lambda argv: argv[0] == PREWRITE and argv[3] == b"c",  # never left
    )
    start(world, io, [["SET", "a", "new"], ["SET", "b", "new"], ["SET", "c", "new"]])
    world.run(until=0.02)
    before = world.clock
    assert world.call("GET", "b") == Bulk(b"old")  # c not prewritten: rolled back
    assert world.clock - before < 0.05
    assert [world.call("GET", k) for k in "ac"] == [Bulk(b"old")] * 2
    assert world.locks() == 0


def test_a_primary_never_prewritten_is_rolled_back_after_its_ttl() -> None:
    world = World()
    old_values(world, "a", "b")
    io = DyingIO(
        world,
        dies_after=lambda argv: argv[0] == PREWRITE,
        skip=lambda argv: argv[0] == PREWRITE and argv[3] == b"a",
    )
    start(world, io, [["SET", "a", "new"], ["SET", "b", "new"]])
    world.run(until=0.02)
    assert world.call("GET", "b") == Bulk(b"old")  # the primary alive: waited for its ttl
    assert world.clock >= 0.3
    assert world.call("GET", "a") == Bulk(b"old")
    assert world.locks() == 0


def test_a_reader_check_beats_a_slow_prewrite_and_the_coordinator_starts_over() -> None:
    """The reader finds c locked, not prewritten: rolls it back, then the transaction;
    the coordinator's late prewrite of c answers `lost`, it rolls back and runs again."""
    world = World()
    world.raw("SET", "a", "0")
    world.delays.append((lambda argv: argv[0] == PREWRITE and argv[3] == b"c", 0.05))
    outcome = world.transaction([["INCR", "a"], ["SET", "c", "x"]])
    world.run(until=0.004)  # a's prewrite applied, c's still on its way
    assert world.call("GET", "a") == Bulk(b"0")
    world.run()
    assert outcome.reply == Array((Integer(1), OK))
    assert outcome.coordinator is not None and outcome.coordinator.attempts == 2
    assert [world.raw("GET", k) for k in "ac"] == [Bulk(b"1"), Bulk(b"x")]
    assert world.locks() == 0


def test_a_prewrite_applied_with_its_answer_lost_is_rolled_back_then_run_again() -> None:
    world = World()
    world.raw("SET", "a", "0")
    io = DyingIO(world, lose=once(lambda argv: argv[0] == PREWRITE and argv[3] == b"b"))
    answers = start(world, io, [["INCR", "a"], ["SET", "b", "x"]])
    world.run()
    assert answers == [Array((Integer(1), OK))]
    assert world.raw("GET", "a") == Bulk(b"1")  # once: the first attempt rolled back
    starts = {a[1] for a in io.sent if a[0] == PREWRITE}
    assert len(starts) == 2
    assert world.locks() == 0


def test_a_reader_that_committed_an_ambiguous_attempt_makes_it_the_answer() -> None:
    """b's prewrite applied, its answer lost; before the coordinator's rollback of the
    primary arrives, a reader finds every key prewritten and commits: the rollback
    answers `committed`, and that attempt is the answer (applied once)."""
    world = World()
    world.raw("SET", "a", "0")
    io = DyingIO(world, lose=once(lambda argv: argv[0] == PREWRITE and argv[3] == b"b"))
    world.delays.append((lambda argv: argv[0] == ROLLBACK and argv[2] == b"1", 0.05))
    answers = start(world, io, [["INCR", "a"], ["SET", "b", "x"]])
    world.run(until=0.01)
    assert answers == []
    assert world.call("GET", "b") == Bulk(b"x")  # the reader committed it
    world.run()
    assert answers == [Array((Integer(1), OK))]
    assert world.raw("GET", "a") == Bulk(b"1")
    assert len({a[1] for a in io.sent if a[0] == PREWRITE}) == 1  # never ran again
    assert world.locks() == 0


def test_the_background_commit_racing_a_resolver_commits_once() -> None:
    world = World()
    world.delays.append((lambda argv: argv[0] == COMMIT and argv[3] == b"1", 0.05))
    outcome = world.transaction([["SET", "a", "1"], ["INCR", "b"], ["SET", "c", "3"]])
    while not outcome.replies:
        world.run(until=world.clock + 0.0005)
    assert outcome.reply == Array((OK, Integer(1), OK))
    world.run(until=world.clock + 0.01)  # the secondaries wait for the primary's commit
    assert world.call("GET", "a") == Bulk(b"1")  # checked: all prewritten, committed
    assert world.call("GET", "b") == Bulk(b"1")  # resolved before the primary's commit
    world.run()
    assert [world.raw("GET", k) for k in "abc"] == [Bulk(b"1"), Bulk(b"1"), Bulk(b"3")]
    assert world.locks() == 0


def test_over_the_limits_a_transaction_keeps_the_two_phase_commit() -> None:
    for settings in (
        TxnSettings(lock_ttl_ms=300, async_max_keys=2),
        TxnSettings(lock_ttl_ms=300, async_max_key_bytes=2),  # three keys of one byte
        TxnSettings(lock_ttl_ms=300, async_max_keys=0),
    ):
        world = World()
        world.settings = settings
        io = DyingIO(world)
        answered_after: list[int] = []
        commands = [["SET", "a", "1"], ["SET", "b", "2"], ["SET", "c", "3"]]
        answers = start(world, io, commands, answered_after)
        world.run()
        assert answers == [Array((OK, OK, OK))]
        before = io.sent[: answered_after[0]]
        assert next(a for a in before if a[0] == COMMIT)[3] == b"1"  # the 2PC commit point
        assert not any(len(a) > 3 + 4 * int(a[2]) for a in io.sent if a[0] == PREWRITE)
        assert world.locks() == 0


def test_planted_early_secondary_commit_is_caught_and_the_clean_run_is_not() -> None:
    """A coordinator that dies right after its first commit message: with async commit
    that is the background primary commit, and readers roll the rest forward; with the
    planted bug it is a secondary's commit sent before every prewrite answered, and the
    readers' check, finding that lock gone, rolls the transaction back: half applied."""
    for plants, expected in ((frozenset(), {b"new"}), (frozenset({SECONDARIES_FIRST}), None)):
        world = World()
        world.settings = TxnSettings(lock_ttl_ms=300, plants=plants)
        old_values(world, "a", "b", "c")
        world.delays.append((lambda argv: argv[0] == PREWRITE and argv[3] == b"c", 0.01))
        committed: list[bool] = []

        def dies(argv: list[bytes], committed: list[bool] = committed) -> bool:
            if argv[0] == COMMIT and not committed:
                committed.append(True)
                return False
            return bool(committed)

        world.drops.append(dies)
        world.transaction([["SET", "a", "new"], ["SET", "b", "new"], ["SET", "c", "new"]])
        world.run(until=0.05)
        world.drops.clear()
        values = {world.call("GET", k).value for k in "abc"}  # type: ignore[union-attr]
        if expected is not None:
            assert values == expected
        else:
            assert values == {b"new", b"old"}
        assert world.locks() == 0
        assert read_lock(world.regions[0].machine.keyspace, b"a") is None


def test_the_node_config_reaches_the_coordinators_settings(tmp_path: Path) -> None:
    limits = {"async_commit_max_keys": 7, "async_commit_max_key_bytes": 99}
    raw = {
        "node_id": 1,
        "data_dir": str(tmp_path),
        "peers": {"1": "127.0.0.1:17001"},
        "cluster_secret": "a-test-secret-of-enough-bytes",
        "limits": limits,
    }
    cross = cross_region(from_mapping(raw), _no_attempt, _no_topology, _none)
    assert (cross.settings.async_max_keys, cross.settings.async_max_key_bytes) == (7, 99)
    default = cross_region(from_mapping(raw | {"limits": {}}), _no_attempt, _no_topology, _none)
    assert (default.settings.async_max_keys, default.settings.async_max_key_bytes) == (256, 4096)
    with pytest.raises(ConfigError):
        from_mapping(raw | {"limits": {"async_commit_max_keys": -1}})
    zero = from_mapping(raw | {"limits": {"async_commit_max_keys": 0}})
    off = cross_region(zero, _no_attempt, _no_topology, _none)
    assert off.settings.async_max_keys == 0  # 0: every transaction commits in two phases


def _no_attempt(*args: object) -> None:
    raise AssertionError("nothing is sent")


def _no_topology() -> Topology:
    raise AssertionError("no routing")


def _none() -> None:
    return None
