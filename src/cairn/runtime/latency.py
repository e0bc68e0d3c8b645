"""LATENCY LATEST / HISTORY / RESET / HISTOGRAM / DOCTOR / HELP: Redis 7.0's latency
monitor, kept by each node.

Events: `command` (a command without the `fast` flag) and `fast-command`, sampled when a
command takes at least `latency-monitor-threshold` milliseconds (0: monitoring off, as in
Redis), measured from its arrival at this node to its reply (`cairn.runtime.command_stats`).
Each event keeps its last 160 samples, at most one per second (the second's worst), and
its all-time worst. HISTOGRAM answers the per-command latency histograms that INFO
latencystats summarises (RESP3 map; RESP2 flattens it, as Redis). GRAPH is not offered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.resp.reply import Array, Bulk, ErrorReply, Integer, Map, Reply, SimpleString
from cairn.runtime.command_stats import CommandStats

HISTORY_LEN = 160
"""Redis' LATENCY_TS_LEN: samples kept per event."""
HELP = (
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the "
    "specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
)
_ARITY = {b"latest": 2, b"history": 3, b"reset": -2, b"histogram": -2, b"doctor": 2, b"help": 2}


@dataclass(slots=True)
class EventSeries:
    """One event's samples: (unix second, worst latency in ms that second), oldest first."""

    samples: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))
    max: int = 0

    def add(self, latency_ms: int, now: int) -> None:
        if self.samples and self.samples[-1][0] == now:
            latency_ms = max(latency_ms, self.samples[-1][1])
            self.samples.pop()
        self.samples.append((now, latency_ms))
        self.max = max(self.max, latency_ms)


class LatencyMonitor:
    """Every event's series on this node."""

    def __init__(self) -> None:
        self.events: dict[str, EventSeries] = {}

    def add(self, event: str, latency_ms: int, now: int) -> None:
        """Record a sample of `event` (the caller checked the threshold)."""
        series = self.events.get(event)
        if series is None:
            series = self.events[event] = EventSeries()
        series.add(latency_ms, now)

    def command(self, args: Sequence[bytes], stats: CommandStats, threshold_ms: int) -> Reply:
        """LATENCY <subcommand> (the arguments after LATENCY)."""
        sub = args[0].lower()
        arity = _ARITY.get(sub)
        if arity is None:
            text = args[0].split(b"\0")[0][:128].decode("utf-8", "replace")
            return ErrorReply(f"ERR unknown subcommand '{text}'. Try LATENCY HELP.")
        argc = len(args) + 1
        if argc != arity if arity > 0 else argc < -arity:
            return ErrorReply(f"ERR wrong number of arguments for 'latency|{sub.decode()}' command")
        if sub == b"latest":
            return self._latest()
        if sub == b"history":
            series = self.events.get(args[1].decode("utf-8", "replace"))
            samples = () if series is None else series.samples
            return Array(tuple(Array((Integer(t), Integer(v))) for t, v in samples))
        if sub == b"reset":
            return Integer(self._reset(args[1:]))
        if sub == b"histogram":
            return histogram_reply(stats, args[1:])
        if sub == b"doctor":
            return Bulk(self.doctor(threshold_ms).encode())
        return Array(tuple(SimpleString(line) for line in HELP))

    def _latest(self) -> Reply:
        rows = []
        for name, series in self.events.items():
            if series.samples:
                ts, latest = series.samples[-1]
                row = (Bulk(name.encode()), Integer(ts), Integer(latest), Integer(series.max))
                rows.append(Array(row))
        return Array(tuple(rows))

    def _reset(self, names: Sequence[bytes]) -> int:
        if not names:
            count = len(self.events)
            self.events.clear()
            return count
        count = 0
        for raw in names:
            if self.events.pop(raw.decode("utf-8", "replace"), None) is not None:
                count += 1
        return count

    def doctor(self, threshold_ms: int) -> str:
        """A short report: whether monitoring is on, then each event's figures."""
        if not threshold_ms:
            return (
                "Latency monitoring is disabled on this Cairn node. Enable it with "
                "CONFIG SET latency-monitor-threshold <milliseconds>.\n"
            )
        events = [(n, s) for n, s in self.events.items() if s.samples]
        if not events:
            return f"No latency spike of {threshold_ms} ms or more was observed on this node.\n"
        lines = ["Latency spikes observed on this Cairn node:", ""]
        for i, (name, s) in enumerate(events, 1):
            values = [v for _, v in s.samples]
            average = sum(values) // len(values)
            lines.append(
                f"{i}. {name}: {len(values)} latency spikes (average {average}ms). "
                f"Worst all time event {s.max}ms."
            )
        lines += [
            "",
            "A Cairn command's latency includes its Raft commit (writes) and the hop to a "
            "region's leader (commands sent to a follower): see SLOWLOG GET for the "
            "commands, and INFO raft for the regions' leaders and terms.",
        ]
        return "\n".join(lines) + "\n"


def histogram_reply(stats: CommandStats, names: Sequence[bytes]) -> Reply:
    """LATENCY HISTOGRAM [command ...]: each named command (with its subcommands) that has
    calls, or every such command when none is named."""
    keys: list[str] = []
    tracked = [k for k, s in stats.commands.items() if s.histogram.total]
    if not names:
        keys = tracked
    for raw in names:
        name = raw.lower().decode("utf-8", "replace")
        keys += [k for k in tracked if k == name or k.startswith(name + "|")]
    pairs = []
    for key in keys:
        h = stats.commands[key].histogram
        buckets = tuple((Integer(us), Integer(n)) for us, n in h.cumulative())
        body = Map(
            (
                (Bulk(b"calls"), Integer(h.total)),
                (Bulk(b"histogram_usec"), Map(buckets)),
            )
        )
        pairs.append((Bulk(key.encode()), body))
    return Map(tuple(pairs))
