"""The cluster layout as Redis Cluster clients see it, compared with a real Redis Cluster.

The pure part checks slot ownership, CLUSTER INFO's counts and redis-py's parsers on our
replies. The comparison part starts a two-node Redis Cluster on loopback (a master with
every slot and its replica) and checks that a Cairn topology of the same shape (one region,
its leader and one follower) answers CLUSTER SLOTS/SHARDS/NODES/INFO/KEYSLOT/MYID with the
same structure, types and field names in RESP2 and RESP3, and the same error texts.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers.helpers import parse_cluster_info, parse_cluster_nodes
from redis.cluster import parse_cluster_shards, parse_cluster_slots

from cairn.meta.region import Peer, PeerRole, Region, RegionEpoch, range_key, slot_bound
from cairn.resp.encoder import encode
from cairn.resp.reply import Array, Bulk, ErrorReply, Map, Reply, Verbatim
from cairn.shard.routing import CROSSSLOT, ClientRouting, Moved, Refuse, route
from cairn.shard.topology import (
    NodeAddress,
    Topology,
    cluster_command,
    node_name,
    owned_slots,
)
from cairn.store import COMMANDS
from cairn.store.slot import SLOT_COUNT, key_slot

HOST = "127.0.0.1"
NOW_MS = 1_700_000_000_000
ADDRESSES = {n: NodeAddress(HOST, 7000 + n, 17000 + n) for n in (1, 2, 3)}


def peers(*nodes: int) -> tuple[Peer, ...]:
    return tuple(Peer(10 * n, n) for n in nodes)


def two_regions(leaders: dict[int, int] | None = None, **kw: Any) -> Topology:
    """Slots 0..8191 on region 1 (led by node 1), the rest on region 2 (led by node 2)."""
    regions = [
        Region(1, b"", slot_bound(8192), RegionEpoch(2, 1), peers(1, 2, 3)),
        Region(2, slot_bound(8192), b"", RegionEpoch(2, 1), peers(2, 3, 1)),
    ]
    lead = {1: 1, 2: 2} if leaders is None else leaders
    return Topology(regions, lead, ADDRESSES, kw.pop("my_id", 1), "test", **kw)


def run(topology: Topology, *args: bytes) -> Reply:
    return cluster_command(topology, args, NOW_MS)


# -- ownership ------------------------------------------------------------------------


def test_node_names_are_stable_40_hex_and_distinct_per_cluster() -> None:
    name = node_name("prod", 1)
    assert re.fullmatch(r"[0-9a-f]{40}", name)
    assert node_name("prod", 1) == name
    assert len({name, node_name("prod", 2), node_name("test", 1)}) == 3


def test_a_slot_split_inside_belongs_to_the_region_holding_its_first_key() -> None:
    cut = range_key(b"{x}m")
    slot = key_slot(b"x")
    left = Region(1, b"", cut, peers=peers(1))
    right = Region(2, cut, b"", peers=peers(2))
    assert slot in owned_slots(left)
    assert slot not in owned_slots(right)
    assert owned_slots(left).stop == slot + 1 == owned_slots(right).start
    topo = Topology([left, right], {1: 1, 2: 2}, ADDRESSES, 1, "t")
    assert topo.owner(slot) == left
    assert topo.region_of(b"{x}z") == right
    assert topo.owner(slot + 1) == right


def test_a_region_inside_one_slot_owns_no_slot_but_is_a_shard() -> None:
    slot = 77
    regions = [
        Region(1, b"", slot_bound(slot) + b"a", peers=peers(1)),
        Region(2, slot_bound(slot) + b"a", slot_bound(slot) + b"b", peers=peers(2)),
        Region(3, slot_bound(slot) + b"b", b"", peers=peers(3)),
    ]
    topo = Topology(regions, {1: 1, 2: 2, 3: 3}, ADDRESSES, 1, "t")
    assert not owned_slots(regions[1])
    assert topo.owner(slot) == regions[0]
    shards = topo.shards_reply().items
    assert len(shards) == 3
    middle = shards[1]
    assert isinstance(middle, Map) and middle.pairs[0] == (Bulk(b"slots"), Array(()))
    assert [(r.first, r.last) for r in topo.ranges] == [(0, 77), (78, SLOT_COUNT - 1)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(range_key, st.binary(max_size=3)),
            st.integers(0, SLOT_COUNT - 1).map(slot_bound),
            st.binary(min_size=1, max_size=3),
        ),
        max_size=12,
        unique=True,
    )
)
def test_every_slot_has_exactly_one_owner_whatever_the_cuts(cuts: list[bytes]) -> None:
    bounds = [b"", *sorted(cuts), b""]
    regions = [Region(i + 1, lo, hi, peers=peers(1)) for i, (lo, hi) in enumerate(pairwise(bounds))]
    topo = Topology(regions, {r.id: 1 for r in regions}, ADDRESSES, 1, "t")
    covered = [s for r in topo.ranges for s in range(r.first, r.last + 1)]
    assert covered == list(range(SLOT_COUNT))
    for slot in (0, 1, 255, 256, 8191, SLOT_COUNT - 1):
        owner = topo.owner(slot)
        assert owner is not None and owner.contains(slot_bound(slot))


# -- CLUSTER INFO ---------------------------------------------------------------------


def info(topology: Topology) -> dict[str, str]:
    reply = run(topology, b"INFO")
    assert isinstance(reply, Verbatim)
    lines = reply.text.decode().split("\r\n")
    assert lines[-1] == ""
    return dict(line.split(":", 1) for line in lines[:-1])


def test_cluster_info_of_a_healthy_cluster() -> None:
    fields = info(two_regions())
    assert fields["cluster_state"] == "ok"
    assert fields["cluster_slots_assigned"] == fields["cluster_slots_ok"] == str(SLOT_COUNT)
    assert fields["cluster_known_nodes"] == "3"
    assert fields["cluster_size"] == "2"
    assert fields["cluster_current_epoch"] == "3"


def test_a_gap_in_the_map_fails_the_cluster() -> None:
    region = Region(1, b"", slot_bound(100), peers=peers(1))
    topo = Topology([region], {1: 1}, ADDRESSES, 1, "t")
    fields = info(topo)
    assert fields["cluster_state"] == "fail"
    assert fields["cluster_slots_assigned"] == "100"
    assert topo.gap_slot() == 100


def test_a_region_without_leader_is_pfail_and_without_quorum_fail() -> None:
    electing = info(two_regions(leaders={1: 1}))
    assert electing["cluster_state"] == "ok"
    assert electing["cluster_slots_pfail"] == "8192"
    lost = info(two_regions(leaders={1: 1}, down=[2, 3]))
    assert lost["cluster_state"] == "fail"
    assert lost["cluster_slots_fail"] == str(SLOT_COUNT)


# -- SLOTS, SHARDS, NODES through redis-py's parsers -----------------------------------


def wire(reply: Reply, protocol: int = 2) -> Any:
    """What a hiredis-based client receives for `reply`."""
    reader = hiredis.Reader()
    reader.feed(encode(reply, protocol))
    return reader.gets()


def test_redis_py_reads_our_slots_with_the_leader_as_primary() -> None:
    topo = two_regions()
    slots = parse_cluster_slots(wire(run(topo, b"SLOTS")))
    first = slots[(0, 8191)]
    assert first["primary"] == (HOST, 7001)
    assert first["replicas"] == [(HOST, 7002), (HOST, 7003)]
    assert slots[(8192, SLOT_COUNT - 1)]["primary"] == (HOST, 7002)


def test_while_electing_the_first_live_voter_stands_in() -> None:
    topo = two_regions(leaders={1: 1}, down=[2])
    slots = parse_cluster_slots(wire(run(topo, b"SLOTS")))
    assert slots[(8192, SLOT_COUNT - 1)]["primary"] == (HOST, 7003)


def test_failed_replicas_are_left_out_of_slots() -> None:
    slots = parse_cluster_slots(wire(run(two_regions(down=[3]), b"SLOTS")))
    assert slots[(0, 8191)]["replicas"] == [(HOST, 7002)]


def test_learners_are_replicas_listed_after_voters() -> None:
    region = Region(1, peers=(Peer(1, 1), Peer(2, 2, PeerRole.LEARNER), Peer(3, 3)))
    topo = Topology([region], {1: 1}, ADDRESSES, 1, "t")
    slots = parse_cluster_slots(wire(run(topo, b"SLOTS")))
    assert [p for _, p in slots[(0, SLOT_COUNT - 1)]["replicas"]] == [7003, 7002]


def test_redis_py_reads_our_shards() -> None:
    topo = two_regions(offsets={20: 42}, down=[3])
    shards = parse_cluster_shards(wire(run(topo, b"SHARDS")))
    assert [s["slots"] for s in shards] == [[(0, 8191)], [(8192, SLOT_COUNT - 1)]]
    second = shards[1]["nodes"]
    assert [n[b"role"] for n in second] == [b"master", b"replica", b"replica"]
    assert [n[b"port"] for n in second] == [7002, 7003, 7001]
    assert second[0][b"replication-offset"] == 42
    assert [n[b"health"] for n in second] == [b"online", b"fail", b"online"]


def test_redis_py_reads_our_nodes() -> None:
    topo = two_regions(my_id=3, down=[2])
    parsed = parse_cluster_nodes(wire(run(topo, b"NODES")))
    one = parsed[f"{HOST}:7001"]
    assert one["node_id"] == node_name("test", 1)
    assert one["flags"] == "master" and one["slots"] == [["0", "8191"]]
    assert parsed[f"{HOST}:7002"]["flags"] == "master,fail"
    assert not parsed[f"{HOST}:7002"]["connected"]
    three = parsed[f"{HOST}:7003"]
    assert three["flags"] == "myself,slave"
    assert three["master_id"] == node_name("test", 1)


def test_redis_py_reads_our_info() -> None:
    parsed = parse_cluster_info(wire(run(two_regions(), b"INFO")))
    assert parsed["cluster_state"] == "ok"


def test_replicas_of_a_master() -> None:
    topo = Topology([Region(1, peers=peers(1, 2, 3))], {1: 1}, ADDRESSES, 1, "t", down=())
    reply = run(topo, b"REPLICAS", node_name("t", 1).encode())
    assert isinstance(reply, Verbatim)
    lines = reply.text.decode().splitlines()
    assert [line.split()[0] for line in lines] == [node_name("t", 2), node_name("t", 3)]
    assert run(topo, b"SLAVES", node_name("t", 2).encode()) == ErrorReply(
        "ERR The specified node is not a master"
    )
    assert run(topo, b"REPLICAS", b"nope") == ErrorReply("ERR Unknown node nope")


def test_layout_changing_subcommands_are_refused_with_a_reason() -> None:
    reply = run(two_regions(), b"addslots", b"1")
    assert isinstance(reply, ErrorReply) and "cairn ctl" in reply.message
    assert reply.message.startswith("ERR CLUSTER ADDSLOTS is not supported")


# -- against a real Redis Cluster --------------------------------------------------------


@dataclass
class RedisCluster:
    """A master with every slot and its replica, both on loopback."""

    master: int
    master_bus: int
    replica: int
    replica_bus: int
    master_id: str


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((HOST, 0))
        return [int(p.getsockname()[1]) for p in probes]
    finally:
        for probe in probes:
            probe.close()


def _start(binary: str, port: int, bus: int, tmp: Path) -> subprocess.Popen[bytes]:
    data = tmp / str(port)
    data.mkdir()
    args = [binary, "--port", str(port), "--bind", HOST, "--cluster-enabled", "yes"]
    args += ["--cluster-port", str(bus), "--cluster-config-file", str(data / "nodes.conf")]
    args += ["--dir", str(data), "--save", "", "--appendonly", "no"]
    args += ["--repl-diskless-sync-delay", "0", "--cluster-node-timeout", "500"]
    args += ["--repl-ping-replica-period", "1"]  # a replica with offset 0 is not listed
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _until(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis cluster: {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Two cluster-mode redis-servers, stopped by PID afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    tmp = tmp_path_factory.mktemp("redis-cluster")
    master, master_bus, replica, replica_bus = _free_ports(4)
    procs = [_start(binary, master, master_bus, tmp), _start(binary, replica, replica_bus, tmp)]
    try:
        for port in (master, replica):
            _until(lambda p=port: _connectable(p), f"port {port} up")
        master_id = _text(call(master, b"CLUSTER", b"MYID"))
        call(master, b"CLUSTER", b"ADDSLOTSRANGE", b"0", b"16383")
        meet = (HOST.encode(), str(master).encode(), str(master_bus).encode())
        call(replica, b"CLUSTER", b"MEET", *meet)
        _until(lambda: master_id in _text(call(replica, b"CLUSTER", b"NODES")), "meet")
        call(replica, b"CLUSTER", b"REPLICATE", master_id.encode())
        _until(lambda: _ready(master), "a replica and cluster_state:ok")
        yield RedisCluster(master, master_bus, replica, replica_bus, master_id)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _connectable(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def _ready(master: int) -> bool:
    if b"cluster_state:ok" not in _raw_text(call(master, b"CLUSTER", b"INFO")):
        return False
    _, ranges = call(master, b"CLUSTER", b"SLOTS")
    return len(ranges) == 1 and len(ranges[0][1]) == 4  # first, last, master, replica


# -- a RESP reader that keeps types (hiredis folds them) -----------------------------------


def _read_line(data: bytes, at: int) -> tuple[bytes, int]:
    end = data.index(b"\r\n", at)
    return data[at:end], end + 2


def _parse(data: bytes, at: int = 0) -> tuple[Any, int]:
    """One RESP2/3 value as (type char, value): aggregates hold parsed children."""
    kind = chr(data[at])
    line, at = _read_line(data, at + 1)
    if kind in "+-":
        return (kind, line.decode()), at
    if kind == ":":
        return (kind, int(line)), at
    if kind in "$=":
        size = int(line)
        if size < 0:
            return (kind, None), at
        return (kind, data[at : at + size]), at + size + 2
    if kind == "_":
        return (kind, None), at
    if kind in "*%~>":
        count = int(line) * (2 if kind == "%" else 1)
        items = []
        for _ in range(count):
            item, at = _parse(data, at)
            items.append(item)
        return (kind, items), at
    raise ValueError(f"unexpected RESP type {kind!r}")


def call(port: int, *args: bytes, protocol: int = 2) -> Any:
    """Send one command (after HELLO 3 when asked) and parse its reply."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        replies = []
        commands = [(b"HELLO", b"3"), args] if protocol == 3 else [args]
        for command in commands:
            frame = b"*%d\r\n" % len(command)
            frame += b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in command)
            sock.sendall(frame)
            data = b""
            while True:
                data += sock.recv(65536)
                try:
                    reply, _ = _parse(data)
                    break
                except (ValueError, IndexError):
                    continue
            replies.append(reply)
        return replies[-1]


