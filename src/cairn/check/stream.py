"""Stream checking: what a history of XADD, consumer-group reads and XACK may not show.

Theory of operation
-------------------
Producers XADD unique payloads with `*` ids on a few stream keys; the members of one
consumer group per key read with XREADGROUP (`>` for new entries, `0` for their own
pending ones after a reconnect) and XAUTOCLAIM, and acknowledge with XACK. When the
faults have stopped, each key is read whole (`StreamFinal`): XRANGE - + (the entries),
XPENDING extended (the group's pending entries list, PEL, with each entry's consumer)
and the group's last-delivered-id (XINFO GROUPS).

The history is the usual `cairn.check` event list (`Op`), an INVOKE and a completion per
operation, OK, FAIL (definitely not applied) or INFO (unknown: it may take effect at any
time after its invocation, or never). Values by function (lists may be tuples):

- `xadd`: invoked with the payload (a string); an OK completion carries the id returned
  (`"<ms>-<seq>"`).
- `xreadgroup`: invoked with `[consumer, start, ...]` (start `">"`: new entries, anything
  else: the consumer's own pending entries; more items, such as COUNT, are free);
  `xautoclaim`: invoked with `[consumer]`. An OK completion carries the entries
  delivered as `[[id, payload], ...]`. Both are *deliveries*: an entry delivered is
  pending for that consumer until acknowledged.
- `xack`: invoked with the ids acknowledged (a list); an OK completion carries the count
  XACK returned.

What a stream and its group owe their clients; `check_stream` reports each breach as an
`Anomaly` with a one-line explanation:

- LOST: an acknowledged XADD whose payload is not in the final stream at its id.
- DUPLICATE: a payload twice in the final stream.
- UNEXPECTED: an entry (final or delivered) whose payload no XADD sent, or only one that
  definitely failed, or one sent to another key.
- ID_ORDER: final ids not strictly increasing; or an XADD invoked after another was
  acknowledged returned an id not above it (ids must grow in real time).
- ID_REUSED: two acknowledged XADDs returned the same id.
- MISMATCH: an entry delivered (or in the final stream) under an id that an acknowledged
  XADD of another payload returned, or a payload seen under two ids.
- NEW_TWICE: an entry delivered as new (`>`) by two reads: `>` hands out each id once.
- ACKED_PENDING: an entry acknowledged (an OK XACK of its id) that was delivered again by
  a read invoked after the XACK completed, or that is in the final PEL.
- PEL_LOST: an entry delivered by an OK read and never named by any XACK that is missing
  from the final PEL; or an XACK of one id, delivered and named by no other XACK invoked
  before this one completed, that returned 0 (the PEL had lost it).
- PEL_UNEXPECTED: an id in the final PEL never delivered by any read that may have taken
  effect (OK or unknown), or held by a consumer it was never delivered to.
- UNDELIVERED: an acknowledged XADD at or below the group's final last-delivered-id that no
  OK read delivered and that is not in the final PEL: the group moved past it, so it
  reached nobody. Entries above the last-delivered-id are simply not read yet (counted in
  `StreamStats.unread`, not anomalies): "delivered at least once" is owed only for what
  the group has passed.

An unknown XADD may be in the final stream at most once, or absent. An unknown read may
have delivered entries nobody saw: they stay pending for its consumer, so the final PEL
may hold, for a consumer with an unknown read on the key, ids no OK read returned. An
unknown XACK may or may not have removed its ids: they may be pending at the end or not,
and may be delivered again. Without a final read (None) the checks that need it are
skipped. Everything runs in O(n log n). Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cairn.check.history import HistoryError, Op, OpType

XADD = "xadd"
XREADGROUP = "xreadgroup"
XAUTOCLAIM = "xautoclaim"
XACK = "xack"
FUNCTIONS = (XADD, XREADGROUP, XAUTOCLAIM, XACK)
NEW = ">"
"""XREADGROUP's start for entries never delivered to the group."""

