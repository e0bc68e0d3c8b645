"""A Cairn node: a `RegionHost` running every region replica of this node, and its clients.

Theory of operation. The key space is cut into regions, each a Raft group; the node runs
all of its replicas in one `RegionHost` (one Ready pass per loop turn over every region,
ONE group write and at most one fsync for all of them, one timer, quiescence of idle
regions). The regions' Raft logs live in the node's `NodeStore`, their data in the shared
LMDB keyspace, each region's `StoreMachine` scoped to its range. A new cluster is founded
with `initial_regions` regions on every node (`region_layout`), the same on every
founding node without talking; a restart recovers the regions from the `NodeStore`.

Every client command is routed (`cairn.shard.routing.route`) over the node's `Topology`
(its regions and the leader each replica believes in):

- connection commands (PING, HELLO, CLIENT, INFO, CLUSTER ...) are answered here;
- `Local` (this node leads the key's region): a write is proposed there with the leader's
  time stamped in and answered once applied; a read waits for a ReadIndex (or is served
  at once, inline, while the region's lease holds), then runs on the applied state;
- `Forward`: the command goes to the region's leader node with the region id and epoch it
  was routed by; the leader answers a retry mark if it no longer leads that region or the
  epoch changed, and the sender routes again (until the request's deadline);
- `Moved` (cluster-aware clients, see `RoutingPolicy`), `Refuse` (CROSSSLOT) are answered;
- `Fanout` (MGET, DEL ... over several regions; DBSIZE, KEYS ... over all): every part runs
  as its own request, and the replies are merged;
- `NoRoute` and no known leader: retried every `RETRY_INTERVAL` until
  `request_timeout_ms`, then `-CLUSTERDOWN` / `-TRYAGAIN`. A write whose outcome cannot be
  known (leadership lost while it was in flight, or timed out) fails with `-UNCERTAIN`.

Each region's leader also runs active expiry, proposing deletions of expired keys (and of
expired request ids of idempotent writes). ``IDEMPOTENT <id> <command> ...`` becomes the
internal `cairn.idem` write here (`cairn.store.idempotency.tag_command`), routed and
proposed like the command it wraps. A command refused as CROSSSLOT may still run as a
cross-region transaction for a plain connection (`_cross_run`): a multi-key write
(`TRANSACTIONAL`), a multi-key read or a tagged write (`cairn.runtime.cross_requests`).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from cairn.env.host_store import HostStore, RegionRecord
from cairn.meta.region import Region, RegionEpoch
from cairn.raft.config import Config
from cairn.raft.ready import Ready
from cairn.raft.types import NONE, Entry, EntryType, ReadOnlyOption, Snapshot
from cairn.resp.codec import encode
from cairn.resp.reply import OK, ErrorReply, Integer, Reply
from cairn.runtime.acl_commands import AclCommands, AclTable, acl_key_info, node_catalog
from cairn.runtime.blocking import BlockingCommands, is_blocking
from cairn.runtime.client_commands import (
    CLIENT_COMMANDS,
    NOAUTH,
    ServerContext,
    follow_config,
    recorder_for,
)
from cairn.runtime.client_introspection import client_line
from cairn.runtime.client_limits import OUTPUT_LIMIT_CLOSE, forwarded_reply_fits
from cairn.runtime.cluster_layout import ClusterLayout
from cairn.runtime.config import ConfigError, NodeConfig
from cairn.runtime.config_rewrite import (
    NO_CONFIG_FILE,
    changed_values,
    rewrite_file,
    saved_args,
)
from cairn.runtime.cross_requests import (
    WAKING,
    cross_read,
    run_tagged_command,
    run_tagged_exec,
    tagged_command,
    tagged_script,
)
from cairn.runtime.entry_limits import entry_too_large
from cairn.runtime.envelope_codec import TcpHostTransport
from cairn.runtime.frames import FrameKind
from cairn.runtime.host_store import LmdbHostStore, found_regions
from cairn.runtime.info import render_info
from cairn.runtime.keyspace_events import NOTIFY_PARAM, KeyspaceEvents
from cairn.runtime.map_trim import MapTrimmer
from cairn.runtime.memory_report import is_node_level, memory_command
from cairn.runtime.monitor import Monitors
from cairn.runtime.placement_wiring import NodePlacement, RemoteRegion
from cairn.runtime.plants import (
    ACK_BEFORE_SYNC,
    PLANT_ENV,
    STALE_FOLLOWER_READ,
    STREAM_ACK_LEADER_ONLY,
    TXN_READS_IGNORE_LOCKS,
    UnsyncedHostStore,
    ack_on_leader_only,
)
from cairn.runtime.pubsub import PubSub
from cairn.runtime.range_store import SplitRefusedError, StoreRangeMachine
from cairn.runtime.real_env import LoopClock
from cairn.runtime.reclaimer import Reclaimer
from cairn.runtime.redis_config import RedisConfig
from cairn.runtime.region_layout import initial_layout
from cairn.runtime.reply_decode import ReplyDecodeError, decode_reply
from cairn.runtime.script_wiring import NodeEffectsIo, script_rules, wire_functions
from cairn.runtime.server import ClientConnection, ClientState, Done, ReplyValue, RespServer
from cairn.runtime.tenants import NodeTenants
from cairn.runtime.tls import PeerTls, ServerTls
from cairn.runtime.transactions import (
    SERVED_COMMANDS,
    Transactions,
    applied_parts,
    forwarded_spec,
)
from cairn.runtime.transport import ForwardTarget, TcpTransport, TransportConfig
from cairn.runtime.txn_wiring import cross_region, is_locked, takes_transaction
from cairn.shard.host import HostConfig, RegionHost, RegionPeer
from cairn.shard.pubsub import PUBSUB_COMMANDS
from cairn.shard.region_machine import RangeMachine
from cairn.shard.replica import Completion, Outcome, Replica, ReplicaConfig, decode_request
from cairn.shard.routing import (
    CROSSSLOT,
    ClientRouting,
    Fanout,
    Forward,
    Local,
    Moved,
    NoRoute,
    Redirect,
    Refuse,
    RoutingPolicy,
    client_redirects,
    merge,
    route,
)
from cairn.shard.script_effects import ScriptEffects
from cairn.shard.topology import Topology, cluster_command
from cairn.storage import failpoints
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions
from cairn.storage.node_store import RAFT_INIT_INDEX, NodeStore
from cairn.store import COMMANDS, EXPIRE_DELETE, CommandSpec, classify
from cairn.store.idempotency import PREFIX as IDEMPOTENT
from cairn.store.idempotency import checked_argv, tag_command
from cairn.store.idempotency_entries import PURGE_COMMAND
from cairn.store.machine import StoreMachine, encode_command
from cairn.store.scripting import FRONT_COMMANDS, ScriptFront
from cairn.store.scripting.confine import CROSS_REGION_SCRIPTS
from cairn.store.scripting.effects import EFFECT_SCRIPTS, runs_for_effects
from cairn.store.scripting.front import Deferred
from cairn.store.txn_locks import TXN_LOCK_COMMANDS

log = logging.getLogger("cairn.node")

FAILPOINTS_ENV = "CAIRN_FAILPOINTS"
"""Failpoints to switch on at start, `name=spec;...` (see `cairn.storage.failpoints`).

