"""Monitoring with the tools people run: Debian's prometheus-redis-exporter against a node
of a live cluster and against a real redis-server, the metric families compared; the
Grafana dashboard's metric names checked against both scrapes; and the introspection
replies of MEMORY, MONITOR, CLIENT REPLY, WAIT, ROLE, COMMAND GETKEYS/LIST compared with
redis-server byte for byte where the data allow."""

from __future__ import annotations

import json
import re
import shutil
import socket
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_fixture import running_cluster
from store_harness import RawRedis

from cairn.runtime.config_rewrite import NO_CONFIG_FILE
from cairn.runtime.local_cluster import LocalCluster

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "cairn.json"

_NOT_FOR_CAIRN_GROUPS = (
    (
        "no allocator statistics in a Python process",
        "active_defrag_running allocator_active_bytes allocator_allocated_bytes "
        "allocator_frag_bytes allocator_frag_ratio allocator_resident_bytes allocator_rss_bytes "
        "allocator_rss_ratio defrag_hits defrag_key_hits defrag_key_misses defrag_misses "
        "mem_fragmentation_bytes mem_not_counted_for_eviction_bytes memory_used_dataset_bytes "
        "memory_used_overhead_bytes memory_used_startup_bytes",
    ),
    (
        "no RDB, AOF, fork or Redis replication: Raft replicates and LMDB persists",
        "aof_current_rewrite_duration_sec aof_last_bgrewrite_status aof_last_cow_size_bytes "
        "aof_last_rewrite_duration_sec aof_rewrite_scheduled latest_fork_seconds "
        "rdb_current_bgsave_duration_sec rdb_last_bgsave_duration_sec rdb_last_cow_size_bytes "
        "module_fork_in_progress module_fork_last_cow_size repl_backlog_first_byte_offset "
        "repl_backlog_history_bytes replica_partial_resync_accepted "
        "replica_partial_resync_denied replica_resyncs_full replication_backlog_bytes "
        "slave_expires_tracked_keys",
    ),
    (
        "no Lua memory or script cache figures in INFO",
        "memory_used_lua_bytes memory_used_scripts_bytes number_of_cached_scripts",
    ),
    (
        "no client-side caching (CLIENT TRACKING)",
        "tracking_total_items tracking_total_keys tracking_total_prefixes",
    ),
    (
        "no I/O threads; read and write events are not counted (bytes are)",
        "io_threaded_reads_processed io_threaded_writes_processed total_reads_processed "
        "total_writes_processed",
    ),
    ("blocked clients' timeouts are not kept in a table", "clients_in_timeout_table"),
    ("RESTORE payloads are always checked, never counted", "dump_payload_sanitizations"),
    (
        "active expiry runs on each region leader, not as Redis' sampling cycle",
        "expired_stale_percentage expired_time_cap_reached_total",
    ),
    ("no MIGRATE", "migrate_cached_sockets_total"),
    ("no master or replica link to get unexpected errors from", "unexpected_error_replies"),
)
NOT_FOR_CAIRN = {
    f"redis_{name}": reason for reason, names in _NOT_FOR_CAIRN_GROUPS for name in names.split()
}
"""The families redis-server shows that Cairn does not, each with the reason."""
_REQUIRED = (
    "commands_processed_total commands_total commands_duration_seconds_total connected_clients "
    "blocked_clients memory_used_bytes memory_used_rss_bytes cpu_sys_seconds_total "
    "cpu_user_seconds_total net_input_bytes_total net_output_bytes_total expired_keys_total "
    "db_keys latency_percentiles_usec errors_total total_error_replies mem_clients_normal "
    "rdb_last_save_timestamp_seconds keyspace_hits_total keyspace_misses_total"
)
REQUIRED = {f"redis_{name}" for name in _REQUIRED.split()}
_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, token: str | None = None) -> str:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def _families(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        match = _NAME.match(line)
        if match and not line.startswith("#"):
            found.add(re.sub(r"_(count|sum|bucket)$", "", match.group(1)))
            found.add(match.group(1))
    return found


def _scrape_with_exporter(port: int, password: str | None) -> str:
    """Run the exporter against 127.0.0.1:`port`, scrape it once, stop it by PID."""
    binary = shutil.which("prometheus-redis-exporter")
    if binary is None:
        pytest.fail("prometheus-redis-exporter is not installed (.ci/run installs it)")
    listen = _free_port()
    args = [binary, "--redis.addr", f"redis://127.0.0.1:{port}"]
    args += ["--web.listen-address", f"127.0.0.1:{listen}"]
    if password:
        args += ["--redis.password", password]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                text = _get(f"http://127.0.0.1:{listen}/metrics")
                if "redis_up 1" in text:
                    return text
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the exporter did not report redis_up 1")
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("exporter")) as c:
        yield c


