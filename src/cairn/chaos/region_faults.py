"""Region faults: splits, merges, replica moves, leader transfers and drains, mid-run.

Theory of operation. Each fault asks the placement driver for one operator through the
cluster's admin API (`cairn.admin.region_actions`), exactly as `cairn ctl region ...`
does, with the cluster's admin token; the request goes to whichever node answers (a node
that does not lead the placement group answers 503 and the client moves on). The region,
nodes and leader are chosen at random (from the run's seeded source) among those the
request can apply to, as the driver shows them then; a refusal (the region became busy,
a node is down) is retried on another choice a few times. The fault then waits for the
operator to end, at most its planned duration or `MIN_WAIT_S` if longer (on a loaded
machine a snapshot can take seconds; the schedule's next fault then starts late rather than
this one being cut short), and records how it ended as the record's
`outcome`: `succeeded`, `cancelled`, `timed-out`, or `running` when the wait ran out (the
operator goes on; the run does not depend on it). A drain waits until the node holds no
replica, then undrains it (the undrain is sent whatever happened).

Nothing here judges safety: the workloads' checks do. A region fault is a way to make the
data move under the clients, and its record says what moved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from random import Random
from typing import Any

from cairn.admin.client import AdminClient, AdminClientError, ApiError
from cairn.admin.views import NodeStatus, RegionView
from cairn.chaos.cluster import ChaosCluster
from cairn.chaos.faults import FaultKind, FaultRecord, Planned

ATTEMPTS = 4
"""Choices tried before a fault is recorded as refused."""
POLL_S = 0.25
MIN_WAIT_S = 20.0
"""The least time a region fault waits for its operator (a merge takes 3-5 s on an idle
machine, over 10 s on a loaded one)."""
MAX_REGIONS = 12
"""No split beyond this many regions (the run should stay small)."""

Request = tuple[str, dict[str, Any], str]
"""(path, body, target description) of one operator request."""


class RegionFaults:
    """The region faults of one run, over `cluster`'s admin API (see the module doc)."""

    def __init__(self, cluster: ChaosCluster, rng: Random) -> None:
        self.cluster = cluster
        self.rng = rng

    def client(self) -> AdminClient:
        """A client trying every node's admin API, from a random one."""
        endpoints = [":".join(map(str, self.cluster.admin_addr(n))) for n in self.cluster.ids]
        start = self.rng.randrange(len(endpoints))
        ordered = endpoints[start:] + endpoints[:start]
        return AdminClient(ordered, token=self.cluster.admin_token, timeout=2.0)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One admin API call from the clients' namespace."""
        client = self.client()
        return self.cluster.admin(lambda: client.request(method, path, body), timeout=30)

    def regions(self) -> list[RegionView]:
        """The regions as the placement driver shows them."""
        client = self.client()
        found: tuple[RegionView, ...] = self.cluster.admin(client.regions, timeout=30)
        return list(found)

    def up_nodes(self) -> list[int]:
        """Nodes the driver sees up (and the runner has not paused or stopped)."""
        client = self.client()
        nodes = self.cluster.admin(client.nodes, timeout=30)
        return [
            n.id
            for n in nodes
            if n.status is NodeStatus.UP
            and self.cluster.running(n.id)
            and n.id not in self.cluster.paused
        ]

    def handler(self, kind: FaultKind) -> Callable[[Planned, FaultRecord], None]:
        """The function injecting `kind`."""
        choose: dict[FaultKind, Callable[[], Request | None]] = {
            FaultKind.SPLIT: self._choose_split,
            FaultKind.MERGE: self._choose_merge,
            FaultKind.MOVE: self._choose_move,
            FaultKind.TRANSFER: self._choose_transfer,
        }
        if kind is FaultKind.DRAIN:
            return self.drain
        return lambda p, r: self._operator_fault(p, r, choose[kind])

    # -- choices ----------------------------------------------------------------------------

    def _idle(self) -> list[RegionView]:
        return [r for r in self.regions() if r.operator is None and r.leader is not None]

    def _choose_split(self) -> Request | None:
        regions = self.regions()
        idle = [r for r in regions if r.operator is None and r.leader is not None]
        if len(regions) >= MAX_REGIONS or not idle:
            return None
        region = self.rng.choice(idle)
        return f"/v1/regions/{region.id}/split", {"reason": "chaos"}, f"region {region.id}"

    def _choose_merge(self) -> Request | None:
        regions = self.regions()
        if len(regions) < 2:
            return None
        ends = {r.start: r for r in regions}
        pairs = [
            (r, ends[r.end])
            for r in regions
            if r.end and r.end in ends and r.operator is None and ends[r.end].operator is None
        ]
        if not pairs:
            return None
        left, right = self.rng.choice(pairs)
        body = {"into": right.id, "reason": "chaos"}
        return f"/v1/regions/{left.id}/merge", body, f"region {left.id} into {right.id}"

    def _choose_move(self) -> Request | None:
        idle, up = self._idle(), self.up_nodes()
        self.rng.shuffle(idle)
        for region in idle:
            holders = [p.node_id for p in region.peers]
            free = [n for n in up if n not in holders]
            if free:
                src, dst = self.rng.choice(holders), self.rng.choice(free)
                body = {"from": src, "to": dst, "reason": "chaos"}
                return f"/v1/regions/{region.id}/move", body, f"region {region.id} {src}->{dst}"
        return None

    def _choose_transfer(self) -> Request | None:
        idle, up = self._idle(), self.up_nodes()
        self.rng.shuffle(idle)
        for region in idle:
            voters = [
                p.node_id for p in region.peers if p.role == "voter" and p.node_id != region.leader
            ]
            voters = [n for n in voters if n in up]
            if voters:
                dst = self.rng.choice(voters)
                path = f"/v1/regions/{region.id}/transfer-leader"
                target = f"region {region.id} {region.leader}->{dst}"
                return path, {"to": dst, "reason": "chaos"}, target
        return None

    # -- injecting --------------------------------------------------------------------------

    def _operator_fault(
        self, p: Planned, r: FaultRecord, choose: Callable[[], Request | None]
    ) -> None:
        refusals = []
        for _ in range(ATTEMPTS):
            request = choose()
            if request is None:
                refusals.append("nothing to apply it to")
                time.sleep(0.5)
                continue
            path, body, r.target = request
            try:
                doc = self.call("POST", path, body)
            except ApiError as exc:
                refusals.append(exc.message)
                time.sleep(0.3)
                continue
            operator = doc["operator"]
            bound = max(p.duration, MIN_WAIT_S)
            r.outcome, took = self.wait_operator(int(operator["id"]), bound)
            r.detail = f"#{operator['id']} {r.outcome} after {took:.1f}s: {operator['description']}"
            return
        r.outcome = "refused"
        r.detail = "; ".join(refusals[-2:])
        r.notes.append(f"refused {ATTEMPTS} times: {r.detail}")

    def wait_operator(self, operator_id: int, bound: float) -> tuple[str, float]:
        """(how operator `operator_id` ended, or `running`; seconds waited)."""
        start = time.monotonic()
        status = "running"
        while time.monotonic() - start < bound:
            try:
                status = str(self.call("GET", f"/v1/operators/{operator_id}")["status"])
            except AdminClientError:
                status = "running"  # no placement leader right now: ask again
            if status != "running":
                break
            time.sleep(POLL_S)
        return status, time.monotonic() - start

    def drain(self, p: Planned, r: FaultRecord) -> None:
        """Drain a node, wait (bounded) until it holds nothing, undrain it."""
        up = self.up_nodes()
        if len(up) < 4:  # a 3-replica region needs 3 other nodes to go to
            r.target, r.outcome = "-", "refused"
            r.notes.append(f"only {len(up)} nodes up: nowhere to drain to")
            return
        node = self.rng.choice(up)
        r.target = f"node {node}"
        start = time.monotonic()
        try:
            self.call("POST", f"/v1/nodes/{node}/drain", {"reason": "chaos"})
            r.outcome = self._wait_drained(node, max(p.duration, MIN_WAIT_S))
        finally:
            self._undrain(node, r)
        took = time.monotonic() - start
        r.detail = f"{r.outcome} after {took:.1f}s, then undrained"

    def _wait_drained(self, node: int, bound: float) -> str:
        start = time.monotonic()
        while time.monotonic() - start < bound:
            try:
                if not any(p.node_id == node for g in self.regions() for p in g.peers):
                    return "succeeded"
            except AdminClientError:
                pass
            time.sleep(POLL_S)
        return "running"

    def _undrain(self, node: int, r: FaultRecord) -> None:
        deadline = time.monotonic() + 15
        while True:
            try:
                self.call("POST", f"/v1/nodes/{node}/undrain", {"reason": "chaos"})
                return
            except AdminClientError as exc:
                if time.monotonic() > deadline:
                    r.notes.append(f"could not undrain node {node}: {exc}")
                    return
                time.sleep(0.5)
