"""Redis' introspection commands on Cairn: INFO's Redis 7.0 sections, SLOWLOG, LATENCY,
CLIENT LIST / INFO / KILL / NO-EVICT / NO-TOUCH / SETINFO, and the per-command statistics
behind them. Unit tests drive the bookkeeping with an injected clock; one small live
cluster checks the whole path through redis-py. Expected texts are redis-server 7.0.15's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.resp.reply import (
    OK,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Map,
    Reply,
    SimpleString,
)
from cairn.runtime.client_commands import ServerContext, config
from cairn.runtime.client_introspection import client as client_command
from cairn.runtime.command_stats import CommandRecorder, CommandStats, Histogram, command_key
from cairn.runtime.config import Limits
from cairn.runtime.info import human_bytes, wanted_sections
from cairn.runtime.latency import LatencyMonitor, histogram_reply
from cairn.runtime.local_cluster import LocalCluster
from cairn.runtime.server import ClientState, RespServer
from cairn.runtime.slowlog import SlowLog, truncate_argv

# -- a recorder on a fake clock ---------------------------------------------------------


class FakeClock:
    """Monotonic and wall time, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recorder(clock: FakeClock, fast: frozenset[str] = frozenset({"get"})) -> CommandRecorder:
    return CommandRecorder(
        clock,
        lambda: 1_700_000_000.0 + clock.now,
        known=lambda name: name in {"get", "set", "blpop", "client", "config", "exec"},
        fast=fast.__contains__,
        blocking=lambda name: name == "blpop",
        slowlog=SlowLog(),
        latency=LatencyMonitor(),
    )


def state(client_id: int = 1) -> ClientState:
    return ClientState(client_id, f"127.0.0.1:{5000 + client_id}", "127.0.0.1:6379", 0.0)


def run(rec: CommandRecorder, clock: FakeClock, argv: list[bytes], reply: Reply, us: int) -> None:
    """One command taking `us` microseconds."""
    replies: list[object] = []
    done = rec.track(state(), argv, replies.append)
    clock.now += us / 1_000_000
    done(reply)
    assert replies == [reply]


def test_commandstats_count_calls_time_and_outcomes() -> None:
    clock = FakeClock()
    rec = recorder(clock)
    run(rec, clock, [b"SET", b"k", b"v"], OK, 7)
    run(rec, clock, [b"set", b"k", b"v"], OK, 3)
    run(rec, clock, [b"get", b"k"], ErrorReply("WRONGTYPE Operation against a key"), 2)
    run(rec, clock, [b"get"], ErrorReply("ERR wrong number of arguments for 'get' command"), 1)
    run(rec, clock, [b"nosuch"], ErrorReply("ERR unknown command 'nosuch'"), 1)
    run(rec, clock, [b"set", b"k", b"v"], SimpleString("QUEUED"), 1)  # inside MULTI
    lines = dict(rec.stats.info_commandstats())
    assert lines == {
        "cmdstat_set": "calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0",
        "cmdstat_get": "calls=1,usec=2,usec_per_call=2.00,rejected_calls=1,failed_calls=1",
    }
    assert dict(rec.stats.info_errorstats()) == {
        "errorstat_WRONGTYPE": "count=1",
        "errorstat_ERR": "count=2",
    }
    assert rec.stats.total_errors == 3 and rec.stats.total_commands == 3
    rec.stats.reset()
    assert rec.stats.info_commandstats() == [] and rec.stats.total_errors == 0


def test_relayed_error_bytes_count_as_errors() -> None:
    clock = FakeClock()
    rec = recorder(clock)
    run(rec, clock, [b"get", b"k"], b"-MOVED 3999 127.0.0.1:6381\r\n", 5)
    run(rec, clock, [b"get", b"k"], b"$1\r\nx\r\n", 5)
    assert dict(rec.stats.info_errorstats()) == {"errorstat_MOVED": "count=1"}
    assert rec.stats.commands["get"].rejected == 1 and rec.stats.commands["get"].calls == 1


