"""Cross-region transactions on a node: the coordinator (`cairn.txn`) driven by the node's
own routing, and the resolution of `-LOCKED` replies (docs/transactions.md).

Theory of operation. `CrossRegion` is what the node asks when a transaction or a
multi-key write names keys in several regions (routing answered CROSSSLOT):

- EXEC (`Transactions`, through `run`): its store commands, with the connection's
  watched keys and fingerprints, run as one `Coordinator` transaction; its reply is the
  EXEC array (or the null array when a watched key changed);
- a multi-key write outside MULTI whose meaning needs one atomic step over all its keys
  (`cairn.shard.routing.TRANSACTIONAL`: MSET, RENAME, SUNIONSTORE ...), or a script
  whose declared keys lie in several regions (EVAL, FCALL and their _RO forms, confined
  to those keys: `cairn.store.scripting.confine`), runs as a one-command transaction
  (`run_command`), for a plain connection. A connection that
  can follow MOVED (`client_redirects`: cluster-aware under `redirect = "auto"`, all
  under "always") still gets CROSSSLOT, as from Redis Cluster: it routes by slot itself
  and must not come to rely on what a real cluster refuses;
- WATCH of keys in several regions (`watch`) reads each region's fingerprints with its
  own `cairn.watch`, in parallel: each is linearizable, and EXEC's locks compare them.

Every internal command goes through `Node._attempt` (local, forwarded, retried on a
stale route until `request_timeout_ms`), in RESP2 when forwarded, decoded here.

`resolve_locked`: a command the store answered `-LOCKED` has not run; the `Resolver`
settles the lock (rolls its transaction forward or back at its primary, or waits while
it is alive) and the node runs the command again, until its deadline.

The timestamps come from the placement group's timestamp oracle: `timestamps` is the
wiring point (`CrossRegion.timestamps`); until one is set, cross-region work is refused
with CROSSSLOT exactly as before, and `-LOCKED` is still resolved (it needs none).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.resp.reply import Array, ErrorReply, Reply
from cairn.runtime.plants import planted_io, txn_plants
from cairn.runtime.reply_decode import ReplyDecodeError, decode_reply
from cairn.shard.routing import CROSSSLOT, SLOT_NOT_SERVED, TRANSACTIONAL
from cairn.shard.topology import Topology
from cairn.store import CommandSpec
from cairn.store.idempotency_entries import IDEMPOTENCY_COMMANDS
from cairn.store.scripting.confine import CROSS_REGION_SCRIPTS
from cairn.store.transaction import TRANSACTION_COMMANDS, WATCH_COMMAND
from cairn.store.txn_locks import TXN_LOCK_COMMANDS, Lock
from cairn.txn import (
    Coordinator,
    Resolver,
    Scratch,
    TimestampSource,
    TxnSettings,
    read_locked_error,
)
from cairn.txn.coordinator import TimestampCallback, TxnIO
from cairn.txn.protocol import LOCKED_PREFIX, Conflict
from cairn.txn.scratch import store_scratch

if TYPE_CHECKING:
    from cairn.runtime.config import NodeConfig
    from cairn.runtime.placement_wiring import NodePlacement

Attempt = Callable[[list[bytes], CommandSpec, int, Callable[[object], None]], None]
"""`Node._attempt`: route and run an internal command (argv, spec, protocol, done)."""

LOCKED_TRYAGAIN = ErrorReply(
    "TRYAGAIN a key is locked by a cross-region transaction still running, retry later"
)
WATCH_TRYAGAIN = ErrorReply("TRYAGAIN the layout changed under WATCH, retry")
_PROTOCOL = 2
"""The protocol internal commands are run in (a forwarded reply is RESP2 bytes)."""


def as_reply(value: object) -> Reply:
    """A reply as a `Reply` (a forwarded one comes back as RESP2 bytes)."""
    if isinstance(value, bytes):
        try:
            return decode_reply(value)
        except ReplyDecodeError as exc:
            return ErrorReply(f"ERR a region's reply could not be read: {exc}")
    return value  # type: ignore[return-value]


def is_crossslot(value: object) -> bool:
    """Whether `value` is routing's CROSSSLOT refusal (as a reply or RESP bytes)."""
    if isinstance(value, bytes):
        return value.startswith(b"-CROSSSLOT ")
    return value == CROSSSLOT


