"""The multi-region simulation: determinism, the coverage invariant, and runs that split,
merge, move replicas, lose a node and converge."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.meta.region import Region, slot_bound
from cairn.sim.coverage import coverage_problem
from cairn.sim.region_config import RegionSimConfig
from cairn.sim.region_runner import run_region_simulation


def tiling(cuts: list[int]) -> list[Region]:
    bounds = [b""] + [slot_bound(c) for c in sorted(set(cuts))] + [b""]
    return [Region(i + 1, a, b) for i, (a, b) in enumerate(itertools.pairwise(bounds))]


@given(st.lists(st.integers(1, 16383), max_size=8))
def test_a_tiling_has_no_coverage_problem_and_dropping_or_growing_a_region_does(
    cuts: list[int],
) -> None:
    regions = tiling(cuts)
    assert coverage_problem(regions) is None
    assert coverage_problem(regions[1:]) is not None
    if len(regions) > 1:
        middle = regions[len(regions) // 2]
        assert coverage_problem([r for r in regions if r is not middle]) is not None
        grown = Region(99, regions[0].start, regions[1].end or b"")
        assert "overlap" in (coverage_problem([*regions, grown]) or "")


def test_no_region_is_a_gap() -> None:
    assert coverage_problem([]) == "no region covers the keyspace"
    assert "gap" in (coverage_problem([Region(1, b"", slot_bound(5))]) or "")


def test_same_seed_same_run() -> None:
    config = RegionSimConfig(seed=3, steps=2500, keep_history=True)
    a, b = run_region_simulation(config), run_region_simulation(config)
    assert a.ok, a.failure
    assert a.digest == b.digest
    assert a.history == b.history
    assert run_region_simulation(RegionSimConfig(seed=4, steps=2500)).digest != a.digest


@pytest.mark.parametrize("seed", [6, 9])  # seeds whose runs split and move
def test_a_run_splits_moves_and_converges_safely(seed: int) -> None:
    result = run_region_simulation(RegionSimConfig(seed=seed, steps=8000))
    assert result.ok, result.failure
    assert result.converged_after is not None
    assert result.splits >= 1
    assert result.moves >= 1
    assert result.ops_ok > 50
    assert result.verdict is not None and result.verdict.ok


def test_a_run_that_splits_and_merges_under_faults_stays_safe() -> None:
    result = run_region_simulation(RegionSimConfig(seed=51, steps=6000))
    assert result.ok, result.failure
    assert result.splits >= 1 and result.merges >= 1
    assert result.converged_after is not None


def test_a_lost_node_is_repaired_onto_a_new_one() -> None:
    result = run_region_simulation(
        RegionSimConfig(seed=0, steps=4000, faults=("partition",), losses=1)
    )
    assert result.ok, result.failure
    assert result.faults.get("lose") == 1 and result.faults.get("add-node") == 1
    assert result.converged_after is not None


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError):
        RegionSimConfig(seed=0, nodes=2)
    with pytest.raises(ValueError):
        RegionSimConfig(seed=0, faults=("earthquake",))


def test_cairn_sim_regions_runs_a_seed_and_reports_it() -> None:
    from click.testing import CliRunner

    from cairn.cli.main import main

    result = CliRunner().invoke(
        main, ["sim", "--regions", "--seed", "5", "--steps", "1500", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "seed 5:" in result.output and "1 seeds, 0 failed" in result.output
    refused = CliRunner().invoke(main, ["sim", "--regions", "--faults", "membership"])
    assert refused.exit_code == 2
