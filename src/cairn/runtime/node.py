"""A Cairn node: one Raft replica of the keyspace, its peers, and its Redis clients.

Theory of operation. The `Replica` (the same driver the simulator runs) owns Raft and the
`StoreMachine`; this module wires it to the real world and routes client commands:

- connection commands (PING, HELLO, CLIENT, INFO ...) are answered here;
- a write on the leader is proposed with the leader's time stamped in, and answered with
  the state machine's reply once the entry is applied, i.e. committed on a quorum;
- a read on the leader waits for a ReadIndex (or lease) confirmation, then runs on the
  applied state;
- on a follower the command is forwarded to the leader over the peer connection and the
  leader's encoded reply is relayed unchanged;
- with no leader, a command waits (retrying every `RETRY_INTERVAL`) until
  `request_timeout_ms`, then fails with `-TRYAGAIN`. A write whose outcome cannot be known
  (leadership lost while it was in flight, or timed out) fails with `-UNCERTAIN`.

The leader also runs active expiry, proposing deletions of expired keys.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from cairn.raft.config import Config
from cairn.raft.types import NONE, ConfState, ReadOnlyOption, StateRole
from cairn.resp.codec import encode
from cairn.resp.reply import OK, ErrorReply, Reply
from cairn.runtime.client_commands import CLIENT_COMMANDS, NOAUTH, ServerContext
from cairn.runtime.cluster_layout import ClusterLayout
from cairn.runtime.config import NodeConfig
from cairn.runtime.frames import FrameKind
from cairn.runtime.info import render_info
from cairn.runtime.plants import (
    ACK_BEFORE_SYNC,
    PLANT_ENV,
    STALE_FOLLOWER_READ,
    UnsyncedLogStore,
)
from cairn.runtime.real_env import LoopClock, RealEnv
from cairn.runtime.server import ClientConnection, Done, ReplyValue, RespServer
from cairn.runtime.transport import TcpTransport, TransportConfig
from cairn.shard.replica import Completion, Outcome, Replica, ReplicaConfig
from cairn.shard.routing import Moved, Redirect, RoutingPolicy, route
from cairn.shard.topology import Topology, cluster_command
from cairn.storage import failpoints
from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions
from cairn.storage.lmdb_keyspace import LmdbKeyspace
from cairn.storage.log_store import LmdbLogStore
from cairn.store import COMMANDS, EXPIRE_DELETE, CommandSpec, classify
from cairn.store.machine import StoreMachine, encode_command

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

TRYAGAIN = ErrorReply("TRYAGAIN no leader is available right now, retry later")
UNCERTAIN = ErrorReply(
    "UNCERTAIN the write may or may not have been applied (leadership changed or it timed out)"
)
SHUTTING_DOWN = ErrorReply("TRYAGAIN this node is shutting down, retry on another node")
_RETRY_MARK = b""
"""A forwarded command's reply meaning "I am not the leader (any more): retry"."""


@dataclass(slots=True)
class _Request:
    """A client command in flight on this node."""

    name: str
    args: list[bytes]
    spec: CommandSpec
    protocol: int
    deadline: float
    done: Done
    forwarded: bool = False
    """Sent to us by a follower: on a retryable failure, tell it to retry (no re-forwarding)."""
    finished: bool = False

    def finish(self, reply: ReplyValue) -> None:
        if not self.finished:
            self.finished = True
            self.done(reply)