class NodeTxnIO:
    """`cairn.txn.TxnIO` over a node: its routing, its loop, its monotonic clock."""

    def __init__(
        self,
        attempt: Attempt,
        topology: Callable[[], Topology],
        specs: Mapping[str, CommandSpec],
    ) -> None:
        self._attempt = attempt
        self._topology = topology
        self._specs = specs

    def send(self, argv: list[bytes], done: Callable[[Reply], None]) -> None:
        """Route internal command `argv` by its keys and run it."""
        spec = self._specs[argv[0].decode()]
        self._attempt(argv, spec, _PROTOCOL, lambda value: done(as_reply(value)))

    def group(self, keys: Sequence[bytes]) -> list[list[bytes]] | None:
        """`keys` by region, under the node's current layout (None: a gap)."""
        topology = self._topology()
        groups: dict[int, list[bytes]] = {}
        for key in keys:
            region = topology.region_of(key)
            if region is None:
                return None
            groups.setdefault(region.id, []).append(key)
        return list(groups.values())

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_later(delay_s, action)

    def now(self) -> float:
        return time.monotonic()


class CrossRegion:
    """The node's cross-region transactions and lock resolution (module docstring)."""

    def __init__(
        self,
        attempt: Attempt,
        topology: Callable[[], Topology],
        specs: Mapping[str, CommandSpec],
        scratch: Scratch,
        settings: TxnSettings,
        request_timeout_s: float,
    ) -> None:
        self.io: TxnIO = NodeTxnIO(attempt, topology, specs)
        self._attempt = attempt
        self._topology = topology
        self.scratch = scratch
        self.settings = settings
        self.request_timeout_s = request_timeout_s
        self.rng = random.Random()
        self.resolver = Resolver(self.io, settings, self.rng)
        self.timestamps: TimestampSource | None = None
        """The wiring point for the placement group's timestamp oracle (None: cross-region
        transactions are refused with CROSSSLOT, as before they existed)."""

    @property
    def enabled(self) -> bool:
        """Whether cross-region transactions can run (a timestamp source is wired)."""
        return self.timestamps is not None

    def run(
        self,
        watches: Sequence[tuple[bytes, bytes]],
        commands: Sequence[Sequence[bytes]],
        done: Callable[[Reply], None],
    ) -> None:
        """Run a transaction over several regions; `done` gets the EXEC reply."""
        if self.timestamps is None:
            done(CROSSSLOT)
            return

        coordinator = Coordinator(
            watches,
            commands,
            self.io,
            self.timestamps,
            self.scratch,
            self.settings,
            self.rng,
            time.monotonic() + self.request_timeout_s,
            done,
            self.resolver.resolve,
        )
        coordinator.start()

    def resolve_expired(self, key: bytes, lock: Lock) -> None:
        """Settle `key`'s expired `lock` from its transaction's primary (the region
        leader's sweep, `cairn.runtime.reclaimer`): nothing waits on the outcome."""
        conflict = Conflict(key, lock.primary, lock.start_ts, 0)
        self.resolver.resolve(conflict, 0, _nothing)

    def run_command(self, argv: list[bytes], done: Callable[[Reply], None]) -> None:
        """Run one multi-key command as a transaction; `done` gets its own reply."""

        def unwrap(reply: Reply) -> None:
            if isinstance(reply, Array) and len(reply.items) == 1:
                done(reply.items[0])
            else:
                done(reply)

        self.run([], [argv], unwrap)

    def watch(self, keys: Sequence[bytes], done: Callable[[Reply], None]) -> None:
        """WATCH over several regions: one `cairn.watch` per region, in parallel; `done`
        gets the fingerprints in `keys`' order (an Array), or the first error."""
        groups = self.io.group(keys)
        if groups is None:
            done(SLOT_NOT_SERVED)  # never CROSSSLOT: the caller would come back here
            return
        prints: dict[bytes, Reply] = {}
        errors: list[Reply] = []
        left = [len(groups)]
        spec = TRANSACTION_COMMANDS[WATCH_COMMAND]

        def collect(group: list[bytes]) -> Callable[[object], None]:
            def answered(value: object) -> None:
                reply = as_reply(value)
                if isinstance(reply, Array) and len(reply.items) == len(group):
                    prints.update(zip(group, reply.items, strict=True))
                else:
                    bad = not isinstance(reply, ErrorReply) or is_crossslot(reply)
                    errors.append(WATCH_TRYAGAIN if bad else reply)
                left[0] -= 1
                if not left[0]:
                    done(errors[0] if errors else Array(tuple(prints[k] for k in keys)))

            return answered

        for group in groups:
            self._attempt([WATCH_COMMAND.encode(), *group], spec, _PROTOCOL, collect(group))

    def resolve_locked(
        self,
        reply: object,
        attempt: int,
        deadline: float,
        retry: Callable[[], None],
        expired: Callable[[Reply], None],
    ) -> bool:
        """If `reply` is `-LOCKED`, settle that lock and then call `retry`, or, past
        `deadline`, answer `expired(LOCKED_TRYAGAIN)` (True); otherwise False."""
        if not isinstance(reply, bytes | ErrorReply):
            return False
        conflict = read_locked_error(reply)
        if conflict is None:
            return False
        if time.monotonic() >= deadline:
            expired(LOCKED_TRYAGAIN)
        else:
            self.resolver.resolve(conflict, attempt, retry)
        return True



