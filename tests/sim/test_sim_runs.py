"""Whole simulation runs: determinism, every fault kind happening, sweeps with no violation."""

from __future__ import annotations

import os
import random
import time
from dataclasses import replace

import pytest

from cairn.cli.sweep import sweep
from cairn.raft.types import ReadOnlyOption
from cairn.sim import ALL_FAULTS, Fault, InvariantKind, SimConfig, run_simulation
from cairn.sim.kv_machine import KVMachine
from cairn.sim.profiles import PROFILES
from cairn.sim.runner import _replica_config


def test_one_seed_twice_gives_the_same_digest_and_result() -> None:
    config = SimConfig(seed=11, steps=3000, keep_history=True)
    a, b = run_simulation(config), run_simulation(config)
    assert a.digest == b.digest
    assert a.history == b.history
    assert (a.ops_ok, a.ops_failed, a.ops_unknown, a.faults) == (
        b.ops_ok,
        b.ops_failed,
        b.ops_unknown,
        b.faults,
    )


def test_two_seeds_give_different_digests() -> None:
    a = run_simulation(SimConfig(seed=1, steps=1000))
    b = run_simulation(SimConfig(seed=2, steps=1000))
    assert a.digest != b.digest


def test_a_quiet_run_makes_progress_and_is_linearizable() -> None:
    result = run_simulation(SimConfig(seed=3, nodes=3, steps=3000, faults=frozenset()))
    assert result.ok, result.failure
    assert result.settled
    assert result.ops_ok > 50
    assert result.elections == 1
    assert result.linearizable is True
    assert result.faults.get("crash", 0) == 0 and result.faults.get("drop", 0) == 0


@pytest.mark.parametrize("fault", sorted(Fault, key=lambda f: f.value), ids=lambda f: f.value)
def test_each_fault_kind_actually_happens(fault: Fault) -> None:
    hits = 0
    for seed in range(6):
        result = run_simulation(SimConfig(seed=seed, steps=4000, faults=frozenset({fault})))
        assert result.ok, f"seed {seed}: {result.failure}"
        hits += result.faults.get(fault.value, 0)
    assert hits > 0


def test_membership_changes_add_promote_and_remove() -> None:
    seen: dict[str, int] = {}
    for seed in range(10):
        config = SimConfig(seed=seed, steps=6000, faults=frozenset({Fault.MEMBERSHIP}))
        result = run_simulation(config)
        assert result.ok, f"seed {seed}: {result.failure}"
        for name, count in result.faults.items():
            seen[name] = seen.get(name, 0) + count
    for name in ("membership:add-learner", "membership:promote", "membership:remove"):
        assert seen.get(name, 0) > 0, name


def test_both_read_modes_are_drawn_from_seeds() -> None:
    modes = {run_simulation(SimConfig(seed=s, steps=10)).read_mode for s in range(12)}
    assert modes == {ReadOnlyOption.SAFE, ReadOnlyOption.LEASE_BASED}


@pytest.mark.parametrize("nodes", [3, 7])
def test_other_cluster_sizes(nodes: int) -> None:
    result = run_simulation(SimConfig(seed=5, nodes=nodes, steps=4000))
    assert result.ok, result.failure


def test_ci_sweep_300_seeds_all_faults_no_violation() -> None:
    """300 seeds x 5,000 steps, all faults; about a minute on 2 cores (printed with -s)."""
    base = SimConfig(seed=0, steps=5000, faults=ALL_FAULTS)
    started = time.perf_counter()
    results = list(sweep(base, range(300), workers=os.cpu_count() or 2))
    elapsed = time.perf_counter() - started
    failures = [f"seed {r.seed}: {r.failure}" for r in results if r.failure is not None]
    unknown = sum(r.linearizable is None for r in results)
    print(f"\nCI sweep: 300 seeds x 5000 steps in {elapsed:.1f}s; {unknown} unknown verdicts")
    assert len(results) == 300
    assert failures == []
    assert unknown <= 15


@pytest.mark.slow
def test_slow_sweep_10000_seeds() -> None:
    base = SimConfig(seed=0, steps=5000)
    failures = [
        f"seed {r.seed}: {r.failure}"
        for r in sweep(replace(base), range(10_000))
        if r.failure is not None
    ]
    assert failures == []


def test_a_violation_inside_a_node_driver_still_stops_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The driver stops itself on any exception from its observer, swallowing the checker's
    raise; the runner must still see the violation (and report a driver that failed)."""

    def broken_apply(self: KVMachine, index: int, data: bytes) -> object:
        raise RuntimeError(f"cannot apply {index}")

    monkeypatch.setattr(KVMachine, "apply", broken_apply)
    result = run_simulation(SimConfig(seed=3, nodes=3, steps=3000, faults=frozenset()))
    assert result.violation is not None
    assert result.violation.kind is InvariantKind.NODE_FAILED
    assert "cannot apply" in result.violation.description


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_is_deterministic_and_safe_on_one_seed(name: str) -> None:
    config = replace(PROFILES[name], seed=4, steps=2000, keep_history=True)
    a, b = run_simulation(config), run_simulation(config)
    assert a.digest == b.digest
    assert a.history == b.history
    assert a.ok, a.failure


def test_forced_raft_settings_reach_the_nodes_and_keep_the_other_draws() -> None:
    forced = SimConfig(seed=1, pre_vote=False, max_size_per_msg=1, max_inflight_msgs=1)
    for seed in range(8):
        mode = ReadOnlyOption.SAFE
        a = _replica_config(forced, mode, random.Random(seed))
        b = _replica_config(SimConfig(seed=1), mode, random.Random(seed))
        assert (a.raft.pre_vote, a.raft.max_size_per_msg, a.raft.max_inflight_msgs) == (
            False,
            1,
            1,
        )
        assert a.snapshot_threshold == b.snapshot_threshold


@pytest.mark.parametrize(
    "changes",
    [{"readers": 5, "clients": 4}, {"readers": -1}, {"clock_skew": 0.5}, {"clock_skew": -0.1}],
    ids=["readers>clients", "readers<0", "skew-too-big", "skew-negative"],
)
def test_bad_profile_knobs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimConfig(seed=0, **changes)  # type: ignore[arg-type]


def test_runs_replicate_the_real_redis_state_machine_or_the_kv_model() -> None:
    from cairn.sim.redis_machine import MachineKind

    redis_run = run_simulation(
        SimConfig(seed=3, steps=3000, machine=MachineKind.REDIS, keep_history=True)
    )
    kv_run = run_simulation(
        SimConfig(seed=3, steps=3000, machine=MachineKind.KV, keep_history=True)
    )
    assert redis_run.machine is MachineKind.REDIS and kv_run.machine is MachineKind.KV
    assert redis_run.failure is None and kv_run.failure is None
    assert redis_run.verdict is not None and redis_run.verdict.ok
    assert {op.f for op in redis_run.history} == {"get", "put", "append"}
    assert "cas" in {op.f for op in kv_run.history}
    by_default = {run_simulation(SimConfig(seed=s, steps=200)).machine for s in (0, 1)}
    assert by_default == {MachineKind.REDIS, MachineKind.KV}
