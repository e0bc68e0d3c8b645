"""Transactions under chaos: the bank and list-append workloads on a real 3-node cluster
through kills and partitions must show 0 anomalies after real work; with the planted bug
`exec-split` (EXEC applied as separate entries) both checkers must find it.

About 45 seconds for the file on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path

from cairn.chaos.faults import FaultKind
from cairn.chaos.network import leftover_namespaces
from cairn.chaos.runner import ChaosConfig, ChaosRun, run_chaos
from cairn.runtime.plants import EXEC_SPLIT


def _committed(path: Path, f: str) -> int:
    """Acknowledged operations named `f` in a history file."""
    events = (json.loads(line) for line in path.read_text().splitlines())
    return sum(e["type"] == "ok" and e["f"] == f for e in events)


def test_bank_and_append_under_kills_and_partitions(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=14,
        seed=21,  # a kill, then the leader isolated
        faults=frozenset({FaultKind.KILL, FaultKind.PARTITION}),
        workloads=("bank", "append"),
        workers=3,
        network="netns",  # the README's test command installs what namespaces need
    )
    run = ChaosRun(config, lambda t, m: print(f"[{t:6.1f}s] {m}"))
    result = run.run()
    print(json.dumps(result.summary(), indent=1))
    assert result.network.startswith("network namespaces"), result.network
    assert result.ok, "\n".join(result.anomalies)
    assert result.lost == 0
    assert {f.kind for f in result.faults} == config.faults
    bank = next(c for c in result.checks if c.name == "bank")
    assert "explained by the acknowledged" in bank.details, bank.details
    transfers = _committed(result.histories["bank"], "transfer")
    reads = _committed(result.histories["bank"], "read")
    assert transfers > 60 and reads > 30, (transfers, reads)
    txns = _committed(result.histories["append"], "txn")
    assert txns > 200, f"too few committed list-append transactions: {txns}"
    mine = [ns for ns in leftover_namespaces() if ns.startswith(run.run_id)]
    assert not mine, f"the run left network namespaces behind: {mine}"


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
