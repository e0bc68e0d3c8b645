"""Operation histories: the record a test harness keeps of what clients asked and were told.

Theory of operation
-------------------
A history is a sequence of `Op` events. Every client operation appears twice: once as an
INVOKE when the client sends it, once as a completion (OK, FAIL or INFO) when the client
learns its fate. A *process* is one logical client with at most one operation outstanding.

* OK: the operation took effect, between its invocation and its completion.
* FAIL: the operation definitely did not take effect (a cas whose precondition did not hold
  is a FAIL too).
* INFO: the outcome is unknown (a timeout, a lost connection). The operation may have taken
  effect at any time after its invocation, even after the INFO was recorded, or never.

Jepsen's rule is that a process whose operation ended INFO never invokes again. Cairn is
lenient: a later invocation under the same process id is accepted and treated as a new
logical process, because only real-time intervals matter to the checker, and the INFO
operation stays open-ended whatever the process does next. An invocation without any
completion at the end of the history is an INFO too.

On disk a history is JSON lines, one `Op` per line (see `docs/check.md`). The simulator
builds `Op` values directly; `complete_operations` pairs invocations with completions and is
where malformed histories are rejected with a `HistoryError`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO, TypeVar

FUNCTIONS = ("get", "put", "append", "cas")
"""The operation names the register model knows."""

_FIELDS = ("process", "type", "f", "key", "value", "time")
_FIELD_SET = frozenset(_FIELDS)


_Paired = TypeVar("_Paired")


class HistoryError(ValueError):
    """A history is malformed: a completion without invocation, two invocations by one
    process, a value of the wrong shape, a line that is not an operation.

    `event` is the position of the offending event in the history when one is to blame.
    """

    def __init__(self, message: str, event: int | None = None) -> None:
        super().__init__(message)
        self.event = event


class OpType(enum.Enum):
    """What an `Op` event records: an invocation, or one of the three completions."""

    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Op:
    """One event of a history.

    `value` by function: get: None on invoke, the value read (str, or None for a missing
    key) on ok; put/append: the str written; cas: the pair (expected: str | None, new: str),
    where expected None means "the key is missing". On a FAIL or INFO completion of a get the
    value is None; completions of put/append/cas repeat the invocation's value, or carry None.
    `time` is monotonic: virtual nanoseconds in the simulator, real nanoseconds elsewhere.
    """

    process: int
    type: OpType
    f: str
    key: str
    value: object
    time: int


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion: one interval of the history.

    Invariant: `status` is OK, FAIL or INFO; `ret` is None exactly when `status` is INFO
    (the operation may take effect at any time after `call`); otherwise `call <= ret`.
    `output` is the value read by an OK get and None for everything else.
    """

    index: int
    process: int
    f: str
    key: str
    input: object
    output: object
    status: OpType
    call: int
    ret: int | None


def _is_cas_pair(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and (value[0] is None or isinstance(value[0], str))
        and isinstance(value[1], str)
    )


def _value_problem(op: Op) -> str | None:
    """Why `op.value` has the wrong shape for its function and type, or None if it is fine."""
    if op.f == "get":
        if op.type is OpType.INVOKE and op.value is None:
            return None
        if op.type is OpType.OK:
            ok = op.value is None or isinstance(op.value, str)
            return None if ok else "a get's ok value must be a string or null"
        return None if op.value is None else f"a get's {op.type.value} value must be null"
    if op.type is not OpType.INVOKE and op.value is None:
        return None
    if op.f == "cas":
        return None if _is_cas_pair(op.value) else "a cas value must be [expected|null, new]"
    return None if isinstance(op.value, str) else f"a {op.f} value must be a string"


def op_problem(op: Op) -> str | None:
    """Why `op` is not a well-formed event on its own, or None if it is."""
    if type(op.process) is not int:  # not isinstance: a bool is no process
        return f"process must be an integer, not {op.process!r}"
    if not isinstance(op.type, OpType):
        return f"type must be an OpType, not {op.type!r}"
    if op.f not in FUNCTIONS:
        return f"unknown function {op.f!r} (expected one of {', '.join(FUNCTIONS)})"
    if not isinstance(op.key, str):
        return f"key must be a string, not {op.key!r}"
    if type(op.time) is not int:
        return f"time must be an integer, not {op.time!r}"
    return _value_problem(op)


def describe_op(op: Op) -> str:
    """A one-line rendering of an event for error messages."""
    return (
        f"{op.type.value} {op.f}({op.key!r}, {op.value!r}) by process {op.process} at t={op.time}"
    )


# --- pairing -------------------------------------------------------------------------------


def _completion_problem(invoke: Op, done: Op) -> str | None:
    if (done.f, done.key) != (invoke.f, invoke.key):
        return f"does not match the outstanding {invoke.f}({invoke.key!r}) of its process"
    if invoke.f != "get" and done.value is not None and done.value != invoke.value:
        return f"carries a value other than the invocation's {invoke.value!r}"
    return None


def _pair(invoke: Op, index: int, done: Op | None) -> Operation:
    status = OpType.INFO if done is None else done.type
    output = done.value if done is not None and invoke.f == "get" else None
    ret = None if done is None or status is OpType.INFO else done.time
    return Operation(
        index=index,
        process=invoke.process,
        f=invoke.f,
        key=invoke.key,
        input=invoke.value,
        output=output if status is OpType.OK else None,
        status=status,
        call=invoke.time,
        ret=ret,
    )