def _raw_text(parsed: Any) -> bytes:
    kind, value = parsed
    assert kind in "$=", parsed
    return value[4:] if kind == "=" else value


def _text(parsed: Any) -> str:
    return _raw_text(parsed).decode()


def ours(reply: Reply, protocol: int) -> Any:
    parsed, _ = _parse(encode(reply, protocol))
    return parsed


def shape(parsed: Any) -> Any:
    """The types and map keys of a parsed reply, without the other values."""
    kind, value = parsed
    if kind in "*~>":
        return (kind, [shape(v) for v in value])
    if kind == "%":
        pairs = list(zip(value[::2], value[1::2], strict=True))
        return (kind, [(k, shape(v)) for k, v in pairs])
    if kind == "=":
        return (kind, value[:4])
    return (kind,)


def mirror(cluster: RedisCluster) -> Topology:
    """A Cairn topology shaped like the Redis cluster: one region, led by node 1."""
    nodes = {
        1: NodeAddress(HOST, cluster.master, cluster.master_bus),
        2: NodeAddress(HOST, cluster.replica, cluster.replica_bus),
    }
    return Topology([Region(1, peers=peers(1, 2))], {1: 1}, nodes, 1, "mirror")


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("sub", [b"SLOTS", b"SHARDS"])
def test_slots_and_shards_have_redis_shape(
    redis_cluster: RedisCluster, sub: bytes, protocol: int
) -> None:
    theirs = call(redis_cluster.master, b"CLUSTER", sub, protocol=protocol)
    mine = ours(run(mirror(redis_cluster), sub), protocol)
    assert shape(mine) == shape(theirs)


