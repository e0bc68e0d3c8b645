"""The harness bites on real processes: with a planted bug, a short chaos run finds it.

`ack-before-sync` acknowledges writes that never reached the disk; power losses (kill -9
of every node, disks reverting to what was durable) must then show lost acknowledged
writes. `stale-follower-read` serves reads on followers without ReadIndex; partitions and
pauses must then show a non-linearizable read.
"""

from __future__ import annotations

from pathlib import Path

from cairn.chaos.faults import FaultKind
from cairn.chaos.runner import ChaosConfig, run_chaos
from cairn.runtime.plants import ACK_BEFORE_SYNC, STALE_FOLLOWER_READ


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
