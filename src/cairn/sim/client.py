"""Simulated clients: issue get/put/append/cas with timeouts and retries, record a history.

Theory of operation. A client has one operation outstanding at a time. It sends the
request to the node it believes leads (requests travel with latency but ignore network
partitions: clients sit outside the cluster's network); the node proposes a write or
starts a linearizable read. The client records a `cairn.check` history:

* OK — the node applied the write (a cas that did not swap is a FAIL: it changed nothing)
  or served the read;
* FAIL — definitely not applied: "not leader", dropped, overwritten; and any failed read;
* INFO — unknown: a timeout or leadership lost while in flight. The process id then
  changes, since a process never has two operations open.

"Not leader" sends the client to the hinted leader; a timeout to a random node.

Scripts (EVAL, FCALL) run as a real node runs them: once, on the leader's state, and
replicated by their effects (`cairn.shard.script_effects`), so runs with scripts check
effects replication under every fault (stale effects, retries, the fallback to the
script itself).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from cairn.check.history import Op, OpType
from cairn.raft.types import NONE, NodeId
from cairn.resp.reply import Reply
from cairn.shard.replica import Callback, Completion, Outcome, Replica
from cairn.shard.script_effects import ScriptEffects
from cairn.sim.cluster import Cluster
from cairn.sim.kv_machine import KVCommand, KVOp
from cairn.sim.loop import HARNESS, EventLoop
from cairn.sim.redis_machine import EPOCH_MS, MachineKind, encode_for
from cairn.sim.workloads import ClientLogic, Command
from cairn.store.machine import StoreMachine, encode_command
from cairn.store.scripting.effects import EFFECT_SCRIPTS

MS = 1_000_000
_MAX_ENTRY_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class ClientParams:
    """How clients behave in one run."""

    keys: tuple[str, ...] = ("k0", "k1", "k2")
    timeout: int = 400 * MS
    think: int = 10 * MS
    latency: int = 1 * MS
    read_weight: float = 0.4


@dataclass(slots=True)
class _Call:
    op_id: int
    f: str
    key: str
    value: object
    command: Command | None = None
    """A queue or stream workload's command (None: a register operation)."""


@dataclass(slots=True)
class HistoryCounts:
    """How the operations of a run ended."""

    ok: int = 0
    failed: int = 0
    unknown: int = 0


