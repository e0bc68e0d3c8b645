"""CONFIG GET / SET / RESETSTAT / HELP: Redis 7.0's parameters, kept by each node.

CONFIG is a node-level command, as in Redis (Cluster): it is answered by the node the
client is connected to, and CONFIG SET changes that node only, until it restarts or CONFIG
REWRITE saves the values into its TOML file (`cairn.runtime.config_rewrite`). The parameter table is
redis-server 7.0.15's (`cairn.runtime.redis_params`); values parse and fail exactly as
there, byte for byte: `ERR Unknown option or number of arguments for CONFIG SET - 'x'`,
`ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be
between 1 and 4294967295 inclusive`, duplicates, immutable and protected parameters. A
CONFIG SET of several parameters is atomic: every name is checked, then every value is
parsed, and only when all are valid is anything changed.

What the parameters mean to Cairn:

- take effect: `maxclients` (new connections beyond it are refused), `timeout` (idle
  clients are closed), `maxmemory` (the node's client memory: query buffers and unsent
  replies, not the dataset), `protected-mode`, `client-output-buffer-limit` (the normal
  and pubsub classes; a hard limit of 0 is refused: Cairn always bounds replies, and
  the normal hard limit also bounds what a leader queues for a follower's clients),
  `requirepass`
  (AUTH's password; "" removes it; connections already authenticated stay so, as in
  Redis), `proto-max-bulk-len` and `client-query-buffer-limit` (the protocol parser's
  limits, for connections opened after the change: a connection's parser is built with
  them), `loglevel` (the `cairn` loggers: debug and verbose are DEBUG, notice INFO,
  warning WARNING);
- read by the OBJECT command on this node: `hash-max-listpack-entries/value`,
  `set-max-intset-entries`, `zset-max-listpack-entries/value` (and their `*-ziplist-*`
  aliases) decide the encoding OBJECT ENCODING reports, `maxmemory-policy` whether OBJECT
  FREQ or IDLETIME answers (`cairn.store.encodings`). `list-max-listpack-size` and
  `list-compress-depth` are validated and kept (Redis 7.0 lists are always `quicklist`);
- reported as they are and refused a change Cairn cannot honour, with a Redis-style
  reason: `port`, `bind`, `dir` (the node's data directory, protected as in Redis),
  `cluster-enabled yes`, `databases 1`;
- `notify-keyspace-events`: validated and shown as Redis does ("KEA" shows as "AKE"); the
  regions this node leads publish their keyspace notifications with it
  (`cairn.runtime.keyspace_events`: configure every node alike);
- every other parameter is validated like Redis, kept and reported, and changes nothing
  in Cairn (there is no RDB, AOF, replication link, TLS, ... to tune).

CONFIG GET answers a map (RESP3) of the names matched by each pattern (glob, case-
insensitive; an exact name also finds an alias or another case, answered as typed), each
parameter once, in table order; an unknown name matches nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cairn.resp.reply import ErrorReply
from cairn.runtime.config import Limits, NodeConfig
from cairn.runtime.redis_params import PARAMS, ULLONG_MAX, Kind, Param
from cairn.store.commands.sort import strtod
from cairn.store.encodings import ObjectSettings
from cairn.store.glob import stringmatch
from cairn.store.notifications import INVALID_FLAGS, flags_text, parse_flags
from cairn.store.numbers import parse_ll

if TYPE_CHECKING:
    from cairn.runtime.server import RespServer

_ENTRIES: dict[str, tuple[str, Param]] = {}
"""Every name CONFIG knows, lowercase, with the name it is shown as and its parameter."""
for _param in PARAMS:
    _ENTRIES[_param.name] = (_param.name, _param)
    if _param.alias is not None:
        _ENTRIES[_param.alias] = (_param.alias, _param)
_GLOB_CHARS = re.compile(rb"[\[*?]")

HELP = (
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
)
class _InvalidError(Exception):
    """A value CONFIG SET refuses; the message is Redis' reason."""


