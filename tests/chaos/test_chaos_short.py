"""Bounded chaos runs of real 3-node clusters: kills, pauses and partitions (and, in the
second run, every other fault) must leave 0 anomalies and 0 acknowledged writes lost.

About two minutes for the file on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path

from cairn.chaos.faults import ALL_FAULTS, BASIC_FAULTS
from cairn.chaos.network import leftover_namespaces
from cairn.chaos.runner import ChaosConfig, ChaosResult, run_chaos


def _run(config: ChaosConfig) -> ChaosResult:
    result = run_chaos(config, lambda t, m: print(f"[{t:6.1f}s] {m}"))
    print(json.dumps(result.summary(), indent=1))
    return result


def _assert_clean(result: ChaosResult) -> None:
    assert result.ok, "\n".join(result.anomalies)
    assert result.lost == 0
    assert len(result.faults) >= 4, "the schedule should have injected several faults"
    for name, counts in result.ops.items():
        assert counts["ok"] > 300, f"{name}: too few operations succeeded: {counts}"
    assert result.report is not None and "<svg" in result.report.read_text()
    for path in result.histories.values():
        assert path.stat().st_size > 0


def test_kills_pauses_and_partitions(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=45,
        seed=1,
        faults=BASIC_FAULTS,
        workloads=("register", "set", "counter"),
        workers=3,
        network="netns",  # the README's test command installs what namespaces need
    )
    before = set(leftover_namespaces())
    result = _run(config)
    assert result.network.startswith("network namespaces"), result.network
    _assert_clean(result)
    kinds = {f.kind for f in result.faults}
    assert kinds == BASIC_FAULTS, f"every basic fault should have been injected, got {kinds}"
    assert set(leftover_namespaces()) <= before, "the run left network namespaces behind"


def test_every_fault_on_loopback_proxies(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=60,
        seed=2,
        faults=ALL_FAULTS,
        workloads=("register", "counter"),
        workers=3,
        network="loopback",
    )
    result = _run(config)
    _assert_clean(result)
    assert "loopback" in result.network
    assert len({f.kind for f in result.faults}) >= 5
