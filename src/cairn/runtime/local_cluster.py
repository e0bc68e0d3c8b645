"""A cluster of real `cairn server` processes on one machine (loopback only).

Used by `cairn dev`, by the real-process tests and by the chaos runner: it writes each
node's config, starts nodes as child processes, and stops, kills (-9), pauses (SIGSTOP)
and restarts them by PID. Nothing here is simulated.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.runtime.admin_tokens import DEV_TOKENS_FILE, ensure_dev_token

if TYPE_CHECKING:
    from redis import Redis

    from cairn.runtime.dev_certs import DevCerts

HOST = "127.0.0.1"
SECRET_FILE = "cluster.secret"
TLS_DIR = "tls"
"""Where a cluster with `tls` keeps its throwaway CA and certificates, under its root."""
"""The cluster secret every node of a local cluster reads, under its root (mode 0600)."""


def ensure_secret(path: Path) -> Path:
    """Create `path` holding a fresh random cluster secret (mode 0600) unless it exists,
    so a restarted local cluster keeps its secret; `path`."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Where one node listens and keeps its data."""

    node_id: int
    client_port: int
    peer_port: int
    data_dir: Path
    admin_port: int | None = None
    """The admin API's port (None: not served)."""
    tls_port: int | None = None
    """The TLS client port (None: no TLS; the admin API then serves plain HTTP)."""

    @property
    def config_path(self) -> Path:
        """This node's generated config file (beside its data directory)."""
        return self.data_dir.parent / f"node{self.node_id}.toml"

    @property
    def log_path(self) -> Path:
        """Where this node's stdout and stderr go."""
        return self.data_dir.parent / f"node{self.node_id}.log"


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


PASSWORD_FILE = "password"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by the owner only (0600), from the
    first byte: a config may hold secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _without_password(env: os._Environ[str]) -> dict[str, str]:
    """The environment minus CAIRN_PASSWORD: the nodes read the password file instead."""
    return {k: v for k, v in env.items() if k != "CAIRN_PASSWORD"}


