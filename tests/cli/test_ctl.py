"""`cairn ctl` through click's CliRunner, against live admin servers."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "admin"))

from admin_support import (
    ADMIN_TOKEN,
    T0,
    StaticSource,
    placement_source,
    sample_driver,
    served,
    static_topology,
)

import cairn.cli.ctl as ctl_module
from cairn.cli.main import main
from cairn.meta.region import slot_bound
from cairn.placement import PlacementDriver
from cairn.placement.model import NodeState, RangeRule


@pytest.fixture
def driver() -> PlacementDriver:
    return sample_driver()


@pytest.fixture
def endpoint(driver: PlacementDriver) -> Iterator[str]:
    with served(placement_source(driver)) as address:
        yield address


@pytest.fixture
def static_endpoint() -> Iterator[str]:
    with served(StaticSource(static_topology())) as address:
        yield address


def dead_endpoint() -> str:
    """An address nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def ctl(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """`cairn ctl ARGS` with the test servers' admin token in the environment (as a user
    with $CAIRN_ADMIN_TOKEN set) unless `env` says otherwise."""
    base: dict[str, str | None] = {"COLUMNS": "200", "CAIRN_ADMIN_TOKEN": ADMIN_TOKEN}
    return CliRunner().invoke(main, ["ctl", *args], env=base | (env or {}))


def test_status_table(endpoint: str) -> None:
    result = ctl("-e", endpoint, "status")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "cluster test-cluster" in out and "health" in out and "ok" in out
    assert "4 (4 up, 0 down, 0 draining, 0 removed)" in out
    assert "2 (2 with a leader)" in out
    assert "3 replicas, spread across 'zone'" in out


def test_status_json_is_the_api_document(endpoint: str) -> None:
    result = ctl("-e", endpoint, "status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["health"] == "ok" and doc["nodes"]["total"] == 4
    assert json.loads(ctl("-e", endpoint, "--json", "status").output) == doc


def test_nodes_table(endpoint: str) -> None:
    result = ctl("-e", endpoint, "nodes")
    assert result.exit_code == 0, result.output
    assert "4 node(s)" in result.output
    line = next(x for x in result.output.splitlines() if "10.0.0.1:7001" in x)
    for cell in ("up", "10.0.0.1:17001", "zone=a", "0 ms ago"):
        assert cell in line


def test_regions_table_stars_the_leader(endpoint: str) -> None:
    result = ctl("-e", endpoint, "regions")
    assert result.exit_code == 0, result.output
    first = next(x for x in result.output.splitlines() if "0-8191" in x)
    second = next(x for x in result.output.splitlines() if "8192-16383" in x)
    assert "1*,2,3" in first and "1000" in first and "1.0 MiB" in first
    assert "2*,3,4" in second and " 1 " in second, "node 1 holds a learner"


def test_regions_json(endpoint: str) -> None:
    doc = json.loads(ctl("-e", endpoint, "regions", "--json").output)
    assert [r["id"] for r in doc["regions"]] == [1, 2]


def test_events_lines(endpoint: str) -> None:
    result = ctl("-e", endpoint, "events", "--since", "4")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("#5 2023-11-14 22:13:20.000 region-new [region 1]: first report")


def test_events_follow_prints_new_events_until_interrupted(
    endpoint: str, driver: PlacementDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            driver.drain_node(4, T0 + 1000, "retiring the rack")
        elif len(polls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(ctl_module, "_sleep", sleep)
    result = ctl("-e", endpoint, "events", "--since", "5", "-f", "--interval", "0.5", "--json")
    assert result.exit_code == 0, result.output
    seqs = [json.loads(line)["seq"] for line in result.output.splitlines()]
    assert seqs == [6, 7], "each event once, the new one after the drain"
    assert json.loads(result.output.splitlines()[1])["reason"] == "retiring the rack"
    assert polls == [0.5, 0.5, 0.5]


def test_events_without_a_placement_driver(static_endpoint: str) -> None:
    result = ctl("-e", static_endpoint, "events", "--follow")
    assert result.exit_code == 0
    assert "placement driver is not running" in result.output


def test_node_drain(endpoint: str, driver: PlacementDriver) -> None:
    result = ctl("-e", endpoint, "node", "drain", "3", "--reason", "new disks")
    assert result.exit_code == 0, result.output
    assert "node 3 is draining" in result.output
    assert next(n for n in driver.nodes() if n.id == 3).state is NodeState.DRAINING
    assert driver.events(6)[0].reason == "new disks"


def test_node_drain_of_an_unknown_node_exits_1(endpoint: str) -> None:
    result = ctl("-e", endpoint, "node", "drain", "99")
    assert result.exit_code == 1
    assert "node 99 is not a member" in result.output and "HTTP 404" in result.output


def test_actions_without_a_placement_driver_exit_1_with_the_reason(static_endpoint: str) -> None:
    result = ctl("-e", static_endpoint, "node", "drain", "2")
    assert result.exit_code == 1
    assert "placement driver is not running" in result.output and "501" in result.output
    result = ctl("-e", static_endpoint, "placement", "set", "--replicas", "3")
    assert result.exit_code == 1 and "501" in result.output


def test_placement_set_with_range_rules(endpoint: str, driver: PlacementDriver) -> None:
    args = ["placement", "set", "--replicas", "5", "--zone-label", "rack"]
    args += ["--range", "0", "100", "3", "--range", "0x2000", "end", "7"]
    result = ctl("-e", endpoint, *args)
    assert result.exit_code == 0, result.output
    assert "5 replicas" in result.output and "2 range rule(s)" in result.output
    rules = driver.status().rules
    assert (rules.replicas, rules.location_label) == (5, "rack")
    assert rules.ranges == (
        RangeRule(b"", slot_bound(100), 3, "rack", "range-1"),
        RangeRule(slot_bound(8192), b"", 7, "rack", "range-2"),
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--replicas", "0"], "0 is not in the range x>=1"),
        (["--replicas", "3", "--range", "100", "50", "2"], "empty range"),
        (["--replicas", "3", "--range", "0", "99999", "2"], "slot 99999 is not in 0..16384"),
        (["--replicas", "3", "--range", "0x0g", "end", "2"], "is not hex"),
        (["--replicas", "3", "--range", "0", "10", "1", "--range", "5", "20", "1"], "overlap"),
        (["--replicas", "3", "--zone-label", ""], "location_label: must not be empty"),
    ],
)
def test_placement_set_refuses_bad_arguments_with_exit_2(
    endpoint: str, driver: PlacementDriver, args: list[str], reason: str
) -> None:
    result = ctl("-e", endpoint, "placement", "set", *args)
    assert result.exit_code == 2
    assert reason in result.output
    assert driver.status().rules.replicas == 3


def test_an_unreachable_endpoint_exits_2_naming_each_one_tried() -> None:
    first, second = dead_endpoint(), dead_endpoint()
    result = ctl("-e", first, "-e", second, "status")
    assert result.exit_code == 2
    assert "no admin endpoint answered" in result.output
    assert first in result.output and second in result.output


def test_endpoints_are_tried_in_turn(endpoint: str) -> None:
    result = ctl("-e", f"{dead_endpoint()},{endpoint}", "status")
    assert result.exit_code == 0, result.output
    assert "cluster test-cluster" in result.output


def test_endpoints_from_the_environment(endpoint: str) -> None:
    result = ctl("nodes", env={"CAIRN_ADMIN": f"{dead_endpoint()},{endpoint}"})
    assert result.exit_code == 0, result.output


def test_a_malformed_endpoint_exits_2() -> None:
    result = ctl("-e", "localhost", "status")
    assert result.exit_code == 2
    assert "a port is needed" in result.output


def test_a_token_is_sent(driver: PlacementDriver, tmp_path: Path) -> None:
    with served(placement_source(driver)) as address:
        refused = ctl("-e", address, "status", env={"CAIRN_ADMIN_TOKEN": None})
        assert refused.exit_code == 2 and "HTTP 401" in refused.output
        assert "--token" in refused.output
        no_env = {"CAIRN_ADMIN_TOKEN": None}
        assert ctl("-e", address, "--token", ADMIN_TOKEN, "status", env=no_env).exit_code == 0
        assert ctl("-e", address, "status", env={"CAIRN_ADMIN_TOKEN": ADMIN_TOKEN}).exit_code == 0
        (tmp_path / "t").write_text(ADMIN_TOKEN + "\n")
        by_file = ctl("-e", address, "--token-file", str(tmp_path / "t"), "status", env=no_env)
        assert by_file.exit_code == 0, by_file.output
