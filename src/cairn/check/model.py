"""The sequential specification the checker holds histories to: one key-value register.

The state of one key is its value, a `str`, or None when the key is missing. Operations:

* get: reads the value; an OK get that read `v` is legal only in state `v`.
* put(s): overwrites the value with `s`.
* append(s): concatenates `s` onto the current value (a missing key counts as "").
* cas((expected, new)): if the value equals `expected` (None: the key is missing), sets it
  to `new`. An OK cas is legal only when the precondition holds. A cas whose outcome is
  unknown (INFO) is legal in any state: it sets `new` if the precondition holds and leaves
  the value alone otherwise, as a failed cas would.

Operations are compiled once into `Step` values (an integer kind plus arguments) so that
the search applies them without string dispatch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cairn.check.history import Operation, OpType

State = str | None
"""The value of one key; None means missing."""


class StepKind(enum.IntEnum):
    """What an operation does to the register, once its status is known."""

    GET = 0
    PUT = 1
    APPEND = 2
    CAS = 3
    MAYBE_CAS = 4


@dataclass(frozen=True, slots=True)
class Step:
    """A compiled operation: `kind`, then `arg` (get: the value read; put/append: the string
    written; cas: the expected value) and `new` (cas only: the value written)."""

    kind: StepKind
    arg: State
    new: State


class Illegal:
    """Sentinel type: the operation cannot take effect in this state."""

    __slots__ = ()


ILLEGAL = Illegal()


def compile_step(op: Operation) -> Step:
    """The `Step` for an OK or INFO operation (FAIL operations never take effect)."""
    if op.f == "get":
        return Step(StepKind.GET, _state(op.output), None)
    if op.f in ("put", "append"):
        kind = StepKind.PUT if op.f == "put" else StepKind.APPEND
        return Step(kind, _state(op.input), None)
    assert isinstance(op.input, tuple)
    expected, new = op.input
    kind = StepKind.CAS if op.status is OpType.OK else StepKind.MAYBE_CAS
    return Step(kind, _state(expected), _state(new))


def _state(value: object) -> State:
    assert value is None or isinstance(value, str)
    return value


def apply(step: Step, state: State) -> State | Illegal:
    """The state after `step`, or `ILLEGAL` if `step` cannot take effect in `state`."""
    kind = step.kind
    if kind is StepKind.GET:
        return state if state == step.arg else ILLEGAL
    if kind is StepKind.PUT:
        return step.arg
    if kind is StepKind.APPEND:
        return (state or "") + (step.arg or "")
    if state == step.arg:
        return step.new
    return ILLEGAL if kind is StepKind.CAS else state


def render(state: State, limit: int = 40) -> str:
    """A short human rendering of a value: quoted, truncated, `nil` for missing."""
    if state is None:
        return "nil"
    text = repr(state)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