@dataclass
class LocalCluster:
    """N nodes under `root`; `client_ports[i]` serves node i+1.

    `extra` is appended to every node's config (e.g. a `[raft]` table for faster tests).
    """

    root: Path
    specs: list[NodeSpec]
    password: str | None = None
    extra: str = ""
    cluster_id: str = "dev"
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables of every node process (e.g. CAIRN_FAILPOINTS)."""
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    node_settings: dict[int, str] = field(default_factory=dict)
    """Top-level TOML lines for one node only (e.g. its `labels`), by node id."""
    joins: dict[int, int] = field(default_factory=dict)
    """Nodes added after the founding (`add_node`): node id -> the node it joined through."""
    admin_token: str | None = None
    """An admin token of the nodes' admin API (`cairn.runtime.admin_tokens.ensure_dev_token`: in
    `root/admin.token`, where `cairn ctl` finds it), set by `write_configs`."""
    tls_auth_clients: str = "optional"
    """`tls_auth_clients` of the nodes that have a `tls_port` ("yes", "optional", "no")."""
    peer_tls: bool = True
    """When some node has a `tls_port`: every node's peer port speaks mutual TLS too, each
    with its own certificate naming its node id (`peer_tls = true`)."""

    @property
    def secret_path(self) -> Path:
        """The file holding the cluster secret every node reads (`ensure_secret`)."""
        return self.root / SECRET_FILE

    @property
    def certs(self) -> DevCerts:
        """The throwaway CA and certificates of TLS nodes (`cairn.runtime.dev_certs`)."""
        from cairn.runtime.dev_certs import DevCerts

        return DevCerts(self.root / TLS_DIR)

    @classmethod
    def plan(
        cls,
        root: Path,
        nodes: int,
        client_ports: list[int] | None = None,
        peer_ports: list[int] | None = None,
        admin_ports: list[int] | None = None,
        *,
        tls: bool | list[int] = False,
        **kwargs: object,
    ) -> LocalCluster:
        """A cluster of `nodes` nodes; ports are chosen free when not given. `tls`: every
        node also serves TLS clients (on these ports, or free ones when True), with
        certificates of a throwaway CA generated under `root/tls`."""
        given = client_ports is not None and peer_ports is not None and admin_ports is not None
        ports = [] if given else free_ports(3 * nodes)
        clients = client_ports or ports[:nodes]
        peers = peer_ports or ports[nodes : 2 * nodes]
        admins = admin_ports or ports[2 * nodes :]
        tls_ports: list[int | None] = [None] * nodes
        if tls:
            tls_ports = list(tls) if isinstance(tls, list) else list(free_ports(nodes))
        root = root.resolve()
        specs = [
            NodeSpec(i + 1, clients[i], peers[i], root / f"node{i + 1}", admins[i], tls_ports[i])
            for i in range(nodes)
        ]
        return cls(root=root, specs=specs, **kwargs)  # type: ignore[arg-type]

    def spec(self, node_id: int) -> NodeSpec:
        """The spec of node `node_id`."""
        return self.specs[node_id - 1]

    def write_configs(self) -> None:
        """Write every node's TOML config."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.admin_token is None and any(n.admin_port is not None for n in self.specs):
            self.admin_token = ensure_dev_token(self.root)
        ensure_secret(self.secret_path)
        if self.tls:
            from cairn.runtime.dev_certs import ensure_dev_certs

            ensure_dev_certs(self.certs.directory, [n.node_id for n in self.specs])
        founders = [n for n in self.specs if n.node_id not in self.joins]
        peers = "".join(f'{n.node_id} = "{HOST}:{n.peer_port}"\n' for n in founders)
        for n in self.specs:
            lines = [
                f"node_id = {n.node_id}",
                f'cluster_id = "{self.cluster_id}"',
                f'client_addr = "{HOST}:{n.client_port}"',
                f'peer_addr = "{HOST}:{n.peer_port}"',
                f'data_dir = "{n.data_dir}"',
                f'cluster_secret_file = "{self.secret_path}"',
                "admin_addr = " + ('"off"' if n.admin_port is None else f'"{HOST}:{n.admin_port}"'),
            ]
            if self.admin_token is not None:
                lines.append(f'admin_tokens_file = "{self.root / DEV_TOKENS_FILE}"')
            if self.password:
                lines.append(f'password_file = "{self._password_file()}"')
            if self.tls:
                lines += self._tls_lines(n)
            if n.node_id in self.node_settings:
                lines.append(self.node_settings[n.node_id].strip())
            mine = peers
            if n.node_id in self.joins:
                lines.append(f'join = "{HOST}:{self.spec(self.joins[n.node_id]).peer_port}"')
                mine = f'{n.node_id} = "{HOST}:{n.peer_port}"\n'
            text = "\n".join(lines) + "\n" + self.extra.strip() + "\n[peers]\n" + mine
            write_private(n.config_path, text)

    def _password_file(self) -> Path:
        """The clients' password in `root/password` (mode 0600), named by every config,
        so it is never on a node's command line."""
        assert self.password is not None
        path = self.root / PASSWORD_FILE
        write_private(path, self.password + "\n")
        return path

    @property
    def tls(self) -> bool:
        """Whether the cluster uses TLS (some node serves TLS clients)."""
        return any(n.tls_port is not None for n in self.specs)

    def _tls_lines(self, n: NodeSpec) -> list[str]:
        """A node's TLS keys: its client TLS port (when it has one), and peer mTLS."""
        certs = self.certs
        files = [
            f'cert_file = "{certs.node_cert(n.node_id)}"',
            f'key_file = "{certs.node_key(n.node_id)}"',
            f'ca_cert_file = "{certs.ca_cert}"',
        ]
        lines = []
        if n.tls_port is not None:
            lines += [f'tls_addr = "{HOST}:{n.tls_port}"', *(f"tls_{f}" for f in files)]
            lines.append(f'tls_auth_clients = "{self.tls_auth_clients}"')
        if self.peer_tls:
            lines.append("peer_tls = true")
            if n.tls_port is None:  # else the tls_* files serve the peer port too
                lines += [f"peer_tls_{f}" for f in files]
        return lines

    def add_node(self, via: int) -> int:
        """Plan, configure and start a new node that joins the cluster through node `via`
        (an empty data directory and `join`, no founding); its id."""
        node_id = len(self.specs) + 1
        client, peer, admin = free_ports(3)
        self.specs.append(NodeSpec(node_id, client, peer, self.root / f"node{node_id}", admin))
        self.joins[node_id] = via
        self.write_configs()
        self.start(node_id)
        return node_id

    def start(self, node_id: int | None = None) -> None:
        """Start one node, or every node not running."""
        if node_id is None:
            self.write_configs()
            for n in self.specs:
                self.start(n.node_id)
            return
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            return
        n = self.spec(node_id)
        log = n.log_path.open("ab")
        self.procs[node_id] = subprocess.Popen(
            [sys.executable, "-m", "cairn", "server", "--config", str(n.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**_without_password(os.environ), **self.env},
        )
        log.close()

    def running(self, node_id: int) -> bool:
        """Whether node `node_id`'s process is alive."""
        proc = self.procs.get(node_id)
        return proc is not None and proc.poll() is None

    def signal(self, node_id: int, sig: int) -> None:
        """Send a signal to a node's process by PID."""
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)

    def kill(self, node_id: int) -> None:
        """kill -9 a node and reap it."""
        self.signal(node_id, signal.SIGKILL)
        proc = self.procs.get(node_id)
        if proc is not None:
            proc.wait()

    def stop(self, node_id: int | None = None, timeout: float = 15.0) -> None:
        """SIGTERM (graceful) one node or all, then SIGKILL whatever outlives `timeout`."""
        ids = [node_id] if node_id is not None else [n.node_id for n in self.specs]
        for i in ids:
            self.signal(i, signal.SIGCONT)
            self.signal(i, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for i in ids:
            proc = self.procs.get(i)
            if proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                self.kill(i)

    def leader(self) -> int | None:
        """The leader of the lowest region, as every running node hosting it agrees, if
        it runs (None: no agreement yet, or a node cannot be asked). Once the placement
        driver has moved replicas, nodes host different regions: only those hosting the
        lowest one are asked about it."""
        seen = [self.region_leaders_seen_by(n.node_id) for n in self.specs]
        views = [v for n, v in zip(self.specs, seen, strict=True) if self.running(n.node_id)]
        if not views or any(v is None for v in views):
            return None
        hosted = [v for v in views if v]
        if not hosted:
            return None
        lowest = min(min(v) for v in hosted)
        agreed = {v[lowest] for v in hosted if lowest in v}
        if len(agreed) == 1:
            leader = agreed.pop()
            if leader and self.running(leader):
                return leader
        return None

    def leader_seen_by(self, node_id: int) -> int | None:
        """The leader of the lowest region node `node_id` hosts (INFO raft), None if
        unknown/unreachable."""
        leaders = self.region_leaders_seen_by(node_id)
        if not leaders:
            return None
        return leaders[min(leaders)] or None

    def region_leaders_seen_by(self, node_id: int) -> dict[int, int] | None:
        """Region id -> the leader node (0: unknown) of every region node `node_id` hosts
        (INFO raft); None if it cannot be asked."""
        import redis

        try:
            with self._client(node_id) as client:
                info = client.info("raft")
        except redis.RedisError:
            return None
        out = {}
        for key, value in info.items():
            if key.startswith("raft_region") and key[len("raft_region") :].isdigit():
                leader = value.get("leader", 0) if isinstance(value, dict) else 0
                out[int(key[len("raft_region") :])] = int(leader)
        return out

    def _client(self, node_id: int) -> Redis:
        """A redis-py client of node `node_id` with a short timeout (for polling it)."""
        import redis

        port = self.spec(node_id).client_port
        return redis.Redis(host=HOST, port=port, password=self.password, socket_timeout=1.0)

    def wait_serving(self, node_id: int, timeout: float = 30.0) -> None:
        """Block until node `node_id` answers PING on its client port (a node just started
        takes a moment to listen, longer on a loaded machine)."""
        import redis

        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._client(node_id) as client:
                    client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_for_leader(self, timeout: float = 30.0) -> int:
        """Block until the running nodes agree on a leader; its id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            dead = [i for i, p in self.procs.items() if p.poll() is not None]
            if dead and len(dead) == len(self.procs):
                raise RuntimeError(f"every node exited; logs in {self.root}")
            time.sleep(0.1)
        raise TimeoutError(f"no leader within {timeout} s; logs in {self.root}")
