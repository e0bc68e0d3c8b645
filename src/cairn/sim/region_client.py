"""Simulated clients of a multi-region cluster: routed by key, refreshed on stale epochs.

Theory of operation. A client has one operation outstanding at a time, a timeout, and
records a `cairn.check` history; every operation goes to the region holding its key
as the client last learned the layout, under that region's epoch, to the node it believes
leads that region. The layout is the cluster's applied descriptions as of the client's
last refresh (a real client asks `CLUSTER SLOTS` or the placement driver); it refreshes
only when told its epoch is stale or when it finds no region, so requests under old
epochs really happen and must be refused.

* OK — the write applied in the region (a cas that did not swap is a FAIL), or the read
  was served linearizably and the value read from the replica's machine at that moment;
* FAIL — definitely not applied: not leader, stale epoch, key moved, and any failed read;
* INFO — unknown: timeout or leadership lost in flight (the process id changes).

A client may be given a `script` of keys instead: it reads each once successfully, in
order (the final reads that prove every acknowledged write survived).

Every write is a command of the real store (`cairn.store`, replicated by every region's
`SimStoreMachine`): put is SET, append is APPEND, cas is one EVAL of `CAS_SCRIPT`. A
client given a `ClientLogic` (`cairn.sim.workloads`: queue, stream, list-append and bank
transactions) proposes that logic's commands instead, routed by the workload's key, runs
its setup command first (unrecorded, until it succeeds), and lets the logic read the
replies; its history goes to the workload's checker.

Transactions (`cairn.sim.txn_workloads`): one whose keys lie in one region is proposed
there as one `cairn.exec`; one naming keys in several regions runs through the real
cross-region coordinator (`cairn.sim.txn_client`), which the client drives over this
same routed path, and which may crash or be given up when the client times out. A
command or read the store answers `-LOCKED` has not run: the client's `Resolver`
settles the lock (from its transaction's primary) and the command is sent again, until
its deadline. A workload's read-only command (the list-append's plain LRANGE) is served
as a linearizable read on the leader's applied state, as a real node serves it.

Scripts (the cas register's EVAL, the bank's transfers) run as a real node runs them:
once, on the region leader's state, replicated by their effects
(`cairn.shard.script_effects`), so every fault also checks effects replication (stale
effects run again, the fallback to the script itself).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from cairn.check.history import Op, OpType
from cairn.meta.region import Region, range_key
from cairn.raft.types import NONE, NodeId
from cairn.resp.reply import ErrorReply, Integer, Reply
from cairn.shard.host import RegionHost, StaleEpochError
from cairn.shard.replica import Callback, Completion, Outcome
from cairn.shard.script_effects import ScriptEffects
from cairn.sim.loop import HARNESS
from cairn.sim.multiraft import MultiCluster
from cairn.sim.store_range import EPOCH_MS, SimStoreMachine, entry_keys
from cairn.sim.txn_client import (
    STAGE_COMMAND,
    SimTimestamps,
    SimTxnIO,
    TxnContext,
    lock_on,
    store_of,
)
from cairn.sim.txn_workloads import TxnCommand
from cairn.sim.workloads import ClientLogic, Command
from cairn.store.commands import COMMANDS
from cairn.store.machine import encode_command
from cairn.store.scripting.effects import EFFECT_SCRIPTS
from cairn.txn import Coordinator, Resolver, read_locked_error
from cairn.txn.scratch import store_scratch

MAX_ENTRY = 16 << 20
"""The largest entry a simulated leader proposes (a node's `max_entry_bytes`)."""
LATE_REPLY = (50_000_000, 400_000_000)
"""The extra wait (ns) of a late reply (buggify site `client.late_reply`)."""
MS = 1_000_000
CAS_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if (ARGV[1] == '0' and v == false) or (ARGV[1] == '1' and v == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0
"""
"""Compare-and-set as one script (KEYS: the key; ARGV: whether a value is expected, the
expected value, the new value). 1: swapped, 0: not."""


@dataclass(frozen=True, slots=True)
class ClientParams:
    """How clients behave in one run."""

    keys: tuple[str, ...] = ("k0", "k1", "k2")
    timeout: int = 400 * MS
    think: int = 10 * MS
    latency: int = 1 * MS
    read_weight: float = 0.4


@dataclass(slots=True)
class HistoryCounts:
    """How the operations of a run ended."""

    ok: int = 0
    failed: int = 0
    unknown: int = 0


@dataclass(slots=True)
class _Call:
    op_id: int
    f: str
    key: str
    value: object
    region: Region
    command: Command | None = None
    """A workload's command (None: a register operation)."""
    setup: bool = False
    """The workload's setup command (unrecorded)."""
    routed: str = ""
    """The key the call is routed by."""
    deadline: int = 0
    """Virtual time after which a lock met is not resolved any more (the command fails)."""
    attempts: int = 0
    """Locks met and resolved so far."""


class RoutedClient:
    """One client process of a multi-region run (renumbered after each INFO)."""

    def __init__(
        self,
        index: int,
        stride: int,
        cluster: MultiCluster,
        rng: random.Random,
        params: ClientParams,
        history: list[Op],
        counts: HistoryCounts,
        script: list[str] | None = None,
        logic: ClientLogic | None = None,
        txn: TxnContext | None = None,
        txn_rng: random.Random | None = None,
        record: bool = True,
    ) -> None:
        """`txn`: the run's cross-region transactions (None: none, and no lock is ever
        met); `txn_rng` their own random source; `record`: False for the unrecorded
        reader that settles the last locks of a run."""
        self.index = index
        self.logic = logic
        if logic is not None:
            logic.colocated = self._colocated
        self._setup = logic.setup() if logic is not None else None
        self.process = index
        self._stride = stride
        self.cluster = cluster
        self.loop = cluster.loop
        self.rng = rng
        self.params = params
        self.history = history
        self.counts = counts
        self.script = script
        self.stopping = False
        self.stale_refusals = 0
        self._routes: list[Region] = []
        self._leaders: dict[int, NodeId] = {}
        self._op_id = 0
        self._written = 0
        self._call: _Call | None = None
        self._last_seen: dict[str, str | None] = {}
        self._scripts = ScriptEffects(random.Random(index), self._now_ms, lambda: MAX_ENTRY)
        """Scripts run as a region leader runs them: once, replicated by their effects
        (its own random source: the client's choices stay what they were)."""
        self.record = record
        self.txn = txn
        self._txn_rng = txn_rng if txn_rng is not None else random.Random(index)
        self._txn_io = SimTxnIO(self)
        self.resolver = (
            Resolver(self._txn_io, txn.settings, self._txn_rng) if txn is not None else None
        )
        self._coordinator_io: SimTxnIO | None = None

    @property
    def idle(self) -> bool:
        """Whether no operation is outstanding."""
        return self._call is None

    @property
    def done(self) -> bool:
        """Whether a scripted client has read every key of its script."""
        return self.script is not None and not self.script

    def start(self) -> None:
        """Begin issuing operations."""
        self._refresh()
        self._schedule_next()

    def _refresh(self) -> None:
        applied = self.cluster.applied
        self._routes = sorted((applied[i] for i in sorted(applied)), key=lambda r: r.start)

    def use_txn_rng(self, rng: random.Random) -> None:
        """Draw the transactions' choices (coordinator crashes, backoffs, the node asked
        for timestamps) from `rng`."""
        self._txn_rng = rng
        if self.resolver is not None:
            self.resolver.rng = rng

    def refresh(self) -> None:
        """Learn the layout again (the cluster's applied descriptions)."""
        self._refresh()

    def route_or_refresh(self, key: str) -> Region | None:
        """The region holding `key` as the client knows the layout (refreshed once when
        no region is known for it)."""
        region = self._route(key)
        if region is None:
            self._refresh()
            region = self._route(key)
        return region

    def _colocated(self, keys: Sequence[str]) -> bool:
        regions = {r.id if r is not None else None for r in map(self._route, keys)}
        return len(regions) == 1 and None not in regions

    def note_leader(self, region_id: int, node: NodeId, done: Completion) -> None:
        """Learn from a reply who leads region `region_id`."""
        if done.outcome is Outcome.OK:
            self._leaders[region_id] = node
        elif done.leader_hint != NONE:
            self._leaders[region_id] = done.leader_hint
        else:
            self._leaders.pop(region_id, None)

    def now_ms(self) -> int:
        """The client's wall clock in ms (entries' time)."""
        return self._now_ms()

    def _route(self, key: str) -> Region | None:
        rkey = range_key(key.encode())
        for region in self._routes:
            if region.contains(rkey):
                return region
        return None

    def _schedule_next(self) -> None:
        if self.stopping or self.done:
            return
        delay = self.rng.randrange(self.params.think + 1)
        self.loop.call_later(delay, HARNESS, f"rclient {self.index} next", self._invoke)

    # -- choosing and sending ---------------------------------------------------------

    def _choose(self) -> tuple[str, str, object, Command | None]:
        if self.script is not None:
            return "get", self.script[0], None, None
        if self._setup is not None:
            return self._setup.f, self._setup.key, None, self._setup
        if self.logic is not None:
            cmd = self.logic.choose(self.rng)
            return cmd.f, cmd.key, cmd.value, cmd
        key = self.rng.choice(self.params.keys)
        if self.rng.random() < self.params.read_weight:
            return "get", key, None, None
        self._written += 1
        token = f"{self.index}.{self._written}"
        roll = self.rng.random()
        if roll < 0.4:
            return "put", key, token, None
        if roll < 0.75:
            return "append", key, token + ";", None
        return "cas", key, (self._last_seen.get(key), token), None

    def _invoke(self) -> None:
        if self.stopping or self._call is not None or self.done:
            return
        f, key, value, command = self._choose()
        keys = [key]
        if command is not None:
            # A workload names its prefix or first key; the region must hold the keys
            # the command touches (a split may cut a slot between the tag and its keys).
            named = entry_keys(encode_command(command.name, command.argv(), 0))
            keys = [k.decode("latin-1") for k in named] or [key]
        regions = [self.route_or_refresh(k) for k in keys]
        if any(r is None for r in regions):
            self._schedule_next()
            return
        self._op_id += 1
        setup = command is not None and command is self._setup
        call = _Call(self._op_id, f, key, value, cast(Region, regions[0]), command, setup)
        call.routed = keys[0]
        call.deadline = self.loop.now + self.params.timeout * 3 // 4
        self._call = call
        if not setup:
            self._record(OpType.INVOKE, call, value)
        crossing = len({cast(Region, r).id for r in regions}) > 1
        if crossing and isinstance(command, TxnCommand) and self.txn is not None:
            self._cross(call, command)
        else:
            if self.txn is not None and isinstance(command, TxnCommand):
                self.txn.stats.single_region += 1
            self._send(call)
        self.loop.call_later(
            self.params.timeout,
            HARNESS,
            f"rclient {self.index} timeout",
            lambda: self._timeout(call),
        )

    def _send(self, call: _Call) -> None:
        """Send `call` to the node believed to lead the region of its key."""
        region = self.route_or_refresh(call.routed)
        if region is None:
            return  # the timeout ends it
        call.region = region
        node = self._target(region)
        label = f"rclient {self.index} -> n{node} r{region.id} {call.f} {call.key}"
        self.loop.call_later(self.params.latency, node, label, lambda: self._arrive(node, call))

    # -- cross-region transactions ------------------------------------------------------

    def _cross(self, call: _Call, command: TxnCommand) -> None:
        """Run `command` through the real coordinator (`cairn.sim.txn_client`)."""
        context = self.txn
        assert context is not None and self.resolver is not None
        context.stats.cross_region += 1
        io = SimTxnIO(self, lambda: self._coordinator_died(call))
        stage = None
        if self._txn_rng.random() < context.crash_rate:
            stage = self._txn_rng.choice(context.crash_stages)
            io.crash_at = STAGE_COMMAND.get(stage)
        self._coordinator_io = io

        def done(reply: Reply) -> None:
            if self._call is call:
                self._cross_done(call, reply)
            if stage == "answered" and not io.dead:
                io.kill()
                context.stats.coordinator_crashes += 1

        coordinator = Coordinator(
            [],
            [list(c) for c in command.commands],
            io,
            SimTimestamps(io, context, self._txn_rng),
            store_scratch,
            context.coordinator_settings(),
            self._txn_rng,
            call.deadline / 1e9,
            done,
            self.resolver.resolve,
        )
        coordinator.start()

    def _cross_done(self, call: _Call, reply: Reply) -> None:
        self._coordinator_io = None
        if call.setup:
            if isinstance(reply, ErrorReply):
                self._setup_failed()
            else:
                self._setup_done(reply)
            return
        if isinstance(reply, ErrorReply) and reply.message.startswith("UNCERTAIN"):
            self._finish(OpType.INFO, call, call.value)
            return
        assert self.logic is not None and call.command is not None
        kind, result = self.logic.complete(call.command, reply)
        self._finish(kind, call, result)

    def _coordinator_died(self, call: _Call) -> None:
        """The coordinator crashed before answering: the client saw its connection drop."""
        assert self.txn is not None
        self.txn.stats.coordinator_crashes += 1
        if self._call is not call:
            return
        self._coordinator_io = None
        if call.setup:
            self._setup_failed()
        else:
            self._finish(OpType.INFO, call, call.value)

    def _resolve_locked(self, call: _Call, value: object) -> bool:
        """If `value` is `-LOCKED`, settle the lock and send `call` again (True); False
        for any other reply, or past the call's deadline (the command did not run)."""
        if self.resolver is None or not isinstance(value, ErrorReply):
            return False
        conflict = read_locked_error(value)
        if conflict is None or self.loop.now >= call.deadline:
            return False
        assert self.txn is not None
        self.txn.stats.locked += 1
        call.attempts += 1

        def again() -> None:
            if self._call is call:
                self._send(call)

        self.resolver.resolve(conflict, call.attempts, again)
        return True

    def target(self, region: Region) -> NodeId:
        """The node a request to `region` goes to (the leader as last learned)."""
        return self._target(region)

    def _target(self, region: Region) -> NodeId:
        hint = self._leaders.get(region.id)
        if hint is not None and region.peer_on(hint) is not None:
            return hint
        return self.rng.choice([p.node_id for p in region.peers])

    def _arrive(self, node: NodeId, call: _Call) -> None:
        host = self.cluster.host(node)
        if host is None:
            return
        region = call.region
        if call.f == "get":

            def served(done: Completion) -> None:
                locked = self._lock_met(node, region.id, call.key, done)
                if locked is not None:
                    done = Completion(Outcome.OK, locked)
                value = (
                    self._read(node, region.id, call.key) if done.outcome is Outcome.OK else None
                )
                self._reply(node, call, done, value)

            host.read(region.id, region.epoch, call.key.encode(), served)
            return
        if self._is_read(call):
            self._serve_read(node, host, call)
            return
        name, argv = self._argv(call)
        peer = host.peers.get(region.id)
        inner = peer.machine.inner if peer is not None else None
        if name in EFFECT_SCRIPTS and isinstance(inner, SimStoreMachine):
            io = _ScriptIo(self, node, call, host, name, argv)
            self._scripts.start(name, argv, inner.store, io)
            return
        command = encode_command(name, argv, self._now_ms())
        host.propose(region.id, region.epoch, command, lambda d: self._reply(node, call, d, None))

    def _now_ms(self) -> int:
        return EPOCH_MS + self.loop.now // MS

    def _lock_met(
        self, node: NodeId, region_id: int, key: str, done: Completion
    ) -> ErrorReply | None:
        """The `-LOCKED` reply a served GET of `key` meets (None: not locked, or no
        transactions in this run)."""
        if self.txn is None or done.outcome is not Outcome.OK:
            return None
        store = store_of(self, node, region_id)
        return lock_on(store.store, key, self._now_ms()) if store is not None else None

    @staticmethod
    def _is_read(call: _Call) -> bool:
        """Whether `call` is a workload's read-only command (served, not proposed)."""
        if call.command is None:
            return False
        spec = COMMANDS.get(call.command.name)
        return spec is not None and not spec.is_write

    def _serve_read(self, node: NodeId, host: RegionHost, call: _Call) -> None:
        """A workload's read: linearizable on the leader, then run on its applied state
        (through the store's lock check, as a real node's inline read)."""
        region = call.region
        assert call.command is not None
        name, argv = call.command.name, call.command.argv()

        def served(done: Completion) -> None:
            store = store_of(self, node, region.id) if done.outcome is Outcome.OK else None
            if store is not None:
                reply = store.store.execute_read(name, argv, self._now_ms())
                done = Completion(Outcome.OK, reply, leader_hint=done.leader_hint)
            elif done.outcome is Outcome.OK:
                done = Completion(Outcome.UNKNOWN, None, "the region left the node")
            self._reply(node, call, done, None)

        host.read(region.id, region.epoch, call.routed.encode(), served)

    def _read(self, node: NodeId, region_id: int, key: str) -> str | None:
        host = self.cluster.host(node)
        peer = host.peers.get(region_id) if host is not None else None
        if peer is None:
            return None
        inner = peer.machine.inner
        assert isinstance(inner, SimStoreMachine)
        return inner.get(key)

    @staticmethod
    def _argv(call: _Call) -> tuple[str, list[bytes]]:
        """The command proposed for `call` (name, arguments): the store command of a put,
        append or cas (module docstring), or a workload's own command."""
        if call.command is not None:
            return call.command.name, call.command.argv()
        key = call.key.encode()
        if call.f == "cas":
            assert isinstance(call.value, tuple)
            expected, new = call.value
            argv = [b"0" if expected is None else b"1", (expected or "").encode(), new.encode()]
            return "eval", [CAS_SCRIPT.encode(), b"1", key, *argv]
        assert isinstance(call.value, str)
        return ("set" if call.f == "put" else "append"), [key, call.value.encode()]

    def _reply(self, node: NodeId, call: _Call, done: Completion, value: object) -> None:
        label = f"rclient {self.index} <- n{node} {done.outcome.value}"
        delay = self.params.latency
        if self.cluster.buggify("client.late_reply"):
            # The apply's notification reaches the client late (a slow reply path): the
            # client may time out first and must record the outcome as unknown.
            delay += self.rng.randint(*LATE_REPLY)
        self.loop.call_later(delay, HARNESS, label, lambda: self._complete(node, call, done, value))

    # -- completing -------------------------------------------------------------------

    def _complete(self, node: NodeId, call: _Call, done: Completion, value: object) -> None:
        if self._call is not call:
            return
        region_id = call.region.id
        if done.outcome is Outcome.OK:
            self._leaders[region_id] = node
            if self._resolve_locked(call, done.value):
                return
            if call.setup:
                self._setup_done(cast(Reply, done.value))
            elif call.command is not None:
                assert self.logic is not None
                kind, result = self.logic.complete(call.command, cast(Reply, done.value))
                self._finish(kind, call, result)
            else:
                self._complete_ok(call, done, value)
            return
        if isinstance(done.value, StaleEpochError):
            self.stale_refusals += 1
            self._refresh()
        if done.leader_hint != NONE:
            self._leaders[region_id] = done.leader_hint
        else:
            self._leaders.pop(region_id, None)
        if call.setup:
            self._setup_failed()
        elif done.outcome is Outcome.REJECTED or call.f == "get" or self._is_read(call):
            self._finish(OpType.FAIL, call, None if call.f == "get" else call.value)
        else:
            self._finish(OpType.INFO, call, call.value)

    def _complete_ok(self, call: _Call, done: Completion, value: object) -> None:
        if call.f == "get":
            assert value is None or isinstance(value, str)
            self._last_seen[call.key] = value
            if self.script:
                self.script.pop(0)
            self._finish(OpType.OK, call, value)
        elif call.f == "cas" and done.value != Integer(1):
            self._finish(OpType.FAIL, call, call.value)
        else:
            self._finish(OpType.OK, call, call.value)

    def _setup_done(self, reply: Reply) -> None:
        assert self.logic is not None
        if self.logic.setup_done(reply):
            self._setup = None
        self._call = None
        self._schedule_next()

    def _setup_failed(self) -> None:
        self._call = None
        self._schedule_next()

    def _timeout(self, call: _Call) -> None:
        if self._call is not call:
            return
        if self._coordinator_io is not None:  # the client gives up its coordinator
            self._coordinator_io.kill()
            self._coordinator_io = None
            assert self.txn is not None
            self.txn.stats.gave_up += 1
        self._leaders.pop(call.region.id, None)
        self._refresh()
        if call.setup:
            self._setup_failed()
        elif call.f == "get" or self._is_read(call):
            self._finish(OpType.FAIL, call, None)
        else:
            self._finish(OpType.INFO, call, call.value)

    def _finish(self, kind: OpType, call: _Call, value: object) -> None:
        if kind is OpType.INFO and self.logic is not None and call.command is not None:
            self.logic.unknown(call.command)
        self._record(kind, call, value)
        self._call = None
        self._coordinator_io = None
        if not self.record:
            pass
        elif kind is OpType.OK:
            self.counts.ok += 1
        elif kind is OpType.FAIL:
            self.counts.failed += 1
        else:
            self.counts.unknown += 1
        if kind is OpType.INFO:
            self.process += self._stride
        self._schedule_next()

    def _record(self, kind: OpType, call: _Call, value: object) -> None:
        if not self.record:
            return
        self.history.append(Op(self.process, kind, call.f, call.key, value, self.loop.now))


class _ScriptIo:
    """One script call's `EffectsIo` on a simulated node: its host's reads and proposals
    in the call's region under the call's epoch; the outcome goes back to the client as
    any reply does."""

    def __init__(
        self,
        client: RoutedClient,
        node: NodeId,
        call: _Call,
        host: RegionHost,
        name: str,
        argv: list[bytes],
    ) -> None:
        self._client = client
        self._node = node
        self._call = call
        self._host = host
        self._name = name
        self._argv = argv

    def read(self, on_done: Callback) -> None:
        region = self._call.region
        self._host.read(region.id, region.epoch, self._call.key.encode(), on_done)

    def propose(self, command: bytes, on_done: Callback) -> None:
        region = self._call.region
        self._host.propose(region.id, region.epoch, command, on_done)

    def replay(self) -> None:
        command = encode_command(self._name, self._argv, self._client._now_ms())
        self.propose(command, self.done)

    def done(self, completion: Completion) -> None:
        self._client._reply(self._node, self._call, completion, None)

    def cancelled(self) -> bool:
        return self._client._call is not self._call
