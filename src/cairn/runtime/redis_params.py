"""Redis 7.0's CONFIG parameters: names, aliases, types, bounds and defaults, as data.

The table is redis-server 7.0.15's (`CONFIG GET *` of a default build with TLS, hidden
and debug-only parameters left out), in its source order. `Param.kind` says how a value is
parsed and shown again (`cairn.runtime.redis_config` does both, with Redis' error texts);
flags carry what Redis' own config flags decide: `i` immutable (`can't set immutable
config`), `p` protected (`can't set protected config`, as with Redis'
`enable-protected-configs no`), `u` an unsigned C type (bounds are compared unsigned, so
-1 is out of range), `%` a memory value that may also be a percentage.

Defaults are Redis' except where Cairn has a value of its own to report (the node's port,
bind address, directory and limits; `cluster-enabled yes`, `databases 1`, `save ""`):
`redis_config.RedisConfig.for_node` fills those in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
LONG_MAX = 2**63 - 1
ULLONG_MAX = 2**64 - 1
MB = 1024 * 1024


class Kind(enum.Enum):
    """How a parameter's value is parsed and shown."""

    BOOL = "bool"
    INT = "int"
    MEMORY = "memory"
    ENUM = "enum"
    FLAGS = "flags"
    """Several enum words at once (`shutdown-on-sigint nosave now`)."""
    STRING = "string"
    SAVE = "save"
    OOM = "oom"
    PERCENTILES = "percentiles"
    NOTIFY = "notify"
    OUTPUT_LIMITS = "output-limits"
    """client-output-buffer-limit: `<class> <hard> <soft> <seconds>` groups."""
    FIXED = "fixed"
    """A multi-argument value Cairn reports but does not let CONFIG SET change."""


@dataclass(frozen=True, slots=True)
class Param:
    """One CONFIG parameter: its name, how its value parses, its default and bounds."""

    name: str
    kind: Kind
    default: str
    lo: int = 0
    hi: int = 0
    choices: tuple[str, ...] = ()
    alias: str | None = None
    flags: str = ""

    @property
    def immutable(self) -> bool:
        """CONFIG SET refuses it: `can't set immutable config`."""
        return "i" in self.flags

    @property
    def protected(self) -> bool:
        """CONFIG SET refuses it: `can't set protected config`."""
        return "p" in self.flags


def _b(name: str, default: bool, alias: str | None = None, flags: str = "") -> Param:
    return Param(name, Kind.BOOL, "yes" if default else "no", alias=alias, flags=flags)


def _i(
    name: str, lo: int, hi: int, default: int, alias: str | None = None, flags: str = ""
) -> Param:
    return Param(name, Kind.INT, str(default), lo, hi, alias=alias, flags=flags)


def _m(
    name: str, lo: int, hi: int, default: int, flags: str = "", alias: str | None = None
) -> Param:
    return Param(name, Kind.MEMORY, str(default), lo, hi, alias=alias, flags=flags)


def _e(name: str, choices: tuple[str, ...], default: str, flags: str = "") -> Param:
    return Param(name, Kind.ENUM, default, choices=choices, flags=flags)


def _s(name: str, default: str = "", alias: str | None = None, flags: str = "") -> Param:
    return Param(name, Kind.STRING, default, alias=alias, flags=flags)


_POLICIES = (
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
)
_SHUTDOWN = ("default", "save", "nosave", "now", "force")
_PROTECTED_ACTION = ("no", "yes", "local")
_SYSLOG = tuple(["user"] + [f"local{n}" for n in range(8)])