def test_slots_name_the_same_endpoints(redis_cluster: RedisCluster) -> None:
    theirs = call(redis_cluster.master, b"CLUSTER", b"SLOTS")
    mine = ours(run(mirror(redis_cluster), b"SLOTS"), 2)

    def endpoints(parsed: Any) -> list[Any]:
        ((_, entry),) = parsed[1]
        return [entry[0], entry[1], *[(n[1][0], n[1][1]) for n in entry[2:]]]

    assert endpoints(mine) == endpoints(theirs)


@pytest.mark.parametrize("protocol", [2, 3])
def test_info_has_redis_fields_in_redis_order(redis_cluster: RedisCluster, protocol: int) -> None:
    theirs = call(redis_cluster.master, b"CLUSTER", b"INFO", protocol=protocol)
    mine = ours(run(mirror(redis_cluster), b"INFO"), protocol)
    assert shape(mine) == shape(theirs)
    per_type = re.compile(r"cluster_stats_messages_\w+_(sent|received)$")

    def fields(parsed: Any) -> list[str]:
        lines = _text(parsed).split("\r\n")
        assert lines[-1] == ""
        names = [line.split(":")[0] for line in lines[:-1]]
        return [n for n in names if not per_type.match(n)]

    assert fields(mine) == fields(theirs)
    assert _text(mine).startswith("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n")


