"""`cairn dev`: a local cluster of `cairn server` processes on 127.0.0.1, in one command.

Each node is a real child process with its own data directory and config file, all
reading one cluster secret (peer port authentication) generated into the data directory
with mode 0600; the admin API's tokens file, and an admin token (`admin.token`, where
`cairn ctl` looks by default), are created there too on the first run and kept. The
command waits until a leader is elected (with a live progress line), says where the data
is and how to connect, and on Ctrl-C (or SIGTERM) stops every node gracefully, by PID.
A node that exits (kill -9 included) is reported with its exit status and the end of its
log while the others keep serving; `cairn ctl node start N` starts it again under the same
supervisor (`cairn.cli.dev_supervisor`).

With `--tls` every node also serves TLS clients on its client port + `TLS_PORT_OFFSET`,
and its admin API speaks HTTPS, with certificates of a throwaway CA generated into
`DATA_DIR/tls` (`cairn.runtime.dev_certs`; keys mode 0600, kept across runs). Client certificates
are optional (`tls_auth_clients = "optional"`): `redis-cli --tls --cacert` works alone,
and with the generated `client.crt`/`client.key` too. The peer ports speak mutual TLS
(`peer_tls = true`), each node with its own certificate naming its node id.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from cairn.cli.dev_supervisor import DevControlError, Supervisor
from cairn.runtime.admin_tokens import DEV_TOKEN_FILE, DEV_TOKENS_FILE
from cairn.runtime.config import ADMIN_PORT_OFFSET
from cairn.runtime.local_cluster import HOST, LocalCluster, port_free

PEER_PORT_OFFSET = 10000
TLS_PORT_OFFSET = 1000
"""With `--tls`, a node's TLS client port is its plain client port + this (8001 for 7001)."""


DEFAULT_NODES = 3
DEFAULT_BASE_PORT = 7001
MAX_BASE_PORT = 45535
"""The highest base port: its admin port (+ `ADMIN_PORT_OFFSET`) must stay below 65536."""


def dev_ports(
    nodes: int, base_port: int, tls: bool = False
) -> tuple[list[int], list[int], list[int], list[int]]:
    """The client, peer, admin and (with `tls`) TLS client ports of `nodes` dev nodes:
    `base_port + i`, and that plus each offset."""
    clients = [base_port + i for i in range(nodes)]
    peers = [p + PEER_PORT_OFFSET for p in clients]
    admins = [p + ADMIN_PORT_OFFSET for p in clients]
    tls_ports = [p + TLS_PORT_OFFSET for p in clients] if tls else []
    return clients, peers, admins, tls_ports


def busy_dev_ports(nodes: int, base_port: int, tls: bool = False) -> list[int]:
    """The ports of `dev_ports` that something already listens on."""
    return [p for group in dev_ports(nodes, base_port, tls) for p in group if not port_free(p)]


def plan_dev_cluster(
    data_dir: Path,
    nodes: int = DEFAULT_NODES,
    base_port: int = DEFAULT_BASE_PORT,
    *,
    password: str | None = None,
    regions: int | None = None,
    tls: bool = False,
) -> LocalCluster:
    """The cluster `cairn dev` starts (not started yet): `nodes` nodes on `dev_ports`, data
    and configs under `data_dir`, founded with `regions` regions (default: one per node, so
    each node can lead one). `bench/compare.py` starts the same cluster through this."""
    clients, peers, admins, tls_ports = dev_ports(nodes, base_port, tls)
    return LocalCluster.plan(
        data_dir,
        nodes,
        clients,
        peers,
        admins,
        tls=tls_ports or False,
        password=password,
        extra=f"initial_regions = {regions or nodes}\n",
    )


