"""The timestamp oracle's real-time order, checked over the timestamps clients received.

A timestamp oracle (`cairn.placement.tso`) promises that a timestamp is strictly greater
than every timestamp whose request completed before this one's was sent, whichever node
asked and whichever leader served them, and that none is handed out twice. `TsoLog` holds
what clients received, each as (asked, got, ts): when the request was sent, when the
answer arrived (on one monotonic clock: virtual nanoseconds in the simulator, real ones in
a chaos run) and the timestamp. Requests that failed are left out: a timestamp nobody
received promises nothing.

The check sorts the answers by arrival and keeps the running maximum, so each timestamp
is compared once with the largest one received strictly before it was asked for (a binary
search): O(n log n). Used by the simulator (`cairn.sim.txn_client`) and by the chaos
runner's `tso` workload (`cairn.chaos.tso_workload`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

NOT_ABOVE = "not-above"
"""A timestamp not above one received before it was asked for."""
DUPLICATE = "duplicate"
"""A timestamp handed out twice."""


@dataclass(frozen=True, slots=True)
class TsoAnomaly:
    """One break of the real-time order: timestamp `TsoLog.got[index]` against the earlier
    answer `TsoLog.got[earlier]` (`kind` NOT_ABOVE: received before `index` was asked for,
    and at least as large; DUPLICATE: the same timestamp)."""

    kind: str
    index: int
    earlier: int


@dataclass(slots=True)
class TsoLog:
    """Every timestamp handed to a client: (asked, got, ts) on one monotonic clock."""

    got: list[tuple[int, int, int]] = field(default_factory=list)

    def anomalies(self) -> list[TsoAnomaly]:
        """Every timestamp not above the largest one received before it was asked for
        (in the order of `got`), then every repeat of a timestamp (against its first)."""
        order = sorted(range(len(self.got)), key=lambda i: (self.got[i][1], self.got[i][2]))
        done_at = [self.got[i][1] for i in order]
        best: list[int] = []  # best[k]: index of the largest ts among order[: k + 1]
        for i in order:
            if not best or self.got[i][2] > self.got[best[-1]][2]:
                best.append(i)
            else:
                best.append(best[-1])
        found: list[TsoAnomaly] = []
        for i, (asked, _, ts) in enumerate(self.got):
            before = bisect_left(done_at, asked)  # replies strictly before `asked`
            if before and self.got[best[before - 1]][2] >= ts:
                found.append(TsoAnomaly(NOT_ABOVE, i, best[before - 1]))
        first: dict[int, int] = {}
        for i, (_, _, ts) in enumerate(self.got):
            if ts in first:
                found.append(TsoAnomaly(DUPLICATE, i, first[ts]))
            else:
                first[ts] = i
        return found

    def violations(self) -> list[str]:
        """The anomalies as lines: one per timestamp not above an earlier one, and one
        line if any timestamp was handed out twice."""
        lines: list[str] = []
        duplicated = False
        for a in self.anomalies():
            if a.kind == DUPLICATE:
                duplicated = True
                continue
            asked, _, ts = self.got[a.index]
            highest = self.got[a.earlier][2]
            lines.append(f"timestamp {ts} asked at {asked} is not above {highest}")
        if duplicated:
            lines.append("a timestamp was handed out twice")
        return lines
