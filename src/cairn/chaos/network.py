"""The two ways a chaos run shapes the network between real nodes.

`NetnsNetwork` (preferred): every node runs in its own network namespace with a veth pair
into a bridge that lives in a clients' namespace; addresses are 10.x.y.z inside those
namespaces only, and every namespace is named with the run's unique prefix and deleted at
the end. Partitions are nftables rules (iptables if nft is missing) inside the node
namespaces, dropping packets by address, so TCP sees a real silent network. Peer traffic
also goes through per-peer proxies living inside each node's namespace (on its own
loopback), which is how delay, loss, stalls and connection resets are made, since this
kernel has no `tc netem`.

`LoopbackNetwork` (fallback, when `ip netns add` is not permitted): nodes listen on
127.0.0.1 and reach each other only through the proxies, which then also make the
partitions (a blocked link reads and sends nothing).

Both expose the same operations: `partition(blocked)` with a set of directed pairs
(a, b) meaning "nothing from a reaches b", `heal()`, and the proxy `mesh` for the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cairn.chaos.proxy import ProxyMesh
from cairn.runtime.local_cluster import free_ports

Address = tuple[str, int]
Pairs = frozenset[tuple[int, int]]

_CLONE_NEWNET = 0x40000000
CLIENT_PORT = 6379
PEER_PORT = 7000


def enter_netns(name: str) -> None:
    """Move the calling thread (only it) into network namespace `name`.

    Sockets the thread creates afterwards belong to that namespace and keep belonging to
    it whatever thread later uses them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def netns_available(probe_name: str) -> str | None:
    """None if this process may create network namespaces, else why not."""
    if shutil.which("ip") is None:
        return "the ip command is not installed"
    try:
        _ip("netns", "add", probe_name)
    except subprocess.CalledProcessError as exc:
        return f"ip netns add failed: {exc.stderr.strip() or exc}"
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("netns", "del", probe_name)
    if shutil.which("nft") is None and shutil.which("iptables") is None:
        return "neither nft nor iptables is installed"
    return None


@dataclass
class LoopbackNetwork:
    """Nodes on 127.0.0.1; proxies make every fault, partitions included."""

    nodes: int
    mesh: ProxyMesh = field(default_factory=ProxyMesh)
    mode = "loopback"
    _ports: list[int] = field(default_factory=list)

    @property
    def description(self) -> str:
        """One line for the output."""
        return "loopback (127.0.0.1): partitions, delay, loss and stalls by per-peer TCP proxies"

    def setup(self) -> None:
        """Choose ports and start one proxy per ordered pair of nodes."""
        self._ports = free_ports(2 * self.nodes)
        for a in range(1, self.nodes + 1):
            for b in range(1, self.nodes + 1):
                if a != b:
                    self.mesh.add(a, b, self.peer_listen(b))

    def client_addr(self, node: int) -> Address:
        """Where node `node` serves clients."""
        return ("127.0.0.1", self._ports[node - 1])

    def peer_listen(self, node: int) -> Address:
        """Where node `node` accepts its peers."""
        return ("127.0.0.1", self._ports[self.nodes + node - 1])

    def peer_address(self, node: int, peer: int) -> Address:
        """The address node `node` dials to reach `peer` (its proxy)."""
        if node == peer:
            return self.peer_listen(node)
        return ("127.0.0.1", self.mesh.proxies[(node, peer)].port)

    def command_prefix(self, node: int) -> list[str]:
        """Nothing: nodes run in this namespace."""
        return []

    def client_thread_init(self) -> Callable[[], None] | None:
        """Nothing: clients run in this namespace."""
        return None

    def partition(self, blocked: Pairs) -> None:
        """Block exactly the directed pairs in `blocked` (and unblock the others)."""
        for (a, b), link in self.mesh.links.items():
            link.blocked = (a, b) in blocked

    def heal(self) -> None:
        """Every link open and perfect."""
        self.mesh.clear()

    def teardown(self) -> None:
        """Close the proxies."""
        self.mesh.close()