@pytest.fixture(scope="module")
def scrapes(cluster: LocalCluster, redis_server_port: int) -> tuple[str, str, str]:
    """(Cairn's exporter scrape, redis-server's, Cairn's own /metrics), after some traffic
    on both (keys, an error, a blocking call) so every family has samples."""
    node = cluster.specs[1]
    for port, password in ((node.client_port, cluster.password), (redis_server_port, None)):
        raw = RawRedis(port)
        if password:
            raw.call([b"AUTH", password.encode()])
        raw.call([b"SET", b"exp:a", b"1"])
        raw.call([b"GET", b"exp:a"])
        raw.call([b"INCR", b"exp:nokey"])
        raw.call([b"HSET", b"exp:a", b"f", b"v"])  # WRONGTYPE: an error family
        raw.call([b"BLPOP", b"exp:list", b"0.01"])
        raw.close()
    ours = _scrape_with_exporter(node.client_port, cluster.password)
    theirs = _scrape_with_exporter(redis_server_port, None)
    assert node.admin_port is not None
    own = _get(f"http://127.0.0.1:{node.admin_port}/metrics", cluster.admin_token)
    return ours, theirs, own


def test_exporter_shows_every_family_that_applies(scrapes: tuple[str, str, str]) -> None:
    ours, theirs, _ = scrapes
    cairn, redis = _families(ours), _families(theirs)
    missing = {f for f in redis - cairn if f.startswith("redis_")}
    unexplained = missing - set(NOT_FOR_CAIRN)
    assert not unexplained, f"families redis-server has and Cairn lacks: {sorted(unexplained)}"
    assert not REQUIRED - cairn, sorted(REQUIRED - cairn)
    stale = {f for f in NOT_FOR_CAIRN if f in cairn}
    assert not stale, f"listed as not applying but present: {sorted(stale)}"
    assert re.search(r'redis_commands_total\{cmd="set"\} [1-9]', ours)
    assert re.search(r'redis_db_keys\{db="db0"\} [1-9]', ours)


def test_dashboard_uses_only_scraped_metrics(scrapes: tuple[str, str, str]) -> None:
    ours, _, own = scrapes
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variables and variables[0]["query"] == "prometheus"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b((?:redis|cairn)_[a-z_]+)\b", e)}
    known = _families(ours) | _families(own)
    assert names and not names - known, sorted(names - known)
    assert any(n.startswith("cairn_raft") for n in names)
    assert any(n.startswith("redis_") for n in names)


