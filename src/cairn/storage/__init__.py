"""Durable storage of a Cairn node on LMDB: the Raft log store and the state machine's keyspace.

`LmdbEnv` opens one LMDB environment per node; `LmdbLogStore` is both the driver's
`LogStore` and the core's `Storage` (of the node's single group, or of one region);
`NodeStore` hosts many regions' Raft storage and metadata with group commit;
`LmdbKeyspace` holds the state machine; `failpoints` lets tests and the chaos runner
inject disk faults. Unlike the pure packages, this one does I/O. The names below are
loaded on first use, so that importing `cairn.storage.failpoints` (which any layer may
do) does not load LMDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairn.storage.errors import (
        CorruptLogError,
        DataDirMismatchError,
        DiskFailedError,
        DurableStorageError,
        FormatVersionError,
        RegionDataError,
        StartupError,
        UncoveredCompactionError,
        UnknownRegionError,
    )
    from cairn.storage.lmdb_env import LmdbEnv, LmdbOptions
    from cairn.storage.lmdb_keyspace import LmdbKeyspace
    from cairn.storage.log_store import LmdbLogStore
    from cairn.storage.node_store import NodeStore
    from cairn.storage.region_meta import PeerState, RegionLocalState
    from cairn.storage.snapshot_writer import SnapshotWriter

_EXPORTS = {
    "CorruptLogError": "errors",
    "DataDirMismatchError": "errors",
    "DiskFailedError": "errors",
    "DurableStorageError": "errors",
    "FormatVersionError": "errors",
    "StartupError": "errors",
    "UncoveredCompactionError": "errors",
    "LmdbEnv": "lmdb_env",
    "LmdbOptions": "lmdb_env",
    "LmdbKeyspace": "lmdb_keyspace",
    "LmdbLogStore": "log_store",
    "SnapshotWriter": "snapshot_writer",
    "NodeStore": "node_store",
    "RegionLocalState": "region_meta",
    "PeerState": "region_meta",
    "RegionDataError": "errors",
    "UnknownRegionError": "errors",
}

__all__ = [
    "CorruptLogError",
    "DataDirMismatchError",
    "DiskFailedError",
    "DurableStorageError",
    "FormatVersionError",
    "LmdbEnv",
    "LmdbKeyspace",
    "LmdbLogStore",
    "LmdbOptions",
    "NodeStore",
    "PeerState",
    "RegionDataError",
    "RegionLocalState",
    "SnapshotWriter",
    "StartupError",
    "UncoveredCompactionError",
    "UnknownRegionError",
]


def __getattr__(name: str) -> object:
    """Load an exported name from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cairn.storage' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cairn.storage.{module}"), name)
