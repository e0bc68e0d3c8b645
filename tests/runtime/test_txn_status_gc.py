"""The reclaimer removes cross-region transactions' status records once
`txn_status_retention_ms` old (`cairn.runtime.reclaimer`, `cairn.store.txn_locks`), in
regions it leads, through proposed `cairn.txn.gc` entries applied on a fake host."""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

from fake_region_host import FakeHost, FakePeer, FakeReplica
from store_harness import FakeClock, MachineClient

from cairn.resp.reply import Array, Bulk
from cairn.runtime.config import Limits
from cairn.runtime.reclaimer import LOCK_GRACE_MS, Reclaimer
from cairn.shard.host import RegionHost
from cairn.store.ranges import iter_statuses
from cairn.store.txn_locks import (
    GC_BATCH,
    GC_COMMAND,
    LOCK_COMMAND,
    ROLLBACK_COMMAND,
    SWEEP_BATCH,
    expired_locks,
)


def _decided(client: MachineClient, count: int) -> None:
    for i in range(count):
        client.apply_internal(ROLLBACK_COMMAND, b"%d" % (1000 + i), b"1", b"p%d" % i)


def _statuses(client: MachineClient) -> int:
    return sum(1 for _ in iter_statuses(client.machine.keyspace, client.machine.scope))


def test_stale_status_records_are_removed_in_bounded_steps_where_it_leads() -> None:
    assert Limits().txn_status_retention_ms == 600_000
    clock = FakeClock()
    leader, follower = MachineClient(clock=clock), MachineClient(clock=clock)
    _decided(leader, GC_BATCH + 44)
    _decided(follower, 3)
    peers = {1: FakePeer(FakeReplica(True)), 2: FakePeer(FakeReplica(False))}
    host = FakeHost({1: leader, 2: follower}, peers)
    machines = {1: leader.machine, 2: follower.machine}
    seconds = itertools.count(0, 10)  # every look is due
    reclaimer = Reclaimer(
        cast(RegionHost, host), machines, clock, seconds.__next__, status_retention_ms=5000
    )

    async def rounds(count: int) -> int:
        return sum([await reclaimer.status_round() for _ in range(count)])

    assert asyncio.run(rounds(3)) == 0  # nothing is old enough yet
    clock.now += 4000
    leader.apply_internal(ROLLBACK_COMMAND, b"9999", b"1", b"young")
    clock.now += 1000
    assert asyncio.run(rounds(4)) == 2
    assert [(r, n, len(a)) for r, n, a in host.proposed] == [
        (1, GC_COMMAND, 1 + 2 * GC_BATCH),
        (1, GC_COMMAND, 1 + 2 * 44),
    ]
    assert reclaimer.statuses_removed == GC_BATCH + 44
    assert _statuses(leader) == 1  # the young one stays
    assert _statuses(follower) == 3  # a follower's records are its leader's to remove
    clock.now += 4000
    assert asyncio.run(rounds(2)) == 1
    assert _statuses(leader) == 0


def _lock(client: MachineClient, start_ts: int, primary: bytes, ttl_ms: int, *keys: bytes) -> None:
    # cairn.txn.lock <start_ts> <primary> <ttl_ms> <max_bytes> <nwatch> <key>...
    reply = client.apply_internal(
        LOCK_COMMAND, b"%d" % start_ts, primary, b"%d" % ttl_ms, b"1000000", b"0", *keys
    )
    assert cast(Array, reply).items[0] == Bulk(b"ok")


def test_locks_long_expired_are_handed_to_the_resolver_where_it_leads() -> None:
    clock = FakeClock()
    leader, follower = MachineClient(clock=clock), MachineClient(clock=clock)
    _lock(leader, 2000, b"p", 3000, b"p", b"a")
    _lock(leader, 2001, b"q", 60_000, b"b")
    _lock(follower, 2002, b"r", 3000, b"c")
    peers = {1: FakePeer(FakeReplica(True)), 2: FakePeer(FakeReplica(False))}
    host = FakeHost({1: leader, 2: follower}, peers)
    handed: list[tuple[bytes, int]] = []
    seconds = itertools.count(0, 10)
    reclaimer = Reclaimer(
        cast(RegionHost, host),
        {1: leader.machine, 2: follower.machine},
        clock,
        seconds.__next__,
        resolve_lock=lambda key, lock: handed.append((key, lock.start_ts)),
    )
    asyncio.run(reclaimer.status_round())
    assert handed == []  # alive: their coordinators are at work
    clock.now += 3000 + LOCK_GRACE_MS - 1
    asyncio.run(reclaimer.status_round())
    assert handed == []  # expired, but readers get the first chance
    clock.now += 1
    asyncio.run(reclaimer.status_round())
    assert handed == [(b"a", 2000), (b"p", 2000)]  # not the live one, not a follower's
    assert reclaimer.locks_handed == 2


def test_expired_locks_walks_in_bounded_looks() -> None:
    clock = FakeClock()
    client = MachineClient(clock=clock)
    keys = [b"k%03d" % i for i in range(150)]
    _lock(client, 3000, keys[0], 10, *keys)
    clock.now += 100
    machine = client.machine
    seen: list[bytes] = []
    position = b""
    for _ in range(3):
        found, position = expired_locks(machine.keyspace, machine.scope, clock(), 0, position)
        assert len(found) <= SWEEP_BATCH
        seen += [key for key, _ in found]
    assert sorted(seen) == sorted(keys) and position == b""
