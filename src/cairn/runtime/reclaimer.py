"""The background task that reclaims garbage through Raft: the records of deleted large
values and the trimmed records of streams.

Theory of operation. Deleting a large list, set, sorted set, hash or stream only buries
it, and trimming a stream only moves its cut (`cairn.store.reclaim`,
`cairn.store.commands.stream_reclaim`): the records stay until the region's leader
proposes `RECLAIM_COMMAND` entries, each deleting at most `RECLAIM_BUDGET` records of
either kind on every replica at the same log index. This task is the one proposer of that
work, with one policy for both kinds. It runs on every node; for each region it leads
that holds garbage (a graveyard record, `StoreMachine.has_garbage`, or streams with
trimmed records, found by `StoreMachine.reclaimable_streams`' incremental walk and named
in the step) it proposes `DEPTH` steps, waits for them to be applied, and goes on while
garbage remains: a few steps in flight per region, so the log never fills with reclaim
entries and each apply stays bounded. The walk looks at most every `WALK_INTERVAL` per
region (it costs more than a step's apply), and the streams of a step that used its whole
budget are named again in the next round, since the walk has moved on past them. A failed
step (no longer leader, region moved) backs off for `IDLE_INTERVAL`. With no garbage
anywhere it checks again after `IDLE_INTERVAL`. A step lost to a leadership change is
simply proposed again by whoever leads next, since the garbage is replicated state.

What a look costs when there is nothing to do (a region under a write load of plain
keys, issue 10): nothing but a few attribute reads. The stream walk runs only while the
machine may hold a trimmed stream (`StoreMachine.may_hold_trimmed_streams`: from the
entries it applied, `cairn.store.work_hints`; a whole lap that found nothing with no
stream command applied in between proves the region clean until the next one). The
graveyard, which any delete of a large value may fill, is looked at (one short read) at
most every `GRAVEYARD_INTERVAL`, and not again while the region applies nothing after a
look found it empty.

The same task removes the status records of cross-region transactions
(`cairn.store.txn_locks`) once `status_retention_ms` old: every `STATUS_INTERVAL` per led
region it looks at the next stretch of the region's status records (`stale_statuses`,
wrapping around) and proposes one `GC_COMMAND` naming the stale ones it found (at most
`GC_BATCH`), which deletes those still stale at its own time. Records age without any
entry being applied, so this look is timed, not tied to the clean-region bookkeeping; it
reads only in a region that may hold a status record (`StoreMachine.may_hold_statuses`,
read again only after a transaction's entry). The same look hands the region's locks
expired for `LOCK_GRACE_MS` (`expired_locks`) to the node's lock resolver, which settles
each from its transaction's primary (rolled forward or back). So a lock left by a
coordinator that died is resolved within seconds even if no reader ever meets it, and
never outlives its transaction's status record (which a reader would otherwise need
after the retention: without it the lock would be rolled back though its transaction
committed). Only a region without a leader for longer than the retention defeats this
(docs/transactions.md). A region without locks (`StoreMachine.may_hold_locks`) is not
looked at for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from cairn.resp.reply import Integer
from cairn.shard.host import RegionHost
from cairn.shard.replica import Completion, Outcome
from cairn.store.machine import StoreMachine, encode_command
from cairn.store.reclaim import RECLAIM_BUDGET, RECLAIM_COMMAND, buried
from cairn.store.scope import Scope
from cairn.store.txn_locks import GC_COMMAND, Lock, expired_locks, stale_statuses

log = logging.getLogger(__name__)

IDLE_INTERVAL = 0.5
"""Seconds between checks for garbage when none was found."""

STREAM_BATCH = 64
"""Streams one step names at most (the walk samples about 20 times as many keys)."""

WALK_INTERVAL = 0.5
"""Seconds between two looks of the stream walk in one region (about 12 ms each on a
loaded machine): busy rounds reclaiming a graveyard do not walk each time."""

GRAVEYARD_INTERVAL = 1.0
"""Seconds between two looks at an empty graveyard of a region that keeps applying
entries (a region that applies nothing is not looked at again)."""

STATUS_INTERVAL = 1.0
"""Seconds between two looks for stale transaction status records in one region."""

DEFAULT_STATUS_RETENTION_MS = 600_000
"""`limits.txn_status_retention_ms`'s default."""

LOCK_GRACE_MS = 1_000
"""How long past its ttl a lock is left to the readers that meet it before the leader's
look resolves it itself."""

LockResolver = Callable[[bytes, Lock], None]
"""Settles the lock `Lock` on a user key (the node's cross-region resolver)."""

