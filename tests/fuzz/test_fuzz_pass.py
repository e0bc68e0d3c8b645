"""The fuzz pass in CI: every target under atheris for a bounded number of inputs.

Each target runs in its own subprocess (`fuzz_run.run_target`) with an RSS limit (an
allocation the decoder should have refused is an out-of-memory failure) and a per-input
timeout (a hang); any crash, hang or OOM fails the test with libFuzzer's output and the
saved input's path. The checked-in regressions (`regressions/<target>/`) are replayed
in-process first, so a finding once fixed stays fixed even if the pass is skipped.
`pytest --run-slow` adds the long run (1.5 million inputs per target, over 10 million in
all: see docs/security.md for the figures of the last one).
"""

from __future__ import annotations

from pathlib import Path

import fuzz_targets
import pytest
from fuzz_run import TARGET_NAMES, run_target

CI_INPUTS = {
    "resp": 15_000,
    "frame": 30_000,
    "envelope": 30_000,
    "raft": 30_000,
    "entry": 45_000,
    "config": 10_000,
    "admin_json": 45_000,
}
"""Inputs per target in the CI pass (205,000 in all): fewer for the slower targets (the
RESP one parses each input twice, piece by piece; the config one parses TOML in Python)."""
LONG_INPUTS_PER_TARGET = 1_500_000
RSS_LIMIT_MB = 1024
TIMEOUT_S = 10


def test_every_target_is_run() -> None:
    assert set(TARGET_NAMES) == set(fuzz_targets.TARGETS) == set(fuzz_targets.ALLOWED)
    assert set(CI_INPUTS) == set(TARGET_NAMES) and sum(CI_INPUTS.values()) >= 200_000


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_seeds_and_regressions_run_clean(name: str) -> None:
    inputs = fuzz_targets.seeds(name) + fuzz_targets.regressions(name)
    assert inputs
    for data in inputs:
        fuzz_targets.run_one(name, data)


def test_regressions_are_checked_in() -> None:
    found = {name: len(fuzz_targets.regressions(name)) for name in TARGET_NAMES}
    assert found["entry"] >= 4 and found["config"] >= 1 and found["admin_json"] >= 3


def _fuzz(name: str, runs: int, workdir: Path) -> None:
    outcome = run_target(name, runs, 0, RSS_LIMIT_MB, TIMEOUT_S, workdir)
    assert not outcome.failure, f"{name}: {outcome.failure} in {outcome.artifacts}\n{outcome.tail}"
    assert outcome.runs == runs, outcome.tail
    assert 0 < outcome.peak_rss_mb < RSS_LIMIT_MB


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_bounded_fuzz_pass(name: str, tmp_path: Path) -> None:
    _fuzz(name, CI_INPUTS[name], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGET_NAMES)
def test_long_fuzz_pass(name: str, tmp_path: Path) -> None:
    _fuzz(name, LONG_INPUTS_PER_TARGET, tmp_path)