@dataclass(slots=True)
class RedisConfig:
    """One node's CONFIG values: the shown value of every parameter, by canonical name."""

    values: dict[str, bytes] = field(
        default_factory=lambda: {p.name: p.default.encode() for p in PARAMS}
    )
    _settings: ObjectSettings | None = None
    watchers: dict[str, Callable[[bytes], None]] = field(default_factory=dict)
    """Called with a parameter's new value after a CONFIG SET changed it, by name (the
    node's parts that follow a parameter: `notify-keyspace-events`)."""

    @classmethod
    def for_node(cls, config: NodeConfig) -> RedisConfig:
        """The values a node starts with: Redis' defaults and the node's own facts."""
        made = cls()
        limits = config.limits
        host, port = config.client_addr
        own = {
            "port": str(port),
            "bind": host,
            "dir": str(config.data_dir),
            "requirepass": config.password or "",
            "maxclients": str(limits.max_clients),
            "proto-max-bulk-len": str(limits.max_bulk_len),
            "client-query-buffer-limit": str(limits.max_query_buffer),
            "client-output-buffer-limit": _output_limits(limits),
            "timeout": str(limits.idle_timeout_s),
            "maxmemory": str(limits.max_memory_bytes),
            "protected-mode": "yes" if config.protected_mode else "no",
            "loglevel": _REDIS_LEVELS.get(config.log_level, "notice"),
        }
        made.values.update({name: value.encode() for name, value in own.items()})
        return made

    # -- CONFIG GET -----------------------------------------------------------------------

    def get(self, patterns: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """(name, value) of every parameter one of `patterns` matches, each once."""
        found: dict[bytes, bytes] = {}
        seen: set[bytes] = set()
        for pattern in patterns:
            if not _GLOB_CHARS.search(pattern):
                entry = _entry(pattern)
                if entry is not None and pattern.lower() not in seen:
                    seen.add(pattern.lower())
                    found[pattern] = self.values[entry[1].name]
                continue
            for shown, param in _ENTRIES.values():
                name = shown.encode()
                if name not in seen and stringmatch(pattern, name, nocase=True):
                    seen.add(name)
                    found[name] = self.values[param.name]
        return list(found.items())

    # -- CONFIG SET -----------------------------------------------------------------------

    def set(self, args: Sequence[bytes], server: RespServer | None) -> ErrorReply | None:
        """Apply CONFIG SET's name/value pairs `args` all or none; the error, or None.
        `server` receives the settings that take effect (None: only keep them)."""
        chosen = _choose(args)
        if isinstance(chosen, ErrorReply):
            return chosen
        staged: dict[str, bytes] = {}
        for (shown, param), raw in chosen:
            try:
                staged[param.name] = parse_value(param, raw)
            except _InvalidError as exc:
                return _set_failed(shown, str(exc))
            if param.kind is Kind.OUTPUT_LIMITS:
                staged[param.name] = _merge_output_limits(
                    self.values[param.name], staged[param.name]
                )
        self.values.update(staged)
        self._settings = None
        if server is not None:
            for name, value in staged.items():
                _apply(name, value, server)
        for name, value in staged.items():
            watcher = self.watchers.get(name)
            if watcher is not None:
                watcher(value)
        return None

    @property
    def object_settings(self) -> ObjectSettings:
        """What OBJECT reads on this node (a frozen value, rebuilt after a CONFIG SET)."""
        if self._settings is None:
            self._settings = ObjectSettings(
                hash_max_listpack_entries=self._int("hash-max-listpack-entries"),
                hash_max_listpack_value=self._int("hash-max-listpack-value"),
                set_max_intset_entries=self._int("set-max-intset-entries"),
                zset_max_listpack_entries=self._int("zset-max-listpack-entries"),
                zset_max_listpack_value=self._int("zset-max-listpack-value"),
                maxmemory=self._int("maxmemory"),
                maxmemory_policy=self.values["maxmemory-policy"].decode(),
            )
        return self._settings

    def _int(self, name: str) -> int:
        return int(self.values[name])


def reset_stats(server: RespServer) -> None:
    """CONFIG RESETSTAT: zero the counters INFO reports."""
    for name in server.stats:
        server.stats[name] = 0


def _entry(name: bytes) -> tuple[str, Param] | None:
    return _ENTRIES.get(name.decode("latin-1").lower())


_Chosen = list[tuple[tuple[str, Param], bytes]]


def _choose(args: Sequence[bytes]) -> _Chosen | ErrorReply:
    """The parameters CONFIG SET names, or the error for an unknown, immutable, protected
    or repeated one (Redis looks at every name before it parses any value)."""
    chosen: _Chosen = []
    unknown: bytes | None = None
    failure: ErrorReply | None = None
    for i in range(0, len(args), 2):
        entry = _entry(args[i])
        if entry is None:
            unknown = args[i] if unknown is None and failure is None else unknown
            continue
        if unknown is not None or failure is not None:
            continue
        param = entry[1]
        typed = _text(args[i])
        if param.immutable or param.protected:
            reason = "immutable" if param.immutable else "protected"
            failure = _set_failed(typed, f"can't set {reason} config")
        elif any(e == entry for e, _ in chosen):
            failure = _set_failed(typed, "duplicate parameter")
        chosen.append((entry, args[i + 1]))
    if unknown is not None:
        name = _text(unknown)
        return ErrorReply(f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
    return failure if failure is not None else chosen


def _set_failed(name: str, reason: str) -> ErrorReply:
    return ErrorReply(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")


def _text(data: bytes) -> str:
    return data.split(b"\0")[0].decode("utf-8", "surrogateescape")


# -- parsing values ---------------------------------------------------------------------


def parse_value(param: Param, raw: bytes) -> bytes:
    """The value `raw` as CONFIG GET will show it, or `_InvalidError` with Redis' reason."""
    return _PARSERS[param.kind](param, raw)


def _parse_bool(param: Param, raw: bytes) -> bytes:
    value = raw.lower()
    if value not in (b"yes", b"no"):
        raise _InvalidError("argument must be 'yes' or 'no'")
    return value


def _parse_enum(param: Param, raw: bytes) -> bytes:
    for choice in param.choices:
        if raw.lower() == choice.encode():
            return choice.encode()
    raise _InvalidError(_enum_error(param))


def _enum_error(param: Param) -> str:
    return "argument(s) must be one of the following: " + ", ".join(param.choices)


def _parse_flags(param: Param, raw: bytes) -> bytes:
    words = raw.split(b" ") if raw else []
    bits = 0
    for word in words:
        matched = [i for i, c in enumerate(param.choices) if word.lower() == c.encode()]
        if not matched:
            raise _InvalidError(_enum_error(param))
        bits |= _flag_bit(matched[0])
    if not words:
        raise _InvalidError(_enum_error(param))
    if bits & 1 and bits & 2:
        raise _InvalidError("shutdown options SAVE and NOSAVE can't be used simultaneously")
    if bits == 0:
        return param.choices[0].encode()
    names = [c for i, c in enumerate(param.choices) if i and bits & _flag_bit(i)]
    return " ".join(names).encode()


def _flag_bit(index: int) -> int:
    """The bit of the `index`-th choice of a flags parameter (the first is 0)."""
    return 0 if index == 0 else 1 << (index - 1)


def _parse_string(param: Param, raw: bytes) -> bytes:
    if param.name == "requirepass":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _InvalidError("Cairn needs a UTF-8 password") from None
    return raw


def _parse_number(param: Param, raw: bytes) -> bytes:
    value = _number(param, raw)
    unsigned = "u" in param.flags
    if unsigned:
        value %= ULLONG_MAX + 1
        if not param.lo <= value <= param.hi:
            raise _InvalidError(f"argument must be between {param.lo} and {param.hi} inclusive")
    elif "%" in param.flags and value < 0:
        if value < param.lo:
            raise _InvalidError(f"percentage argument must be less or equal to {-param.lo}")
        return f"{-value}%".encode()
    elif not param.lo <= value <= param.hi:
        raise _InvalidError(f"argument must be between {param.lo} and {param.hi} inclusive")
    if param.kind is Kind.MEMORY:
        return str(value % (ULLONG_MAX + 1)).encode()
    return str(value).encode()


def _number(param: Param, raw: bytes) -> int:
    """The signed 64-bit number Redis reads from `raw` (a memory value wraps like C's)."""
    if param.kind is Kind.MEMORY:
        memory = memtoull(raw)
        if memory is not None:
            return memory - (ULLONG_MAX + 1) if memory > ULLONG_MAX // 2 else memory
        if "%" in param.flags and len(raw) > 1 and raw.endswith(b"%"):
            percent = parse_ll(raw[:-1])
            if percent is not None and percent >= 0:
                return -percent
        reason = "a memory or percent value" if "%" in param.flags else "a memory value"
        raise _InvalidError(f"argument must be {reason}")
    value = parse_ll(raw)
    if value is None:
        raise _InvalidError("argument couldn't be parsed into an integer")
    return value


_UNITS = {
    b"": 1,
    b"b": 1,
    b"k": 1000,
    b"kb": 1024,
    b"m": 1000**2,
    b"mb": 1024**2,
    b"g": 1000**3,
    b"gb": 1024**3,
}


def memtoull(raw: bytes) -> int | None:
    """Redis' `memtoull`: digits and an optional unit (b, k, kb, m, mb, g, gb, any case),
    as an unsigned 64-bit number (an overflowing one saturates, then wraps with the unit,
    as C computes it); None if it is not one."""
    digits = re.match(rb"[0-9]*", raw)
    assert digits is not None
    count = digits.end()
    mul = _UNITS.get(raw[count:].lower())
    if mul is None or count >= 128:
        return None
    value = min(int(raw[:count] or b"0"), ULLONG_MAX)
    return (value * mul) % (ULLONG_MAX + 1)


def _parse_save(param: Param, raw: bytes) -> bytes:
    words = raw.split(b" ") if raw else []
    if len(words) % 2:
        raise _InvalidError("Invalid save parameters")
    numbers = []
    for i, word in enumerate(words):
        value = _strtoll(word)
        if value is None or value < (1 if i % 2 == 0 else 0):
            raise _InvalidError("Invalid save parameters")
        numbers.append(value)
    return " ".join(map(str, numbers)).encode()


_STRTOLL = re.compile(rb"[ \t\n\v\f\r]*([+-]?[0-9]+)?")


def _strtoll(word: bytes) -> int | None:
    """C's `strtoll(word, &end, 10)` with `*end == '\\0'` required: saturating, and an
    empty word reads as 0 (nothing converted, nothing left)."""
    match = _STRTOLL.match(word)
    assert match is not None
    if match.end() != len(word) or (match.group(1) is None and word):
        return None
    if match.group(1) is None:
        return 0
    return max(min(int(match.group(1)), 2**63 - 1), -(2**63))


def _parse_oom(param: Param, raw: bytes) -> bytes:
    words = raw.split(b" ") if raw else []
    if len(words) != 3:
        raise _InvalidError("wrong number of arguments")
    values = [_strtoll(w) for w in words]
    if any(v is None or not -2000 <= v <= 2000 for v in values):
        raise _InvalidError(
            "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
        )
    return " ".join(map(str, values)).encode()


def _parse_percentiles(param: Param, raw: bytes) -> bytes:
    words = raw.split(b" ") if raw else []
    shown = []
    for word in words:
        value = string2d(word)
        if value is None:
            raise _InvalidError("Invalid latency-tracking-info-percentiles parameters")
        if not 0.0 <= value <= 100.0:
            raise _InvalidError(
                "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
            )
        text = f"{value:f}"
        shown.append(text.rstrip("0").rstrip(".") if "." in text else text)
    return " ".join(shown).encode()


def string2d(word: bytes) -> float | None:
    """Redis' `string2d`: the whole word is a double (no leading space, no NaN, no
    overflow or underflow to zero); None otherwise."""
    parsed = strtod(word)
    if not word or word[:1].isspace() or parsed is None:
        return None
    value, end, erange = parsed
    if end != len(word) or value != value:
        return None
    if erange and (value in (float("inf"), float("-inf")) or value == 0.0):
        return None
    return value


def _parse_notify(param: Param, raw: bytes) -> bytes:
    flags = parse_flags(raw)
    if flags is None:
        raise _InvalidError(INVALID_FLAGS)
    return flags_text(flags)


_OUTPUT_CLASSES = {b"normal": "normal", b"slave": "slave", b"replica": "slave", b"pubsub": "pubsub"}
_OUTPUT_ORDER = ("normal", "slave", "pubsub")


def _parse_output_limits(param: Param, raw: bytes) -> bytes:
    """Redis's `client-output-buffer-limit` groups, merged into the current value by
    `RedisConfig.set` (`_merge_output_limits`); here: checked, as Redis checks them."""
    words = raw.split(b" ") if raw else []
    if len(words) % 4:
        raise _InvalidError("Wrong number of arguments in buffer limit configuration.")
    groups = []
    for i in range(0, len(words), 4):
        cls = _OUTPUT_CLASSES.get(words[i].lower())
        if cls is None:
            raise _InvalidError("Invalid client class specified in buffer limit configuration.")
        hard, soft, seconds = memtoull(words[i + 1]), memtoull(words[i + 2]), _strtoll(words[i + 3])
        if hard is None or soft is None or seconds is None or seconds < 0:
            raise _InvalidError(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            )
        if cls != "slave" and (hard == 0 or (cls == "pubsub" and not soft * seconds)):
            raise _InvalidError(f"Cairn needs a {cls} output limit (0 is not accepted)")
        groups.append(f"{cls} {hard} {soft} {seconds}")
    return " ".join(groups).encode()


def _merge_output_limits(current: bytes, groups: bytes) -> bytes:
    """The whole value after CONFIG SET named some classes (the others stay)."""
    values = current.decode().split()
    merged = {values[i]: values[i : i + 4] for i in range(0, len(values), 4)}
    words = groups.decode().split()
    for i in range(0, len(words), 4):
        merged[words[i]] = words[i : i + 4]
    return " ".join(" ".join(merged[c]) for c in _OUTPUT_ORDER if c in merged).encode()


def _parse_fixed(param: Param, raw: bytes) -> bytes:
    raise _InvalidError("can't set immutable config")  # never reached: FIXED ones are immutable


_PARSERS: dict[Kind, Callable[[Param, bytes], bytes]] = {
    Kind.BOOL: _parse_bool,
    Kind.INT: _parse_number,
    Kind.MEMORY: _parse_number,
    Kind.ENUM: _parse_enum,
    Kind.FLAGS: _parse_flags,
    Kind.STRING: _parse_string,
    Kind.SAVE: _parse_save,
    Kind.OOM: _parse_oom,
    Kind.PERCENTILES: _parse_percentiles,
    Kind.NOTIFY: _parse_notify,
    Kind.OUTPUT_LIMITS: _parse_output_limits,
    Kind.FIXED: _parse_fixed,
}


# -- what takes effect ------------------------------------------------------------------

_REDIS_LEVELS = {"debug": "debug", "info": "notice", "warning": "warning", "error": "warning"}
"""Cairn's `log_level` as Redis' `loglevel` names it."""
_PYTHON_LEVELS = {
    b"debug": logging.DEBUG,
    b"verbose": logging.DEBUG,
    b"notice": logging.INFO,
    b"warning": logging.WARNING,
}


def _with_limits(server: RespServer, **changes: int) -> None:
    server.limits = replace(server.limits, **changes)


def _set_password(server: RespServer, value: bytes) -> None:
    server.password = value.decode("utf-8") or None


def _set_output_limits(server: RespServer, value: bytes) -> None:
    words = value.decode().split()
    groups = {words[i]: [int(w) for w in words[i + 1 : i + 4]] for i in range(0, len(words), 4)}
    if "normal" in groups:
        hard, soft, seconds = groups["normal"]
        _with_limits(
            server,
            max_pending_replies_bytes=hard,
            normal_output_soft_limit_bytes=soft,
            normal_output_soft_limit_seconds=seconds,
        )
    if "pubsub" in groups:
        hard, soft, seconds = groups["pubsub"]
        _with_limits(
            server,
            pubsub_output_hard_limit_bytes=hard,
            pubsub_output_soft_limit_bytes=soft,
            pubsub_output_soft_limit_seconds=seconds,
        )


def _set_protected_mode(server: RespServer, value: bytes) -> None:
    server.protected_mode = value == b"yes"


_APPLY: dict[str, Callable[[RespServer, bytes], None]] = {
    "maxclients": lambda s, v: _with_limits(s, max_clients=int(v)),
    "timeout": lambda s, v: _with_limits(s, idle_timeout_s=int(v)),
    "maxmemory": lambda s, v: _with_limits(s, max_memory_bytes=int(v)),
    "protected-mode": _set_protected_mode,
    "client-output-buffer-limit": _set_output_limits,
    "proto-max-bulk-len": lambda s, v: _with_limits(s, max_bulk_len=int(v)),
    "client-query-buffer-limit": lambda s, v: _with_limits(s, max_query_buffer=int(v)),
    "requirepass": _set_password,
    "loglevel": lambda s, v: logging.getLogger("cairn").setLevel(_PYTHON_LEVELS[v]),
}


def _apply(name: str, value: bytes, server: RespServer) -> None:
    action = _APPLY.get(name)
    if action is not None:
        action(server, value)


def _output_limits(limits: Limits) -> str:
    """client-output-buffer-limit as Cairn enforces it: a normal client is closed once its
    unsent replies pass `max_pending_replies_bytes`, a subscriber past the pubsub limits;
    the slave class is Redis's."""
    normal = (
        f"normal {limits.max_pending_replies_bytes} {limits.normal_output_soft_limit_bytes} "
        f"{limits.normal_output_soft_limit_seconds}"
    )
    pubsub = (
        f"pubsub {limits.pubsub_output_hard_limit_bytes} "
        f"{limits.pubsub_output_soft_limit_bytes} {limits.pubsub_output_soft_limit_seconds}"
    )
    return f"{normal} slave 268435456 67108864 60 {pubsub}"


def names() -> Iterable[str]:
    """Every name CONFIG knows (aliases included), in table order."""
    return (shown for shown, _ in _ENTRIES.values())
