"""The one background reclaimer (`cairn.runtime.reclaimer`) on a node-level harness: a
fake region host whose proposals apply at once to real `StoreMachine`s, so the tests see
exactly which steps the leader proposes, for both kinds of garbage (a buried list, a
trimmed stream), and that it stops, and stops walking, once nothing is left."""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

from counting_keyspace import CountingKeyspace
from fake_region_host import FakeHost, FakePeer, FakeReplica
from store_harness import FakeClock, MachineClient

from cairn.runtime.reclaimer import GRAVEYARD_INTERVAL, Reclaimer
from cairn.shard.host import RegionHost
from cairn.store import StoreMachine
from cairn.store.layout import field_prefix, prefix_end
from cairn.store.reclaim import RECLAIM_COMMAND, buried


def stream_records(machine: StoreMachine, key: bytes) -> int:
    """The sub-records of `key`, of every version (a buried list's too)."""
    prefix = field_prefix(key)
    return len(machine.keyspace.scan(prefix, prefix_end(prefix)))


def garbage_region(stream_entries: int) -> MachineClient:
    """A region with 3,000 plain keys (the stream walk takes several stretches), a
    deleted 5,000-element list and a stream of `stream_entries` trimmed away."""
    client = MachineClient(clock=FakeClock())
    client.call("MSET", *[b"k%d" % (i // 2) if i % 2 == 0 else b"v" for i in range(6000)])
    client.call("RPUSH", "list", *[b"%d" % i for i in range(5000)])
    client.call("DEL", "list")
    for _ in range(stream_entries):
        client.call("XADD", "s", "*", "f", "v")
    client.call("XTRIM", "s", "MAXLEN", "0")
    return client


def test_one_reclaimer_reclaims_a_buried_list_and_a_trimmed_stream_then_stops() -> None:
    leader, follower = garbage_region(1500), garbage_region(0)
    host = FakeHost(
        {1: leader, 2: follower}, {1: FakePeer(FakeReplica(True)), 2: FakePeer(FakeReplica(False))}
    )
    machines = {1: leader.machine, 2: follower.machine}
    seconds = itertools.count(0, 10)  # every look a walk may make is due
    reclaimer = Reclaimer(cast(RegionHost, host), machines, lambda: 10**13, seconds.__next__)
    assert buried(leader.machine.keyspace, leader.machine.scope) == 1
    garbage = stream_records(leader.machine, b"list") + 1 + stream_records(leader.machine, b"s")
    assert garbage > 5000 + 1400

    async def rounds(count: int) -> int:
        """Run `count` rounds (what `run` does, without its idle pauses); how many
        proposed something."""
        return sum([await reclaimer.round() for _ in range(count)])

    busy = asyncio.run(rounds(40))
    assert 0 < busy < 40  # a few busy rounds (DEPTH steps each), then nothing to do
    assert {name for _, name, _ in host.proposed} == {RECLAIM_COMMAND}
    assert {region for region, _, _ in host.proposed} == {1}  # only where it leads
    # The stream is named by the steps of the first two rounds, though the walk has moved
    # on to keys past it after the first: a step that used its whole budget is followed
    # by steps naming the same streams.
    assert [args for _, _, args in host.proposed[:4]] == [[b"s"]] * 4
    assert not leader.machine.has_garbage()
    assert stream_records(leader.machine, b"s") == 0
    assert leader.machine.reclaimable_streams(leader.clock(), 8) == []
    assert reclaimer.reclaimed == garbage
    assert stream_records(leader.machine, b"list") == 0
    assert follower.machine.has_garbage()  # a follower's garbage is its leader's to do

    # Clean: later rounds propose nothing and no longer walk the region...
    proposed, laps = len(host.proposed), leader.machine.stream_laps
    assert asyncio.run(rounds(5)) == 0
    assert len(host.proposed) == proposed and leader.machine.stream_laps == laps
    # ...until it applies something: a new trim is found and reclaimed.
    for _ in range(100):
        leader.call("XADD", "s", "*", "f", "v")
    leader.call("XTRIM", "s", "MAXLEN", "0")
    assert asyncio.run(rounds(10)) > 0
    assert stream_records(leader.machine, b"s") == 0
    assert asyncio.run(rounds(5)) == 0


def test_the_stream_walk_is_paced_while_a_graveyard_keeps_the_reclaimer_busy() -> None:
    """Busy rounds (a 5,000-record graveyard: several rounds of steps) walk the keys for
    trimmed streams once per `WALK_INTERVAL`, not once per round."""
    client = garbage_region(0)
    host = FakeHost({1: client}, {1: FakePeer(FakeReplica(True))})
    walks = []
    walk = client.machine.reclaimable_streams

    def counted(now_ms: int, limit: int) -> list[bytes]:
        walks.append(now_ms)
        return walk(now_ms, limit)

    client.machine.reclaimable_streams = counted  # type: ignore[method-assign]
    reclaimer = Reclaimer(cast(RegionHost, host), {1: client.machine}, lambda: 10**13, lambda: 7.0)

    async def busy() -> int:
        count = 0
        while await reclaimer.round():
            count += 1
        return count

    assert asyncio.run(busy()) >= 2
    assert not client.machine.has_garbage()
    assert len(walks) == 1


def test_a_region_of_plain_keys_under_writes_is_walked_one_lap_then_costs_no_walk() -> None:
    """Issue 10: under a write load the applied index always moves, yet once a lap of
    the stream walk found nothing, rounds walk no more, the status look reads nothing,
    and the graveyard is looked at once per `GRAVEYARD_INTERVAL` at most."""
    space = CountingKeyspace()
    client = MachineClient(clock=FakeClock(), machine=StoreMachine(space))  # type: ignore[arg-type]
    client.call("MSET", *[b"k%d" % (i // 2) if i % 2 == 0 else b"v" for i in range(6000)])
    host = FakeHost({1: client}, {1: FakePeer(FakeReplica(True))})
    now = [0.0]
    graveyard_looks = [0]
    looks = client.machine.has_garbage

    def counted() -> bool:
        graveyard_looks[0] += 1
        return looks()

    client.machine.has_garbage = counted  # type: ignore[method-assign]
    reclaimer = Reclaimer(
        cast(RegionHost, host),
        {1: client.machine},
        client.clock,
        lambda: now[0],
        resolve_lock=lambda key, lock: None,
    )

    async def write_and_look(rounds: int) -> bool:
        busy = False
        for i in range(rounds):
            client.call("SET", b"k%d" % i, b"w")
            now[0] += 0.6  # every walk is due (WALK_INTERVAL 0.5)
            busy |= await reclaimer.round()
            busy |= await reclaimer.status_round()
        return busy

    assert not asyncio.run(write_and_look(5))  # 3,000 keys: a lap takes 3 walks
    assert not client.machine.may_hold_trimmed_streams
    reads, graveyard_looks[0] = space.reads, 0
    assert not asyncio.run(write_and_look(20))  # 12 s of writes
    assert graveyard_looks[0] <= 12 / GRAVEYARD_INTERVAL + 1
    assert space.reads - reads == graveyard_looks[0]  # one short read per look, no walk
    assert host.proposed == []
