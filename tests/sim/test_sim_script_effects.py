"""Scripts replicated by their effects in the simulator: the bank workload's transfer
scripts (and the registers' compare-and-set) run once on the region leader and are
applied as `cairn.effects` entries, some found stale and run again, and the bank check
bites when stale effects are applied anyway."""

from __future__ import annotations

import pytest

import cairn.shard.script_effects as script_effects
import cairn.store.scripting.effects as effects
from cairn.sim import RegionSimConfig, run_region_simulation
from cairn.sim.workloads import Workload

CONFIG = RegionSimConfig(
    seed=5, nodes=3, steps=3000, faults=(), losses=0, workload=Workload.BANK, workload_key="{bank}"
)
"""The accounts under one hash tag: every transfer in one region, a third of them scripts."""


def test_bank_transfers_are_applied_as_effects_and_stale_ones_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runners: list[script_effects.ScriptEffects] = []
    real_init = script_effects.ScriptEffects.__init__

    def remember(self: script_effects.ScriptEffects, *args: object) -> None:
        real_init(self, *args)  # type: ignore[arg-type]
        runners.append(self)

    monkeypatch.setattr(script_effects.ScriptEffects, "__init__", remember)
    result = run_region_simulation(CONFIG)
    assert result.ok, result.failure
    assert result.workload_verdict is not None and result.workload_verdict.anomalies == 0
    assert sum(r.counters.applied for r in runners) > 10
    assert sum(r.counters.stale for r in runners) > 0


def test_the_bank_bites_when_stale_effects_are_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key's fingerprint the same: no entry is ever found stale, so transfers
    computed on balances another transfer changed meanwhile overwrite it."""
    monkeypatch.setattr(effects, "fingerprint", lambda db, key: b"same")
    result = run_region_simulation(CONFIG)
    assert result.failure is not None and "bank check" in result.failure, result.failure
