"""A linearizability checker for key-value register histories.

Theory of operation
-------------------
A history is linearizable if every operation can be given a single instant between its
invocation and its completion such that, replayed in the order of those instants, the
operations obey the sequential register of `cairn.check.model`. FAIL operations did not
happen and are removed; INFO operations have no completion time (they may take effect at
any time after their invocation) and may also never take effect; an INFO get constrains
nothing and is removed too.

Linearizability is compositional (P-compositionality): a history is linearizable iff its
restriction to each key is. So the history is split per key and each key is searched alone.

The search is the Wing & Gong algorithm with Lowe's memoization, as in Knossos and
Porcupine: a depth-first search over configurations (which operations are linearized, the
register's value), where an operation may be linearized next if no other unlinearized
operation completed before it was invoked. The search succeeds when every OK operation is
linearized; INFO operations left over never happened. Five reductions keep it fast:

* Configurations are memoized. The set of linearized OK operations is kept as `f`, the
  first unlinearized one in invocation order, and `w`, a small bit mask of the ones after
  `f` already linearized, so a memo key stays small however long the history is.
* A configuration with more INFO operations linearized is dominated by one with the same OK
  operations and value and fewer INFO operations (an INFO operation need never happen), so a
  configuration is skipped when a subset of its INFO set was already seen.
* A read that matches the current value is linearized at once without branching: moving an
  operation that leaves the value unchanged earlier never loses a linearization, since
  linearizing it can only let more operations be candidates.
* An INFO write is tried only while some operation that could observe the value it leaves
  is unlinearized (`_Observers`); one nothing can observe is dropped before the search.
* No put (OK or INFO) directly follows an INFO operation: it would erase that operation's
  effect, and the same put without the INFO operation before it is explored anyway.

When the search fails, the explanation names the operation that blocked the deepest
configurations reached: the unlinearized OK operation with the earliest completion, which
had to come next, and the values any ordering allowed there. A budget of explored
configurations per key turns a pathological history into an UNKNOWN verdict.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.check.history import Op, Operation, OpType, complete_operations
from cairn.check.model import (
    Illegal,
    State,
    Step,
    StepKind,
    apply,
    compile_step,
    render,
)

DEFAULT_MAX_STATES = 1_000_000
"""Configurations explored per key before the checker gives up with UNKNOWN."""

_FOREVER = 1 << 127  # later than any time in a history
_NOT_A_READ = object()  # equal to no register value


class Outcome(enum.Enum):
    """What the checker concluded about a history or a key."""

    LINEARIZABLE = "linearizable"
    VIOLATION = "violation"
    UNKNOWN = "unknown"  # the search budget ran out


@dataclass(frozen=True, slots=True)
class KeyStats:
    """What checking one key cost and found.

    `operations` counts this key's invocation/completion pairs: `ok` + `info` + `failed`.
    `states` is the number of configurations the search explored.
    """

    key: str
    outcome: Outcome
    operations: int
    ok: int
    info: int
    failed: int
    states: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The checker's answer for a whole history.

    `key` is the first key (in order of first appearance) with a violation, or with an
    UNKNOWN outcome if no key has a violation; `explanation` says why in one sentence.
    `ops_checked` counts the operations of the keys checked; `keys` has one entry per key
    checked, in the order checked.
    """

    outcome: Outcome
    key: str | None
    explanation: str | None
    ops_checked: int
    keys: tuple[KeyStats, ...]

    @property
    def ok(self) -> bool:
        """Whether the history is linearizable (False for a violation and for UNKNOWN)."""
        return self.outcome is Outcome.LINEARIZABLE

    @property
    def unknown(self) -> bool:
        """Whether the search budget ran out before a conclusion."""
        return self.outcome is Outcome.UNKNOWN


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The outcome of searching one key, with its explanation when not linearizable."""

    stats: KeyStats
    explanation: str | None


# --- the per-key problem ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    """One key's operations, compiled. OK operations are sorted by invocation time, and so
    are the INFO operations kept, in separate arrays.

    Invariant: INFO operation j can matter only while OK operation `info_last_observer[j]`
    is unlinearized.
    """

    key: str
    ok_ops: tuple[Operation, ...]
    ok_call: tuple[int, ...]
    ok_ret: tuple[int, ...]
    ok_steps: tuple[Step, ...]
    ok_reads: tuple[object, ...]  # the value an OK get read, or _NOT_A_READ
    info_call: tuple[int, ...]
    info_steps: tuple[Step, ...]
    info_last_observer: tuple[int, ...]


def _problem(key: str, ops: Sequence[Operation]) -> _Problem:
    order = sorted(ops, key=lambda op: (op.call, op.ret or _FOREVER, op.index))
    ok = [op for op in order if op.status is OpType.OK]
    writes = [op for op in order if op.status is OpType.INFO and op.f != "get"]
    last = _Observers(ok, writes).last_observers()
    info = [(op, last[j]) for j, op in enumerate(writes) if last[j] >= 0]
    return _Problem(
        key=key,
        ok_ops=tuple(ok),
        ok_call=tuple(op.call for op in ok),
        ok_ret=tuple(op.ret if op.ret is not None else _FOREVER for op in ok),
        ok_steps=tuple(compile_step(op) for op in ok),
        ok_reads=tuple(op.output if op.f == "get" else _NOT_A_READ for op in ok),
        info_call=tuple(op.call for op, _ in info),
        info_steps=tuple(compile_step(op) for op, _ in info),
        info_last_observer=tuple(last for _, last in info),
    )


class _Observers:
    """Which operations could observe the value an INFO write leaves.

    An OK get observes the value it read and an OK cas the value it expected; an INFO cas
    observes its expected value if it took effect. A write of `s` (a put, or a cas setting
    `s`) can be observed only through a value that is `s` followed by appended strings, an
    append of `s` only through a value that contains `s` followed by appended strings. An
    INFO write no value observes never needs to take effect: dropping it changes no OK
    operation's outcome (an INFO cas it would have enabled is dropped too). The same holds
    once its last observer is linearized (`last_observers`).

    Without appends on the key, observing is equality and a dictionary answers. With them,
    the observed values are joined into one string searched from the end, and "followed by
    appended strings" is approximated by "followed by nothing or by some appended string".
    Approximations only ever add observers, which costs pruning, never soundness.
    """

    _SEP = "\0"

    def __init__(self, ok: Sequence[Operation], writes: Sequence[Operation]) -> None:
        refs = [(i, r) for i, op in enumerate(ok) if (r := _ref(op)) is not None]
        self.appended = frozenset(_written(op) for op in (*ok, *writes) if op.f == "append")
        self.lengths = sorted({len(a) for a in self.appended})
        self.exact: dict[str, list[tuple[int, int]]] = {}
        for i, r in refs:
            self.exact.setdefault(r, []).append((i, ok[i].ret or _FOREVER))
        self.starts = [0] * len(refs)
        size = 0
        for k, (_, r) in enumerate(refs):
            self.starts[k] = size
            size += len(r) + 1
        self.joined = "".join(self._SEP + r for _, r in refs)
        self.ref_index = [i for i, _ in refs]
        self.writes = writes
        self.info_refs = [
            (c, r) for c, op in enumerate(writes) if op.f == "cas" and (r := _ref(op)) is not None
        ]

    def _continues(self, text: str, at: int, end: int) -> bool:
        """Whether text[at:end] is empty or starts with an appended string."""
        return at == end or any(text[at : at + n] in self.appended for n in self.lengths)

    def last_ok(self, writer: Operation) -> int:
        """The last OK operation (by index) that may observe `writer`, or -1."""
        written = _written(writer)
        if not self.appended:
            found = self.exact.get(written, [])
            return max((i for i, ret in found if ret >= writer.call), default=-1)
        needle = written if writer.f == "append" else self._SEP + written
        end = len(self.joined)
        while (at := self.joined.rfind(needle, 0, end)) >= 0:
            k = bisect_right(self.starts, at) - 1
            ref_end = self.starts[k + 1] if k + 1 < len(self.starts) else len(self.joined)
            if self._continues(self.joined, at + len(needle), ref_end):
                return self.ref_index[k]
            end = at + len(needle) - 1
        return -1

    def last_observers(self) -> list[int]:
        """For each INFO write, the last OK operation that may observe it, directly or
        through a chain of INFO cas operations each observing the previous one; -1 if none.

        An INFO cas matters only through what it leaves, so a write it observes matters as
        long as the cas does: the bound is a fixed point over the INFO writes."""
        last = [self.last_ok(op) for op in self.writes]
        by = [[c for c, r in self.info_refs if self._sees(op, r)] for op in self.writes]
        changed = True
        while changed:
            changed = False
            for j, observers in enumerate(by):
                bound = max((last[c] for c in observers), default=-1)
                if bound > last[j]:
                    last[j], changed = bound, True
        return last

    def _sees(self, writer: Operation, ref: str) -> bool:
        written = _written(writer)
        if writer.f != "append":
            return ref.startswith(written) and self._continues(ref, len(written), len(ref))
        at = ref.find(written)
        while at >= 0:
            if self._continues(ref, at + len(written), len(ref)):
                return True
            at = ref.find(written, at + 1)
        return False


def _ref(op: Operation) -> str | None:
    """The value an operation observes, if any."""
    if op.f == "get":
        return op.output if isinstance(op.output, str) else None
    if op.f == "cas" and isinstance(op.input, tuple) and isinstance(op.input[0], str):
        return op.input[0]
    return None


def _written(op: Operation) -> str:
    value = op.input[1] if isinstance(op.input, tuple) else op.input
    assert isinstance(value, str)
    return value


# --- the search ------------------------------------------------------------------------------


class _Frame:
    """A configuration on the depth-first stack and where its children enumeration is.

    Invariant: operation `f` is unlinearized; bit k of `w` says whether OK operation f + k is
    linearized (bit 0 is clear); `depth` = f + popcount(w); bit j of `info` says whether INFO
    operation j is linearized; `m` is the earliest completion among unlinearized operations.
    """

    __slots__ = (
        "after_info",
        "children",
        "depth",
        "f",
        "info",
        "info_hi",
        "info_next",
        "m",
        "next",
        "w",
        "x",
    )

    def __init__(
        self, f: int, w: int, info: int, x: State, depth: int, after_info: bool = False
    ) -> None:
        self.after_info = after_info
        self.f = f
        self.w = w
        self.info = info
        self.x = x
        self.depth = depth
        self.children: list[int] = []
        self.next = 0
        self.m = _FOREVER
        self.info_hi = 0
        self.info_next = 0


class _Blocked:
    """The deepest dead ends seen: how deep, which operation blocked them, which values."""

    __slots__ = ("op", "rank", "values")

    def __init__(self) -> None:
        self.rank: tuple[int, int, int] = (-1, -1, -1)
        self.op = -1
        self.values: set[State] = set()

    def record(self, frame: _Frame, culprit: int, ret: int, call: int) -> None:
        rank = (frame.depth, ret, call)
        if rank > self.rank:
            self.rank, self.op, self.values = rank, culprit, {frame.x}
        elif rank == self.rank:
            self.values.add(frame.x)


@dataclass(frozen=True, slots=True)
class _SearchResult:
    outcome: Outcome
    states: int
    depth: int  # the most OK operations any explored configuration linearized
    culprit: int  # index into ok_ops of the blocking operation, or -1
    values: frozenset[State]


class _Search:
    """Wing & Gong / Lowe search over one key's operations; see the module docstring."""

    def __init__(self, problem: _Problem, max_states: int) -> None:
        self.p = problem
        self.max_states = max_states
        self.visited: dict[tuple[int, int, State], int | list[int]] = {}
        self.states = 0
        self.blocked = _Blocked()

    def run(self) -> _SearchResult:
        n = len(self.p.ok_ops)
        if n == 0:
            return self._result(Outcome.LINEARIZABLE, 0)
        stack = [self._expand(_Frame(0, 0, 0, None, 0))]
        while stack:
            child = self._next_child(stack[-1], n)
            if child is None:
                self._dead_end(stack.pop())
            elif child.depth == n:
                return self._result(Outcome.LINEARIZABLE, n)
            elif self.states > self.max_states:
                return self._result(Outcome.UNKNOWN, max(self.blocked.rank[0], stack[-1].depth))
            else:
                stack.append(self._expand(child))
        return self._result(Outcome.VIOLATION, self.blocked.rank[0])

    def _result(self, outcome: Outcome, depth: int) -> _SearchResult:
        culprit = self.blocked.op if outcome is Outcome.VIOLATION else -1
        values = frozenset(self.blocked.values) if culprit >= 0 else frozenset()
        return _SearchResult(outcome, self.states, depth, culprit, values)

    def _expand(self, frame: _Frame) -> _Frame:
        """Fill in the frame's candidates: the OK operations that may be linearized next,
        and the range of INFO operations invoked early enough to be."""
        call, ret, reads = self.p.ok_call, self.p.ok_ret, self.p.ok_reads
        n, m = len(call), _FOREVER
        cands: list[int] = []
        i, rel = frame.f, frame.w
        while i < n and call[i] <= m:
            if not rel & 1:
                cands.append(i)
                r = ret[i]
                if r < m:
                    m = r
            rel >>= 1
            i += 1
        if call[cands[-1]] > m:
            cands = [i for i in cands if call[i] <= m]
        frame.m = m
        x = frame.x
        for i in cands:
            if reads[i] == x:  # a read of the current value: take it now, alone
                frame.children = [i]
                return frame
        frame.children = cands
        frame.info_hi = bisect_right(self.p.info_call, m)
        frame.info_next = _lowest_clear_bit(frame.info)
        return frame

    def _next_child(self, frame: _Frame, n: int) -> _Frame | None:
        """The next unvisited, legal, undominated child configuration of `frame`."""
        while frame.next < len(frame.children):
            i = frame.children[frame.next]
            frame.next += 1
            child = self._linearize_ok(frame, i, n)
            if child is not None:
                return child
        while frame.info_next < frame.info_hi:
            j = frame.info_next
            frame.info_next += 1
            if not frame.info >> j & 1 and self._info_useful(frame, j):
                child = self._linearize_info(frame, j)
                if child is not None:
                    return child
        return None

    def _info_useful(self, frame: _Frame, j: int) -> bool:
        """Whether INFO operation j may still be observed, and is not an overwrite right
        after another INFO operation (which would make that one pointless)."""
        if frame.after_info and self.p.info_steps[j].kind is StepKind.PUT:
            return False
        return self.p.info_last_observer[j] >= frame.f

    def _linearize_ok(self, frame: _Frame, i: int, n: int) -> _Frame | None:
        step = self.p.ok_steps[i]
        if frame.after_info and step.kind is StepKind.PUT:
            return None
        x = apply(step, frame.x)
        if isinstance(x, Illegal):
            return None
        f, w = frame.f, frame.w | 1 << (i - frame.f)
        if i == frame.f:
            shift = (~w & (w + 1)).bit_length() - 1
            f, w = f + shift, w >> shift
        if frame.depth + 1 < n and not self._first_visit(f, w, x, frame.info):
            return None
        return _Frame(f, w, frame.info, x, frame.depth + 1)

    def _linearize_info(self, frame: _Frame, j: int) -> _Frame | None:
        x = apply(self.p.info_steps[j], frame.x)
        if isinstance(x, Illegal):
            return None
        info = frame.info | 1 << j
        if not self._first_visit(frame.f, frame.w, x, info):
            return None
        return _Frame(frame.f, frame.w, info, x, frame.depth, after_info=True)

    def _first_visit(self, f: int, w: int, x: State, info: int) -> bool:
        """Record a configuration as visited unless it is dominated by one already seen: the
        same OK operations and value with a subset of its INFO operations.

        A key's entry is the INFO set itself while there is one (the common case, and an int
        costs the garbage collector nothing), a list once there are several."""
        key = (f, w, x)
        seen = self.visited.get(key)
        if seen is None:
            self.visited[key] = info
        elif isinstance(seen, int):
            if not seen & ~info:
                return False
            self.visited[key] = [seen, info]
        elif any(not seen_info & ~info for seen_info in seen):
            return False
        else:
            seen.append(info)
        self.states += 1
        return True

    def _dead_end(self, frame: _Frame) -> None:
        if frame.depth < self.blocked.rank[0]:
            return
        ret = self.p.ok_ret
        culprit = max(
            (i for i in self._unlinearized_window(frame) if ret[i] == frame.m),
            key=lambda i: (self.p.ok_call[i], i),
        )
        self.blocked.record(frame, culprit, ret[culprit], self.p.ok_call[culprit])

    def _unlinearized_window(self, frame: _Frame) -> list[int]:
        call, n = self.p.ok_call, len(self.p.ok_call)
        out: list[int] = []
        i, rel = frame.f, frame.w
        while i < n and call[i] <= frame.m:
            if not rel & 1:
                out.append(i)
            rel >>= 1
            i += 1
        return out


