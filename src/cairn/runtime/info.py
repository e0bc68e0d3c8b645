"""The INFO command's text: Redis 7.0's sections and field names (what
`prometheus-redis-exporter` and other tools read), filled with this node's figures, plus
Cairn's `raft` section. A field Cairn has no figure for is left out, never invented.

What some fields mean in Cairn (docs/operations.md, "Introspection"):
- `redis_version` is the Redis version whose replies Cairn follows; `cairn_version` is
  Cairn's own.
- `used_memory` is the process' resident set size (from /proc/self/statm): a Python
  process has no cheap count of its allocations, so `used_memory` and `used_memory_rss`
  are the same figure and `mem_fragmentation_ratio` is 1.00. The data lives in LMDB's
  memory-mapped file, counted in the RSS as far as its pages are resident.
- persistence: there is no RDB or AOF. Every write is in the Raft log, fsynced to LMDB
  before it is acknowledged, so there are never changes waiting for a save
  (`rdb_changes_since_last_save:0`); `rdb_last_bgsave_status` and `aof_last_write_status`
  say whether LMDB writes succeed (`err` once the disk failed).
- `role:master`: every Cairn node accepts reads and writes for every key (a follower
  forwards to the region's leader), so to a Redis client each node is a master with no
  replicas. Replication is Raft's, per region: see the `raft` section.
- `keyspace_hits`/`keyspace_misses` count the key lookups of the read commands this node
  ran: reads run on the region's leader (or on a follower for READONLY clients), so a
  read sent to one node is counted on the node that served it.
- `expired_keys` counts the keys that this node's active expiry deleted (it proposes the
  deletions of the regions it leads); keys removed because a write found them expired
  are not counted.
- `lazyfree_pending_objects` counts the deleted large values of the regions hosted here
  whose records are not reclaimed yet (`cairn.store.reclaim`; the same on every replica).
- `rdb_last_save_time` is now, as LASTSAVE answers: every acknowledged write is on disk;
  `mem_clients_normal` is the bytes buffered for this node's clients (MEMORY STATS).
- `db0:...,expires=0,avg_ttl=0`: LMDB keeps no count of keys with a TTL, so these are 0.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cairn.runtime.client_commands import PROTOCOL_LEVEL
from cairn.runtime.reclaimer import pending_objects
from cairn.shard.host import RegionPeer
from cairn.shard.pubsub import Kind
from cairn.shard.topology import owned_slots

if TYPE_CHECKING:
    from cairn.runtime.node import Node

Fields = list[tuple[str, object]]
Section = Callable[["Node"], Fields]
RUN_ID = os.urandom(20).hex()
"""Redis' run_id: random for each run of the process."""


def _server(node: Node) -> Fields:
    cfg = node.config
    now = time.time()
    uptime = int(now - node.started_at)
    uname = os.uname()
    return [
        ("redis_version", PROTOCOL_LEVEL),
        ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", 0),
        ("redis_build_id", "0"),
        ("redis_mode", "cluster"),
        ("os", f"{uname.sysname} {uname.release} {uname.machine}"),
        ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
        ("monotonic_clock", "POSIX clock_gettime"),
        ("multiplexing_api", "epoll" if sys.platform == "linux" else "kqueue"),
        ("process_id", os.getpid()),
        ("process_supervised", "no"),
        ("run_id", RUN_ID),
        ("tcp_port", cfg.client_addr[1]),
        ("server_time_usec", int(now * 1_000_000)),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("executable", sys.executable),
        ("io_threads_active", 0),
        ("cairn_version", _version()),
        ("node_id", cfg.node_id),
        ("cluster_id", cfg.cluster_id),
    ]


def _version() -> str:
    from cairn import __version__

    return __version__


def _clients(node: Node) -> Fields:
    server = node.server
    conns = [conn for conn, _ in server.clients.values()]
    transport = node.transport
    return [
        ("connected_clients", len(server.clients)),
        ("cluster_connections", sum(1 for p in transport.peers if transport.connected(p))),
        ("maxclients", server.limits.max_clients),
        ("client_recent_max_input_buffer", max((c.parser.buffered for c in conns), default=0)),
        ("client_recent_max_output_buffer", max((c.output_backlog() for c in conns), default=0)),
        ("blocked_clients", len(node.blocking.waiters)),
        ("tracking_clients", 0),
    ]


def rss_bytes() -> int:
    """The process' resident set size (its peak when /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    """The process' largest resident set size so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def human_bytes(n: int) -> str:
    """Redis' bytesToHuman: 1023B, 1.50K, 2.00M, ..."""
    if n < 1024:
        return f"{n}B"
    for unit, power in (("K", 1), ("M", 2), ("G", 3), ("T", 4), ("P", 5)):
        if n < 1024 ** (power + 1) or unit == "P":
            return f"{n / 1024**power:.2f}{unit}"
    return f"{n}B"  # not reached


def _system_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


def client_buffers(node: Node) -> int:
    """The bytes buffered for this node's clients (pending input, queued output, MULTI)."""
    total = 0
    for conn, state in node.server.clients.values():
        total += conn.parser.buffered + conn.output_backlog() + state.transaction.queued_bytes
    return total


