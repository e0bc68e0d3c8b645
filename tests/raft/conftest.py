"""Pytest options and fixtures of the Raft core tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers next to these tests (datadriven, interaction_env) import as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--rewrite`: overwrite the expected outputs of golden files with the actual ones."""
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite the expected output of datadriven golden files (tests/raft/testdata)",
    )


@pytest.fixture
def rewrite(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are rewritten instead of checked."""
    return bool(request.config.getoption("rewrite"))
