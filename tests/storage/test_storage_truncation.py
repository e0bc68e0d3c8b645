"""A truncated LMDB data file is refused with a message, not a SIGBUS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cairn.env import LogBatch
from cairn.raft.types import Entry, HardState
from cairn.storage.errors import CorruptLogError
from cairn.storage.log_store import LmdbLogStore


def test_truncated_data_file_is_refused(tmp_path: Path) -> None:
    store = LmdbLogStore.open(tmp_path, 1, "c")
    entries = tuple(Entry(term=1, index=i, data=os.urandom(2000)) for i in range(1, 200))
    store.write(LogBatch(entries=entries, hard_state=HardState(term=1, commit=199)), sync=True)
    store.close()
    data = tmp_path / "data.mdb"
    os.truncate(data, 40960)
    with pytest.raises(CorruptLogError, match="truncated"):
        LmdbLogStore.open(tmp_path, 1, "c")
