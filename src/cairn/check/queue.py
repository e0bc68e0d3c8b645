"""Queue checking: what a history of enqueues, dequeues and a final drain may not show.

Theory of operation
-------------------
Producers enqueue unique values (producer id, a dash, a sequence number: `"3-17"`) on a
few queue keys with LPUSH; consumers dequeue with RPOP or BRPOP (one key each time); when
the faults have stopped, each key is read whole with LRANGE (the *final* list, left to
right). The history is the usual `cairn.check` event list (`Op`): an INVOKE and a
completion per operation, OK, FAIL (definitely not applied) or INFO (unknown: it may take
effect at any time after its invocation, or never). Functions (`FUNCTIONS`): `enqueue`
(alias `lpush`), whose value is the element; `dequeue` (aliases `rpop`, `brpop`), invoked
with None, whose OK completion carries the element popped, or None when the queue was
empty (RPOP's nil, BRPOP's timeout).

A queue owes its clients this, and `check_queue` reports every breach as an `Anomaly`
with a one-line explanation naming the values:

- DUPLICATE: a value dequeued twice, or twice in the final list.
- UNEXPECTED: a value dequeued (or left at the end) that no enqueue sent: never enqueued,
  its enqueue definitely failed, or it was enqueued on another key.
- EARLY: a dequeue of a value that completed before the value's enqueue was invoked.
- DEQUEUED_AND_PRESENT: a value dequeued and still in the final list.
- LOST: acknowledged enqueues neither dequeued nor in the final list. A dequeue of unknown
  outcome may have popped one element nobody saw, so on each key only the missing values
  beyond that key's unknown dequeues are lost (all of the missing are named).
- ORDER: FIFO. LPUSH adds on the left and RPOP takes from the right, so of two enqueues on
  one key that were both acknowledged and did not overlap in time (a acknowledged before
  b was invoked), a comes out first. The check is careful with concurrency: it flags the
  pair only when b's dequeue completed before a's dequeue was even invoked, or when b was
  dequeued while a stayed in the list to the end. Per producer FIFO is the special case
  of one producer's enqueues (which never overlap); the check holds every pair of the key.
- FINAL_ORDER: in the final list such a b must lie left of a.

Unknown enqueues may be delivered, left at the end, or never appear. Without a final list
(the drain failed) the checks that need it are skipped. Everything runs in O(n log n) on
sorted arrays. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cairn.check.history import HistoryError, Op, OpType, pair_invocations

ENQUEUE = "enqueue"
DEQUEUE = "dequeue"
FUNCTIONS: Mapping[str, str] = {
    "enqueue": ENQUEUE,
    "lpush": ENQUEUE,
    "dequeue": DEQUEUE,
    "rpop": DEQUEUE,
    "brpop": DEQUEUE,
}
"""Every function a queue history may name, and what it is to the check."""


class AnomalyKind(enum.Enum):
    """What a queue must never do; see the module docstring."""

    DUPLICATE = "duplicate"
    UNEXPECTED = "unexpected"
    EARLY = "early"
    DEQUEUED_AND_PRESENT = "dequeued-and-present"
    LOST = "lost"
    ORDER = "order"
    FINAL_ORDER = "final-order"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One breach: its kind, the key, the values involved, and a one-line explanation."""

    kind: AnomalyKind
    key: str
    values: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class QueueOp:
    """One operation: an invocation paired with its completion.

    `f` is ENQUEUE or DEQUEUE. `value` is the element enqueued, or the element an OK
    dequeue popped (None: the queue was empty, and for a dequeue that failed or is
    unknown). Invariant: `end` is None exactly when `outcome` is INFO (an unknown
    operation may take effect at any time after `start`); otherwise `start <= end`.
    """

    process: int
    f: str
    key: str
    value: str | None
    outcome: OpType
    start: int
    end: int | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What the history did. `recovered` counts unknown enqueues seen later (dequeued or
    left at the end); `maybe_taken` counts acknowledged enqueues missing at the end that
    unknown dequeues may have popped (not counted as lost)."""

    enqueued: int = 0
    enqueue_failed: int = 0
    enqueue_unknown: int = 0
    dequeued: int = 0
    dequeue_empty: int = 0
    dequeue_failed: int = 0
    dequeue_unknown: int = 0
    present: int = 0
    recovered: int = 0
    lost: int = 0
    maybe_taken: int = 0
    keys: int = 0

    def describe(self) -> str:
        """One line for a report."""
        return (
            f"{self.enqueued} acknowledged enqueues ({self.enqueue_failed} failed, "
            f"{self.enqueue_unknown} unknown), {self.dequeued} dequeued ({self.dequeue_empty} "
            f"empty, {self.dequeue_failed} failed, {self.dequeue_unknown} unknown), "
            f"{self.present} left at the end, {self.recovered} unknown enqueues seen, "
            f"{self.maybe_taken} acknowledged possibly taken by unknown dequeues, "
            f"{self.lost} lost, on {self.keys} keys"
        )


@dataclass(frozen=True, slots=True)
class QueueVerdict:
    """The check's findings; `drained` says whether a final list was given."""

    anomalies: tuple[Anomaly, ...]
    stats: QueueStats
    drained: bool

    @property
    def ok(self) -> bool:
        """No anomaly."""
        return not self.anomalies


