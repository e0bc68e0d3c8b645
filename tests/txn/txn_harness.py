"""Regions as real `StoreMachine`s, and a simulated node around them, for the coordinator.

`World` holds a few regions (each a `StoreMachine` over memory), places a key by its first
byte (`REGION_OF`), and implements `cairn.txn.TxnIO` with a virtual clock: every command
sent is applied to its region's machine when its delivery time comes (`latency_s` later),
so several transactions and clients interleave as on a real node, deterministically.
`drops` make the world lose every command matching a predicate from then on (a
coordinator that dies), `failures` answer an error instead of running one, `delays`
deliver one late.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random

from cairn.resp.reply import ErrorReply, Reply
from cairn.store import StoreMachine, classify, encode_command
from cairn.store.layout import LOCK_TAG
from cairn.store.transaction import TRANSACTION_COMMANDS
from cairn.store.txn_locks import TXN_LOCK_COMMANDS
from cairn.txn import Coordinator, Resolver, TxnSettings, read_locked_error
from cairn.txn.coordinator import TimestampCallback
from cairn.txn.protocol import LOGICAL_BITS
from cairn.txn.scratch import store_scratch

CROSSSLOT = ErrorReply("CROSSSLOT Keys in request don't hash to the same slot")
START_MS = 1_700_000_000_000
REGION_OF = {ord("a"): 0, ord("b"): 1, ord("c"): 2}
"""Keys are placed by their first byte: a..., b..., c... (anything else: region 0)."""


DEFAULT_SETTINGS = TxnSettings(lock_ttl_ms=300)
"""A new `World`'s settings (async commit on, as in a node's default config); a test
module may switch it (`test_txn_coordinator.py` runs its tests under both commits)."""


def region_of(key: bytes) -> int:
    return REGION_OF.get(key[0], 0) if key else 0


@dataclass
class Region:
    """One region: a real machine and its log index."""

    machine: StoreMachine = field(default_factory=StoreMachine)
    index: int = 0

    def run(self, argv: Sequence[bytes], now_ms: int) -> Reply:
        """Run `argv` as the region's leader would: a write as an entry, a read on the
        applied state."""
        name = argv[0].decode().lower()
        spec = (
            TXN_LOCK_COMMANDS.get(name) or TRANSACTION_COMMANDS.get(name) or classify(list(argv))
        )
        if isinstance(spec, ErrorReply):
            return spec
        if not spec.is_write:
            return self.machine.execute_read(spec.name, list(argv[1:]), now_ms)
        self.index += 1
        return self.machine.apply(self.index, encode_command(spec.name, list(argv[1:]), now_ms))


class Oracle:
    """A test timestamp source on the world's virtual clock (never a production one)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.last = 0
        self.fail = False

    def get(self, callback: TimestampCallback) -> None:
        if self.fail:
            self.world.later(0.001, lambda: callback(ErrorReply("TRYAGAIN no oracle")))
            return
        ts = max(self.last + 1, self.world.now_ms() << LOGICAL_BITS)
        self.last = ts
        self.world.later(0.001, lambda: callback(ts))


