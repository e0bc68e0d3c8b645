"""Cross-region transactions in the simulator: the real `cairn.txn` coordinator and
resolver, driven by a simulated client over the simulator's normal client path.

Theory of operation. A simulated client (`cairn.sim.region_client.RoutedClient`) whose
transaction names keys in several regions (as it last learned the layout) runs a real
`cairn.txn.Coordinator` over a `SimTxnIO`: each internal command (`cairn.txn.lock`,
`prewrite`, `commit`, `rollback`, `status`) is routed by its keys like any other request,
sent (after the client's latency) to the node the client believes leads the region and
proposed there under the region's epoch, so every fault of the run applies to it. A
refused proposal (not the leader, stale epoch) is sent again after a pause, as a real
node's forwarding retries; an unknown outcome (leadership lost in flight, no answer
within `SEND_TIMEOUT`) is answered `-UNCERTAIN`, which the coordinator treats as a lost
message. The timestamps come from the placement group's timestamp oracle through a live
node's `TsoClient` (`SimTimestamps`); every one handed out is logged (`TsoLog`) and its
real-time order checked at the end, the property a transaction's `start_ts` relies on.

The coordinator may crash (`CRASH_STAGES`): right after it sends its first lock, prewrite
or commit, right after its last prewrite (async commit's commit point, if they all
apply), or right after it answered the client; from then on its `SimTxnIO` is dead
(nothing more is sent, nothing more is delivered to it) and the client, if not answered
yet, records the outcome unknown. A client that times out kills its coordinator the same
way. The locks it leaves are resolved by whoever meets them (`cairn.txn.Resolver`: rolled
forward or back from the primary's status once its ttl ran out, on virtual time), and by
`cairn.sim.txn_run.settle` at the end of the run, before the final read.

Pure: no I/O, no clock but the event loop's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cairn.check.tso import TsoLog
from cairn.meta.region import Region
from cairn.placement.tso import TSO_BACKWARDS
from cairn.raft.types import NodeId
from cairn.resp.reply import ErrorReply, Reply
from cairn.shard.host import StaleEpochError
from cairn.shard.replica import Completion, Outcome
from cairn.sim.loop import HARNESS
from cairn.sim.store_range import EPOCH_MS, SimStoreMachine
from cairn.store.machine import StoreMachine, encode_command
from cairn.store.txn_locks import (
    COMMIT_COMMAND,
    LOCK_COMMAND,
    PREWRITE_COMMAND,
    TXN_LOCK_COMMANDS,
    lock_error,
)
from cairn.txn import TxnSettings
from cairn.txn.coordinator import SECONDARIES_FIRST, TimestampCallback

if TYPE_CHECKING:
    from cairn.sim.region_client import RoutedClient

MS = 1_000_000
SEND_TIMEOUT = 250 * MS
"""How long one internal command waits for its region before it is answered -UNCERTAIN."""
SEND_RETRY = 10 * MS
"""The pause before a refused internal command is sent again."""
SEND_WINDOW = 300 * MS
"""How long a refused internal command keeps being sent again before -TRYAGAIN."""
TSO_TIMEOUT_S = 0.5
LOCK_TTL_MS = 300
"""The simulated lock ttl: short against a run of a few virtual seconds, so locks left by
a dead coordinator are resolved while clients still run."""

CRASH_STAGES = ("lock", "prewrite", "prewrote", "commit", "answered")
"""Where a coordinator may die: after its first lock, prewrite or commit went out, after
its last prewrite went out (an async commit is then committed if they all apply, and
readers roll it forward; rolled back otherwise), or after it answered its client (its
secondaries then wait for a reader)."""
LAST_PREWRITE = PREWRITE_COMMAND + " (last)"
"""The crash trigger of stage "prewrote": the coordinator sends its prewrites together,
so it dies at the next event after the first one left (`SimTxnIO.send`)."""
STAGE_COMMAND = {
    "lock": LOCK_COMMAND,
    "prewrite": PREWRITE_COMMAND,
    "prewrote": LAST_PREWRITE,
    "commit": COMMIT_COMMAND,
}
TWO_PHASE_EVERY = 4
"""Every this many-th coordinator of a run commits in two phases (async commit off), the
others asynchronously (their transactions are small), so a run exercises both paths."""

UNCERTAIN = ErrorReply("UNCERTAIN the region did not answer in time")
TRYAGAIN = ErrorReply("TRYAGAIN the region's leader could not be reached")
NO_ROUTE = ErrorReply("TRYAGAIN no region is known for the key")

READS_IGNORE_LOCKS = "reads-ignore-locks"
"""Planted bug: every region's store serves reads without the lock check
(`StoreMachine.reads_ignore_locks`)."""
TXN_PLANTS = (SECONDARIES_FIRST, READS_IGNORE_LOCKS, TSO_BACKWARDS)
"""The planted bugs of cross-region transactions a run can switch on (`cairn sim --plant`):
the coordinator's, the store's and the timestamp oracle's."""


