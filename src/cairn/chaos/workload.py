"""Jepsen-style client workloads against real nodes, recording `cairn.check` histories.

Every workload is a set of worker threads; each worker is one process at a time, picks a
node, and records every invocation and completion in a `History` (`cairn.check.Op`
events, monotonic nanoseconds). The outcome rules follow what the node's replies promise:

- a reply: OK (for a read, with the value read);
- `-TRYAGAIN`: definitely not applied (FAIL);
- any other error, a timeout or a dropped connection: unknown (INFO) for a write, after
  which the worker continues as a new process (Jepsen's rule); a read that fails is
  simply FAIL (it changed nothing).

Four workloads, each with the check its data type allows:

- `RegisterWorkload`: get, put (SET) and append (APPEND) on a few keys; the history is
  checked for linearizability by `cairn.check`.
- `SetWorkload`: adds of unique elements to one hash (HSET key element 1, Cairn has no
  sets yet) and reads of the whole set (HKEYS). A read must contain every add acknowledged
  before it was invoked and nothing that had not been invoked before it returned; the
  final read must contain every acknowledged add.
- `CounterWorkload`: INCR on one key and reads (GET). A read must lie between the
  increments acknowledged before it started and those invoked before it returned (ok or
  unknown); so must the final value.
- `QueueWorkload`: producers LPUSH unique values on a few list keys, consumers take them
  with BRPOP (short timeout) or RPOP; after the run each list is drained with LRANGE. The
  history and the final lists are checked by `cairn.check.queue`: no value delivered
  twice, nothing delivered that was not sent, no acknowledged value lost, FIFO.
"""

from __future__ import annotations

import random
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cairn.check.history import Op, OpType

Endpoint = tuple[str, int]


@dataclass
class History:
    """A thread-safe, append-only list of events with a monotonic clock."""

    ops: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_process: int = 0

    def record(self, process: int, kind: OpType, f: str, key: str, value: object) -> None:
        """Append one event, timestamped now."""
        with self.lock:
            self.ops.append(Op(process, kind, f, key, value, time.monotonic_ns()))

    def new_process(self) -> int:
        """A process id never used before."""
        with self.lock:
            self._next_process += 1
            return self._next_process

    def snapshot(self) -> list[Op]:
        """A copy of the events so far."""
        with self.lock:
            return list(self.ops)


@dataclass(frozen=True, slots=True)
class Interval:
    """One operation of a history: its invocation paired with its completion.

    `end` is None when the operation never completed (still running when the run ended).
    """

    process: int
    f: str
    key: str
    value: object
    outcome: OpType
    start: int
    end: int | None


def _never_sent(exc: BaseException) -> bool:
    """Whether a client error happened while connecting, before the command was sent
    (a refused or timed-out connect), so the command definitely did not happen."""
    text = str(exc).lower()
    return "connecting to" in text or "timeout connecting" in text


