"""`Scope`: the part of the keyspace one `StoreMachine` owns, and where its own records live.

A scope is a range ``[start, end)`` of range keys (``slot (2 bytes) | key``, the order of
`cairn.meta.region.range_key`; ``b""`` bounds are open) plus the keys of the machine's
system records. Two kinds exist:

- `WHOLE_KEYSPACE` (`region_id` None): every key, with the single-group records
  ``X applied``, ``X now``, ``X keys``; exactly what the store did before regions;
- `Scope.region(id, start, end)`: a region's range, its records under ``Xr | id``, and a
  key count per slot besides the total, so that a split can give each half its exact
  count without walking the keys (see `cairn.store.carve`).

The store sits below `cairn.shard`, so a scope carries plain range-key bounds rather than
a `Region`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cairn.store.layout import (
    APPLIED_KEY,
    DELETED_KEY,
    DELETED_NAME,
    FIELD_TAG,
    KEY_COUNT_KEY,
    META_END,
    META_TAG,
    NOW_KEY,
    SLOT_COUNT_NAME,
    encode_slot,
    prefix_end,
    region_key,
    region_system_prefix,
)
from cairn.store.slot import SLOT_COUNT, key_slot


class KeyOutOfRangeError(Exception):
    """A command named a key outside the machine's range (the router sent it astray, or
    the region split or merged since it routed)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(f"key {key!r} is outside this region's range")
        self.key = key


def range_key(key: bytes) -> bytes:
    """A Redis key's position in the ordered keyspace: its slot, then the key."""
    return encode_slot(key_slot(key)) + key


@dataclass(frozen=True, slots=True)
class Scope:
    """The range keys ``[start, end)`` a machine owns (``b""``: open) and its region id.

    Invariant: `end` is empty or greater than `start`; `region_id` None only for the whole
    keyspace (the single-group layout).
    """

    start: bytes = b""
    end: bytes = b""
    region_id: int | None = None

    def __post_init__(self) -> None:
        if self.end and self.start >= self.end:
            raise ValueError(f"empty scope [{self.start!r}, {self.end!r})")
        if self.region_id is None and (self.start or self.end):
            raise ValueError("a scope narrower than the keyspace needs a region id")

    @classmethod
    def region(cls, region_id: int, start: bytes = b"", end: bytes = b"") -> Scope:
        """The scope of region `region_id` covering range keys ``[start, end)``."""
        return cls(start, end, region_id)

    @property
    def is_region(self) -> bool:
        """Whether this is a region's scope (records under its id, counts per slot)."""
        return self.region_id is not None

    # -- membership ----------------------------------------------------------------------

    def contains(self, rkey: bytes) -> bool:
        """Whether range key `rkey` lies in the scope."""
        return self.start <= rkey and (not self.end or rkey < self.end)

    def contains_key(self, key: bytes) -> bool:
        """Whether Redis key `key` lies in the scope."""
        return self.region_id is None or self.contains(range_key(key))

    def check_keys(self, keys: Iterable[bytes]) -> None:
        """Raise `KeyOutOfRangeError` for the first key outside the scope."""
        if self.region_id is None:
            return
        for key in keys:
            if not self.contains(range_key(key)):
                raise KeyOutOfRangeError(key)

    def check_position(self, rkey: bytes) -> None:
        """Raise `KeyOutOfRangeError` if range key `rkey` (a SCAN cursor's position) lies
        outside the scope."""
        if self.region_id is not None and not self.contains(rkey):
            raise KeyOutOfRangeError(rkey)

    # -- bounds in the internal keyspace -------------------------------------------------

    def meta_bounds(self) -> tuple[bytes, bytes]:
        """The interval ``[lo, hi)`` of the scope's metadata (``M``) records."""
        return META_TAG + self.start, META_TAG + self.end if self.end else META_END

    def field_bounds(self, tag: bytes = FIELD_TAG) -> tuple[bytes, bytes]:
        """An interval of ``F`` records (or of another family keyed like them: ``G``,
        the graveyard) covering every slot the scope touches (a superset when a bound
        lies inside a slot: field keys order by key length within a slot)."""
        lo = tag + self.start[:2]
        if not self.end:
            return lo, bytes([tag[0] + 1])
        if len(self.end) == 2:
            return lo, tag + self.end
        hi = prefix_end(tag + self.end[:2])
        assert hi is not None  # "F..." always has a successor
        return lo, hi

    def slots(self) -> range:
        """The slots the scope holds keys of (the first and last may be shared)."""
        first = int.from_bytes(self.start[:2].ljust(2, b"\0"), "big") if self.start else 0
        if not self.end:
            return range(first, SLOT_COUNT)
        last = int.from_bytes(self.end[:2], "big")
        return range(first, last + 1 if len(self.end) > 2 else last)

    # -- the machine's own records -------------------------------------------------------

    @property
    def applied_key(self) -> bytes:
        """Where the applied index is stored."""
        return APPLIED_KEY if self.region_id is None else region_key(self.region_id, b"applied")

    @property
    def now_key(self) -> bytes:
        """Where the largest applied now_ms is stored."""
        return NOW_KEY if self.region_id is None else region_key(self.region_id, b"now")

    @property
    def count_key(self) -> bytes:
        """Where the number of Redis keys is stored."""
        return KEY_COUNT_KEY if self.region_id is None else region_key(self.region_id, b"keys")

    @property
    def deleted_key(self) -> bytes:
        """The record holding the stamp of the scope's last key deletion (WATCH)."""
        if self.region_id is None:
            return DELETED_KEY
        return region_key(self.region_id, DELETED_NAME)

    def slot_count_key(self, slot: int) -> bytes | None:
        """Where the number of Redis keys of `slot` is stored (None: not kept)."""
        if self.region_id is None:
            return None
        return region_key(self.region_id, SLOT_COUNT_NAME + encode_slot(slot))

    def system_bounds(self) -> tuple[bytes, bytes] | None:
        """The interval of the region's system records (None for the whole keyspace)."""
        if self.region_id is None:
            return None
        prefix = region_system_prefix(self.region_id)
        hi = prefix_end(prefix)
        assert hi is not None
        return prefix, hi

    def slot_count_bounds(self) -> tuple[bytes, bytes] | None:
        """The interval of the region's per-slot count records (None: not kept)."""
        if self.region_id is None:
            return None
        prefix = region_key(self.region_id, SLOT_COUNT_NAME)
        hi = prefix_end(prefix)
        assert hi is not None
        return prefix, hi


WHOLE_KEYSPACE = Scope()
"""Every key, with the single-group records: the store's behaviour before regions."""