def test_blocking_commands_count_but_add_no_time() -> None:
    clock = FakeClock()
    rec = recorder(clock)
    rec.settings.slowlog_slower_than_us = 0
    run(rec, clock, [b"blpop", b"q", b"0"], Array((Bulk(b"q"), Bulk(b"x"))), 5_000_000)
    stat = rec.stats.commands["blpop"]
    assert (stat.calls, stat.usec, stat.histogram.total) == (1, 0, 0)
    assert len(rec.slowlog.entries) == 0


def test_container_subcommands_are_keyed_apart_and_bounded() -> None:
    assert command_key([b"CLIENT", b"List"]) == "client|list"
    assert command_key([b"config", b"get", b"x"]) == "config|get"
    assert command_key([b"client", b"bogus"]) is None
    assert command_key([b"get", b"k"]) == "get"
    stats = CommandStats()
    for i in range(500):
        stats.count_error(f"E{i} boom".encode())
    assert len(stats.errors) == 128 and stats.total_errors == 500


def test_histogram_matches_redis_percentiles_and_buckets() -> None:
    h = Histogram()
    h.add(7_000)
    assert f"{h.percentile(50) / 1000:.3f}" == "7.007"  # redis-server: p50=7.007
    h2 = Histogram()
    for us in (5, 7):
        h2.add(us * 1000)
    h2.add(3_000)
    assert h2.cumulative() == [(4, 1), (8, 3)]  # LATENCY HISTOGRAM: 4 -> 1, 8 -> 3
    big = Histogram()
    for ns in range(1, 200_000, 7):
        big.add(ns * 997)
    assert len(big.counts) < 2000  # bounded, whatever the values


def test_latencystats_lines_and_histogram_reply() -> None:
    clock = FakeClock()
    rec = recorder(clock)
    run(rec, clock, [b"set", b"k", b"v"], OK, 7)
    assert rec.stats.info_latencystats((50.0, 99.0, 99.9)) == [
        ("latency_percentiles_usec_set", "p50=7.007,p99=7.007,p99.9=7.007")
    ]
    reply = histogram_reply(rec.stats, [b"SET", b"nosuch"])
    body = Map(
        ((Bulk(b"calls"), Integer(1)), (Bulk(b"histogram_usec"), Map(((Integer(8), Integer(1)),))))
    )
    assert reply == Map(((Bulk(b"set"), body),))


# -- SLOWLOG ---------------------------------------------------------------------------


def test_slowlog_records_over_threshold_with_redis_truncation() -> None:
    clock = FakeClock()
    rec = recorder(clock)
    rec.settings.slowlog_slower_than_us = 100
    run(rec, clock, [b"get", b"fast"], OK, 99)
    run(rec, clock, [b"set", b"k", b"x" * 200], OK, 100)
    assert len(rec.slowlog.entries) == 1
    entry = rec.slowlog.entries[0]
    assert entry.duration_us == 100 and entry.addr == "127.0.0.1:5001"
    assert entry.argv == (b"set", b"k", b"x" * 128 + b"... (72 more bytes)")
    rec.settings.slowlog_slower_than_us = -1
    run(rec, clock, [b"set", b"k", b"v"], OK, 10**6)
    assert len(rec.slowlog.entries) == 1


def test_slowlog_argument_limit() -> None:
    argv = [b"a%d" % i for i in range(40)]
    cut = truncate_argv(argv)
    assert len(cut) == 32 and cut[-1] == b"... (9 more arguments)" and cut[30] == b"a30"
    assert truncate_argv(argv[:32]) == tuple(argv[:32])


