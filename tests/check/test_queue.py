"""The queue check: hand-made histories for every anomaly and for clean ones, and
property tests against a simulated queue (correct, or with a planted fault)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.check.history import HistoryError, Op, OpType
from cairn.check.queue import AnomalyKind, QueueVerdict, check_queue, queue_operations

OK, FAIL, INFO = OpType.OK, OpType.FAIL, OpType.INFO
S = 1_000_000_000  # the times below are in seconds, events in nanoseconds


@dataclass
class H:
    """A hand-made history: operations as intervals, rendered as `Op` events."""

    ops: list[tuple[int, int, Op]] = field(default_factory=list)
    _process: int = 0

    def _add(self, f: str, key: str, value: object, done: object, outcome: OpType,
             start: float, end: float | None) -> H:  # fmt: skip
        self._process += 1
        p = self._process
        self.ops.append((int(start * S), 0, Op(p, OpType.INVOKE, f, key, value, int(start * S))))
        if end is not None:
            t = int(end * S)
            self.ops.append((t, 1, Op(p, outcome, f, key, done, t)))
        return self

    def enq(self, value: str, start: float, end: float | None, outcome: OpType = OK,
            key: str = "q") -> H:  # fmt: skip
        """An enqueue of `value`; `end` None: never completed."""
        return self._add("lpush", key, value, value, outcome, start, end)

    def deq(self, value: str | None, start: float, end: float | None, outcome: OpType = OK,
            key: str = "q") -> H:  # fmt: skip
        """A dequeue that popped `value` (None: empty, or not OK)."""
        return self._add("brpop", key, None, value if outcome is OK else None, outcome, start, end)

    def events(self) -> list[Op]:
        return [op for _, _, op in sorted(self.ops, key=lambda x: (x[0], x[1]))]

    def check(self, final: dict[str, list[str]] | None) -> QueueVerdict:
        return check_queue(self.events(), final)


def kinds(v: QueueVerdict) -> list[AnomalyKind]:
    return [a.kind for a in v.anomalies]


# --- clean histories --------------------------------------------------------------------


CLEAN: list[tuple[str, H, dict[str, list[str]] | None]] = [
    ("empty", H(), {}),
    (
        "in order",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq("1-1", 4, 5).deq("1-2", 6, 7).deq(None, 8, 9),
        {"q": []},
    ),
    (
        "left at the end in LPUSH order",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3),
        {"q": ["1-2", "1-1"]},
    ),
    (
        "overlapping enqueues may come out either way",
        H().enq("1-1", 0, 3).enq("2-1", 1, 2).deq("2-1", 4, 5).deq("1-1", 6, 7),
        {"q": []},
    ),
    (
        "overlapping enqueues may sit either way at the end",
        H().enq("1-1", 0, 3).enq("2-1", 1, 2),
        {"q": ["1-1", "2-1"]},
    ),
    (
        "overlapping dequeues may complete either way",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq("1-1", 4, 7).deq("1-2", 5, 6),
        {"q": []},
    ),
    (
        "an unknown enqueue may vanish, be dequeued or stay",
        H().enq("1-1", 0, None).enq("2-1", 1, 2, INFO).enq("3-1", 3, 4, INFO).deq("2-1", 5, 6),
        {"q": ["3-1"]},
    ),
    (
        "an unknown enqueue may apply after a later acknowledged one",
        H().enq("1-1", 0, 1, INFO).enq("1-2", 2, 3).deq("1-2", 4, 5).deq("1-1", 6, 7),
        {"q": []},
    ),
    (
        "an unknown dequeue may have taken an acknowledged value",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq(None, 4, 5, INFO).deq("1-2", 6, 7),
        {"q": []},
    ),
    (
        "a dequeue may complete after a later enqueue's dequeue when it was invoked first",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq("1-1", 4, 9).deq("1-2", 5, 6),
        {"q": []},
    ),
    (
        "no final list: the end checks are skipped",
        H().enq("1-1", 0, 1),
        None,
    ),
    (
        "keys are separate queues",
        H().enq("1-1", 0, 1, key="a").enq("2-1", 2, 3, key="b").deq("2-1", 4, 5, key="b"),
        {"a": ["1-1"], "b": []},
    ),
]


@pytest.mark.parametrize(("name", "h", "final"), CLEAN, ids=[c[0] for c in CLEAN])
def test_clean_histories_pass(name: str, h: H, final: dict[str, list[str]] | None) -> None:
    verdict = h.check(final)
    assert verdict.ok, [str(a) for a in verdict.anomalies]
    assert verdict.stats.lost == 0


def test_the_figures() -> None:
    h = (
        H()
        .enq("1-1", 0, 1)
        .enq("1-2", 2, 3, FAIL)
        .enq("1-3", 4, 5, INFO)
        .enq("1-4", 6, 7)
        .deq("1-1", 8, 9)
        .deq(None, 10, 11)
        .deq(None, 12, 13, FAIL)
        .deq(None, 14, 15, INFO)
        .enq("1-5", 16, 17)
    )
    v = h.check({"q": ["1-5", "1-3"]})
    assert v.ok and v.drained
    s = v.stats
    assert (s.enqueued, s.enqueue_failed, s.enqueue_unknown) == (3, 1, 1)
    assert (s.dequeued, s.dequeue_empty, s.dequeue_failed, s.dequeue_unknown) == (1, 1, 1, 1)
    assert (s.present, s.recovered, s.maybe_taken, s.lost, s.keys) == (2, 1, 1, 0, 1)
    assert "3 acknowledged enqueues" in s.describe()


# --- one history per anomaly ------------------------------------------------------------

BAD: list[tuple[str, H, dict[str, list[str]] | None, AnomalyKind, tuple[str, ...]]] = [
    (
        "dequeued twice",
        H().enq("1-1", 0, 1).deq("1-1", 2, 3).deq("1-1", 4, 5),
        {"q": []},
        AnomalyKind.DUPLICATE,
        ("1-1",),
    ),
    (
        "twice in the final list",
        H().enq("1-1", 0, 1),
        {"q": ["1-1", "1-1"]},
        AnomalyKind.DUPLICATE,
        ("1-1",),
    ),
    (
        "dequeued but never enqueued",
        H().enq("1-1", 0, 1).deq("9-9", 2, 3),
        {"q": ["1-1"]},
        AnomalyKind.UNEXPECTED,
        ("9-9",),
    ),
    (
        "dequeued though its enqueue failed",
        H().enq("1-1", 0, 1, FAIL).deq("1-1", 2, 3),
        {"q": []},
        AnomalyKind.UNEXPECTED,
        ("1-1",),
    ),
    (
        "dequeued from another key",
        H().enq("1-1", 0, 1, key="a").deq("1-1", 2, 3, key="b"),
        {"a": [], "b": []},
        AnomalyKind.UNEXPECTED,
        ("1-1",),
    ),
    (
        "in the final list but never enqueued",
        H(),
        {"q": ["7-7"]},
        AnomalyKind.UNEXPECTED,
        ("7-7",),
    ),
    (
        "dequeued before it was enqueued",
        H().deq("1-1", 0, 1).enq("1-1", 2, 3),
        {"q": []},
        AnomalyKind.EARLY,
        ("1-1",),
    ),
    (
        "dequeued and still present",
        H().enq("1-1", 0, 1).deq("1-1", 2, 3),
        {"q": ["1-1"]},
        AnomalyKind.DEQUEUED_AND_PRESENT,
        ("1-1",),
    ),
    (
        "an acknowledged enqueue lost",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq("1-1", 4, 5),
        {"q": []},
        AnomalyKind.LOST,
        ("1-2",),
    ),
    (
        "more missing than unknown dequeues",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq(None, 4, 5, INFO),
        {"q": []},
        AnomalyKind.LOST,
        ("1-1", "1-2"),
    ),
    (
        "an unknown dequeue on another key explains nothing",
        H().enq("1-1", 0, 1, key="a").deq(None, 2, 3, INFO, key="b"),
        {"a": [], "b": []},
        AnomalyKind.LOST,
        ("1-1",),
    ),
    (
        "FIFO: the later value's dequeue completed before the earlier one's was invoked",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq("1-2", 4, 5).deq("1-1", 6, 7),
        {"q": []},
        AnomalyKind.ORDER,
        ("1-1", "1-2"),
    ),
    (
        "FIFO across producers of one key",
        H().enq("1-1", 0, 1).enq("2-1", 2, 3).deq("2-1", 4, 5).deq("1-1", 6, 7),
        {"q": []},
        AnomalyKind.ORDER,
        ("1-1", "2-1"),
    ),
    (
        "FIFO: the later value dequeued while the earlier one stays to the end",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3).deq("1-2", 4, 5),
        {"q": ["1-1"]},
        AnomalyKind.ORDER,
        ("1-1", "1-2"),
    ),
    (
        "the final list out of LPUSH order",
        H().enq("1-1", 0, 1).enq("1-2", 2, 3),
        {"q": ["1-1", "1-2"]},
        AnomalyKind.FINAL_ORDER,
        ("1-1", "1-2"),
    ),
]


@pytest.mark.parametrize(("name", "h", "final", "kind", "values"), BAD, ids=[b[0] for b in BAD])
def test_each_anomaly_is_found_and_named(
    name: str, h: H, final: dict[str, list[str]] | None, kind: AnomalyKind,
    values: tuple[str, ...],
) -> None:  # fmt: skip
    verdict = h.check(final)
    assert not verdict.ok
    found = [a for a in verdict.anomalies if a.kind is kind]
    assert found, [str(a) for a in verdict.anomalies]
    assert found[0].values == values
    for value in values:
        assert repr(value) in found[0].text
    assert "\n" not in found[0].text


def test_lost_counts_only_what_unknown_dequeues_cannot_explain() -> None:
    h = H().enq("1-1", 0, 1).enq("1-2", 2, 3).enq("1-3", 4, 5).deq(None, 6, 7, INFO)
    v = h.check({"q": []})
    assert kinds(v) == [AnomalyKind.LOST]
    assert v.stats.lost == 2 and v.stats.maybe_taken == 1
    assert "at least 2 lost" in v.anomalies[0].text


def test_the_order_check_needs_enqueues_that_did_not_overlap() -> None:
    # 1-2 was invoked (at 0.5) before 1-1 was acknowledged (at 1): either order is fine.
    h = H().enq("1-1", 0, 1).enq("2-1", 0.5, 3).deq("2-1", 4, 5).deq("1-1", 6, 7)
    assert h.check({"q": []}).ok


def test_unknown_enqueues_are_not_held_to_fifo() -> None:
    h = H().enq("1-1", 0, 1, INFO).enq("1-2", 2, 3).deq("1-2", 4, 5)
    assert h.check({"q": ["1-1"]}).ok


def test_without_a_final_list_only_the_history_is_checked() -> None:
    h = H().enq("1-1", 0, 1).deq("1-1", 2, 3).deq("1-1", 4, 5)
    v = h.check(None)
    assert not v.drained and kinds(v) == [AnomalyKind.DUPLICATE]


@pytest.mark.parametrize(
    "events",
    [
        [Op(1, OpType.INVOKE, "get", "q", None, 0)],
        [Op(1, OpType.OK, "lpush", "q", "1-1", 0)],
        [Op(1, OpType.INVOKE, "lpush", "q", None, 0)],
        [Op(1, OpType.INVOKE, "rpop", "q", "x", 0)],
        [Op(1, OpType.INVOKE, "rpop", "q", None, 0), Op(1, OpType.INVOKE, "rpop", "q", None, 1)],
        [
            Op(1, OpType.INVOKE, "lpush", "q", "1-1", 0),
            Op(2, OpType.INVOKE, "lpush", "q", "1-1", 1),
        ],
    ],
)
def test_malformed_histories_are_refused(events: list[Op]) -> None:
    with pytest.raises(HistoryError):
        check_queue(events, {})


def test_pairing_keeps_invocation_order_and_leaves_the_unfinished_unknown() -> None:
    events = H().enq("1-1", 0, 3).deq("1-1", 1, 2).enq("2-1", 4, None).events()
    ops = queue_operations(events)
    assert [(o.f, o.value, o.outcome, o.end) for o in ops] == [
        ("enqueue", "1-1", OK, 3 * S),
        ("dequeue", "1-1", OK, 2 * S),
        ("enqueue", "2-1", INFO, None),
    ]


# --- a simulated queue ------------------------------------------------------------------


@dataclass
class _Running:
    process: int
    f: str
    key: str
    value: str | None
    applied: bool = False


@dataclass
class Sim:
    """Producers and consumers on a linearizable queue (LPUSH / RPOP per key), each
    operation taking effect at one instant inside its interval, or (unknown outcome)
    possibly later or never. `fault` plants a bug: "lose" drops an element from a list,
    "redeliver" puts a popped element back, "wrong-end" pops from the left. With `finish`
    every operation still running at the end completes (OK if applied, else FAIL);
    without, they stay unknown."""

    rng: Random
    keys: int = 2
    producers: int = 3
    consumers: int = 3
    unknown_dequeues: bool = True
    fault: str | None = None
    finish: bool = True
    t: int = 0
    events: list[Op] = field(default_factory=list)
    lists: dict[str, list[str]] = field(default_factory=dict)
    ghosts: list[_Running] = field(default_factory=list)
    planted: list[str] = field(default_factory=list)
    _next_process: int = 0

    def run(self, steps: int) -> tuple[list[Op], dict[str, list[str]]]:
        self.lists = {f"q{k}": [] for k in range(self.keys)}
        workers = self.producers + self.consumers
        current: list[_Running | None] = [None] * workers
        seqs = [0] * workers
        pids = [self._new_process() for _ in range(workers)]
        for _ in range(steps):
            self.t += 1
            if self.ghosts and self.rng.random() < 0.05:
                self._apply(self.ghosts.pop(self.rng.randrange(len(self.ghosts))))
            self._maybe_fault()
            w = self.rng.randrange(workers)
            op = current[w]
            if op is None:
                seqs[w] += 1
                current[w] = self._invoke(w, pids[w], seqs[w])
                continue
            finished, unknown = self._advance(op)
            if finished:
                current[w] = None
                if unknown:
                    pids[w] = self._new_process()
        for op in current:
            if op is not None and self.finish:
                self.t += 1
                self._complete(op, OpType.OK if op.applied else OpType.FAIL)
        return self.events, self.lists

    def _new_process(self) -> int:
        self._next_process += 1
        return self._next_process

    def _invoke(self, w: int, process: int, seq: int) -> _Running:
        key = f"q{w % self.keys}"
        if w < self.producers:
            op = _Running(process, "lpush", key, f"{w}-{seq}")
        else:
            op = _Running(process, self.rng.choice(("rpop", "brpop")), key, None)
        self.events.append(Op(process, OpType.INVOKE, op.f, key, op.value if op.f == "lpush"
                              else None, self.t))  # fmt: skip
        return op

    def _advance(self, op: _Running) -> tuple[bool, bool]:
        """Apply, or complete; (finished, with an unknown outcome)."""
        roll = self.rng.random()
        may_be_unknown = op.f == "lpush" or self.unknown_dequeues
        if not op.applied:
            if roll < 0.6:
                self._apply(op)
                return False, False
            if roll < 0.75:
                self._complete(op, OpType.FAIL)
                return True, False
            if roll < 0.85 and may_be_unknown:
                self.ghosts.append(op)
                self._complete(op, OpType.INFO)
                return True, True
            return False, False
        if roll < 0.1 and may_be_unknown:
            self._complete(op, OpType.INFO)
            return True, True
        self._complete(op, OpType.OK)
        return True, False

    def _apply(self, op: _Running) -> None:
        op.applied = True
        items = self.lists[op.key]
        if op.f == "lpush":
            assert op.value is not None
            items.insert(0, op.value)
            return
        if not items:
            op.value = None
            return
        wrong = self.fault == "wrong-end" and len(items) > 1 and self.rng.random() < 0.3
        op.value = items.pop(0 if wrong else -1)
        if wrong:
            self.planted.append(op.value)
        if self.fault == "redeliver" and self.rng.random() < 0.2:
            items.append(op.value)
            self.planted.append(op.value)

    def _maybe_fault(self) -> None:
        if self.fault != "lose" or self.rng.random() > 0.02:
            return
        key = self.rng.choice(sorted(self.lists))
        if self.lists[key]:
            items = self.lists[key]
            self.planted.append(items.pop(self.rng.randrange(len(items))))

    def _complete(self, op: _Running, outcome: OpType) -> None:
        value = op.value if op.f == "lpush" or outcome is OpType.OK else None
        self.events.append(Op(op.process, outcome, op.f, op.key, value, self.t))


def _sim(rng: Random, steps: int, **kw: object) -> tuple[Sim, list[Op], dict[str, list[str]]]:
    sim = Sim(rng, **kw)  # type: ignore[arg-type]
    events, final = sim.run(steps)
    return sim, events, final


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 400), st.integers(1, 3), st.booleans())
def test_a_correct_queue_passes(seed: int, steps: int, keys: int, finish: bool) -> None:
    _, events, final = _sim(Random(seed), steps, keys=keys, finish=finish)
    verdict = check_queue(events, final)
    assert verdict.ok, [str(a) for a in verdict.anomalies]
    s = verdict.stats
    assert s.present == sum(len(v) for v in final.values())
    ops = queue_operations(events)
    assert s.enqueued == sum(o.f == "enqueue" and o.outcome is OK for o in ops)


def _acked(events: Sequence[Op]) -> set[str]:
    return {str(op.value) for op in events if op.f == "lpush" and op.type is OK}


def _delivered(events: Sequence[Op]) -> set[str]:
    return {str(op.value) for op in events if op.f != "lpush" and op.type is OK and op.value}


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(50, 400))
def test_a_lost_acknowledged_value_is_found(seed: int, steps: int) -> None:
    sim, events, final = _sim(Random(seed), steps, fault="lose", unknown_dequeues=False)
    verdict = check_queue(events, final)
    lost = sorted(set(sim.planted) & _acked(events))
    named = {v for a in verdict.anomalies if a.kind is AnomalyKind.LOST for v in a.values}
    assert set(lost) == named
    assert verdict.stats.lost == len(named)
    assert verdict.ok == (not lost)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(50, 400))
def test_a_redelivered_value_is_found(seed: int, steps: int) -> None:
    sim, events, final = _sim(Random(seed), steps, fault="redeliver", unknown_dequeues=False)
    verdict = check_queue(events, final)
    # Every pop is observed (no unknown dequeues, every operation completes), so each
    # redelivered value is either dequeued again or still in the list at the end.
    caught = {AnomalyKind.DUPLICATE, AnomalyKind.DEQUEUED_AND_PRESENT}
    named = {v for a in verdict.anomalies if a.kind in caught for v in a.values}
    assert set(sim.planted) == named


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.integers(20, 200))
def test_popping_the_wrong_end_of_a_sequential_queue_is_found(seed: int, steps: int) -> None:
    # One worker at a time (a single producer and consumer never overlap once each op is
    # applied and completed before the next): every wrong-end pop breaks FIFO visibly.
    sim = Sim(
        Random(seed), keys=1, producers=1, consumers=1, unknown_dequeues=False, fault="wrong-end"
    )
    events, final = _sequential(sim, steps)
    verdict = check_queue(events, final)
    popped_wrong = set(sim.planted) & _delivered(events)
    if popped_wrong:
        assert AnomalyKind.ORDER in kinds(verdict), sim.planted
    else:
        assert verdict.ok


def _sequential(sim: Sim, steps: int) -> tuple[list[Op], dict[str, list[str]]]:
    """Run `sim` one operation at a time, every operation acknowledged."""
    sim.lists = {"q0": []}
    for n in range(steps):
        w = 0 if sim.rng.random() < 0.55 else 1
        sim.t += 1
        op = sim._invoke(w, sim._new_process(), n)
        sim.t += 1
        sim._apply(op)
        sim.t += 1
        sim._complete(op, OpType.OK)
    return sim.events, sim.lists
