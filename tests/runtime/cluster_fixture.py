"""Real `cairn server` processes on loopback for the tests of this folder.

Timing is faster than production (elections in a few hundred milliseconds) so failover
tests stay short; every process is stopped by PID when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from cairn.runtime.local_cluster import HOST, LocalCluster

FAST_RAFT = {
    "tick_ms": 10,
    "election_ticks": 30,
    "heartbeat_ticks": 5,
    "max_clock_drift_ticks": 5,
}
LIMITS = {"request_timeout_ms": 3000}


def _table(name: str, values: dict[str, object]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())


@contextmanager
def running_cluster(
    root: Path,
    nodes: int = 3,
    raft: dict[str, object] | None = None,
    limits: dict[str, object] | None = None,
    settings: dict[str, object] | None = None,
    regions: dict[str, object] | None = None,
    **kwargs: object,
) -> Iterator[LocalCluster]:
    """A started cluster with an elected leader; stopped (by PID) on exit. `raft` and
    `limits` override the fast test settings; `settings` adds top-level keys, `regions`
    the `[regions]` table."""
    top = "".join(f"{k} = {v!r}\n" for k, v in (settings or {}).items())
    tables = _table("raft", FAST_RAFT | (raft or {})) + _table("limits", LIMITS | (limits or {}))
    if regions:
        tables += _table("regions", regions)
    extra = top + tables
    cluster = LocalCluster.plan(root, nodes, extra=extra, **kwargs)
    cluster.start()
    try:
        cluster.wait_for_leader()
        yield cluster
    finally:
        cluster.stop()


def client(cluster: LocalCluster, node_id: int, **kwargs: object) -> redis.Redis:
    """A redis-py client of node `node_id`."""
    port = cluster.spec(node_id).client_port
    return redis.Redis(host=HOST, port=port, password=cluster.password, **kwargs)  # type: ignore[arg-type]


def set_until_certain(r: redis.Redis, key: str, value: bytes, attempts: int = 3) -> None:
    """SET `key`, again if the node answers UNCERTAIN: on a loaded machine the fast test
    elections can move a leader under a large write, and a SET is safe to repeat."""
    for attempt in range(attempts):
        try:
            r.set(key, value)
            return
        except redis.ResponseError as exc:
            if not str(exc).startswith("UNCERTAIN") or attempt == attempts - 1:
                raise