def _lowest_clear_bit(bits: int) -> int:
    return (~bits & (bits + 1)).bit_length() - 1


# --- explanations ----------------------------------------------------------------------------


def _describe(op: Operation, key: str) -> str:
    if op.f == "get":
        what = f"get({key}) -> {render(_as_state(op.output))}"
    elif op.f == "cas":
        assert isinstance(op.input, tuple)
        expected, new = op.input
        what = f"cas({key}, {render(expected)} -> {render(new)})"
    else:
        what = f"{op.f}({key}, {render(_as_state(op.input))})"
    until = "?" if op.ret is None else str(op.ret)
    return f"{what} by process {op.process} at t={op.call}..{until}"


def _as_state(value: object) -> State:
    return value if isinstance(value, str) else None


def _values_phrase(values: frozenset[State]) -> str:
    shown = sorted(values, key=lambda v: (v is not None, v or ""))
    text = ", ".join(render(v) for v in shown[:5])
    if len(shown) > 5:
        text += f" (and {len(shown) - 5} more)"
    return text if len(shown) == 1 else f"one of {text}"


def _violation_text(problem: _Problem, result: _SearchResult) -> str:
    op = problem.ok_ops[result.culprit]
    allowed = _values_phrase(result.values)
    reason = f"the latest value any ordering allows is {allowed}"
    if op.f == "cas":
        assert isinstance(op.input, tuple)
        reason = f"it expects {render(op.input[0])} but {reason}"
    return f"{_describe(op, problem.key)}: no linearization; {reason}"


