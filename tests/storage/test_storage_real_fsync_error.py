"""A real failed fsync (EIO from fdatasync, injected under LMDB with an LD_PRELOAD shim)
fails the environment for good: the sync raises `DiskFailedError`, and no later write,
commit or sync on it succeeds, for the log and the keyspace alike.

Before the fix py-lmdb's plain `lmdb.Error` slipped past the disk-error handling: the
environment stayed healthy and the next write and sync went through.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHIM_SOURCE = Path(__file__).with_name("data") / "fail_fsync.c"

PROBE = r"""
import json, sys
from pathlib import Path
from cairn.storage import DiskFailedError, LmdbEnv, LmdbOptions
from cairn.storage.lmdb_keyspace import LmdbKeyspace

data, flag = Path(sys.argv[1]), Path(sys.argv[2])
env = LmdbEnv.open(data, 1, "test", LmdbOptions(map_size=64 << 20))
space = LmdbKeyspace(env)
seen = {}

def attempt(name, action):
    try:
        action()
        seen[name] = "ok"
    except DiskFailedError as exc:
        seen[name] = "DiskFailedError: " + str(exc)
    except Exception as exc:
        seen[name] = type(exc).__name__ + ": " + str(exc)

def put(key):
    batch = space.begin()
    batch.put(key, b"v")
    batch.commit()

attempt("healthy write", lambda: put(b"a"))
attempt("healthy sync", env.sync)
flag.touch()
attempt("write before the failing sync", lambda: put(b"b"))
attempt("failing sync", env.sync)
flag.unlink()
attempt("write after", lambda: put(b"c"))
attempt("sync after", env.sync)
seen["failed"] = env.failed is not None
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim, compiled with the system C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("a C compiler is needed to build the fsync shim (apt-get install gcc)")
    out = tmp_path_factory.mktemp("shim") / "fail_fsync.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(out), str(SHIM_SOURCE), "-ldl"], check=True
    )
    return out


def test_a_real_eio_from_fdatasync_fails_the_environment(shim: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LD_PRELOAD": str(shim), "CAIRN_FAIL_FSYNC_WHEN": str(tmp_path / "f")}
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "data"), str(tmp_path / "f")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(run.stdout)
    assert seen["healthy write"] == "ok" and seen["healthy sync"] == "ok"
    assert seen["write before the failing sync"] == "ok", "a commit is not a sync"
    assert seen["failing sync"].startswith("DiskFailedError: fsync failed"), seen
    assert "Input/output error" in seen["failing sync"]
    assert seen["failed"] is True
    assert seen["write after"].startswith("DiskFailedError"), seen
    assert seen["sync after"].startswith("DiskFailedError"), seen