def intervals(ops: Sequence[Op]) -> list[Interval]:
    """Pair every invocation with its process's next completion, in invocation order."""
    open_: dict[int, Op] = {}
    done: list[tuple[int, Interval]] = []
    order: dict[int, int] = {}
    for i, op in enumerate(ops):
        if op.type is OpType.INVOKE:
            open_[op.process] = op
            order[op.process] = i
            continue
        call = open_.pop(op.process, None)
        if call is None:
            continue
        value = op.value if op.type is OpType.OK else call.value
        item = Interval(op.process, call.f, call.key, value, op.type, call.time, op.time)
        done.append((order[op.process], item))
    for process, call in open_.items():
        item = Interval(process, call.f, call.key, call.value, OpType.INFO, call.time, None)
        done.append((order[process], item))
    return [item for _, item in sorted(done, key=lambda pair: pair[0])]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a workload's own check found; `anomalies` are one-line descriptions.

    `lost` counts acknowledged writes missing from the final state, or shown to have
    vanished by later replies (a counter's INCR going back).
    """

    name: str
    ok: bool
    anomalies: tuple[str, ...] = ()
    lost: int = 0
    details: str = ""


@dataclass
class Workload:
    """Worker threads running `_next_op` against `endpoints`; subclasses say what an
    operation is and how it is checked.

    `thread_init` runs first in every worker thread (the chaos runner uses it to move the
    thread into the clients' network namespace).
    """

    endpoints: Sequence[Endpoint]
    workers: int = 6
    password: str | None = None
    timeout: float = 3.0
    seed: int = 0
    history: History = field(default_factory=History)
    thread_init: Callable[[], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    reads = frozenset({"get", "read"})
    """Functions that change nothing, so a failed one is simply FAIL."""
    replies = frozenset({"incr"})
    """Writes whose reply, not their argument, is recorded when they succeed (INCR's new
    value, which the counter check compares across operations)."""

    def start(self) -> None:
        """Start the worker threads."""
        for w in range(self.workers):
            rng = random.Random(self.seed * 1000 + w)
            t = threading.Thread(target=self._run, args=(w, rng), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Ask the workers to finish their current operation and wait for them."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout * 3)

    def client(self, endpoint: Endpoint) -> redis.Redis:
        """A redis-py client of one node, without silent retries (a re-sent APPEND or
        INCR could apply twice behind the history's back)."""
        host, port = endpoint
        return redis.Redis(
            host=host,
            port=port,
            password=self.password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )

    def _run(self, worker: int, rng: random.Random) -> None:
        if self.thread_init is not None:
            self.thread_init()
        process = self.history.new_process()
        client = self.client(rng.choice(list(self.endpoints)))
        n = 0
        while not self._stop.is_set():
            n += 1
            f, key, value = self._next_op(worker, n, rng)
            outcome, broken = self._one(client, process, f, key, value)
            if outcome is OpType.INFO or broken:
                client.close()
                client = self.client(rng.choice(list(self.endpoints)))
                if outcome is OpType.INFO:
                    process = self.history.new_process()
            elif outcome is OpType.FAIL:
                time.sleep(0.01)  # a TRYAGAIN: no leader; do not spin
        client.close()

    def _one(
        self, client: redis.Redis, process: int, f: str, key: str, value: object
    ) -> tuple[OpType, bool]:
        """Run one operation; its outcome and whether the connection broke."""
        h = self.history
        read = f in self.reads
        h.record(process, OpType.INVOKE, f, key, None if read else value)
        try:
            result = self._call(client, f, key, value)
        except redis.ResponseError as exc:
            definite = read or isinstance(exc, redis.exceptions.TryAgainError)
            kind = OpType.FAIL if definite else OpType.INFO
            h.record(process, kind, f, key, None if read else value)
            return kind, False
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            kind = OpType.FAIL if read or _never_sent(exc) else OpType.INFO
            h.record(process, kind, f, key, None if read else value)
            return kind, True
        h.record(process, OpType.OK, f, key, result if read or f in self.replies else value)
        return OpType.OK, False

    def _next_op(self, worker: int, n: int, rng: random.Random) -> tuple[str, str, object]:
        raise NotImplementedError

    def _call(self, client: redis.Redis, f: str, key: str, value: object) -> object:
        raise NotImplementedError

    def check(self, final: object) -> CheckResult:
        """Check the history (and `final`, the value read after the run healed)."""
        raise NotImplementedError

    def final_read(self, client: redis.Redis) -> object:
        """Read the final state the check compares with (None: nothing to read)."""
        return None


@dataclass
class RegisterWorkload(Workload):
    """Concurrent get/put/append on `keys`; checked for linearizability."""

    keys: Sequence[str] = ("r0", "r1", "r2")

    name = "register"

    def _next_op(self, worker: int, n: int, rng: random.Random) -> tuple[str, str, object]:
        key = rng.choice(list(self.keys))
        f = rng.choice(("get", "get", "put", "append"))
        return f, key, None if f == "get" else f"{worker}-{n}"

    def _call(self, client: redis.Redis, f: str, key: str, value: object) -> object:
        if f == "get":
            return client.get(key)
        if f == "put":
            return client.set(key, str(value))
        return client.append(key, str(value))

    def check(self, final: object = None) -> CheckResult:
        """Linearizability of the whole history (per key), by `cairn.check`."""
        from cairn.check.linearizability import check_history

        verdict = check_history(self.history.snapshot())
        detail = f"{verdict.outcome.value}, {verdict.ops_checked} operations checked"
        if verdict.ok:
            return CheckResult(self.name, True, details=detail)
        text = f"key {verdict.key!r}: {verdict.explanation}"
        return CheckResult(self.name, False, (text,), details=detail)


@dataclass
class SetWorkload(Workload):
    """Adds of unique elements to a hash (HSET key element 1) and reads (HKEYS).

    The hash changes every `period` seconds (`set:0`, `set:1`, ...) so reads stay short
    in long runs; each hash is a set of its own, checked alone.
    """

    key: str = "set"
    read_ratio: float = 0.05
    period: float = 10.0
    _origin: float = field(default_factory=time.monotonic)

    name = "set"

    def _next_op(self, worker: int, n: int, rng: random.Random) -> tuple[str, str, object]:
        key = f"{self.key}:{int((time.monotonic() - self._origin) / self.period)}"
        if rng.random() < self.read_ratio:
            return "read", key, None
        return "add", key, f"{worker}-{n}"

    def _call(self, client: redis.Redis, f: str, key: str, value: object) -> object:
        if f == "read":
            return sorted(client.hkeys(key))
        return client.hset(key, str(value), "1")

    def final_read(self, client: redis.Redis) -> object:
        """Every element present after the run, per hash."""
        keys = sorted({op.key for op in self.history.snapshot()})
        return {key: sorted(client.hkeys(key)) for key in keys}

    def check(self, final: object) -> CheckResult:
        """Reads see every earlier acknowledged add and nothing never attempted; the final
        read holds every acknowledged add. Each hash is checked alone."""
        finals = final if isinstance(final, dict) else {}
        by_key: dict[str, list[Interval]] = {}
        for op in intervals(self.history.snapshot()):
            by_key.setdefault(op.key, []).append(op)
        results = [self._check_key(ops, finals.get(k)) for k, ops in sorted(by_key.items())]
        if final is None:
            results.append(CheckResult(self.name, False, ("the final read failed",)))
        anomalies = tuple(a for r in results for a in r.anomalies)
        lost = sum(r.lost for r in results)
        numbers = [0, 0, 0, 0]
        for r in results:
            for i, part in enumerate(r.details.split(",")[:4] if r.details else []):
                numbers[i] += int(part)
        details = (
            f"{numbers[0]} acknowledged adds, {numbers[1]} unknown, {numbers[2]} present at "
            f"the end ({numbers[3]} of the unknown took effect) in {len(by_key)} hashes"
        )
        return CheckResult(self.name, not anomalies, anomalies[:20], lost, details)

    def _check_key(self, ops: list[Interval], final: object) -> CheckResult:
        adds = [op for op in ops if op.f == "add"]
        acked = {str(op.value): op for op in adds if op.outcome is OpType.OK}
        attempted = {str(op.value): op for op in adds if op.outcome is not OpType.FAIL}
        anomalies: list[str] = []
        for read in (op for op in ops if op.f == "read" and op.outcome is OpType.OK):
            anomalies.extend(_set_read_problems(read, acked, attempted))
        present = set(final) if isinstance(final, list) else set()
        lost = sorted(e for e in acked if e not in present)
        unexpected = sorted(e for e in present if e not in attempted)
        if lost:
            anomalies.append(
                f"final read of {ops[0].key} lacks {len(lost)} acknowledged adds, e.g. {lost[:5]}"
            )
        if unexpected:
            anomalies.append(f"final read holds elements never added: {unexpected[:5]}")
        unknown = sum(op.outcome is OpType.INFO for op in adds)
        took = sum(1 for e in present if e not in acked)
        details = f"{len(acked)},{unknown},{len(present)},{took}"
        return CheckResult(self.name, not anomalies, tuple(anomalies[:20]), len(lost), details)


def _set_read_problems(
    read: Interval, acked: dict[str, Interval], attempted: dict[str, Interval]
) -> list[str]:
    seen = set(read.value) if isinstance(read.value, list) else set()
    problems = []
    missing = [e for e, op in acked.items() if op.end is not None and op.end < read.start]
    missing = [e for e in missing if e not in seen]
    if missing:
        problems.append(
            f"a read at {read.start} lacks {len(missing)} adds acknowledged before it, "
            f"e.g. {sorted(missing)[:3]}"
        )
    assert read.end is not None
    end = read.end
    early = [e for e in seen if e not in attempted or attempted[e].start > end]
    if early:
        problems.append(f"a read at {read.start} holds elements not yet added: {early[:3]}")
    return problems


@dataclass
class CounterWorkload(Workload):
    """INCR on `key` and reads (GET); the value must account for every acknowledged
    increment and for no increment that was never sent."""

    key: str = "counter"
    read_ratio: float = 0.2

    name = "counter"

    def _next_op(self, worker: int, n: int, rng: random.Random) -> tuple[str, str, object]:
        if rng.random() < self.read_ratio:
            return "read", self.key, None
        return "incr", self.key, "1"

    def _call(self, client: redis.Redis, f: str, key: str, value: object) -> object:
        if f == "read":
            raw = client.get(key)
            return 0 if raw is None else int(raw)
        return client.incr(key)

    def final_read(self, client: redis.Redis) -> object:
        """The counter's value after the run."""
        raw = client.get(self.key)
        return 0 if raw is None else int(raw)

    def check(self, final: object) -> CheckResult:
        """Every read, and the final value, lies within [acknowledged before, invoked
        before it returned]."""
        ops = intervals(self.history.snapshot())
        incrs = [op for op in ops if op.f == "incr"]
        ok_ends = sorted(op.end for op in incrs if op.outcome is OpType.OK and op.end is not None)
        sent = sorted(op.start for op in incrs if op.outcome is not OpType.FAIL)
        anomalies: list[str] = []
        for read in (op for op in ops if op.f == "read" and op.outcome is OpType.OK):
            assert read.end is not None
            lower = bisect_left(ok_ends, read.start)
            upper = bisect_left(sent, read.end)
            value = int(str(read.value))
            if not lower <= value <= upper:
                anomalies.append(f"a read at {read.start} saw {value}, expected {lower}..{upper}")
        acked, unknown = len(ok_ends), sum(op.outcome is OpType.INFO for op in incrs)
        value = final if isinstance(final, int) else -1
        regressed, regression = _counter_regression(incrs)
        if regression:
            anomalies.append(regression)
        lost = max(acked - value if value >= 0 else 0, regressed)
        if not acked <= value <= acked + unknown:
            anomalies.insert(
                0,
                f"final value {value}, expected {acked}..{acked + unknown} "
                f"({acked} acknowledged, {unknown} unknown increments)",
            )
        details = f"{acked} acknowledged increments, {unknown} unknown, final value {value}"
        return CheckResult(self.name, not anomalies, tuple(anomalies[:20]), lost, details)


def _counter_regression(incrs: list[Interval]) -> tuple[int, str]:
    """The most acknowledged increments that INCR replies show vanished, and a description.

    An INCR that returned `v` proves the counter reached `v`; an INCR invoked after it
    completed that returns `w <= v` proves at least `v - w + 1` acknowledged increments are
    gone. This needs no final read, so a loss is still counted when the cluster cannot
    answer at the end, and it cannot be hidden by increments that failed yet took effect.
    """
    done = sorted(
        (op.end, int(str(op.value)))
        for op in incrs
        if op.outcome is OpType.OK and op.end is not None
    )
    ends = [end for end, _ in done]
    highest = list(accumulate((v for _, v in done), max))
    worst, text = 0, ""
    for op in incrs:
        if op.outcome is not OpType.OK:
            continue
        before = bisect_left(ends, op.start)
        if before == 0:
            continue
        seen, got = highest[before - 1], int(str(op.value))
        if seen - got + 1 > worst:
            worst = seen - got + 1
            text = (
                f"an INCR at {op.start} returned {got} after an INCR acknowledged {seen}: "
                f"at least {worst} acknowledged increments vanished"
            )
    return worst, text


@dataclass
class QueueWorkload(Workload):
    """Producers LPUSH unique values (`worker-n`) on `keys`, consumers BRPOP (waiting at
    most `block` seconds) or, one time in four, RPOP; checked by `cairn.check.queue`.

    Even workers produce, odd workers consume; workers 2k and 2k+1 share the key
    `keys[k % len(keys)]`, one queue per producer group. The keys lie in different slots,
    so a cluster with several regions serves them from several. `block` plus the node's
    request timeout (2 s in chaos runs) stays under the client's `timeout`: a BRPOP whose
    attempt is in flight when its wait ends is answered late, not dropped, and an answer
    the client gave up on would count as unknown.

    Producers rest for the last `rest` seconds of every `period`: the queues empty, the
    consumers wait in BRPOP and the next LPUSH must wake them (the node's wake-up path),
    rather than always finding a backlog.
    """

    keys: Sequence[str] = ("queue:a", "queue:b")
    block: float = 0.5
    rpop_ratio: float = 0.25
    period: float = 5.0
    rest: float = 1.5
    _origin: float = field(default_factory=time.monotonic)

    name = "queue"
    replies = frozenset({"brpop", "rpop"})

    def _next_op(self, worker: int, n: int, rng: random.Random) -> tuple[str, str, object]:
        key = self.keys[(worker // 2) % len(self.keys)]
        if worker % 2 == 0:
            self._rest_if_due()
            return "lpush", key, f"{worker}-{n}"
        return ("rpop" if rng.random() < self.rpop_ratio else "brpop"), key, None

    def _rest_if_due(self) -> None:
        """Sleep out the rest of the period's resting time, if it has begun."""
        into = (time.monotonic() - self._origin) % self.period
        if into >= self.period - self.rest and not self._stop.is_set():
            self._stop.wait(self.period - into)

    def _call(self, client: redis.Redis, f: str, key: str, value: object) -> object:
        if f == "lpush":
            return client.lpush(key, str(value))
        if f == "rpop":
            return client.rpop(key)
        popped = client.brpop([key], timeout=self.block)
        return None if popped is None else popped[1]

    def final_read(self, client: redis.Redis) -> object:
        """What is left in each queue after the run (LRANGE key 0 -1, left to right)."""
        return {key: list(client.lrange(key, 0, -1)) for key in self.keys}

    def check(self, final: object) -> CheckResult:
        """The queue rules of `cairn.check.queue` on the history and the drained lists."""
        from cairn.check.queue import check_queue

        finals = final if isinstance(final, dict) else None
        verdict = check_queue(self.history.snapshot(), finals)
        anomalies = [a.text for a in verdict.anomalies]
        if finals is None:
            anomalies.append("the final drain (LRANGE) failed: losses not checked")
        details = verdict.stats.describe()
        if len(anomalies) > 20:
            details += f"; {len(anomalies)} anomalies in all (20 shown)"
        return CheckResult(
            self.name, not anomalies, tuple(anomalies[:20]), verdict.stats.lost, details
        )
