"""The chaos runner's parts without a cluster: schedule, checks, proxies, corruption, report."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from cairn.chaos import corruption
from cairn.chaos.faults import ALL_FAULTS, BASIC_FAULTS, FaultKind, schedule
from cairn.chaos.proxy import ProxyMesh
from cairn.chaos.workload import CounterWorkload, History, SetWorkload
from cairn.check.history import OpType
from cairn.env import LogBatch
from cairn.raft.types import ConfState, Entry
from cairn.storage.errors import StartupError
from cairn.storage.log_store import LmdbLogStore


def test_the_schedule_depends_only_on_the_seed() -> None:
    a = schedule(7, 120, ALL_FAULTS)
    assert a == schedule(7, 120, ALL_FAULTS)
    assert a != schedule(8, 120, ALL_FAULTS)
    assert {p.kind for p in a} == ALL_FAULTS  # every kind once per round
    assert all(p.at + p.duration < 117 for p in a)
    starts = [p.at for p in a]
    assert starts == sorted(starts)
    assert {p.kind for p in schedule(1, 60, BASIC_FAULTS)} == BASIC_FAULTS


def _record(h: History, process: int, kind: OpType, f: str, key: str, value: object) -> None:
    h.record(process, kind, f, key, value)
    time.sleep(0.0005)


def test_the_set_check_finds_a_lost_add_and_a_phantom() -> None:
    w = SetWorkload([("127.0.0.1", 1)])
    h = w.history
    for i, elem in enumerate(("a", "b", "c")):
        _record(h, i, OpType.INVOKE, "add", "set:0", elem)
        _record(h, i, OpType.OK, "add", "set:0", elem)
    assert w.check({"set:0": ["a", "b", "c"]}).ok
    result = w.check({"set:0": ["a", "c", "z"]})
    assert not result.ok and result.lost == 1
    assert any("lacks 1 acknowledged" in a for a in result.anomalies)
    assert any("never added" in a for a in result.anomalies)


def test_the_counter_check_bounds_reads_and_the_final_value() -> None:
    w = CounterWorkload([("127.0.0.1", 1)])
    h = w.history
    for p in range(3):
        _record(h, p, OpType.INVOKE, "incr", "counter", "1")
        _record(h, p, OpType.OK if p < 2 else OpType.INFO, "incr", "counter", p + 1)
    _record(h, 9, OpType.INVOKE, "read", "counter", None)
    _record(h, 9, OpType.OK, "read", "counter", 1)  # two increments were acknowledged before
    result = w.check(2)
    assert any("saw 1, expected 2..3" in a for a in result.anomalies)
    assert w.check(4).anomalies[0].startswith("final value 4, expected 2..3")  # kept first
    assert w.check(1).lost == 1
    assert not any("vanished" in a for a in result.anomalies)


def test_the_counter_check_counts_losses_that_incr_replies_show() -> None:
    # Five acknowledged increments, then the counter restarts from 2: three vanished, and
    # the check says so even when the final read failed (None) or was inflated by
    # increments that were reported failed yet took effect.
    w = CounterWorkload([("127.0.0.1", 1)])
    h = w.history
    for p, reply in enumerate((1, 2, 3, 4, 5, 3, 4)):
        _record(h, p, OpType.INVOKE, "incr", "counter", "1")
        _record(h, p, OpType.OK, "incr", "counter", reply)
    for final in (None, 7, 4):
        result = w.check(final)
        assert not result.ok and result.lost == 3, final
        assert any("returned 3 after an INCR acknowledged 5" in a for a in result.anomalies)


def test_the_counter_workload_records_what_incr_returned(redis_server_port: int) -> None:
    # Against one real redis-server nothing is lost: every INCR reply is a distinct count,
    # and the check (which compares replies across operations) finds nothing.
    w = CounterWorkload([("127.0.0.1", redis_server_port)], workers=3, key="counter:parts")
    w.start()
    time.sleep(0.5)
    w.stop()
    with w.client(("127.0.0.1", redis_server_port)) as client:
        result = w.check(w.final_read(client))
    replies = [op.value for op in w.history.snapshot() if op.type is OpType.OK and op.f == "incr"]
    assert len(replies) > 10 and len(set(replies)) == len(replies)
    assert all(isinstance(r, int) for r in replies)
    assert result.ok and result.lost == 0, result.anomalies


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def _echo(conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):  # the proxy resets connections it closes
        while data := conn.recv(4096):
            conn.sendall(data)


def _round_trip(port: int, timeout: float = 5.0) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        started = time.monotonic()
        s.sendall(b"ping")
        assert s.recv(16) == b"ping"
        return time.monotonic() - started


def test_proxies_delay_block_and_heal() -> None:
    server, port = _echo_server()
    mesh = ProxyMesh()
    try:
        proxy = mesh.add(1, 2, ("127.0.0.1", port))
        assert _round_trip(proxy.port) < 0.1
        mesh.link(1, 2).delay = 0.15
        assert _round_trip(proxy.port) >= 0.15
        mesh.clear()
        mesh.link(2, 1).blocked = True  # replies cannot come back
        with pytest.raises(TimeoutError):
            _round_trip(proxy.port, timeout=0.5)
        mesh.clear()
        assert _round_trip(proxy.port) < 0.1
    finally:
        mesh.close()
        server.close()


def _a_log(path: Path) -> None:
    store = LmdbLogStore.open(path, 1, "c")
    store.bootstrap(ConfState(voters=(1,)))
    entries = tuple(Entry(term=1, index=i, data=b"x" * 40 + bytes([i])) for i in range(2, 40))
    store.write(LogBatch(entries=entries), sync=True)
    store.close()


def test_a_flipped_bit_in_the_log_is_refused_at_open(tmp_path: Path) -> None:
    _a_log(tmp_path)
    damage = corruption.flip_log_bit(tmp_path, random.Random(1))
    assert "inside log entry" in damage
    with pytest.raises(StartupError, match="checksum"):
        LmdbLogStore.open(tmp_path, 1, "c")


def test_a_damaged_directory_is_restored_from_its_backup(tmp_path: Path) -> None:
    data, spare = tmp_path / "d", tmp_path / "b"
    _a_log(data)
    corruption.backup(data, spare)
    corruption.truncate_data_file(data, random.Random(2))
    corruption.restore(data, spare)
    LmdbLogStore.open(data, 1, "c").close()


def test_every_fault_kind_has_a_handler() -> None:
    from cairn.chaos.faults import REGION_FAULTS
    from cairn.chaos.region_faults import RegionFaults
    from cairn.chaos.runner import ChaosRun

    for kind in ALL_FAULTS:
        assert hasattr(ChaosRun, "_fault_" + kind.value.replace("-", "_")), kind
    regions = RegionFaults(None, random.Random(1))  # type: ignore[arg-type]
    for kind in REGION_FAULTS:
        assert callable(regions.handler(kind)), kind


def test_region_faults_are_their_own_group() -> None:
    from cairn.chaos.faults import PLACEMENT_FAULTS, REGION_FAULTS
    from cairn.chaos.runner import REGION_RUN_KEYS, ChaosConfig
    from cairn.cli.chaos_cmd import parse_faults
    from cairn.store.slot import key_slot

    assert not REGION_FAULTS & ALL_FAULTS
    assert frozenset(FaultKind) == ALL_FAULTS | REGION_FAULTS | PLACEMENT_FAULTS
    assert parse_faults("basic,regions") == BASIC_FAULTS | REGION_FAULTS
    assert parse_faults("kill,split") == {FaultKind.KILL, FaultKind.SPLIT}
    assert ChaosConfig(Path("x"), faults=BASIC_FAULTS).founding_regions == 1
    regional = ChaosConfig(Path("x"), faults=frozenset({FaultKind.MOVE}))
    assert regional.region_faults and regional.founding_regions == 4
    assert ChaosConfig(Path("x"), regions=6).founding_regions == 6
    # the register keys of a run with regions lie in each quarter of the slots
    assert sorted(key_slot(k.encode()) * 4 // 16384 for k in REGION_RUN_KEYS) == [0, 1, 2, 3]


def test_the_leader_is_the_lowest_regions_as_its_leader_says() -> None:
    from cairn.chaos.cluster import ChaosCluster

    views: dict[int, dict[int, int] | None] = {
        1: {1: 2, 2: 1},
        2: {1: 2},
        3: {1: 0, 3: 3},  # a removed replica of region 1 that knows no leader
        4: {3: 3},
        5: None,  # does not answer
    }
    cluster = ChaosCluster(Path("x"), 5, network=None)  # type: ignore[arg-type]
    cluster.region_leaders = views.get  # type: ignore[assignment, method-assign]
    cluster.running = lambda n: True  # type: ignore[method-assign]
    assert cluster.leader() == 2
    views[2] = {1: 1}  # no agreement on region 1: region 2's leader, by its own word
    assert cluster.leader() == 1
    views[3] = views[4] = None  # a minority answers
    assert cluster.leader() is None
