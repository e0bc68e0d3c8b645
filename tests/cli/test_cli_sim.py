"""`cairn sim` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cairn.cli.main import main
from cairn.raft.config import PlantedBug
from cairn.sim import SimConfig, run_simulation


def test_single_run_prints_a_summary_and_writes_the_history(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    result = CliRunner().invoke(
        main, ["sim", "--nodes", "3", "--seed", "4", "--steps", "1500", "--history", str(history)]
    )
    assert result.exit_code == 0, result.output
    for word in ("operations", "elections", "faults injected", "linearizable", "OK seed 4"):
        assert word in result.output
    lines = history.read_text().splitlines()
    assert lines and {"process", "type", "f", "key", "value", "time"} <= set(json.loads(lines[0]))


def first_failing_seed(bug: PlantedBug) -> int:
    for seed in range(100):
        config = SimConfig(seed=seed, steps=5000, planted=frozenset({bug}))
        if run_simulation(config).failure is not None:
            return seed
    raise AssertionError(f"no seed below 100 exposes {bug.value}")


def test_a_planted_bug_exits_1_with_the_seed_and_the_broken_invariant() -> None:
    seed = first_failing_seed(PlantedBug.NO_TRUNCATE)
    result = CliRunner().invoke(
        main, ["sim", "--seed", str(seed), "--steps", "5000", "--plant", "no-truncate"]
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and f"seed {seed}" in result.output
    assert "committed-entry-lost" in result.output or "log-matching" in result.output
    assert "--plant no-truncate" in result.output


def test_sweep_reports_every_seed() -> None:
    result = CliRunner().invoke(
        main, ["sim", "--seeds", "4", "--steps", "800", "--workers", "1", "--faults", "crash,drop"]
    )
    assert result.exit_code == 0, result.output
    assert "4 seeds x 800 steps" in result.output
    assert "0 failed" in result.output


def test_sweep_stops_at_a_failure_and_prints_how_to_reproduce() -> None:
    result = CliRunner().invoke(
        main,
        ["sim", "--seeds", "20", "--steps", "5000", "--workers", "1", "--plant", "double-vote"],
    )
    assert result.exit_code == 1, result.output
    assert "reproduce: cairn sim --seed" in result.output


def test_bad_flags_are_usage_errors() -> None:
    runner = CliRunner()
    for args in (
        ["sim", "--faults", "gremlins"],
        ["sim", "--nodes", "4"],
        ["sim", "--plant", "no-such-bug"],
        ["sim", "--steps", "-1"],
        ["sim", "--seeds", "2", "--history", "x.jsonl"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)


def test_faults_none_injects_nothing() -> None:
    result = CliRunner().invoke(main, ["sim", "--seed", "2", "--steps", "1000", "--faults", "none"])
    assert result.exit_code == 0, result.output
    assert "faults injected │ none" in result.output or "none" in result.output


def test_a_profile_catches_its_bug_and_prints_how_to_reproduce() -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["sim", "--profile", "figure-8", "--seed", "0", "--plant", "commit-old-term"]
    )
    assert result.exit_code == 1
    repro = "reproduce: cairn sim --profile figure-8 --seed 0 --plant commit-old-term"
    assert repro in result.output


def test_a_profile_refuses_flags_it_sets() -> None:
    result = CliRunner().invoke(main, ["sim", "--profile", "split-vote", "--nodes", "3"])
    assert result.exit_code == 2
    assert "--nodes cannot be combined with --profile" in result.output
