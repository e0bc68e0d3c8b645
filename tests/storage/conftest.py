"""Fixtures of the storage tests: a fresh data directory and failpoints reset after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import SMALL_MAP, OpenStore

from cairn.storage import LmdbLogStore, LmdbOptions, failpoints


@pytest.fixture(autouse=True)
def _no_failpoints() -> Iterator[None]:
    """No test leaks an enabled failure point into the next."""
    failpoints.reset()
    yield
    failpoints.reset()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The data directory of node 1 of cluster "test"."""
    return tmp_path / "node1"


@pytest.fixture
def open_store(data_dir: Path) -> Iterator[OpenStore]:
    """Opens stores on `data_dir` (node 1, cluster "test") and closes them at the end."""
    opened: list[LmdbLogStore] = []

    def opener(map_size: int = SMALL_MAP, **kwargs: int) -> LmdbLogStore:
        store = LmdbLogStore.open(data_dir, 1, "test", LmdbOptions(map_size=map_size), **kwargs)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()
