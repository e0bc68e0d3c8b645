"""Elle-style isolation checking of list-append transactions.

Theory of operation
-------------------
After Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from Experimental
Observations" (VLDB 2020). Clients run transactions of micro-operations on list keys:
``["append", k, v]`` adds `v` at the end of list `k` (RPUSH), ``["r", k, None]`` reads the
whole list (LRANGE k 0 -1), its completion carrying the list read. Each appended value is
unique per key, so a read names exactly which appends it saw, in which order; and since a
list only ever grows, every read of `k` must be a prefix of every longer one. The longest
read of each key is therefore the key's *version order*: the order in which the appends
were applied (a read that is not a prefix of it is an `INCOMPATIBLE_ORDER` anomaly).

The history is the usual `cairn.check` event list (`Op`): an INVOKE and a completion per
transaction, with ``f == "txn"`` and ``value`` the list of micro-operations (reads invoked
with None, completed with the list read). OK: committed; FAIL: definitely not applied (an
aborted EXEC); INFO: unknown, it may have applied at any time after its invocation.

From the version orders the check infers a dependency graph between transactions (OK ones,
and unknown ones whose appends were seen):

- ww (write-write): T1 appended a value to `k` and T2 appended the next one;
- wr (write-read): T2 read `k` and the last value it saw was appended by T1;
- rw (read-write, an anti-dependency): T1 read `k` up to some value (or empty) and T2
  appended the next value: T1 did not see T2's write, so it must come before T2;
- rt (real time, for strict serializability): T1 committed before T2 was invoked. Only
  the transitive reduction is kept (T1 -> T2 unless some T3 ran wholly between them),
  so the edges stay proportional to concurrency, not quadratic.

A serializable history has an acyclic graph (every edge points forward in the serial
order); a strictly serializable one stays acyclic with rt edges too. Cycles are found with
Tarjan's strongly connected components, then a shortest cycle per component by breadth
first search, searched for class by class (Adya's anomalies):

- G0 (write cycle): ww edges only;
- G1c (circular information flow): ww and wr edges, at least one wr;
- G-single (read skew): exactly one rw edge, the rest ww/wr;
- G2 (anti-dependency cycle): two or more rw edges.

A cycle that needs an rt edge is the same class "-realtime" (`Anomaly.realtime`): it
breaks strict serializability but not serializability. Besides cycles:

- G1a (aborted read): a read saw a value appended by a transaction that failed;
- G1b (intermediate read): a read ended at a value that its writer followed with another
  append to the same key in the same transaction, a state no committed transaction left;
- INTERNAL: a transaction's read of a key it appended to earlier does not end with its
  own last append;
- DUPLICATE: a value twice in one read;
- GARBAGE: a read saw a value that no transaction appended to that key;
- INCOMPATIBLE_ORDER: two reads of a key of which neither is a prefix of the other;
- LOST: an acknowledged append missing from the key's final list (read after the run).

Every anomaly comes with a one-or-two line explanation naming the transactions (``T12``:
the 12th transaction invoked, with its process) and the edges. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from cairn.check.history import HistoryError, Op, OpType

TXN = "txn"
"""The function name of a list-append transaction in a history."""
APPEND = "append"
READ = "r"

_SCALARS = (int, str)
"""The types an appended value may have (exactly: a bool is not an integer here)."""

MicroOp = tuple[str, str, object]
"""(APPEND, key, value) or (READ, key, list read or None)."""


class AnomalyKind(enum.Enum):
    """What the check can find; see the module docstring."""

    G0 = "G0"
    G1A = "G1a"
    G1B = "G1b"
    G1C = "G1c"
    G_SINGLE = "G-single"
    G2 = "G2"
    INTERNAL = "internal"
    DUPLICATE = "duplicate"
    GARBAGE = "garbage"
    INCOMPATIBLE_ORDER = "incompatible-order"
    LOST = "lost"


class Edge(enum.Enum):
    """A dependency between two transactions; the value is its name in explanations."""

    WW = "ww"
    WR = "wr"
    RW = "rw"
    RT = "rt"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One finding: its kind, the transactions involved (indexes) and an explanation."""

    kind: AnomalyKind
    txns: tuple[int, ...]
    text: str
    order: str = ""
    """For a cycle that needs an order edge: "realtime" (it breaks strict
    serializability only) or "process" (it breaks only each client's own order)."""

    @property
    def name(self) -> str:
        """The class name, with "-realtime" or "-process" when an order edge is needed."""
        return self.kind.value + (f"-{self.order}" if self.order else "")

    def __str__(self) -> str:
        return f"{self.name}: {self.text}"


