"""The formatting helpers behind `cairn ctl`'s tables."""

from __future__ import annotations

import pytest

from cairn.admin.render import ago, human_bytes, region_range, rules_text, wall_time
from cairn.admin.views import Health, RegionView
from cairn.meta.region import slot_bound
from cairn.placement.model import PlacementRules, RangeRule


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 << 30, "5.0 GiB"),
        (3 << 50, "3072.0 TiB"),
    ],
)
def test_human_bytes(n: int | None, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (0, "0 ms ago"),
        (999, "999 ms ago"),
        (1500, "1.5 s ago"),
        (600_000, "10 min ago"),
    ],
)
def test_ago(ms: int | None, text: str) -> None:
    assert ago(ms) == text


def test_wall_time_is_utc_with_milliseconds() -> None:
    assert wall_time(1_700_000_000_042) == "2023-11-14 22:13:20.042"


def test_region_range_shows_exact_bounds_only_inside_a_slot() -> None:
    aligned = RegionView(1, slot_bound(10), slot_bound(20), 1, 1, (), None, Health.OK)
    assert region_range(aligned) == "10-19"
    inside = RegionView(2, slot_bound(20), slot_bound(30) + b"m", 1, 1, (), None, Health.OK)
    assert region_range(inside) == "20-30 (slot 20 .. slot 30 key b'm')"


def test_rules_text() -> None:
    assert rules_text(None) == "static (no placement driver running)"
    rules = PlacementRules(3, "zone", (RangeRule(b"", slot_bound(100), 5, "rack", "hot"),))
    assert rules_text(rules).splitlines() == [
        "3 replicas, spread across 'zone'",
        "start .. slot 100: 5 replicas across 'rack' (hot)",
    ]