# --- pairing -------------------------------------------------------------------------------


def _event_problem(op: Op) -> str | None:
    f = FUNCTIONS.get(op.f)
    if f is None:
        return f"unknown function {op.f!r} (expected one of {', '.join(FUNCTIONS)})"
    if not isinstance(op.key, str):
        return f"key must be a string, not {op.key!r}"
    if f == ENQUEUE and op.type is OpType.INVOKE and not isinstance(op.value, str):
        return "an enqueue's value must be a string"
    if f == DEQUEUE and op.value is not None and not isinstance(op.value, str):
        return "a dequeue's value must be a string or null"
    if f == DEQUEUE and op.type is OpType.INVOKE and op.value is not None:
        return "a dequeue is invoked with null"
    return None


def queue_operations(ops: Sequence[Op]) -> list[QueueOp]:
    """Pair every invocation with its process's next completion, in invocation order.

    Invocations still outstanding at the end become INFO. Raises `HistoryError` on an
    unknown function, a bad value, a completion without invocation, or a second
    invocation while one is outstanding.
    """
    return pair_invocations(ops, _event_problem, _pair)


def _pair(call: Op, done: Op | None) -> QueueOp:
    f = FUNCTIONS[call.f]
    outcome = OpType.INFO if done is None else done.type
    end = None if done is None or outcome is OpType.INFO else done.time
    if f == ENQUEUE:
        value = call.value
    else:
        value = done.value if done is not None and outcome is OpType.OK else None
    assert value is None or isinstance(value, str)
    return QueueOp(call.process, f, call.key, value, outcome, call.time, end)


# --- the check ---------------------------------------------------------------------------


@dataclass
class _Facts:
    """The history indexed by value and key; `origin` is the first event's time."""

    enqueues: dict[str, QueueOp]
    deliveries: dict[str, list[QueueOp]]
    unknown_dequeues: dict[str, int]
    final: Mapping[str, Sequence[str]] | None
    origin: int

    def at(self, t: int | None) -> str:
        """A time as seconds since the history began."""
        return "?" if t is None else f"{(t - self.origin) / 1e9:.3f}s"


def check_queue(
    history: Sequence[Op] | Sequence[QueueOp], final: Mapping[str, Sequence[str]] | None
) -> QueueVerdict:
    """Check a queue history and its final lists (key -> LRANGE key 0 -1; None when the
    drain failed); see the module docstring."""
    ops = _as_queue_ops(history)
    facts = _index(ops, final)
    keys = sorted({op.key for op in ops} | set(final or {}))
    anomalies: list[Anomaly] = []
    anomalies += _delivery_anomalies(facts)
    lost = maybe = 0
    if final is not None:
        anomalies += _final_anomalies(facts, keys)
        for key in keys:
            found, key_lost, key_maybe = _lost(facts, key)
            anomalies += found
            lost, maybe = lost + key_lost, maybe + key_maybe
    for key in keys:
        anomalies += _order_anomalies(facts, key)
    stats = _stats(ops, facts, len(keys), lost, maybe)
    return QueueVerdict(tuple(anomalies), stats, final is not None)