StreamId = tuple[int, int]


def parse_id(text: str) -> StreamId:
    """`"<ms>-<seq>"` as a pair that compares like stream ids do."""
    ms, sep, seq = text.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        raise HistoryError(f"bad stream id {text!r}")
    return int(ms), int(seq)


class AnomalyKind(enum.Enum):
    """What a stream must never do; see the module docstring."""

    LOST = "lost"
    DUPLICATE = "duplicate"
    UNEXPECTED = "unexpected"
    ID_ORDER = "id-order"
    ID_REUSED = "id-reused"
    MISMATCH = "mismatch"
    NEW_TWICE = "new-twice"
    ACKED_PENDING = "acked-pending"
    PEL_LOST = "pel-lost"
    PEL_UNEXPECTED = "pel-unexpected"
    UNDELIVERED = "undelivered"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One breach: its kind, the key, the ids or payloads involved, and an explanation."""

    kind: AnomalyKind
    key: str
    items: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class StreamFinal:
    """One key read after the run: `entries` is XRANGE - + as (id, payload) pairs,
    `pending` the group's PEL as (id, consumer) pairs, `last_delivered` the group's
    last-delivered-id (None: the group does not exist)."""

    entries: Sequence[tuple[str, str]]
    pending: Sequence[tuple[str, str]] = ()
    last_delivered: str | None = None


@dataclass(frozen=True, slots=True)
class StreamOp:
    """An invocation paired with its completion.

    `arg` is the invocation's value (payload, `[consumer, start]`, `[consumer]`, ids);
    `result` the OK completion's (id, entries, count), None otherwise. Invariant: `end` is
    None exactly when `outcome` is INFO.
    """

    process: int
    f: str
    key: str
    arg: object
    result: object
    outcome: OpType
    start: int
    end: int | None

    @property
    def consumer(self) -> str:
        """The consumer of a delivery."""
        assert isinstance(self.arg, list | tuple)
        return str(self.arg[0])

    @property
    def is_new(self) -> bool:
        """Whether this is XREADGROUP `>`."""
        return self.f == XREADGROUP and isinstance(self.arg, list | tuple) and self.arg[1] == NEW

    def entries(self) -> list[tuple[str, str]]:
        """What an OK delivery returned."""
        if self.outcome is not OpType.OK or not isinstance(self.result, list | tuple):
            return []
        return [(str(e[0]), str(e[1])) for e in self.result]

    def ids(self) -> list[str]:
        """What an XACK named."""
        assert isinstance(self.arg, list | tuple)
        return [str(i) for i in self.arg]


@dataclass(frozen=True, slots=True)
class StreamStats:
    """What the history did (`unread`: acknowledged XADDs above the last-delivered-id)."""

    added: int = 0
    add_failed: int = 0
    add_unknown: int = 0
    recovered: int = 0
    delivered: int = 0
    redelivered: int = 0
    reads_unknown: int = 0
    acked: int = 0
    acks_unknown: int = 0
    final_entries: int = 0
    final_pending: int = 0
    unread: int = 0
    lost: int = 0
    keys: int = 0

    def describe(self) -> str:
        """One line for a report."""
        return (
            f"{self.added} acknowledged XADDs ({self.add_failed} failed, {self.add_unknown} "
            f"unknown, {self.recovered} of those present), {self.delivered} entries delivered "
            f"({self.redelivered} again, {self.reads_unknown} reads unknown), {self.acked} "
            f"XACKed ({self.acks_unknown} XACKs unknown), {self.final_entries} entries and "
            f"{self.final_pending} pending at the end, {self.unread} not read yet, "
            f"{self.lost} lost, on {self.keys} keys"
        )


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    """The check's findings; `final_read` says whether a final read was given."""

    anomalies: tuple[Anomaly, ...]
    stats: StreamStats
    final_read: bool

    @property
    def ok(self) -> bool:
        """No anomaly."""
        return not self.anomalies


