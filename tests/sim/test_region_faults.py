"""Multi-region runs with every fault, the buggify sites and the CLI's flags.

A bounded sweep with every fault kind the multi-region nemesis has (partitions of every
shape, one-way included; crashes, also right after a vote and after an election; pauses;
leadership transfers; power loss; clock skew; message drop, duplication, delay and
reordering) and buggify on stays safe and converges, and exercises what it claims to;
a run with a planted bug is deterministic (same seed, same digest and history); and
`cairn sim --regions` takes `--faults`, `--plant`, `--read-mode` and `--history`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from cairn.cli.main import main
from cairn.raft.config import PlantedBug
from cairn.sim.region_config import EVERY_FAULT
from cairn.sim.region_runner import run_region_simulation

SWEEP = range(100, 110)
STEPS = 1500
SWEEP_SITES = {"host.send_held_back", "client.late_reply", "placement.step_delayed"}
"""Buggify sites that fire within the sweep (the rarer ones are tested one by one in
`test_region_buggify.py`)."""
STRUCK = (
    "transfer",
    "power-loss",
    "partition:one-way",
    "crash:after-vote",
    "crash:after-election",
    "pause",
    "lose",
)


def test_a_bounded_sweep_with_every_fault_stays_safe_and_converges() -> None:
    failures: list[str] = []
    struck: dict[str, int] = {}
    fired: dict[str, int] = {}
    for seed in SWEEP:
        result = run_region_simulation(replace(EVERY_FAULT, seed=seed, steps=STEPS))
        if result.failure is not None or result.converged_after is None:
            failures.append(f"seed {seed}: {result.failure}")
        for name, count in result.faults.items():
            struck[name] = struck.get(name, 0) + count
        for site, count in result.buggify_fired.items():
            fired[site] = fired.get(site, 0) + count
    assert not failures, "\n".join(failures)
    missing = [name for name in STRUCK if not struck.get(name)]
    assert not missing, (missing, struck)
    assert set(fired) >= SWEEP_SITES, fired


def test_same_seed_same_run_with_every_fault_and_a_plant() -> None:
    config = replace(
        EVERY_FAULT,
        seed=21,
        steps=1500,
        planted=frozenset({PlantedBug.NO_TRUNCATE}),
        keep_history=True,
    )
    a, b = run_region_simulation(config), run_region_simulation(config)
    assert a.digest == b.digest
    assert a.history == b.history and a.history
    assert a.failure == b.failure
    assert a.buggify_fired == b.buggify_fired
    other = run_region_simulation(replace(config, seed=22))
    assert other.digest != a.digest


def test_bad_fault_lists_are_refused() -> None:
    runner = CliRunner()
    membership = runner.invoke(main, ["sim", "--regions", "--faults", "crash,membership"])
    assert membership.exit_code == 2 and "placement driver" in membership.output
    unknown = runner.invoke(main, ["sim", "--regions", "--faults", "earthquake"])
    assert unknown.exit_code == 2 and "unknown fault 'earthquake'" in unknown.output
    history = runner.invoke(main, ["sim", "--regions", "--seeds", "2", "--history", "h.jsonl"])
    assert history.exit_code == 2 and "--history needs a single run" in history.output
    profile = runner.invoke(main, ["sim", "--profile", "figure-8"])
    assert profile.exit_code == 2 and "'figure-8' is not one of" in profile.output


def test_cairn_sim_regions_takes_faults_read_mode_and_history(tmp_path: Path) -> None:
    out = tmp_path / "history.jsonl"
    args = ["sim", "--regions", "--seed", "3", "--steps", "1200", "--workers", "1"]
    args += ["--faults", "partition,crash,power-loss", "--read-mode", "lease"]
    result = CliRunner().invoke(main, [*args, "--history", str(out)])
    assert result.exit_code == 0, result.output
    assert "lease reads" in result.output and "1 seeds, 0 failed" in result.output
    ops = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(ops) > 20 and {"type", "f"} <= set(ops[0])


def test_cairn_sim_regions_plant_fails_with_a_reproduction_line() -> None:
    args = ["sim", "--regions", "--nodes", "3", "--seed", str(PLANT_SEED), "--steps", "3000"]
    args += ["--workers", "1", "--faults", "crash,pause,partition", "--plant", "double-vote"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "election-safety" in result.output
    assert "reproduce: cairn sim --seed" in result.output
    assert "--plant double-vote" in result.output


PLANT_SEED = 1
"""A seed whose run, with DOUBLE_VOTE planted and the flags above, is caught."""


def test_cairn_sim_regions_runs_a_region_profile_and_names_it_to_reproduce() -> None:
    args = ["sim", "--regions", "--profile", "region-figure-8", "--seed", "0", "--workers", "1"]
    result = CliRunner().invoke(main, [*args, "--plant", "commit-old-term"])
    assert result.exit_code == 1, result.output
    assert "leader-completeness" in result.output
    assert (
        "reproduce: cairn sim --profile region-figure-8 --seed 0"
        " --plant commit-old-term" in result.output
    )
    clean = CliRunner().invoke(main, args)
    assert clean.exit_code == 0, clean.output
