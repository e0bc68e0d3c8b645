"""Transactions under chaos, across regions: the bank and list-append workloads on a real
5-node cluster founded with 4 regions (the accounts and lists spread over all of them, so
most transactions are cross-region: `cairn.txn`) through kills, partitions, splits,
merges, replica moves and leader transfers must show 0 anomalies, conserve the bank's
total and lose no acknowledged append. Planted bugs must be found by the checkers:
`exec-split` (EXEC applied as separate entries) here; the cross-region ones
(`txn-secondaries-first`, `txn-reads-ignore-locks`) in test_chaos_plants.py.

About 70 seconds for the file on two cores loaded by other work (load average 12-20).
"""

from __future__ import annotations

import json
from pathlib import Path

from cairn.chaos.faults import FaultKind
from cairn.chaos.network import leftover_namespaces
from cairn.chaos.runner import ChaosConfig, ChaosRun, run_chaos
from cairn.runtime.plants import EXEC_SPLIT

REGION_KINDS = frozenset({FaultKind.SPLIT, FaultKind.MERGE, FaultKind.MOVE, FaultKind.TRANSFER})


def _committed(path: Path, f: str) -> int:
    """Acknowledged operations named `f` in a history file."""
    events = (json.loads(line) for line in path.read_text().splitlines())
    return sum(e["type"] == "ok" and e["f"] == f for e in events)


def test_cross_region_bank_and_append_under_node_and_region_faults(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        nodes=5,
        duration=30,
        seed=149,  # every kind in one round: partition, kill and the four region faults
        faults=REGION_KINDS | {FaultKind.KILL, FaultKind.PARTITION},
        workloads=("bank", "append"),
        workers=3,
        network="netns",  # the README's test command installs what namespaces need
    )
    before = set(leftover_namespaces())
    run = ChaosRun(config, lambda t, m: print(f"[{t:6.1f}s] {m}"))
    result = run.run()
    summary = result.summary()
    print(json.dumps(summary, indent=1))
    assert result.network.startswith("network namespaces"), result.network
    assert result.ok, "\n".join(result.anomalies)
    assert result.lost == 0
    assert summary["regions_at_start"] == 4
    assert {f.kind for f in result.faults} == config.faults
    counts = summary["region_faults"]
    for kind in REGION_KINDS:
        assert counts.get(kind.value, {}).get("succeeded", 0) >= 1, (kind.value, counts)
    bank = next(c for c in result.checks if c.name == "bank")
    assert "explained by the acknowledged" in bank.details, bank.details
    transfers = _committed(result.histories["bank"], "transfer")
    reads = _committed(result.histories["bank"], "read")
    assert transfers > 25 and reads > 15, (transfers, reads)
    crossing = summary["cross_region"]
    assert crossing["bank"]["cross_region"] > 30, crossing
    assert crossing["append"]["committed"] > 80, crossing
    assert crossing["append"]["cross_region"] > 30, crossing
    assert set(leftover_namespaces()) <= before, "the run left network namespaces behind"


def test_split_exec_is_found_by_both_checkers(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=5,
        seed=6,
        faults=frozenset(),
        workloads=("bank", "append"),
        workers=3,
        network="loopback",
        plant=EXEC_SPLIT,
        final_quiet=2,
    )
    result = run_chaos(config, lambda t, m: print(f"[{t:6.1f}s] {m}"))
    bank = next(c for c in result.checks if c.name == "bank")
    append = next(c for c in result.checks if c.name == "append")
    assert not bank.ok and any("wrong-total" in a for a in bank.anomalies), bank.anomalies
    assert not append.ok, "split transactions went unnoticed by the list-append check"
    found = {a.split(":", 1)[0] for a in append.anomalies}
    assert found & {"G0", "G1b", "G1c", "G-single", "G2", "internal"}, append.anomalies
