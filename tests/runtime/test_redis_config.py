"""CONFIG GET/SET/RESETSTAT/HELP: the handler in-process against a real redis-server 7.0
reply for reply, what takes effect on a node's server, and real nodes (CONFIG is per node,
OBJECT reads the serving node's thresholds, maxclients and requirepass act at once)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cluster_fixture import client, running_cluster
from store_harness import RawRedis, parse_resp2
from store_script import split_args

from cairn.resp.codec import encode
from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Map, Reply
from cairn.runtime.client_commands import ServerContext, config
from cairn.runtime.config import Limits, NodeConfig
from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.runtime.redis_config import RedisConfig, memtoull
from cairn.runtime.redis_params import PARAMS
from cairn.runtime.server import RespServer


def _context(redis_config: RedisConfig | None = None) -> ServerContext:
    """A node's connection-command context with a server that is never started."""
    server = RespServer(_NoRouter(), Limits(), None)
    return ServerContext(
        server=server,
        table={},
        info=lambda sections: "",
        wall_time=time.time,
        monotonic=time.monotonic,
        redis_config=redis_config or RedisConfig(),
    )


class _NoRouter:
    def execute(self, client: object, args: list[bytes], done: object) -> None:
        raise AssertionError("CONFIG never routes")


def _run(ctx: ServerContext, line: str) -> Reply:
    argv = split_args(line)
    assert argv[0].lower() == b"config"
    return config(ctx, None, argv[1:])  # type: ignore[arg-type]


def _get(ctx: ServerContext, *patterns: str) -> dict[bytes, bytes]:
    reply = _run(ctx, "CONFIG GET " + " ".join(patterns))
    assert isinstance(reply, Map)
    found = {}
    for name, value in reply.pairs:
        assert isinstance(name, Bulk) and isinstance(value, Bulk)
        found[name.value] = value.value
    return found