@dataclass(frozen=True, slots=True)
class Txn:
    """One transaction: its invocation paired with its completion.

    `index` numbers the transactions in invocation order (``T<index>`` in explanations).
    `ops` are the micro-operations, reads carrying the list read when `outcome` is OK (None
    otherwise). Invariant: `end` is None exactly when `outcome` is INFO.
    """

    index: int
    process: int
    ops: tuple[MicroOp, ...]
    outcome: OpType
    start: int
    end: int | None

    def appends(self, key: str) -> list[object]:
        """The values this transaction appended to `key`, in order."""
        return [v for f, k, v in self.ops if f == APPEND and k == key]


@dataclass(frozen=True, slots=True)
class ElleStats:
    """What the history held and what the graph became."""

    ok: int = 0
    failed: int = 0
    unknown: int = 0
    keys: int = 0
    appends: int = 0
    reads: int = 0
    nodes: int = 0
    edges: int = 0

    def describe(self) -> str:
        """One line for a report."""
        return (
            f"{self.ok} committed transactions ({self.failed} failed, {self.unknown} unknown), "
            f"{self.appends} appends and {self.reads} reads on {self.keys} keys; dependency "
            f"graph of {self.nodes} transactions and {self.edges} edges"
        )


@dataclass(frozen=True, slots=True)
class ElleVerdict:
    """The check's findings; `ok` when there are none."""

    anomalies: tuple[Anomaly, ...]
    stats: ElleStats
    lost: int = 0

    @property
    def ok(self) -> bool:
        """No anomaly."""
        return not self.anomalies


# --- parsing -------------------------------------------------------------------------------


def _micro_op(raw: object, completed: bool) -> MicroOp:
    if not isinstance(raw, list | tuple) or len(raw) != 3:
        raise HistoryError(f"a micro-operation is [f, key, value], not {raw!r}")
    f, key, value = raw
    if f not in (APPEND, READ) or not isinstance(key, str):
        raise HistoryError(f"a micro-operation is [append|r, key, value], not {raw!r}")
    if f == APPEND:
        if type(value) not in _SCALARS:
            raise HistoryError(f"an appended value must be a string or integer, not {value!r}")
        return (f, key, value)
    if value is None or not completed:
        return (f, key, None)
    if not isinstance(value, list | tuple) or not all(type(v) in _SCALARS for v in value):
        raise HistoryError(f"a read completes with a list of values, not {value!r}")
    return (f, key, tuple(value))


def _micro_ops(value: object, completed: bool) -> tuple[MicroOp, ...]:
    if not isinstance(value, list | tuple):
        raise HistoryError(f"a transaction's value is a list of micro-operations, not {value!r}")
    return tuple(_micro_op(raw, completed) for raw in value)


def transactions(ops: Sequence[Op]) -> list[Txn]:
    """Pair every invocation with its process's next completion, in invocation order.

    Invocations still outstanding at the end become INFO. Raises `HistoryError` on another
    function than "txn", a malformed value, a completion without invocation, or a second
    invocation while one is outstanding.
    """
    open_: dict[int, tuple[int, Op]] = {}
    pairs: dict[int, Txn] = {}
    for i, op in enumerate(ops):
        try:
            if op.f != TXN:
                raise HistoryError(f"unknown function {op.f!r} (expected {TXN!r})")
            if op.type is OpType.INVOKE:
                if op.process in open_:
                    raise HistoryError(f"process {op.process} already has a transaction open")
                _micro_ops(op.value, False)
                open_[op.process] = (i, op)
                continue
            if op.process not in open_:
                raise HistoryError(f"{op.type.value} without an invocation by process {op.process}")
            at, call = open_.pop(op.process)
            pairs[at] = _pair(call, op)
        except HistoryError as e:
            raise HistoryError(f"event #{i}: {e}", event=i) from None
    for at, call in open_.values():
        pairs[at] = _pair(call, None)
    return [
        Txn(n, t.process, t.ops, t.outcome, t.start, t.end)
        for n, t in enumerate(pairs[i] for i in sorted(pairs))
    ]


