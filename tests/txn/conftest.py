"""Fixtures of the coordinator tests."""

from __future__ import annotations

import sys
from pathlib import Path

# The harness next to these tests imports as a top-level module.
sys.path.insert(0, str(Path(__file__).parent))
