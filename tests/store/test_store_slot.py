"""Hash slots: CRC16-XMODEM and hash tags, checked against CLUSTER KEYSLOT answers."""

from __future__ import annotations

import pytest

from cairn.store.slot import crc16, hash_tag, key_slot


def test_crc16_check_value() -> None:
    assert crc16(b"123456789") == 0x31C3


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"foo", 12182),
        (b"bar", 5061),
        (b"hello", 866),
        (b"123456789", 12739),
        (b"", 0),
        (b"{user1000}.following", 3443),
        (b"{user1000}.followers", 3443),
        (b"foo{}{bar}", 8363),
        (b"foo{{bar}}zap", 4015),
        (b"foo{bar}{zap}", 5061),
        (b"{bar", 4015),
        (b"a{b}c", 3300),
    ],
)
def test_key_slot_matches_redis_cluster(key: bytes, slot: int) -> None:
    assert key_slot(key) == slot


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        (b"plain", b"plain"),
        (b"{tag}rest", b"tag"),
        (b"x{}{y}", b"x{}{y}"),
        (b"x{y", b"x{y"),
        (b"x}y{z}", b"z"),
        (b"{{a}}", b"{a"),
    ],
)
def test_hash_tag(key: bytes, tag: bytes) -> None:
    assert hash_tag(key) == tag