class World:
    """Regions, a virtual clock and a queue of deliveries: a `TxnIO`."""

    def __init__(self, regions: int = 3, latency_s: float = 0.001, seed: int = 7) -> None:
        self.regions = [Region() for _ in range(regions)]
        self.latency_s = latency_s
        self.clock = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.sent: list[list[bytes]] = []
        self.drops: list[Callable[[list[bytes]], bool]] = []
        self.failures: list[Callable[[list[bytes]], bool]] = []
        self.delays: list[tuple[Callable[[list[bytes]], bool], float]] = []
        self.oracle = Oracle(self)
        self.rng = Random(seed)
        self.settings = DEFAULT_SETTINGS
        self.resolver = Resolver(self, self.settings, self.rng)

    # -- TxnIO ----------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock

    def now_ms(self) -> int:
        return START_MS + int(self.clock * 1000)

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (self.clock + delay_s, next(self._seq), action))

    def group(self, keys: Sequence[bytes]) -> list[list[bytes]] | None:
        groups: dict[int, list[bytes]] = {}
        for key in keys:
            groups.setdefault(region_of(key), []).append(key)
        return list(groups.values())

    def send(self, argv: list[bytes], done: Callable[[Reply], None]) -> None:
        self.sent.append(argv)
        if any(drop(argv) for drop in self.drops):
            return
        delay = self.latency_s
        for i, (slow, extra) in enumerate(self.delays):
            if slow(argv):
                del self.delays[i]  # each delay happens once
                delay += extra
                break
        self.later(delay, lambda: done(self._deliver(argv)))

    def _deliver(self, argv: list[bytes]) -> Reply:
        for i, fail in enumerate(self.failures):
            if fail(argv):
                del self.failures[i]  # each failure happens once
                return ErrorReply("TRYAGAIN no leader is available right now, retry later")
        name = argv[0].decode()
        spec = TXN_LOCK_COMMANDS[name]
        keys = spec.keys(argv)
        regions = {region_of(k) for k in keys}
        if len(regions) != 1:
            return CROSSSLOT
        return self.regions[regions.pop()].run(argv, self.now_ms())

    # -- driving --------------------------------------------------------------------------

    def run(self, until: float | None = None) -> None:
        """Deliver everything due (up to virtual time `until`)."""
        while self._queue and (until is None or self._queue[0][0] <= until):
            at, _, action = heapq.heappop(self._queue)
            self.clock = max(self.clock, at)
            action()
        if until is not None:
            self.clock = max(self.clock, until)

    def transaction(
        self,
        commands: Sequence[Sequence[bytes | str]],
        watches: Sequence[tuple[bytes, bytes]] = (),
        timeout_s: float = 2.0,
    ) -> Outcome:
        """Start a transaction (run the world to see it end)."""
        outcome = Outcome()
        argvs = [[a.encode() if isinstance(a, str) else a for a in c] for c in commands]
        coordinator = Coordinator(
            watches,
            argvs,
            self,
            self.oracle,
            store_scratch,
            self.settings,
            self.rng,
            self.clock + timeout_s,
            outcome.set,
            self.resolver.resolve,
        )
        outcome.coordinator = coordinator
        coordinator.start()
        return outcome

    def call(self, *argv: bytes | str, timeout_s: float = 2.0) -> Reply:
        """A client command, as the node runs it: a `-LOCKED` reply is resolved and the
        command run again until its deadline; runs the world until it is answered."""
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        deadline = self.clock + timeout_s
        answer: list[Reply] = []

        def attempt(waits: int) -> None:
            keys = classify(args)
            assert not isinstance(keys, ErrorReply)
            region = region_of(keys.keys(args)[0]) if keys.keys(args) else 0
            reply = self.regions[region].run(args, self.now_ms())
            conflict = read_locked_error(reply)
            if conflict is None or self.clock >= deadline:
                answer.append(reply)
                return
            self.resolver.resolve(conflict, waits, lambda: attempt(waits + 1))

        attempt(0)
        while not answer and self._queue:
            at, _, action = heapq.heappop(self._queue)
            self.clock = max(self.clock, at)
            action()
        assert answer, "the command was never answered"
        return answer[0]

    def raw(self, *argv: bytes | str) -> Reply:
        """Run a command straight on its region, no lock resolution."""
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        spec = TRANSACTION_COMMANDS.get(args[0].decode()) or classify(args)
        assert not isinstance(spec, ErrorReply)
        keys = spec.keys(args)
        return self.regions[region_of(keys[0]) if keys else 0].run(args, self.now_ms())

    def locks(self) -> int:
        """How many lock records the regions hold."""
        total = 0
        for region in self.regions:
            total += len(region.machine.keyspace.scan(LOCK_TAG, b"M"))
        return total


@dataclass
class Outcome:
    """A transaction's answer, once it has one."""

    replies: list[Reply] = field(default_factory=list)
    coordinator: Coordinator | None = None

    def set(self, reply: Reply) -> None:
        self.replies.append(reply)

    @property
    def reply(self) -> Reply:
        assert len(self.replies) == 1, self.replies
        return self.replies[0]
