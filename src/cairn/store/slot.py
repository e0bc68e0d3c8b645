"""Redis Cluster hash slots: which of the 16384 slots a key belongs to.

The slot is CRC16 (the XMODEM variant: polynomial 0x1021, initial value 0, no reflection)
of the key modulo 16384. When the key contains a `{...}` hash tag with at least one byte
between the first `{` and the first `}` after it, only those bytes are hashed, so that
related keys (`{user1000}.following`, `{user1000}.followers`) land in the same slot and
therefore in the same region. An empty tag (`foo{}{bar}`) hashes the whole key.
"""

from __future__ import annotations

import binascii

SLOT_COUNT = 16384
"""Number of hash slots; a region covers a contiguous range of them."""


def crc16(data: bytes) -> int:
    """CRC16-XMODEM of `data` (`crc16(b"123456789") == 0x31C3`).

    `binascii.crc_hqx` with initial value 0 is exactly this CRC, computed in C (about 20x
    faster than a table-driven loop in Python; a SET hashes its key several times).
    """
    return binascii.crc_hqx(data, 0)


def hash_tag(key: bytes) -> bytes:
    """The part of `key` that is hashed: the first non-empty `{tag}`, else the whole key."""
    start = key.find(b"{")
    if start < 0:
        return key
    end = key.find(b"}", start + 1)
    if end < 0 or end == start + 1:
        return key
    return key[start + 1 : end]


def key_slot(key: bytes) -> int:
    """The Redis Cluster hash slot of `key` (what `CLUSTER KEYSLOT` answers)."""
    # On every command's path several times (routing, range checks, record keys): one
    # Python call, the tag looked for only when there can be one.
    if b"{" in key:
        key = hash_tag(key)
    return binascii.crc_hqx(key, 0) & (SLOT_COUNT - 1)
