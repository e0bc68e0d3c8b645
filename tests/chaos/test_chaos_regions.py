"""A bounded chaos run of a real 5-node cluster founded with 4 regions: splits, merges,
replica moves, leader transfers and a node drain asked of the placement driver through
the admin API mid-run, plus a kill -9, under the register and set workloads. 0 anomalies,
0 acknowledged writes lost, and every region fault both injected and seen to finish.
"""

from __future__ import annotations

import json
from pathlib import Path

from cairn.chaos.faults import REGION_FAULTS, FaultKind
from cairn.chaos.network import leftover_namespaces
from cairn.chaos.runner import ChaosConfig, run_chaos


def test_region_faults_on_five_nodes(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        nodes=5,
        duration=40,
        seed=1,
        faults=REGION_FAULTS | {FaultKind.KILL},
        workloads=("register", "set"),
        workers=2,
        network="netns",  # the README's test command installs what namespaces need
    )
    before = set(leftover_namespaces())
    result = run_chaos(config, lambda t, m: print(f"[{t:6.1f}s] {m}"))
    summary = result.summary()
    print(json.dumps(summary, indent=1))
    assert result.network.startswith("network namespaces"), result.network
    assert result.ok, "\n".join(result.anomalies)
    assert result.lost == 0
    assert summary["regions_at_start"] == 4
    counts = summary["region_faults"]
    for kind in REGION_FAULTS:
        row = counts.get(kind.value, {})
        assert row.get("injected", 0) >= 1, f"{kind.value} was not injected: {counts}"
        assert row.get("succeeded", 0) >= 1, f"no {kind.value} finished: {counts}"
    assert any(f.kind is FaultKind.KILL for f in result.faults)
    for name, ops in result.ops.items():
        assert ops["ok"] > 100, f"{name}: too few operations succeeded: {ops}"
    assert set(leftover_namespaces()) <= before, "the run left network namespaces behind"
