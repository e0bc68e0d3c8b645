"""The INFO command's text: Redis' sections with Cairn's figures, plus a `raft` section."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cairn.runtime.client_commands import PROTOCOL_LEVEL
from cairn.shard.host import RegionPeer
from cairn.shard.topology import owned_slots

if TYPE_CHECKING:
    from cairn.runtime.node import Node

Section = Callable[["Node"], list[tuple[str, object]]]


def _server(node: Node) -> list[tuple[str, object]]:
    cfg = node.config
    uptime = int(time.time() - node.started_at)
    return [
        ("redis_version", PROTOCOL_LEVEL),
        ("cairn_version", _version()),
        ("redis_mode", "cluster"),
        ("os", f"{os.uname().sysname} {os.uname().release} {os.uname().machine}"),
        ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
        ("process_id", os.getpid()),
        ("tcp_port", cfg.client_addr[1]),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("node_id", cfg.node_id),
        ("cluster_id", cfg.cluster_id),
    ]


def _version() -> str:
    from cairn import __version__

    return __version__


def _clients(node: Node) -> list[tuple[str, object]]:
    return [
        ("connected_clients", len(node.server.clients)),
        ("maxclients", node.server.limits.max_clients),
        ("total_connections_received", node.server.stats["total_connections_received"]),
        ("rejected_connections", node.server.stats["rejected_connections"]),
    ]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory(node: Node) -> list[tuple[str, object]]:
    rss = _rss_bytes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [("used_memory_rss", rss), ("used_memory_peak", peak), ("maxmemory", 0)]


def _counters_total(node: Node, name: str) -> int:
    return sum(getattr(p.replica.counters, name) for p in node.host.peers.values())


def _persistence(node: Node) -> list[tuple[str, object]]:
    first = node.first_peer()
    failed = node.node_store.env.failed
    log_first = log_last = snapshot = 0
    if first is not None:
        state = node.node_store.store(first.region_id).state
        log_first, log_last = state.dummy_index + 1, state.last_index
        snapshot = state.snapshot_index
    return [
        ("loading", 0),
        ("aof_enabled", 0),
        ("raft_log_fsync", "always"),
        ("raft_log_first_index", log_first),
        ("raft_log_last_index", log_last),
        ("raft_snapshot_index", snapshot),
        ("raft_snapshots_taken", _counters_total(node, "snapshots_taken")),
        ("raft_snapshots_installed", _counters_total(node, "snapshots_restored")),
        ("disk_status", "failed" if failed else "ok"),
    ]


def _replication(node: Node) -> list[tuple[str, object]]:
    peer = node.first_peer()
    if peer is None:
        return [("role", "slave"), ("master_node_id", 0), ("master_link_status", "down")]
    status = peer.replica.raw.status()
    region = peer.region
    if peer.replica.is_leader:
        fields: list[tuple[str, object]] = [
            ("role", "master"),
            ("connected_slaves", sum(1 for i in status.progress if i != status.id)),
        ]
        for n, (pid, pr) in enumerate(sorted(status.progress.items())):
            if pid == status.id:
                continue
            state = "online" if pr.recent_active else "wait_bgsave"
            other = region.peer(pid)
            node_id = other.node_id if other is not None else pid
            fields.append((f"slave{n}", f"node_id={node_id},state={state},offset={pr.match},lag=0"))
        fields.append(("master_repl_offset", status.commit))
        return fields
    lead = node.leader_node(peer)
    return [
        ("role", "slave"),
        ("master_node_id", lead or 0),
        ("master_link_status", "up" if lead else "down"),
        ("slave_repl_offset", status.applied),
    ]


def _keyspace(node: Node) -> list[tuple[str, object]]:
    keys = node.key_count()
    return [("db0", f"keys={keys},expires=0,avg_ttl=0")] if keys else []


def _role(peer: RegionPeer) -> str:
    return str(peer.replica.role.value).removeprefix("State").lower()


def _raft(node: Node) -> list[tuple[str, object]]:
    """The lowest region's fields under their single-group names (what tools read to
    find "the" leader), the totals over all regions, then one line per region."""
    first = node.first_peer()
    peers = node.host.peers
    fields: list[tuple[str, object]] = [("raft_node_id", node.config.node_id)]
    if first is None:
        fields += [("raft_role", "none"), ("raft_term", 0), ("raft_leader_id", 0)]
    else:
        status = first.replica.raw.status()
        region = first.region
        fields += [
            ("raft_role", _role(first)),
            ("raft_term", status.term),
            ("raft_leader_id", node.leader_node(first) or 0),
            ("raft_commit_index", status.commit),
            ("raft_applied_index", status.applied),
            ("raft_voters", ",".join(str(p.node_id) for p in region.voters())),
            ("raft_learners", ",".join(str(p.node_id) for p in region.learners())),
        ]
    fields += [
        ("raft_regions", len(peers)),
        ("raft_regions_leading", sum(1 for p in peers.values() if p.replica.is_leader)),
        ("raft_regions_without_leader", sum(1 for p in peers.values() if not p.replica.lead)),
        ("raft_regions_quiescent", sum(1 for p in peers.values() if p.replica.quiesced)),
        ("raft_host_ticks", node.host.ticks),
        ("raft_host_drains", node.host.drains),
    ]
    for region_id in sorted(peers):
        peer = peers[region_id]
        raw = peer.replica.raw.raft
        r = peer.region
        slots = owned_slots(r)
        span = f"{slots.start}-{slots.stop - 1}" if slots else "-"
        fields.append(
            (
                f"raft_region{region_id}",
                f"role={_role(peer)},leader={node.leader_node(peer) or 0},term={raw.term},"
                f"commit={raw.raft_log.committed},applied={peer.replica.applied},"
                f"epoch={r.epoch.version}.{r.epoch.conf_ver},slots={span},"
                f"quiescent={int(peer.replica.quiesced)},"
                f"awake={int(region_id in node.host.awake)},elapsed={raw.election_elapsed}",
            )
        )
    return fields


def _cluster(node: Node) -> list[tuple[str, object]]:
    return [("cluster_enabled", 1)]


SECTIONS: dict[str, Section] = {
    "server": _server,
    "clients": _clients,
    "memory": _memory,
    "persistence": _persistence,
    "replication": _replication,
    "cluster": _cluster,
    "keyspace": _keyspace,
    "raft": _raft,
}


def render_info(node: Node, wanted: Sequence[str]) -> str:
    """INFO's text for the wanted sections (all, default or everything when empty)."""
    everything = not wanted or bool({"all", "everything", "default"} & set(wanted))
    names = [n for n in SECTIONS if everything or n in wanted]
    parts = []
    for name in names:
        lines = [f"# {name.capitalize() if name != 'raft' else 'Raft'}"]
        lines += [f"{k}:{v}" for k, v in SECTIONS[name](node)]
        parts.append("\r\n".join(lines) + "\r\n")
    return "\r\n".join(parts)
