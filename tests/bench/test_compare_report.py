"""`bench/compare.py`'s parsing and target arithmetic, fed made-up output (no benchmark runs
here): redis-benchmark's `--cluster --csv -e` output, INFO raft views, issue 10's four
same-run ratios with their borderline cases, and the generated section of the doc; and
`cairn dev`'s planning, which compare.py reuses, giving the cluster `cairn dev` starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from compare_report import (  # the bench directory is not a package: sys.path above
    BEGIN,
    END,
    GET50,
    SET1,
    SET50,
    Figures,
    Report,
    Row,
    agreed_leaders,
    balanced,
    markdown,
    parse_benchmark,
    region_commits,
    spread,
    targets,
)

from cairn.cli.dev import plan_dev_cluster

NAME = "a" * 40
CLUSTER_OUTPUT = f"""Cluster has 3 master nodes:

Master 0: {NAME} 127.0.0.1:7001
Master 1: {"b" * 40} 127.0.0.1:7002
Master 2: {"c" * 40} 127.0.0.1:7003

"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","2412.45","20.100","1.200","18.303","40.100","55.231","80.000"
"""


def test_the_csv_row_and_the_masters_are_read() -> None:
    f = parse_benchmark(CLUSTER_OUTPUT)
    assert (f.rps, f.p50_ms, f.p99_ms) == (2412.45, 18.303, 55.231)
    assert f.masters == ("127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003")


def test_output_without_a_result_row_is_refused() -> None:
    with pytest.raises(ValueError, match="no CSV result row"):
        parse_benchmark("Invalid cluster: 1 node(s).\n")
    header_only = CLUSTER_OUTPUT.split('"SET"')[0]
    with pytest.raises(ValueError):
        parse_benchmark(header_only)


def _view(leaders: dict[int, int], commits: dict[int, int]) -> dict[int, dict[str, object]]:
    return {r: {"role": "follower", "leader": n, "commit": commits[r]} for r, n in leaders.items()}


def test_leaders_count_only_when_every_node_agrees_on_every_region() -> None:
    one = _view({1: 1, 2: 2, 3: 3}, {1: 10, 2: 20, 3: 30})
    later = _view({1: 1, 2: 2, 3: 3}, {1: 12, 2: 19, 3: 35})
    assert agreed_leaders([one, one, later], 3) == {1: 1, 2: 2, 3: 3}
    assert agreed_leaders([one, one], 3) == {}  # a node did not answer
    assert agreed_leaders([one, one, _view({1: 1, 2: 3, 3: 3}, {1: 0, 2: 0, 3: 0})], 3) == {}
    assert agreed_leaders([one, one, _view({1: 0, 2: 2, 3: 3}, {1: 0, 2: 0, 3: 0})], 3) == {}
    assert region_commits([one, later]) == {1: 12, 2: 20, 3: 35}


def test_writes_spread_when_every_region_takes_half_its_share_or_more() -> None:
    assert spread({1: 691, 2: 702, 3: 627})
    assert spread({1: 1000, 2: 1000, 3: 400})  # exactly half its share (400 of 2,400 / 3)
    assert not spread({1: 1000, 2: 1000, 3: 399})
    assert not spread({1: 2000, 2: 3, 3: 4}) and not spread({}) and not spread({1: 0})


def test_balanced_means_one_leader_per_node_give_or_take_one() -> None:
    assert balanced({1: 1, 2: 2, 3: 3}, 3)
    assert not balanced({1: 1, 2: 1, 3: 2}, 3)  # node 3 leads nothing, node 1 two
    assert balanced({1: 1, 2: 1, 3: 2, 4: 3}, 3)


def _rows(
    set50: Figures, etcd50: Figures, set1: Figures, etcd1: Figures, get: Figures
) -> list[Row]:
    redis_get = Figures(10_000, 0.3, 1.0)
    return [
        Row(SET50, cairn=set50, etcd=etcd50),
        Row(GET50, cairn=get, redis=redis_get),
        Row(SET1, cairn=set1, etcd=etcd1),
    ]


def test_the_four_targets_are_same_run_ratios_with_their_bounds_included() -> None:
    rows = _rows(
        set50=Figures(1500, 10.0, 40.0),
        etcd50=Figures(1000, 8.0, 40.0),
        set1=Figures(300, 3.0, 9.0),
        etcd1=Figures(500, 2.0, 5.0),
        get=Figures(6000, 1.0, 3.0),
    )
    got = targets(rows)
    assert [t.met for t in got] == [True, True, True, True]
    assert got[0].measured.startswith("1.50 x")
    assert got[2].measured.startswith("1.50 x")
    rows = _rows(
        set50=Figures(1499, 10.0, 40.1),
        etcd50=Figures(1000, 8.0, 40.0),
        set1=Figures(300, 3.01, 9.0),
        etcd1=Figures(500, 2.0, 5.0),
        get=Figures(5999, 1.0, 3.0),
    )
    assert [t.met for t in targets(rows)] == [False, False, False, False]


def test_a_missing_figure_is_not_measured_rather_than_missed() -> None:
    rows = [Row(SET50, cairn=Figures(1500, 1.0, 2.0)), Row(GET50, redis=Figures(1, 1, 1))]
    assert [t.met for t in targets(rows)] == [None, None, None, None]


def test_the_generated_section_has_its_markers_the_cpu_per_node_and_the_targets() -> None:
    rows = _rows(
        Figures(900, 10.0, 50.0, masters=("a:1", "b:2", "c:3")),
        Figures(1000, 8.0, 40.0),
        Figures(300, 3.0, 9.0),
        Figures(500, 2.0, 5.0),
        Figures(6000, 1.0, 3.0),
    )
    rows[0].cpu_us = {1: 410.4, 2: 380.0, 3: 395.2}
    rows[0].writes = {1: 2000, 2: 2100, 3: 1900}
    report = Report(["python", "bench/compare.py"], "2026-12-08 04:10 UTC", "2 CPUs", "abc")
    report.rows = rows
    report.leaders = {1: 1, 2: 2, 3: 3}
    report.idle = {1: 3.0, 2: 4.5, 3: 1.5}  # 0.09 of a core: 100 µs per SET at 900/s
    text = markdown(report)
    assert text.startswith(BEGIN) and text.endswith(END)
    row = "| SET, 50 clients | 410 | 380 | 395 | 1,186 | 1,086 | r1: 2,000, r2: 2,100, r3: 1,900 |"
    assert row in text
    assert "- SET at 50 clients >= 1.5 x etcd's put rate at 50 clients: 0.90 x" in text
    assert text.count("**not met**") == 2 and text.count("**met**") == 2


def test_compare_starts_the_cluster_cairn_dev_starts_by_default(tmp_path: Path) -> None:
    cluster = plan_dev_cluster(tmp_path / "data", base_port=7101)
    assert [n.client_port for n in cluster.specs] == [7101, 7102, 7103]
    assert [n.peer_port for n in cluster.specs] == [17101, 17102, 17103]
    assert "initial_regions = 3" in cluster.extra
    assert all(n.tls_port is None for n in cluster.specs)
