"""The queue workload: its check on a hand-made history, and a bounded chaos run of a real
3-node cluster (LPUSH producers, BRPOP/RPOP consumers, kills and partitions) that must
leave 0 anomalies after doing real work.

About 50 seconds for the file on two cores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cairn.chaos.faults import FaultKind
from cairn.chaos.network import leftover_namespaces
from cairn.chaos.runner import ChaosConfig, ChaosResult, run_chaos
from cairn.chaos.workload import History, QueueWorkload
from cairn.check.history import OpType


def _record(h: History, process: int, kind: OpType, f: str, key: str, value: object) -> None:
    h.record(process, kind, f, key, value)
    time.sleep(0.0005)


def test_the_queue_check_reports_through_the_workload() -> None:
    w = QueueWorkload([("127.0.0.1", 1)])
    h = w.history
    for p, value in enumerate(("0-1", "0-2", "0-3")):
        _record(h, p, OpType.INVOKE, "lpush", "queue:a", value)
        _record(h, p, OpType.OK, "lpush", "queue:a", value)
    _record(h, 7, OpType.INVOKE, "brpop", "queue:a", None)
    _record(h, 7, OpType.OK, "brpop", "queue:a", "0-1")
    clean = w.check({"queue:a": ["0-3", "0-2"], "queue:b": []})
    assert clean.ok and clean.lost == 0
    assert clean.details.startswith("3 acknowledged enqueues")
    bad = w.check({"queue:a": ["0-1"], "queue:b": []})
    assert not bad.ok and bad.lost == 2
    assert any("'0-1'" in a and "still in the final list" in a for a in bad.anomalies)
    undrained = w.check(None)
    assert not undrained.ok and "final drain" in undrained.anomalies[-1]


def _counts(path: Path) -> tuple[int, int]:
    """Acknowledged enqueues and dequeues that returned a value, from a history file."""
    enqueued = dequeued = 0
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["type"] != "ok":
            continue
        if event["f"] == "lpush":
            enqueued += 1
        elif event["value"] is not None:
            dequeued += 1
    return enqueued, dequeued


def test_queue_under_kills_and_partitions(tmp_path: Path) -> None:
    config = ChaosConfig(
        out=tmp_path,
        duration=30,
        seed=4,
        faults=frozenset({FaultKind.KILL, FaultKind.PARTITION}),
        workloads=("queue",),
        workers=4,
        network="netns",  # the README's test command installs what namespaces need
    )
    before = set(leftover_namespaces())
    result: ChaosResult = run_chaos(config, lambda t, m: print(f"[{t:6.1f}s] {m}"))
    print(json.dumps(result.summary(), indent=1))
    assert result.network.startswith("network namespaces"), result.network
    assert result.ok, "\n".join(result.anomalies)
    assert result.lost == 0
    assert {f.kind for f in result.faults} == config.faults
    assert len(result.faults) >= 3
    enqueued, dequeued = _counts(result.histories["queue"])
    assert enqueued > 300, f"too few acknowledged enqueues: {enqueued}"
    assert dequeued > 300, f"too few values dequeued: {dequeued}"
    assert result.report is not None and "queue:brpop" in result.report.read_text()
    assert set(leftover_namespaces()) <= before, "the run left network namespaces behind"