def _as_queue_ops(history: Sequence[Op] | Sequence[QueueOp]) -> list[QueueOp]:
    if all(isinstance(op, QueueOp) for op in history):
        return [op for op in history if isinstance(op, QueueOp)]
    return queue_operations([op for op in history if isinstance(op, Op)])


def _index(ops: list[QueueOp], final: Mapping[str, Sequence[str]] | None) -> _Facts:
    enqueues: dict[str, QueueOp] = {}
    deliveries: dict[str, list[QueueOp]] = {}
    unknown: dict[str, int] = {}
    for op in ops:
        if op.f == ENQUEUE:
            assert op.value is not None
            if op.value in enqueues:
                raise HistoryError(f"value {op.value!r} enqueued twice: values must be unique")
            enqueues[op.value] = op
        elif op.outcome is OpType.OK and op.value is not None:
            deliveries.setdefault(op.value, []).append(op)
        elif op.outcome is OpType.INFO:
            unknown[op.key] = unknown.get(op.key, 0) + 1
    for pops in deliveries.values():
        pops.sort(key=lambda op: (op.end, op.start))
    origin = min((op.start for op in ops), default=0)
    return _Facts(enqueues, deliveries, unknown, final, origin)


def _name(value: str) -> str:
    """A value and its producer, for explanations."""
    producer = value.rsplit("-", 1)[0] if "-" in value else "?"
    return f"{value!r} (producer {producer})"


def _source_problem(facts: _Facts, value: str, key: str) -> str | None:
    """Why `value`, seen on `key`, cannot have come from an enqueue; None if it can."""
    enq = facts.enqueues.get(value)
    if enq is None:
        return "was never enqueued"
    if enq.outcome is OpType.FAIL:
        return "was enqueued by an enqueue that definitely failed"
    if enq.key != key:
        return f"was enqueued on {enq.key!r}"
    return None


def _delivery_anomalies(facts: _Facts) -> list[Anomaly]:
    out: list[Anomaly] = []
    for value in sorted(facts.deliveries):
        pops = facts.deliveries[value]
        first = pops[0]
        if len(pops) > 1:
            when = ", ".join(f"from {p.key!r} at {facts.at(p.end)}" for p in pops)
            text = f"{_name(value)} dequeued {len(pops)} times ({when})"
            out.append(Anomaly(AnomalyKind.DUPLICATE, first.key, (value,), text))
        for pop in pops:
            problem = _source_problem(facts, value, pop.key)
            if problem is not None:
                text = f"{_name(value)} dequeued from {pop.key!r} at {facts.at(pop.end)} {problem}"
                out.append(Anomaly(AnomalyKind.UNEXPECTED, pop.key, (value,), text))
                continue
            enq = facts.enqueues[value]
            if pop.end is not None and pop.end < enq.start:
                text = (
                    f"{_name(value)} dequeued from {pop.key!r} at {facts.at(pop.end)}, before "
                    f"its enqueue was invoked at {facts.at(enq.start)}"
                )
                out.append(Anomaly(AnomalyKind.EARLY, pop.key, (value,), text))
    return out