def test_slowlog_command_replies() -> None:
    log = SlowLog(max_len=3)
    for i in range(5):
        log.add([b"set", b"k%d" % i], 10 + i, 1_700_000_000, "1.2.3.4:5", "me")
    assert log.command([b"len"]) == Integer(3)
    newest = log.command([b"get", b"1"])
    assert isinstance(newest, Array) and len(newest.items) == 1
    assert newest.items[0] == Array(
        (
            Integer(4),
            Integer(1_700_000_000),
            Integer(14),
            Array((Bulk(b"set"), Bulk(b"k4"))),
            Bulk(b"1.2.3.4:5"),
            Bulk(b"me"),
        )
    )
    every = log.command([b"GET", b"-1"])
    assert isinstance(every, Array) and len(every.items) == 3
    bad = ErrorReply("ERR count should be greater than or equal to -1")
    assert log.command([b"get", b"-2"]) == bad and log.command([b"get", b"x"]) == bad
    assert log.command([b"get", b"1", b"2"]) == ErrorReply(
        "ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP."
    )
    assert log.command([b"len", b"1"]) == ErrorReply(
        "ERR wrong number of arguments for 'slowlog|len' command"
    )
    assert log.command([b"foo"]) == ErrorReply("ERR unknown subcommand 'foo'. Try SLOWLOG HELP.")
    assert log.command([b"reset"]) == OK and log.command([b"len"]) == Integer(0)


# -- LATENCY ---------------------------------------------------------------------------


def test_latency_monitor_samples_per_second_and_replies() -> None:
    clock = FakeClock()
    rec = recorder(clock)
    run(rec, clock, [b"set", b"k", b"v"], OK, 50_000)  # threshold 0: off
    assert rec.latency.events == {}
    rec.settings.latency_threshold_ms = 10
    run(rec, clock, [b"set", b"k", b"v"], OK, 9_999)
    run(rec, clock, [b"set", b"k", b"v"], OK, 20_000)
    run(rec, clock, [b"set", b"k", b"v"], OK, 15_000)  # same second: keeps the worst
    run(rec, clock, [b"get", b"k"], OK, 12_000)
    monitor = rec.latency
    assert list(monitor.events) == ["command", "fast-command"]
    assert list(monitor.events["command"].samples) == [(1_700_001_000, 20)]
    latest = monitor.command([b"latest"], rec.stats, 10)
    assert isinstance(latest, Array)
    assert latest.items[0] == Array(
        (Bulk(b"command"), Integer(1_700_001_000), Integer(20), Integer(20))
    )
    history = monitor.command([b"history", b"fast-command"], rec.stats, 10)
    assert history == Array((Array((Integer(1_700_001_000), Integer(12))),))
    assert monitor.command([b"history", b"nosuch"], rec.stats, 10) == Array(())
    assert "command: 1 latency spikes" in monitor.doctor(10)
    assert monitor.command([b"reset", b"command", b"foo"], rec.stats, 10) == Integer(1)
    assert monitor.command([b"reset"], rec.stats, 10) == Integer(1)
    assert monitor.command([b"bogus"], rec.stats, 10) == ErrorReply(
        "ERR unknown subcommand 'bogus'. Try LATENCY HELP."
    )
    assert monitor.command([b"history"], rec.stats, 10) == ErrorReply(
        "ERR wrong number of arguments for 'latency|history' command"
    )
    assert "disabled" in monitor.doctor(0)


# -- INFO section choice and formats ----------------------------------------------------


def test_info_section_choice_as_redis() -> None:
    default = wanted_sections([])
    assert default == wanted_sections(["default"])
    assert "commandstats" not in default and "latencystats" not in default
    assert default[:7] == [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
    ]
    assert "raft" in default and "errorstats" in default
    assert wanted_sections(["all"]) == wanted_sections(["everything"])
    assert "latencystats" in wanted_sections(["all"])
    assert wanted_sections(["keyspace", "cpu", "commandstats"]) == [
        "cpu",
        "commandstats",
        "keyspace",
    ]
    assert wanted_sections(["bogus"]) == []
    assert wanted_sections(["default", "commandstats"]) == [
        n for n in wanted_sections(["all"]) if n != "latencystats"
    ]


def test_human_bytes_as_redis() -> None:
    assert human_bytes(1023) == "1023B"
    assert human_bytes(966848) == "944.19K"  # redis-server's used_memory_human
    assert human_bytes(6762496) == "6.45M"
    assert human_bytes(25276182528) == "23.54G"


# -- CLIENT and CONFIG on a context without a node --------------------------------------


class _NoRouter:
    def execute(self, client: object, args: list[bytes], done: object) -> None:
        raise AssertionError("never routes")


@dataclass
class _Parser:
    buffered: int = 0