@dataclass
class NetnsNetwork:
    """One namespace per node plus the clients' namespace holding the bridge."""

    nodes: int
    prefix: str
    subnet: tuple[int, int]
    """The /24 used, 10.subnet[0].subnet[1].0: .1-.N are nodes, .254 the bridge."""
    mesh: ProxyMesh = field(default_factory=ProxyMesh)
    mode = "netns"
    _created: list[str] = field(default_factory=list)
    _firewall: str = ""

    @property
    def description(self) -> str:
        """One line for the output."""
        net = f"10.{self.subnet[0]}.{self.subnet[1]}.0/24"
        return (
            f"network namespaces {self.prefix}-* ({net}, bridge in {self.client_ns}): "
            f"partitions by {self._firewall or 'nftables'} inside the namespaces; delay, "
            "loss and stalls by per-peer TCP proxies inside each node's namespace"
        )

    @property
    def client_ns(self) -> str:
        """The clients' namespace (it holds the bridge)."""
        return f"{self.prefix}-c"

    def node_ns(self, node: int) -> str:
        """Node `node`'s namespace."""
        return f"{self.prefix}-n{node}"

    def ip(self, node: int) -> str:
        """Node `node`'s address (254: the bridge, i.e. the clients)."""
        return f"10.{self.subnet[0]}.{self.subnet[1]}.{node}"

    def setup(self) -> None:
        """Create the namespaces, the bridge, the veth pairs, the firewall tables and the
        proxies. On any failure, remove what was created and re-raise."""
        try:
            self._create_bridge()
            for node in range(1, self.nodes + 1):
                self._create_node(node)
            self._firewall = "nftables" if shutil.which("nft") else "iptables"
            for node in range(1, self.nodes + 1):
                self._reset_firewall(node)
            for a in range(1, self.nodes + 1):
                for b in range(1, self.nodes + 1):
                    if a != b:
                        init = _enter(self.node_ns(a))
                        self.mesh.add(a, b, (self.ip(b), PEER_PORT), thread_init=init)
        except BaseException:
            self.teardown()
            raise

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _create_bridge(self) -> None:
        ns = self.client_ns
        self._add_ns(ns)
        _ip("-n", ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", ns, "addr", "add", f"{self.ip(254)}/24", "dev", "br0")
        _ip("-n", ns, "link", "set", "br0", "up")

    def _create_node(self, node: int) -> None:
        ns, veth = self.node_ns(node), f"veth{node}"
        self._add_ns(ns)
        _ip("-n", self.client_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
            "netns", ns)  # fmt: skip
        _ip("-n", self.client_ns, "link", "set", veth, "master", "br0")
        _ip("-n", self.client_ns, "link", "set", veth, "up")
        _ip("-n", ns, "addr", "add", f"{self.ip(node)}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")

    def client_addr(self, node: int) -> Address:
        """Where node `node` serves clients (reachable from the clients' namespace)."""
        return (self.ip(node), CLIENT_PORT)

    def peer_listen(self, node: int) -> Address:
        """Where node `node` accepts its peers."""
        return (self.ip(node), PEER_PORT)

    def peer_address(self, node: int, peer: int) -> Address:
        """The address node `node` dials for `peer`: its proxy, on the node's own loopback."""
        if node == peer:
            return self.peer_listen(node)
        return ("127.0.0.1", self.mesh.proxies[(node, peer)].port)

    def command_prefix(self, node: int) -> list[str]:
        """Run the node inside its namespace (`ip netns exec` execs: same PID)."""
        return ["ip", "netns", "exec", self.node_ns(node)]

    def client_thread_init(self) -> Callable[[], None] | None:
        """Enter the clients' namespace."""
        return _enter(self.client_ns)

    def partition(self, blocked: Pairs) -> None:
        """Drop packets of exactly the directed pairs in `blocked`, in both namespaces."""
        for node in range(1, self.nodes + 1):
            outs = [self.ip(b) for a, b in sorted(blocked) if a == node]
            ins = [self.ip(a) for a, b in sorted(blocked) if b == node]
            self._reset_firewall(node)
            self._drop(node, outs, ins)

    def heal(self) -> None:
        """Remove every partition rule and make every proxy link perfect."""
        for node in range(1, self.nodes + 1):
            self._reset_firewall(node)
        self.mesh.clear()

    def _exec(self, node: int, args: list[str], stdin: str | None = None) -> None:
        cmd = ["ip", "netns", "exec", self.node_ns(node), *args]
        subprocess.run(cmd, input=stdin, check=True, capture_output=True, text=True)

    def _reset_firewall(self, node: int) -> None:
        if self._firewall == "nftables":
            rules = (
                "add table inet cairn_chaos\ndelete table inet cairn_chaos\n"
                "table inet cairn_chaos {\n"
                " chain in { type filter hook input priority 0; policy accept; }\n"
                " chain out { type filter hook output priority 0; policy accept; }\n}\n"
            )
            self._exec(node, ["nft", "-f", "-"], rules)
        else:
            self._exec(node, ["iptables", "-F", "INPUT"])
            self._exec(node, ["iptables", "-F", "OUTPUT"])

    def _drop(self, node: int, outs: Iterable[str], ins: Iterable[str]) -> None:
        outs, ins = list(outs), list(ins)
        if self._firewall == "nftables":
            lines = [f"add rule inet cairn_chaos out ip daddr {a} drop" for a in outs]
            lines += [f"add rule inet cairn_chaos in ip saddr {a} drop" for a in ins]
            if lines:
                self._exec(node, ["nft", "-f", "-"], "\n".join(lines) + "\n")
            return
        for a in outs:
            self._exec(node, ["iptables", "-A", "OUTPUT", "-d", a, "-j", "DROP"])
        for a in ins:
            self._exec(node, ["iptables", "-A", "INPUT", "-s", a, "-j", "DROP"])

    def teardown(self) -> None:
        """Close the proxies and delete every namespace this run created (their veths and
        rules go with them)."""
        self.mesh.close()
        for name in reversed(self._created):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", name)
        self._created.clear()


def _enter(name: str) -> Callable[[], None]:
    return lambda: enter_netns(name)


def leftover_namespaces(prefix: str = "cairn-") -> list[str]:
    """Namespaces named like a chaos run's (e.g. left by a run killed with -9)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def python_command() -> list[str]:
    """How to start a `cairn server` with this interpreter."""
    return [sys.executable, "-m", "cairn", "server"]


Network = LoopbackNetwork | NetnsNetwork