# --- pairing -------------------------------------------------------------------------------


def _event_problem(op: Op) -> str | None:
    if op.f not in FUNCTIONS:
        return f"unknown function {op.f!r} (expected one of {', '.join(FUNCTIONS)})"
    if not isinstance(op.key, str):
        return f"key must be a string, not {op.key!r}"
    if op.type is not OpType.INVOKE:
        return None
    v = op.value
    if op.f == XADD and not isinstance(v, str):
        return "an xadd is invoked with its payload (a string)"
    if op.f == XREADGROUP and not (isinstance(v, list | tuple) and len(v) >= 2):
        return "an xreadgroup is invoked with [consumer, start, ...]"
    if op.f == XAUTOCLAIM and not (isinstance(v, list | tuple) and len(v) >= 1):
        return "an xautoclaim is invoked with [consumer]"
    if op.f == XACK and not (isinstance(v, list | tuple) and v):
        return "an xack is invoked with a non-empty list of ids"
    return None


def stream_operations(ops: Sequence[Op]) -> list[StreamOp]:
    """Pair every invocation with its process's next completion, in invocation order.

    Invocations still outstanding at the end become INFO. Raises `HistoryError` on an
    unknown function, a bad value, a completion without invocation, or a second
    invocation while one is outstanding.
    """
    open_: dict[int, tuple[int, Op]] = {}
    pairs: dict[int, StreamOp] = {}
    for i, op in enumerate(ops):
        problem = _event_problem(op)
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
            pairs[index] = _pair(call, op)
    for index, call in open_.values():
        pairs[index] = _pair(call, None)
    return [pairs[i] for i in sorted(pairs)]


def _pair(call: Op, done: Op | None) -> StreamOp:
    outcome = OpType.INFO if done is None else done.type
    end = None if done is None or outcome is OpType.INFO else done.time
    result = done.value if done is not None and outcome is OpType.OK else None
    return StreamOp(call.process, call.f, call.key, call.value, result, outcome, call.time, end)


# --- indexing ------------------------------------------------------------------------------


@dataclass
class _Key:
    """One key's operations, indexed."""

    key: str
    adds: dict[str, StreamOp] = field(default_factory=dict)
    """payload -> XADD (every outcome)."""
    acked_ids: dict[str, list[StreamOp]] = field(default_factory=dict)
    """id -> OK XADDs that returned it."""
    deliveries: dict[str, list[tuple[StreamOp, str]]] = field(default_factory=dict)
    """id -> (OK delivery, payload) for every time it was delivered."""
    acks: dict[str, list[StreamOp]] = field(default_factory=dict)
    """id -> XACKs naming it (every outcome)."""
    unknown_reads: dict[str, int] = field(default_factory=dict)
    """consumer -> deliveries of unknown outcome."""


def _index(ops: list[StreamOp]) -> dict[str, _Key]:
    keys: dict[str, _Key] = {}
    for op in ops:
        k = keys.setdefault(op.key, _Key(op.key))
        if op.f == XADD:
            payload = str(op.arg)
            if payload in k.adds:
                raise HistoryError(f"payload {payload!r} added twice: payloads must be unique")
            k.adds[payload] = op
            if op.outcome is OpType.OK:
                k.acked_ids.setdefault(str(op.result), []).append(op)
        elif op.f == XACK:
            for i in op.ids():
                k.acks.setdefault(i, []).append(op)
        elif op.outcome is OpType.INFO:
            k.unknown_reads[op.consumer] = k.unknown_reads.get(op.consumer, 0) + 1
        else:
            for i, payload in op.entries():
                k.deliveries.setdefault(i, []).append((op, payload))
    return keys


# --- the check -----------------------------------------------------------------------------


