"""The background task that reclaims the records of deleted large values, through Raft.

Theory of operation. Deleting a large list, set, sorted set, hash or stream only buries
it (`cairn.store.reclaim`): its records stay behind a graveyard record until the
region's leader proposes `RECLAIM_COMMAND` entries, each deleting at most
`RECLAIM_BUDGET` records on every replica at the same log index. This task runs on every
node; for each region it leads whose machine reports garbage it proposes `DEPTH` steps, waits
for them to be applied, and goes on while garbage remains: a few steps in flight per
region, so the log never fills with reclaim entries and each apply stays bounded. With no garbage
anywhere it checks again after `IDLE_INTERVAL`: one short walk of the graveyard range of
each led region that applied anything since it was last found clean, so quiescent regions
cost nothing. A step lost to a leadership change is simply proposed again by whoever
leads next, since the graveyard is replicated state.
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
from cairn.store.reclaim import RECLAIM_COMMAND, buried
from cairn.store.scope import Scope

log = logging.getLogger(__name__)

IDLE_INTERVAL = 0.5
"""Seconds between checks for garbage when none was found."""

DEPTH = 2
"""Reclaim steps proposed together per region and round: they share the Raft round trip
and the fsync (a step past the end of the graveyard deletes nothing), while each applied
entry still deletes at most `RECLAIM_BUDGET` records."""


def pending_objects(machines: Iterable[StoreMachine]) -> int:
    """Deleted values whose records are not reclaimed yet, in the regions hosted here
    (INFO's `lazyfree_pending_objects`, Redis's name for the same backlog)."""
    return sum(buried(m.keyspace, m.scope) for m in machines if not m.retired)


class Reclaimer:
    """Proposes reclaim steps in the regions this node leads (module docstring)."""

    def __init__(
        self,
        host: RegionHost,
        machines: Mapping[int, StoreMachine],
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.host = host
        self.machines = machines
        self.wall_ms = wall_ms
        self._clean: dict[int, tuple[int, Scope]] = {}
        """(applied index, scope) of each region when it was last found without garbage:
        only an applied entry, a snapshot or a split or merge (which change them) can
        bury anything, so a quiet region is not walked again."""
        self.reclaimed = 0
        """Records the steps this node proposed have deleted (INFO-like figure)."""

    async def run(self) -> None:
        """Reclaim for ever: one step per region with garbage per round."""
        while True:
            if not await self.round():
                await asyncio.sleep(IDLE_INTERVAL)

    async def round(self) -> bool:
        """`DEPTH` steps in each led region with garbage, all in flight together;
        whether any was proposed."""
        steps = [
            self._step(region_id) for region_id in self._led_with_garbage() for _ in range(DEPTH)
        ]
        if not steps:
            return False
        await asyncio.gather(*steps)
        return True

    def _led_with_garbage(self) -> list[int]:
        found = []
        for region_id, peer in list(self.host.peers.items()):
            if peer.replica.stopped or not peer.replica.is_leader:
                continue
            machine = self.machines.get(region_id)
            if machine is None or machine.retired:
                continue
            state = (machine.applied_index, machine.scope)
            if self._clean.get(region_id) == state:
                continue  # nothing applied since it was found clean: still clean
            if machine.has_garbage():
                found.append(region_id)
            else:
                self._clean[region_id] = state
        return found

    async def _step(self, region_id: int) -> None:
        peer = self.host.peers.get(region_id)
        machine = self.machines.get(region_id)
        if peer is None or machine is None:
            return
        done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()

        def finished(completion: Completion) -> None:
            if not done.done():
                done.set_result(completion)

        now_ms = machine.effective_now(self.wall_ms())
        command = encode_command(RECLAIM_COMMAND, [], now_ms)
        self.host.propose(region_id, peer.region.epoch, command, finished)
        completion = await done
        if completion.outcome is Outcome.OK and isinstance(completion.value, Integer):
            self.reclaimed += completion.value.value
        else:  # not leader any more, or the region moved: the next round sees
            log.debug("reclaim step in region %d: %s", region_id, completion.reason)
            await asyncio.sleep(IDLE_INTERVAL)