Only when this variable is set (even empty) does the node accept `CAIRN.FAILPOINT name
spec`, so tests and the chaos runner can inject faults while it runs; production nodes
do not know the command."""
FAILPOINT_COMMAND = "cairn.failpoint"
CLOCKSKEW_COMMAND = "cairn.clockskew"
"""`CAIRN.CLOCKSKEW rate`: this node's clock runs `rate` seconds per second fast (negative:
slow); only with failpoints enabled, for the chaos runner's clock-skew fault."""
RETRY_INTERVAL = 0.02
EXPIRY_INTERVAL = 0.1
EXPIRY_MAX_INTERVAL = 1.0
EXPIRY_BATCH = 64
FAILURE_POLL = 0.2

TRYAGAIN = ErrorReply("TRYAGAIN no leader is available right now, retry later")
UNCERTAIN = ErrorReply(
    "UNCERTAIN the write may or may not have been applied (leadership changed or it timed out)"
)
SHUTTING_DOWN = ErrorReply("TRYAGAIN this node is shutting down, retry on another node")
_RETRY_MARK = b""
"""A forwarded command's reply meaning "I do not lead that region at that epoch: retry"."""
_OUTPUT_LIMIT_MARK = b"\x00output-limit"
"""A forwarded command's reply meaning "the reply would pass the output limit: close
the client" (no RESP reply starts with a NUL byte)."""
_PART_PROTOCOL = 2
"""The protocol a fanned-out part is forwarded in (its reply is decoded and merged)."""
_TIMEOUTS_SWEEP_MIN = 1024
"""The deadline heap size below which finished requests are not swept out."""


@dataclass(slots=True)
class _Request:
    """A client command (or one part of a fanned-out one) in flight on this node."""

    argv: list[bytes]
    """The whole command, name first."""
    spec: CommandSpec
    protocol: int
    deadline: float
    done: Done
    forwarded: bool = False
    """Sent to us by another node: on a retryable failure, tell it to retry."""
    user: str = ""
    """The ACL user it runs as, sent along when forwarded for the leader to check again
    ("": an internal attempt (a transaction, a blocking retry), checked where it began)."""
    sized: bool = False
    """Its size was checked against `max_entry_bytes` as it arrived (`execute`), so
    `_write` need not sum its arguments again (it does for forwarded and internal ones)."""
    finished: bool = False
    on_locked: Callable[[_Request, ReplyValue], bool] | None = None
    """Answered `-LOCKED` (a cross-region transaction's lock): resolve, run again."""
    lock_waits: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def args(self) -> list[bytes]:
        return self.argv[1:]

    def finish(self, reply: ReplyValue) -> None:
        if not self.finished:
            if self.on_locked is not None and not self.forwarded and self.on_locked(self, reply):
                return  # resolving the lock; the command runs again (`Node._on_locked`)
            self.finished = True
            self.done(reply)