@dataclass(slots=True)
class TxnStats:
    """What the transactions of a run did (shared by its clients)."""

    cross_region: int = 0
    """Transactions (and setup commands) run by the coordinator over several regions."""
    single_region: int = 0
    """Transactions proposed as one `cairn.exec` in one region (1PC)."""
    coordinator_crashes: int = 0
    gave_up: int = 0
    """Coordinators killed because their client timed out."""
    locked: int = 0
    """-LOCKED replies met by single-region commands and reads (each then resolved)."""
    resolved: int = 0
    """Locks rolled forward or back by the clients' resolvers."""
    checked: int = 0
    """Async commits the clients' resolvers decided by checking their secondaries."""

    def figures(self) -> dict[str, int]:
        """The counts by name (`RegionSimResult.transactions`)."""
        return {
            "cross_region": self.cross_region,
            "single_region": self.single_region,
            "coordinator_crashes": self.coordinator_crashes,
            "gave_up": self.gave_up,
            "locked": self.locked,
            "resolved": self.resolved,
            "checked": self.checked,
        }


@dataclass(slots=True)
class TxnContext:
    """What a run's clients share for cross-region transactions."""

    settings: TxnSettings
    tso_clients: Callable[[], dict[NodeId, object]]
    """Each live node's `TsoClient` (`SimPlacement.tso_clients`)."""
    crash_rate: float = 0.0
    """The chance that a cross-region transaction's coordinator dies (`CRASH_STAGES`)."""
    crash_stages: tuple[str, ...] = CRASH_STAGES
    """Where a dying coordinator dies."""
    stats: TxnStats = field(default_factory=TxnStats)
    tso: TsoLog = field(default_factory=TsoLog)
    started: int = 0
    """Coordinators started so far (`coordinator_settings`)."""

    def coordinator_settings(self) -> TxnSettings:
        """The settings of the next coordinator: two-phase for every `TWO_PHASE_EVERY`-th
        one, async commit (as `settings` allow) for the others; deterministic."""
        self.started += 1
        if self.started % TWO_PHASE_EVERY:
            return self.settings
        return replace(self.settings, async_max_keys=0)