def _pair(call: Op, done: Op | None) -> Txn:
    outcome = OpType.INFO if done is None else done.type
    if outcome is OpType.OK and done is not None:
        ops = _micro_ops(done.value, True)
        planned = _micro_ops(call.value, False)
        if [(f, k) for f, k, _ in ops] != [(f, k) for f, k, _ in planned]:
            raise HistoryError("the completion's micro-operations differ from the invocation's")
    else:
        ops = _micro_ops(call.value, False)
    end = None if done is None or outcome is OpType.INFO else done.time
    return Txn(-1, call.process, ops, outcome, call.time, end)


# --- indexing ------------------------------------------------------------------------------


@dataclass
class _Facts:
    txns: list[Txn]
    writer: dict[tuple[str, object], Txn] = field(default_factory=dict)
    """(key, value) -> the transaction that appended it."""
    orders: dict[str, tuple[object, ...]] = field(default_factory=dict)
    """key -> its version order (the longest read)."""
    position: dict[str, dict[object, int]] = field(default_factory=dict)
    """key -> value -> its index in the version order."""
    reads: list[tuple[Txn, str, tuple[object, ...], int]] = field(default_factory=list)
    """Every read of a committed transaction: (txn, key, list read, position in txn)."""


def _name(t: Txn) -> str:
    return f"T{t.index} (process {t.process})"


def _index(txns: list[Txn], final: Mapping[str, Sequence[object]] | None) -> _Facts:
    facts = _Facts(txns)
    for t in txns:
        for f, k, v in t.ops:
            if f != APPEND:
                continue
            other = facts.writer.get((k, v))
            if other is not None:
                raise HistoryError(
                    f"value {v!r} appended to {k!r} by both T{other.index} and T{t.index}: "
                    "appended values must be unique per key"
                )
            facts.writer[(k, v)] = t
        if t.outcome is OpType.OK:
            for pos, (f, k, v) in enumerate(t.ops):
                if f == READ and isinstance(v, tuple):
                    facts.reads.append((t, k, v, pos))
    longest: dict[str, tuple[object, ...]] = {}
    candidates = [(k, v) for _, k, v, _ in facts.reads]
    candidates += [(k, tuple(v)) for k, v in (final or {}).items()]
    for k, values in candidates:
        if len(values) > len(longest.get(k, ())):
            longest[k] = values
    facts.orders = longest
    facts.position = {k: {v: i for i, v in enumerate(vs)} for k, vs in longest.items()}
    return facts


# --- anomalies that need no graph ----------------------------------------------------------


def _read_anomalies(facts: _Facts, final: Mapping[str, Sequence[object]] | None) -> list[Anomaly]:
    out: list[Anomaly] = []
    seen_orders: set[tuple[str, tuple[object, ...]]] = set()
    labelled: list[tuple[Txn | None, str, tuple[object, ...], int, str]]
    labelled = [(t, k, vs, pos, _name(t)) for t, k, vs, pos in facts.reads]
    labelled += [(None, k, tuple(vs), 0, "the final read") for k, vs in (final or {}).items()]
    for t, k, values, pos, who in labelled:
        txns = () if t is None else (t.index,)
        dupes = sorted(repr(v) for v, n in Counter(values).items() if n > 1)
        if dupes:
            text = f"{who} read {k!r} with {', '.join(dupes)} more than once: {list(values)}"
            out.append(Anomaly(AnomalyKind.DUPLICATE, txns, text))
        order = facts.orders.get(k, ())
        if values != order[: len(values)] and (k, values) not in seen_orders:
            seen_orders.add((k, values))
            text = (
                f"{who} read {k!r} as {_short(values)}, which is not a prefix of the longest "
                f"read {_short(order)}: the key has no single order of appends"
            )
            out.append(Anomaly(AnomalyKind.INCOMPATIBLE_ORDER, txns, text))
        for v in values:
            w = facts.writer.get((k, v))
            if w is None:
                text = f"{who} read {v!r} in {k!r}, a value no transaction appended to {k!r}"
                out.append(Anomaly(AnomalyKind.GARBAGE, txns, text))
            elif w.outcome is OpType.FAIL:
                text = (
                    f"{who} read {v!r} in {k!r}, appended by {_name(w)}, which failed "
                    "(aborted): an aborted write was seen"
                )
                out.append(Anomaly(AnomalyKind.G1A, (*txns, w.index), text))
        if t is not None:
            out += _intermediate(facts, t, k, values, pos)
    return out


