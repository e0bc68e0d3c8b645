"""Each planted Raft bug is caught by a seed sweep within a bounded number of seeds.

These prove the harness bites: a checker that never fails would pass every other test.
Each bug is swept under the profile aimed at it (`cairn.sim.profiles`): Figure 8 for
COMMIT_OLD_TERM and NO_TRUNCATE, split votes with voters crashing right after voting for
UNSYNCED_VOTE and DOUBLE_VOTE, an isolated leader with lease reads for STALE_LEASE_READ.
The violation must come from the invariant checker or the linearizability checker, of a
kind the bug can cause. The second half runs every profile over the same seeds with no
bug and requires every run to be safe — so a violation above is the bug's, not the
schedule's — and the scripted faults to have struck.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from cairn.cli.sweep import sweep
from cairn.raft.config import PlantedBug
from cairn.sim import InvariantKind, SimConfig, SimResult
from cairn.sim.profiles import EXPOSES, PROFILES

SEEDS = 20
"""Seeds swept per bug (and per profile without a bug). Each targeted profile exposes its
bugs in about half of the seeds, so missing one in 20 would take a 1-in-a-million streak."""

LINEARIZABILITY = "linearizability"
SAFETY = {
    InvariantKind.ELECTION_SAFETY.value,
    InvariantKind.LOG_MATCHING.value,
    InvariantKind.LEADER_COMPLETENESS.value,
    InvariantKind.STATE_MACHINE_SAFETY.value,
    InvariantKind.COMMITTED_ENTRY_LOST.value,
}
CAUGHT_AS: dict[PlantedBug, set[str]] = {
    PlantedBug.DOUBLE_VOTE: {InvariantKind.ELECTION_SAFETY.value},
    PlantedBug.NO_TRUNCATE: SAFETY | {LINEARIZABILITY},
    PlantedBug.COMMIT_OLD_TERM: SAFETY | {LINEARIZABILITY},
    PlantedBug.UNSYNCED_VOTE: SAFETY,
    PlantedBug.STALE_LEASE_READ: {LINEARIZABILITY},
}
"""The violations each bug may show up as: a forgotten or doubled vote makes two leaders
of one term first (other safety violations follow from that); a stale read is visible
only in the history."""

SCRIPTED: dict[str, str] = {
    "figure-8": "figure-8:committed",
    "split-vote": "split-vote:crash-voter",
    "stale-leader": "stale-leader:isolate",
}
"""For each targeted profile, the scripted fault that must have struck in its runs."""


def _workers() -> int:
    return os.cpu_count() or 1


def _kind(result: SimResult) -> str:
    if result.violation is not None:
        return result.violation.kind.value
    return LINEARIZABILITY


@pytest.mark.parametrize("bug", list(PlantedBug), ids=lambda b: b.value)
def test_the_sweep_finds_each_planted_bug(bug: PlantedBug) -> None:
    config = replace(PROFILES[EXPOSES[bug]], planted=frozenset({bug}))
    started = time.perf_counter()
    found = next(
        (r for r in sweep(config, range(SEEDS), _workers(), lambda r: not r.ok) if not r.ok),
        None,
    )
    elapsed = time.perf_counter() - started
    assert found is not None, f"{bug.value}: no violation in {SEEDS} seeds of {EXPOSES[bug]}"
    print(f"\n{bug.value} ({EXPOSES[bug]}): seed {found.seed} in {elapsed:.1f}s: {found.failure}")
    assert _kind(found) in CAUGHT_AS[bug], found.failure


@pytest.mark.parametrize("name", sorted(set(EXPOSES.values())))
def test_the_same_profiles_are_safe_without_the_bugs(name: str) -> None:
    config: SimConfig = PROFILES[name]
    assert not config.planted
    results = list(sweep(config, range(SEEDS), _workers()))
    failures = [f"seed {r.seed}: {r.failure}" for r in results if not r.ok]
    assert failures == []
    assert sum(r.faults.get(SCRIPTED[name], 0) for r in results) >= SEEDS
    assert sum(r.linearizable is None for r in results) <= SEEDS // 10
