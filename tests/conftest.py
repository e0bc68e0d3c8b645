"""Shared by the whole test suite: `--run-slow` enables tests marked `slow`, and a real
redis-server for the tests that compare Cairn's bytes with Redis'."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--run-slow`: also run long sweeps and soaks (marker `slow`)."""
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="run tests marked slow (long simulation sweeps)",
    )


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist (`--dist loadgroup`): a module's tests run on one
    worker, so its module-scoped cluster starts once; the chaos runs, each a cluster of
    real processes under faults, run one after another on one worker, never two at once.
    Skip `slow` tests unless `--run-slow` was given."""
    for item in items:
        path = item.path.as_posix()
        group = "chaos" if "/tests/chaos/" in path else path
        item.add_marker(pytest.mark.xdist_group(name=group))
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