CASES = [
    [b"MEMORY"],
    [b"MEMORY", b"USAGE"],
    [b"MEMORY", b"USAGE", b"exp:none"],
    [b"MEMORY", b"USAGE", b"exp:none", b"SAMPLES", b"x"],
    [b"MEMORY", b"USAGE", b"exp:none", b"SAMPLES", b"-1"],
    [b"MEMORY", b"USAGE", b"exp:none", b"BAR"],
    [b"MEMORY", b"NOPE"],
    [b"MEMORY", b"STATS", b"x"],
    [b"MEMORY", b"HELP"],
    [b"MEMORY", b"PURGE"],
    [b"WAIT", b"x", b"0"],
    [b"WAIT", b"1", b"x"],
    [b"WAIT", b"1", b"-1"],
    [b"WAIT", b"1"],
    [b"ROLE", b"x"],
    [b"LASTSAVE", b"x"],
    [b"COMMAND", b"GETKEYS"],
    [b"COMMAND", b"GETKEYS", b"nosuch", b"a"],
    [b"COMMAND", b"GETKEYS", b"get", b"a", b"b"],
    [b"COMMAND", b"GETKEYS", b"ping", b"a"],
    [b"COMMAND", b"GETKEYS", b"mset", b"a", b"1", b"b", b"2"],
    [b"COMMAND", b"GETKEYS", b"memory", b"usage", b"k"],
    [b"COMMAND", b"GETKEYS", b"watch", b"a", b"b"],
    [b"COMMAND", b"GETKEYS", b"exec", b"x"],
    [b"COMMAND", b"GETKEYS", b"unwatch"],
    [b"COMMAND", b"INFO", b"multi", b"unwatch"],
    [b"COMMAND", b"LIST", b"FILTERBY"],
    [b"COMMAND", b"LIST", b"x"],
    [b"COMMAND", b"LIST", b"FILTERBY", b"MODULE", b"m"],
    [b"COMMAND", b"LIST", b"FILTERBY", b"ACLCAT", b"nosuch"],
    [b"COMMAND", b"LIST", b"FILTERBY", b"PATTERN", b"hgetal*"],
    [b"CLIENT", b"REPLY"],
    [b"CLIENT", b"REPLY", b"maybe"],
    [b"CLIENT", b"REPLY", b"ON"],
]


def test_introspection_replies_match_redis(cluster: LocalCluster, redis_server_port: int) -> None:
    node = cluster.specs[2]
    ours, theirs = RawRedis(node.client_port), RawRedis(redis_server_port)
    if cluster.password:
        ours.call([b"AUTH", cluster.password.encode()])
    mismatches = []
    for argv in CASES:
        a, b = theirs.call(argv), ours.call(argv)
        if a != b:
            mismatches.append(f"{argv!r}: redis {a!r} cairn {b!r}")
    assert not mismatches, "\n".join(mismatches)
    assert ours.call([b"ROLE"]).startswith(b"*3\r\n$6\r\nmaster\r\n:")
    assert ours.call([b"WAIT", b"1", b"0"]) == b":1\r\n"  # three voters: a quorum of 2
    ours.call([b"SET", b"exp:m", b"v" * 100])
    small = int(ours.call([b"MEMORY", b"USAGE", b"exp:m"])[1:-2])
    assert 100 < small < 200
    before = _lookups(cluster)
    ours.call([b"GET", b"exp:m"])
    ours.call([b"GET", b"exp:none"])
    ours.call([b"MGET", b"exp:m", b"exp:none"])
    after = _lookups(cluster)
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)
    ours.close()
    theirs.close()


def _info_field(text: str, name: str) -> int:
    match = re.search(rf"^{name}:(\d+)\r$", text, re.M)
    assert match is not None, f"INFO has no {name}"
    return int(match.group(1))


def _lookups(cluster: LocalCluster) -> tuple[int, int]:
    """keyspace_hits and keyspace_misses summed over the nodes (each counts the reads it
    served as a region leader)."""
    hits = misses = 0
    for spec in cluster.specs:
        raw = RawRedis(spec.client_port)
        if cluster.password:
            raw.call([b"AUTH", cluster.password.encode()])
        text = raw.call([b"INFO", b"stats"]).decode()
        raw.close()
        hits += _info_field(text, "keyspace_hits")
        misses += _info_field(text, "keyspace_misses")
    return hits, misses


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    deadline = time.monotonic() + 5
    while marker not in data and time.monotonic() < deadline:
        data += sock.recv(65536)
    return data