def complete_operations(ops: Sequence[Op]) -> list[Operation]:
    """Pair every invocation with its completion, in invocation order.

    Raises `HistoryError` naming the first bad event (by its position in `ops`). Invocations
    still outstanding at the end become INFO operations.
    """
    outstanding: dict[int, tuple[int, Op]] = {}
    last_time: dict[int, int] = {}
    pairs: dict[int, Operation] = {}
    for i, op in enumerate(ops):
        problem = op_problem(op) or _order_problem(op, outstanding, last_time)
        if problem is not None:
            raise HistoryError(f"event #{i} ({_safe_describe(op)}): {problem}", event=i)
        last_time[op.process] = op.time
        if op.type is OpType.INVOKE:
            outstanding[op.process] = (i, op)
            continue
        index, invoke = outstanding.pop(op.process)
        pairs[index] = _pair(invoke, index, op)
    for index, invoke in outstanding.values():
        pairs[index] = _pair(invoke, index, None)
    return [pairs[i] for i in sorted(pairs)]


def pair_invocations(
    ops: Sequence[Op],
    event_problem: Callable[[Op], str | None],
    pair: Callable[[Op, Op | None], _Paired],
) -> list[_Paired]:
    """Pair every invocation with its process's next completion, in invocation order, as
    `pair(invocation, completion)` (None: still outstanding at the end, so INFO).

    Raises `HistoryError` on the first event `event_problem` refuses, a completion without
    invocation, or a second invocation while one is outstanding. The queue and stream
    checks read their histories with it.
    """
    open_: dict[int, tuple[int, Op]] = {}
    pairs: dict[int, _Paired] = {}
    for i, op in enumerate(ops):
        problem = event_problem(op)
        if problem is None and op.type is OpType.INVOKE and op.process in open_:
            problem = f"process {op.process} already has an operation outstanding"
        if problem is None and op.type is not OpType.INVOKE and op.process not in open_:
            problem = f"{op.type.value} without an invocation by process {op.process}"
        if problem is not None:
            raise HistoryError(f"event #{i}: {problem}", event=i)
        if op.type is OpType.INVOKE:
            open_[op.process] = (i, op)
        else:
            index, call = open_.pop(op.process)
            pairs[index] = pair(call, op)
    for index, call in open_.values():
        pairs[index] = pair(call, None)
    return [pairs[i] for i in sorted(pairs)]


def _order_problem(
    op: Op, outstanding: dict[int, tuple[int, Op]], last_time: dict[int, int]
) -> str | None:
    previous = last_time.get(op.process)
    if previous is not None and op.time < previous:
        return f"time goes backwards for process {op.process} (previous event at t={previous})"
    pending = outstanding.get(op.process)
    if op.type is OpType.INVOKE:
        if pending is None:
            return None
        return f"process {op.process} already has event #{pending[0]} outstanding"
    if pending is None:
        return f"{op.type.value} without an outstanding invocation by process {op.process}"
    return _completion_problem(pending[1], op)


def _safe_describe(op: Op) -> str:
    try:
        return describe_op(op)
    except AttributeError:
        return repr(op)


# --- JSON lines ----------------------------------------------------------------------------


def _to_json(op: Op) -> str:
    value = list(op.value) if isinstance(op.value, tuple) else op.value
    record = {
        "process": op.process,
        "type": op.type.value,
        "f": op.f,
        "key": op.key,
        "value": value,
        "time": op.time,
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def write_jsonl(ops: Iterable[Op], fp: TextIO) -> None:
    """Write `ops` to `fp` as JSON lines, one object per event (cas pairs become lists)."""
    for op in ops:
        fp.write(_to_json(op))
        fp.write("\n")


_OP_TYPES = {t.value: t for t in OpType}


def _op_type(raw: object) -> OpType:
    op_type = _OP_TYPES.get(raw) if isinstance(raw, str) else None
    if op_type is None:
        names = ", ".join(_OP_TYPES)
        raise HistoryError(f"type must be one of {names}, not {raw!r}")
    return op_type


def _from_record(record: object) -> Op:
    if not isinstance(record, dict):
        raise HistoryError(f"expected a JSON object, got {type(record).__name__}")
    if record.keys() != _FIELD_SET:
        missing = [name for name in _FIELDS if name not in record]
        extra = sorted(set(record) - _FIELD_SET)
        raise HistoryError(f"missing fields {missing} / unexpected fields {extra}")
    value = record["value"]
    if isinstance(value, list) and record["f"] == "cas":
        value = tuple(value)
    op = Op(
        process=record["process"],
        type=_op_type(record["type"]),
        f=record["f"],
        key=record["key"],
        value=value,
        time=record["time"],
    )
    problem = op_problem(op)
    if problem is not None:
        raise HistoryError(problem)
    return op


def read_jsonl(fp: TextIO) -> list[Op]:
    """Read a JSON-lines history; blank lines are skipped.

    Each event is checked on its own (fields, types, value shape), then the pairing rules
    of `complete_operations`. Raises `HistoryError` naming the line.
    """
    ops: list[Op] = []
    lines: list[int] = []
    for number, line in enumerate(fp, start=1):
        if not line.strip():
            continue
        try:
            ops.append(_from_record(json.loads(line)))
        except json.JSONDecodeError as e:
            raise HistoryError(f"line {number}: not JSON: {e.msg}") from None
        except HistoryError as e:
            raise HistoryError(f"line {number}: {e}") from None
        lines.append(number)
    try:
        complete_operations(ops)
    except HistoryError as e:
        where = f"line {lines[e.event]}: " if e.event is not None else ""
        raise HistoryError(f"{where}{e}", event=e.event) from None
    return ops