def _intermediate(
    facts: _Facts, t: Txn, k: str, values: tuple[object, ...], pos: int
) -> list[Anomaly]:
    """G1b for a read by `t` that ends at another transaction's non-final append; and a
    read of `t`'s own earlier append that does not end with it (INTERNAL)."""
    own = [v for f, key, v in t.ops[:pos] if f == APPEND and key == k]
    if own and (not values or values[-1] != own[-1]):
        text = (
            f"{_name(t)} appended {own[-1]!r} to {k!r} and then read {_short(values)}, "
            "which does not end with its own append"
        )
        return [Anomaly(AnomalyKind.INTERNAL, (t.index,), text)]
    if not values:
        return []
    last = values[-1]
    w = facts.writer.get((k, last))
    if w is None or w is t:
        return []
    mine = w.appends(k)
    if mine and mine[-1] != last:
        text = (
            f"{_name(t)} read {k!r} ending at {last!r}, an intermediate state: {_name(w)} "
            f"appended {last!r} and then {mine[mine.index(last) + 1]!r} to {k!r}"
        )
        return [Anomaly(AnomalyKind.G1B, (t.index, w.index), text)]
    return []


def _lost(facts: _Facts, final: Mapping[str, Sequence[object]]) -> list[Anomaly]:
    out: list[Anomaly] = []
    by_key: dict[str, list[tuple[object, Txn]]] = {}
    for (key, v), w in facts.writer.items():
        if w.outcome is OpType.OK:
            by_key.setdefault(key, []).append((v, w))
    for k in sorted(final):
        present = set(final[k])
        missing = sorted(
            ((v, w) for v, w in by_key.get(k, ()) if v not in present),
            key=lambda pair: repr(pair[0]),
        )
        for v, w in missing:
            text = (
                f"{_name(w)} appended {v!r} to {k!r} and committed, but the final read of "
                f"{k!r} lacks it: an acknowledged write was lost"
            )
            out.append(Anomaly(AnomalyKind.LOST, (w.index,), text))
    return out