class Node:
    """One `cairn server` process."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self._forwards: dict[int, _Request] = {}
        self._timeouts: list[tuple[float, int, _Request, Reply]] = []
        self._timeout_seq = 0
        self._timeout_timer: asyncio.TimerHandle | None = None
        self._timeout_timer_at = 0.0
        self._next_forward = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        self.failure: Exception | None = None
        self.stop_requested = asyncio.Event()
        self.lmdb: LmdbEnv | None = None
        self.failpoints_enabled = False
        self.plant = os.environ.get(PLANT_ENV, "")
        self.layout = ClusterLayout(config)
        self.routing = RoutingPolicy(redirect=Redirect(config.redirect))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open storage, recover, join the peers and start serving clients."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.failpoints_enabled = FAILPOINTS_ENV in os.environ
        failpoints.configure_all(os.environ.get(FAILPOINTS_ENV, ""))
        self.log_store = LmdbLogStore.open(cfg.data_dir, cfg.node_id, cfg.cluster_id, LmdbOptions())
        self.lmdb = self.log_store.env
        if self.plant == ACK_BEFORE_SYNC:
            unsynced = UnsyncedLogStore(self.log_store, cfg.data_dir)
            unsynced.start()
            self.log_store = cast(LmdbLogStore, unsynced)
        self.machine = StoreMachine(LmdbKeyspace(self.lmdb))
        peers = {i: a for i, a in cfg.peers.items() if i != cfg.node_id}
        announce = "{}:{}".format(*cfg.advertised_client_addr)
        self.transport = TcpTransport(
            cfg.node_id,
            cfg.peer_addr,
            peers,
            TransportConfig(cluster_id=cfg.cluster_id, client_addr=announce),
        )
        self.transport.on_forward = self._on_forward
        self.transport.on_forward_reply = self._on_forward_reply
        await self.transport.start()
        self.clock = LoopClock(loop)
        env = RealEnv(cfg.node_id, self.clock, self.transport, self.log_store, random.Random())
        self.replica = Replica(
            env,
            self.machine,
            self._replica_config(),
            bootstrap=ConfState(voters=tuple(sorted(cfg.peers))),
            on_fatal=self._on_fatal,
        )
        self.server = RespServer(self, cfg.limits, cfg.password)
        self.context = ServerContext(
            server=self.server,
            table={**COMMANDS, **CLIENT_COMMANDS},
            info=self.info,
            wall_time=time.time,
            monotonic=time.monotonic,
            role=lambda: "master" if self.replica.is_leader else "slave",
            cluster=lambda args: cluster_command(self.topology(), args, _wall_ms()),
        )
        await self.server.start(*cfg.client_addr)
        self._tasks.append(loop.create_task(self._active_expiry()))
        log.info("node %d serving clients on %s:%d", cfg.node_id, *cfg.client_addr)

    def _on_fatal(self, exc: Exception) -> None:
        """The replica stopped on a storage failure: acknowledge nothing more, and exit."""
        log.critical("stopping: the replica failed and will acknowledge nothing more: %s", exc)
        self.failure = exc
        self.stop_requested.set()

    def _replica_config(self) -> ReplicaConfig:
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
        return ReplicaConfig(
            raft=raft,
            tick_interval=r.tick_ms / 1000,
            snapshot_threshold=r.snapshot_threshold,
            read_timeout_ticks=max(1, self.config.limits.request_timeout_ms // r.tick_ms),
            batch_ready=True,
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Graceful stop: refuse new work, finish what is in flight, then close and sync."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        deadline = time.monotonic() + grace
        while self._in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self._hand_over_leadership(min(1.0, max(0.0, deadline - time.monotonic())))
        await self.server.stop()
        self.replica.stop()
        await self.transport.stop()
        self.log_store.close()

    async def _hand_over_leadership(self, timeout: float) -> None:
        """As etcd does on shutdown: pass leadership to the most caught-up voter, so the
        cluster does not wait out an election timeout."""
        replica = self.replica
        if not replica.is_leader or replica.stopped:
            return
        status = replica.raw.status()
        voters = set(status.conf_state.voters)
        candidates = [
            (pr.match, peer)
            for peer, pr in status.progress.items()
            if peer != status.id and peer in voters and pr.recent_active
        ]
        if not candidates:
            return
        _, target = max(candidates)
        replica.transfer_leader(target)
        deadline = time.monotonic() + timeout
        while replica.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _in_flight(self) -> bool:
        return any(conn._slots for conn, _ in self.server.clients.values())

    # -- routing ------------------------------------------------------------------------

    def execute(self, client: ClientConnection, args: list[bytes], done: Done) -> None:
        """The `CommandRouter` entry point: one command from one client."""
        state = client.state
        assert state is not None
        if self.stopping:
            done(SHUTTING_DOWN)
            return
        name = args[0].lower().decode("utf-8", "replace")
        state.last_command = name
        client_spec = CLIENT_COMMANDS.get(name)
        if not state.authenticated and not (client_spec is not None and client_spec.no_auth):
            done(NOAUTH)
            return
        if name == FAILPOINT_COMMAND and self.failpoints_enabled:
            done(self._failpoint(args[1:]))
            return
        if name == CLOCKSKEW_COMMAND and self.failpoints_enabled:
            done(self._clock_skew(args[1:]))
            return
        if client_spec is not None:
            if not _arity_ok(client_spec.arity, len(args)):
                done(ErrorReply(f"ERR wrong number of arguments for '{name}' command"))
                return
            done(client_spec.handler(self.context, client, args[1:]))
            return
        spec = classify(args)
        if isinstance(spec, ErrorReply):
            done(spec)
            return
        if self._redirects(state.routing.cluster_aware) and not self.replica.is_leader:
            decision = route(args, spec, self.topology(), state.routing, self.routing)
            if isinstance(decision, Moved):
                done(decision.reply)
                return
        if not spec.is_write and state.order.admits(False) and self.replica.can_read_now():
            # The common read: nothing earlier of this client in its way, and the lease
            # makes the state readable now, so it is served here and now, in order,
            # without a request record, a Ready round or any callbacks.
            now_ms = self.machine.effective_now(_wall_ms())
            done(self.machine.execute_read(spec.name, args[1:], now_ms))
            return
        timeout = self.config.limits.request_timeout_ms / 1000
        protocol = client.protocol

        def start(finished: Callable[[], None]) -> None:
            def reply(value: ReplyValue) -> None:
                done(value)
                finished()

            deadline = _now() + timeout
            self._dispatch(_Request(spec.name, args[1:], spec, protocol, deadline, reply))

        state.order.submit(spec.is_write, start)

    def topology(self) -> Topology:
        """The cluster's layout as Redis Cluster clients see it (CLUSTER SLOTS, MOVED)."""
        transport = self.transport
        connected = frozenset(p for p in self.config.peers if transport.connected(p))
        replica = self.replica
        return self.layout.topology(
            replica.lead, replica.conf_state, transport.client_addrs, connected
        )

    def _redirects(self, cluster_aware: bool) -> bool:
        """Whether a client may be answered MOVED rather than have its command forwarded."""
        mode = self.routing.redirect
        return mode is Redirect.ALWAYS or (mode is Redirect.AUTO and cluster_aware)

    def _dispatch(self, request: _Request) -> None:
        if request.finished:
            return
        replica = self.replica
        if replica.is_leader:
            if request.spec.is_write:
                self._write(request)
            else:
                self._read(request)
            return
        if self.plant == STALE_FOLLOWER_READ and not request.spec.is_write:
            now_ms = self.machine.effective_now(_wall_ms())
            request.finish(self.machine.execute_read(request.name, request.args, now_ms))
            return
        lead = replica.lead
        if lead != NONE and lead != self.config.node_id and self.transport.connected(lead):
            self._forward(lead, request)
            return
        self._retry_later(request)

    def _retry_later(self, request: _Request) -> None:
        if request.forwarded:
            request.finish(_RETRY_MARK)
            return
        if _now() >= request.deadline:
            request.finish(TRYAGAIN)
            return
        asyncio.get_running_loop().call_later(RETRY_INTERVAL, self._dispatch, request)

    def _write(self, request: _Request) -> None:
        now_ms = self.machine.effective_now(_wall_ms())
        command = encode_command(request.name, request.args, now_ms)

        def on_done(c: Completion) -> None:
            if c.outcome is Outcome.OK:
                request.finish(cast(Reply, c.value))
            elif c.outcome is Outcome.REJECTED:
                self._retry_later(request)
            else:
                request.finish(UNCERTAIN)

        self._arm_timeout(request, UNCERTAIN)
        self.replica.propose(command, on_done)

    def _read(self, request: _Request) -> None:
        def on_done(c: Completion) -> None:
            if c.outcome is Outcome.OK:
                now_ms = self.machine.effective_now(_wall_ms())
                request.finish(self.machine.execute_read(request.name, request.args, now_ms))
            else:
                self._retry_later(request)

        self.replica.read(on_done)

    def _arm_timeout(self, request: _Request, reply: Reply) -> None:
        """Finish `request` with `reply` at its deadline unless it finished before.

        Deadlines wait in one heap behind a single loop timer set for the earliest: a
        timer per write costs more than the rest of its routing.
        """
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

    def _forward(self, lead: int, request: _Request) -> None:
        self._next_forward += 1
        fid = self._next_forward
        self._forwards[fid] = request
        args = [request.name.encode(), *request.args]
        frame = [FrameKind.FORWARD, fid, request.protocol, args]
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
        else:
            request.finish(data)

    def _on_forward(self, peer: int, fid: int, protocol: int, args: list[bytes]) -> None:
        """Run a command a follower forwarded; never forward it again."""

        def reply(value: ReplyValue) -> None:
            data = value if isinstance(value, bytes) else encode(value, protocol)
            self.transport.send_frame(peer, [FrameKind.FORWARD_REPLY, fid, data])

        spec = classify(args)
        if isinstance(spec, ErrorReply):
            reply(spec)
            return
        if not self.replica.is_leader:
            reply(_RETRY_MARK)
            return
        timeout = self.config.limits.request_timeout_ms / 1000
        deadline = _now() + timeout
        request = _Request(spec.name, args[1:], spec, protocol, deadline, reply, forwarded=True)
        if spec.is_write:
            self._write(request)
        else:
            self._read(request)

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
        """Sample the keyspace for expired keys and propose their deletion.

        As in Redis, the effort follows the yield: a pass that finds nothing doubles the
        pause before the next (up to `EXPIRY_MAX_INTERVAL`), one that finds something
        returns to `EXPIRY_INTERVAL`. Each pass walks about 20 x `EXPIRY_BATCH` keys, so
        a large keyspace without expiring keys no longer costs a steady slice of the CPU.
        """
        interval = EXPIRY_INTERVAL
        while True:
            await asyncio.sleep(interval)
            if not self.replica.is_leader or self.replica.stopped:
                interval = EXPIRY_INTERVAL
                continue
            now_ms = self.machine.effective_now(_wall_ms())
            keys = self.machine.expired_keys(now_ms, EXPIRY_BATCH)
            interval = EXPIRY_INTERVAL if keys else min(2 * interval, EXPIRY_MAX_INTERVAL)
            if keys:
                command = encode_command(EXPIRE_DELETE, keys, now_ms)
                self.replica.propose(command, lambda c: None)

    # -- introspection --------------------------------------------------------------------

    def info(self, sections: Sequence[str]) -> str:
        """The INFO text for `sections` (all by default)."""
        return render_info(self, sections)

    @property
    def role(self) -> StateRole:
        """This node's Raft role."""
        return self.replica.role


def _arity_ok(arity: int, argc: int) -> bool:
    return argc == arity if arity >= 0 else argc >= -arity


def _now() -> float:
    return time.monotonic()


def _wall_ms() -> int:
    return int(time.time() * 1000)