@dataclass
class FakeConn:
    """What CLIENT reads of a connection."""

    state: ClientState
    parser: _Parser = field(default_factory=_Parser)
    transport: None = None
    protocol: int = 2
    killed: str = ""

    def output_backlog(self) -> int:
        return 0

    def close_after_reply(self) -> None:
        self.killed = "after reply"

    def abort(self) -> None:
        self.killed = "now"


def _context() -> tuple[ServerContext, list[FakeConn]]:
    server = RespServer(_NoRouter(), Limits(), None)
    ctx = ServerContext(
        server=server,
        table={},
        info=lambda sections: "",
        wall_time=time.time,
        monotonic=lambda: 10.0,
        subscriptions=lambda cid: (2, 1, 0) if cid == 2 else (0, 0, 0),
    )
    conns = [FakeConn(state(i)) for i in (1, 2, 3)]
    for conn in conns:
        server.clients[conn.state.id] = (conn, conn.state)  # type: ignore[assignment]
    return ctx, conns


def call(ctx: ServerContext, conn: FakeConn, *args: bytes) -> Reply:
    return client_command(ctx, conn, list(args))  # type: ignore[arg-type]


def test_client_list_and_info_fields() -> None:
    ctx, (me, _, _) = _context()
    me.state.transaction.queued = [[b"set", b"k", b"v"]]
    me.state.last_command = "client|list"
    assert call(ctx, me, b"setinfo", b"LIB-NAME", b"redis-py") == OK
    line = call(ctx, me, b"INFO")
    assert line == Bulk(
        b"id=1 addr=127.0.0.1:5001 laddr=127.0.0.1:6379 fd=-1 name= age=10 idle=10 flags=x "
        b"db=0 sub=0 psub=0 ssub=0 multi=1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 "
        b"rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|list user=default redir=-1 "
        b"resp=2 lib-name=redis-py lib-ver=\n"
    )
    listed = call(ctx, me, b"list", b"type", b"pubsub")
    assert isinstance(listed, Bulk) and listed.value.startswith(b"id=2 ")
    assert b"flags=P " in listed.value and b"sub=2 psub=1 ssub=0" in listed.value
    assert call(ctx, me, b"list", b"id", b"3", b"1").value.count(b"\n") == 2  # type: ignore[union-attr]
    assert call(ctx, me, b"list", b"type", b"bogus") == ErrorReply(
        "ERR Unknown client type 'bogus'"
    )
    assert call(ctx, me, b"list", b"id", b"abc") == ErrorReply("ERR Invalid client ID")
    assert call(ctx, me, b"list", b"foo") == ErrorReply("ERR syntax error")
    assert call(ctx, me, b"no-evict", b"on") == OK and call(ctx, me, b"no-touch", b"ON") == OK
    assert b"flags=xeT " in call(ctx, me, b"info").value  # type: ignore[union-attr]
    assert call(ctx, me, b"no-evict", b"maybe") == ErrorReply("ERR syntax error")
    assert call(ctx, me, b"setinfo", b"lib-ver", b"a b") == ErrorReply(
        "ERR lib-ver cannot contain spaces, newlines or special characters."
    )
    assert call(ctx, me, b"setinfo", b"x", b"y") == ErrorReply("ERR Unrecognized option 'x'")
    assert call(ctx, me, b"no-evict") == ErrorReply(
        "ERR wrong number of arguments for 'client|no-evict' command"
    )
    assert call(ctx, me, b"nope") == ErrorReply("ERR unknown subcommand 'nope'. Try CLIENT HELP.")