DEPTH = 2
"""Reclaim steps proposed together per region and round: they share the Raft round trip
and the fsync (a step past the end of the graveyard deletes nothing), while each applied
entry still deletes at most `RECLAIM_BUDGET` records."""


def pending_objects(machines: Iterable[StoreMachine]) -> int:
    """Deleted values whose records are not reclaimed yet, in the regions hosted here
    (INFO's `lazyfree_pending_objects`, Redis's name for the same backlog)."""
    return sum(buried(m.keyspace, m.scope) for m in machines if not m.retired)


Work = tuple[int, list[bytes]]
"""A region to reclaim in, and the trimmed streams its steps name (maybe none)."""


class Reclaimer:
    """Proposes reclaim steps in the regions this node leads (module docstring)."""

    def __init__(
        self,
        host: RegionHost,
        machines: Mapping[int, StoreMachine],
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        monotonic: Callable[[], float] = time.monotonic,
        status_retention_ms: int = DEFAULT_STATUS_RETENTION_MS,
        resolve_lock: LockResolver | None = None,
    ) -> None:
        self.host = host
        self.resolve_lock = resolve_lock
        """Where expired locks go (None: only readers resolve them)."""
        self._lock_position: dict[int, bytes] = {}
        """Where each region's next look for expired locks starts."""
        self.locks_handed = 0
        """Expired locks handed to `resolve_lock` (tests, INFO-like figure)."""
        self.status_retention_ms = status_retention_ms
        """How long a transaction's status record is kept (module docstring)."""
        self._status_looked: dict[int, float] = {}
        """When each region's status records were last looked at (`STATUS_INTERVAL`)."""
        self._status_position: dict[int, bytes] = {}
        """Where each region's next look at its status records starts."""
        self.statuses_removed = 0
        """Status records the steps this node proposed have deleted."""
        self.machines = machines
        self.wall_ms = wall_ms
        self.monotonic = monotonic
        self._walked: dict[int, float] = {}
        """When each region's stream walk last looked (`WALK_INTERVAL`)."""
        self._empty_graveyard: dict[int, tuple[int, Scope]] = {}
        """(applied index, scope) of each region when a look last found its graveyard
        empty: only an applied entry, a snapshot or a split or merge (which change them)
        can bury anything, so a quiet region is not looked at again."""
        self._graveyard_looked: dict[int, float] = {}
        """When each region's graveyard was last looked at (`GRAVEYARD_INTERVAL`; none
        while it holds garbage: then every round looks)."""
        self._carry: dict[int, list[bytes]] = {}
        """The streams each region's last steps named when one of them used its whole
        budget: named again next round, since the walk has moved on past them."""
        self.reclaimed = 0
        """Records the steps this node proposed have deleted (INFO-like figure)."""

    async def run(self) -> None:
        """Reclaim for ever: `DEPTH` steps per region with garbage per round."""
        while True:
            busy = await self.round()
            if await self.status_round():
                busy = True
            if not busy:
                await asyncio.sleep(IDLE_INTERVAL)

    async def round(self) -> bool:
        """`DEPTH` steps in each led region with garbage, all in flight together;
        whether any was proposed."""
        work = self._work()
        if not work:
            return False
        steps = [
            self._step(region_id, streams) for region_id, streams in work for _ in range(DEPTH)
        ]
        deleted = await asyncio.gather(*steps)
        for i, (region_id, streams) in enumerate(work):
            if streams and RECLAIM_BUDGET in deleted[i * DEPTH : (i + 1) * DEPTH]:
                self._carry[region_id] = streams  # maybe more left: name them again
        return True

    def _work(self) -> list[Work]:
        """The led regions with garbage, each with the trimmed streams to name."""
        found = []
        for region_id, machine in self._led():
            carried = self._carry.pop(region_id, [])
            walk = machine.may_hold_trimmed_streams and self._walk_due(region_id)
            if walk:
                now_ms = machine.effective_now(self.wall_ms())
                found_now = machine.reclaimable_streams(now_ms, STREAM_BATCH)
            else:
                found_now = []
            streams = list(dict.fromkeys(carried + found_now))[:STREAM_BATCH]
            if streams or self._graveyard(region_id, machine):
                found.append((region_id, streams))
        return found

    def _led(self) -> list[tuple[int, StoreMachine]]:
        """The live regions this node leads, with their machines."""
        led = []
        for region_id, peer in list(self.host.peers.items()):
            if peer.replica.stopped or not peer.replica.is_leader:
                continue
            machine = self.machines.get(region_id)
            if machine is not None and not machine.retired:
                led.append((region_id, machine))
        return led

    def _graveyard(self, region_id: int, machine: StoreMachine) -> bool:
        """Whether the region's graveyard holds a record: looked at (one short read) at
        most every `GRAVEYARD_INTERVAL`, and not again while the region applies nothing
        after a look found it empty."""
        state = (machine.applied_index, machine.scope)
        if self._empty_graveyard.get(region_id) == state:
            return False
        now = self.monotonic()
        last = self._graveyard_looked.get(region_id)
        if last is not None and now - last < GRAVEYARD_INTERVAL:
            return False
        self._graveyard_looked[region_id] = now
        if machine.has_garbage():
            self._empty_graveyard.pop(region_id, None)
            self._graveyard_looked.pop(region_id, None)  # busy: look again next round
            return True
        self._empty_graveyard[region_id] = state
        return False

    def _walk_due(self, region_id: int) -> bool:
        """Whether the region's stream walk may look now (and note that it does)."""
        now = self.monotonic()
        last = self._walked.get(region_id)
        if last is not None and now - last < WALK_INTERVAL:
            return False
        self._walked[region_id] = now
        return True

    async def status_round(self) -> bool:
        """One `GC_COMMAND` in each led region whose look found stale status records,
        all in flight together; whether any was proposed."""
        steps = []
        for region_id, args in self._status_work():
            steps.append(self._propose(region_id, GC_COMMAND, args))
        if not steps:
            return False
        self.statuses_removed += sum(await asyncio.gather(*steps))
        return True

    def _status_work(self) -> list[tuple[int, list[bytes]]]:
        """The led regions whose look is due and found stale status records, each with
        its `GC_COMMAND` arguments. A region known to hold no status record and no lock
        (`StoreMachine.may_hold_statuses`, `may_hold_locks`: in memory) costs no read."""
        found = []
        now = self.monotonic()
        for region_id, machine in self._led():
            last = self._status_looked.get(region_id)
            if last is not None and now - last < STATUS_INTERVAL:
                continue
            self._status_looked[region_id] = now
            locks = self.resolve_lock is not None and machine.may_hold_locks
            if not (locks or machine.may_hold_statuses):
                continue
            now_ms = machine.effective_now(self.wall_ms())
            if locks:
                self._hand_expired_locks(region_id, machine, now_ms)
            args = self._stale_statuses(region_id, machine, now_ms)
            if args:
                found.append((region_id, args))
        return found

    def _stale_statuses(self, region_id: int, machine: StoreMachine, now_ms: int) -> list[bytes]:
        """The `GC_COMMAND` arguments naming the stale status records of the region's
        next stretch (empty: none found, or none held)."""
        if not machine.may_hold_statuses:
            return []
        position = self._status_position.get(region_id, b"")
        stale, self._status_position[region_id] = stale_statuses(
            machine.keyspace, machine.scope, now_ms, self.status_retention_ms, position
        )
        if not stale:
            return []
        args = [b"%d" % self.status_retention_ms]
        for primary, start_ts in stale:
            args += [primary, b"%d" % start_ts]
        return args

    def _hand_expired_locks(self, region_id: int, machine: StoreMachine, now_ms: int) -> None:
        """Give the region's next stretch of long-expired locks to `resolve_lock`."""
        if self.resolve_lock is None:
            return
        position = self._lock_position.get(region_id, b"")
        expired, self._lock_position[region_id] = expired_locks(
            machine.keyspace, machine.scope, now_ms, LOCK_GRACE_MS, position
        )
        for key, lock in expired:
            self.locks_handed += 1
            self.resolve_lock(key, lock)

    async def _step(self, region_id: int, streams: list[bytes]) -> int:
        """Propose one step naming `streams` and wait for it; the records it deleted."""
        deleted = await self._propose(region_id, RECLAIM_COMMAND, streams)
        self.reclaimed += deleted
        return deleted

    async def _propose(self, region_id: int, name: str, args: list[bytes]) -> int:
        """Propose internal command `name` and wait for it; its Integer reply (0 when it
        failed: then back off)."""
        peer = self.host.peers.get(region_id)
        machine = self.machines.get(region_id)
        if peer is None or machine is None:
            return 0
        done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()

        def finished(completion: Completion) -> None:
            if not done.done():
                done.set_result(completion)

        now_ms = machine.effective_now(self.wall_ms())
        command = encode_command(name, args, now_ms)
        self.host.propose(region_id, peer.region.epoch, command, finished)
        completion = await done
        if completion.outcome is Outcome.OK and isinstance(completion.value, Integer):
            return completion.value.value
        # not leader any more, or the region moved: back off, the next round sees
        log.debug("%s in region %d: %s", name, region_id, completion.reason)
        await asyncio.sleep(IDLE_INTERVAL)
        return 0
