"""Each planted Raft bug is caught on the multi-region path within a bounded number of seeds.

The multi-region counterpart of `test_planted_bugs.py`: every bug is switched on in every
region's Raft group (and the placement group's) and swept under the multi-region profile
aimed at it (`cairn.sim.region_profiles`); the first failing seed must come from the
invariant checkers or the linearizability checker, as a kind the bug can cause (a run
that merely fails to converge does not count). The same profiles with no bug stay safe
over the first seeds, so a violation above is the bug's, not the schedule's.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from cairn.raft.config import PlantedBug
from cairn.sim import InvariantKind
from cairn.sim.region_config import RegionSimResult
from cairn.sim.region_profiles import REGION_EXPOSES, REGION_PROFILES
from cairn.sim.region_runner import run_region_simulation

SEEDS = 12
"""Seeds swept per bug at most; each profile catches its bugs in about half of the seeds
or more, so twelve misses in a row would be a one-in-four-thousand streak."""
CONTROL_SEEDS = 2
"""Seeds per profile run without a bug."""

LINEARIZABILITY = "linearizability"
SAFETY = {
    InvariantKind.ELECTION_SAFETY.value,
    InvariantKind.LOG_MATCHING.value,
    InvariantKind.LEADER_COMPLETENESS.value,
    InvariantKind.STATE_MACHINE_SAFETY.value,
    InvariantKind.COMMITTED_ENTRY_LOST.value,
}
CAUGHT_AS: dict[PlantedBug, set[str]] = {
    PlantedBug.DOUBLE_VOTE: SAFETY,
    PlantedBug.UNSYNCED_VOTE: SAFETY,
    PlantedBug.NO_TRUNCATE: SAFETY | {LINEARIZABILITY},
    PlantedBug.COMMIT_OLD_TERM: SAFETY | {LINEARIZABILITY},
    PlantedBug.STALE_LEASE_READ: {LINEARIZABILITY},
    PlantedBug.SPLIT_KEY_LEFT_BEHIND: {LINEARIZABILITY},
    PlantedBug.APPLY_OUT_OF_RANGE: {LINEARIZABILITY},
}
"""The violations each bug may show up as (a stale read is visible only in the history;
a forgotten or doubled vote makes two leaders of a term first, or a leader missing a
committed entry, in some region)."""


def _kind(result: RegionSimResult) -> str:
    if result.violation is not None:
        return result.violation.kind.value
    return LINEARIZABILITY


@pytest.mark.parametrize(
    "bug", sorted(REGION_EXPOSES, key=lambda b: b.value), ids=lambda b: b.value
)
def test_the_multi_region_run_catches_each_planted_bug(bug: PlantedBug) -> None:
    profile = REGION_EXPOSES[bug]
    config = replace(REGION_PROFILES[profile], planted=frozenset({bug}))
    started = time.perf_counter()
    found = None
    for seed in range(SEEDS):
        result = run_region_simulation(replace(config, seed=seed))
        if not result.ok:
            found = result
            break
    assert found is not None, f"{bug.value}: no violation in {SEEDS} seeds of {profile}"
    elapsed = time.perf_counter() - started
    print(f"\n{bug.value} ({profile}): seed {found.seed} in {elapsed:.1f}s: {found.failure}")
    assert found.failure is not None and not found.failure.startswith("node-failed")
    assert _kind(found) in CAUGHT_AS[bug], found.failure


@pytest.mark.parametrize("name", sorted(set(REGION_EXPOSES.values())))
def test_the_same_profiles_are_safe_without_the_bugs(name: str) -> None:
    """(The transactions' profiles have their own control: tests/sim/test_sim_txn.py.)"""
    config = REGION_PROFILES[name]
    assert not config.planted
    for seed in range(CONTROL_SEEDS):
        result = run_region_simulation(replace(config, seed=seed))
        assert result.ok, f"{name} seed {seed}: {result.failure}"
        assert result.converged_after is not None
        assert sum(result.faults.values()) > 0
        if config.scenario == "figure-8":
            assert result.faults.get("figure-8:isolate", 0) >= 1, result.faults


def test_every_planted_bug_has_a_multi_region_profile() -> None:
    assert set(REGION_EXPOSES) == set(PlantedBug)
