"""Seed sweeps: many independent simulation runs spread over worker processes.

Runs share nothing, so a sweep is embarrassingly parallel; results come back as they
finish (the order of completion does not affect any run, only the order of reporting).
It lives with the CLI because it uses processes; the runs themselves (`cairn.sim`) stay pure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace

from cairn.sim.region_config import RegionSimConfig, RegionSimResult
from cairn.sim.region_runner import run_region_simulation


def _run(config: RegionSimConfig) -> RegionSimResult:
    return run_region_simulation(config)


def default_workers() -> int:
    """One worker per CPU."""
    return os.cpu_count() or 1


def sweep(
    base: RegionSimConfig,
    seeds: Iterable[int],
    workers: int | None = None,
    stop: Callable[[RegionSimResult], bool] | None = None,
) -> Iterator[RegionSimResult]:
    """Run `base` under each seed and yield results as they complete.

    With `workers == 1` everything runs in this process. `stop(result)` returning True
    ends the sweep early (runs already started are abandoned).
    """
    configs = (replace(base, seed=seed) for seed in seeds)
    workers = workers or default_workers()
    if workers == 1:
        for config in configs:
            result = run_region_simulation(config)
            yield result
            if stop is not None and stop(result):
                return
        return
    yield from _parallel(configs, workers, stop)


def _parallel(
    configs: Iterator[RegionSimConfig],
    workers: int,
    stop: Callable[[RegionSimResult], bool] | None,
) -> Iterator[RegionSimResult]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        running: set[Future[RegionSimResult]] = set()
        try:
            while True:
                while len(running) < workers * 2:
                    config = next(configs, None)
                    if config is None:
                        break
                    running.add(pool.submit(_run, config))
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: f.result().seed):
                    result = future.result()
                    yield result
                    if stop is not None and stop(result):
                        return
        finally:
            for future in running:
                future.cancel()