def _final_anomalies(facts: _Facts, keys: list[str]) -> list[Anomaly]:
    assert facts.final is not None
    out: list[Anomaly] = []
    for key in keys:
        items = list(facts.final.get(key, ()))
        counts: dict[str, int] = {}
        for value in items:
            counts[value] = counts.get(value, 0) + 1
        for value in sorted(counts):
            if counts[value] > 1:
                text = f"{_name(value)} appears {counts[value]} times in the final list of {key!r}"
                out.append(Anomaly(AnomalyKind.DUPLICATE, key, (value,), text))
            problem = _source_problem(facts, value, key)
            if problem is not None:
                text = f"{_name(value)} is in the final list of {key!r} but {problem}"
                out.append(Anomaly(AnomalyKind.UNEXPECTED, key, (value,), text))
            pops = facts.deliveries.get(value)
            if pops:
                text = (
                    f"{_name(value)} was dequeued from {pops[0].key!r} at "
                    f"{facts.at(pops[0].end)} yet is still in the final list of {key!r}"
                )
                out.append(Anomaly(AnomalyKind.DEQUEUED_AND_PRESENT, key, (value,), text))
    return out


def _lost(facts: _Facts, key: str) -> tuple[list[Anomaly], int, int]:
    """Acknowledged enqueues on `key` neither dequeued nor left at the end: the anomaly,
    how many are lost, and how many unknown dequeues may have taken."""
    assert facts.final is not None
    present = set(facts.final.get(key, ()))
    missing = sorted(
        value
        for value, op in facts.enqueues.items()
        if op.key == key
        and op.outcome is OpType.OK
        and value not in facts.deliveries
        and value not in present
    )
    unknown = facts.unknown_dequeues.get(key, 0)
    if len(missing) <= unknown:
        return [], 0, len(missing)
    lost = len(missing) - unknown
    shown = ", ".join(_name(v) for v in missing[:10]) + (", ..." if len(missing) > 10 else "")
    text = (
        f"{len(missing)} acknowledged enqueues on {key!r} neither dequeued nor in the final "
        f"list, and only {unknown} dequeues of unknown outcome could have taken them: at "
        f"least {lost} lost: {shown}"
    )
    return [Anomaly(AnomalyKind.LOST, key, tuple(missing), text)], lost, unknown


# --- FIFO --------------------------------------------------------------------------------

_Best = tuple[int, QueueOp] | None


def _suffix_min(ordered: list[QueueOp], score: Callable[[QueueOp], int | None]) -> list[_Best]:
    """For each i, the operation of `ordered[i:]` with the smallest score (None: none has
    a score); one more entry, None, for the empty suffix."""
    best: list[_Best] = [None] * (len(ordered) + 1)
    for i in range(len(ordered) - 1, -1, -1):
        s = score(ordered[i])
        prev = best[i + 1]
        best[i] = (s, ordered[i]) if s is not None and (prev is None or s < prev[0]) else prev
    return best


def _later(ordered: list[QueueOp], starts: list[int], best: list[_Best], a: QueueOp) -> _Best:
    """The best enqueue invoked after acknowledged enqueue `a` completed."""
    assert a.end is not None
    return best[bisect_right(starts, a.end)]


def _order_anomalies(facts: _Facts, key: str) -> list[Anomaly]:
    ordered = sorted(
        (op for op in facts.enqueues.values() if op.key == key and op.outcome is OpType.OK),
        key=lambda op: (op.start, str(op.value)),
    )
    starts = [op.start for op in ordered]
    out = _dequeue_inversions(facts, ordered, starts)
    if facts.final is not None:
        out += _left_behind(facts, key, ordered, starts)
        out += _final_inversions(facts, key, ordered, starts)
    return out


def _pop(facts: _Facts, op: QueueOp) -> QueueOp | None:
    assert op.value is not None
    pops = facts.deliveries.get(op.value)
    return pops[0] if pops else None


def _dequeue_inversions(facts: _Facts, ordered: list[QueueOp], starts: list[int]) -> list[Anomaly]:
    def pop_end(op: QueueOp) -> int | None:
        pop = _pop(facts, op)
        return None if pop is None else pop.end

    best = _suffix_min(ordered, pop_end)
    out: list[Anomaly] = []
    for a in ordered:
        pop_a = _pop(facts, a)
        later = _later(ordered, starts, best, a)
        if pop_a is None or later is None or later[0] >= pop_a.start:
            continue
        b = later[1]
        assert a.value is not None and b.value is not None
        text = (
            f"FIFO broken on {a.key!r}: {_name(a.value)} was acknowledged at {facts.at(a.end)} "
            f"before {_name(b.value)} was enqueued at {facts.at(b.start)}, yet the dequeue of "
            f"{b.value!r} completed at {facts.at(later[0])}, before the dequeue of "
            f"{a.value!r} was invoked at {facts.at(pop_a.start)}"
        )
        out.append(Anomaly(AnomalyKind.ORDER, a.key, (a.value, b.value), text))
    return out