def _unknown_text(problem: _Problem, result: _SearchResult, max_states: int) -> str:
    return (
        f"search budget of {max_states} states exhausted on key {problem.key} after "
        f"linearizing at most {result.depth} of {len(problem.ok_ops)} completed operations"
    )


# --- entry points ----------------------------------------------------------------------------


def check_key(
    key: str, operations: Sequence[Operation], max_states: int = DEFAULT_MAX_STATES
) -> KeyResult:
    """Check the operations of one key (all must be on `key`)."""
    problem = _problem(key, operations)
    result = _Search(problem, max_states).run()
    explanation = None
    if result.outcome is Outcome.VIOLATION:
        explanation = _violation_text(problem, result)
    elif result.outcome is Outcome.UNKNOWN:
        explanation = _unknown_text(problem, result, max_states)
    stats = KeyStats(
        key=key,
        outcome=result.outcome,
        operations=len(operations),
        ok=len(problem.ok_ops),
        info=sum(op.status is OpType.INFO for op in operations),
        failed=sum(op.status is OpType.FAIL for op in operations),
        states=result.states,
    )
    return KeyResult(stats, explanation)


def split_by_key(operations: Sequence[Operation]) -> dict[str, list[Operation]]:
    """Group operations per key, keys in order of first appearance."""
    by_key: dict[str, list[Operation]] = {}
    for op in operations:
        by_key.setdefault(op.key, []).append(op)
    return by_key


