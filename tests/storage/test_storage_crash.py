"""kill -9 in the middle of writing: every batch synced before the kill is there after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage_helpers import SMALL_MAP

from cairn.storage import LmdbLogStore, LmdbOptions

WRITER = """
import sys
from cairn.raft.types import Entry, HardState
from cairn.env import LogBatch
from cairn.storage import LmdbLogStore, LmdbOptions

store = LmdbLogStore.open(sys.argv[1], 1, "crash", LmdbOptions(map_size=int(sys.argv[2])))
index = store.last_index()
while True:
    ents = tuple(Entry(term=1, index=index + i, data=b"%d" % (index + i)) for i in range(1, 9))
    index += 8
    store.write(LogBatch(entries=ents, hard_state=HardState(1, 0, index)), sync=index % 16 == 0)
    if index % 16 == 0:
        print(index, flush=True)
"""


def test_synced_batches_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir), str(SMALL_MAP)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    synced = 0
    deadline = time.monotonic() + 30
    while synced < 400 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the writer died"
        synced = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert synced >= 400
    store = LmdbLogStore.open(data_dir, 1, "crash", LmdbOptions(map_size=SMALL_MAP))
    try:
        assert store.last_index() >= synced
        assert store.initial_state()[0].commit >= synced
        assert [e.data for e in store.entries(1, synced + 1)] == [
            b"%d" % i for i in range(1, synced + 1)
        ]
    finally:
        store.close()