def _left_behind(
    facts: _Facts, key: str, ordered: list[QueueOp], starts: list[int]
) -> list[Anomaly]:
    assert facts.final is not None
    present = set(facts.final.get(key, ()))

    def popped_at(op: QueueOp) -> int | None:
        pop = _pop(facts, op)
        return None if pop is None else pop.end

    best = _suffix_min(ordered, popped_at)
    out: list[Anomaly] = []
    for a in ordered:
        stayed = a.value in present and a.value not in facts.deliveries
        later = _later(ordered, starts, best, a) if stayed else None
        if later is None:
            continue
        b = later[1]
        assert a.value is not None and b.value is not None
        text = (
            f"FIFO broken on {key!r}: {_name(b.value)} was dequeued at {facts.at(later[0])} "
            f"while {_name(a.value)}, acknowledged at {facts.at(a.end)} before {b.value!r} "
            f"was enqueued, stayed in the list to the end"
        )
        out.append(Anomaly(AnomalyKind.ORDER, key, (a.value, b.value), text))
    return out


def _final_inversions(
    facts: _Facts, key: str, ordered: list[QueueOp], starts: list[int]
) -> list[Anomaly]:
    assert facts.final is not None
    items = list(facts.final.get(key, ()))
    position = {value: i for i, value in enumerate(items)}

    def rightmost(op: QueueOp) -> int | None:  # minimising -index finds the largest index
        assert op.value is not None
        i = position.get(op.value)
        return None if i is None else -i

    best = _suffix_min(ordered, rightmost)
    out: list[Anomaly] = []
    for a in ordered:
        i = position.get(a.value) if a.value is not None else None
        later = _later(ordered, starts, best, a) if i is not None else None
        if i is None or later is None or -later[0] < i:
            continue
        b = later[1]
        assert a.value is not None and b.value is not None
        text = (
            f"final list of {key!r} out of order: {_name(b.value)}, enqueued after "
            f"{_name(a.value)} was acknowledged, is at index {-later[0]}, right of "
            f"{a.value!r} at index {i} (LPUSH puts later values on the left)"
        )
        out.append(Anomaly(AnomalyKind.FINAL_ORDER, key, (a.value, b.value), text))
    return out


# --- figures -------------------------------------------------------------------------------


def _stats(ops: list[QueueOp], facts: _Facts, keys: int, lost: int, maybe: int) -> QueueStats:
    def count(f: str, outcome: OpType) -> int:
        return sum(op.f == f and op.outcome is outcome for op in ops)

    present = [v for items in (facts.final or {}).values() for v in items]
    unknown = {v for v, op in facts.enqueues.items() if op.outcome is OpType.INFO}
    seen = (unknown & set(facts.deliveries)) | (unknown & set(present))
    dequeued = sum(op.f == DEQUEUE and op.outcome is OpType.OK and op.value is not None
                   for op in ops)  # fmt: skip
    return QueueStats(
        enqueued=count(ENQUEUE, OpType.OK),
        enqueue_failed=count(ENQUEUE, OpType.FAIL),
        enqueue_unknown=count(ENQUEUE, OpType.INFO),
        dequeued=dequeued,
        dequeue_empty=count(DEQUEUE, OpType.OK) - dequeued,
        dequeue_failed=count(DEQUEUE, OpType.FAIL),
        dequeue_unknown=count(DEQUEUE, OpType.INFO),
        present=len(present),
        recovered=len(seen),
        lost=lost,
        maybe_taken=maybe,
        keys=keys,
    )
