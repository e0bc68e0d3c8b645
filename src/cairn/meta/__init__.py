"""Descriptors every layer shares (TiKV's `metapb`): regions, their peers and epochs.

A floor package: it imports only `cairn.store`'s slot arithmetic, so storage (which keeps
region descriptors on disk), shard (which hosts regions), placement (which plans them) and
the runtime (which routes to them) all name the same `Region` without importing each
other.
"""
