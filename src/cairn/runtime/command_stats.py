"""Per-command bookkeeping for INFO commandstats, errorstats, latencystats and stats, and
the one hook that feeds SLOWLOG and LATENCY: `CommandRecorder.track`.

Theory of operation. The node calls `track(state, argv, done)` when a client command
arrives; it reads the injected monotonic clock once and returns a `done` that reads it once
more when the reply is ready, then records the call. So a command's duration in Cairn is
the time from its arrival at this node to its reply: for a write it includes the Raft
commit, for a command forwarded to a region's leader the round trip (Redis measures only
the execution on its one thread; a Cairn command's cost is mostly its replication).

What is not timed, and why:
- a blocking command (BLPOP ...): Cairn cannot yet separate its wait from its work, so it
  counts a call (and its error) but adds no time, no slowlog entry and no latency sample;
- a command queued inside MULTI is not counted when queued (as in Redis); the commands an
  EXEC runs do not pass through `track` again, so only EXEC itself is counted.

Commands are keyed as Redis 7 keys them: the name, or `container|sub` for a container's
subcommand (`client|list`, `config|get`). Only known names and subcommands get an entry,
so hostile input cannot grow the tables; an unknown command still counts in errorstats.
An error reply counts as `rejected_calls` when it refuses the command before it runs
(NOAUTH, arity, MOVED, CROSSSLOT, ...: `REJECTIONS`), else as `failed_calls`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cairn.resp.reply import ErrorReply, Reply, SimpleString

if TYPE_CHECKING:
    from cairn.runtime.latency import LatencyMonitor
    from cairn.runtime.server import ClientState
    from cairn.runtime.slowlog import SlowLog

ReplyLike = Reply | bytes

MAX_ERROR_CODES = 128
"""Redis' ERROR_STATS_NUMBER: distinct error codes INFO errorstats keeps at most."""
MAX_TRACKED_NS = 1_000_000_000
"""Redis' latency histograms' largest value (1 s); longer calls are counted as 1 s."""
_SUB_BITS = 7
"""HdrHistogram with 2 significant digits, as Redis: 128 sub-buckets per power of two."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CONTAINERS: dict[str, frozenset[str]] = {
    "client": _words("id getname setname info list kill no-evict no-touch setinfo help"),
    "config": _words("get set resetstat rewrite help"),
    "slowlog": _words("get len reset help"),
    "latency": _words("latest history reset histogram doctor help"),
    "cluster": _words("slots shards nodes info keyslot countkeysinslot getkeysinslot myid help"),
    "command": _words("count list info docs getkeys help"),
    "object": _words("encoding freq idletime refcount help"),
    "xinfo": _words("stream groups consumers help"),
    "pubsub": _words("channels numsub numpat shardchannels shardnumsub help"),
}
"""Container commands whose subcommands Redis 7 counts apart (`cmdstat_client|list`)."""

REJECTIONS = (
    b"NOAUTH",
    b"ERR wrong number of arguments",
    b"ERR unknown command",
    b"ERR unknown subcommand",
    b"MOVED",
    b"ASK",
    b"CROSSSLOT",
    b"CLUSTERDOWN",
    b"TRYAGAIN this node is shutting down",
)
"""Error texts given before a command runs: Redis counts them as `rejected_calls`."""


class Histogram:
    """A bounded HdrHistogram (1 ns .. 1 s, 2 significant digits), as Redis keeps per
    command: at most 30 x 128 buckets, usually a few dozen."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add(self, ns: int) -> None:
        """Count one value (clamped to 1 ns .. `MAX_TRACKED_NS`)."""
        if ns < 1:
            ns = 1
        elif ns > MAX_TRACKED_NS:
            ns = MAX_TRACKED_NS
        bucket = ns.bit_length() - 1 - _SUB_BITS  # _index, inline: this runs per command
        if bucket < 0:
            bucket = 0
        index = (bucket << 16) | (ns >> bucket)
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        self.total += 1

    def percentile(self, p: float) -> int:
        """hdr_value_at_percentile: the highest value equivalent to the p-th one (ns)."""
        wanted = max(1, int(p / 100 * self.total + 0.5))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= wanted:
                return _highest(index)
        return 0

    def cumulative(self) -> list[tuple[int, int]]:
        """LATENCY HISTOGRAM's (bucket upper bound in us, cumulative count) pairs: Redis'
        log iteration from 1024 ns doubling, only buckets that add calls."""
        out: list[tuple[int, int]] = []
        ordered = sorted((_highest(i), c) for i, c in self.counts.items())
        seen = 0
        i = 0
        bound = 1024
        while i < len(ordered):
            while i < len(ordered) and ordered[i][0] < bound:
                seen += ordered[i][1]
                i += 1
            if seen and (not out or out[-1][1] < seen):
                out.append((bound // 1000, seen))
            bound *= 2
        return out


def _index(value: int) -> int:
    """The bucket of `value`: (power of two, sub-bucket) packed in one int."""
    bucket = max(value.bit_length() - 1 - _SUB_BITS, 0)
    return (bucket << 16) | (value >> bucket)


def _highest(index: int) -> int:
    bucket, sub = index >> 16, index & 0xFFFF
    return ((sub + 1) << bucket) - 1


@dataclass(slots=True)
class CommandStat:
    """One command's INFO commandstats and latencystats figures."""

    calls: int = 0
    usec: int = 0
    rejected: int = 0
    failed: int = 0
    histogram: Histogram = field(default_factory=Histogram)


class CommandStats:
    """Every command's counters, the error counters, and the ops/sec estimate."""

    def __init__(self) -> None:
        self.commands: dict[str, CommandStat] = {}
        self.errors: dict[str, int] = {}
        self.total_errors = 0
        self.total_commands = 0
        self._second = 0
        self._this_second = 0
        self._last_second = 0

    def reset(self) -> None:
        """CONFIG RESETSTAT."""
        self.__init__()  # type: ignore[misc]

    def stat(self, key: str) -> CommandStat:
        """The counters of command `key`, created on first use."""
        found = self.commands.get(key)
        if found is None:
            found = self.commands[key] = CommandStat()
        return found

    def count_error(self, text: bytes) -> None:
        """One error reply: its code (the first word) in errorstats."""
        self.total_errors += 1
        code = text.split(b" ", 1)[0].decode("ascii", "replace")
        if code in self.errors or len(self.errors) < MAX_ERROR_CODES:
            self.errors[code] = self.errors.get(code, 0) + 1

    def tick(self, now: float) -> None:
        """Count one command in the current second (instantaneous_ops_per_sec)."""
        second = int(now)
        if second != self._second:
            self._last_second = self._this_second if second == self._second + 1 else 0
            self._second, self._this_second = second, 0
        self._this_second += 1
        self.total_commands += 1

    def ops_per_sec(self, now: float) -> int:
        """Commands processed in the last whole second."""
        second = int(now)
        if second == self._second:
            return self._last_second
        return self._this_second if second == self._second + 1 else 0

    def info_commandstats(self) -> list[tuple[str, object]]:
        """INFO commandstats' lines (`cmdstat_get:calls=...`)."""
        out: list[tuple[str, object]] = []
        for key, s in self.commands.items():
            if s.calls or s.rejected or s.failed:
                per_call = s.usec / s.calls if s.calls else 0.0
                value = (
                    f"calls={s.calls},usec={s.usec},usec_per_call={per_call:.2f},"
                    f"rejected_calls={s.rejected},failed_calls={s.failed}"
                )
                out.append((f"cmdstat_{key}", value))
        return out

    def info_latencystats(self, percentiles: Sequence[float]) -> list[tuple[str, object]]:
        """INFO latencystats' lines (`latency_percentiles_usec_get:p50=...`)."""
        out: list[tuple[str, object]] = []
        for key, s in self.commands.items():
            if s.histogram.total:
                parts = [
                    f"p{_percent(p)}={s.histogram.percentile(p) / 1000:.3f}" for p in percentiles
                ]
                out.append((f"latency_percentiles_usec_{key}", ",".join(parts)))
        return out

    def info_errorstats(self) -> list[tuple[str, object]]:
        """INFO errorstats' lines (`errorstat_ERR:count=3`)."""
        return [(f"errorstat_{code}", f"count={n}") for code, n in self.errors.items()]


def _percent(p: float) -> str:
    """A percentile as Redis names it: 50, 99, 99.9."""
    text = f"{p:f}".rstrip("0").rstrip(".")
    return text or "0"


def command_key(argv: Sequence[bytes], name: str | None = None) -> str | None:
    """The name Redis 7 counts `argv` under, or None for an unknown subcommand; `name` is
    `argv[0]` lowercased, when the caller has it already."""
    if name is None:
        name = argv[0].lower().decode("utf-8", "replace")
    subs = CONTAINERS.get(name)
    if subs is None or len(argv) < 2:
        return name
    sub = argv[1].lower().decode("utf-8", "replace")
    return f"{name}|{sub}" if sub in subs else None


@dataclass(slots=True)
class RecorderSettings:
    """The CONFIG parameters the recorder follows (set by CONFIG SET)."""

    slowlog_slower_than_us: int = 10_000
    latency_threshold_ms: int = 0
    latency_tracking: bool = True
    percentiles: tuple[float, ...] = (50.0, 99.0, 99.9)


class CommandRecorder:
    """Times every client command once and feeds commandstats, slowlog and latency."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        wall_time: Callable[[], float],
        known: Callable[[str], bool],
        fast: Callable[[str], bool],
        blocking: Callable[[str], bool],
        slowlog: SlowLog,
        latency: LatencyMonitor,
    ) -> None:
        self.monotonic = monotonic
        self.wall_time = wall_time
        self._known = known
        self._fast = fast
        self._blocking = blocking
        self.slowlog = slowlog
        self.latency = latency
        self.stats = CommandStats()
        self.settings = RecorderSettings()

    def track(
        self,
        state: ClientState,
        argv: list[bytes],
        done: Callable[[ReplyLike], None],
        name: str | None = None,
    ) -> Callable[[ReplyLike], None]:
        """`done`, wrapped to record `argv`'s call when its reply is ready (`name`: the
        command's lowercase name, when the caller has it already)."""
        start = self.monotonic()
        key = command_key(argv, name)
        if key is not None and not self._known(key.split("|", 1)[0]):
            key = None
        if key is not None:
            state.last_command = key

        def finish(reply: ReplyLike) -> None:
            self.record(state, argv, key, start, reply)
            done(reply)

        return finish

    def record(
        self,
        state: ClientState,
        argv: Sequence[bytes],
        key: str | None,
        start: float,
        reply: ReplyLike,
    ) -> None:
        """Count one finished call of `argv` (command `key`, None if unknown)."""
        now = self.monotonic()
        error = None if type(reply) is SimpleString else _error_text(reply)
        if error is None and _is_queued(reply):
            return
        if error is not None:
            self.stats.count_error(error)
        if key is None:
            return
        stat = self.stats.stat(key)
        if error is not None and error.startswith(REJECTIONS):
            stat.rejected += 1
            return
        self.stats.tick(now)
        stat.calls += 1
        if error is not None:
            stat.failed += 1
        if self._blocking(key):
            return
        usec = max(round((now - start) * 1_000_000), 0)
        stat.usec += usec
        if self.settings.latency_tracking:
            stat.histogram.add(usec * 1000)
        self._slow(state, argv, key, usec)

    def _slow(self, state: ClientState, argv: Sequence[bytes], key: str, usec: int) -> None:
        settings = self.settings
        threshold = settings.slowlog_slower_than_us
        if threshold >= 0 and usec >= threshold:
            self.slowlog.add(argv, usec, int(self.wall_time()), state.addr, state.name)
        limit = settings.latency_threshold_ms
        if limit and usec >= limit * 1000:
            event = "fast-command" if self._fast(key.split("|", 1)[0]) else "command"
            self.latency.add(event, usec // 1000, int(self.wall_time()))


def _error_text(reply: ReplyLike) -> bytes | None:
    """The error text of an error reply (typed, or encoded as relayed), else None."""
    if isinstance(reply, ErrorReply):
        return reply.message.encode("utf-8", "replace")
    if isinstance(reply, bytes) and reply[:1] in (b"-", b"!"):
        line = reply[1:].split(b"\r\n", 1)
        return line[1] if reply[:1] == b"!" and len(line) > 1 else line[0]
    return None


def _is_queued(reply: ReplyLike) -> bool:
    return type(reply) is SimpleString and reply.value == "QUEUED"
