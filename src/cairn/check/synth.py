"""Synthetic register histories that are linearizable by construction, for tests and benches.

Each process runs a plan: a sequence of operations with think times and durations. Every
operation that takes effect is given an effect instant inside its interval (a timed-out
operation's instant may fall after its INFO completion, as a real timeout's may); replaying
the effects in instant order on a sequential register gives the values reads return and
whether each cas succeeded. The resulting history is linearizable: the effect instants are
a linearization. `corrupt_read` then breaks one read to get a history that is not.

Pure: randomness comes from an injected `random.Random`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from random import Random

from cairn.check.history import Op, OpType
from cairn.check.model import Illegal, State, Step, StepKind, apply


class Fate(enum.Enum):
    """What happens to a planned operation."""

    DONE = "done"  # takes effect; the client learns the outcome (OK, or FAIL for a cas miss)
    FAILED = "failed"  # does not take effect; the client is told FAIL
    APPLIED_TIMEOUT = "applied-timeout"  # takes effect; the client times out (INFO)
    LOST_TIMEOUT = "lost-timeout"  # never takes effect; the client times out (INFO)


@dataclass(frozen=True, slots=True)
class PlannedOp:
    """One operation of a process's plan.

    `arg`: get None; put/append the string written; cas (expected, new). `think` is the idle
    time before invocation (>= 1), `duration` the time to completion (>= 0), and
    `at_permille` where in the interval (0..1000, or up to 3000 past it for an applied
    timeout) the operation takes effect.
    """

    f: str
    key: str
    arg: object
    think: int
    duration: int
    at_permille: int
    fate: Fate


@dataclass(slots=True)
class _Pending:
    plan: PlannedOp
    process: int
    invoke: int
    effect: int
    seq: int
    result: object = None
    status: OpType = OpType.OK


def build_history(plans: Sequence[Sequence[PlannedOp]]) -> list[Op]:
    """Run the plans (plan i is process i) and return the history, ordered by time.

    After a timed-out operation a process continues under a fresh process id, as Jepsen's
    clients do.
    """
    pending = _schedule(plans)
    _replay(pending)
    return _events(pending)


def _schedule(plans: Sequence[Sequence[PlannedOp]]) -> list[_Pending]:
    out: list[_Pending] = []
    next_id = len(plans)
    for process, plan in enumerate(plans):
        t, current = 0, process
        for p in plan:
            invoke = t + p.think
            effect = invoke + p.duration * p.at_permille // 1000
            out.append(_Pending(p, current, invoke, effect, len(out)))
            t = invoke + p.duration
            if p.fate in (Fate.APPLIED_TIMEOUT, Fate.LOST_TIMEOUT):
                current, next_id = next_id, next_id + 1
    return out


def _step(p: PlannedOp) -> Step:
    if p.f == "cas":
        assert isinstance(p.arg, tuple)
        return Step(StepKind.MAYBE_CAS, p.arg[0], p.arg[1])
    assert isinstance(p.arg, str)
    return Step(StepKind.PUT if p.f == "put" else StepKind.APPEND, p.arg, None)


def _replay(pending: list[_Pending]) -> None:
    state: dict[str, State] = {}
    for op in sorted(pending, key=lambda o: (o.effect, o.seq)):
        fate = op.plan.fate
        if fate in (Fate.FAILED, Fate.LOST_TIMEOUT):
            op.status = OpType.FAIL if fate is Fate.FAILED else OpType.INFO
            continue
        before = state.get(op.plan.key)
        if op.plan.f == "get":
            op.result = before
        else:
            after = apply(_step(op.plan), before)
            assert not isinstance(after, Illegal)
            state[op.plan.key] = after
        if op.plan.f == "cas" and isinstance(op.plan.arg, tuple) and before != op.plan.arg[0]:
            op.status = OpType.FAIL
        if fate is Fate.APPLIED_TIMEOUT:
            op.status = OpType.INFO


def _events(pending: list[_Pending]) -> list[Op]:
    events: list[tuple[int, int, int, Op]] = []
    for op in pending:
        p = op.plan
        invoke_value = None if p.f == "get" else p.arg
        invoke = Op(op.process, OpType.INVOKE, p.f, p.key, invoke_value, op.invoke)
        events.append((op.invoke, op.seq, 0, invoke))
        done = op.invoke + p.duration
        value = op.result if p.f == "get" and op.status is OpType.OK else None
        if p.f != "get":
            value = p.arg
        events.append((done, op.seq, 1, Op(op.process, op.status, p.f, p.key, value, done)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [e[3] for e in events]


# --- random plans ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """Parameters of `random_plans`: sizes, the mix of functions, the rate of faults."""

    ops: int = 1000
    keys: int = 4
    processes: int = 5
    get_weight: int = 50
    put_weight: int = 30
    append_weight: int = 10
    cas_weight: int = 10
    info_rate: float = 0.02
    fail_rate: float = 0.01
    max_duration: int = 1000
    max_think: int = 200


def random_plans(rng: Random, w: Workload) -> list[list[PlannedOp]]:
    """Plans for `w.processes` processes, `w.ops` operations in all, values unique."""
    plans: list[list[PlannedOp]] = [[] for _ in range(w.processes)]
    written: dict[str, list[str]] = {}
    functions = ("get", "put", "append", "cas")
    weights = (w.get_weight, w.put_weight, w.append_weight, w.cas_weight)
    for n in range(w.ops):
        key = f"k{rng.randrange(w.keys)}"
        f = rng.choices(functions, weights)[0]
        value = f"v{n}"
        arg = _arg(rng, f, value, written.setdefault(key, []))
        plans[rng.randrange(w.processes)].append(
            PlannedOp(
                f=f,
                key=key,
                arg=arg,
                think=rng.randint(1, w.max_think),
                duration=rng.randint(0, w.max_duration),
                at_permille=rng.randint(0, 1000),
                fate=_fate(rng, w),
            )
        )
    return plans


def _arg(rng: Random, f: str, value: str, written: list[str]) -> object:
    if f == "get":
        return None
    if f == "cas":
        recent = written[-3:]
        expected = rng.choice(recent) if recent and rng.random() < 0.9 else None
        written.append(value)
        return (expected, value)
    written.append(value)
    return value


def _fate(rng: Random, w: Workload) -> Fate:
    roll = rng.random()
    if roll < w.info_rate:
        return Fate.APPLIED_TIMEOUT if rng.random() < 0.5 else Fate.LOST_TIMEOUT
    if roll < w.info_rate + w.fail_rate:
        return Fate.FAILED
    return Fate.DONE


def random_history(rng: Random, w: Workload) -> list[Op]:
    """A linearizable history of the workload `w`."""
    return build_history(random_plans(rng, w))


NEVER_WRITTEN = "<never written>"
"""The value `corrupt_read` plants; no plan writes it."""


def corrupt_read(ops: Sequence[Op], rng: Random, value: str = NEVER_WRITTEN) -> list[Op]:
    """A copy of `ops` in which one OK get, chosen from the middle half, read `value`.

    With `value` never written, the result is not linearizable. Raises ValueError if the
    history has no OK get.
    """
    reads = [i for i, op in enumerate(ops) if op.f == "get" and op.type is OpType.OK]
    if not reads:
        raise ValueError("the history has no successful get to corrupt")
    middle = reads[len(reads) // 4 : max(len(reads) * 3 // 4, 1)]
    i = rng.choice(middle)
    out = list(ops)
    out[i] = replace(out[i], value=value)
    return out


# --- hand-written histories ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """One operation written as an interval, for hand-made histories.

    `value` is the invocation's value, `result` a get's answer, `end` the completion time
    (for INFO, when the client gave up), `status` OK, FAIL or INFO, or None for an
    invocation that never completes.
    """

    process: int
    f: str
    key: str
    value: object
    start: int
    end: int
    status: OpType | None = OpType.OK
    result: object = None


def interval_history(intervals: Sequence[Interval]) -> list[Op]:
    """The events of `intervals`, ordered by time (at equal times, in the given order, each
    invocation before its own completion)."""
    events: list[tuple[int, int, int, Op]] = []
    for n, iv in enumerate(intervals):
        events.append(
            (iv.start, n, 0, Op(iv.process, OpType.INVOKE, iv.f, iv.key, iv.value, iv.start))
        )
        if iv.status is not None:
            value = iv.result if iv.f == "get" else iv.value
            events.append((iv.end, n, 1, Op(iv.process, iv.status, iv.f, iv.key, value, iv.end)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [e[3] for e in events]
