"""The `tso` chaos workload: clients take timestamps from random nodes, checked for
real-time order.

Theory of operation. Each worker thread, in a loop, picks a node at random and takes one
timestamp through its admin API (`POST /v1/tso`, `cairn.admin.tso_api`: what a
transaction's coordinator on that node would get), recording the invocation and the
completion in the run's `History` (`f` "tso", `key` the node, e.g. "n2"; an answer's value
is (ts, the placement leader that node's client believed in)). A request that fails (503:
no timestamp within the node's request timeout; a node down) is FAIL: a timestamp nobody
received promises nothing, so failures need no Jepsen "unknown". An answer that is not
the API's document (no integer `ts` in 1 .. 2**64 - 1) is itself an anomaly.

The check is the oracle's promise (`cairn.check.tso.TsoLog`): every timestamp is strictly
greater than every timestamp whose request completed before this one's was sent, and
none is received twice. The first `EXPLAINED` anomalies are spelled out: which node gave
which timestamp when, against which earlier one, and by how many milliseconds of
physical time it went back. The faults that provoke a backwards oracle are leader changes
of the placement group onto a member whose clock is behind (`cairn.chaos.tso_faults`).
"""

from __future__ import annotations

import http.client
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.admin.client import AdminClient, AdminClientError
from cairn.chaos.workload import CheckResult, Workload, intervals
from cairn.check.history import OpType
from cairn.check.tso import DUPLICATE, TsoAnomaly, TsoLog
from cairn.placement.tso import split

EXPLAINED = 5
"""Anomalies spelled out in the report (the rest are counted)."""
MAX_TS = (1 << 64) - 1
FAIL_PAUSE_S = 0.02
"""A worker's pause after a failed request (no placement leader: do not spin)."""


@dataclass(frozen=True, slots=True)
class Take:
    """One timestamp received: from which node (e.g. "n2"), asked and received when
    (monotonic ns), and the placement leader that node's client believed in."""

    node: str
    start: int
    end: int
    ts: int
    leader: int


@dataclass
class TsoWorkload(Workload):
    """Workers taking timestamps from random nodes' admin APIs (see the module docstring).

    `endpoints` are the nodes' admin addresses in node order (node i + 1 at index i);
    `token` an admin token of the cluster."""

    token: str | None = None
    bad_answers: list[str] = field(default_factory=list)
    """Answers that were not the API's document (each an anomaly)."""
    started: int = 0
    """When the workers started (monotonic ns)."""

    name = "tso"
    reads = frozenset({"tso"})

    def _run(self, worker: int, rng: random.Random) -> None:
        if self.thread_init is not None:
            self.thread_init()
        process = self.history.new_process()
        clients = [self._admin(e) for e in self.endpoints]
        while not self._stop.is_set():
            node = rng.randrange(len(clients))
            if not self._take(process, node + 1, clients[node]):
                time.sleep(FAIL_PAUSE_S)

    def _admin(self, endpoint: tuple[str, int]) -> AdminClient:
        host, port = endpoint
        return AdminClient([f"{host}:{port}"], token=self.token, timeout=self.timeout)

    def _take(self, process: int, node: int, client: AdminClient) -> bool:
        """Take one timestamp from `node`, recorded; whether one came."""
        key = f"n{node}"
        self.history.record(process, OpType.INVOKE, "tso", key, None)
        try:
            doc = client.request("POST", "/v1/tso", {})
        except (AdminClientError, OSError, http.client.HTTPException):
            self.history.record(process, OpType.FAIL, "tso", key, None)
            return False
        value = _timestamp(doc)
        if value is None:
            self.history.record(process, OpType.FAIL, "tso", key, None)
            self.bad_answers.append(f"node {node} answered {str(doc)[:200]!r}")
            return False
        self.history.record(process, OpType.OK, "tso", key, value)
        return True

    def start(self) -> None:
        """Start the workers; the anomalies' times count from here."""
        self.started = time.monotonic_ns()
        super().start()

    def takes(self) -> list[Take]:
        """Every timestamp received, in invocation order."""
        return [
            Take(iv.key, iv.start, iv.end, iv.value[0], iv.value[1])
            for iv in intervals(self.history.snapshot())
            if iv.outcome is OpType.OK and iv.end is not None and isinstance(iv.value, tuple)
        ]

    def check(self, final: object) -> CheckResult:
        """The real-time order of every timestamp received (`final` is not used)."""
        takes = self.takes()
        found = TsoLog([(t.start, t.end, t.ts) for t in takes]).anomalies()
        lines = [f"{len(found)} timestamps out of real-time order or repeated"] if found else []
        lines += [explain(a, takes, self.started) for a in found[:EXPLAINED]]
        lines += [f"answer not a timestamp: {b}" for b in self.bad_answers[:EXPLAINED]]
        details = (
            f"{len(takes)} timestamps from {len({t.node for t in takes})} nodes, served "
            f"through placement leaders {sorted({t.leader for t in takes})}; "
            f"{len(found)} out of order"
        )
        return CheckResult(self.name, not lines, tuple(lines), details=details)

    def final_read(self, client: object) -> object:
        """Nothing to read at the end: the check needs only the history."""
        return None


def _timestamp(doc: object) -> tuple[int, int] | None:
    """(ts, placement leader) of a `POST /v1/tso` answer, None when it is not one."""
    if not isinstance(doc, dict):
        return None
    ts, leader = doc.get("ts"), doc.get("placement_leader", 0)
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 < ts <= MAX_TS:
        return None
    if not isinstance(leader, int) or isinstance(leader, bool):
        leader = 0
    return ts, leader


def explain(anomaly: TsoAnomaly, takes: Sequence[Take], t0: int) -> str:
    """One anomaly in words: the two timestamps, their nodes, times and distance."""
    late, early = takes[anomaly.index], takes[anomaly.earlier]
    what = "repeats" if anomaly.kind == DUPLICATE else "is not above"
    back_ms = split(early.ts)[0] - split(late.ts)[0]
    return (
        f"timestamp {late.ts} from {late.node} (placement leader {late.leader}), asked at "
        f"{_s(late.start, t0)}, {what} {early.ts} from {early.node} (placement leader "
        f"{early.leader}) received at {_s(early.end, t0)}: {back_ms} ms of physical time back"
    )


def _s(ns: int, t0: int) -> str:
    return f"t={(ns - t0) / 1e9:.3f}s"
