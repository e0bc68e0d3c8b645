"""Fixtures of the real-process tests: a redis-server to compare with, Cairn clusters."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# Helpers next to these tests and the store's script tools import as top-level modules.
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "store"))


@pytest.fixture(scope="module")
def redis_server_port() -> Iterator[int]:
    """A real redis-server on a free loopback port, stopped by PID afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait()