NODE_LINE = re.compile(
    r"(?P<id>[0-9a-f]{40}) (?P<addr>[\d.]+:\d+@\d+) (?P<flags>\S+) (?P<master>-|[0-9a-f]{40}) "
    r"(?P<ping>\d+) (?P<pong>\d+) (?P<epoch>\d+) (?P<link>connected|disconnected)(?P<slots>.*)"
)


@pytest.mark.parametrize("protocol", [2, 3])
def test_nodes_lines_have_redis_format(redis_cluster: RedisCluster, protocol: int) -> None:
    theirs = call(redis_cluster.master, b"CLUSTER", b"NODES", protocol=protocol)
    topo = mirror(redis_cluster)
    mine = ours(run(topo, b"NODES"), protocol)
    assert shape(mine) == shape(theirs)

    def lines(parsed: Any) -> list[dict[str, str]]:
        text = _text(parsed)
        assert text.endswith("\n") and "\r" not in text
        found = []
        for line in text.splitlines():
            match = NODE_LINE.fullmatch(line)
            assert match, line
            found.append(match.groupdict())
        return sorted(found, key=lambda f: f["flags"])

    a, b = lines(mine), lines(theirs)
    comparable = ("flags", "link", "slots", "ping")
    assert [{k: f[k] for k in comparable} for f in a] == [{k: f[k] for k in comparable} for f in b]
    assert [f["addr"] for f in a] == [f["addr"] for f in b]
    assert a[1]["master"] == topo.name(1) and b[1]["master"] == redis_cluster.master_id


