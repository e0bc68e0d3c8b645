"""The coverage invariant of a multi-region run: regions tile the keyspace exactly.

The newest applied description of every live region (`MultiCluster.applied`, merge
sources retired) must cover the ordered keyspace from `b""` to the open end with neither a
gap nor an overlap. Splits and merges change two descriptions in one apply, and the first
replica to apply one announces both, so the property holds after every event.
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn.meta.region import Region


def coverage_problem(regions: Iterable[Region]) -> str | None:
    """What is wrong with how `regions` cover the keyspace, or None when they tile it."""
    ordered = sorted(regions, key=lambda r: (r.start, r.id))
    if not ordered:
        return "no region covers the keyspace"
    at = b""
    for i, region in enumerate(ordered):
        if region.start != at:
            kind = "gap" if region.start > at else "overlap"
            return f"{kind} before region {region.id} at {region.start!r} (covered to {at!r})"
        if not region.end and i != len(ordered) - 1:
            return f"overlap: region {region.id} runs to the end but {ordered[i + 1].id} follows"
        at = region.end
    if at:
        return f"gap after {at!r} (region {ordered[-1].id} ends there)"
    return None
