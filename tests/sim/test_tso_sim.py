"""The timestamp oracle in simulation: strictly increasing across leader kills, partitions
and clock skew, and the planted bug `tso-backwards` is caught.

Five nodes (the placement group on the first three) run the real placement members and
each node's real `TsoClient` over the simulated network (`cairn.sim.region_pd`). Callers
on every node take timestamps without pause while a nemesis crashes, isolates and skews
the clock of whichever member leads. The check is real-time order in virtual time: every
timestamp is strictly greater than every timestamp whose reply arrived before it was
requested, and none is handed out twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cairn.placement import PlacementConfig, PlacementRules
from cairn.placement.tso import TSO_BACKWARDS, TsoSettings
from cairn.placement.tso_client import TsoClientSettings
from cairn.raft.config import Config
from cairn.raft.types import NodeId
from cairn.shard.host import HostConfig
from cairn.shard.replica import ReplicaConfig
from cairn.sim.loop import HARNESS, EventLoop
from cairn.sim.network import NetworkFaults
from cairn.sim.region_pd import PlacementCluster, PlacementNetwork, PlacementSetup, SimPlacement
from cairn.sim.txn_client import TsoLog

MS = 1_000_000
NODES = (1, 2, 3, 4, 5)
MEMBERS = (1, 2, 3)
CALLERS_PER_NODE = 2
DURATION = 7.5
"""Seconds of virtual time per run."""
CAUGHT_SEED = 1
"""A seed whose run catches `tso-backwards` (the bug-free run of it passes)."""


@dataclass(slots=True)
class Got:
    """One timestamp a caller received: when it asked and when it got it (virtual ns)."""

    asked: int
    got: int
    ts: int


@dataclass(slots=True)
class TsoRun:
    """What one simulated run saw."""

    got: list[Got] = field(default_factory=list)
    errors: int = 0
    faults: list[str] = field(default_factory=list)
    leaders: set[tuple[NodeId, int]] = field(default_factory=set)
    """(member, term) of every leader that served a timestamp."""

    def violations(self) -> list[str]:
        """Timestamps not above one issued before they were asked for, and repeats (the
        simulator's own check of the oracle's real-time order, `TsoLog`)."""
        return TsoLog([(g.asked, g.got, g.ts) for g in self.got]).violations()


def _cluster(seed: int, plants: frozenset[str]) -> tuple[EventLoop, PlacementCluster, SimPlacement]:
    loop = EventLoop()
    rng = random.Random(seed)
    network = PlacementNetwork(loop, random.Random(rng.getrandbits(64)), NetworkFaults(drop=0.01))
    raft = Config(id=1, election_tick=10, heartbeat_tick=2, check_quorum=True, pre_vote=True)
    replica = ReplicaConfig(raft, tick_interval=0.01, snapshot_threshold=50)
    cluster = PlacementCluster(loop, network, HostConfig(replica), keep_history=False)
    for node_id in NODES:
        node = cluster.add_node(node_id, random.Random(rng.getrandbits(64)))
        node.clock_rate = rng.uniform(0.92, 1.08)  # drift within the Raft lease's allowance
    placement = SimPlacement(
        cluster,
        PlacementSetup(
            members=MEMBERS,
            replica=replica,
            config=PlacementConfig(down_after_ms=3000, disconnected_after_ms=1500),
            rules=PlacementRules(replicas=3),
            first_id=100,
            tso=TsoSettings(plants=plants),
            tso_client=TsoClientSettings(attempt_timeout=0.3, retry_delay=0.02),
        ),
        random.Random(rng.getrandbits(64)),
    )
    cluster.placement = placement
    for node_id in MEMBERS:
        placement.wall_skew_ms[node_id] = rng.randint(-1500, 1500)
    for node_id in NODES:
        cluster.start(node_id)
    return loop, cluster, placement


def run_tso(seed: int, plants: frozenset[str] = frozenset()) -> TsoRun:
    """One run of `DURATION` virtual seconds (see the module docstring)."""
    loop, cluster, placement = _cluster(seed, plants)
    rng = random.Random(seed * 7919 + 1)
    run = TsoRun()

    def ask(node_id: NodeId) -> None:
        client = placement.tso_clients.get(node_id)
        if client is None:  # the node is down: try again a little later
            loop.call_later(50 * MS, HARNESS, f"caller n{node_id}", lambda: ask(node_id))
            return
        asked = loop.now

        def again() -> None:
            pause = rng.randint(0, 20) * MS
            loop.call_later(pause, HARNESS, f"caller n{node_id}", lambda: ask(node_id))

        def on_ts(ts: int) -> None:
            run.got.append(Got(asked, loop.now, ts))
            leader = placement.leader()
            if leader is not None:
                run.leaders.add((leader.node_id, leader.replica.term))
            again()

        def on_error(reason: str) -> None:
            run.errors += 1
            again()

        client.timestamp(on_ts, on_error, 2.0)

    for node_id in NODES:
        for _ in range(CALLERS_PER_NODE):
            loop.call_later(500 * MS, HARNESS, f"caller n{node_id}", lambda n=node_id: ask(n))
    _nemesis(loop, cluster, placement, rng, run)
    deadline = int(DURATION * 1000) * MS
    while loop.now < deadline and loop.run_one():
        pass
    return run


def _nemesis(
    loop: EventLoop,
    cluster: PlacementCluster,
    placement: SimPlacement,
    rng: random.Random,
    run: TsoRun,
) -> None:
    """Every 1 to 2 s: crash, isolate or skew the clock of the placement leader (each of
    the three once, in a random order, in every three strikes)."""
    actions: list[str] = []

    def strike() -> None:
        leader = placement.leader()
        if leader is not None:
            victim = leader.node_id
            if not actions:
                actions.extend(rng.sample(("crash", "isolate", "skew"), 3))
            action = actions.pop()
            run.faults.append(f"{action} n{victim}")
            if action == "crash":
                cluster.crash(victim)
                down = rng.randint(300, 1500) * MS
                loop.call_later(down, HARNESS, "restart", lambda: cluster.start(victim))
            elif action == "isolate":
                others = [n for n in NODES if n != victim]
                cut = {(victim, n) for n in others} | {(n, victim) for n in others}
                cluster.network.set_partition(frozenset(cut))
                heal_at = rng.randint(800, 2500) * MS
                loop.call_later(heal_at, HARNESS, "heal", cluster.network.heal)
            else:
                placement.wall_skew_ms[victim] = rng.choice((-1, 1)) * rng.randint(2000, 8000)
        loop.call_later(rng.randint(1000, 2000) * MS, HARNESS, "nemesis", strike)

    loop.call_later(1500 * MS, HARNESS, "nemesis", strike)


def test_timestamps_increase_across_leader_kills_partitions_and_skew() -> None:
    run = run_tso(CAUGHT_SEED)
    assert run.violations() == [], (run.faults, run.violations()[:3])
    assert {f.split()[0] for f in run.faults} == {"crash", "isolate", "skew"}, run.faults
    assert len(run.got) > 1000, (len(run.got), run.errors)
    assert len({member for member, _ in run.leaders}) >= 2, run.leaders


def test_the_planted_bug_tso_backwards_is_caught() -> None:
    run = run_tso(CAUGHT_SEED, frozenset({TSO_BACKWARDS}))
    assert run.violations(), run.faults
