"""Placement faults: leader changes of the placement group onto a member whose clock is
behind, the moment a timestamp oracle without a saved bound would go backwards.

Theory of operation. The placement group's leader runs the timestamp oracle
(`cairn.placement.tso`), whose physical time is its node's wall clock as skewed by the
chaos clock fault (`cairn.runtime.tso_wiring.skewed_wall_ms`). A correct oracle never
goes backwards when the leadership moves to a member whose clock is behind: the new
leader starts above the bound its predecessors saved. The planted bug `tso-backwards`
starts from the new leader's own clock; these faults make that clock late, then move the
leadership onto it:

1. The leader is found: the placement leader most nodes' TSO clients name (`POST /v1/tso`
   on each node through the admin API; the `tso` workload keeps them fresh).
2. The members that may lead next get a NEGATIVE clock skew (`CAIRN.CLOCKSKEW`, as the
   clock fault sets it) of `LAG_RATE` for `LAG_WINDOW_S`, then 0 again: each is left
   1-1.5 s behind, for good (the rate changes, the clock never jumps back). Only the
   members that do not lead are slowed, and their rate is 0 again before the leadership
   moves, so no node ever leads on a slow clock (a slow leader would hold its Raft lease
   too long); a slow follower merely waits longer before it campaigns.
3. The change: `placement-transfer` asks the leader to hand over to one slowed member
   (`POST /v1/placement/transfer-leader`: the group is leaderless for a round trip, so
   even a small lag shows); `placement-kill` kills the leader with -9 (both other members
   slowed: either may win the election) and restarts it after the planned duration.
4. The record names the old leader, the lag given, and the leader afterwards.

Nothing here judges: the `tso` workload's check does (`cairn.chaos.tso_workload`).
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections import Counter
from collections.abc import Callable
from random import Random
from typing import Any

import redis

from cairn.admin.client import AdminClient, AdminClientError
from cairn.chaos.cluster import ChaosCluster
from cairn.chaos.faults import LAG_WINDOW_S, FaultKind, FaultRecord, Planned

LAG_RATE = (-0.75, -0.5)
"""The skew rates given to the next leader's clock for `LAG_WINDOW_S` (1-1.5 s late: more
than an election takes after a kill, 0.5-1 s with the chaos cluster's Raft timing)."""
PLACEMENT_MEMBERS = 3
"""The placement group: the first 3 founding nodes (`placement_members`' default)."""


class PlacementFaults:
    """The placement faults of one run, over `cluster` (see the module docstring)."""

    def __init__(self, cluster: ChaosCluster, rng: Random) -> None:
        self.cluster = cluster
        self.rng = rng

    def handler(self, kind: FaultKind) -> Callable[[Planned, FaultRecord], None]:
        """The function injecting `kind`."""
        if kind is FaultKind.PLACEMENT_KILL:
            return self.kill
        return self.transfer

    def members(self) -> list[int]:
        """The placement group's members that run (and are not paused)."""
        ids = self.cluster.ids[:PLACEMENT_MEMBERS]
        return [n for n in ids if self.cluster.running(n) and n not in self.cluster.paused]

    def _client(self, nodes: list[int]) -> AdminClient:
        endpoints = [":".join(map(str, self.cluster.admin_addr(n))) for n in nodes]
        return AdminClient(endpoints, token=self.cluster.admin_token, timeout=3.0)

    def call(self, nodes: list[int], path: str, body: dict[str, Any]) -> Any:
        """POST `path` to the first of `nodes` that answers, from the clients' namespace."""
        client = self._client(nodes)
        return self.cluster.admin(lambda: client.request("POST", path, body), timeout=30)

    def leader(self) -> int | None:
        """The placement leader most running nodes' TSO clients name, or None."""
        named: Counter[int] = Counter()
        for node in self.cluster.ids:
            if not self.cluster.running(node) or node in self.cluster.paused:
                continue
            with contextlib.suppress(AdminClientError, OSError, http.client.HTTPException):
                doc = self.call([node], "/v1/tso", {})
                leader = doc.get("placement_leader") if isinstance(doc, dict) else None
                if isinstance(leader, int) and leader in self.members():
                    named[leader] += 1
        return named.most_common(1)[0][0] if named else None

    def lag(self, nodes: list[int], r: FaultRecord) -> str:
        """Run `nodes`' clocks slow for `LAG_WINDOW_S`, then at the normal rate again."""
        rate = self.rng.uniform(*LAG_RATE)
        slowed = []
        for node in nodes:
            try:
                self.cluster.command(node, "CAIRN.CLOCKSKEW", f"{rate:.4f}")
                slowed.append(node)
            except (redis.RedisError, TimeoutError) as exc:
                r.notes.append(f"could not skew node {node}'s clock: {exc}")
        time.sleep(LAG_WINDOW_S)
        for node in slowed:
            with contextlib.suppress(redis.RedisError, TimeoutError):
                self.cluster.command(node, "CAIRN.CLOCKSKEW", "0")
        late = -rate * LAG_WINDOW_S
        names = ", ".join(map(str, slowed)) or "-"
        return f"node{'s' if len(slowed) > 1 else ''} {names} set {late:.2f}s behind"

    def transfer(self, p: Planned, r: FaultRecord) -> None:
        """Slow one other member's clock, then hand it the leadership."""
        old = self.leader()
        others = [n for n in self.members() if n != old]
        if old is None or not others:
            r.target, r.outcome = "-", "refused"
            r.notes.append(f"no placement leader found, or no other member up ({others})")
            return
        to = self.rng.choice(others)
        r.target = f"placement {old}->{to}"
        lagged = self.lag([to], r)
        try:
            doc = self.call(self.members(), "/v1/placement/transfer-leader", {"to": to})
            moved = isinstance(doc, dict) and doc.get("moved") is True
            r.outcome = "succeeded" if moved else "not-moved"
        except (AdminClientError, http.client.HTTPException) as exc:
            r.notes.append(f"transfer refused: {exc}")
            r.outcome = "refused"
        time.sleep(p.duration)
        r.detail = f"{lagged}; transfer {r.outcome}; leader now {self.leader()}"

    def kill(self, p: Planned, r: FaultRecord) -> None:
        """Slow the other members' clocks, kill -9 the leader, restart it later."""
        old = self.leader()
        if old is None:
            r.target, r.outcome = "-", "refused"
            r.notes.append("no placement leader found")
            return
        r.target = f"placement leader {old}"
        lagged = self.lag([n for n in self.members() if n != old], r)
        self.cluster.kill(old)
        time.sleep(p.duration)
        self.cluster.start(old)
        r.detail = f"{lagged}; kill -9, restarted after {p.duration:.1f}s; leader {self.leader()}"
