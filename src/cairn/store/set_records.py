"""How a set's members live under its key's ``F`` prefix: a dense position array, two
record families pointing at each other.

- member records, ``b"m" | member`` -> the member's position, so a membership test is a
  point read and the members come out of a range scan in byte order (SMEMBERS, SSCAN, the
  set algebra, DUMP and SORT read only these);
- position records, ``b"p" | position`` -> the member at that position. The positions of
  a set of ``n`` members are exactly ``0 .. n - 1``, so a uniform random draw (SPOP,
  SRANDMEMBER) picks a position below `Meta.size` and reads one record.

A position is written the same way in both places (`encode_position`: a length byte, then
the number's minimal big-endian bytes), so position records sort by number and a member
record's value, prefixed with ``b"p"``, names its position record.

Adding a member appends it at position ``n``; removing one moves the member at the last
position into the hole (`remove_at`), so both cost O(1) records whatever the set's size.
Which member sits where depends on the history of additions and removals, and is the same
on every replica (the commands are deterministic, and a draw's randomness is seeded by the
log entry). Every record of the set stays under the key's prefix, so DEL, RENAME, COPY,
expiry, splits and snapshots need nothing of their own. The key's `Meta.size` is the
member count; the callers (the set commands, RESTORE) maintain it, hand it to `add_many`
and `remove_at` (the positions follow from it), and delete an emptied set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cairn.store.db import Db

MEMBER = b"m"
MEMBER_END = bytes([MEMBER[0] + 1])
POSITION = b"p"
POSITION_END = bytes([POSITION[0] + 1])


class PositionsCorruptError(Exception):
    """A position record is missing where the set's size says one is (a bug: both
    families are written in the same batch as the size)."""


def encode_position(position: int) -> bytes:
    """`position` (>= 0) as its byte length then its minimal big-endian bytes: 0 is
    ``00``, 5 is ``01 05``, 300 is ``02 01 2c``; byte order is numeric order."""
    width = (position.bit_length() + 7) >> 3
    return ((width << (width << 3)) | position).to_bytes(width + 1, "big")


def decode_position(data: bytes) -> int:
    """The position `encode_position` wrote as `data`."""
    return int.from_bytes(data[1:], "big")


def position_of(db: Db, key: bytes, member: bytes) -> bytes | None:
    """The encoded position of `member` in set `key`, None if it is not a member (the
    caller checked the type)."""
    return db.get_field(key, MEMBER + member)


def has(db: Db, key: bytes, member: bytes) -> bool:
    """Whether `member` is in set `key` (the caller checked the type)."""
    return db.get_field(key, MEMBER + member) is not None


def add_many(db: Db, key: bytes, members: Sequence[bytes], size: int) -> None:
    """Append `members`, distinct and absent from set `key` of `size` members, at
    positions ``size, size + 1, ...`` in their order; the caller keeps `Meta.size`."""
    for offset, member in enumerate(members):
        at = encode_position(size + offset)
        db.put_field(key, MEMBER + member, at)
        db.put_field(key, POSITION + at, member)


def add(db: Db, key: bytes, member: bytes, size: int) -> None:
    """Append `member`, absent from set `key` of `size` members (`add_many` of one)."""
    add_many(db, key, (member,), size)


def member_at(db: Db, key: bytes, position: int) -> bytes:
    """The member at `position` (below the set's size) of set `key`: one point read."""
    member = db.get_field(key, POSITION + encode_position(position))
    if member is None:
        raise PositionsCorruptError(f"set {key!r} has no member at position {position}")
    return member


def remove_at(db: Db, key: bytes, size: int, doomed: Mapping[int, bytes]) -> None:
    """Remove the members `doomed` maps their positions to from set `key` of `size`
    members, keeping the positions dense: each survivor at a position past the new size
    moves into a hole below it (in ascending order of both), then the last positions go.
    About one read and four writes per member removed; the caller keeps `Meta.size`."""
    if len(doomed) == 1:
        ((hole, member),) = doomed.items()
        _remove_one(db, key, size, hole, member)
        return
    keep = size - len(doomed)
    for member in doomed.values():
        db.delete_field(key, MEMBER + member)
    holes = sorted(p for p in doomed if p < keep)
    movers = (p for p in range(keep, size) if p not in doomed)
    for hole, mover in zip(holes, movers, strict=True):
        moved = member_at(db, key, mover)
        at = encode_position(hole)
        db.put_field(key, POSITION + at, moved)
        db.put_field(key, MEMBER + moved, at)
    for position in range(keep, size):
        db.delete_field(key, POSITION + encode_position(position))


def _remove_one(db: Db, key: bytes, size: int, hole: int, member: bytes) -> None:
    """`remove_at` of the one `member` at position `hole` (SPOP's, SREM's and SMOVE's
    usual case): the last position's member moves into the hole."""
    db.delete_field(key, MEMBER + member)
    last = POSITION + encode_position(size - 1)
    if hole != size - 1:
        moved = db.get_field(key, last)
        if moved is None:
            raise PositionsCorruptError(f"set {key!r} has no member at position {size - 1}")
        at = encode_position(hole)
        db.put_field(key, POSITION + at, moved)
        db.put_field(key, MEMBER + moved, at)
    db.delete_field(key, last)


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


def positions(db: Db, key: bytes) -> list[tuple[int, bytes]]:
    """Every (position, member) of set `key` in position order: for checks and tools (a
    whole-set read)."""
    return [(decode_position(f[1:]), m) for f, m in db.fields(key, POSITION, None, POSITION_END)]