def check_operations(
    operations: Sequence[Operation],
    max_states: int = DEFAULT_MAX_STATES,
    stop_at_violation: bool = True,
) -> Verdict:
    """Check already paired operations; see `check_history`."""
    results: list[KeyResult] = []
    for key, ops in split_by_key(operations).items():
        results.append(check_key(key, ops, max_states))
        if stop_at_violation and results[-1].stats.outcome is Outcome.VIOLATION:
            break
    return _verdict(results)


def _verdict(results: Sequence[KeyResult]) -> Verdict:
    stats = tuple(r.stats for r in results)
    checked = sum(s.operations for s in stats)
    for outcome in (Outcome.VIOLATION, Outcome.UNKNOWN):
        for r in results:
            if r.stats.outcome is outcome:
                return Verdict(outcome, r.stats.key, r.explanation, checked, stats)
    return Verdict(Outcome.LINEARIZABLE, None, None, checked, stats)


def check_history(
    ops: Sequence[Op],
    max_states: int = DEFAULT_MAX_STATES,
    stop_at_violation: bool = True,
) -> Verdict:
    """Whether `ops` is a linearizable history of a key-value register.

    Raises `HistoryError` if the history is malformed. `max_states` bounds the
    configurations explored per key; a key that exceeds it is UNKNOWN, which is neither
    linearizable nor a violation. With `stop_at_violation`, keys after the first violating
    key are not checked.
    """
    return check_operations(complete_operations(ops), max_states, stop_at_violation)
