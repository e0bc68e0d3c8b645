"""CONFIG REWRITE's file edit: the node's `[redis]` table replaced, the rest kept byte
for byte, atomically and mode 0600; the table read back at load time."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from cairn.runtime.config import ConfigError, from_mapping, load
from cairn.runtime.config_rewrite import (
    changed_values,
    rewrite_file,
    rewritten,
    saved_args,
    without_table,
)
from cairn.runtime.redis_config import RedisConfig

ORIGINAL = """# my node
node_id = 1
data_dir = "/tmp/x"   # keep this comment
insecure_peer_port = true
peer_addr = "127.0.0.1:16379"
peers = { 1 = "127.0.0.1:16379" }

[redis]
maxmemory-policy = "allkeys-lru"

[limits]
max_clients = 100
"""


def test_the_table_is_replaced_and_the_rest_kept() -> None:
    text = rewritten(ORIGINAL, {"hz": "20", "save": ""})
    assert text.startswith('# my node\nnode_id = 1\ndata_dir = "/tmp/x"   # keep this comment\n')
    assert "[limits]\nmax_clients = 100\n" in text
    assert "allkeys-lru" not in text
    parsed = tomllib.loads(text)
    assert parsed["redis"] == {"hz": "20", "save": ""}
    assert parsed["limits"] == {"max_clients": 100}
    assert rewritten(text, {}) == without_table(ORIGINAL)
    assert rewritten(rewritten(text, {"hz": "20", "save": ""}), {"hz": "20", "save": ""}) == text


def test_values_are_quoted_safely() -> None:
    tricky = {"requirepass": 'a"b\\c\nd', "notify-keyspace-events": ""}
    parsed = tomllib.loads(rewritten("node_id = 1\n", tricky))
    assert parsed["redis"] == tricky


def test_rewrite_file_is_atomic_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(ORIGINAL.replace("/tmp/x", str(tmp_path / "data")))
    path.chmod(0o644)
    assert rewrite_file(path, {"maxmemory-policy": "volatile-lfu", "hz": "15"}) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["node.toml"]  # no temporary file left
    config = load(path)
    assert config.config_file == path.resolve()
    assert config.redis_params == {"maxmemory-policy": "volatile-lfu", "hz": "15"}
    assert config.limits.max_clients == 100


def test_a_broken_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("node_id = = 1\n")
    error = rewrite_file(path, {"hz": "15"})
    assert error is not None and error.message.startswith("ERR Rewriting config file")
    assert path.read_text() == "node_id = = 1\n"


def test_only_changed_values_are_saved_and_saved_values_apply() -> None:
    config = from_mapping(
        {
            "node_id": 1,
            "data_dir": "/tmp/x",
            "insecure_peer_port": True,
            "peers": {"1": "127.0.0.1:16379"},
        }
    )
    base = RedisConfig.for_node(config)
    current = RedisConfig.for_node(config)
    assert current.set([b"hz", b"25", b"maxmemory-policy", b"allkeys-lfu"], None) is None
    changed = changed_values(current.values, base.values)
    assert changed == {"hz": "25", "maxmemory-policy": "allkeys-lfu"}
    args = saved_args(changed)
    assert isinstance(args, list)
    assert base.set(args, None) is None and base.values == current.values
    with pytest.raises(ConfigError):
        from_mapping({"node_id": 1, "data_dir": "/x", "redis": {"hz": 5}})
