"""The list-append checker on hand-made histories: one per anomaly class, clean ones that
must pass, and random serial histories that are always clean."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.check.elle import (
    AnomalyKind,
    Edge,
    Txn,
    build_graph,
    check_list_append,
    transactions,
)
from cairn.check.history import HistoryError, Op, OpType

OK, FAIL, INFO = OpType.OK, OpType.FAIL, OpType.INFO


def t(n: int, ops: list[tuple[str, str, object]], outcome: OpType = OK,
      start: int = 0, end: int | None = 100, process: int | None = None) -> Txn:  # fmt: skip
    """Transaction `n`; by default every transaction overlaps every other (0..100)."""
    ops_ = tuple((f, k, tuple(v) if isinstance(v, list) else v) for f, k, v in ops)
    return Txn(n, n if process is None else process, ops_, outcome, start,
               None if outcome is INFO else end)  # fmt: skip


def kinds(history: list[Txn], final: dict[str, list[object]] | None = None,
          realtime: bool = True) -> list[str]:  # fmt: skip
    return sorted({a.name for a in check_list_append(history, final, realtime).anomalies})


def test_clean_histories_pass() -> None:
    serial = [
        t(0, [("append", "x", 1)], start=0, end=10),
        t(1, [("r", "x", [1]), ("append", "x", 2), ("r", "x", [1, 2])], start=20, end=30),
        t(2, [("r", "x", [1, 2]), ("r", "y", [])], start=40, end=50),
    ]
    verdict = check_list_append(serial, {"x": [1, 2], "y": []})
    assert verdict.ok, verdict.anomalies
    assert verdict.stats.ok == 3 and verdict.stats.nodes == 3
    concurrent = [
        t(0, [("append", "x", 1), ("append", "y", 1)]),
        t(1, [("r", "x", []), ("r", "y", [])]),
        t(2, [("r", "x", [1]), ("r", "y", [1])]),
        t(3, [("append", "x", 2)], FAIL),
        t(4, [("append", "y", 2)], INFO),  # unknown, and seen: it took effect
        t(5, [("append", "y", 3)], INFO),  # unknown, never seen: it did not
    ]
    assert kinds(concurrent, {"x": [1], "y": [1, 2]}) == []


def test_g0_write_cycle() -> None:
    history = [
        t(0, [("append", "x", 1), ("append", "y", 2)]),
        t(1, [("append", "x", 2), ("append", "y", 1)]),
        t(2, [("r", "x", [1, 2]), ("r", "y", [1, 2])]),
    ]
    verdict = check_list_append(history)
    g0 = [a for a in verdict.anomalies if a.kind is AnomalyKind.G0]
    assert len(g0) == 1 and set(g0[0].txns) == {0, 1}
    assert "cycle T0 -ww-> T1 -ww-> T0" in g0[0].text
    assert "appended 1 to 'x'" in g0[0].text


def test_g1c_circular_information_flow() -> None:
    history = [
        t(0, [("append", "x", 1), ("r", "y", [1])]),
        t(1, [("append", "y", 1), ("r", "x", [1])]),
    ]
    verdict = check_list_append(history)
    assert [a.name for a in verdict.anomalies] == ["G1c"]
    assert "wr" in verdict.anomalies[0].text and "read 'y' ending at 1" in str(verdict.anomalies[0])


def test_g_single_read_skew() -> None:
    history = [
        t(0, [("append", "x", 1), ("append", "y", 1)]),
        t(1, [("r", "x", []), ("r", "y", [1])]),
    ]
    verdict = check_list_append(history, {"x": [1], "y": [1]})
    assert [a.name for a in verdict.anomalies] == ["G-single"]
    text = verdict.anomalies[0].text
    assert "T1 (process 1) read 'x' empty, T0 (process 0) appended 1 next" in text


def test_g2_write_skew() -> None:
    history = [
        t(0, [("r", "x", []), ("append", "y", 1)]),
        t(1, [("r", "y", []), ("append", "x", 1)]),
    ]
    verdict = check_list_append(history, {"x": [1], "y": [1]})
    assert [a.name for a in verdict.anomalies] == ["G2"]
    assert verdict.anomalies[0].text.count("-rw->") == 2


def test_g1a_aborted_read() -> None:
    history = [t(0, [("append", "x", 1)], FAIL), t(1, [("r", "x", [1])])]
    verdict = check_list_append(history)
    assert [a.name for a in verdict.anomalies] == ["G1a"]
    assert "appended by T0 (process 0), which failed" in verdict.anomalies[0].text


def test_g1b_intermediate_read() -> None:
    history = [
        t(0, [("append", "x", 1), ("append", "x", 2)]),
        t(1, [("r", "x", [1])]),
    ]
    verdict = check_list_append(history, {"x": [1, 2]})
    assert [a.name for a in verdict.anomalies] == ["G1b"]
    assert "appended 1 and then 2" in verdict.anomalies[0].text


def test_internal_duplicate_garbage_incompatible_and_lost() -> None:
    assert kinds([t(0, [("append", "x", 5), ("r", "x", [])])], {"x": [5]}) == ["internal"]
    assert kinds([t(0, [("append", "x", 1)]), t(1, [("r", "x", [1, 1])])]) == ["duplicate"]
    assert kinds([t(0, [("r", "x", [9])])]) == ["garbage"]
    diverged = [
        t(0, [("append", "x", 1)]),
        t(1, [("append", "x", 2)]),
        t(2, [("append", "x", 3)]),
        t(3, [("r", "x", [1, 2])]),
        t(4, [("r", "x", [1, 3])]),
    ]
    verdict = check_list_append(diverged)
    bad = [a for a in verdict.anomalies if a.kind is AnomalyKind.INCOMPATIBLE_ORDER]
    assert len(bad) == 1 and "not a prefix" in bad[0].text
    lost = check_list_append([t(0, [("append", "x", 1)]), t(1, [("append", "x", 2)])], {"x": [2]})
    assert [a.name for a in lost.anomalies] == ["lost"] and lost.lost == 1
    assert "T0 (process 0) appended 1 to 'x' and committed" in lost.anomalies[0].text


def test_a_stale_read_is_a_realtime_cycle_only() -> None:
    history = [
        t(0, [("append", "x", 1)], start=0, end=10),
        t(1, [("r", "x", [])], start=20, end=30),
    ]
    verdict = check_list_append(history, {"x": [1]})
    assert [a.name for a in verdict.anomalies] == ["G-single-realtime"]
    assert "committed before T1" in verdict.anomalies[0].text
    assert kinds(history, {"x": [1]}, realtime=False) == []
    same_process = [
        t(0, [("append", "x", 1)], start=0, end=10, process=7),
        t(1, [("r", "x", [])], start=20, end=30, process=7),
    ]
    assert kinds(same_process, {"x": [1]}, realtime=False) == ["G-single-process"]


def test_realtime_edges_are_transitively_reduced() -> None:
    chain = [t(i, [("append", "x", i)], start=20 * i, end=20 * i + 10) for i in range(50)]
    graph = build_graph_of([*chain, t(50, [("r", "x", list(range(50)))], start=2000, end=2010)])
    rt = [(a, b) for a, succ in graph.out.items() for b, ks in succ.items() if Edge.RT in ks]
    assert sorted(rt) == [(i, i + 1) for i in range(50)]


def build_graph_of(history: list[Txn]):  # type: ignore[no-untyped-def]
    from cairn.check.elle import _index

    return build_graph(_index(history, None), realtime=True)


def test_events_are_paired_and_validated() -> None:
    ops = [
        Op(1, OpType.INVOKE, "txn", "", [["append", "x", 1], ["r", "x", None]], 0),
        Op(2, OpType.INVOKE, "txn", "", [["r", "x", None]], 1),
        Op(1, OpType.OK, "txn", "", [["append", "x", 1], ["r", "x", [1]]], 5),
        Op(2, OpType.OK, "txn", "", [["r", "x", []]], 6),
    ]
    txns = transactions(ops)
    assert [x.ops for x in txns] == [(("append", "x", 1), ("r", "x", (1,))), (("r", "x", ()),)]
    assert check_list_append(ops, {"x": [1]}).ok
    with pytest.raises(HistoryError, match="differ"):
        transactions([ops[0], Op(1, OpType.OK, "txn", "", [["r", "x", []]], 3)])
    with pytest.raises(HistoryError, match="micro-operation"):
        transactions([Op(1, OpType.INVOKE, "txn", "", [["delete", "x", 1]], 0)])
    with pytest.raises(HistoryError, match="unique"):
        check_list_append([t(0, [("append", "x", 1)]), t(1, [("append", "x", 1)])])


_micro = st.tuples(st.sampled_from(("append", "r")), st.sampled_from(("x", "y", "z")))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(_micro, min_size=1, max_size=4), st.sampled_from((OK, OK, OK, FAIL, INFO))
        ),
        max_size=25,
    ),
    st.booleans(),
)
def test_serial_histories_are_always_clean(
    plan: list[tuple[list[tuple[str, str]], OpType]], info_applies: bool
) -> None:
    """Run the transactions one after another on a model; failed ones change nothing,
    unknown ones apply or not."""
    lists: dict[str, list[int]] = {"x": [], "y": [], "z": []}
    history: list[Txn] = []
    value = 0
    for n, (micro, outcome) in enumerate(plan):
        applies = outcome is OK or (outcome is INFO and info_applies)
        scratch = {k: list(v) for k, v in lists.items()}
        ops: list[tuple[str, str, object]] = []
        for f, k in micro:
            if f == "append":
                value += 1
                scratch[k].append(value)
                ops.append(("append", k, value))
            else:
                ops.append(("r", k, list(scratch[k]) if outcome is OK else None))
        if applies:
            lists = scratch
        history.append(t(n, ops, outcome, start=10 * n, end=10 * n + 5, process=n % 3))
    verdict = check_list_append(history, {k: list(v) for k, v in lists.items()})
    assert verdict.ok, [str(a) for a in verdict.anomalies]
