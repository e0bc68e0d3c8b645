"""Redis' number syntax and INCRBYFLOAT's extended precision (values checked on Redis 7.0)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from cairn.store.layout import Meta, ValueType, decode_meta, encode_meta
from cairn.store.numbers import (
    add_long_double,
    format_long_double,
    parse_ll,
    parse_long_double,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"-1", -1),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-0", None),
        (b"+1", None),
        (b"01", None),
        (b" 1", None),
        (b"1 ", None),
        (b"", None),
        (b"1.0", None),
    ],
)
def test_parse_ll(text: bytes, value: int | None) -> None:
    assert parse_ll(text) == value


def _incr(*steps: bytes) -> bytes:
    total = parse_long_double(b"0")
    for step in steps:
        value = parse_long_double(step)
        assert total is not None and value is not None
        total = add_long_double(total, value)
    assert isinstance(total, Fraction)
    return format_long_double(total)


@pytest.mark.parametrize(
    ("steps", "text"),
    [
        ((b"0.1",), b"0.1"),
        ((b"0.1", b"0.2"), b"0.3"),
        ((b"1.1", b"2.2", b"-3.3"), b"0"),
        ((b"1.23456789012345678901234567890",), b"1.23456789012345679"),
        ((b"-0.000000000000000006", b"-0.000000000000000004"), b"-0.00000000000000001"),
        ((b"0.000000000000000001",), b"0"),
        ((b"0x1p-2", b"16"), b"16.25"),
        ((b"100000000000000000000",), b"100000000000000000000"),
    ],
)
def test_extended_precision_matches_redis(steps: tuple[bytes, ...], text: bytes) -> None:
    assert _incr(*steps) == text


def test_large_values_print_every_integer_digit() -> None:
    text = _incr(b"1e300")
    assert len(text) == 301
    assert text.startswith(b"10000000000000000000089973240795591938705239442732907479382600823")


def test_huge_values_format_past_cpythons_digit_limit() -> None:
    value = parse_long_double(b"1e4932")
    assert isinstance(value, Fraction)
    assert len(format_long_double(value)) == 4933


@pytest.mark.parametrize(
    "text", [b"nan", b"1e5000", b"1e-5000", b"abc", b" 1", b"1 ", b"0x", b"1e", b"", b"."]
)
def test_rejected_floats(text: bytes) -> None:
    assert parse_long_double(text) is None


def test_infinity_parses_but_is_not_finite() -> None:
    assert parse_long_double(b"-inf") == "-inf"
    assert add_long_double("inf", "-inf") is None


@pytest.mark.parametrize(
    "meta",
    [
        Meta(ValueType.STRING, None, value=b""),
        Meta(ValueType.STRING, 1_700_000_000_000, value=b"\x00\xff"),
        Meta(ValueType.HASH, None, size=3),
        Meta(ValueType.HASH, 2**63 - 1, size=2**40),
    ],
)
def test_meta_round_trip(meta: Meta) -> None:
    assert decode_meta(encode_meta(meta)) == meta
