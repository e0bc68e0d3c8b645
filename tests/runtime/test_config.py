"""Node configuration: TOML parsing, overrides, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.runtime.config import ConfigError, from_mapping, load

BASE = {
    "node_id": 1,
    "data_dir": "/tmp/x",
    "client_addr": "127.0.0.1:7001",
    "peer_addr": "127.0.0.1:17001",
    "peers": {"1": "127.0.0.1:17001", "2": "127.0.0.1:17002"},
    "cluster_secret": "a-test-secret-of-enough-bytes",
}


def test_a_complete_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        'node_id = 2\ndata_dir = "d"\nclient_addr = "127.0.0.1:7002"\n'
        'peer_addr = "127.0.0.1:17002"\npassword = "s3cret"\ninsecure_peer_port = true\n'
        '[peers]\n1 = "127.0.0.1:17001"\n2 = "127.0.0.1:17002"\n'
        '[raft]\ntick_ms = 5\nread_mode = "readindex"\n[limits]\nmax_clients = 7\n'
    )
    cfg = load(path)
    assert cfg.node_id == 2
    assert cfg.client_addr == ("127.0.0.1", 7002)
    assert cfg.peers == {1: ("127.0.0.1", 17001), 2: ("127.0.0.1", 17002)}
    assert cfg.raft.tick_ms == 5 and cfg.raft.read_mode == "readindex"
    assert cfg.limits.max_clients == 7
    assert cfg.password == "s3cret"
    assert cfg.redirect == "auto" and cfg.advertised_client_addr == ("127.0.0.1", 7002)
    moved = from_mapping({**BASE, "advertise_client_addr": "10.1.2.3:7001", "redirect": "never"})
    assert moved.advertised_client_addr == ("10.1.2.3", 7001) and moved.redirect == "never"
    assert cfg.admin_addr == ("127.0.0.1", 27002)  # the client port + 20000
    assert from_mapping({**BASE, "admin_addr": "off"}).admin_addr is None
    assert from_mapping({**BASE, "admin_addr": "0.0.0.0:9000"}).admin_addr == ("0.0.0.0", 9000)


def test_initial_regions_defaults_to_one_and_is_read() -> None:
    assert from_mapping(BASE).initial_regions == 1
    assert from_mapping({**BASE, "initial_regions": 1000}).initial_regions == 1000


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    text = 'node_id = 1\ndata_dir = "d"\ninsecure_peer_port = true\n[peers]\n1 = "127.0.0.1:1"\n'
    path.write_text(text)
    assert load(path, {"log_level": "debug", "password": None}).log_level == "debug"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"node_id": 0}, "node_id: must be a positive integer"),
        ({"node_id": "one"}, "node_id: expected an integer"),
        ({"client_addr": "localhost"}, "client_addr: expected 'host:port'"),
        ({"peer_addr": "h:port"}, "peer_addr: port 'port' is not a number"),
        ({"peers": {"x": "h:1"}}, "peers.x: node ids must be integers"),
        ({"peers": {"2": "h:1"}}, "peers: must list this node (1)"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"raft": {"tick_ms": 0}}, "raft.tick_ms: must be a positive integer"),
        ({"raft": {"tick_ms": "5"}}, "raft.tick_ms: expected int"),
        ({"raft": {"read_mode": "fast"}}, "raft.read_mode: expected 'lease' or 'readindex'"),
        ({"raft": {"heartbeat_ticks": 200}}, "raft.heartbeat_ticks: must be smaller"),
        ({"raft": {"nope": 1}}, "raft.nope: unknown key"),
        ({"limits": {"max_clients": -1}}, "limits.max_clients: must be a positive integer"),
        ({"log_level": "loud"}, "log_level: unknown level"),
        ({"password": ""}, "password: expected a non-empty string"),
        ({"redirect": "sometimes"}, "redirect: expected one of auto, always, never"),
        ({"redirect": 1}, "redirect: expected a string"),
        ({"advertise_client_addr": "nohost"}, "advertise_client_addr: expected 'host:port'"),
        ({"admin_addr": "x"}, "admin_addr: expected 'host:port'"),
        ({"client_addr": "127.0.0.1:50000"}, "admin_addr: the client port .* is over 65535"),
        ({"initial_regions": 0}, "initial_regions: must be in 1..16384"),
        ({"initial_regions": 16385}, "initial_regions: must be in 1..16384"),
        ({"initial_regions": "8"}, "initial_regions: expected an integer"),
        ({"initial_regions": True}, "initial_regions: expected an integer"),
        ({"peers": {"1": "h:1", "1000": "h:2"}}, "peers: node ids must be below 1000"),
    ],
)
def test_bad_values_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_mapping({**BASE, **change})


def test_missing_required_keys_are_named() -> None:
    with pytest.raises(ConfigError, match="data_dir: required"):
        from_mapping({"node_id": 1})


def test_unreadable_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("node_id = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
