"""Bank checking: money moves between accounts, and no read may see it created or destroyed.

Theory of operation
-------------------
A bank workload has a fixed set of accounts with known opening balances. Clients move
money with transfers (``f == "transfer"``, value ``[from, to, amount]``) that read both
balances and apply the move as one transaction, and read every balance in one transaction
(``f == "read"``, invoked with None, completed with a mapping account -> balance). The
history is the usual `cairn.check` event list (`Op`): an INVOKE and a completion per
operation, OK, FAIL (definitely not applied: an aborted EXEC, or a transfer the balance
did not allow) or INFO (unknown).

If transactions are atomic and isolated, every state a reader can see is the opening state
plus some set of whole transfers, so `check_bank` holds each OK read (and the final read,
taken after the run) to:

- WRONG_TOTAL: the balances sum to the total of the opening balances;
- NEGATIVE: no balance is below zero (when the workload forbids overdrafts: transfers
  only move money the balance holds, so a negative balance means two transfers spent the
  same money, a lost update);
- MISSING / UNKNOWN_ACCOUNT: every account and nothing else is in the read;
- UNEXPLAINED (final read only): the final balances are the opening ones plus every
  acknowledged transfer plus some subset of the unknown ones. A transfer lost, or applied
  twice (a client retry executed again), leaves balances no such subset explains. The
  subset search keeps the set of reachable balance vectors, at most `MAX_SUBSETS`; beyond
  that the check says it was skipped.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cairn.check.history import HistoryError, Op, OpType

TRANSFER = "transfer"
READ = "read"
MAX_SUBSETS = 200_000
"""Reachable balance vectors kept by the final read's subset search."""


class AnomalyKind(enum.Enum):
    """What a bank must never show; see the module docstring."""

    WRONG_TOTAL = "wrong-total"
    NEGATIVE = "negative"
    MISSING = "missing-account"
    UNKNOWN_ACCOUNT = "unknown-account"
    UNEXPLAINED = "unexplained-final"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One breach: its kind and a one-line explanation."""

    kind: AnomalyKind
    text: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.text}"


@dataclass(frozen=True, slots=True)
class BankStats:
    """What the history did."""

    transfers: int = 0
    transfers_failed: int = 0
    transfers_unknown: int = 0
    reads: int = 0
    reads_failed: int = 0
    final_explained: str = "no final read"

    def describe(self) -> str:
        """One line for a report."""
        return (
            f"{self.transfers} acknowledged transfers ({self.transfers_failed} failed, "
            f"{self.transfers_unknown} unknown), {self.reads} reads of every balance "
            f"({self.reads_failed} failed); final balances: {self.final_explained}"
        )


@dataclass(frozen=True, slots=True)
class BankVerdict:
    """The check's findings."""

    anomalies: tuple[Anomaly, ...]
    stats: BankStats

    @property
    def ok(self) -> bool:
        """No anomaly."""
        return not self.anomalies


@dataclass(frozen=True, slots=True)
class _Op:
    process: int
    f: str
    value: object
    outcome: OpType
    start: int


def _pair(ops: Sequence[Op]) -> list[_Op]:
    open_: dict[int, Op] = {}
    done: list[tuple[int, _Op]] = []
    order: dict[int, int] = {}
    for i, op in enumerate(ops):
        if op.f not in (TRANSFER, READ):
            raise HistoryError(f"event #{i}: unknown function {op.f!r}", event=i)
        if op.type is OpType.INVOKE:
            if op.process in open_:
                raise HistoryError(f"event #{i}: process {op.process} already busy", event=i)
            open_[op.process], order[op.process] = op, i
            continue
        call = open_.pop(op.process, None)
        if call is None:
            raise HistoryError(f"event #{i}: completion without invocation", event=i)
        value = op.value if op.f == READ else call.value
        done.append((order[op.process], _Op(op.process, op.f, value, op.type, call.time)))
    for process, call in open_.items():
        done.append((order[process], _Op(process, call.f, call.value, OpType.INFO, call.time)))
    return [op for _, op in sorted(done, key=lambda pair: pair[0])]


def _transfer(value: object) -> tuple[str, str, int]:
    if (
        isinstance(value, list | tuple)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], str)
        and type(value[2]) is int
    ):
        return value[0], value[1], value[2]
    raise HistoryError(f"a transfer's value is [from, to, amount], not {value!r}")