def check_stream(
    history: Sequence[Op] | Sequence[StreamOp], final: Mapping[str, StreamFinal] | None
) -> StreamVerdict:
    """Check a stream history and the final read of each key (None: it failed)."""
    ops = _as_stream_ops(history)
    keys = _index(ops)
    for key in final or {}:
        keys.setdefault(key, _Key(key))
    out: list[Anomaly] = []
    lost = unread = 0
    for name in sorted(keys):
        k = keys[name]
        out += _add_anomalies(k)
        out += _delivery_anomalies(k)
        out += _ack_anomalies(k)
        if final is not None:
            f = final.get(name, StreamFinal(()))
            found, key_lost = _final_stream_anomalies(k, f)
            out += found + _pel_anomalies(k, f)
            more, key_unread = _undelivered(k, f)
            out += more
            lost, unread = lost + key_lost, unread + key_unread
    return StreamVerdict(tuple(out), _stats(ops, final, len(keys), lost, unread), final is not None)


def _as_stream_ops(history: Sequence[Op] | Sequence[StreamOp]) -> list[StreamOp]:
    if all(isinstance(op, StreamOp) for op in history):
        return [op for op in history if isinstance(op, StreamOp)]
    return stream_operations([op for op in history if isinstance(op, Op)])


def _source_problem(k: _Key, payload: str) -> str | None:
    """Why an entry with `payload` on `k` cannot come from an XADD; None if it can."""
    add = k.adds.get(payload)
    if add is None:
        return "was never added to this key"
    if add.outcome is OpType.FAIL:
        return "was added by an XADD that definitely failed"
    return None


def _add_anomalies(k: _Key) -> list[Anomaly]:
    out: list[Anomaly] = []
    for i in sorted(k.acked_ids, key=parse_id):
        adds = k.acked_ids[i]
        if len(adds) > 1:
            names = ", ".join(repr(str(a.arg)) for a in adds)
            text = f"{k.key}: id {i} returned by {len(adds)} acknowledged XADDs ({names})"
            out.append(Anomaly(AnomalyKind.ID_REUSED, k.key, (i,), text))
    done = sorted(
        (a.end, parse_id(str(a.result)), str(a.result))
        for a in k.adds.values()
        if a.outcome is OpType.OK and a.end is not None
    )
    ends = [d[0] for d in done]
    best: list[tuple[StreamId, str]] = []
    for _, sid, text_id in done:
        best.append(max(best[-1], (sid, text_id)) if best else (sid, text_id))
    for a in k.adds.values():
        if a.outcome is not OpType.OK:
            continue
        before = bisect_left(ends, a.start)
        if before and best[before - 1][0] >= parse_id(str(a.result)):
            text = (
                f"{k.key}: XADD of {a.arg!r} returned {a.result}, not above {best[before - 1][1]} "
                f"which an XADD acknowledged before it was invoked"
            )
            out.append(Anomaly(AnomalyKind.ID_ORDER, k.key, (str(a.result),), text))
    return out


def _entry_problem(k: _Key, i: str, payload: str, where: str) -> Anomaly | None:
    problem = _source_problem(k, payload)
    if problem is not None:
        text = f"{k.key}: entry {i} {where} has payload {payload!r}, which {problem}"
        return Anomaly(AnomalyKind.UNEXPECTED, k.key, (i, payload), text)
    add = k.adds[payload]
    if add.outcome is OpType.OK and str(add.result) != i:
        text = (
            f"{k.key}: payload {payload!r} {where} under id {i}, but its XADD returned {add.result}"
        )
        return Anomaly(AnomalyKind.MISMATCH, k.key, (i, payload), text)
    owners = k.acked_ids.get(i, [])
    if owners and all(str(o.arg) != payload for o in owners):
        other = owners[0].arg
        text = f"{k.key}: id {i} {where} carries {payload!r}, but XADD of {other!r} returned it"
        return Anomaly(AnomalyKind.MISMATCH, k.key, (i, payload), text)
    return None


