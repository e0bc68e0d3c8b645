"""How a set's members live under its key's ``F`` prefix: two record families.

- member records, ``b"m" | member`` -> empty, so a membership test is a point read and the
  members come out of a range scan in byte order;
- position counts, ``b"c" | level | member`` -> a count: the order-statistics index over
  the member records (`cairn.store.order_index`), so the member at a position of the byte
  order, which is what a uniform random draw (SPOP, SRANDMEMBER) needs, costs O(log n)
  record reads instead of a walk to it.

Every record of the set stays under the key's prefix, so DEL, RENAME, COPY, expiry, splits
and snapshots need nothing of their own. The key's `Meta.size` is the member count; the
callers (the set commands, RESTORE) maintain it and delete an emptied set. Every writer
goes through `add` and `remove`, which keep the index.
"""

from __future__ import annotations

from cairn.store.db import Db
from cairn.store.order_index import OrderIndex, Path

MEMBER = b"m"
MEMBER_END = bytes([MEMBER[0] + 1])
COUNTS = b"c"

POSITIONS = OrderIndex(MEMBER, MEMBER_END, COUNTS)
"""The order-statistics index of the member records: entries are the members."""


def has(db: Db, key: bytes, member: bytes) -> bool:
    """Whether `member` is in set `key` (the caller checked the type)."""
    return db.get_field(key, MEMBER + member) is not None


def add(db: Db, key: bytes, member: bytes) -> None:
    """Add `member`, absent from set `key`; the caller keeps `Meta.size`."""
    db.put_field(key, MEMBER + member, b"")
    POSITIONS.added(db, key, member)


def add_many(db: Db, key: bytes, members: list[bytes]) -> None:
    """Add `members`, distinct and absent from set `key`, counted in one pass (see
    `OrderIndex.added_many`); the caller keeps `Meta.size`."""
    if len(members) == 1:
        add(db, key, members[0])
        return
    for member in members:
        db.put_field(key, MEMBER + member, b"")
    POSITIONS.added_many(db, key, members)


def remove(db: Db, key: bytes, member: bytes, path: Path | None = None) -> None:
    """Remove `member`, present in set `key`; the caller keeps `Meta.size`. `path`: the
    index path `member_path` found it by, just before (spares the index its lookups)."""
    db.delete_field(key, MEMBER + member)
    if path is None:
        POSITIONS.removed(db, key, member)
    else:
        POSITIONS.removed_on(db, key, member, path)


def members(
    db: Db,
    key: bytes,
    start: bytes = b"",
    limit: int | None = None,
    reverse: bool = False,
    end: bytes | None = None,
) -> list[bytes]:
    """Up to `limit` members of `key` in [`start`, `end`) (`end` None: no bound), in byte
    order, or descending when `reverse`."""
    walk = db.fields_reversed if reverse else db.fields
    stop = MEMBER_END if end is None else MEMBER + end
    return [field[1:] for field, _ in walk(key, MEMBER + start, limit, stop)]


def member_from_end(db: Db, key: bytes, offset: int, reverse: bool) -> bytes:
    """The member `offset` places after the first of `key` (before the last when
    `reverse`), which exists: one range scan of ``offset + 1`` records."""
    rows = db.raw_fields(key, MEMBER, offset + 1, MEMBER_END, reverse)
    return rows[offset][0][db.field_offset(key) + len(MEMBER) :]


def member_at(db: Db, key: bytes, size: int, position: int) -> bytes:
    """The member at 0-based `position` of the byte order among `key`'s `size` members."""
    return POSITIONS.select(db, key, size, position)


def member_path(db: Db, key: bytes, size: int, position: int) -> tuple[bytes, Path]:
    """`member_at`, with the index path to the member (for `remove`)."""
    return POSITIONS.select_path(db, key, size, position)