PARAMS: tuple[Param, ...] = (
    _b("rdbchecksum", True, flags="i"),
    _b("daemonize", False, flags="i"),
    _b("always-show-logo", False, flags="i"),
    _b("protected-mode", True),
    _b("rdbcompression", True),
    _b("rdb-del-sync-files", False),
    _b("activerehashing", True),
    _b("stop-writes-on-bgsave-error", True),
    _b("set-proc-title", True, flags="i"),
    _b("dynamic-hz", True),
    _b("lazyfree-lazy-eviction", False),
    _b("lazyfree-lazy-expire", False),
    _b("lazyfree-lazy-server-del", False),
    _b("lazyfree-lazy-user-del", False),
    _b("lazyfree-lazy-user-flush", False),
    _b("repl-disable-tcp-nodelay", False),
    _b("repl-diskless-sync", True),
    _b("aof-rewrite-incremental-fsync", True),
    _b("no-appendfsync-on-rewrite", False),
    _b("cluster-require-full-coverage", True),
    _b("rdb-save-incremental-fsync", True),
    _b("aof-load-truncated", True),
    _b("aof-use-rdb-preamble", True),
    _b("aof-timestamp-enabled", False),
    _b("cluster-replica-no-failover", False, "cluster-slave-no-failover"),
    _b("replica-lazy-flush", False, "slave-lazy-flush"),
    _b("replica-serve-stale-data", True, "slave-serve-stale-data"),
    _b("replica-read-only", True, "slave-read-only"),
    _b("replica-ignore-maxmemory", True, "slave-ignore-maxmemory"),
    _b("jemalloc-bg-thread", True),
    _b("activedefrag", False),
    _b("syslog-enabled", False, flags="i"),
    _b("cluster-enabled", True, flags="i"),
    _b("appendonly", False),
    _b("cluster-allow-reads-when-down", False),
    _b("cluster-allow-pubsubshard-when-down", True),
    _b("crash-log-enabled", True),
    _b("crash-memcheck-enabled", True),
    _b("disable-thp", True, flags="i"),
    _b("cluster-allow-replica-migration", True),
    _b("replica-announced", True),
    _b("latency-tracking", True),
    _b("aof-disable-auto-gc", False),
    _b("replica-ignore-disk-write-errors", False),
    _s("aclfile", flags="i"),
    _s("unixsocket", flags="i"),
    _s("pidfile", flags="i"),
    _s("replica-announce-ip", alias="slave-announce-ip"),
    _s("masteruser"),
    _s("cluster-announce-ip"),
    _s("cluster-config-file", "nodes.conf", flags="i"),
    _s("cluster-announce-hostname"),
    _s("syslog-ident", "redis", flags="i"),
    _s("dbfilename", "dump.rdb", flags="p"),
    _s("appendfilename", "appendonly.aof", flags="i"),
    _s("appenddirname", "appendonlydir", flags="i"),
    _s("server_cpulist", flags="i"),
    _s("bio_cpulist", flags="i"),
    _s("aof_rewrite_cpulist", flags="i"),
    _s("bgsave_cpulist", flags="i"),
    _s("ignore-warnings"),
    _s("proc-title-template", "{title} {listen-addr} {server-mode}"),
    _s("bind-source-addr"),
    _s("logfile", flags="i"),
    _s("masterauth"),
    _s("requirepass"),
    _e("supervised", ("upstart", "systemd", "auto", "no"), "no", "i"),
    _e("syslog-facility", _SYSLOG, "local0", "i"),
    _e("repl-diskless-load", ("disabled", "on-empty-db", "swapdb"), "disabled"),
    _e("loglevel", ("debug", "verbose", "notice", "warning"), "notice"),
    _e("maxmemory-policy", _POLICIES, "noeviction"),
    _e("appendfsync", ("everysec", "always", "no"), "everysec"),
    _e("oom-score-adj", ("no", "yes", "relative", "absolute"), "no"),
    _e("acl-pubsub-default", ("allchannels", "resetchannels"), "resetchannels"),
    _e("sanitize-dump-payload", ("no", "yes", "clients"), "no"),
    _e("enable-protected-configs", _PROTECTED_ACTION, "no", "i"),
    _e("enable-debug-command", _PROTECTED_ACTION, "no", "i"),
    _e("enable-module-command", _PROTECTED_ACTION, "no", "i"),
    _e("cluster-preferred-endpoint-type", ("ip", "hostname", "unknown-endpoint"), "ip"),
    _e("propagation-error-behavior", ("ignore", "panic", "panic-on-replicas"), "ignore"),
    Param("shutdown-on-sigint", Kind.FLAGS, "default", choices=_SHUTDOWN),
    Param("shutdown-on-sigterm", Kind.FLAGS, "default", choices=_SHUTDOWN),
    _i("databases", 1, INT_MAX, 1, flags="i"),
    _i("port", 0, 65535, 6379, flags="i"),
    _i("io-threads", 1, 128, 1, flags="i"),
    _i("auto-aof-rewrite-percentage", 0, INT_MAX, 100),
    _i("cluster-replica-validity-factor", 0, INT_MAX, 10, "cluster-slave-validity-factor"),
    _i("list-max-listpack-size", INT_MIN, INT_MAX, -2, "list-max-ziplist-size"),
    _i("tcp-keepalive", 0, INT_MAX, 300),
    _i("cluster-migration-barrier", 0, INT_MAX, 1),
    _i("active-defrag-cycle-min", 1, 99, 1),
    _i("active-defrag-cycle-max", 1, 99, 25),
    _i("active-defrag-threshold-lower", 0, 1000, 10),
    _i("active-defrag-threshold-upper", 0, 1000, 100),
    _i("lfu-log-factor", 0, INT_MAX, 10),
    _i("lfu-decay-time", 0, INT_MAX, 1),
    _i("replica-priority", 0, INT_MAX, 100, "slave-priority"),
    _i("repl-diskless-sync-delay", 0, INT_MAX, 5),
    _i("maxmemory-samples", 1, INT_MAX, 5),
    _i("maxmemory-eviction-tenacity", 0, 100, 10),
    _i("timeout", 0, INT_MAX, 0),
    _i("replica-announce-port", 0, 65535, 0, "slave-announce-port"),
    _i("tcp-backlog", 0, INT_MAX, 511, flags="i"),
    _i("cluster-port", 0, 65535, 0, flags="i"),
    _i("cluster-announce-bus-port", 0, 65535, 0),
    _i("cluster-announce-port", 0, 65535, 0),
    _i("cluster-announce-tls-port", 0, 65535, 0),
    _i("repl-timeout", 1, INT_MAX, 60),
    _i("repl-ping-replica-period", 1, INT_MAX, 10, "repl-ping-slave-period"),
    _i("list-compress-depth", 0, INT_MAX, 0),
    _i("active-expire-effort", 1, 10, 1),
    _i("hz", 0, INT_MAX, 10),
    _i("min-replicas-to-write", 0, INT_MAX, 0, "min-slaves-to-write"),
    _i("min-replicas-max-lag", 0, INT_MAX, 10, "min-slaves-max-lag"),
    _i("shutdown-timeout", 0, INT_MAX, 10),
    _i("repl-diskless-sync-max-replicas", 0, INT_MAX, 0),
    _i("maxclients", 1, UINT_MAX, 10000, flags="u"),
    Param("unixsocketperm", Kind.INT, "0", 0, 0o777, flags="i"),
    _i("socket-mark-id", 0, UINT_MAX, 0, flags="iu"),
    _i("active-defrag-max-scan-fields", 1, LONG_MAX, 1000),
    _i("slowlog-max-len", 0, LONG_MAX, 128),
    _i("acllog-max-len", 0, LONG_MAX, 128),
    _i("busy-reply-threshold", 0, LONG_MAX, 5000, "lua-time-limit"),
    _i("cluster-node-timeout", 0, LONG_MAX, 15000),
    _i("slowlog-log-slower-than", -1, LONG_MAX, 10000),
    _i("latency-monitor-threshold", 0, LONG_MAX, 0),
    _m("proto-max-bulk-len", MB, LONG_MAX, 512 * MB),
    _i("stream-node-max-entries", 0, LONG_MAX, 100),
    _m("repl-backlog-size", 1, LONG_MAX, MB),
    _m("maxmemory", 0, ULLONG_MAX, 0, "u"),
    _m("cluster-link-sendbuf-limit", 0, ULLONG_MAX, 0, "u"),
    _i("hash-max-listpack-entries", 0, LONG_MAX, 512, "hash-max-ziplist-entries", "u"),
    _i("set-max-intset-entries", 0, LONG_MAX, 512, flags="u"),
    _i("zset-max-listpack-entries", 0, LONG_MAX, 128, "zset-max-ziplist-entries", "u"),
    _m("active-defrag-ignore-bytes", 1, LONG_MAX, 100 * MB, "u"),
    _m("hash-max-listpack-value", 0, LONG_MAX, 64, "u", "hash-max-ziplist-value"),
    _m("stream-node-max-bytes", 0, LONG_MAX, 4096, "u"),
    _m("zset-max-listpack-value", 0, LONG_MAX, 64, "u", "zset-max-ziplist-value"),
    _m("hll-sparse-max-bytes", 0, LONG_MAX, 3000, "u"),
    _i("tracking-table-max-keys", 0, LONG_MAX, 1000000, flags="u"),
    _m("client-query-buffer-limit", MB, LONG_MAX, 1024 * MB, "u"),
    _m("maxmemory-clients", -100, LONG_MAX, 0, "%"),
    _i("repl-backlog-ttl", 0, LONG_MAX, 3600),
    _m("auto-aof-rewrite-min-size", 0, LONG_MAX, 64 * MB),
    _i("tls-port", 0, 65535, 0),
    _i("tls-session-cache-size", 0, INT_MAX, 20 * 1024),
    _i("tls-session-cache-timeout", 0, INT_MAX, 300),
    _b("tls-cluster", False),
    _b("tls-replication", False),
    _e("tls-auth-clients", ("no", "yes", "optional"), "yes"),
    _b("tls-prefer-server-ciphers", False),
    _b("tls-session-caching", True),
    _s("tls-cert-file"),
    _s("tls-key-file"),
    _s("tls-key-file-pass"),
    _s("tls-client-cert-file"),
    _s("tls-client-key-file"),
    _s("tls-client-key-file-pass"),
    _s("tls-dh-params-file"),
    _s("tls-ca-cert-file"),
    _s("tls-ca-cert-dir"),
    _s("tls-protocols"),
    _s("tls-ciphers"),
    _s("tls-ciphersuites"),
    _s("dir", flags="p"),
    Param("save", Kind.SAVE, ""),
    Param("client-output-buffer-limit", Kind.OUTPUT_LIMITS, ""),
    Param("oom-score-adj-values", Kind.OOM, "0 200 800"),
    Param("notify-keyspace-events", Kind.NOTIFY, ""),
    Param("bind", Kind.FIXED, "* -::*", flags="i"),
    Param("replicaof", Kind.FIXED, "", alias="slaveof", flags="i"),
    Param("latency-tracking-info-percentiles", Kind.PERCENTILES, "50 99 99.9"),
)
"""Every parameter, in redis-server 7.0.15's source order."""
