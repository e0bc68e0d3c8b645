"""A node's side of tenants: counting usage, learning the table, refusing over quota.

Theory of operation (see `cairn.placement.tenants` for the cluster's side). Every
`interval` seconds the node counts, in each region it leads, the keys and bytes under
every tenant's prefix (`region_usage`) and proposes them to the placement group in a
`ReportTenantUsage`; the answer is every tenant's cluster-wide usage, which becomes the
table this node enforces. One report is in flight at a time; a lost one is simply
followed by the next.

`check` runs on the node a client is connected to, before the command is routed or
proposed, so a refused command has written nothing anywhere: for a connection
authenticated as a tenant's user, every command takes a token from the tenant's bucket
on this node (`max-ops`), and a write that is not a removal is refused while the table
shows the tenant at or over `max-keys` or `max-bytes`. Reads and removals (DEL, UNLINK,
HDEL, ...) always pass the size quotas, so a tenant over quota can free space.

Counting: a tenant's keys hash over every slot, so the count walks, for each slot the
region holds keys in (its per-slot count records), the metadata records starting with
the prefix, and for each of them its field records; bytes are the sizes of those
records (keys and values). The walk is bounded by the tenant's data in the region,
repeated every interval: fine for tenants of modest size, the next step for big ones is
an incrementally kept count.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from cairn.placement.commands import (
    Command,
    ReportTenantUsage,
    Result,
    TenantTable,
)
from cairn.placement.tenants import (
    QUOTAS,
    RegionUsage,
    TenantState,
    TenantUsage,
    TokenBucket,
    quota_error,
)
from cairn.resp.reply import ErrorReply
from cairn.runtime.region_inspector import slot_counts
from cairn.store.layout import META_TAG, encode_slot, prefix_end
from cairn.store.machine import StoreMachine

DEFAULT_INTERVAL = 1.0
"""Seconds between two usage reports of a node (the quotas' softness)."""
_PAGE = 512

REMOVALS = frozenset(
    {
        "del",
        "unlink",
        "getdel",
        "hdel",
        "srem",
        "zrem",
        "lpop",
        "rpop",
        "lrem",
        "ltrim",
        "spop",
        "xdel",
        "xtrim",
        "zpopmin",
        "zpopmax",
        "zremrangebyscore",
        "zremrangebyrank",
        "zremrangebylex",
        "blpop",
        "brpop",
        "bzpopmin",
        "bzpopmax",
    }
)
"""Writes that only remove data: allowed over the size quotas."""

Propose = Callable[[Sequence[Command], Callable[[tuple[Result, ...] | None], None]], bool]
"""Proposes commands to the placement group (False: none to propose to)."""
KeyInfo = Callable[[list[bytes]], tuple[list[bytes], bool] | None]
"""A command's (keys, is_write), None for no such command (`acl_key_info`)."""


def region_usage(machine: StoreMachine, prefixes: Mapping[str, bytes]) -> tuple[TenantUsage, ...]:
    """The keys and bytes of each tenant (name → key prefix) in `machine`'s region."""
    lo, hi = machine.scope.meta_bounds()
    slots = [slot for slot, keys in slot_counts(machine) if keys > 0]
    usage = []
    for name, prefix in sorted(prefixes.items()):
        keys = size = 0
        for slot in slots:
            start = META_TAG + encode_slot(slot) + prefix
            end = prefix_end(start)
            k, s = _walk(machine, max(start, lo), hi if end is None else min(end, hi))
            keys, size = keys + k, size + s
        usage.append(TenantUsage(name, keys, size))
    return tuple(usage)


def _walk(machine: StoreMachine, start: bytes, end: bytes) -> tuple[int, int]:
    """(records, bytes) of the metadata records in [start, end) and their field records."""
    keys = size = 0
    while start < end:
        page = machine.keyspace.scan(start, end, _PAGE)
        for internal, value in page:
            keys += 1
            size += len(internal) - 3 + len(value) + _field_bytes(machine, internal)
        if len(page) < _PAGE:
            break
        start = page[-1][0] + b"\0"
    return keys, size


def _field_bytes(machine: StoreMachine, internal: bytes) -> int:
    """The bytes of the field records of the key whose metadata key is `internal`."""
    key = internal[3:]
    start = b"F" + internal[1:3] + len(key).to_bytes(4, "big") + key
    end = prefix_end(start)
    total = 0
    while True:
        page = machine.keyspace.scan(start, end, _PAGE)
        total += sum(len(k) + len(v) for k, v in page)
        if len(page) < _PAGE:
            return total
        start = page[-1][0] + b"\0"


@dataclass(slots=True)
class TenantFigures:
    """One tenant as `/metrics` and the admin API show it from one node."""

    state: TenantState
    ops: int
    refusals: dict[str, int]


class NodeTenants:
    """The tenants as one node knows and enforces them (see the module docstring)."""

    def __init__(
        self,
        node_id: int,
        propose: Propose,
        led: Callable[[], Iterable[tuple[int, StoreMachine]]],
        key_info: KeyInfo,
        clock: Callable[[], float],
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.node_id = node_id
        self.propose = propose
        self.key_info = key_info
        self.led = led
        """The (region id, machine) of every region this node leads."""
        self.clock = clock
        self.interval = interval
        self.states: dict[str, TenantState] = {}
        self.learned_at: float | None = None
        """When the table was last learned (None: never)."""
        self.ops: Counter[str] = Counter()
        self.refusals: Counter[tuple[str, str]] = Counter()
        self._buckets: dict[str, TokenBucket] = {}
        self._in_flight = False
        self._wanted = False
        """A table is owed (at start, or the users changed): report until one is learned,
        even while no tenant is known."""
        self._again = False
        self._timer: asyncio.TimerHandle | None = None

    # -- enforcement ----------------------------------------------------------------------

    def check(self, user: str, argv: list[bytes]) -> ErrorReply | None:
        """Whether `user` may run `argv` now (an error when a quota refuses)."""
        state = self.states.get(user)
        if state is None:
            return None
        name = argv[0].lower().decode("utf-8", "replace")
        info = self.key_info(argv)
        is_write = info is not None and info[1]
        self.ops[user] += 1
        if state.spec.max_ops and not self._take(user, state.spec.max_ops):
            return self._refuse(state, "max-ops")
        if is_write and name not in REMOVALS:
            quota = state.over_quota()
            if quota is not None:
                return self._refuse(state, quota)
        return None

    def _take(self, user: str, rate: int) -> bool:
        now = self.clock()
        bucket = self._buckets.get(user)
        if bucket is None or bucket.rate != rate:
            bucket = TokenBucket.full(rate, now)
        taken, self._buckets[user] = bucket.take(now)
        return taken

    def _refuse(self, state: TenantState, quota: str) -> ErrorReply:
        self.refusals[(state.spec.name, quota)] += 1
        return ErrorReply(quota_error(state, quota))

    def adopt(self, tenants: Iterable[TenantState]) -> None:
        """The cluster's table, from a report's answer."""
        self.states = {t.spec.name: t for t in tenants}
        self.learned_at = self.clock()
        for name in [n for n in self._buckets if n not in self.states]:
            del self._buckets[name]
        for name in [n for n in self.ops if n not in self.states]:
            del self.ops[name]  # a deleted tenant's counters go with it
        for key in [k for k in self.refusals if k[0] not in self.states]:
            del self.refusals[key]

    def figures(self) -> list[TenantFigures]:
        """Every known tenant with this node's counters, by name."""
        return [
            TenantFigures(
                self.states[n],
                self.ops[n],
                {q: self.refusals[(n, q)] for q in QUOTAS},
            )
            for n in sorted(self.states)
        ]

    # -- reporting ------------------------------------------------------------------------

    def start(self) -> None:
        """Report every `interval` seconds from now on (on the running loop), while this
        node knows a tenant; once at start to learn them. A node that knows none stays
        quiet (each report is a placement-group write) until `report_now`."""
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._round)
        self._wanted = True

    def stop(self) -> None:
        """Stop reporting."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def report_now(self) -> None:
        """Count and report at once (a tenant was created or deleted): after the report in
        flight, if there is one, whose answer may predate the change."""
        self._wanted = True
        if self._in_flight:
            self._again = True
        else:
            self._report()

    def _round(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._round)
        if not self._in_flight and (self.states or self._wanted):
            self._report()

    def _report(self) -> None:
        prefixes = {n: s.spec.prefix.encode() for n, s in self.states.items()}
        regions = tuple(
            RegionUsage(region_id, region_usage(machine, prefixes))
            for region_id, machine in (self.led() if prefixes else ())
        )
        now_ms = int(time.time() * 1000)
        command = ReportTenantUsage(self.node_id, regions, now_ms)
        self._in_flight = True  # before: an answer may come within `propose`
        if not self.propose((command,), self._answer):
            self._in_flight = False

    def _answer(self, results: tuple[Result, ...] | None) -> None:
        self._in_flight = False
        if results and isinstance(results[0], TenantTable):
            self.adopt(results[0].tenants)
            self._wanted = self._again
        if self._again:
            self._again = False
            self._report()
