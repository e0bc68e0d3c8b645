"""The stream workload: its check on a hand-made history, a bounded chaos run of a real
3-node cluster (XADD producers, a consumer group reading, acknowledging and claiming,
kills and partitions) that must leave 0 anomalies after real work, and the planted bug
`stream-ack-leader-only` that the same run must find.

About 45 seconds for the file on two idle cores (two chaos runs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cairn.chaos.faults import FaultKind
from cairn.chaos.network import leftover_namespaces
from cairn.chaos.runner import ChaosConfig, ChaosResult, run_chaos
from cairn.chaos.stream_workload import StreamWorkload
from cairn.check.history import OpType
from cairn.check.stream import StreamFinal
from cairn.runtime.plants import STREAM_ACK_LEADER_ONLY


def test_the_stream_check_reports_through_the_workload() -> None:
    w = StreamWorkload([("127.0.0.1", 1)])
    h = w.history

    def op(process: int, f: str, arg: object, result: object) -> None:
        h.record(process, OpType.INVOKE, f, "stream:a", arg)
        time.sleep(0.0005)
        h.record(process, OpType.OK, f, "stream:a", result)
        time.sleep(0.0005)

    op(1, "xadd", "0-1", "5-0")
    op(1, "xadd", "0-2", "6-0")
    op(2, "xreadgroup", ["c2", ">", 5], [["5-0", "0-1"], ["6-0", "0-2"]])
    op(2, "xack", ["5-0"], 1)
    entries = [("5-0", "0-1"), ("6-0", "0-2")]
    clean = w.check({"stream:a": StreamFinal(entries, [("6-0", "c2")], "6-0")})
    assert clean.ok and clean.lost == 0, clean.anomalies
    assert clean.details.startswith("2 acknowledged XADDs")
    bad = w.check({"stream:a": StreamFinal(entries[1:], [("5-0", "c2"), ("6-0", "c2")], "6-0")})
    assert not bad.ok and bad.lost == 1
    assert any("acknowledged by XACK, is pending" in a for a in bad.anomalies)
    unread = w.check(None)
    assert not unread.ok and "final read" in unread.anomalies[-1]


def _counts(path: Path) -> dict[str, int]:
    """Acknowledged operations by function, and entries delivered, from a history file."""
    counts: dict[str, int] = {"delivered": 0}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["type"] != "ok":
            continue
        counts[event["f"]] = counts.get(event["f"], 0) + 1
        if event["f"] in ("xreadgroup", "xautoclaim"):
            counts["delivered"] += len(event["value"])
    return counts


def _config(
    tmp_path: Path, duration: float, faults: set[FaultKind], seed: int, plant: str | None = None
) -> ChaosConfig:
    return ChaosConfig(
        out=tmp_path,
        duration=duration,
        seed=seed,
        faults=frozenset(faults),
        workloads=("stream",),
        workers=6,
        plant=plant,
    )


def test_stream_under_kills_and_partitions(tmp_path: Path) -> None:
    config = _config(tmp_path, 18, {FaultKind.KILL, FaultKind.PARTITION}, 4)
    before = set(leftover_namespaces())
    result: ChaosResult = run_chaos(config, lambda t, m: print(f"[{t:6.1f}s] {m}"))
    print(json.dumps(result.summary(), indent=1))
    assert result.ok, "\n".join(result.anomalies)
    assert result.lost == 0
    assert {f.kind for f in result.faults} == config.faults
    assert len(result.faults) >= 2
    counts = _counts(result.histories["stream"])
    print(counts)
    assert counts.get("xadd", 0) > 100, counts
    assert counts["delivered"] > 100, counts
    assert counts.get("xack", 0) > 50, counts
    assert result.report is not None and "stream:xreadgroup" in result.report.read_text()
    assert set(leftover_namespaces()) <= before, "the run left network namespaces behind"


def test_a_leader_applying_xack_alone_is_found(tmp_path: Path) -> None:
    """`stream-ack-leader-only`: seed 3's one kill hits the leader (with namespaces or
    loopback proxies alike), electing a node that never saw the acknowledgements, so
    acknowledged entries are pending again."""
    result = run_chaos(_config(tmp_path, 9, {FaultKind.KILL}, 3, STREAM_ACK_LEADER_ONLY))
    assert "(leader)" in result.faults[0].target
    stream = next(c for c in result.checks if c.name == "stream")
    assert not stream.ok, "XACK applied on the leader only went unnoticed"
    assert any("acknowledged by XACK" in a for a in stream.anomalies), stream.anomalies
    assert result.lost == 0  # the bug loses no entry; it forgets acknowledgements
