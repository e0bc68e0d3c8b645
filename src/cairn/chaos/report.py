"""The HTML report of a chaos run: one self-contained file, inline SVG, no scripts.

Three plots share the time axis (seconds into the run) and show every fault as a
translucent band labelled with its kind:

- a timeline of operations: one lane per workload function, each operation a bar from
  its invocation to its completion, coloured ok / fail / unknown;
- latency over time: each completed operation at its invocation time, log scale;
- throughput: completions per half second, by outcome.

Then the verdict, the seed, the network mechanism, the schedule, the faults as they
happened, and each workload's check.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.chaos.faults import FaultKind, FaultRecord
from cairn.chaos.workload import Interval, Workload, intervals
from cairn.check.history import OpType

if TYPE_CHECKING:
    from cairn.chaos.runner import ChaosResult

WIDTH = 1300
LEFT = 120
RIGHT = 20
MAX_MARKS = 15000
COLOURS = {OpType.OK: "#2e9b4f", OpType.FAIL: "#d6453d", OpType.INFO: "#f0a020"}
FAULT_COLOURS = {
    FaultKind.KILL: "#c0392b",
    FaultKind.PAUSE: "#8e44ad",
    FaultKind.PARTITION: "#2471a3",
    FaultKind.DELAY: "#17a589",
    FaultKind.LOSS: "#148f77",
    FaultKind.STALL: "#5d6d7e",
    FaultKind.CLOCK: "#d4ac0d",
    FaultKind.FSYNC_ERROR: "#a04000",
    FaultKind.SLOW_FSYNC: "#ca6f1e",
    FaultKind.CORRUPT: "#7b241c",
    FaultKind.POWER_LOSS: "#000000",
    FaultKind.SPLIT: "#1e8449",
    FaultKind.MERGE: "#117864",
    FaultKind.MOVE: "#6c3483",
    FaultKind.TRANSFER: "#b7950b",
    FaultKind.DRAIN: "#873600",
    FaultKind.PLACEMENT_KILL: "#922b21",
    FaultKind.PLACEMENT_TRANSFER: "#9a7d0a",
}


class _Axis:
    """Maps seconds into the run to x pixels."""

    def __init__(self, span: float) -> None:
        self.span = max(span, 1.0)

    def x(self, seconds: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * max(0.0, seconds) / self.span

    def ticks(self) -> list[float]:
        step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if self.span / s <= 15)
        return [float(t) for t in range(0, int(self.span) + 1, step)]


def _s(ns: int, t0: int) -> float:
    return (ns - t0) / 1e9


def _bands(faults: Sequence[FaultRecord], t0: int, axis: _Axis, height: int) -> list[str]:
    out = []
    for f in faults:
        x0 = axis.x(_s(f.start, t0))
        x1 = max(axis.x(_s(f.end or f.start, t0)), x0 + 2)
        colour = FAULT_COLOURS[f.kind]
        title = html.escape(f.describe())
        out.append(
            f'<rect x="{x0:.1f}" y="0" width="{x1 - x0:.1f}" height="{height}" '
            f'fill="{colour}" opacity="0.13"><title>{title}</title></rect>'
            f'<text x="{x0 + 2:.1f}" y="10" font-size="9" fill="{colour}">'
            f"{html.escape(f.kind.value)}</text>"
        )
    return out


def _time_axis(axis: _Axis, top: int, bottom: int) -> list[str]:
    out = []
    for t in axis.ticks():
        x = axis.x(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{bottom + 12}" font-size="10" text-anchor="middle">{t:g}s</text>'
        )
    return out


def _svg(height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif">{"".join(body)}</svg>'
    )


def _thin(ops: list[tuple[str, Interval]]) -> list[tuple[str, Interval]]:
    """At most MAX_MARKS operations, keeping every non-OK one (they are the interesting)."""
    if len(ops) <= MAX_MARKS:
        return ops
    rare = [o for o in ops if o[1].outcome is not OpType.OK]
    common = [o for o in ops if o[1].outcome is OpType.OK]
    step = max(1, len(common) // max(1, MAX_MARKS - len(rare)))
    return rare + common[::step]


def timeline(ops: list[tuple[str, Interval]], faults: Sequence[FaultRecord], t0: int,
             axis: _Axis, end: float) -> str:  # fmt: skip
    """Lanes of operations, one per workload function."""
    lanes = sorted({lane for lane, _ in ops})
    lane_h, top = 22, 16
    height = top + lane_h * max(1, len(lanes)) + 20
    body = _bands(faults, t0, axis, height - 18) + _time_axis(axis, top, height - 18)
    for i, lane in enumerate(lanes):
        y = top + i * lane_h
        body.append(f'<text x="4" y="{y + 14}" font-size="11">{html.escape(lane)}</text>')
    index = {lane: i for i, lane in enumerate(lanes)}
    for lane, op in _thin(ops):
        y = top + index[lane] * lane_h + 3
        x0 = axis.x(_s(op.start, t0))
        x1 = axis.x(_s(op.end, t0) if op.end is not None else end)
        body.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.8):.1f}" height="15" '
            f'fill="{COLOURS[op.outcome]}" opacity="0.55"/>'
        )
    return _svg(height, body)


def latency(ops: list[tuple[str, Interval]], faults: Sequence[FaultRecord], t0: int,
            axis: _Axis) -> str:  # fmt: skip
    """Latency of each completed operation (ms, log scale) at its invocation time."""
    height, top, bottom = 260, 16, 230
    lo, hi = 0.0, 4.0  # 1 ms .. 10 s

    def y(ms: float) -> float:
        v = min(max(math.log10(max(ms, 1.0)), lo), hi)
        return bottom - (bottom - top) * (v - lo) / (hi - lo)

    body = _bands(faults, t0, axis, bottom) + _time_axis(axis, top, bottom)
    for ms in (1, 10, 100, 1000, 10000):
        body.append(
            f'<line x1="{LEFT}" y1="{y(ms):.1f}" x2="{WIDTH - RIGHT}" y2="{y(ms):.1f}" '
            f'stroke="#eee"/><text x="{LEFT - 6}" y="{y(ms) + 4:.1f}" font-size="10" '
            f'text-anchor="end">{ms:g} ms</text>'
        )
    for _, op in _thin([o for o in ops if o[1].end is not None]):
        assert op.end is not None
        elapsed = (op.end - op.start) / 1e6
        body.append(
            f'<circle cx="{axis.x(_s(op.start, t0)):.1f}" cy="{y(elapsed):.1f}" r="1.6" '
            f'fill="{COLOURS[op.outcome]}" opacity="0.6"/>'
        )
    return _svg(height, body)


def throughput(ops: list[tuple[str, Interval]], faults: Sequence[FaultRecord], t0: int,
               axis: _Axis) -> str:  # fmt: skip
    """Completions per half second, one line per outcome."""
    height, top, bottom = 200, 16, 170
    width = 0.5
    bins = int(axis.span / width) + 1
    counts = {t: [0] * bins for t in COLOURS}
    for _, op in ops:
        if op.end is not None:
            b = int(_s(op.end, t0) / width)
            if 0 <= b < bins:
                counts[op.outcome][b] += 1
    peak = max(1, *(max(c) for c in counts.values()))
    body = _bands(faults, t0, axis, bottom) + _time_axis(axis, top, bottom)
    body.append(
        f'<text x="{LEFT - 6}" y="{top + 4}" font-size="10" text-anchor="end">'
        f"{peak / width:.0f}/s</text>"
        f'<text x="{LEFT - 6}" y="{bottom}" font-size="10" text-anchor="end">0</text>'
    )
    for outcome, series in counts.items():
        points = " ".join(
            f"{axis.x((i + 0.5) * width):.1f},{bottom - (bottom - top) * c / peak:.1f}"
            for i, c in enumerate(series)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{COLOURS[outcome]}" '
            'stroke-width="1.4"/>'
        )
    return _svg(height, body)


def _legend() -> str:
    items = [("ok", COLOURS[OpType.OK]), ("fail", COLOURS[OpType.FAIL]),
             ("unknown", COLOURS[OpType.INFO])]  # fmt: skip
    spans = "".join(
        f'<span style="display:inline-block;width:12px;height:12px;background:{c};'
        f'margin:0 4px 0 14px"></span>{name}'
        for name, c in items
    )
    return f"<p>{spans}</p>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


_STYLE = (
    "body{font-family:sans-serif;margin:20px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0 18px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left;"
    "vertical-align:top}"
    ".ok{background:#d8f3dc;padding:10px}.bad{background:#fadbd8;padding:10px}"
    "h2{margin-top:26px;font-size:18px}"
)


def render(result: ChaosResult, workloads: Sequence[Workload], t0: int) -> str:
    """The whole report as one HTML string."""
    cfg = result.config
    ops = [
        (f"{getattr(w, 'name', '?')}:{op.f}", op)
        for w in workloads
        for op in intervals(w.history.snapshot())
    ]
    end = _s(result.ended, t0)
    axis = _Axis(end)
    verdict = (
        '<div class="ok"><b>No anomalies.</b>'
        if result.ok
        else f'<div class="bad"><b>{len(result.anomalies)} anomalies.</b>'
    )
    verdict += f" Acknowledged writes lost: {result.lost}.</div>"
    anomalies = "".join(f"<li>{html.escape(a)}</li>" for a in result.anomalies[:50])
    fault_rows = [
        (f"{_s(f.start, t0):.1f}", f"{_s(f.end, t0):.1f}", f.kind.value, f.target, f.detail,
         "; ".join(f.problems + f.notes))
        for f in result.faults
    ]  # fmt: skip
    check_rows = [(c.name, "ok" if c.ok else "ANOMALY", c.details) for c in result.checks]
    op_rows = [
        (name, str(c["ok"]), str(c["fail"]), str(c["info"])) for name, c in result.ops.items()
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Cairn chaos, seed "
        f"{cfg.seed}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Cairn chaos run, seed {cfg.seed}</h1>{verdict}"
        + (f"<ul>{anomalies}</ul>" if anomalies else "")
        + _table(
            ("nodes", "duration", "workloads", "faults", "network", "planted bug"),
            [
                (
                    str(cfg.nodes),
                    f"{cfg.duration:g} s",
                    ", ".join(cfg.workloads),
                    ", ".join(sorted(f.value for f in cfg.faults)),
                    result.network,
                    cfg.plant or "none",
                )
            ],
        )
        + "<h2>Operations</h2>"
        + _legend()
        + timeline(ops, result.faults, t0, axis, end)
        + "<h2>Latency</h2>"
        + latency(ops, result.faults, t0, axis)
        + "<h2>Throughput (completions per second)</h2>"
        + throughput(ops, result.faults, t0, axis)
        + "<h2>Checks</h2>"
        + _table(("workload", "verdict", "details"), check_rows)
        + _table(("workload", "ok", "fail", "unknown"), op_rows)
        + "<h2>Faults injected</h2>"
        + _table(("start s", "end s", "fault", "target", "what happened", "findings"), fault_rows)
        + "<h2>Schedule (from the seed)</h2><p>"
        + html.escape("; ".join(p.describe() for p in result.plan))
        + "</p><p>Histories: "
        + html.escape(", ".join(str(p.name) for p in result.histories.values()))
        + "</p></body></html>"
    )


def write_report(result: ChaosResult, workloads: Sequence[Workload], path: Path, t0: int) -> Path:
    """Write the report to `path`; the path."""
    path.write_text(render(result, workloads, t0))
    return path