def test_keyslot_and_myid_match(redis_cluster: RedisCluster) -> None:
    topo = mirror(redis_cluster)
    for key in (b"foo", b"{user1000}.following", b"foo{}{bar}", b"", b"\xff\x00k"):
        theirs = call(redis_cluster.master, b"CLUSTER", b"KEYSLOT", key)
        assert ours(run(topo, b"KEYSLOT", key), 2) == theirs
    theirs = call(redis_cluster.master, b"CLUSTER", b"MYID")
    mine = ours(run(topo, b"MYID"), 2)
    assert shape(mine) == shape(theirs) and len(mine[1]) == len(theirs[1]) == 40


ERROR_CASES = [
    (b"KEYSLOT",),
    (b"KEYSLOT", b"a", b"b"),
    (b"SLOTS", b"x"),
    (b"SHARDS", b"x"),
    (b"NODES", b"x"),
    (b"INFO", b"x"),
    (b"MYID", b"x"),
    (b"REPLICAS",),
    (b"FOO",),
    (b"fOo", b"bar"),
    (b"MYSHARDID",),
]


@pytest.mark.parametrize("args", ERROR_CASES, ids=lambda a: b" ".join(a).decode())
def test_error_texts_match(redis_cluster: RedisCluster, args: tuple[bytes, ...]) -> None:
    theirs = call(redis_cluster.master, b"CLUSTER", *args)
    assert theirs[0] == "-"
    assert ours(run(mirror(redis_cluster), *args), 2) == theirs


def test_moved_text_matches(redis_cluster: RedisCluster) -> None:
    theirs = call(redis_cluster.replica, b"GET", b"foo")
    topo = mirror(redis_cluster)
    replica_view = Topology(topo.regions, topo.leaders, topo.nodes, 2, "mirror")
    decision = route([b"GET", b"foo"], COMMANDS["get"], replica_view, ClientRouting(True))
    assert isinstance(decision, Moved)
    assert ours(decision.reply, 2) == theirs


def test_crossslot_text_matches(redis_cluster: RedisCluster) -> None:
    argv = [b"MSET", b"bar", b"1", b"foo", b"2"]
    theirs = call(redis_cluster.master, *argv)
    decision = route(argv, COMMANDS["mset"], two_regions())
    assert decision == Refuse(CROSSSLOT)
    assert ours(CROSSSLOT, 2) == theirs


def test_cluster_info_of_our_mirror_counts_like_redis(redis_cluster: RedisCluster) -> None:
    theirs = _text(call(redis_cluster.master, b"CLUSTER", b"INFO"))
    mine = _text(ours(run(mirror(redis_cluster), b"INFO"), 2))
    keep = ("cluster_state", "cluster_slots_", "cluster_known_nodes", "cluster_size")

    def pick(text: str) -> list[str]:
        return [line for line in text.split("\r\n") if line.startswith(keep)]

    assert pick(mine) == pick(theirs)
