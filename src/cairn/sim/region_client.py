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

Scripts (the cas register's EVAL, the bank's transfers) run as a real node runs them:
once, on the region leader's state, replicated by their effects
(`cairn.shard.script_effects`), so every fault also checks effects replication (stale
effects run again, the fallback to the script itself).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import cast

from cairn.check.history import Op, OpType
from cairn.meta.region import Region, range_key
from cairn.raft.types import NONE, NodeId
from cairn.resp.reply import Integer, Reply
from cairn.shard.host import RegionHost, StaleEpochError
from cairn.shard.replica import Callback, Completion, Outcome
from cairn.shard.script_effects import ScriptEffects
from cairn.sim.loop import HARNESS
from cairn.sim.multiraft import MultiCluster
from cairn.sim.store_range import EPOCH_MS, SimStoreMachine, entry_keys
from cairn.sim.workloads import ClientLogic, Command
from cairn.store.machine import encode_command
from cairn.store.scripting.effects import EFFECT_SCRIPTS

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
    ) -> None:
        self.index = index
        self.logic = logic
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
        routed = key
        if command is not None:
            # A workload names its hash tag or first key; the region must hold the keys
            # the command touches (a split may cut a slot between the tag and its keys).
            keys = entry_keys(encode_command(command.name, command.argv(), 0))
            routed = keys[0].decode() if keys else key
        region = self._route(routed)
        if region is None:
            self._refresh()
            region = self._route(routed)
        if region is None:
            self._schedule_next()
            return
        self._op_id += 1
        setup = command is not None and command is self._setup
        call = _Call(self._op_id, f, key, value, region, command, setup)
        self._call = call
        if not setup:
            self._record(OpType.INVOKE, call, value)
        node = self._target(region)
        label = f"rclient {self.index} -> n{node} r{region.id} {f} {key}"
        self.loop.call_later(self.params.latency, node, label, lambda: self._arrive(node, call))
        self.loop.call_later(
            self.params.timeout,
            HARNESS,
            f"rclient {self.index} timeout",
            lambda: self._timeout(call),
        )

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
                value = (
                    self._read(node, region.id, call.key) if done.outcome is Outcome.OK else None
                )
                self._reply(node, call, done, value)

            host.read(region.id, region.epoch, call.key.encode(), served)
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
        elif done.outcome is Outcome.REJECTED or call.f == "get":
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
        self._leaders.pop(call.region.id, None)
        self._refresh()
        if call.setup:
            self._setup_failed()
        elif call.f == "get":
            self._finish(OpType.FAIL, call, None)
        else:
            self._finish(OpType.INFO, call, call.value)

    def _finish(self, kind: OpType, call: _Call, value: object) -> None:
        if kind is OpType.INFO and self.logic is not None and call.command is not None:
            self.logic.unknown(call.command)
        self._record(kind, call, value)
        self._call = None
        if kind is OpType.OK:
            self.counts.ok += 1
        elif kind is OpType.FAIL:
            self.counts.failed += 1
        else:
            self.counts.unknown += 1
            self.process += self._stride
        self._schedule_next()

    def _record(self, kind: OpType, call: _Call, value: object) -> None:
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
