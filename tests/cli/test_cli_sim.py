"""`cairn sim` through click's CliRunner: multi-region by default, one line per seed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cairn.cli.main import main


def test_a_single_run_prints_its_line_and_writes_the_history(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    args = ["sim", "--nodes", "3", "--seed", "4", "--steps", "1500", "--workers", "1"]
    result = CliRunner().invoke(main, [*args, "--history", str(history)])
    assert result.exit_code == 0, result.output
    for word in ("seed 4:", "splits", "converged after", "1 seeds, 0 failed"):
        assert word in result.output
    lines = history.read_text().splitlines()
    assert lines and {"process", "type", "f", "key", "value", "time"} <= set(json.loads(lines[0]))


def test_a_sweep_reports_every_seed() -> None:
    args = ["sim", "--seeds", "3", "--steps", "800", "--workers", "1", "--faults", "crash,drop"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert all(f"seed {s}:" in result.output for s in range(3))
    assert "3 seeds, 0 failed" in result.output


def test_a_workload_run_prints_its_check_and_a_failure_names_the_workload() -> None:
    args = ["sim", "--seed", "2", "--steps", "1500", "--workers", "1", "--workload", "bank"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "bank check:" in result.output and "final balances" in result.output


def test_bad_flags_are_usage_errors() -> None:
    runner = CliRunner()
    for args in (
        ["sim", "--faults", "gremlins"],
        ["sim", "--nodes", "2"],
        ["sim", "--plant", "no-such-bug"],
        ["sim", "--steps", "-1"],
        ["sim", "--workload", "lottery"],
        ["sim", "--seeds", "2", "--history", "x.jsonl"],
        ["sim", "--profile", "region-elections", "--nodes", "3"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)


def test_the_old_regions_flag_is_still_accepted() -> None:
    args = ["sim", "--regions", "--seed", "1", "--steps", "300", "--workers", "1"]
    result = CliRunner().invoke(main, [*args, "--faults", "none"])
    assert result.exit_code == 0, result.output
    assert "1 seeds, 0 failed" in result.output
