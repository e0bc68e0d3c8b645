"""Property tests: the checker against histories linearizable by construction, corrupted
ones, and a brute-force reference on small random histories."""

from __future__ import annotations

import itertools
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.check.history import Operation, OpType, complete_operations
from cairn.check.linearizability import Outcome, check_history
from cairn.check.model import Illegal, State, apply, compile_step
from cairn.check.synth import (
    Fate,
    Interval,
    PlannedOp,
    build_history,
    corrupt_read,
    interval_history,
)

KEYS = ("a", "b")


@st.composite
def planned_op(draw: st.DrawFn, serial: int) -> PlannedOp:
    f = draw(st.sampled_from(("get", "get", "put", "append", "cas")))
    value = f"v{serial}"
    arg: object = None
    if f in ("put", "append"):
        arg = value
    elif f == "cas":
        expected = draw(
            st.sampled_from((None, *(f"v{i}" for i in range(max(serial - 4, 0), serial))))
        )
        arg = (expected, value)
    return PlannedOp(
        f=f,
        key=draw(st.sampled_from(KEYS)),
        arg=arg,
        think=draw(st.integers(1, 30)),
        duration=draw(st.integers(0, 60)),
        at_permille=draw(st.integers(0, 1000)),
        fate=draw(st.sampled_from(Fate)),
    )


@st.composite
def plans(draw: st.DrawFn) -> list[list[PlannedOp]]:
    processes = draw(st.integers(1, 6))
    count = draw(st.integers(0, 40))
    out: list[list[PlannedOp]] = [[] for _ in range(processes)]
    for serial in range(count):
        out[draw(st.integers(0, processes - 1))].append(draw(planned_op(serial)))
    return out


@settings(max_examples=50, deadline=None)
@given(plans())
def test_linearizable_by_construction_is_accepted(p: list[list[PlannedOp]]) -> None:
    verdict = check_history(build_history(p))
    assert verdict.outcome is Outcome.LINEARIZABLE, verdict.explanation


@settings(max_examples=50, deadline=None)
@given(plans(), st.integers(0, 2**32))
def test_read_of_a_value_never_written_is_rejected(p: list[list[PlannedOp]], seed: int) -> None:
    history = build_history(p)
    if not any(op.f == "get" and op.type is OpType.OK for op in history):
        return
    verdict = check_history(corrupt_read(history, Random(seed)))
    assert verdict.outcome is Outcome.VIOLATION
    assert verdict.explanation is not None


# --- brute force reference ----------------------------------------------------------------


def _legal(order: tuple[Operation, ...]) -> bool:
    """Whether replaying `order` obeys the register and the real-time order."""
    state: State = None
    for n, op in enumerate(order):
        if any(later.ret is not None and later.ret < op.call for later in order[n + 1 :]):
            return False
        after = apply(compile_step(op), state)
        if isinstance(after, Illegal):
            return False
        state = after
    return True


def brute_force(ops: list[Operation]) -> bool:
    """Linearizable by exhaustive search: some subset of the INFO writes, with every OK
    operation, has an order that is legal. The real-time order includes the dropped INFO
    operations only through their absence, which is right: they did not happen."""
    ok = [op for op in ops if op.status is OpType.OK]
    info = [op for op in ops if op.status is OpType.INFO and op.f != "get"]
    for size in range(len(info) + 1):
        for chosen in itertools.combinations(info, size):
            if any(_legal(order) for order in itertools.permutations([*ok, *chosen])):
                return True
    return False


VALUES = (None, "a", "b", "ab")


@st.composite
def small_history(draw: st.DrawFn) -> list[Interval]:
    intervals = []
    for p in range(draw(st.integers(0, 6))):
        f = draw(st.sampled_from(("get", "put", "append", "cas")))
        start = draw(st.integers(0, 20))
        end = start + draw(st.integers(0, 12))
        status = draw(
            st.sampled_from((OpType.OK, OpType.OK, OpType.OK, OpType.FAIL, OpType.INFO, None))
        )
        written = draw(st.sampled_from(("a", "b")))
        value: object = {
            "get": None,
            "put": written,
            "append": written,
            "cas": (draw(st.sampled_from(VALUES)), written),
        }[f]
        result = draw(st.sampled_from(VALUES)) if f == "get" and status is OpType.OK else None
        intervals.append(Interval(p, f, "x", value, start, end, status, result))
    return intervals


@settings(max_examples=150, deadline=None)
@given(small_history())
def test_agrees_with_brute_force(intervals: list[Interval]) -> None:
    history = interval_history(intervals)
    expected = brute_force(complete_operations(history))
    verdict = check_history(history)
    assert verdict.ok == expected, verdict.explanation
    assert verdict.outcome is not Outcome.UNKNOWN