class _LayoutWatch:
    """Every hosted replica's observer: a change of leader or role changes the layout."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def on_persist(self, replica: Replica, ready: Ready) -> None:
        if ready.soft_state is not None:
            self.node.layout_changed()

    def on_apply(self, replica: Replica, entry: Entry) -> None:
        """Wake the clients blocked on keys the entry may have filled (descriptions reach
        the node through `on_region`), after publishing its keyspace notifications."""
        self.node.keyspace_events.on_apply(replica, entry)
        blocking = self.node.blocking
        if blocking.waiters and entry.type is EntryType.NORMAL and entry.data:
            try:
                command = decode_request(entry.data)[1]
            except (ValueError, TypeError):
                return
            for part in applied_parts(command):  # a transaction: each of its commands
                blocking.on_applied(part)

    def on_restore(self, replica: Replica, snapshot: Snapshot) -> None:
        self.node.layout_changed()


class NodeKeys:
    """The whole node's keyspace as one read-only machine for the few callers that want
    totals (the admin API's key count): DBSIZE is summed over the regions."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def execute_read(self, name: str, args: Sequence[bytes], now_ms: int) -> Reply:
        """DBSIZE over every region hosted here (any other command is refused)."""
        if name != "dbsize":
            return ErrorReply(f"ERR '{name}' needs a region: route it")
        return Integer(self.node.key_count())


def _no_unscoped_machine() -> RangeMachine:
    raise SplitRefusedError("every region machine of a real node is made for its record")


class Node:
    """One `cairn server` process."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self._forwards: dict[int, _Request] = {}
        self._timeouts: list[tuple[float, int, _Request, Reply]] = []
        self._timeouts_sweep_at = _TIMEOUTS_SWEEP_MIN
        self._timeout_seq = 0
        self._timeout_timer: asyncio.TimerHandle | None = None
        self._timeout_timer_at = 0.0
        self._next_forward = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        self.failure: Exception | None = None
        self.stop_requested = asyncio.Event()
        self.tls: ServerTls | None = None
        """The TLS client port's and admin API's certificate (reloaded on SIGHUP)."""
        self.peer_tls: PeerTls | None = None
        """The peer port's mutual TLS contexts (`peer_tls`; reloaded on SIGHUP)."""
        self.lmdb: LmdbEnv | None = None
        self.failpoints_enabled = False
        self.plant = os.environ.get(PLANT_ENV, "")
        self.layout = ClusterLayout(config)
        self.layout_version = 0
        self.routing = RoutingPolicy(redirect=Redirect(config.redirect))
        self.machines: dict[int, StoreMachine] = {}
        self.machine = NodeKeys(self)
        self._watch = _LayoutWatch(self)
        self.placement: NodePlacement | None = None
        self.blocking = BlockingCommands(self._attempt, {**COMMANDS, **TXN_LOCK_COMMANDS, **WAKING})
        self.transactions = Transactions(
            config.limits, self._attempt, _client_arity, self._run_client_command
        )
        self.scripts = ScriptFront()
        """The node's script cache: EVALSHA and SCRIPT are answered from it."""
        self.txn = cross_region(
            config, self._attempt, self.topology, lambda: self.placement, self.plant
        )
        self.transactions.cross = self._cross_exec
        self.transactions.cross_watch = self._cross_watch
        self.transactions.cross_tagged = self._cross_tagged_exec

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open storage, recover (or found) the regions, join the peers, serve clients."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.tls = ServerTls.load(cfg.tls) if cfg.tls is not None else None  # files first
        if cfg.peer_tls is not None:
            self.peer_tls = PeerTls.load(cfg.peer_tls, cfg.node_id)
        self.failpoints_enabled = FAILPOINTS_ENV in os.environ
        failpoints.configure_all(os.environ.get(FAILPOINTS_ENV, ""))
        self.node_store = NodeStore.open(cfg.data_dir, cfg.node_id, cfg.cluster_id, LmdbOptions())
        self.lmdb = self.node_store.env
        for state in self.node_store.pending():
            if state.pending_delete:  # a removal the last run did not finish deleting
                self.node_store.finish_destroy(state.region_id)
        if not self.node_store.regions() and cfg.join is None:
            layout = initial_layout(cfg.peers, cfg.initial_regions)
            found_regions(self.node_store, layout, RAFT_INIT_INDEX)
            log.info("founded %d region(s) on nodes %s", len(layout), sorted(cfg.peers))
        self.host_store = LmdbHostStore(self.node_store, cfg.node_id, self._on_fatal)
        store: HostStore = self.host_store
        self._unsynced: UnsyncedHostStore | None = None
        if self.plant == ACK_BEFORE_SYNC:
            self._unsynced = UnsyncedHostStore(self.host_store, cfg.data_dir)
            self._unsynced.start()
            store = self._unsynced
        peers = {i: a for i, a in cfg.peers.items() if i != cfg.node_id}
        announce = "{}:{}".format(*cfg.advertised_client_addr)
        self.transport = TcpTransport(
            cfg.node_id,
            cfg.peer_addr,
            peers,
            TransportConfig(
                cluster_id=cfg.cluster_id,
                client_addr=announce,
                secret=cfg.cluster_secret or b"",
                handshake_timeout=cfg.peer_handshake_timeout_s,
                tls_listener=self.peer_tls.listener if self.peer_tls else None,
                tls_dialer=self.peer_tls.dialer if self.peer_tls else None,
            ),
        )
        if cfg.cluster_secret is None and self.peer_tls is None:
            warning = "INSECURE: no cluster secret: whoever reaches %s:%d controls the cluster"
            log.warning(warning, *cfg.peer_addr)
        self.transport.on_forward = self._on_forward
        self.transport.on_forward_reply = self._on_forward_reply
        self.pubsub = PubSub(
            self.transport, cfg.limits, _known_command, self.topology, self.routing
        )
        self.keyspace_events = KeyspaceEvents(self.pubsub.publish, self.machines.values)
        self.clock = LoopClock(loop)
        self.host = RegionHost(
            cfg.node_id,
            self.clock,
            TcpHostTransport(self.transport),
            store,
            random.Random(),
            self._host_config(),
            _no_unscoped_machine,
            observers=lambda node, region: self._watch,
            on_region=lambda node, region: self.layout_changed(),
            machine_for=self._machine_for,
        )
        self.script_effects = ScriptEffects(
            random.Random(), _wall_ms, lambda: self.config.limits.max_entry_bytes
        )
        """EVAL and FCALL led here: run once, replicated by their effects."""
        # Before the transport starts: every frame kind has its handler when peers call.
        self.placement = NodePlacement(
            cfg, self.host, self.transport, self.clock, self.machines, self.layout_changed
        )
        await self.transport.start()
        self.placement.start()
        self.server = RespServer(self, cfg.limits, cfg.password, cfg.protected_mode)
        self.pubsub.attach(self.server)
        self.context = ServerContext(
            server=self.server,
            table={**COMMANDS, **CLIENT_COMMANDS, **PUBSUB_COMMANDS, **SERVED_COMMANDS},
            info=self.info,
            wall_time=time.time,
            monotonic=time.monotonic,
            cluster=lambda args: cluster_command(self.topology(), args, _wall_ms()),
            redis_config=RedisConfig.for_node(cfg),
            subscriptions=self.pubsub.registry.counts,
            replication=self.replication,
        )
        self._apply_saved_config()
        self.context.rewrite = self._rewrite_config
        self.acl = AclCommands(
            AclTable(node_catalog(self.context.table), cfg.password),
            self.server,
            lambda commands, answer: self.placement is not None
            and self.placement.propose(commands, answer, cfg.limits.request_timeout_ms / 1000),
            acl_key_info,
            lambda conn: client_line(self.context, conn, time.monotonic()).rstrip("\n"),
            _wall_ms,
        )
        self.context.acl = self.acl
        if self.placement.acl_latest is not None:
            self.acl.adopt(*self.placement.acl_latest)
        wire_functions(self.scripts, self.placement, cfg.limits.request_timeout_ms / 1000)
        self.tenants = NodeTenants(
            cfg.node_id,
            lambda commands, answer: self.placement is not None
            and self.placement.propose(commands, answer, cfg.limits.request_timeout_ms / 1000),
            self._led_machines,
            acl_key_info,
            time.monotonic,
            cfg.limits.tenant_report_ms / 1000,
        )
        self.tenants.start()
        self.placement.on_acl_users = self._acl_users_changed
        self.context.recorder = recorder_for(self.context.table)
        self.context.pause.attach(self.execute)
        self.context.monitors = Monitors(
            self.context.table, time.time, cfg.limits.max_pending_replies_bytes
        )
        self.context.redis_config.watchers[NOTIFY_PARAM] = self.keyspace_events.configure
        self.keyspace_events.configure(self.context.redis_config.values[NOTIFY_PARAM])
        follow_config(self.context)
        if cfg.client_plaintext:
            await self.server.start(*cfg.client_addr)
        if cfg.tls is not None and self.tls is not None:
            tls = cfg.tls
            await self.server.start_tls(*tls.addr, self.tls.context, tls.handshake_timeout_s)
            log.info("serving TLS clients on %s:%d", *tls.addr)
        self._tasks.append(loop.create_task(self._active_expiry()))
        self.reclaimer = Reclaimer(  # deleted values, trimmed streams, stale txn statuses
            self.host,
            self.machines,
            _wall_ms,
            status_retention_ms=cfg.limits.txn_status_retention_ms,
            resolve_lock=self.txn.resolve_expired,
        )
        self._tasks.append(loop.create_task(self.reclaimer.run()))
        self.map_trimmer = MapTrimmer(
            Path(self.lmdb.path) / "data.mdb",
            cfg.limits.map_resident_limit_bytes,
            step_bytes=cfg.limits.map_trim_step_bytes,
        )
        self.lmdb.map_pass_hook = self.map_trimmer.note_pass  # a compaction's deletes
        self._tasks.append(loop.create_task(self.map_trimmer.run()))
        self._tasks.append(loop.create_task(self._watch_failures()))
        log.info(
            "node %d serving clients on %s:%d with %d region(s)",
            cfg.node_id,
            *cfg.client_addr,
            len(self.host.peers),
        )

    def _apply_saved_config(self) -> None:
        """The config file's `[redis]` table (CONFIG REWRITE's), as one CONFIG SET."""
        args = saved_args(self.config.redis_params)
        if isinstance(args, ErrorReply):
            error: ErrorReply | None = args
        else:
            error = self.context.redis_config.set(args, self.server) if args else None
        if error is not None:
            raise ConfigError(f"[redis]: {error.message.removeprefix('ERR ')}")

    def _rewrite_config(self) -> ErrorReply | None:
        """CONFIG REWRITE: the values CONFIG SET changed, into the node's TOML file."""
        path = self.config.config_file
        if path is None:
            return NO_CONFIG_FILE
        base = RedisConfig.for_node(self.config).values
        return rewrite_file(path, changed_values(self.context.redis_config.values, base))

    def _machine_for(self, record: RegionRecord) -> RangeMachine:
        machine = StoreRangeMachine(self.node_store.keyspace, record.region_id, record.region)
        self.machines[record.region_id] = machine.store
        machine.store.reads_ignore_locks = self.plant == TXN_READS_IGNORE_LOCKS
        self.keyspace_events.adopt(machine.store)
        return machine

    def _acl_users_changed(self, version: int, items: Sequence[tuple[str, str]]) -> None:
        """The placement leader pushed the users: adopt them, and learn the tenants again
        (creating or deleting a tenant changes its user, so this is how an idle node,
        which does not report while it knows no tenant, hears of a new one)."""
        self.acl.adopt(version, items)
        self.tenants.report_now()

    def _on_fatal(self, exc: Exception) -> None:
        """A region failed on storage: acknowledge nothing more, and exit."""
        if self.failure is None:
            log.critical(
                "stopping: the node failed and will acknowledge nothing more: %s", exc, exc_info=exc
            )
            self.failure = exc
        self.stop_requested.set()

    async def _watch_failures(self) -> None:
        """A replica that failed applying (not writing its log) stops the node too."""
        while True:
            await asyncio.sleep(FAILURE_POLL)
            for peer in self.host.peers.values():
                if peer.replica.failure is not None:
                    self._on_fatal(peer.replica.failure)
                    return

    def _host_config(self) -> HostConfig:
        r = self.config.raft
        read_mode = ReadOnlyOption.LEASE_BASED if r.read_mode == "lease" else ReadOnlyOption.SAFE
        raft = Config(
            id=self.config.node_id,
            election_tick=r.election_ticks,
            heartbeat_tick=r.heartbeat_ticks,
            max_size_per_msg=r.max_size_per_msg,
            max_inflight_msgs=r.max_inflight_msgs,
            check_quorum=True,
            pre_vote=True,
            read_only_option=read_mode,
            max_clock_drift_ticks=r.max_clock_drift_ticks,
        )
        replica = ReplicaConfig(
            raft=raft,
            tick_interval=r.tick_ms / 1000,
            snapshot_threshold=r.snapshot_threshold,
            read_timeout_ticks=max(1, self.config.limits.request_timeout_ms // r.tick_ms),
            batch_ready=True,
        )
        # Liveness: a node is presumed dead after half an election timeout of silence,
        # so a quiescent region whose leader died starts its election as soon as an
        # awake one would (plus that half); heartbeats are the liveness interval.
        return HostConfig(
            replica=replica,
            quiesce_after_ticks=max(20, r.election_ticks // 2),
            liveness_interval_ticks=max(1, r.heartbeat_ticks),
            liveness_timeout_ticks=max(2 * r.heartbeat_ticks, r.election_ticks // 2),
            # A lone client's write skips the fsync thread's hand-offs; a replica waits for
            # its fsync before its next Ready (bigger groups: measured cheaper per SET than
            # deeper pipelines at 50 clients, docs/benchmarks.md), other regions do not.
            inline_sync_entries=8,
            pipeline_depth=1,
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Graceful stop: refuse new work, finish what is in flight, hand over every led
        region, then close and sync."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        deadline = time.monotonic() + grace
        while self._in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self._hand_over_leadership(min(1.0, max(0.0, deadline - time.monotonic())))
        await self.server.stop()
        self.tenants.stop()
        if self.placement is not None:
            self.placement.stop()
        self.host.stop()
        await self.transport.stop()
        await self.host_store.drain_syncs()  # no fsync may run on a closed environment
        if self._unsynced is not None:
            self._unsynced.close()
        self.node_store.close()

    def _tenant_check(self, state: ClientState, argv: list[bytes]) -> ErrorReply | None:
        """A tenant's quotas (`cairn.runtime.tenants`); a refusal inside MULTI makes EXEC
        abort, as an ACL denial does."""
        denied = self.tenants.check(state.user, argv)
        if denied is not None and state.transaction.queued is not None:
            state.transaction.failed = True
        return denied

    def _led_machines(self) -> list[tuple[int, StoreMachine]]:
        """(region id, machine) of every region this node leads (for tenant usage)."""
        return [
            (region_id, self.machines[region_id])
            for region_id, peer in sorted(self.host.peers.items())
            if peer.replica.is_leader and region_id in self.machines
        ]

    async def _hand_over_leadership(self, timeout: float) -> None:
        """As etcd does on shutdown: pass the leadership of every region led here to its
        most caught-up voter, so the cluster does not wait out election timeouts."""
        led = [p for p in self.host.peers.values() if p.replica.is_leader]
        for peer in led:
            target = _handover_target(peer.replica)
            if target is not None:
                peer.replica.transfer_leader(target)
        deadline = time.monotonic() + timeout
        while any(p.replica.is_leader for p in led) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _in_flight(self) -> bool:
        return any(conn._slots for conn, _ in self.server.clients.values())

    # -- introspection --------------------------------------------------------------------

    def term(self) -> int:
        """The highest term among the regions hosted here (0 when it hosts none), for the
        logs and INFO."""
        return max((p.replica.term for p in self.host.peers.values()), default=0)

    def key_count(self) -> int:
        """How many keys the regions hosted here hold."""
        total = 0
        for region_id, machine in self.machines.items():
            if region_id in self.host.peers and not machine.retired:
                total += machine.key_count()
        return total

    def replication(self) -> tuple[int, int]:
        """ROLE's offset and WAIT's count. The offset is the node's, not one region's: the
        sum of the commit indexes of the regions hosted here (it grows with every write
        this node replicates; it drops when a region leaves the node). The count: the
        replicas besides the leader every acknowledged write is on (the smallest quorum
        over the regions hosted here, minus one)."""
        peers = self.host.peers.values()
        offset = sum(p.replica.raw.status().commit for p in peers)
        voters = [len(p.region.voters()) for p in peers]
        return offset, (min(voters) // 2 if voters else 0)

    def leader_node(self, peer: RegionPeer) -> int | None:
        """The node that `peer`'s replica believes leads its region (None: unknown)."""
        lead = peer.replica.lead
        if lead == NONE:
            return None
        found = peer.region.peer(lead)
        return found.node_id if found is not None else self.host.peer_nodes.get(lead)

    def layout_changed(self) -> None:
        """A leader or a description changed: the next `topology()` is rebuilt."""
        self.layout_version += 1

    def topology(self) -> Topology:
        """The cluster's layout as this node sees it (routing, CLUSTER SLOTS, MOVED)."""
        transport = self.transport
        cached = self.layout.cached((self.layout_version, transport.links_version))
        if cached is not None:
            return cached
        connected = frozenset(p for p in transport.peers if transport.connected(p))
        regions = []
        leaders = {}
        for peer in self.host.peers.values():
            if not peer.initialized:
                continue
            regions.append(peer.region)
            lead = self.leader_node(peer)
            if lead is not None:
                leaders[peer.region_id] = lead
        if self.placement is not None:
            for remote in _not_hosted(self.placement.remote.values(), regions):
                regions.append(remote.region)
                if remote.leader is not None:
                    leaders[remote.region.id] = remote.leader
        return self.layout.build(regions, leaders, transport.client_addrs, connected)

    def info(self, sections: Sequence[str]) -> str:
        """The INFO text for `sections` (all by default)."""
        return render_info(self, sections)

    # -- client commands ----------------------------------------------------------------

    def execute(self, client: ClientConnection, args: list[bytes], done: Done) -> None:
        """The `CommandRouter` entry point: one command from one client."""
        state = client.state
        assert state is not None
        if self.stopping:
            done(SHUTTING_DOWN)
            return
        name = args[0].lower().decode("utf-8", "replace")
        if self.context.pause.holds(client, name, args, done):  # CLIENT PAUSE
            return
        state.last_command = name
        done = self.context.recorder.track(state, args, done, name)
        client_spec = CLIENT_COMMANDS.get(name)
        if not (client_spec is not None and client_spec.no_auth):
            if not state.authenticated:
                done(NOAUTH)
                return
            checked = checked_argv(args)
            denied = None if checked is None else self.acl.check(client, checked)
            if denied is None and checked is not None:
                denied = self._tenant_check(state, checked)
            if denied is not None:
                done(denied)
                return
        self.context.monitors.feed(state, name, args)
        if name in FRONT_COMMANDS:  # EVALSHA becomes EVAL, FCALL carries its library
            fronted = self.scripts.front(args, script_rules(self.acl, state.user))
            if isinstance(fronted, Deferred):  # FUNCTION LOAD & co: a placement proposal
                fronted.start(done)
                return
            if not isinstance(fronted, list):
                done(fronted)
                return
            args, name = fronted, fronted[0].lower().decode("utf-8", "replace")
        if self.transactions.intercept(client, name, args, done):
            return
        if name == "acl" and self.acl.intercept(client, args, done):
            return
        if name == FAILPOINT_COMMAND and self.failpoints_enabled:
            done(self._failpoint(args[1:]))
            return
        if name == CLOCKSKEW_COMMAND and self.failpoints_enabled:
            done(self._clock_skew(args[1:]))
            return
        if self.pubsub.intercept(client, name, args, done):
            return
        if name == "memory" and is_node_level(args):  # MEMORY USAGE is routed by its key
            done(memory_command(self, client.protocol, args[1:]))
            return
        if client_spec is not None:
            if not _arity_ok(client_spec.arity, len(args)):
                done(ErrorReply(f"ERR wrong number of arguments for '{name}' command"))
                return
            done(client_spec.handler(self.context, client, args[1:]))
            return
        spec = COMMANDS.get(name)
        if name == IDEMPOTENT:  # IDEMPOTENT <id> <command> ...: `cairn.store.idempotency`
            limits = self.config.limits
            tagged = tag_command(args, limits.idempotency_ttl_ms, limits.idempotency_max_ids)
            if isinstance(tagged, ErrorReply):
                done(tagged)
                return
            args, spec = tagged  # the internal entry, routed by the wrapped command's keys
        if spec is None or not spec.arity_ok(len(args)):
            done(cast(ErrorReply, classify(args)))  # the error Redis gives
            return
        if spec.is_write and (big := entry_too_large(args, self.config.limits.max_entry_bytes)):
            done(big)  # one Raft entry must not stall the loop (`entry_limits`)
            return
        topology = self.topology()
        decision = route(args, spec, topology, state.routing, self.routing)
        if (
            isinstance(decision, Refuse)
            and decision.reply == CROSSSLOT
            and self._cross_command(client, args, spec, done)
        ):
            return
        if isinstance(decision, Moved | Refuse):
            done(decision.reply)
            return
        if (
            isinstance(decision, Local)
            and not spec.is_write
            and state.order.admits(False)
            and self._serve_inline(decision.region, spec, args, done)
        ):
            return
        timeout = self.config.limits.request_timeout_ms / 1000
        protocol = client.protocol

        def start(finished: Callable[[], None]) -> None:
            def reply(value: ReplyValue) -> None:
                done(value)
                finished()

            if is_blocking(spec):
                self.blocking.start(client, args, spec, protocol, reply)
                return
            request = _Request(
                args, spec, protocol, _now() + timeout, reply, user=state.user, sized=True
            )
            if isinstance(decision, Local) and spec.is_write and self.topology() is topology:
                self._run(request, decision.region)  # routed just now, under this layout
            else:
                self._dispatch(request)

        scripted = name in EFFECT_SCRIPTS or tagged_script(args)
        state.order.submit(spec.is_write, start, exclusive=scripted)

    # -- cross-region transactions (`cairn.runtime.txn_wiring`) --------------------------

    def _cross_command(
        self, client: ClientConnection, args: list[bytes], spec: CommandSpec, done: Done
    ) -> bool:
        """A multi-key write refused as CROSSSLOT runs as a one-command transaction, for
        a connection that is not redirected (a cluster-aware one gets CROSSSLOT)."""
        state = client.state
        assert state is not None
        if not self._cross_allowed(client):
            return False
        run = self._cross_run(args, spec)  # `cairn.runtime.cross_requests`
        if run is None:
            return False

        def start(finished: Callable[[], None]) -> None:
            def reply(value: ReplyValue) -> None:
                done(value)
                finished()

            run(reply)

        scripted = spec.name in CROSS_REGION_SCRIPTS or tagged_script(args)
        state.order.submit(spec.is_write, start, exclusive=scripted)
        return True

    def _cross_run(
        self, args: list[bytes], spec: CommandSpec
    ) -> Callable[[Callable[[Reply], None]], None] | None:
        """How a command refused as CROSSSLOT runs over several regions (None: it does
        not): a multi-key write or read as a one-command transaction, a tagged write as
        a tagged one."""
        if takes_transaction(spec) or cross_read(spec, args):
            return lambda reply: self.txn.run_command(args, reply)
        tagged = tagged_command(args, spec)
        if tagged is None:
            return None
        limits = self.config.limits
        ttl, most = limits.idempotency_ttl_ms, limits.idempotency_max_ids
        return lambda reply: run_tagged_command(self.txn, *tagged, ttl, most, reply)

    def _cross_allowed(self, client: ClientConnection) -> bool:
        state = client.state
        return (
            self.txn.enabled
            and state is not None
            and not client_redirects(self.routing, state.routing)
        )

    def _cross_exec(
        self,
        client: ClientConnection,
        watches: list[tuple[bytes, bytes]],
        commands: list[list[bytes]],
        done: Done,
    ) -> bool:
        """EXEC over several regions (`Transactions`): False to answer CROSSSLOT."""
        if not self._cross_allowed(client):
            return False
        self.txn.run(watches, commands, done)
        return True

    def _cross_tagged_exec(
        self,
        client: ClientConnection,
        request_id: bytes,
        watches: list[tuple[bytes, bytes]],
        commands: list[list[bytes]],
        done: Done,
    ) -> bool:
        """``IDEMPOTENT <id> EXEC`` over several regions: False to answer CROSSSLOT."""
        if not self._cross_allowed(client):
            return False
        limits = self.config.limits
        ttl, most = limits.idempotency_ttl_ms, limits.idempotency_max_ids
        run_tagged_exec(self.txn, request_id, watches, commands, ttl, most, done)
        return True

    def _cross_watch(self, client: ClientConnection, keys: list[bytes], done: Done) -> bool:
        """WATCH of keys in several regions: False to answer CROSSSLOT."""
        if not self._cross_allowed(client):
            return False
        self.txn.watch(keys, done)
        return True

    def _on_locked(self, request: _Request, reply: ReplyValue) -> bool:
        """`request` met a transaction's lock: settle it, then route and run it again."""
        if reply.__class__ is not ErrorReply and reply.__class__ is not bytes:
            return False
        request.lock_waits += 1
        waits = request.lock_waits

        def expired(final: Reply) -> None:
            request.on_locked = None
            request.finish(final)

        return self.txn.resolve_locked(
            reply, waits, request.deadline, lambda: self._dispatch(request), expired
        )

    def _run_client_command(self, client: ClientConnection, args: list[bytes]) -> Reply | None:
        """Run connection command `args` here (a transaction's, at EXEC)."""
        spec = CLIENT_COMMANDS.get(args[0].lower().decode("utf-8", "replace"))
        return None if spec is None else spec.handler(self.context, client, args[1:])

    def _serve_inline(
        self, region: Region, spec: CommandSpec, args: list[bytes], done: Done
    ) -> bool:
        """The common read: nothing earlier of this client in its way and the region's
        lease makes its state readable now, so it is served here and now, in order,
        without a request record, a Ready round or any callbacks."""
        peer = self.host.peers.get(region.id)
        if peer is None or peer.region.epoch != region.epoch or not peer.replica.can_read_now():
            return False
        machine = self.machines[region.id]
        now_ms = machine.effective_now(_wall_ms())
        settings = self.context.redis_config.object_settings
        reply = machine.execute_read(spec.name, args[1:], now_ms, in_range=True, settings=settings)
        if is_locked(reply):
            return False  # a transaction's lock: the full path resolves it
        done(reply)
        return True

    def _attempt(self, argv: list[bytes], spec: CommandSpec, protocol: int, done: Done) -> None:
        """One attempt of a blocking command: a write routed afresh (see `BlockingCommands`)."""
        timeout = self.config.limits.request_timeout_ms / 1000
        self._dispatch(_Request(argv, spec, protocol, _now() + timeout, done))

    def _dispatch(self, request: _Request) -> None:
        """Route `request` afresh (never MOVED: it is already ours to answer) and run it."""
        if request.finished:
            return
        decision = route(request.argv, request.spec, self.topology(), ClientRouting(), self.routing)
        if isinstance(decision, Moved | Refuse):
            request.finish(decision.reply)
        elif isinstance(decision, NoRoute):
            self._retry_later(request, decision.reply)
        elif isinstance(decision, Fanout):
            self._fanout(request, decision)
        else:
            self._run_target(request, decision)

    def _run_target(self, request: _Request, target: Local | Forward) -> None:
        request.on_locked = self._on_locked
        if isinstance(target, Local):
            self._run(request, target.region)
            return
        if self.plant == STALE_FOLLOWER_READ and not request.spec.is_write:
            machine = self.machines.get(target.region.id)
            if machine is not None:
                now_ms = machine.effective_now(_wall_ms())
                request.finish(machine.execute_read(request.name, request.args, now_ms))
                return
        lead = target.leader
        if (
            lead is not None
            and lead != self.config.node_id
            and self.transport.connected(lead)
            and not request.forwarded
        ):
            self._forward(lead, request, target.region)
            return
        self._retry_later(request)

    def _retry_later(self, request: _Request, final: Reply = TRYAGAIN) -> None:
        if request.forwarded:
            request.finish(_RETRY_MARK)
            return
        if _now() >= request.deadline:
            request.finish(final)
            return
        asyncio.get_running_loop().call_later(RETRY_INTERVAL, self._dispatch, request)

    def _run(self, request: _Request, region: Region) -> None:
        """Run `request` on this node's replica of `region` (routed under its epoch)."""
        request.on_locked = self._on_locked
        if request.spec.is_write:
            self._write(request, region)
        else:
            self._read(request, region)

    def _write(self, request: _Request, region: Region, verbatim: bool = False) -> None:
        """Propose write `request` in `region` (led here); EVAL and FCALL, and a
        transaction queueing one, run here for their effects (`ScriptEffects`) unless
        `verbatim`: then the script (or the transaction) is the entry."""
        limit = self.config.limits.max_entry_bytes
        if not request.sized and (big := entry_too_large(request.argv, limit)):
            request.finish(big)  # forwarded by a node with a larger limit, or internal
            return
        machine = self.machines.get(region.id)
        if machine is None:
            self._retry_later(request)
            return
        if not verbatim and runs_for_effects(request.name, request.args):
            self._arm_timeout(request, UNCERTAIN)
            io = NodeEffectsIo(
                self.host,
                region,
                request,
                lambda: self._write(request, region, verbatim=True),
                lambda: self._retry_later(request),
            )
            self.script_effects.start(request.name, request.args, machine, io)
            return
        now_ms = machine.effective_now(_wall_ms())
        if self.plant == STREAM_ACK_LEADER_ONLY and request.name == "xack":
            request.finish(ack_on_leader_only(machine, request.args, now_ms))
            return
        command = encode_command(request.name, request.args, now_ms)

        def on_done(c: Completion) -> None:
            if c.outcome is Outcome.OK:
                request.finish(cast(Reply, c.value))
            elif c.outcome is Outcome.REJECTED:
                self._retry_later(request)
            else:
                request.finish(UNCERTAIN)

        self._arm_timeout(request, UNCERTAIN)
        self.host.propose(region.id, region.epoch, command, on_done)

    def _read(self, request: _Request, region: Region) -> None:
        machine = self.machines.get(region.id)
        if machine is None:
            self._retry_later(request)
            return

        def on_done(c: Completion) -> None:
            if c.outcome is Outcome.OK:
                now_ms = machine.effective_now(_wall_ms())
                settings = self.context.redis_config.object_settings
                request.finish(
                    machine.execute_read(request.name, request.args, now_ms, settings=settings)
                )
            else:
                self._retry_later(request)

        keys = request.spec.keys(request.argv)
        if keys:
            self.host.read(region.id, region.epoch, keys[0], on_done)
            return
        peer = self.host.peers.get(region.id)
        if peer is None or peer.region.epoch != region.epoch:
            self._retry_later(request)
            return
        peer.replica.read(on_done)

    def _fanout(self, request: _Request, fanout: Fanout) -> None:
        """Run every part of a command over several regions; merge their replies."""
        replies: list[Reply | None] = [None] * len(fanout.parts)
        left = [len(fanout.parts)]

        def collect(i: int) -> Done:
            def done(value: ReplyValue) -> None:
                replies[i] = _as_reply(value)
                left[0] -= 1
                if left[0] == 0:
                    request.finish(merge(fanout, cast(list[Reply], replies)))

            return done

        for i, part in enumerate(fanout.parts):
            argv = list(part.argv)
            child = _Request(
                argv, request.spec, _PART_PROTOCOL, request.deadline, collect(i),
                user=request.user, sized=request.sized,
            )
            self._run_target(child, part.target)

    def _arm_timeout(self, request: _Request, reply: Reply) -> None:
        """Finish `request` with `reply` at its deadline unless it finished before.

        Deadlines wait in one heap behind a single loop timer set for the earliest: a
        timer per write costs more than the rest of its routing. Finished requests are
        swept out whenever the heap has doubled since the last sweep: left until their
        deadline, the writes of the last `request_timeout_ms` (tens of thousands under
        load, each holding its reply closures) made every full garbage collection walk
        them, and its pauses (100-250 ms) were the write latency's tail.
        """
        if len(self._timeouts) >= self._timeouts_sweep_at:
            self._timeouts = [t for t in self._timeouts if not t[2].finished]
            heapq.heapify(self._timeouts)
            self._timeouts_sweep_at = max(_TIMEOUTS_SWEEP_MIN, 2 * len(self._timeouts))
        self._timeout_seq += 1
        heapq.heappush(self._timeouts, (request.deadline, self._timeout_seq, request, reply))
        if self._timeout_timer is None or request.deadline < self._timeout_timer_at:
            self._set_timeout_timer(request.deadline)

    def _set_timeout_timer(self, deadline: float) -> None:
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
        delay = max(0.0, deadline - _now())
        self._timeout_timer_at = deadline
        self._timeout_timer = asyncio.get_running_loop().call_later(delay, self._on_timeouts)

    def _on_timeouts(self) -> None:
        self._timeout_timer = None
        now = _now()
        heap = self._timeouts
        while heap and heap[0][0] <= now:
            _, _, request, reply = heapq.heappop(heap)
            request.finish(reply)
        if heap:
            self._set_timeout_timer(heap[0][0])

    # -- forwarding -----------------------------------------------------------------------

    def _forward(self, lead: int, request: _Request, region: Region) -> None:
        self._next_forward += 1
        fid = self._next_forward
        self._forwards[fid] = request
        epoch = region.epoch
        frame = [
            FrameKind.FORWARD,
            fid,
            request.protocol,
            request.argv,
            region.id,
            epoch.version,
            epoch.conf_ver,
            request.user,
        ]
        if not self.transport.send_frame(lead, frame):
            del self._forwards[fid]
            self._retry_later(request)
            return
        timeout_reply = UNCERTAIN if request.spec.is_write else TRYAGAIN
        delay = max(0.0, request.deadline - _now())
        asyncio.get_running_loop().call_later(delay, self._forward_timed_out, fid, timeout_reply)

    def _forward_timed_out(self, fid: int, reply: Reply) -> None:
        request = self._forwards.pop(fid, None)
        if request is not None:
            request.finish(reply)

    def _on_forward_reply(self, fid: int, data: bytes) -> None:
        request = self._forwards.pop(fid, None)
        if request is None:
            return
        if data == _RETRY_MARK:
            self._retry_later(request)
        elif data == _OUTPUT_LIMIT_MARK:
            request.finish(OUTPUT_LIMIT_CLOSE)
        else:
            request.finish(data)

    def _on_forward(
        self,
        peer: int,
        fid: int,
        protocol: int,
        args: list[bytes],
        target: ForwardTarget | None,
        user: str = "default",
    ) -> None:
        """Run a command another node routed to a region led here; never forward it on.
        The command's ACL user is checked again here: users are replicated, and this
        node's table is the one that decides what runs on its regions."""

        def reply(value: ReplyValue) -> None:
            data = value if isinstance(value, bytes) else encode(value, protocol)
            limit = self.server.limits.max_pending_replies_bytes
            if not forwarded_reply_fits(self.transport.backlog(peer), len(data), limit):
                data = _OUTPUT_LIMIT_MARK  # client-output-buffer-limit, applied here
            self.transport.send_frame(peer, [FrameKind.FORWARD_REPLY, fid, data])

        spec = forwarded_spec(args)  # a client command or a transaction's internal one
        if isinstance(spec, ErrorReply):
            reply(spec)
            return
        checked = checked_argv(args)
        denied = self.acl.check_forwarded(user, checked) if user and checked else None
        if denied is not None:
            reply(denied)
            return
        timeout = self.config.limits.request_timeout_ms / 1000
        request = _Request(args, spec, protocol, _now() + timeout, reply, forwarded=True)
        if self.stopping:
            reply(_RETRY_MARK)
            return
        if target is None:
            self._dispatch(request)  # an older sender: route here, never forward
            return
        region_id, version, conf_ver = target
        hosted = self.host.peers.get(region_id)
        if hosted is None or not hosted.replica.is_leader:
            reply(_RETRY_MARK)
            return
        # The host checks the sender's epoch against the region's (a stale one: retry).
        self._run(request, replace(hosted.region, epoch=RegionEpoch(version, conf_ver)))

    def _failpoint(self, args: list[bytes]) -> Reply:
        if len(args) != 2:
            return ErrorReply(f"ERR wrong number of arguments for '{FAILPOINT_COMMAND}' command")
        try:
            failpoints.configure(args[0].decode(), args[1].decode())
        except (ValueError, UnicodeDecodeError) as exc:
            return ErrorReply(f"ERR {exc}")
        return OK

    def _clock_skew(self, args: list[bytes]) -> Reply:
        try:
            (rate,) = (float(a) for a in args)
        except ValueError:
            return ErrorReply(f"ERR usage: {CLOCKSKEW_COMMAND.upper()} rate (a float > -1)")
        if rate <= -1.0:
            return ErrorReply("ERR the clock skew rate must be > -1")
        self.clock.set_skew(rate)
        return OK

    # -- background work ----------------------------------------------------------------

    async def _active_expiry(self) -> None:
        """Sample each led region for expired keys and propose their deletion there.

        As in Redis, the effort follows the yield: a pass that finds nothing doubles the
        pause before the next (up to `EXPIRY_MAX_INTERVAL`), one that finds something
        returns to `EXPIRY_INTERVAL`. Each pass walks about 20 x `EXPIRY_BATCH` keys per
        led region, so a large keyspace without expiring keys costs little.
        """
        interval = EXPIRY_INTERVAL
        while True:
            await asyncio.sleep(interval)
            found = False
            for region_id, peer in list(self.host.peers.items()):
                if peer.replica.stopped or not peer.replica.is_leader:
                    continue
                machine = self.machines[region_id]
                now_ms = machine.effective_now(_wall_ms())
                keys = machine.expired_keys(now_ms, EXPIRY_BATCH)
                if keys:
                    found = True
                    command = encode_command(EXPIRE_DELETE, keys, now_ms)
                    self.host.propose(region_id, peer.region.epoch, command, self._expired)
                if machine.has_expired_requests(now_ms):  # IDEMPOTENT's expired request ids
                    found = True
                    command = encode_command(PURGE_COMMAND, [], now_ms)
                    self.host.propose(region_id, peer.region.epoch, command, _ignored)
            interval = EXPIRY_INTERVAL if found else min(2 * interval, EXPIRY_MAX_INTERVAL)

    def _expired(self, completion: Completion) -> None:
        """Count the keys an active-expiry proposal of this node deleted (INFO)."""
        if completion.outcome is Outcome.OK and isinstance(completion.value, Integer):
            self.server.stats["expired_keys"] += completion.value.value


def _ignored(completion: Completion) -> None:
    """A background proposal's outcome nobody waits for (a lost one is proposed again)."""


def _not_hosted(remote: Iterable[RemoteRegion], hosted: Sequence[Region]) -> list[RemoteRegion]:
    """The regions of the placement leader's map that no region hosted here overlaps (the
    node's own descriptions are the fresher ones for what it hosts)."""
    ordered = sorted(hosted, key=lambda r: r.start)
    starts = [r.start for r in ordered]
    ids = {r.id for r in hosted}
    out = []
    for item in remote:
        region = item.region
        # Hosted ranges do not overlap: only the one starting last at or before this
        # region's start, and the one after it, can overlap it.
        i = bisect.bisect_right(starts, region.start) - 1
        clash = any(0 <= j < len(ordered) and ordered[j].overlaps(region) for j in (i, i + 1))
        if not clash and region.id not in ids:
            out.append(item)
    return out


def _handover_target(replica: Replica) -> int | None:
    """The most caught-up active voter other than `replica`'s own peer, if any."""
    status = replica.raw.status()
    voters = set(status.conf_state.voters)
    candidates = [
        (pr.match, peer)
        for peer, pr in status.progress.items()
        if peer != status.id and peer in voters and pr.recent_active
    ]
    return max(candidates)[1] if candidates else None


def _as_reply(value: ReplyValue) -> Reply:
    """A part's reply as a `Reply` (a forwarded part's comes back encoded in RESP2)."""
    if not isinstance(value, bytes):
        return value
    try:
        return decode_reply(value)
    except ReplyDecodeError as exc:
        return ErrorReply(f"ERR a region's reply could not be read: {exc}")


def _client_arity(name: str) -> int | None:
    """The arity of connection command `name` (None: not one)."""
    spec = CLIENT_COMMANDS.get(name)
    return None if spec is None else spec.arity


def _known_command(name: str, argc: int) -> bool:
    """Whether a client or keyspace command `name` exists and takes `argc` arguments."""
    spec = CLIENT_COMMANDS.get(name) or COMMANDS.get(name)
    return spec is not None and _arity_ok(spec.arity, argc)


def _arity_ok(arity: int, argc: int) -> bool:
    return argc == arity if arity >= 0 else argc >= -arity


def _now() -> float:
    return time.monotonic()


def _wall_ms() -> int:
    return int(time.time() * 1000)
