"""The real-process tests import their helpers as top-level modules."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
# Helpers next to these tests and the store's script tools import as top-level modules.
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "store"))