class SimClient:
    """One client process (renumbered after each INFO)."""

    def __init__(
        self,
        index: int,
        clients: int,
        cluster: Cluster,
        rng: random.Random,
        params: ClientParams,
        history: list[Op],
        counts: HistoryCounts,
        logic: ClientLogic | None = None,
    ) -> None:
        self.index = index
        self.logic = logic
        """A queue or stream workload's choices (`cairn.sim.workloads`); None: registers."""
        self._setup = logic.setup() if logic is not None else None
        self._stride = clients
        self.process = index
        self.cluster = cluster
        self.loop: EventLoop = cluster.loop
        self.rng = rng
        self.params = params
        self.history = history
        self.counts = counts
        self.target = rng.choice(cluster.ids(None))
        self.stopping = False
        self._op_id = 0
        self._call: _Call | None = None
        self._written = 0
        self._last_seen: dict[str, str | None] = {}
        self._scripts = ScriptEffects(random.Random(index), self._now_ms, lambda: _MAX_ENTRY_BYTES)
        """Scripts as a leader runs them (its own random source: the client's choices
        stay what they were)."""

    @property
    def idle(self) -> bool:
        """Whether no operation is outstanding."""
        return self._call is None

    def start(self) -> None:
        """Begin issuing operations."""
        self._schedule_next()

    def _schedule_next(self) -> None:
        if self.stopping:
            return
        delay = self.rng.randrange(self.params.think + 1)
        self.loop.call_later(delay, HARNESS, f"client {self.index} next", self._invoke)

    # -- choosing and sending ---------------------------------------------------------

    def _choose(self) -> _Call:
        self._op_id += 1
        if self.logic is not None:
            cmd = self.logic.choose(self.rng)
            return _Call(self._op_id, cmd.f, cmd.key, cmd.value, cmd)
        key = self.rng.choice(self.params.keys)
        if self.rng.random() < self.params.read_weight:
            return _Call(self._op_id, "get", key, None)
        self._written += 1
        token = f"{self.index}.{self._written}"
        roll = self.rng.random()
        if roll < 0.4:
            return _Call(self._op_id, "put", key, token)
        if roll < 0.65:
            return _Call(self._op_id, "append", key, token + ";")
        if self.cluster.machine_kind is MachineKind.REDIS:
            return _Call(self._op_id, "put", key, token)
        expected = self._last_seen.get(key)
        return _Call(self._op_id, "cas", key, (expected, token))

    def _invoke(self) -> None:
        if self.stopping or self._call is not None:
            return
        if self._setup is not None:
            self._send_setup(self._setup)
            return
        call = self._choose()
        self._call = call
        self._record(OpType.INVOKE, call, call.value)
        target = self.target
        label = f"client {self.index} -> n{target} {call.f} {call.key}"
        self.loop.call_later(self.params.latency, target, label, lambda: self._arrive(target, call))
        self.loop.call_later(
            self.params.timeout,
            HARNESS,
            f"client {self.index} timeout",
            lambda: self._timeout(call),
        )

    def _arrive(self, node: NodeId, call: _Call) -> None:
        """The request reached `node` (which may be down)."""
        replica = self.cluster.replica(node)
        if replica is None:
            return
        if call.f == "get":
            replica.read(lambda done: self._reply(node, call, done, self._read_value(node, call)))
            return
        machine = self.cluster.nodes[node].machine
        if (
            call.command is not None
            and call.command.name in EFFECT_SCRIPTS
            and isinstance(machine, StoreMachine)
        ):
            io = _ScriptIo(self, node, call, replica)
            self._scripts.start(call.command.name, call.command.argv(), machine, io)
            return
        if call.command is not None:
            data = encode_command(call.command.name, call.command.argv(), self._now_ms())
        else:
            data = encode_for(self.cluster.machine_kind, self._command(call), self.loop.now)
        replica.propose(data, lambda done: self._reply(node, call, done, None))

    def _now_ms(self) -> int:
        return EPOCH_MS + self.loop.now // MS

    def _read_value(self, node: NodeId, call: _Call) -> Callable[[], str | None]:
        def read() -> str | None:
            machine = self.cluster.nodes[node].machine
            return machine.get(call.key) if machine is not None else None

        return read

    @staticmethod
    def _command(call: _Call) -> KVCommand:
        if call.f == "cas":
            assert isinstance(call.value, tuple)
            expected, new = call.value
            return KVCommand(KVOp.CAS, call.key, new, expected)
        assert isinstance(call.value, str)
        return KVCommand(KVOp(call.f), call.key, call.value)

    def _reply(
        self, node: NodeId, call: _Call, done: Completion, read: Callable[[], str | None] | None
    ) -> None:
        value = read() if read is not None and done.outcome is Outcome.OK else None
        label = f"client {self.index} <- n{node} {done.outcome.value}"
        self.loop.call_later(
            self.params.latency, HARNESS, label, lambda: self._complete(node, call, done, value)
        )

    # -- completing -------------------------------------------------------------------

    def _complete(self, node: NodeId, call: _Call, done: Completion, value: object) -> None:
        if self._call is not call:
            return  # a late reply after a timeout
        if done.outcome is Outcome.OK and call.command is not None:
            assert self.logic is not None
            kind, result = self.logic.complete(call.command, cast(Reply, done.value))
            self._finish(kind, call, result)
        elif done.outcome is Outcome.OK:
            self._complete_ok(call, done, value)
        elif done.outcome is Outcome.REJECTED or call.f == "get":
            self._finish(OpType.FAIL, call, None if call.f == "get" else call.value)
        else:
            self._finish(OpType.INFO, call, None if call.f == "get" else call.value)
        self._retarget(node, done.leader_hint, done.outcome is Outcome.OK)

    def _complete_ok(self, call: _Call, done: Completion, value: object) -> None:
        if call.f == "get":
            assert value is None or isinstance(value, str)
            self._last_seen[call.key] = value
            self._finish(OpType.OK, call, value)
        elif call.f == "cas" and done.value is not True:
            self._finish(OpType.FAIL, call, call.value)
        else:
            self._finish(OpType.OK, call, call.value)

    def _timeout(self, call: _Call) -> None:
        if self._call is not call:
            return
        if call.f == "get":
            self._finish(OpType.FAIL, call, None)
        else:
            self._finish(OpType.INFO, call, call.value)
        self._retarget(self.target, NONE, False)

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

    def _send_setup(self, cmd: Command) -> None:
        """Propose the workload's setup command (unrecorded); try again until it is done."""
        self._op_id += 1
        call = _Call(self._op_id, cmd.f, cmd.key, None, cmd)
        self._call = call
        target = self.target
        now_ms = EPOCH_MS + self.loop.now // MS

        def answered(done: Completion) -> None:
            label = f"client {self.index} setup reply"
            self.loop.call_later(
                self.params.latency, HARNESS, label, lambda: self._setup_reply(call, target, done)
            )

        def arrive() -> None:
            replica = self.cluster.replica(target)
            if replica is not None:
                replica.propose(encode_command(cmd.name, cmd.argv(), now_ms), answered)

        self.loop.call_later(self.params.latency, target, f"client {self.index} setup", arrive)
        self.loop.call_later(
            self.params.timeout,
            HARNESS,
            f"client {self.index} setup timeout",
            lambda: self._setup_reply(call, target, None),
        )

    def _setup_reply(self, call: _Call, node: NodeId, done: Completion | None) -> None:
        if self._call is not call:
            return
        self._call = None
        assert self.logic is not None
        ok = done is not None and done.outcome is Outcome.OK
        if ok and done is not None and self.logic.setup_done(cast(Reply, done.value)):
            self._setup = None
        self._retarget(node, NONE if done is None else done.leader_hint, ok)
        self._schedule_next()

    def _retarget(self, node: NodeId, hint: NodeId, ok: bool) -> None:
        if ok:
            self.target = node
        elif hint != NONE and hint in self.cluster.nodes:
            self.target = hint
        else:
            self.target = self.rng.choice(self.cluster.ids(None))

    def _record(self, kind: OpType, call: _Call, value: object) -> None:
        self.history.append(Op(self.process, kind, call.f, call.key, value, self.loop.now))


class _ScriptIo:
    """One script call's `EffectsIo` on a simulated node: the replica's reads and
    proposals; its outcome goes back to the client as any reply does."""

    def __init__(self, client: SimClient, node: NodeId, call: _Call, replica: Replica) -> None:
        self._client = client
        self._node = node
        self._call = call
        self._replica = replica

    def read(self, on_done: Callback) -> None:
        self._replica.read(on_done)

    def propose(self, command: bytes, on_done: Callback) -> None:
        self._replica.propose(command, on_done)

    def replay(self) -> None:
        command = self._call.command
        assert command is not None
        data = encode_command(command.name, command.argv(), self._client._now_ms())
        self._replica.propose(data, self.done)

    def done(self, completion: Completion) -> None:
        self._client._reply(self._node, self._call, completion, None)

    def cancelled(self) -> bool:
        return self._client._call is not self._call
