"""`cairn ctl region ...` through click's CliRunner, against a live admin server."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "admin"))

from admin_support import ADMIN_TOKEN, placement_source, sample_driver, served

import cairn.cli.ctl as ctl_module
from cairn.cli.main import main
from cairn.placement import PlacementDriver
from cairn.placement.steps import SplitPolicy, SplitRegion, TransferLeader


@pytest.fixture
def driver() -> PlacementDriver:
    return sample_driver()


@pytest.fixture
def endpoint(driver: PlacementDriver) -> Iterator[str]:
    with served(placement_source(driver)) as address:
        yield address


def ctl(*args: str) -> Result:
    env = {"COLUMNS": "200", "CAIRN_ADMIN_TOKEN": ADMIN_TOKEN}
    return CliRunner().invoke(main, ["ctl", *args], env=env)


def test_split_and_transfer(endpoint: str, driver: PlacementDriver) -> None:
    result = ctl("-e", endpoint, "region", "split", "1", "--by-size", "--reason", "hot")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("running: #1 split region 1")
    (op,) = driver.operators()
    assert isinstance(op.steps[0], SplitRegion) and op.steps[0].policy is SplitPolicy.HALF_BY_SIZE
    result = ctl("-e", endpoint, "region", "transfer-leader", "2", "--to", "3", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["operator"]["steps"] == ["transfer-leader to peer 203 on node 3"]


def test_a_refusal_exits_1_and_bad_arguments_2(endpoint: str, driver: PlacementDriver) -> None:
    result = ctl("-e", endpoint, "region", "move", "1", "--from", "1", "--to", "2")
    assert result.exit_code == 1
    assert "already has a replica on node 2" in result.output
    result = ctl("-e", endpoint, "region", "split", "1", "--slot", "9", "--by-size")
    assert result.exit_code == 2
    result = ctl("-e", endpoint, "region", "merge", "2")
    assert result.exit_code == 1 and "no learners" in result.output
    assert driver.operators() == []


def test_wait_gives_up_on_an_operator_nobody_runs(
    endpoint: str, driver: PlacementDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctl_module, "_sleep", lambda s: None)
    result = ctl("-e", endpoint, "region", "transfer-leader", "1", "--to", "2", "--wait", "0.3")
    assert result.exit_code == 1  # still running: no leader executes steps here
    assert "running: #1 balance-leader region 1" in result.output
    (op,) = driver.operators()
    assert isinstance(op.steps[-1], TransferLeader)