def _delivery_anomalies(k: _Key) -> list[Anomaly]:
    out: list[Anomaly] = []
    for i in sorted(k.deliveries, key=parse_id):
        seen = k.deliveries[i]
        payloads = sorted({p for _, p in seen})
        for payload in payloads:
            problem = _entry_problem(k, i, payload, "delivered")
            if problem is not None:
                out.append(problem)
        new = [op for op, _ in seen if op.is_new]
        if len(new) > 1:
            who = ", ".join(op.consumer for op in new)
            text = f"{k.key}: entry {i} delivered as new (>) {len(new)} times (to {who})"
            out.append(Anomaly(AnomalyKind.NEW_TWICE, k.key, (i,), text))
        acked = _first_ack(k, i)
        again = [op for op, _ in seen if acked is not None and op.start > acked]
        if again:
            text = (
                f"{k.key}: entry {i} was acknowledged by XACK yet delivered again, to "
                f"{again[0].consumer} by {again[0].f} ({'new' if again[0].is_new else 'pending'})"
            )
            out.append(Anomaly(AnomalyKind.ACKED_PENDING, k.key, (i,), text))
    return out


def _first_ack(k: _Key, i: str) -> int | None:
    """When the first OK XACK of `i` completed (None: never)."""
    ends = [a.end for a in k.acks.get(i, []) if a.outcome is OpType.OK and a.end is not None]
    return min(ends) if ends else None


def _ack_anomalies(k: _Key) -> list[Anomaly]:
    out: list[Anomaly] = []
    for i, acks in sorted(k.acks.items()):
        for ack in acks:
            if ack.outcome is not OpType.OK or ack.result != 0 or len(ack.ids()) != 1:
                continue
            delivered = [op for op, _ in k.deliveries.get(i, []) if op.end is not None]
            assert ack.end is not None
            others = [a for a in acks if a is not ack and a.start < ack.end]
            if delivered and min(op.end for op in delivered if op.end) < ack.start and not others:
                text = (
                    f"{k.key}: XACK of {i} returned 0 though the entry was delivered and "
                    f"nothing had acknowledged it: the PEL lost it"
                )
                out.append(Anomaly(AnomalyKind.PEL_LOST, k.key, (i,), text))
    return out


def _final_stream_anomalies(k: _Key, f: StreamFinal) -> tuple[list[Anomaly], int]:
    out: list[Anomaly] = []
    ids = [parse_id(i) for i, _ in f.entries]
    for n in range(1, len(ids)):
        if ids[n] <= ids[n - 1]:
            a, b = f.entries[n - 1][0], f.entries[n][0]
            text = f"{k.key}: final stream not in id order: {b} after {a}"
            out.append(Anomaly(AnomalyKind.ID_ORDER, k.key, (f.entries[n][0],), text))
    where: dict[str, list[str]] = {}
    for i, payload in f.entries:
        where.setdefault(payload, []).append(i)
    for payload, at in sorted(where.items()):
        if len(at) > 1:
            ids_at = ", ".join(at)
            text = f"{k.key}: payload {payload!r} is {len(at)} times in the final stream ({ids_at})"
            out.append(Anomaly(AnomalyKind.DUPLICATE, k.key, (payload,), text))
        problem = _entry_problem(k, at[0], payload, "in the final stream")
        if problem is not None:
            out.append(problem)
    missing = sorted(
        str(a.arg) for a in k.adds.values() if a.outcome is OpType.OK and str(a.arg) not in where
    )
    if missing:
        shown = ", ".join(repr(p) for p in missing[:10]) + (", ..." if len(missing) > 10 else "")
        text = f"{k.key}: {len(missing)} acknowledged XADDs missing from the final stream: {shown}"
        out.append(Anomaly(AnomalyKind.LOST, k.key, tuple(missing), text))
    return out, len(missing)


