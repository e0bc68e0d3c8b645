"""The faults of a multi-region run: the network's and the clocks' properties, the
nemesis's schedule, the placement group's leader crash, and their end.

Which faults a run injects is its config's (`RegionSimConfig.faults`); how much and when
is drawn from the seed. The network drops, duplicates, delays and reorders messages at
rates drawn once (`network_faults`); the nemesis (`cairn.sim.region_nemesis`) schedules
partitions, crashes, pauses, leadership transfers, power losses and the loss of nodes
(`new_nemesis`); with crashes on, the placement group's leader is crashed once too
(`schedule_placement_fault`). After the run's steps every fault stops (`stop_faults`):
lost nodes stay lost.

Pure: the random draws come from the streams the run hands over.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from cairn.sim.loop import HARNESS
from cairn.sim.network import NetworkFaults
from cairn.sim.region_config import MS, RegionSimConfig
from cairn.sim.region_nemesis import RegionNemesis
from cairn.sim.region_pd import PlacementCluster

if TYPE_CHECKING:
    from cairn.sim.region_run import RegionRun

__all__ = [
    "PD_CRASH_AFTER",
    "SCHEDULED",
    "network_faults",
    "new_nemesis",
    "schedule_placement_fault",
    "stop_faults",
]

SCHEDULED = ("partition", "crash", "pause", "transfer", "power-loss")
"""The kinds the nemesis schedules; the others are properties of the network and clocks."""
PD_CRASH_AFTER = (300 * MS, 700 * MS)
"""When, after the start, the placement group's leader is crashed (runs with crashes)."""


def network_faults(faults: tuple[str, ...], rng: random.Random) -> NetworkFaults:
    """The network's fault rates for a run injecting `faults`, drawn from `rng`."""
    return NetworkFaults(
        drop=rng.uniform(0.0, 0.05) if "drop" in faults else 0.0,
        duplicate=rng.uniform(0.0, 0.03) if "duplicate" in faults else 0.0,
        long_delay=rng.uniform(0.0, 0.03) if "delay" in faults else 0.0,
        reorder="reorder" in faults,
    )


def new_nemesis(
    config: RegionSimConfig,
    cluster: PlacementCluster,
    rng: random.Random,
    new_node: Callable[[], None],
) -> RegionNemesis:
    """The nemesis of a run of `config`: its scheduled kinds, and the loss of
    `config.losses` nodes (each replaced by `new_node`)."""
    kinds: tuple[str, ...] = tuple(k for k in SCHEDULED if k in config.faults)
    if config.losses:
        kinds += ("lose",)
    params = replace(config.nemesis, losses=config.losses)
    return RegionNemesis(cluster, rng, params, kinds, new_node, config.scenario)


def schedule_placement_fault(run: RegionRun) -> None:
    """With crashes on (or `pd_crash_at`), crash the placement group's leader once while
    the faults run (again every `pd_crash_every`, if set)."""
    forced = run.config.pd_crash_at
    if "crash" not in run.config.faults and forced is None:
        return
    rng = run.pd_rng
    nemesis = run.nemesis
    at = rng.randint(*(forced or PD_CRASH_AFTER))
    down_for = rng.randint(1 * MS, nemesis.params.max_down)

    def strike() -> None:
        if nemesis.active or (forced is not None and not run.converging):
            run.placement.crash_leader(down_for, nemesis.count)
        every = run.config.pd_crash_every
        if forced is not None and every and not run.converging:
            run.loop.call_later(every, HARNESS, "pd leader crash", strike)

    run.loop.call_later(at, HARNESS, "pd leader crash", strike)


def stop_faults(run: RegionRun) -> None:
    """End every fault: the nemesis's schedule ends and undoes every fault but lost
    nodes, and the network stops dropping, duplicating, delaying and reordering."""
    run.nemesis.heal_all()
    run.cluster.network.faults = NetworkFaults()