def _failed(name: str, reason: str) -> ErrorReply:
    return ErrorReply(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")


# -- in-process ---------------------------------------------------------------------------


def test_get_patterns_aliases_and_case() -> None:
    ctx = _context()
    assert _get(ctx, "maxclients") == {b"maxclients": b"10000"}
    assert _get(ctx, "MAXCLIENTS", "maxclients") == {b"MAXCLIENTS": b"10000"}
    assert _get(ctx, "nope") == {}
    assert _get(ctx, "hash-max-*-entries") == {
        b"hash-max-listpack-entries": b"512",
        b"hash-max-ziplist-entries": b"512",
    }
    assert _get(ctx, "HASH-MAX-*-VALUE", "hash-max-listpack-value") == {
        b"hash-max-listpack-value": b"64",
        b"hash-max-ziplist-value": b"64",
    }
    assert set(_get(ctx, "*")) == {
        name.encode() for p in PARAMS for name in (p.name, p.alias) if name is not None
    }
    assert _get(ctx, "set-max-listpack-entries") == {}  # a Redis 7.2 parameter


def test_get_is_a_map_in_resp3_and_pairs_in_resp2() -> None:
    reply = _run(_context(), "CONFIG GET maxclients")
    assert encode(reply, 3) == b"%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
    assert encode(reply, 2) == b"*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"


def test_set_is_all_or_nothing() -> None:
    ctx = _context()
    policy_error = _failed(
        "maxmemory-policy",
        "argument(s) must be one of the following: volatile-lru, volatile-lfu, "
        "volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
    )
    assert _run(ctx, "CONFIG SET maxclients 7 maxmemory-policy bad") == policy_error
    assert _get(ctx, "maxclients") == {b"maxclients": b"10000"}
    assert ctx.server.limits.max_clients == 10000
    assert _run(ctx, "CONFIG SET maxclients 7 hash-max-ziplist-entries 3") == OK
    assert _get(ctx, "maxclients", "hash-max-listpack-entries") == {
        b"maxclients": b"7",
        b"hash-max-listpack-entries": b"3",
    }


def test_set_errors_are_redis_errors() -> None:
    ctx = _context()
    unknown = ErrorReply("ERR Unknown option or number of arguments for CONFIG SET - 'x'")
    cases = [
        ("CONFIG SET x 1", unknown),
        ("CONFIG SET maxclients abc x 1", unknown),
        ("CONFIG SET maxclients 10 x", ErrorReply("ERR syntax error")),
        (
            "CONFIG SET maxclients",
            ErrorReply("ERR wrong number of arguments for 'config|set' command"),
        ),
        (
            "CONFIG SET MAXCLIENTS abc",
            _failed("maxclients", "argument couldn't be parsed into an integer"),
        ),
        (
            "CONFIG SET maxclients 0",
            _failed("maxclients", "argument must be between 1 and 4294967295 inclusive"),
        ),
        ("CONFIG SET maxmemory 1.5gb", _failed("maxmemory", "argument must be a memory value")),
        (
            "CONFIG SET activedefrag maybe",
            _failed("activedefrag", "argument must be 'yes' or 'no'"),
        ),
        ("CONFIG SET x 1 daemonize no", unknown),
        ("CONFIG SET daemonize no x 1", _failed("daemonize", "can't set immutable config")),
        (
            "CONFIG SET daemonize no maxclients abc",
            _failed("daemonize", "can't set immutable config"),
        ),
        ("CONFIG SET maxclients 10 MAXCLIENTS 11", _failed("MAXCLIENTS", "duplicate parameter")),
        ("CONFIG SET dir /tmp", _failed("dir", "can't set protected config")),
        ("CONFIG SET port 7000", _failed("port", "can't set immutable config")),
        ("CONFIG SET bind 0.0.0.0", _failed("bind", "can't set immutable config")),
        (
            "CONFIG SET hash-max-ziplist-entries -1",
            _failed(
                "hash-max-ziplist-entries",
                "argument must be between 0 and 9223372036854775807 inclusive",
            ),
        ),
        (
            "CONFIG SET maxmemory-clients 101%",
            _failed("maxmemory-clients", "percentage argument must be less or equal to 100"),
        ),
        ("CONFIG SET save '10 x'", _failed("save", "Invalid save parameters")),
        ("CONFIG FOO", ErrorReply("ERR unknown subcommand 'FOO'. Try CONFIG HELP.")),
        ("CONFIG GET", ErrorReply("ERR wrong number of arguments for 'config|get' command")),
        (
            "CONFIG RESETSTAT x",
            ErrorReply("ERR wrong number of arguments for 'config|resetstat' command"),
        ),
    ]
    for line, expected in cases:
        assert _run(ctx, line) == expected, line
    assert _get(ctx, "maxclients") == {b"maxclients": b"10000"}


def test_keyspace_events_are_validated_and_fixed_values_kept() -> None:
    ctx = _context()
    assert _run(ctx, "CONFIG SET notify-keyspace-events KEA") == OK
    assert _get(ctx, "notify-keyspace-events") == {b"notify-keyspace-events": b"AKE"}
    assert _run(ctx, "CONFIG SET notify-keyspace-events Kq") == _failed(
        "notify-keyspace-events", "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
    )
    assert _get(ctx, "cluster-enabled", "databases") == {
        b"cluster-enabled": b"yes",
        b"databases": b"1",
    }


def test_settings_that_take_effect() -> None:
    ctx = _context()
    server = ctx.server
    assert _run(ctx, "CONFIG SET timeout 5 maxmemory 1mb protected-mode no") == OK
    assert (server.limits.idle_timeout_s, server.limits.max_memory_bytes) == (5, 1 << 20)
    assert server.protected_mode is False
    assert _run(ctx, "CONFIG SET client-output-buffer-limit 'Normal 1kb 512 3'") == OK
    limits = server.limits
    assert limits.max_pending_replies_bytes == 1024
    assert (limits.normal_output_soft_limit_bytes, limits.normal_output_soft_limit_seconds) == (
        512,
        3,
    )
    shown = _get(ctx, "client-output-buffer-limit")[b"client-output-buffer-limit"]
    assert shown.startswith(b"normal 1024 512 3")
    assert _run(ctx, "CONFIG SET client-output-buffer-limit 'pubsub 1mb 1kb 1'") == OK
    assert server.limits.pubsub_output_hard_limit_bytes == 1 << 20
    for value, reason in (
        ("normal 1 2", "Wrong number of arguments in buffer limit configuration."),
        ("master 1 2 3", "Invalid client class specified in buffer limit configuration."),
        (
            "normal 1 2 -1",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        ("normal 0 0 0", "Cairn needs a normal output limit (0 is not accepted)"),
    ):
        assert _run(ctx, f"CONFIG SET client-output-buffer-limit '{value}'") == _failed(
            "client-output-buffer-limit", reason
        ), value
    assert _run(ctx, "CONFIG SET maxclients 3 proto-max-bulk-len 2mb") == OK
    assert server.limits.max_clients == 3
    assert server.limits.max_bulk_len == 2 * 1024 * 1024
    assert _run(ctx, "CONFIG SET client-query-buffer-limit 64mb") == OK
    assert server.limits.max_query_buffer == 64 * 1024 * 1024
    assert _run(ctx, "CONFIG SET requirepass s3cret") == OK
    assert server.password == "s3cret"
    assert _get(ctx, "requirepass") == {b"requirepass": b"s3cret"}
    assert _run(ctx, "CONFIG SET requirepass ''") == OK
    assert server.password is None
    logger = logging.getLogger("cairn")
    before = logger.level
    try:
        assert _run(ctx, "CONFIG SET loglevel warning") == OK
        assert logger.level == logging.WARNING
        assert _run(ctx, "CONFIG SET loglevel DEBUG") == OK
        assert logger.level == logging.DEBUG
        assert _get(ctx, "loglevel") == {b"loglevel": b"debug"}
    finally:
        logger.setLevel(before)


def test_thresholds_reach_object_settings() -> None:
    ctx = _context()
    settings = ctx.redis_config.object_settings
    assert (settings.hash_max_listpack_entries, settings.zset_max_listpack_value) == (512, 64)
    line = "CONFIG SET hash-max-ziplist-entries 1 zset-max-listpack-value 1kb"
    assert _run(ctx, line + " set-max-intset-entries 9 maxmemory-policy allkeys-lfu") == OK
    settings = ctx.redis_config.object_settings
    assert settings.hash_max_listpack_entries == 1
    assert settings.zset_max_listpack_value == 1024
    assert settings.set_max_intset_entries == 9
    assert settings.lfu


def test_resetstat_and_help() -> None:
    ctx = _context()
    ctx.server.stats["total_connections_received"] = 12
    assert _run(ctx, "CONFIG RESETSTAT") == OK
    assert ctx.server.stats["total_connections_received"] == 0
    help_reply = _run(ctx, "CONFIG HELP")
    assert isinstance(help_reply, Array) and len(help_reply.items) == 11
    assert isinstance(_run(ctx, "CONFIG REWRITE"), ErrorReply)


def test_a_node_reports_its_own_facts(tmp_path: Path) -> None:
    node = NodeConfig(
        node_id=1,
        data_dir=tmp_path,
        client_addr=("127.0.0.9", 7001),
        password="pw",
        log_level="info",
        limits=Limits(max_clients=77, max_pending_replies_bytes=1000),
    )
    ctx = _context(RedisConfig.for_node(node))
    assert _get(ctx, "port", "bind", "dir", "requirepass", "maxclients", "loglevel") == {
        b"port": b"7001",
        b"bind": b"127.0.0.9",
        b"dir": str(tmp_path).encode(),
        b"requirepass": b"pw",
        b"maxclients": b"77",
        b"loglevel": b"notice",
    }
    output = _get(ctx, "client-output-buffer-limit")[b"client-output-buffer-limit"]
    assert output.startswith(b"normal 1000 0 0 slave ")


def test_memtoull_is_redis_memtoull() -> None:
    assert memtoull(b"1gb") == 1 << 30
    assert memtoull(b"1G") == 10**9
    assert memtoull(b"") == 0
    assert memtoull(b"-1") is None
    assert memtoull(b"1.5gb") is None
    assert memtoull(b" 1") is None
    assert memtoull(b"99999999999999999999") == 2**64 - 1


REDIS_LINES = """
config set x 1
config set maxclients 10 x
config set maxclients abc
config set maxclients -1
config set maxclients 4294967296
config set hash-max-listpack-entries -1
config set hash-max-listpack-entries 1gb
config set hash-max-listpack-entries 100
config get hash-max-listpack-entries hash-max-ziplist-entries
config set hash-max-listpack-entries 512
config set maxmemory 1.5gb
config set maxmemory -1
config set maxmemory ""
config get maxmemory
config set activedefrag maybe
config set maxmemory-policy foo
config set maxmemory-policy ALLKEYS-LRU
config get maxmemory-policy
config set maxmemory-policy noeviction
config set daemonize no
config set databases 3
config set maxclients 10 maxclients 11
config set maxclients 10 hash-max-ziplist-entries 2 hash-max-listpack-entries 3
config get hash-max-*
config set hash-max-listpack-entries 512 maxclients 10000
config set x 1 y 2
config set maxclients abc daemonize no
config set daemonize no maxclients abc
config set maxclients 7 maxmemory-policy bad
config get maxclients
config help
config foo
config get
config set
config resetstat x
config help x
config get nope
config get MAXCLIENTS maxclients
config set HASH-MAX-ZIPLIST-VALUE x
config set maxmemory-clients 10%
config get maxmemory-clients
config set maxmemory-clients 101%
config set maxmemory-clients -5
config set maxmemory-clients 0
config set proto-max-bulk-len 100
config set proto-max-bulk-len 2mb
config get proto-max-bulk-len
config set proto-max-bulk-len 512mb
config set save "10 x"
config set save "100 10 20 5"
config get save
config set save "0 5"
config set save "+5 010"
config get save
config set save ""
config set list-max-listpack-size -5
config get list-max-*
config set list-max-ziplist-size 2147483648
config set list-max-ziplist-size -2
config set slowlog-log-slower-than -2
config set latency-tracking-info-percentiles "50 99.99 100"
config get latency-tracking-info-percentiles
config set latency-tracking-info-percentiles "101"
config set latency-tracking-info-percentiles "1e-400"
config set latency-tracking-info-percentiles "50 99 99.9"
config set oom-score-adj-values "1 2"
config set oom-score-adj-values "0 +200 0800"
config get oom-score-adj-values
config set oom-score-adj-values "0 200 800"
config set shutdown-on-sigint "nosave now"
config get shutdown-on-sigint
config set shutdown-on-sigint "save nosave"
config set shutdown-on-sigint ""
config set shutdown-on-sigint default
config set dir /tmp
config set dbfilename x.rdb
config set slaveof "a b"
config get *ziplist*
config set lua-time-limit 6000
config get busy-reply-threshold lua-time-limit
config set busy-reply-threshold 5000
config set loglevel verbose
config get loglevel
config set loglevel notice
config set hz 0x10
config set repl-backlog-size 0
config set tls-auth-clients optional
config get tls-auth-clients
config set tls-auth-clients yes
config set zset-max-ziplist-value 1kb set-max-intset-entries 0
config get zset-max-* set-max-*
config set zset-max-ziplist-value 64 set-max-intset-entries 512
config resetstat
"""


def test_replies_match_real_redis(redis_server_port: int) -> None:
    ours = _context()
    theirs = RawRedis(redis_server_port)
    mismatches = []
    for line in REDIS_LINES.strip().splitlines():
        argv = split_args(line)
        expected = _comparable(argv, parse_resp2(theirs.call(argv)))
        got = _comparable(argv, parse_resp2(encode(config(ours, None, argv[1:]), 2)))  # type: ignore[arg-type]
        if expected != got:
            mismatches.append(f"{line}: redis {expected!r} cairn {got!r}")
    theirs.close()
    assert not mismatches, "\n".join(mismatches)


def _comparable(argv: list[bytes], value: object) -> object:
    """A CONFIG GET reply as a dict (Redis answers in its hash table's order)."""
    if argv[1].lower() == b"get" and isinstance(value, list):
        return dict(zip(value[::2], value[1::2], strict=True))
    return value


# -- real nodes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("config"), nodes=2) as c:
        yield c


def test_config_is_per_node_and_object_reads_the_serving_node(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader()
    other = next(n.node_id for n in cluster.specs if n.node_id != leader)
    on_leader = client(cluster, leader, decode_responses=True)
    on_other = client(cluster, other, decode_responses=True)
    try:
        on_leader.hset("cfg:h", mapping={"a": "1", "b": "2"})
        assert on_leader.object("encoding", "cfg:h") == "listpack"
        assert on_leader.config_set("hash-max-ziplist-entries", 1) is True
        assert on_leader.config_get("hash-max-listpack-entries") == {
            "hash-max-listpack-entries": "1"
        }
        assert on_other.config_get("hash-max-listpack-entries") == {
            "hash-max-listpack-entries": "512"
        }
        assert on_leader.object("encoding", "cfg:h") == "hashtable"
        # The region's leader serves the read (forwarded): its settings decide.
        assert on_other.object("encoding", "cfg:h") == "hashtable"
        assert on_leader.config_set("hash-max-ziplist-entries", 512) is True
        assert on_other.object("encoding", "cfg:h") == "listpack"
    finally:
        on_leader.close()
        on_other.close()


def test_maxclients_and_requirepass_act_at_once(cluster: LocalCluster) -> None:
    port = cluster.spec(1).client_port
    admin = client(cluster, 1)
    try:
        admin.ping()
        assert admin.config_set("maxclients", 1) is True
        assert admin.info("clients")["maxclients"] == 1, "INFO reports the live limit"
        with socket.create_connection((HOST, port), timeout=5) as extra:
            assert extra.recv(100) == b"-ERR max number of clients reached\r\n"
        assert admin.config_set("maxclients", 10000) is True
        assert admin.config_set("requirepass", "s3cret") is True
        fresh = redis.Redis(host=HOST, port=port)
        with pytest.raises(redis.AuthenticationError):
            fresh.get("x")
        fresh.close()
        authed = redis.Redis(host=HOST, port=port, password="s3cret")
        assert authed.ping() is True
        authed.close()
        assert admin.get("cfg:none") is None  # this connection stays authenticated
        assert admin.config_set("requirepass", "") is True
    finally:
        admin.close()
