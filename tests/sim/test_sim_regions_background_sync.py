"""Multi-region runs whose nodes fsync in the background, as `cairn server` does.

A real node writes a drain's batches unsynced, hands the fsync to a thread and keeps
serving its event loop; the Readies wait for the fsync before their acknowledgements, the
leader's own match and the apply (`RegionHost._persist` / `_synced`), and the Raft core is
stepped meanwhile. `BackgroundSyncDisk` runs that path in the simulator, with crashes that
lose every write whose fsync had not finished, so the linearizability and invariant
checks cover it like the synchronous one.
"""

from __future__ import annotations

import pytest

from cairn.env.host_store import SyncDone
from cairn.sim.node_disk import BackgroundSyncDisk
from cairn.sim.region_config import RegionSimConfig
from cairn.sim.region_runner import run_region_simulation

SEEDS = range(60)
STEPS = 3000


def test_background_fsync_stays_safe_and_converges(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    original = BackgroundSyncDisk.sync_in_background

    def counted(self: BackgroundSyncDisk, done: SyncDone) -> None:
        started.append(1)
        original(self, done)

    monkeypatch.setattr(BackgroundSyncDisk, "sync_in_background", counted)
    failures, crashes = [], 0
    for seed in SEEDS:
        config = RegionSimConfig(seed=seed, steps=STEPS, background_sync=True)
        result = run_region_simulation(config)
        if result.failure is not None or result.converged_after is None:
            failures.append(f"seed {seed}: {result.failure}")
        crashes += result.faults.get("crash", 0)
    assert not failures, "\n".join(failures)
    # The runs took the background path, and crashed nodes while fsyncs were running
    # (one seed in three fsyncs small writes inline, as a real node does when idle).
    assert len(started) > 1000 * len(SEEDS) / 15, len(started)
    assert crashes >= 60, crashes
