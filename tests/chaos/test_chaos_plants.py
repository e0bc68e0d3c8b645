"""The harness bites on real processes: with a planted bug, a short chaos run finds it.

`ack-before-sync` acknowledges writes that never reached the disk; power losses (kill -9
of every node, disks reverting to what was durable) must then show lost acknowledged
writes. `stale-follower-read` serves reads on followers without ReadIndex; partitions and
pauses must then show a non-linearizable read.

The cross-region transactions' plants run on a cluster founded with 4 regions (the
bank's accounts and the lists spread over all of them). `txn-secondaries-first` commits
a transaction's secondaries before its primary; the bug needs the coordinator to die
between the two commits, which the plant brings itself (node 1 exits once, after the
secondaries' commits of its first such transaction: a kill -9 hits those milliseconds
too rarely for a short run). The primary's lock then expires and is rolled back, and
the bank's reads must show a wrong total. `txn-reads-ignore-locks` lets a plain read
skip the locks: the list-append workload's plain LRANGE of a key it just appended to,
before the secondary's commit applied, must show a real-time cycle. test_chaos_txn.py
runs the same workloads on the same kind of cluster without a plant: clean.

`tso-backwards` lets a new placement leader's timestamp oracle start from its own clock
without first committing a bound above the saved one: a leadership transfer onto a
member whose clock was set behind (`cairn.chaos.tso_faults`) must then show the `tso`
workload a timestamp below one received before it was asked for. test_chaos_tso.py runs
the same faults without the plant: clean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cairn.chaos.faults import FaultKind
from cairn.chaos.runner import ChaosConfig, run_chaos
from cairn.placement.tso import TSO_BACKWARDS
from cairn.resp.reply import Array, Reply
from cairn.runtime.plants import (
    ACK_BEFORE_SYNC,
    CRASH_LOG,
    CRASH_MARK,
    CRASH_NODE,
    CRASH_STATUS,
    STALE_FOLLOWER_READ,
    TXN_READS_IGNORE_LOCKS,
    TXN_SECONDARIES_FIRST,
    CrashBeforePrimaryCommit,
    planted_io,
)
from cairn.txn.protocol import commit_argv


def test_power_loss_finds_writes_acknowledged_before_sync(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=25,
        seed=3,
        faults=frozenset({FaultKind.POWER_LOSS}),
        workloads=("register", "counter"),
        workers=3,
        network="loopback",
        plant=ACK_BEFORE_SYNC,
    )
    result = run_chaos(config)
    assert not result.ok
    assert result.lost > 0, result.anomalies
    counter = next(c for c in result.checks if c.name == "counter")
    assert not counter.ok and "final value" in " ".join(counter.anomalies)


def test_partitions_find_stale_follower_reads(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=25,
        seed=4,
        faults=frozenset({FaultKind.PARTITION, FaultKind.PAUSE}),
        workloads=("register",),
        workers=4,
        network="loopback",
        plant=STALE_FOLLOWER_READ,
    )
    result = run_chaos(config)
    register = next(c for c in result.checks if c.name == "register")
    assert not register.ok, "stale follower reads went unnoticed"
    assert "no linearization" in register.anomalies[0]
    assert result.lost == 0  # the bug loses no write; it only reads the past


def test_a_crash_between_commits_finds_secondaries_committed_first(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=7,
        seed=2,
        faults=frozenset(),
        workloads=("bank",),
        workers=4,
        network="loopback",
        plant=TXN_SECONDARIES_FIRST,
        regions=4,
    )
    result = run_chaos(config)
    log = (tmp_path / "cluster" / f"node{CRASH_NODE}.log").read_text(errors="replace")
    assert CRASH_LOG in log, "no coordinator crashed between its commits"
    assert result.cross_region["bank"]["cross_region"] >= 3, result.cross_region
    bank = next(c for c in result.checks if c.name == "bank")
    assert not bank.ok, "half-committed transfers went unnoticed"
    assert any("wrong-total" in a for a in bank.anomalies), bank.anomalies


def test_plain_reads_find_reads_that_ignore_locks(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=6,
        seed=3,
        faults=frozenset(),
        workloads=("append",),
        workers=4,
        network="loopback",
        plant=TXN_READS_IGNORE_LOCKS,
        regions=4,
        final_quiet=1.5,
    )
    result = run_chaos(config)
    assert result.cross_region["append"]["cross_region"] >= 10, result.cross_region
    append = next(c for c in result.checks if c.name == "append")
    assert not append.ok, "reads of values from before acknowledged transactions went unnoticed"
    assert any("realtime" in a for a in append.anomalies), append.anomalies


def test_placement_transfers_find_a_timestamp_oracle_going_backwards(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=9,
        seed=1,  # one transfer, at 3 s
        faults=frozenset({FaultKind.PLACEMENT_TRANSFER}),
        workloads=("tso",),
        workers=4,
        network="loopback",
        plant=TSO_BACKWARDS,
        final_quiet=1.5,
    )
    result = run_chaos(config)
    outcomes = [f.outcome for f in result.faults]
    assert outcomes == ["succeeded"], [(f.describe(), f.notes) for f in result.faults]
    tso = next(c for c in result.checks if c.name == "tso")
    assert not tso.ok, "a timestamp oracle going backwards went unnoticed"
    assert "out of real-time order" in tso.anomalies[0], tso.anomalies
    assert "is not above" in tso.anomalies[1] and "ms of physical time back" in tso.anomalies[1]


class _FakeIO:
    """A `TxnIO` that keeps what was sent and answers when told."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[bytes], Callable[[Reply], None]]] = []
        self.timers: list[Callable[[], None]] = []

    def send(self, argv: list[bytes], done: Callable[[Reply], None]) -> None:
        self.sent.append((argv, done))

    def group(self, keys: Sequence[bytes]) -> list[list[bytes]] | None:
        return [list(keys)]

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        self.timers.append(action)

    def now(self) -> float:
        return 0.0


