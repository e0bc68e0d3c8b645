"""Shared constants and types of the storage tests."""

from __future__ import annotations

from collections.abc import Callable

from cairn.storage import LmdbLogStore

SMALL_MAP = 32 << 20
"""A map size big enough for every test that does not want the disk to fill up."""

OpenStore = Callable[..., LmdbLogStore]
"""The type of the `open_store` fixture: `open_store(map_size=..., chunk_size=...)`."""
