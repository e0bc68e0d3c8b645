"""`cairn server`: run one node until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn.runtime.config import ConfigError, NodeConfig, load, parse_address
from cairn.storage.errors import StartupError

if TYPE_CHECKING:
    from cairn.runtime.tls import PeerTls, ServerTls


class NodeLogFilter(logging.Filter):
    """Stamps every log record with the node id and its current Raft term."""

    def __init__(self, node_id: int) -> None:
        super().__init__()
        self.node_id = node_id
        self.term: Any = lambda: 0

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        record.term = self.term()
        return True


def setup_logging(config: NodeConfig) -> NodeLogFilter:
    """Structured one-line logs: time, level, node, term, logger, message."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s level=%(levelname)s node=%(node_id)s term=%(term)s "
            "logger=%(name)s msg=%(message)s"
        )
    )
    node_filter = NodeLogFilter(config.node_id)
    handler.addFilter(node_filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    return node_filter


def parse_peers(text: str | None) -> dict[str, str] | None:
    """`1=host:port,2=host:port` as the `peers` table of the config file."""
    if text is None:
        return None
    peers: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        node, sep, address = part.partition("=")
        if not sep:
            raise ConfigError(f"peers: expected id=host:port, got {part!r}")
        parse_address(f"peers.{node}", address)
        peers[node.strip()] = address.strip()
    return peers


async def run_node(config: NodeConfig) -> int:
    """Run a node until a signal asks it to stop; the exit status."""
    from cairn.runtime.node import Node

    node_filter = setup_logging(config)
    node = Node(config)
    try:
        await node.start()
    except ConfigError as exc:  # a TLS file changed since `server` checked it
        logging.getLogger("cairn").error("cannot start: %s", exc)
        return 2
    except (StartupError, OSError) as exc:
        logging.getLogger("cairn").error("cannot start: %s", exc)
        return 1
    node_filter.term = node.term
    # What start-up made (modules, the command table, the layout) lives as long as the
    # process: kept out of every later full collection, whose pause is then proportional
    # to what the traffic keeps alive, not to the whole program (4 ms, not 90 ms).
    gc.collect()
    gc.freeze()
    admin = None
    if config.admin_addr is not None:
        from cairn.admin import AdminServer
        from cairn.admin.access import Access, AdminStartError
        from cairn.admin.backup_api import NodeBackup
        from cairn.admin.history import node_feed
        from cairn.admin.node_source import ClusterAdminSource
        from cairn.admin.region_actions import NodeActions
        from cairn.admin.tenants_api import NodeTenants
        from cairn.admin.tso_api import NodeTimestamps

        try:
            access = Access.open(config.admin_tokens_file, config.admin_metrics_public)
            tls_context = node.tls.context if node.tls is not None else None
            admin = AdminServer(
                ClusterAdminSource(node),
                *config.admin_addr,
                access=access,
                ssl_context=tls_context,
                backup=NodeBackup(node),
                history=node_feed(node),
                tenants=NodeTenants(node),
                peer=None if node.placement is None else node.placement.admin,
                regions=NodeActions(node),
                tso=NodeTimestamps(node),
            )
            await admin.start()
        except (OSError, AdminStartError) as exc:
            logging.getLogger("cairn").error("cannot start the admin API: %s", exc)
            await node.stop()
            return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stop_requested.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(node.tls, node.peer_tls))
    await node.stop_requested.wait()
    logging.getLogger("cairn").info("stopping: finishing in-flight commands")
    if admin is not None:
        await admin.stop()
    await node.stop()
    logging.getLogger("cairn").info("stopped")
    return 1 if node.failure is not None else 0


def _reload(tls: ServerTls | None, peer_tls: PeerTls | None = None) -> None:
    """SIGHUP: read the TLS certificates and keys again (new connections use them)."""
    if tls is None and peer_tls is None:
        logging.getLogger("cairn").info("SIGHUP: no TLS configured, nothing to reload")
        return
    if tls is not None:
        tls.reload()
    if peer_tls is not None:
        peer_tls.reload()


PASSWORD_ENV = "CAIRN_PASSWORD"
"""The environment variable a node reads its client password from (never a flag: a
running process's arguments are readable by every user of the host)."""


def password_from_env() -> dict[str, str]:
    """`{"password": ...}` from `CAIRN_PASSWORD`, removed from the environment so the
    node's children do not inherit it; {} when unset or empty."""
    password = os.environ.pop(PASSWORD_ENV, "")
    return {"password": password} if password else {}


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one; the new soft limit.

    Every client is a file descriptor, so the often-default soft limit of 1024 would
    refuse connections (EMFILE) long before `limits.max_clients`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. an unlimited hard limit some systems refuse
            return soft
    return hard


def run_forever(config: NodeConfig) -> int:
    """Run on uvloop when it is installed (it is a dependency), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        return asyncio.run(run_node(config))
    return uvloop.run(run_node(config))


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--node-id", type=int, default=None)
@click.option("--data-dir", default=None)
@click.option("--client-addr", default=None, help="host:port for Redis clients.")
@click.option("--peer-addr", default=None, help="host:port for the other nodes.")
@click.option("--admin-addr", default=None, help='host:port of the admin API, or "off".')
@click.option("--admin-tokens-file", default=None, help="The admin API's tokens file.")
@click.option("--peers", default=None, help="1=host:port,2=host:port,... (all voters).")
@click.option("--cluster-id", default=None)
@click.option(
    "--password-file",
    default=None,
    help=f"Require AUTH with the password in this file (or set {PASSWORD_ENV}).",
)
@click.option(
    "--cluster-secret-file", default=None, help="The file holding the peers' shared secret."
)
@click.option("--tls-addr", default=None, help="host:port for TLS clients.")
@click.option("--tls-cert-file", default=None, help="The certificate TLS clients are shown.")
@click.option("--tls-key-file", default=None, help="Its private key.")
@click.option("--tls-ca-cert-file", default=None, help="The CA of client certificates.")
@click.option("--tls-auth-clients", type=click.Choice(["yes", "optional", "no"]), default=None)
@click.option("--log-level", default=None)
def server(config_path: Path | None, **flags: Any) -> None:
    """Run one Cairn node (see docs/operations.md for the config file)."""
    try:
        flags["peers"] = parse_peers(flags["peers"])
        overrides = {k: v for k, v in flags.items() if v is not None}
        overrides.update(password_from_env())
        if config_path is not None:
            config = load(config_path, overrides)
        else:
            from cairn.runtime.config import from_mapping

            config = from_mapping(overrides)
        if config.tls is not None:
            from cairn.runtime.tls import ServerTls

            ServerTls.load(config.tls)  # every TLS file checked before anything starts
        if config.peer_tls is not None:
            from cairn.runtime.tls import PeerTls

            PeerTls.load(config.peer_tls, config.node_id)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    raise_fd_limit()
    sys.exit(run_forever(config))
