"""The timestamp oracle under chaos on real processes: clients take timestamps from
random nodes (`POST /v1/tso`) while the placement group's leader is killed with -9 and
its leadership handed over, each time onto members whose clocks were first set 1-1.5 s
behind (`cairn.chaos.tso_faults`). The oracle must stay in real-time order (every
timestamp above every one received before it was asked for, none repeated): 0 anomalies.
The planted bug `tso-backwards` under the same faults is caught in test_chaos_plants.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from cairn.chaos.faults import PLACEMENT_FAULTS, FaultKind
from cairn.chaos.runner import ChaosConfig, ChaosResult, run_chaos

MIN_TIMESTAMPS = 200
"""Timestamps the clean run must take at least (a few hundred a second on an idle machine)."""


def tso_config(out: Path, plant: str | None = None) -> ChaosConfig:
    """A kill of the placement leader at 3 s, a transfer at 7.9 s (seed 2's schedule)."""
    return ChaosConfig(
        out=out,
        duration=14,
        seed=2,
        faults=PLACEMENT_FAULTS,
        workloads=("tso",),
        workers=4,
        network="loopback",
        plant=plant,
        final_quiet=2.0,
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
