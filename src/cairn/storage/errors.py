"""Typed errors of the durable storage layer.

Two families. `DiskFailedError` means the disk refused a write (I/O error, disk or map
full, a failed fsync): the store is then failed for good and the node must stop
acknowledging. `StartupError`s mean the data directory cannot be trusted or is not ours:
the node refuses to start and the message names what is wrong. The named conditions of
the core's `Storage` protocol (`CompactedError`, `UnavailableError`, ...) are reused from
`cairn.raft.errors`, not redefined here.
"""

from __future__ import annotations


class DurableStorageError(Exception):
    """Base of every error raised by `cairn.storage` itself."""


class DiskFailedError(DurableStorageError):
    """A write or fsync failed; this store accepts no more writes until it is reopened.

    After a failed fsync the kernel may already have dropped the dirty pages (the
    "fsyncgate" lesson), so retrying cannot prove the data reached the disk: the only
    safe reaction is to stop acknowledging and let an operator restart the node, which
    then recovers from what is really on disk.
    """


class StartupError(DurableStorageError):
    """The data directory cannot be opened safely; the node must not start."""


class CorruptLogError(StartupError):
    """A record failed its checksum or the log breaks an invariant; names the record."""


class DataDirMismatchError(StartupError):
    """The data directory belongs to another node or cluster."""


class FormatVersionError(StartupError):
    """The data directory was written by a newer (or unknown) on-disk format."""


class UncoveredCompactionError(DurableStorageError):
    """A compaction would discard entries that no stored snapshot covers."""


class UnknownRegionError(DurableStorageError):
    """The node holds no record of the region (or only its tombstone) for this operation."""


class RegionDataError(DurableStorageError):
    """A region's snapshot data is malformed, truncated, or holds a record outside the region."""