def _commit(io: CrashBeforePrimaryCommit, start_ts: int, secondaries: int) -> None:
    for _ in range(secondaries):
        io.send(commit_argv(start_ts, start_ts + 1, [b"s"], False), lambda r: None)
    io.send(commit_argv(start_ts, start_ts + 1, [b"p"], True), lambda r: None)


def test_the_planted_crash_waits_for_the_secondaries_and_comes_once(tmp_path: Path) -> None:
    fake = _FakeIO()
    exits: list[int] = []
    io = CrashBeforePrimaryCommit(fake, tmp_path / CRASH_MARK, exits.append)
    _commit(io, 10, 0)  # no secondaries: not counted, its primary's commit goes out
    assert len(fake.sent) == 1 and fake.sent[-1][0][3] == b"1"
    _commit(io, 20, 2)  # the first with secondaries: held until they are answered
    assert [argv[3] for argv, _ in fake.sent[1:]] == [b"0", b"0"] and len(fake.timers) == 1
    fake.sent[1][1](Array(()))
    fake.timers.pop()()
    assert not exits and len(fake.timers) == 1  # one secondary still unanswered
    fake.sent[2][1](Array(()))
    fake.timers.pop()()
    assert exits == [CRASH_STATUS] and (tmp_path / CRASH_MARK).exists()
    fresh = CrashBeforePrimaryCommit(_FakeIO(), tmp_path / CRASH_MARK, exits.append)
    for ts in (40, 50, 60):  # a restarted node with the mark never crashes again
        _commit(fresh, ts, 1)
    assert exits == [CRASH_STATUS]
    other = _FakeIO()
    assert planted_io(other, TXN_SECONDARIES_FIRST, CRASH_NODE + 1, tmp_path) is other
    assert planted_io(other, TXN_READS_IGNORE_LOCKS, CRASH_NODE, tmp_path) is other