def _memory(node: Node) -> Fields:
    rss = rss_bytes()
    peak = max(peak_rss_bytes(), rss)
    system = _system_memory()
    policy = node.context.redis_config.values["maxmemory-policy"].decode()
    return [
        ("used_memory", rss),
        ("used_memory_human", human_bytes(rss)),
        ("used_memory_rss", rss),
        ("used_memory_rss_human", human_bytes(rss)),
        ("used_memory_peak", peak),
        ("used_memory_peak_human", human_bytes(peak)),
        ("used_memory_peak_perc", f"{100 * rss / peak:.2f}%"),
        ("total_system_memory", system),
        ("total_system_memory_human", human_bytes(system)),
        ("maxmemory", 0),
        ("maxmemory_human", "0B"),
        ("maxmemory_policy", policy),
        ("mem_fragmentation_ratio", "1.00"),
        ("mem_clients_slaves", 0),
        ("mem_clients_normal", client_buffers(node)),
        ("mem_allocator", "python"),
        ("lazyfree_pending_objects", pending_objects(node.machines.values())),
    ]


def _counters_total(node: Node, name: str) -> int:
    return sum(getattr(p.replica.counters, name) for p in node.host.peers.values())


def _persistence(node: Node) -> Fields:
    failed = node.node_store.env.failed
    log_entries = snapshot = 0
    for region_id in node.host.peers:
        state = node.node_store.store(region_id).state
        log_entries += state.last_index - state.dummy_index
        snapshot += state.snapshot_index
    status = "err" if failed else "ok"
    return [
        ("loading", 0),
        ("async_loading", 0),
        ("rdb_changes_since_last_save", 0),
        ("rdb_bgsave_in_progress", 0),
        ("rdb_last_save_time", int(time.time())),
        ("rdb_last_bgsave_status", status),
        ("aof_enabled", 0),
        ("aof_rewrite_in_progress", 0),
        ("aof_last_write_status", status),
        ("raft_log_fsync", "always"),
        ("raft_log_entries", log_entries),
        ("raft_snapshot_index_total", snapshot),
        ("raft_snapshots_taken", _counters_total(node, "snapshots_taken")),
        ("raft_snapshots_installed", _counters_total(node, "snapshots_restored")),
        ("disk_status", "failed" if failed else "ok"),
    ]


def _stats(node: Node) -> Fields:
    stats = node.server.stats
    commands = node.context.recorder.stats
    registry = node.pubsub.registry
    return [
        ("total_connections_received", stats["total_connections_received"]),
        ("total_commands_processed", commands.total_commands),
        ("instantaneous_ops_per_sec", commands.ops_per_sec(node.context.recorder.monotonic())),
        ("total_net_input_bytes", stats["total_net_input_bytes"]),
        ("total_net_output_bytes", stats["total_net_output_bytes"]),
        ("rejected_connections", stats["rejected_connections"]),
        ("expired_keys", stats["expired_keys"]),
        ("evicted_keys", 0),
        ("evicted_clients", 0),
        ("keyspace_hits", sum(m.lookups[0] for m in node.machines.values())),
        ("keyspace_misses", sum(m.lookups[1] for m in node.machines.values())),
        ("pubsub_channels", len(registry.channels())),
        ("pubsub_patterns", registry.numpat()),
        ("pubsubshard_channels", len(registry.channels(kind=Kind.SHARD))),
        ("total_error_replies", commands.total_errors),
    ]


def _replication(node: Node) -> Fields:
    offset, _ = node.replication()
    return [
        ("role", "master"),
        ("connected_slaves", 0),
        ("master_failover_state", "no-failover"),
        ("master_replid", RUN_ID),
        ("master_replid2", "0" * 40),
        ("master_repl_offset", offset),
        ("second_repl_offset", -1),
        ("repl_backlog_active", 0),
    ]


def _cpu(node: Node) -> Fields:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    fields: Fields = [
        ("used_cpu_sys", f"{me.ru_stime:.6f}"),
        ("used_cpu_user", f"{me.ru_utime:.6f}"),
        ("used_cpu_sys_children", f"{children.ru_stime:.6f}"),
        ("used_cpu_user_children", f"{children.ru_utime:.6f}"),
    ]
    thread = getattr(resource, "RUSAGE_THREAD", None)
    if thread is not None:
        main = resource.getrusage(thread)
        fields += [
            ("used_cpu_sys_main_thread", f"{main.ru_stime:.6f}"),
            ("used_cpu_user_main_thread", f"{main.ru_utime:.6f}"),
        ]
    return fields


def _modules(node: Node) -> Fields:
    return []


def _commandstats(node: Node) -> Fields:
    return node.context.recorder.stats.info_commandstats()


def _errorstats(node: Node) -> Fields:
    return node.context.recorder.stats.info_errorstats()


def _latencystats(node: Node) -> Fields:
    recorder = node.context.recorder
    return recorder.stats.info_latencystats(recorder.settings.percentiles)


