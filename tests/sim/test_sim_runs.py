"""Whole runs of the simulator: the CI sweep with every fault, determinism, the real store
machine under the registers, and a broken apply caught."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from cairn.cli.sweep import sweep
from cairn.raft.types import ReadOnlyOption
from cairn.sim import EVERY_FAULT, InvariantKind, RegionSimConfig, run_region_simulation
from cairn.sim.store_range import SimStoreMachine

CI_SEEDS = 300
CI_STEPS = 2500


def test_ci_sweep_300_seeds_every_fault_no_violation() -> None:
    """300 seeds x 2,500 steps, every fault and buggify; about a minute on 2 cores."""
    base = replace(EVERY_FAULT, steps=CI_STEPS)
    started = time.perf_counter()
    results = list(sweep(base, range(CI_SEEDS), workers=os.cpu_count() or 2))
    elapsed = time.perf_counter() - started
    failures = [f"seed {r.seed}: {r.failure}" for r in results if r.failure is not None]
    unknown = sum(r.linearizable is None for r in results)
    print(f"\nCI sweep: {CI_SEEDS} seeds x {CI_STEPS} steps in {elapsed:.1f}s; {unknown} unknown")
    assert len(results) == CI_SEEDS
    assert failures == []
    assert unknown <= CI_SEEDS // 20
    assert sum(r.splits for r in results) >= CI_SEEDS // 30  # 22 of 300 seeds
    assert sum(r.faults.get("power-loss", 0) for r in results) >= CI_SEEDS // 10


@pytest.mark.slow
def test_slow_sweep_10000_seeds() -> None:
    failures = [
        f"seed {r.seed}: {r.failure}"
        for r in sweep(EVERY_FAULT, range(10_000))
        if r.failure is not None
    ]
    assert failures == []


def test_both_read_modes_are_drawn_from_seeds() -> None:
    modes = {run_region_simulation(RegionSimConfig(seed=s, steps=10)).read_mode for s in range(8)}
    assert modes == {ReadOnlyOption.SAFE, ReadOnlyOption.LEASE_BASED}


def test_registers_are_set_append_and_an_eval_cas_on_the_real_store() -> None:
    result = run_region_simulation(RegionSimConfig(seed=3, steps=3000, keep_history=True))
    assert result.ok, result.failure
    assert result.verdict is not None and result.verdict.ok
    assert {op.f for op in result.history} == {"get", "put", "append", "cas"}
    swapped = [op for op in result.history if op.f == "cas" and op.type.value == "ok"]
    refused = [op for op in result.history if op.f == "cas" and op.type.value == "fail"]
    assert swapped and refused


def test_a_violation_inside_a_node_driver_still_stops_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The driver stops itself on any exception from its machine; the runner must see the
    failed driver and report it."""

    def broken_apply(self: SimStoreMachine, index: int, data: bytes) -> object:
        raise RuntimeError(f"cannot apply {index}")

    monkeypatch.setattr(SimStoreMachine, "apply", broken_apply)
    result = run_region_simulation(RegionSimConfig(seed=3, steps=3000, faults=()))
    assert result.violation is not None
    assert result.violation.kind is InvariantKind.NODE_FAILED
    assert "cannot apply" in result.violation.description
