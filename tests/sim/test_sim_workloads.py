"""The simulator's queue and stream workloads (`cairn.sim.workloads`): deterministic, doing
real work, checked by `cairn.check.queue` / `cairn.check.stream`, biting on a broken
machine, and a bounded CI sweep of each with every fault on the multi-region simulator."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner

from cairn.cli.main import main
from cairn.cli.sweep import sweep
from cairn.resp.reply import Integer
from cairn.sim import EVERY_FAULT, RegionSimConfig, run_region_simulation
from cairn.sim.workloads import Workload
from cairn.store.commands.spec import Ctx
from cairn.store.commands.table import COMMANDS

SWEEP_SEEDS = 24


@pytest.mark.parametrize("workload", [Workload.QUEUE, Workload.STREAM], ids=lambda w: w.value)
def test_a_quiet_run_does_real_work_and_passes_the_check(workload: Workload) -> None:
    config = RegionSimConfig(seed=3, nodes=3, steps=3000, faults=(), losses=0, workload=workload)
    a = run_region_simulation(replace(config, keep_history=True))
    assert a.ok, a.failure
    assert a.converged_after is not None
    assert a.workload_verdict is not None and a.workload_verdict.anomalies == 0
    assert a.workload_verdict.final_read
    assert a.ops_ok > 50
    fs = {op.f for op in a.history}
    expected = {"lpush", "rpop"} if workload is Workload.QUEUE else {"xadd", "xreadgroup", "xack"}
    assert expected <= fs
    b = run_region_simulation(replace(config, keep_history=True))
    assert (a.digest, a.history) == (b.digest, b.history)


def test_the_stream_check_bites_in_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """XACK answering without removing anything from the PEL (a lost acknowledgement on
    every replica) must show as acknowledged entries still pending."""

    def forgetful_xack(ctx: Ctx, args: object) -> Integer:
        assert isinstance(args, list)
        return Integer(len(args) - 2)

    monkeypatch.setitem(COMMANDS, "xack", replace(COMMANDS["xack"], handler=forgetful_xack))
    result = run_region_simulation(
        RegionSimConfig(
            seed=3, nodes=3, steps=3000, faults=(), losses=0, workload=Workload.STREAM
        )
    )
    assert result.failure is not None and "stream check" in result.failure
    assert "acknowledged by XACK" in result.failure


@pytest.mark.parametrize("workload", [Workload.QUEUE, Workload.STREAM], ids=lambda w: w.value)
def test_ci_sweep_every_fault_no_anomaly(workload: Workload) -> None:
    base = replace(EVERY_FAULT, steps=2500, workload=workload)
    started = time.perf_counter()
    results = list(sweep(base, range(SWEEP_SEEDS), workers=os.cpu_count() or 2))
    elapsed = time.perf_counter() - started
    failures = [f"seed {r.seed}: {r.failure}" for r in results if r.failure is not None]
    checked = [r for r in results if r.workload_verdict is not None]
    ops = sum(r.ops_ok for r in results)
    print(f"\n{workload.value} sweep: {SWEEP_SEEDS} seeds in {elapsed:.1f}s, {ops} ops ok")
    assert failures == []
    assert len(checked) == SWEEP_SEEDS
    read = sum(r.workload_verdict.final_read for r in checked if r.workload_verdict)
    assert read >= SWEEP_SEEDS * 3 // 4, f"only {read} runs had a final read"
    assert ops > SWEEP_SEEDS * 10


def test_cairn_sim_runs_a_workload_and_prints_its_check() -> None:
    args = ["sim", "--workload", "queue", "--seed", "2", "--nodes", "3", "--steps", "1500"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "queue check" in result.output and "acknowledged enqueues" in result.output
    assert "reproduce" not in result.output
