"""Typed errors of the Raft core.

`LocalRaftError`s mean the caller misused the API or asked for something the node cannot do
now (the application may retry elsewhere); storage errors are the named conditions of the
`Storage` protocol that the core handles itself.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base of every error raised by `cairn.raft`."""


class ConfigError(RaftError):
    """A configuration value is invalid; the message names the field."""


class LocalRaftError(RaftError):
    """The request cannot be carried out by this node now."""


class ProposalDroppedError(LocalRaftError):
    """A proposal was not appended: no leader known, a transfer is under way, or limits."""


class StepLocalMessageError(LocalRaftError):
    """A message of a local type was handed to `step` from the network."""


class StepPeerNotFoundError(LocalRaftError):
    """A response arrived from a node that is not in the configuration."""


class StorageError(RaftError):
    """Base of the conditions a `Storage` reports."""


class CompactedError(StorageError):
    """The requested index is older than the storage's first index (compacted away)."""


class UnavailableError(StorageError):
    """The requested index is beyond the storage's last index."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than the storage's current one was offered."""


class SnapshotTemporarilyUnavailableError(StorageError):
    """A snapshot is being made; the leader retries later."""
