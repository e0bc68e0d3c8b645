"""`cairn ctl backup` and `cairn ctl restore` against real clusters, and CLIENT PAUSE.

One 3-node, 3-region source cluster for the module; a backup taken while a thread keeps
writing is restored into a fresh 1-node cluster and compared key by key; damaged copies of
the backup are refused, naming the file.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from cairn.admin.backup_api import MAX_HANDLES
from cairn.admin.client import AdminClient, ApiError
from cairn.cli import backup as backup_cli
from cairn.cli.backup import PAUSE_TIMEOUT_MS
from cairn.cli.backup_format import MANIFEST
from cairn.cli.main import main
from cairn.runtime.local_cluster import HOST, LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from cluster_fixture import client, running_cluster

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("src"), settings={"initial_regions": 3}) as c:
        yield c


def _ctl_args(cluster: LocalCluster) -> list[str]:
    endpoints = [a for s in cluster.specs for a in ("-e", f"{HOST}:{s.admin_port}")]
    return ["ctl", *endpoints, "--token", str(cluster.admin_token)]


def _fill(r: redis.Redis) -> list[bytes]:
    """One key of every type (some with a TTL, some in the same slot), their names."""
    r.set("s:plain", "v" * 100)
    r.set("s:int", 12345)
    r.set("s:ttl", "x", px=HOUR_MS)
    r.hset("h:small", mapping={"a": "1", "b": "2"})
    r.hset("h:big", mapping={f"f{i}": "v" * i for i in range(200)})
    r.rpush("l:list", *[f"e{i}" for i in range(50)])
    r.sadd("set:ints", *range(20))
    r.sadd("set:strs", *[f"m{i}" for i in range(300)])
    r.zadd("z:small", {"a": 1.5, "b": -2, "c": 3})
    r.zadd("z:big", {f"m{i}": i / 3 for i in range(200)})
    r.pexpire("h:small", HOUR_MS)
    r.pexpire("z:big", HOUR_MS)
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.set(f"{{tag}}:k{i}", i)
    pipe.execute()
    for i in range(30):
        r.xadd("x:stream", {"f": f"v{i}"})
    r.xgroup_create("x:stream", "g", id="0")
    r.xreadgroup("g", "c", {"x:stream": ">"}, count=5)
    return sorted(r.keys("*"))


class _Writer(threading.Thread):
    """Writes w:<i> = i until stopped, recording when each write was acknowledged."""

    def __init__(self, r: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.r = r
        self.acked: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self.r.set(f"w:{i}", i)
            except redis.RedisError:
                continue  # not acknowledged: not expected in the backup
            self.acked.append((i, time.monotonic()))
            i += 1


def test_backup_under_load_restores_every_acknowledged_key(
    source: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup_cli, "CHUNK_KEYS", 7)  # many chunks per region
    r = client(source, 1)
    names = _fill(r)
    pipe = r.pipeline(transaction=False)
    for k in names:
        pipe.dump(k)
    dumps = dict(zip(names, pipe.execute(), strict=True))
    writer = _Writer(client(source, 2))
    writer.start()
    _wait(lambda: len(writer.acked) >= 20)
    started = time.monotonic()
    result = CliRunner().invoke(main, [*_ctl_args(source), "backup", str(tmp_path / "b")])
    ended = time.monotonic()
    _wait(lambda: writer.acked[-1][1] > ended)  # writes go on after the backup
    writer.stop.set()
    writer.join(5)
    assert result.exit_code == 0, result.output
    assert "backed up" in result.output and "writes paused" in result.output
    assert "not copied" not in result.output  # every type serializes, streams included
    before = [i for i, at in writer.acked if at < started]
    assert len(before) >= 20

    backup = tmp_path / "b"
    cut = json.loads((backup / MANIFEST).read_text())["cut"]
    assert cut["nodes"] == [1, 2, 3] and cut["drained"] is True and cut["pause_ms"] > 0
    _refused_when_damaged(backup, tmp_path)
    with running_cluster(tmp_path / "dst", nodes=1) as target:
        to = f"{HOST}:{target.spec(1).client_port}"
        args = ["ctl", "restore", str(backup), "--to", to]
        args += ["--password", target.password] if target.password else []
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        t = client(target, 1)
        for key in dumps:  # every preloaded key, byte for byte, with its TTL
            assert t.dump(key) == dumps[key], key
            assert (t.pttl(key) > HOUR_MS - 120_000) == (r.pttl(key) > 0), key
        values = t.mget([f"w:{i}" for i in before])
        missing = [i for i, v in zip(before, values, strict=True) if v != str(i).encode()]
        assert missing == [], f"acknowledged before the backup but not restored: {missing}"
        again = CliRunner().invoke(main, args)  # the target now holds keys
        assert again.exit_code == 2 and "--force" in again.output


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _refused_when_damaged(backup: Path, tmp_path: Path) -> None:
    """A flipped byte, a truncated file and an edited manifest are each refused, naming
    what is damaged, before anything is written (the target is not even contacted)."""
    data = sorted(p.name for p in backup.glob("region-*.cbk"))
    assert len(data) == 3
    cases = {
        "flip": lambda d: _flip(d / data[1]),
        "cut": lambda d: _truncate(d / data[2]),
        "manifest": lambda d: (d / MANIFEST).write_text(
            (d / MANIFEST).read_text().replace('"keys": ', '"keys": 1', 1)
        ),
    }
    expected = {"flip": data[1], "cut": data[2], "manifest": MANIFEST}
    for name, damage in cases.items():
        copy = tmp_path / name
        shutil.copytree(backup, copy)
        damage(copy)
        args = ["ctl", "restore", str(copy), "--to", f"{HOST}:1"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "damaged" in result.output and expected[name] in result.output, result.output


def _flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 7])


def test_client_pause_write_holds_writes_not_reads(source: LocalCluster) -> None:
    admin, other = client(source, 3), client(source, 3)
    other.set("p:key", "before")
    assert admin.execute_command("CLIENT", "PAUSE", "400", "WRITE") == b"OK"
    started = time.monotonic()
    assert other.get("p:key") == b"before"
    assert time.monotonic() - started < 0.3
    other.set("p:key", "after")  # held until the pause ends
    assert time.monotonic() - started >= 0.35
    admin.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
    unpause = threading.Timer(0.2, lambda: admin.execute_command("CLIENT", "UNPAUSE"))
    unpause.start()
    started = time.monotonic()
    other.set("p:key", "unpaused")
    assert 0.15 <= time.monotonic() - started < 2
    unpause.join()
    assert other.get("p:key") == b"unpaused"
    with pytest.raises(redis.ResponseError, match="CLIENT PAUSE mode must be WRITE or ALL"):
        admin.execute_command("CLIENT", "PAUSE", "10", "READ")
    with pytest.raises(redis.ResponseError, match="timeout is negative"):
        admin.execute_command("CLIENT", "PAUSE", "-1")


def test_backup_endpoints_refuse_bad_requests(source: LocalCluster) -> None:
    port = source.spec(1).admin_port
    admin = AdminClient([f"{HOST}:{port}"], token=source.admin_token)

    def refused(path: str, body: dict[str, object]) -> tuple[int, str]:
        with pytest.raises(ApiError) as info:
            admin.request("POST", path, body)
        return info.value.status, info.value.message

    assert refused("/v1/backup/chunk", {"handle": "nope", "region": 1})[0] == 404
    assert refused("/v1/backup/open", {"lifetime_s": "x"})[0] == 400
    assert refused("/v1/backup/pause", {"timeout_ms": 10**9})[0] == 400
    opened = [admin.request("POST", "/v1/backup/open", {}) for _ in range(MAX_HANDLES)]
    handles = [o["handle"] for o in opened]
    try:
        assert refused("/v1/backup/open", {})[0] == 429
        led = [r["id"] for r in opened[0]["regions"]]
        region = led[0] if led else 1
        body = {"handle": handles[0], "region": region, "cursor": 99}
        status, message = refused("/v1/backup/chunk", body)
        assert (status, "is not current" in message) == ((400, True) if led else (404, False))
    finally:
        for h in handles:
            admin.request("POST", "/v1/backup/close", {"handle": h})
    assert refused("/v1/backup/close", {"handle": handles[0]})[0] == 404


def test_backup_refuses_without_every_nodes_endpoint(source: LocalCluster, tmp_path: Path) -> None:
    two = [a for n in (1, 2) for a in ("-e", f"{HOST}:{source.spec(n).admin_port}")]
    args = ["ctl", *two, "--token", str(source.admin_token), "backup", str(tmp_path / "b")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "node(s) [3]" in result.output, result.output
    r = client(source, 3)  # and nothing stays paused: a pause would hold this write for
    started = time.monotonic()  # PAUSE_TIMEOUT_MS (10 s); a busy machine may take a few
    r.set("after-refusal", 1)
    assert time.monotonic() - started < PAUSE_TIMEOUT_MS / 1000 / 2
