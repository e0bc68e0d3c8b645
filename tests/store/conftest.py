"""Fixtures of the store tests."""

from __future__ import annotations

import sys
from pathlib import Path

# The helpers next to these tests (store_script, store_harness) import as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
