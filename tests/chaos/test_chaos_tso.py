"""The timestamp oracle under chaos on real processes: clients take timestamps from
random nodes (`POST /v1/tso`) while the placement group's leader is killed with -9 and
its leadership handed over, each time onto members whose clocks were first set 1-1.5 s
behind (`cairn.chaos.tso_faults`). The oracle must stay in real-time order (every
timestamp above every one received before it was asked for, none repeated): 0 anomalies.
The planted bug `tso-backwards` is caught by a run with one of these transfers in
test_chaos_plants.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cairn.chaos.faults import PLACEMENT_FAULTS, FaultKind
from cairn.chaos.runner import ChaosConfig, ChaosResult, run_chaos

MIN_TIMESTAMPS = 200
"""Timestamps the clean run must take at least (a few hundred a second on an idle machine)."""


def tso_config(out: Path) -> ChaosConfig:
    """A kill of the placement leader at 3 s, a transfer at 7.2 s (seed 180's schedule)."""
    return ChaosConfig(
        out=out,
        duration=13,
        seed=180,
        faults=PLACEMENT_FAULTS,
        workloads=("tso",),
        workers=4,
        network="loopback",
        final_quiet=1.5,
    )


def served_by(result: ChaosResult) -> set[int]:
    """The placement leaders that served the timestamps taken (as the nodes named them)."""
    events = [json.loads(line) for line in result.histories["tso"].read_text().splitlines()]
    return {e["value"][1] for e in events if e["type"] == "ok"}


def test_timestamps_stay_in_order_across_placement_leader_kills_and_transfers(
    tmp_path: Path,
) -> None:
    result = run_chaos(tso_config(tmp_path), lambda t, m: print(f"[{t:6.1f}s] {m}"))
    assert [p.kind for p in result.plan] == [
        FaultKind.PLACEMENT_KILL,
        FaultKind.PLACEMENT_TRANSFER,
    ]
    assert result.ok, "\n".join(result.anomalies)
    tso = next(c for c in result.checks if c.name == "tso")
    assert tso.ok and "0 out of order" in tso.details, tso.details
    assert result.ops["tso"]["ok"] >= MIN_TIMESTAMPS, result.ops
    kill, transfer = result.faults
    assert kill.target.startswith("placement leader") and "behind" in kill.detail, kill
    assert transfer.outcome == "succeeded" and "behind" in transfer.detail, transfer
    assert len(served_by(result)) >= 2, tso.details  # the leadership did move under load


def test_placement_faults_are_their_own_group_with_handlers_and_the_admin_api() -> None:
    from cairn.chaos.faults import ALL_FAULTS, REGION_FAULTS
    from cairn.chaos.report import FAULT_COLOURS
    from cairn.chaos.tso_faults import PlacementFaults
    from cairn.cli.chaos_cmd import parse_faults, parse_workloads

    assert not PLACEMENT_FAULTS & (ALL_FAULTS | REGION_FAULTS)
    assert parse_faults("placement") == PLACEMENT_FAULTS
    assert "tso" in parse_workloads("all") and parse_workloads("tso") == ("tso",)
    faults = PlacementFaults(None, random.Random(1))  # type: ignore[arg-type]
    assert faults.handler(FaultKind.PLACEMENT_KILL) == faults.kill
    assert faults.handler(FaultKind.PLACEMENT_TRANSFER) == faults.transfer
    plain = ChaosConfig(Path("x"))
    assert not plain.admin_api
    assert ChaosConfig(Path("x"), workloads=("tso",)).admin_api
    placement = ChaosConfig(Path("x"), faults=frozenset({FaultKind.PLACEMENT_KILL}))
    assert placement.admin_api and placement.founding_regions == 1
    assert set(FAULT_COLOURS) == set(FaultKind)  # every fault has its band in the report


def test_the_check_counts_and_explains_timestamps_that_went_back() -> None:
    from cairn.chaos.tso_workload import TsoWorkload
    from cairn.check.history import Op, OpType
    from cairn.placement.tso import compose

    ms = 1_000_000
    workload = TsoWorkload([("127.0.0.1", 1)], workers=1)
    workload.started = 0

    def take(process: int, node: str, start: int, end: int, ts: int | None, leader: int) -> None:
        workload.history.ops.append(Op(process, OpType.INVOKE, "tso", node, None, start * ms))
        done = OpType.FAIL if ts is None else OpType.OK
        value = None if ts is None else (ts, leader)
        workload.history.ops.append(Op(process, done, "tso", node, value, end * ms))

    take(1, "n1", 0, 10, compose(5_000, 0), 1)
    take(2, "n2", 5, 15, compose(5_000, 1), 1)  # concurrent with the first: fine
    take(1, "n3", 20, 30, compose(4_200, 0), 3)  # the new leader's clock is behind
    take(2, "n1", 25, 2_000, None, 0)  # a failure promises nothing
    take(3, "n2", 40, 50, compose(4_200, 1), 3)
    result = workload.check(None)
    assert not result.ok and "2 out of order" in result.details, result
    assert result.anomalies[0] == "2 timestamps out of real-time order or repeated"
    assert result.anomalies[1] == (
        f"timestamp {compose(4_200, 0)} from n3 (placement leader 3), asked at t=0.020s, "
        f"is not above {compose(5_000, 1)} from n2 (placement leader 1) received at "
        "t=0.015s: 800 ms of physical time back"
    )
    assert "leaders [1, 3]" in result.details
    workload.history.ops[4:] = []  # without the late leader's timestamps: clean
    assert workload.check(None).ok