def _keyspace(node: Node) -> Fields:
    keys = node.key_count()
    return [("db0", f"keys={keys},expires=0,avg_ttl=0")] if keys else []


def _role(peer: RegionPeer) -> str:
    return str(peer.replica.role.value).removeprefix("State").lower()


def _node_role(node: Node) -> str:
    """The node's part in Raft: `leader` when it leads at least one region, `follower`
    when it hosts regions but leads none, `none` when it hosts none."""
    peers = node.host.peers.values()
    if not peers:
        return "none"
    return "leader" if any(p.replica.is_leader for p in peers) else "follower"


def _raft(node: Node) -> list[tuple[str, object]]:
    """The node (its role, its highest term, the regions it leads), the totals over all
    regions, then one line per region. No field describes one region under a
    single-group name: a node holds many."""
    peers = node.host.peers
    led = sorted(r for r, p in peers.items() if p.replica.is_leader)
    fields: list[tuple[str, object]] = [
        ("raft_node_id", node.config.node_id),
        ("raft_role", _node_role(node)),
        ("raft_term", node.term()),
        ("raft_regions_led", ",".join(map(str, led))),
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
        raw = peer.replica.raw
        r = peer.region
        slots = owned_slots(r)
        span = f"{slots.start}-{slots.stop - 1}" if slots else "-"
        fields.append(
            (
                f"raft_region{region_id}",
                f"role={_role(peer)},leader={node.leader_node(peer) or 0},term={raw.term},"
                f"commit={raw.log.committed},applied={peer.replica.applied},"
                f"epoch={r.epoch.version}.{r.epoch.conf_ver},slots={span},"
                f"quiescent={int(peer.replica.quiesced)},"
                f"awake={int(region_id in node.host.awake)},elapsed={raw.election_elapsed}",
            )
        )
    return fields


def _cluster(node: Node) -> Fields:
    return [("cluster_enabled", 1)]


def _regions(node: Node) -> Fields:
    """What this node holds, region by region: the key range (as hash slots), the keys its
    replica holds, its role, the leader, voters and learners (the raft section has the
    Raft state of each)."""
    fields: Fields = [("regions_hosted", len(node.host.peers))]
    for region_id in sorted(node.host.peers):
        peer = node.host.peers[region_id]
        region = peer.region
        machine = node.machines.get(region_id)
        keys = 0 if machine is None or machine.retired else machine.key_count()
        slots = owned_slots(region)
        span = f"{slots.start}-{slots.stop - 1}" if slots else "-"
        fields.append(
            (
                f"region{region_id}",
                f"slots={span},keys={keys},role={_role(peer)},"
                f"leader={node.leader_node(peer) or 0},"
                f"voters={'|'.join(str(p.node_id) for p in region.voters())},"
                f"learners={'|'.join(str(p.node_id) for p in region.learners())},"
                f"epoch={region.epoch.version}.{region.epoch.conf_ver}",
            )
        )
    return fields


SECTIONS: dict[str, tuple[str, Section]] = {
    "server": ("Server", _server),
    "clients": ("Clients", _clients),
    "memory": ("Memory", _memory),
    "persistence": ("Persistence", _persistence),
    "stats": ("Stats", _stats),
    "replication": ("Replication", _replication),
    "cpu": ("CPU", _cpu),
    "modules": ("Modules", _modules),
    "commandstats": ("Commandstats", _commandstats),
    "errorstats": ("Errorstats", _errorstats),
    "latencystats": ("Latencystats", _latencystats),
    "cluster": ("Cluster", _cluster),
    "keyspace": ("Keyspace", _keyspace),
    "raft": ("Raft", _raft),
    "regions": ("Regions", _regions),
}
"""Every section, in the order INFO prints them (Redis 7.0's, then Cairn's)."""
DEFAULT = frozenset(SECTIONS) - {"commandstats", "latencystats"}
"""What INFO and INFO default print (Redis 7.0's default sections, and `raft`)."""
ALIASES = {"module_list": "modules"}


def wanted_sections(args: Sequence[str]) -> list[str]:
    """The sections INFO `args` (lowercase) asks for, in print order: none or `default`
    the default ones, `all` and `everything` all, else the named ones (unknown names are
    ignored, as in Redis); several arguments add up."""
    chosen: set[str] = set()
    if not args:
        chosen |= DEFAULT
    for arg in args:
        if arg == "default":
            chosen |= DEFAULT
        elif arg in ("all", "everything"):
            chosen |= set(SECTIONS)
        else:
            chosen.add(ALIASES.get(arg, arg))
    return [name for name in SECTIONS if name in chosen]


def render_info(node: Node, wanted: Sequence[str]) -> str:
    """INFO's text for the sections `wanted` asks for (`wanted_sections`)."""
    parts = []
    for name in wanted_sections(wanted):
        title, section = SECTIONS[name]
        lines = [f"# {title}"]
        lines += [f"{k}:{v}" for k, v in section(node)]
        parts.append("\r\n".join(lines) + "\r\n")
    return "\r\n".join(parts)
