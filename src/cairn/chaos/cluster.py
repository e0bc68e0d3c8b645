"""Real `cairn server` processes for a chaos run, placed on a `Network`.

Like `cairn.runtime.local_cluster.LocalCluster`, but each node's peer addresses are its
proxies and, in namespace mode, the node runs inside its own namespace. Processes are
started, killed (-9), paused (SIGSTOP), resumed and stopped by PID only. Every node runs
with failpoints enabled (`CAIRN_FAILPOINTS` set, empty), so the runner can switch disk
faults and the clock skew on and off through `CAIRN.FAILPOINT` / `CAIRN.CLOCKSKEW`.
Administrative commands go through a small thread pool living in the clients' namespace.

With `admin` set, every node serves its admin API (on its client address's host, with a
dev admin token under `root`) for the region faults, and the cluster is founded with
`regions` regions; the placement driver's own merges are off (`merge_size_bytes = 0`) so
the region count changes only by the faults.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from cairn.chaos.network import Network, python_command
from cairn.runtime.admin_tokens import DEV_TOKENS_FILE, ensure_dev_token
from cairn.runtime.local_cluster import SECRET_FILE, ensure_secret, free_ports

RAFT: dict[str, object] = {
    "tick_ms": 10,
    "election_ticks": 40,
    "heartbeat_ticks": 5,
    "max_clock_drift_ticks": 5,
}
"""Fast elections (400-800 ms) so a short run sees many of them."""
LIMITS: dict[str, object] = {"request_timeout_ms": 2000}
NETNS_ADMIN_PORT = 6390
"""The admin port in namespace mode (each node has its own address there)."""


def _table(name: str, values: dict[str, object]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())


@dataclass
class ChaosCluster:
    """N nodes under `root` on `network`; `env` is added to every node's environment."""

    root: Path
    nodes: int
    network: Network
    env: dict[str, str] = field(default_factory=dict)
    raft: dict[str, object] = field(default_factory=dict)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    paused: set[int] = field(default_factory=set)
    admin_api: bool = False
    """Serve the admin API (the region faults need it)."""
    regions: int = 1
    """Regions the cluster is founded with."""
    admin_token: str | None = None
    """The admin token, once `write_configs` made it (with `admin_api`)."""
    _admin_ports: list[int] = field(default_factory=list)
    _admin: ThreadPoolExecutor | None = None

    @property
    def ids(self) -> list[int]:
        """Every node id, in order."""
        return list(range(1, self.nodes + 1))

    def data_dir(self, node: int) -> Path:
        """Node `node`'s LMDB directory."""
        return self.root / f"node{node}"

    def log_path(self, node: int) -> Path:
        """Node `node`'s stdout and stderr."""
        return self.root / f"node{node}.log"

    def config_path(self, node: int) -> Path:
        """Node `node`'s config file."""
        return self.root / f"node{node}.toml"

    def admin_addr(self, node: int) -> tuple[str, int]:
        """Where node `node` serves its admin API (with `admin_api`)."""
        return self.network.client_addr(node)[0], self._admin_ports[node - 1]

    def _admin_lines(self, node: int) -> str:
        if not self.admin_api:
            return 'admin_addr = "off"\n'  # its port would be one more to partition and free
        host, port = self.admin_addr(node)
        return (
            f'admin_addr = "{host}:{port}"\nadmin_tokens_file = "{self.root / DEV_TOKENS_FILE}"\n'
        )

    def write_configs(self) -> None:
        """One TOML file per node; the `[peers]` table names this node's proxies."""
        self.root.mkdir(parents=True, exist_ok=True)
        secret = ensure_secret(self.root / SECRET_FILE)
        if self.admin_api:
            self.admin_token = ensure_dev_token(self.root)
            netns = self.network.mode == "netns"
            ports = [NETNS_ADMIN_PORT] * self.nodes if netns else free_ports(self.nodes)
            self._admin_ports = ports
        regions = _table("regions", {"merge_size_bytes": 0}) if self.regions > 1 else ""
        for node in self.ids:
            peers = "".join(
                f'{p} = "{":".join(map(str, self.network.peer_address(node, p)))}"\n'
                for p in self.ids
            )
            host, port = self.network.client_addr(node)
            phost, pport = self.network.peer_listen(node)
            text = (
                f'node_id = {node}\ncluster_id = "chaos"\n'
                f'client_addr = "{host}:{port}"\npeer_addr = "{phost}:{pport}"\n'
                f'data_dir = "{self.data_dir(node)}"\nlog_level = "info"\n'
                f'cluster_secret_file = "{secret}"\n'
                f"initial_regions = {self.regions}\n"
                # the clients come from the bridge's address: a private test network
                "protected_mode = false\n"
                + self._admin_lines(node)
                + _table("raft", RAFT | self.raft)
                + _table("limits", LIMITS)
                + regions
                + "[peers]\n"
                + peers
            )
            self.config_path(node).write_text(text)

    # -- processes ------------------------------------------------------------------------

    def start(self, node: int) -> None:
        """Start node `node` unless it is running."""
        if self.running(node):
            return
        cmd = self.network.command_prefix(node) + python_command()
        with self.log_path(node).open("ab") as log:
            self.procs[node] = subprocess.Popen(
                [*cmd, "--config", str(self.config_path(node))],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "CAIRN_FAILPOINTS": "", **self.env},
            )
        self.paused.discard(node)

    def running(self, node: int) -> bool:
        """Whether node `node`'s process is alive (paused counts as alive)."""
        proc = self.procs.get(node)
        return proc is not None and proc.poll() is None

    def exit_code(self, node: int) -> int | None:
        """The exit status of a node that ended, None while it runs (or never ran)."""
        proc = self.procs.get(node)
        return None if proc is None else proc.poll()

    def signal(self, node: int, sig: int) -> None:
        """Send `sig` to node `node` by PID."""
        proc = self.procs.get(node)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)

    def kill(self, node: int) -> None:
        """kill -9 and reap."""
        self.signal(node, signal.SIGKILL)
        proc = self.procs.get(node)
        if proc is not None:
            proc.wait()
        self.paused.discard(node)

    def pause(self, node: int) -> None:
        """SIGSTOP."""
        self.signal(node, signal.SIGSTOP)
        self.paused.add(node)

    def resume(self, node: int) -> None:
        """SIGCONT."""
        self.signal(node, signal.SIGCONT)
        self.paused.discard(node)

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGCONT + SIGTERM every node, then SIGKILL what outlives `timeout`."""
        for node in self.ids:
            self.resume(node)
            self.signal(node, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in self.ids:
            proc = self.procs.get(node)
            if proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                self.kill(node)

    # -- administration -------------------------------------------------------------------

    def admin(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run `fn` on the admin thread pool (in the clients' namespace)."""
        if self._admin is None:
            init = self.network.client_thread_init()
            self._admin = ThreadPoolExecutor(4, initializer=init) if init else ThreadPoolExecutor(4)
        return self._admin.submit(fn).result(timeout)

    def command(self, node: int, *args: str, timeout: float = 2.0) -> Any:
        """Run one command on node `node`; raises `redis.RedisError` on failure."""
        host, port = self.network.client_addr(node)

        def run() -> Any:
            client = redis.Redis(
                host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                decode_responses=True,
            )  # fmt: skip
            with client:
                return client.execute_command(*args)  # type: ignore[no-untyped-call]

        return self.admin(run, timeout + 5)

    def raft_info(self, node: int) -> dict[str, Any] | None:
        """Node `node`'s INFO raft section, None if it does not answer."""
        if not self.running(node) or node in self.paused:
            return None
        host, port = self.network.client_addr(node)

        def run() -> dict[str, Any]:
            client = redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1)
            with client:
                return dict(client.info("raft"))

        try:
            info: dict[str, Any] = self.admin(run)
        except (redis.RedisError, OSError, TimeoutError):
            return None
        return info

    def leader(self) -> int | None:
        """The leader of the lowest region whose leader is agreed: the node most answering
        nodes name for it that names itself too (a majority of the nodes must answer), or
        None. Once the placement driver has moved replicas, nodes host different regions,
        and a removed or merged-away replica not yet destroyed may name an old leader or
        none: it is outvoted, or its region is passed over for the next."""
        views = {n: self.region_leaders(n) for n in self.ids}
        answered = {n: v for n, v in views.items() if v is not None}
        if len(answered) <= self.nodes // 2:
            return None
        for region in sorted({r for v in answered.values() for r in v}):
            claims = Counter(v[region] for v in answered.values() if v.get(region))
            for leader, _ in claims.most_common():
                own = answered.get(leader) or {}
                if own.get(region) == leader and self.running(leader):
                    return None if leader in self.paused else leader
        return None

    def wait_for_leader(self, timeout: float = 30.0) -> int | None:
        """Block until the nodes agree on a leader; its id, None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.2)
        return None

    def region_leaders(self, node: int) -> dict[int, int] | None:
        """Region id -> leader node (0: unknown) of every region node `node` hosts (None
        when it does not answer)."""
        info = self.raft_info(node)
        return None if info is None else _region_leaders(info)

    def close(self) -> None:
        """Stop every node and the admin pool."""
        self.stop_all()
        if self._admin is not None:
            self._admin.shutdown(wait=False, cancel_futures=True)
            self._admin = None


def _region_leaders(info: dict[str, Any]) -> dict[int, int]:
    """Region id -> leader node from an INFO raft section (its `raft_region<id>` lines)."""
    out = {}
    for key, value in info.items():
        suffix = key[len("raft_region") :]
        if key.startswith("raft_region") and suffix.isdigit():
            leader = value.get("leader", 0) if isinstance(value, dict) else 0
            out[int(suffix)] = int(leader)
    return out