class SimTxnIO:
    """`cairn.txn.TxnIO` of one simulated client: its routes, leader hints and latency;
    `dead` once its coordinator crashed or was given up (module docstring)."""

    def __init__(self, client: RoutedClient, on_crash: Callable[[], None] | None = None) -> None:
        self.client = client
        self.loop = client.loop
        self.dead = False
        self.crash_at: str | None = None
        """The command after whose first sending this coordinator dies (None: never)."""
        self._on_crash = on_crash

    def send(self, argv: list[bytes], done: Callable[[Reply], None]) -> None:
        """Route `argv` by its keys and propose it in the region holding them."""
        if self.dead:
            return
        self._attempt(argv, done, self.loop.now + SEND_WINDOW)
        trigger = self.crash_at
        if trigger is not None and argv[0] == trigger.encode():
            self._crash()
        elif trigger == LAST_PREWRITE and argv[0] == PREWRITE_COMMAND.encode():
            self.crash_at = None  # the other prewrites leave in this same step
            self.loop.call_later(1, HARNESS, "coordinator dies after its prewrites", self._crash)

    def _crash(self) -> None:
        """The coordinator dies now (its client learns of it a moment later)."""
        if self.dead:
            return
        self.kill()
        if self._on_crash is not None:
            self.loop.call_later(MS, HARNESS, "coordinator crashed", self._on_crash)

    def kill(self) -> None:
        """Nothing more goes out, nothing more comes back."""
        self.dead = True

    def _attempt(self, argv: list[bytes], done: Callable[[Reply], None], until: int) -> None:
        client = self.client
        keys = TXN_LOCK_COMMANDS[argv[0].decode()].keys(argv)
        region = client.route_or_refresh(keys[0].decode("latin-1")) if keys else None
        if region is None:
            self._answer(done, NO_ROUTE)
            return
        node = client.target(region)
        answered = [False]

        def reply(completion: Completion) -> None:
            if answered[0]:
                return
            answered[0] = True
            timer.cancel()  # not a step of the run any more
            self._completed(argv, done, until, region, node, completion)

        def arrive() -> None:
            host = client.cluster.host(node)
            if host is None:
                return
            command = encode_command(argv[0].decode(), argv[1:], client.now_ms())
            host.propose(region.id, region.epoch, command, lambda d: self._back(reply, d))

        latency = client.params.latency
        self.loop.call_later(latency, node, f"txn {argv[0].decode()} -> n{node}", arrive)
        timeout = Completion(Outcome.UNKNOWN, None, "no answer")
        timer = self.loop.call_later(
            SEND_TIMEOUT, HARNESS, "txn send timeout", lambda: reply(timeout)
        )

    def _back(self, reply: Callable[[Completion], None], done: Completion) -> None:
        latency = self.client.params.latency
        self.loop.call_later(latency, HARNESS, "txn reply", lambda: reply(done))

    def _completed(
        self,
        argv: list[bytes],
        done: Callable[[Reply], None],
        until: int,
        region: Region,
        node: NodeId,
        completion: Completion,
    ) -> None:
        if self.dead:
            return
        client = self.client
        client.note_leader(region.id, node, completion)
        if completion.outcome is Outcome.OK:
            assert isinstance(completion.value, Reply)
            done(completion.value)
        elif completion.outcome is Outcome.REJECTED and self.loop.now < until:
            if isinstance(completion.value, StaleEpochError):
                client.refresh()
            self.later(SEND_RETRY / 1e9, lambda: self._attempt(argv, done, until))
        elif completion.outcome is Outcome.REJECTED:
            done(TRYAGAIN)
        else:
            done(UNCERTAIN)

    def _answer(self, done: Callable[[Reply], None], reply: Reply) -> None:
        self.later(self.client.params.latency / 1e9, lambda: done(reply))

    def group(self, keys: Sequence[bytes]) -> list[list[bytes]] | None:
        """`keys` by the region the client routes them to (None: one has no region)."""
        groups: dict[int, list[bytes]] = {}
        for key in keys:
            region = self.client.route_or_refresh(key.decode("latin-1"))
            if region is None:
                return None
            groups.setdefault(region.id, []).append(key)
        return list(groups.values())

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        """Run `action` after `delay_s` virtual seconds (unless dead by then)."""

        def fire() -> None:
            if not self.dead:
                action()

        delay = max(1, int(delay_s * 1e9))
        self.loop.call_later(delay, HARNESS, f"txn later c{self.client.index}", fire)

    def now(self) -> float:
        """Virtual time in seconds."""
        return self.loop.now / 1e9


class SimTimestamps:
    """`TimestampSource` over a live node's `TsoClient` (the node chosen at random, as the
    node a client is connected to), logged in the run's `TsoLog`."""

    def __init__(self, io: SimTxnIO, context: TxnContext, rng: random.Random) -> None:
        self.io = io
        self.context = context
        self.rng = rng

    def get(self, callback: TimestampCallback) -> None:
        clients = self.context.tso_clients()
        if not clients:
            self.io.later(0.01, lambda: callback(ErrorReply("TRYAGAIN no live node")))
            return
        node = self.rng.choice(sorted(clients))
        tso = clients[node]
        loop = self.io.loop
        asked = loop.now
        answered = [False]

        def deliver(value: int | ErrorReply) -> None:
            if answered[0]:
                return
            answered[0] = True
            if isinstance(value, int) and not self.io.dead:
                self.context.tso.got.append((asked, loop.now, value))
            callback(value)

        def on_ts(ts: int) -> None:
            self.io.later(self.io.client.params.latency / 1e9, lambda: deliver(ts))

        def on_error(reason: str) -> None:
            error = ErrorReply(f"TRYAGAIN no timestamp: {reason}")
            self.io.later(self.io.client.params.latency / 1e9, lambda: deliver(error))

        tso.timestamp(on_ts, on_error, TSO_TIMEOUT_S)  # type: ignore[attr-defined]


def store_of(client: RoutedClient, node: NodeId, region_id: int) -> SimStoreMachine | None:
    """The store machine of region `region_id`'s peer on `node` (None: none there)."""
    host = client.cluster.host(node)
    peer = host.peers.get(region_id) if host is not None else None
    if peer is None:
        return None
    inner = peer.machine.inner
    return inner if isinstance(inner, SimStoreMachine) else None


def lock_on(store: StoreMachine, key: str, now_ms: int) -> ErrorReply | None:
    """The `-LOCKED` reply for `key` on `store` (the real lock check, whatever planted
    bug its reads carry)."""
    return lock_error(store.keyspace, [key.encode()], now_ms)


def now_ms_of(client: RoutedClient) -> int:
    """The client's wall clock (entries' time)."""
    return EPOCH_MS + client.loop.now // MS
