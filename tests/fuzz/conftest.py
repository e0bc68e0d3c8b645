"""The fuzz tests import their helpers (and the cluster fixture of tests/runtime) as
top-level modules."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "runtime"))