def _monitor_session(port: int, password: str | None) -> tuple[bytes, bytes]:
    """(the replies a client gets, what a monitor shows) for `_TALK` on `port`, with the
    monitor's timestamps and client ports replaced by fixed text."""
    auth = b"" if not password else b"AUTH %s\r\n" % password.encode()
    watcher = socket.create_connection(("127.0.0.1", port), timeout=5)
    watcher.sendall(auth + b"MONITOR\r\n")
    _read_until(watcher, b"+OK\r\n+OK\r\n" if auth else b"+OK\r\n")
    talker = socket.create_connection(("127.0.0.1", port), timeout=5)
    if auth:
        talker.sendall(auth)
        _read_until(talker, b"+OK\r\n")
    talker.sendall(_TALK)
    replies = _read_until(talker, b"WRONGPASS")
    lines = _read_until(watcher, b'"HELLO"')
    watcher.close()
    talker.close()
    shown = re.sub(rb"\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\]", b"+T [0 ADDR]", lines)
    return replies, shown


_TALK = (
    b"CLIENT REPLY SKIP\r\nPING a\r\nPING b\r\nCLIENT REPLY OFF\r\nPING c\r\n"
    b'CLIENT REPLY ON\r\nPING d\r\n*3\r\n$3\r\nSET\r\n$3\r\na b\r\n$4\r\nx"y\n\r\n'
    b"NOSUCH\r\nCONFIG GET maxclients\r\nAUTH p\r\nHELLO 2 AUTH u p\r\n"
)


def test_monitor_and_client_reply_match_redis(
    cluster: LocalCluster, redis_server_port: int
) -> None:
    ours = _monitor_session(cluster.specs[0].client_port, cluster.password)
    theirs = _monitor_session(redis_server_port, None)
    assert ours[1] == theirs[1]
    assert b"$1\r\nb\r\n+OK\r\n$1\r\nd\r\n+OK\r\n" in theirs[0]
    # the same replies, but for AUTH p: Cairn's node has a password, redis-server none
    assert ours[0].split(b"\r\n")[:7] == theirs[0].split(b"\r\n")[:7]
    assert b'"AUTH" "(redacted)"' in ours[1] and b"NOSUCH" not in ours[1]
    assert b"CONFIG" not in ours[1]


def test_config_rewrite_saves_into_the_node_file(
    cluster: LocalCluster, redis_server_port: int
) -> None:
    """Last in this module: it restarts node 3."""
    theirs = RawRedis(redis_server_port)
    assert theirs.call([b"CONFIG", b"REWRITE"]) == b"-" + NO_CONFIG_FILE.message.encode() + b"\r\n"
    theirs.close()
    spec = cluster.spec(3)
    before = spec.config_path.read_text()
    ours = RawRedis(spec.client_port)
    if cluster.password:
        ours.call([b"AUTH", cluster.password.encode()])
    set_reply = ours.call([b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru", b"hz", b"20"])
    assert set_reply == b"+OK\r\n"
    assert ours.call([b"CONFIG", b"REWRITE"]) == b"+OK\r\n"
    ours.close()
    after = spec.config_path.read_text()
    assert after.startswith(before.rstrip("\n"))
    assert after.endswith('[redis]\nmaxmemory-policy = "allkeys-lru"\nhz = "20"\n')
    assert stat.S_IMODE(spec.config_path.stat().st_mode) == 0o600
    cluster.kill(3)  # the rewrite is fsynced: a crash keeps it
    cluster.start(3)
    deadline = time.monotonic() + 20
    while True:
        try:
            ours = RawRedis(spec.client_port)
            break
        except OSError:
            assert time.monotonic() < deadline, "node 3 did not come back"
            time.sleep(0.1)
    if cluster.password:
        ours.call([b"AUTH", cluster.password.encode()])
    got = ours.call([b"CONFIG", b"GET", b"maxmemory-policy"])
    assert got == b"*2\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n"
    ours.close()