def _balance_problems(
    who: str, balances: object, opening: Mapping[str, int], allow_negative: bool
) -> list[Anomaly]:
    if not isinstance(balances, Mapping):
        return [Anomaly(AnomalyKind.MISSING, f"{who} returned {balances!r}, not balances")]
    out: list[Anomaly] = []
    missing = sorted(a for a in opening if a not in balances)
    extra = sorted(str(a) for a in balances if a not in opening)
    if missing:
        out.append(Anomaly(AnomalyKind.MISSING, f"{who} lacks accounts {missing}"))
    if extra:
        out.append(Anomaly(AnomalyKind.UNKNOWN_ACCOUNT, f"{who} holds unknown accounts {extra}"))
    values = {a: balances[a] for a in opening if a in balances}
    if any(type(v) is not int for v in values.values()):
        return [*out, Anomaly(AnomalyKind.MISSING, f"{who} holds non-integer balances {values}")]
    total, want = sum(values.values()), sum(opening.values())
    if not missing and total != want:
        text = f"{who} sums to {total}, not {want}: {_show(values)}"
        out.append(Anomaly(AnomalyKind.WRONG_TOTAL, text))
    negative = sorted(a for a, v in values.items() if v < 0)
    if negative and not allow_negative:
        text = f"{who} shows negative balances on {negative}: {_show(values)}"
        out.append(Anomaly(AnomalyKind.NEGATIVE, text))
    return out


def _show(values: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{a}: {v}" for a, v in sorted(values.items())) + "}"


def _explain_final(
    final: Mapping[str, object], opening: Mapping[str, int], ops: list[_Op]
) -> tuple[Anomaly | None, str]:
    """Whether opening + acknowledged + some subset of unknown transfers gives `final`."""
    accounts = sorted(opening)
    at = {a: i for i, a in enumerate(accounts)}
    base = [opening[a] for a in accounts]
    unknown: list[tuple[int, ...]] = []
    for op in ops:
        if op.f != TRANSFER or op.outcome is OpType.FAIL:
            continue
        src, dst, amount = _transfer(op.value)
        if src not in at or dst not in at:
            raise HistoryError(f"a transfer between unknown accounts {src!r}, {dst!r}")
        move = [0] * len(accounts)
        move[at[src]] -= amount
        move[at[dst]] += amount
        if op.outcome is OpType.OK:
            base = [b + m for b, m in zip(base, move, strict=True)]
        else:
            unknown.append(tuple(move))
    target = tuple(int(str(final[a])) for a in accounts)
    reachable = {tuple(base)}
    for step in unknown:
        reachable |= {tuple(r + m for r, m in zip(s, step, strict=True)) for s in reachable}
        if len(reachable) > MAX_SUBSETS:
            return None, f"not checked ({len(unknown)} unknown transfers, too many subsets)"
    if target in reachable:
        return None, f"explained by the acknowledged and {len(unknown)} unknown transfers"
    expected = dict(zip(accounts, base, strict=True))
    text = (
        f"the final balances {_show(dict(zip(accounts, target, strict=True)))} are not the "
        f"opening ones plus the acknowledged transfers ({_show(expected)}) plus any subset "
        f"of the {len(unknown)} unknown ones: a transfer was lost or applied twice"
    )
    return Anomaly(AnomalyKind.UNEXPLAINED, text), "UNEXPLAINED"


def check_bank(
    history: Sequence[Op],
    opening: Mapping[str, int],
    final: Mapping[str, object] | None = None,
    allow_negative: bool = False,
) -> BankVerdict:
    """Check a bank history and its final balances (None: the final read failed)."""
    ops = _pair(history)
    anomalies: list[Anomaly] = []
    for op in ops:
        if op.f == READ and op.outcome is OpType.OK:
            who = f"a read by process {op.process} at t={op.start}"
            anomalies += _balance_problems(who, op.value, opening, allow_negative)
        elif op.f == TRANSFER:
            _transfer(op.value)
    explained = "no final read"
    if final is not None:
        problems = _balance_problems("the final read", final, opening, allow_negative)
        anomalies += problems
        explained = "not checked (the final read itself is wrong)"
        if not problems:
            unexplained, explained = _explain_final(final, opening, ops)
            if unexplained is not None:
                anomalies.append(unexplained)

    def count(f: str, outcome: OpType) -> int:
        return sum(op.f == f and op.outcome is outcome for op in ops)

    stats = BankStats(
        transfers=count(TRANSFER, OpType.OK),
        transfers_failed=count(TRANSFER, OpType.FAIL),
        transfers_unknown=count(TRANSFER, OpType.INFO),
        reads=count(READ, OpType.OK),
        reads_failed=count(READ, OpType.FAIL) + count(READ, OpType.INFO),
        final_explained=explained,
    )
    return BankVerdict(tuple(anomalies), stats)