def _pel_anomalies(k: _Key, f: StreamFinal) -> list[Anomaly]:
    out: list[Anomaly] = []
    pel = dict(f.pending)
    for i, consumer in f.pending:
        if _first_ack(k, i) is not None:
            text = f"{k.key}: entry {i}, acknowledged by XACK, is pending for {consumer} at the end"
            out.append(Anomaly(AnomalyKind.ACKED_PENDING, k.key, (i,), text))
            continue
        holders = {op.consumer for op, _ in k.deliveries.get(i, [])}
        if consumer in holders or k.unknown_reads.get(consumer, 0):
            continue
        why = f"only to {', '.join(sorted(holders))}" if holders else "to nobody"
        text = f"{k.key}: entry {i} is pending for {consumer} at the end, but was delivered {why}"
        out.append(Anomaly(AnomalyKind.PEL_UNEXPECTED, k.key, (i,), text))
    gone = sorted((i for i in k.deliveries if i not in pel and i not in k.acks), key=parse_id)
    if gone:
        shown = ", ".join(gone[:10]) + (", ..." if len(gone) > 10 else "")
        text = (
            f"{k.key}: {len(gone)} entries delivered and never XACKed are not pending at the "
            f"end: {shown}"
        )
        out.append(Anomaly(AnomalyKind.PEL_LOST, k.key, tuple(gone), text))
    return out


def _undelivered(k: _Key, f: StreamFinal) -> tuple[list[Anomaly], int]:
    """Acknowledged XADDs the group passed without delivering, and how many are unread."""
    last = parse_id(f.last_delivered) if f.last_delivered is not None else (-1, -1)
    pel = {i for i, _ in f.pending}
    passed: list[str] = []
    unread = 0
    for a in k.adds.values():
        if a.outcome is not OpType.OK:
            continue
        i = str(a.result)
        if i in k.deliveries or i in pel:
            continue
        if parse_id(i) > last:
            unread += 1
        else:
            passed.append(i)
    if not passed or f.last_delivered is None:
        return [], unread
    passed.sort(key=parse_id)
    shown = ", ".join(passed[:10]) + (", ..." if len(passed) > 10 else "")
    text = (
        f"{k.key}: {len(passed)} acknowledged entries at or below the group's last-delivered-id "
        f"{f.last_delivered} were never delivered and are not pending: {shown}"
    )
    return [Anomaly(AnomalyKind.UNDELIVERED, k.key, tuple(passed), text)], unread


# --- figures -------------------------------------------------------------------------------


def _stats(
    ops: list[StreamOp], final: Mapping[str, StreamFinal] | None, keys: int, lost: int, unread: int
) -> StreamStats:
    def count(f: str, outcome: OpType) -> int:
        return sum(op.f == f and op.outcome is outcome for op in ops)

    finals = list((final or {}).values())
    present = {p for fin in finals for _, p in fin.entries}
    unknown = [op for op in ops if op.f == XADD and op.outcome is OpType.INFO]
    seen: dict[tuple[str, str], int] = {}
    for op in ops:
        if op.f in (XREADGROUP, XAUTOCLAIM):
            for i, _ in op.entries():
                seen[(op.key, i)] = seen.get((op.key, i), 0) + 1
    reads_unknown = sum(
        op.f in (XREADGROUP, XAUTOCLAIM) and op.outcome is OpType.INFO for op in ops
    )
    acked = {
        (op.key, i) for op in ops if op.f == XACK and op.outcome is OpType.OK for i in op.ids()
    }
    return StreamStats(
        added=count(XADD, OpType.OK),
        add_failed=count(XADD, OpType.FAIL),
        add_unknown=len(unknown),
        recovered=sum(str(op.arg) in present for op in unknown),
        delivered=len(seen),
        redelivered=sum(n - 1 for n in seen.values()),
        reads_unknown=reads_unknown,
        acked=len(acked),
        acks_unknown=count(XACK, OpType.INFO),
        final_entries=sum(len(fin.entries) for fin in finals),
        final_pending=sum(len(fin.pending) for fin in finals),
        unread=unread,
        lost=lost,
        keys=keys,
    )