@click.command()
@click.option("--nodes", type=click.IntRange(1, 9), default=DEFAULT_NODES, show_default=True)
@click.option(
    "--base-port",
    type=click.IntRange(1024, MAX_BASE_PORT),
    default=DEFAULT_BASE_PORT,
    show_default=True,
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cairn-data"),
    show_default=True,
    help="Where the nodes keep their data (reused on the next run).",
)
@click.option(
    "--password",
    default=None,
    envvar="CAIRN_PASSWORD",
    help="Require AUTH with this password (better: set CAIRN_PASSWORD); the nodes read it "
    "from DATA_DIR/password (mode 0600), never from their command line.",
)
@click.option(
    "--regions",
    type=click.IntRange(1, 16384),
    default=None,
    help="Regions a new cluster is founded with [default: one per node, so each node leads "
    "one, as the masters of a Redis Cluster do]. Ignored when the data directory exists.",
)
@click.option("--timeout", type=float, default=30.0, show_default=True)
@click.option(
    "--tls",
    is_flag=True,
    help=f"Also serve TLS clients (client port + {TLS_PORT_OFFSET}) and HTTPS admin, with a "
    "throwaway CA and certificates generated into DATA_DIR/tls.",
)
def dev(
    nodes: int,
    base_port: int,
    data_dir: Path,
    password: str | None,
    regions: int | None,
    timeout: float,
    tls: bool,
) -> None:
    """Run a local cluster of NODES real nodes until Ctrl-C."""
    console = Console()
    busy = busy_dev_ports(nodes, base_port, tls)
    if busy:
        raise click.UsageError(f"ports already in use: {', '.join(map(str, busy))}")
    cluster = plan_dev_cluster(
        data_dir, nodes, base_port, password=password, regions=regions, tls=tls
    )
    stopping = False

    def on_sigterm(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_sigterm)
    supervisor = Supervisor(cluster, console)
    try:
        supervisor.check_free()
    except DevControlError as exc:
        raise click.UsageError(str(exc)) from None
    cluster.start()
    try:
        supervisor.open()
        leader = _wait_for_leader(console, cluster, timeout)
        if leader is None:
            console.print(f"[red]no leader after {timeout:.0f} s; logs in {cluster.root}[/red]")
            sys.exit(1)
        _print_ready(console, cluster, leader)
        supervisor.mark_ready()
        supervisor.run(lambda: stopping)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping the cluster ...")
        cluster.stop()
        supervisor.close()
        console.print("stopped.")


def _wait_for_leader(console: Console, cluster: LocalCluster, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    total = len(cluster.specs)
    with console.status(f"starting {total} nodes ...") as status:
        while time.monotonic() < deadline:
            if not all(cluster.running(n.node_id) for n in cluster.specs):
                return None
            seen = [cluster.leader_seen_by(n.node_id) for n in cluster.specs]
            up = sum(1 for x in seen if x is not None)
            status.update(f"{up}/{total} nodes see a leader ...")
            leader = cluster.leader() if up == total else None
            if leader is not None:
                return leader
            time.sleep(0.2)
    return None


def _print_ready(console: Console, cluster: LocalCluster, leader: int) -> None:
    up = f"[green]Cairn dev cluster of {len(cluster.specs)} nodes is up[/green]"
    console.print(f"{up} (leader: node {leader})")
    tls = cluster.specs[0].tls_port is not None
    scheme = "https" if tls else "http"
    for n in cluster.specs:
        secure = f"rediss://{HOST}:{n.tls_port}  " if tls else ""
        console.print(
            f"  node {n.node_id}: redis://{HOST}:{n.client_port}  {secure}"
            f"admin: {scheme}://{HOST}:{n.admin_port}/v1  data: {n.data_dir}",
            soft_wrap=True,
        )
    console.print(f"dashboard:     {scheme}://{HOST}:{cluster.specs[0].admin_port}/dashboard")
    console.print(f"configs and logs: {cluster.root}")
    console.print(f"cluster secret (peer port authentication): {cluster.secret_path}")
    console.print(f"connect with:  redis-cli -p {cluster.specs[0].client_port}")
    endpoint = f"-e {scheme}://{HOST}:{cluster.specs[0].admin_port}"
    token_file = cluster.root / DEV_TOKEN_FILE
    ctl = f"cairn ctl {endpoint} --token-file {token_file} status"
    if tls:
        _print_tls(console, cluster)
        certs = cluster.certs
        mtls = f"--cacert {certs.ca_cert} --cert {certs.client_cert} --key {certs.client_key}"
        ctl = f"cairn ctl {endpoint} {mtls} --token-file {token_file} status"
    console.print(f"inspect with:  {ctl}", soft_wrap=True)
    console.print(f"admin token:   {token_file} (tokens: {cluster.root / DEV_TOKENS_FILE})")
    console.print("press Ctrl-C to stop")


def _print_tls(console: Console, cluster: LocalCluster) -> None:
    """How to connect over TLS, with and without the generated client certificate."""
    certs = cluster.certs
    tls_cli = f"redis-cli --tls --cacert {certs.ca_cert} -p {cluster.specs[0].tls_port}"
    console.print(f"TLS (CA and certificates in {certs.directory}):", soft_wrap=True)
    console.print(f"  {tls_cli}", soft_wrap=True)
    console.print(
        f"  {tls_cli} --cert {certs.client_cert} --key {certs.client_key}", soft_wrap=True
    )
    console.print("  peer ports: mutual TLS, node<id>.crt names each node's id", soft_wrap=True)
    console.print(
        f"  cairn ctl: --cacert/--cert/--key (or CAIRN_CACERT={certs.ca_cert} "
        f"CAIRN_CERT={certs.client_cert} CAIRN_KEY={certs.client_key})",
        soft_wrap=True,
    )