def test_client_kill_forms_and_errors() -> None:
    ctx, (me, sub, other) = _context()
    assert call(ctx, me, b"kill", b"1.2.3.4:5") == ErrorReply("ERR No such client")
    assert call(ctx, me, b"kill", b"127.0.0.1:5003") == OK and other.killed == "now"
    assert call(ctx, me, b"kill", b"id", b"999") == Integer(0)
    assert call(ctx, me, b"kill", b"id", b"abc") == ErrorReply(
        "ERR client-id should be greater than 0"
    )
    assert call(ctx, me, b"kill", b"foo", b"bar") == ErrorReply("ERR syntax error")
    assert call(ctx, me, b"kill", b"id", b"1", b"skipme") == ErrorReply("ERR syntax error")
    assert call(ctx, me, b"kill", b"type", b"bogus") == ErrorReply(
        "ERR Unknown client type 'bogus'"
    )
    assert call(ctx, me, b"kill", b"user", b"nobody") == ErrorReply("ERR No such user 'nobody'")
    assert call(ctx, me, b"kill", b"laddr", b"1.1.1.1:1") == Integer(0)
    assert call(ctx, me, b"kill", b"id", b"1") == Integer(0)  # SKIPME yes by default
    assert call(ctx, me, b"kill", b"type", b"pubsub") == Integer(1) and sub.killed == "now"
    assert call(ctx, me, b"kill", b"type", b"master") == Integer(0)
    assert call(ctx, me, b"kill", b"id", b"1", b"skipme", b"no") == Integer(1)
    assert me.killed == "after reply"


def test_config_set_drives_slowlog_and_latency_and_resetstat() -> None:
    ctx, (me, _, _) = _context()
    args = [b"set", b"slowlog-log-slower-than", b"0", b"slowlog-max-len", b"2"]
    assert config(ctx, me, args) == OK  # type: ignore[arg-type]
    assert config(ctx, me, [b"set", b"latency-monitor-threshold", b"5"]) == OK  # type: ignore[arg-type]
    rec = ctx.recorder
    assert rec.settings.slowlog_slower_than_us == 0 and rec.slowlog.max_len == 2
    assert rec.settings.latency_threshold_ms == 5
    for i in range(4):
        done = rec.track(me.state, [b"get", b"k%d" % i], lambda reply: None)
        done(OK)
    assert [e.argv[1] for e in rec.slowlog.entries] == [b"k3", b"k2"]
    assert rec.stats.commands["get"].calls == 4
    assert config(ctx, me, [b"resetstat"]) == OK  # type: ignore[arg-type]
    assert rec.stats.commands == {} and len(rec.slowlog.entries) == 2


# -- one live cluster -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("introspect")) as c:
        yield c


def test_live_info_slowlog_client_kill_and_commandstats(cluster: LocalCluster) -> None:
    r = client(cluster, 1, protocol=2)
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    r.config_resetstat()
    for i in range(3):
        r.set(f"intro{i}", "v")
    assert r.get("intro0") == b"v"
    with pytest.raises(redis.ResponseError):
        r.execute_command("NOSUCHCOMMAND")

    info = r.info("all")
    for name in (
        "redis_version", "process_id", "tcp_port", "uptime_in_seconds", "connected_clients",
        "blocked_clients", "maxclients", "used_memory", "used_memory_human", "used_memory_rss",
        "loading", "total_connections_received", "total_commands_processed",
        "instantaneous_ops_per_sec", "total_net_input_bytes", "total_net_output_bytes",
        "rejected_connections", "expired_keys", "total_error_replies", "role", "used_cpu_sys",
        "used_cpu_user", "cluster_enabled", "raft_term",
    ):  # fmt: skip
        assert name in info, name
    assert info["cmdstat_set"]["calls"] == 3 and info["cmdstat_get"]["calls"] == 1
    assert info["errorstat_ERR"]["count"] >= 1 and info["total_error_replies"] >= 1
    assert set(info["latency_percentiles_usec_set"]) == {"p50", "p99", "p99.9"}
    assert info["db0"]["keys"] >= 3 and info["role"] == "master" and info["cluster_enabled"] == 1
    assert info["total_net_input_bytes"] > 0 and info["total_commands_processed"] >= 4
    assert "cmdstat_set" not in r.info()  # not a default section

    logged = [e["command"] for e in r.slowlog_get(20)]
    assert b"SET intro2 v" in logged and b"GET intro0" in logged

    victim = client(cluster, 1, protocol=2)
    victim_id = victim.client_id()
    assert r.execute_command("CLIENT", "KILL", "ID", victim_id) == 1
    ids = [int(c["id"]) for c in r.client_list()]
    assert victim_id not in ids and r.client_id() in ids
    r.config_set("slowlog-log-slower-than", 10000)