class PlacementTimestamps:
    """`TimestampSource` over the placement group's timestamp oracle
    (`NodePlacement.timestamp`); an error when the node has no placement wiring yet."""

    def __init__(self, placement: Callable[[], NodePlacement | None], timeout_s: float) -> None:
        self._placement = placement
        self.timeout_s = timeout_s

    def get(self, callback: TimestampCallback) -> None:
        placement = self._placement()
        if placement is None:
            asyncio.get_running_loop().call_soon(callback, NO_TIMESTAMP)
            return

        def failed(reason: str) -> None:
            callback(ErrorReply(f"TRYAGAIN no timestamp from the placement group: {reason}"))

        placement.timestamp(callback, failed, self.timeout_s)


NO_TIMESTAMP = ErrorReply("TRYAGAIN no timestamp oracle reachable yet")


def cross_region(
    config: NodeConfig,
    attempt: Attempt,
    topology: Callable[[], Topology],
    placement: Callable[[], NodePlacement | None],
    plant: str = "",
) -> CrossRegion:
    """The node's `CrossRegion`, with its settings from `config` and its timestamps from
    the placement group; `plant`: the node's planted bug (`cairn.runtime.plants`)."""
    limits = config.limits
    timeout_s = limits.request_timeout_ms / 1000
    settings = TxnSettings(
        lock_ttl_ms=limits.txn_lock_ttl_ms,
        max_bytes=limits.max_entry_bytes,  # what is read is prewritten: one entry
        async_max_keys=limits.async_commit_max_keys,
        async_max_key_bytes=limits.async_commit_max_key_bytes,
        plants=txn_plants(plant),
    )
    specs = {**TXN_LOCK_COMMANDS, **IDEMPOTENCY_COMMANDS}  # with IDEMPOTENT's own steps
    cross = CrossRegion(attempt, topology, specs, store_scratch, settings, timeout_s)
    cross.io = planted_io(cross.io, plant, config.node_id, Path(config.data_dir))
    cross.timestamps = PlacementTimestamps(placement, timeout_s)
    return cross


def is_locked(reply: object) -> bool:
    """Whether a reply is the store's `-LOCKED` (cheap: for every inline read)."""
    return isinstance(reply, ErrorReply) and reply.message.startswith(LOCKED_PREFIX)


def takes_transaction(spec: CommandSpec) -> bool:
    """Whether a command refused as CROSSSLOT runs as a cross-region transaction: a
    multi-key write, or a script whose declared keys lie in several regions."""
    return spec.name in TRANSACTIONAL or spec.name in CROSS_REGION_SCRIPTS


def _nothing() -> None:
    """What a sweep's resolution does once settled: nothing (it retries no command)."""