def _short(values: Sequence[object], most: int = 8) -> str:
    if len(values) <= most:
        return repr(list(values))
    head = ", ".join(repr(v) for v in values[: most // 2])
    tail = ", ".join(repr(v) for v in values[-most // 2 :])
    return f"[{head}, ... ({len(values) - most} more) ..., {tail}]"


# --- the dependency graph ----------------------------------------------------------------


@dataclass
class Graph:
    """Edges between transaction indexes, each with its kinds and a reason per kind."""

    out: dict[int, dict[int, dict[Edge, str]]] = field(default_factory=dict)

    def add(self, a: int, b: int, kind: Edge, why: str) -> None:
        """Add a -> b of `kind` (the first reason given is kept); self-loops are ignored."""
        if a != b:
            self.out.setdefault(a, {}).setdefault(b, {}).setdefault(kind, why)
            self.out.setdefault(b, {})

    def edges(self, a: int, allowed: frozenset[Edge]) -> Iterable[int]:
        """The successors of `a` through an edge of an allowed kind."""
        for b, kinds in self.out.get(a, {}).items():
            if not allowed.isdisjoint(kinds):
                yield b

    @property
    def size(self) -> int:
        """How many (a, b) pairs are connected."""
        return sum(len(succ) for succ in self.out.values())


def build_graph(facts: _Facts, realtime: bool) -> Graph:
    """The ww, wr, rw (and rt or process-order) edges; see the module docstring."""
    g = Graph()
    for k, order in facts.orders.items():
        writers = [facts.writer.get((k, v)) for v in order]
        for i in range(1, len(order)):
            a, b = writers[i - 1], writers[i]
            if a is not None and b is not None and a is not b:
                why = (
                    f"{_name(a)} appended {order[i - 1]!r} to {k!r}, "
                    f"{_name(b)} appended {order[i]!r} next"
                )
                g.add(a.index, b.index, Edge.WW, why)
    for t, k, values, _ in facts.reads:
        _read_edges(g, facts, t, k, values)
    nodes = _graph_txns(facts)
    for t in nodes:
        g.out.setdefault(t.index, {})
    if realtime:
        _realtime_edges(g, nodes)
    else:
        _process_edges(g, nodes)
    return g


def _read_edges(g: Graph, facts: _Facts, t: Txn, k: str, values: tuple[object, ...]) -> None:
    order = facts.orders.get(k, ())
    if values != order[: len(values)]:
        return  # incompatible: reported already, no sound edges
    if values:
        w = facts.writer.get((k, values[-1]))
        if w is not None and w.outcome is not OpType.FAIL:
            g.add(
                w.index,
                t.index,
                Edge.WR,
                f"{_name(t)} read {k!r} ending at {values[-1]!r}, appended by {_name(w)}",
            )
    last_writer = facts.writer.get((k, values[-1])) if values else None
    for v in order[len(values) :]:
        nxt = facts.writer.get((k, v))
        if nxt is None or nxt is last_writer:
            continue
        if nxt is not t:
            seen = f"up to {values[-1]!r}" if values else "empty"
            why = f"{_name(t)} read {k!r} {seen}, {_name(nxt)} appended {v!r} next"
            g.add(t.index, nxt.index, Edge.RW, why)
        return


def _graph_txns(facts: _Facts) -> list[Txn]:
    """Committed transactions and unknown ones whose appends were seen."""
    seen = {(k, v) for k, order in facts.orders.items() for v in order}
    return [
        t for t in facts.txns
        if t.outcome is OpType.OK
        or (t.outcome is OpType.INFO and any((k, v) in seen for f, k, v in t.ops if f == APPEND))
    ]  # fmt: skip


def _realtime_edges(g: Graph, nodes: list[Txn]) -> None:
    """T1 -> T2 when T1 committed before T2 was invoked, transitively reduced: not when
    some T3 was invoked after T1 committed and committed before T2 was invoked."""
    done = sorted((t for t in nodes if t.end is not None), key=lambda t: t.end or 0)
    ends = [t.end or 0 for t in done]
    latest_start: list[int] = []
    for t in done:
        latest_start.append(max(t.start, latest_start[-1]) if latest_start else t.start)
    for t2 in nodes:
        k = bisect_left(ends, t2.start)
        if k == 0:
            continue
        cutoff = latest_start[k - 1]
        for t1 in done[bisect_left(ends, cutoff) : k]:
            g.add(t1.index, t2.index, Edge.RT, f"{_name(t1)} committed before {_name(t2)} began")


def _process_edges(g: Graph, nodes: list[Txn]) -> None:
    last: dict[int, Txn] = {}
    for t in sorted(nodes, key=lambda t: t.start):
        prev = last.get(t.process)
        if prev is not None:
            g.add(
                prev.index,
                t.index,
                Edge.RT,
                f"{_name(prev)} came before {_name(t)} in process {t.process}",
            )
        last[t.process] = t


# --- cycles ---------------------------------------------------------------------------------


def strongly_connected(g: Graph, allowed: frozenset[Edge]) -> list[list[int]]:
    """Tarjan's strongly connected components with more than one node (iterative)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    found: list[list[int]] = []
    counter = 0
    for root in g.out:
        if root in index:
            continue
        work: list[tuple[int, Iterable[int]]] = [(root, iter(list(g.edges(root, allowed))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, succ = work[-1]
            pushed = False
            for nxt in succ:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(list(g.edges(nxt, allowed)))))
                    pushed = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if pushed:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _path(
    g: Graph, start: int, goal: int, allowed: frozenset[Edge], within: set[int]
) -> list[int] | None:
    """A shortest path start -> ... -> goal through allowed edges inside `within`."""
    parent: dict[int, int] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in g.edges(node, allowed):
            if nxt not in within or nxt in parent:
                continue
            parent[nxt] = node
            if nxt == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            queue.append(nxt)
    return None


_DATA = frozenset({Edge.WW, Edge.WR})
_PREFERENCE = (Edge.WW, Edge.WR, Edge.RT, Edge.RW)
"""When two transactions are linked by several kinds, the mildest one allowed is named."""


def _find_cycle(
    g: Graph, component: list[int], must: Edge, path: frozenset[Edge]
) -> list[int] | None:
    """A cycle of this component (node list, the first repeated at the end) made of one
    `must` edge a -> b and a shortest path b -> ... -> a through `path` edges."""
    members = set(component)
    for a in component:
        for b, kinds in g.out.get(a, {}).items():
            if b not in members or must not in kinds:
                continue
            back = _path(g, b, a, path, members)
            if back is not None:
                return [a, *back]
    return None


def _cycle_edges(
    g: Graph, cycle: list[int], allowed: frozenset[Edge], first: Edge | None
) -> list[tuple[int, int, Edge, str]]:
    steps = []
    for i, (a, b) in enumerate(pairwise(cycle)):
        kinds = g.out[a][b]
        if i == 0 and first is not None and first in kinds:
            kind = first
        else:
            kind = next(k for k in _PREFERENCE if k in kinds and k in allowed)
        steps.append((a, b, kind, kinds[kind]))
    return steps


def _classify(steps: list[tuple[int, int, Edge, str]]) -> tuple[AnomalyKind, bool]:
    """The cycle's class, and whether it needs an order edge."""
    kinds = [kind for _, _, kind, _ in steps]
    rw = kinds.count(Edge.RW)
    if rw == 0:
        kind = AnomalyKind.G1C if Edge.WR in kinds else AnomalyKind.G0
    else:
        kind = AnomalyKind.G_SINGLE if rw == 1 else AnomalyKind.G2
    return kind, Edge.RT in kinds


_SEARCHES: tuple[tuple[Edge, frozenset[Edge]], ...] = (
    (Edge.WW, frozenset({Edge.WW})),  # G0
    (Edge.WR, _DATA),  # G1c
    (Edge.RW, _DATA),  # G-single: one rw edge, the way back on data edges
    (Edge.RW, _DATA | {Edge.RW}),  # G2 (or G-single if the way back needs no rw)
)


def cycle_anomalies(g: Graph, order: str = "realtime", most: int = 10) -> list[Anomaly]:
    """The cycles of `g`, class by class: G0, G1c, G-single, G2, first on data edges
    alone, then with the order edges (`Edge.RT`, named `order`) too; at most `most` per
    class name, one per strongly connected component, class and pass."""
    out: list[Anomaly] = []
    seen: set[tuple[str, frozenset[int]]] = set()
    counts: dict[str, int] = {}
    for extra in (frozenset[Edge](), frozenset({Edge.RT})):
        for must, path in _SEARCHES:
            path = path | extra
            for component in strongly_connected(g, path | {must}):
                cycle = _find_cycle(g, component, must, path)
                if cycle is None:
                    continue
                steps = _cycle_edges(g, cycle, path | {must}, must)
                anomaly = _cycle_anomaly(steps, order)
                key = (anomaly.name, frozenset(cycle))
                if key in seen or counts.get(anomaly.name, 0) >= most:
                    continue
                seen.add(key)
                counts[anomaly.name] = counts.get(anomaly.name, 0) + 1
                out.append(anomaly)
    return out


def _cycle_anomaly(steps: list[tuple[int, int, Edge, str]], order: str) -> Anomaly:
    kind, rt = _classify(steps)
    chain = f"T{steps[0][0]}" + "".join(f" -{e.value}-> T{b}" for _, b, e, _ in steps)
    reasons = "; ".join(why for _, _, _, why in steps)
    text = f"cycle {chain}: {reasons}"
    return Anomaly(kind, tuple(a for a, _, _, _ in steps), text, order if rt else "")


# --- the check --------------------------------------------------------------------------------


def check_list_append(
    history: Sequence[Op] | Sequence[Txn],
    final: Mapping[str, Sequence[object]] | None = None,
    realtime: bool = True,
) -> ElleVerdict:
    """Check a list-append history (and the final lists read after the run, key -> list,
    when given) for the anomalies of the module docstring. `realtime` adds real-time
    edges (strict serializability); without it, process order (serializability with
    each client's transactions in order)."""
    txns = _as_txns(history)
    facts = _index(txns, final)
    anomalies = _read_anomalies(facts, final)
    lost = _lost(facts, final) if final is not None else []
    graph = build_graph(facts, realtime)
    anomalies += cycle_anomalies(graph, "realtime" if realtime else "process")
    anomalies += lost
    keys = {k for t in txns for _, k, _ in t.ops} | set(final or {})
    stats = ElleStats(
        ok=sum(t.outcome is OpType.OK for t in txns),
        failed=sum(t.outcome is OpType.FAIL for t in txns),
        unknown=sum(t.outcome is OpType.INFO for t in txns),
        keys=len(keys),
        appends=sum(f == APPEND for t in txns for f, _, _ in t.ops),
        reads=len(facts.reads),
        nodes=len(graph.out),
        edges=graph.size,
    )
    return ElleVerdict(tuple(anomalies), stats, len(lost))


def _as_txns(history: Sequence[Op] | Sequence[Txn]) -> list[Txn]:
    if history and all(isinstance(t, Txn) for t in history):
        return [t for t in history if isinstance(t, Txn)]
    return transactions([op for op in history if isinstance(op, Op)])
