"""History recording and linearizability checking for Cairn's tests, simulator and chaos runs.

`history` defines the shared event format (`Op`, JSON lines), `linearizability` checks a
history against the key-value register of `model`, and `synth` builds histories for tests
and benchmarks. Pure: no I/O, no clock, no global random source.
"""

from cairn.check.history import HistoryError, Op, Operation, OpType, read_jsonl, write_jsonl
from cairn.check.linearizability import (
    DEFAULT_MAX_STATES,
    KeyStats,
    Outcome,
    Verdict,
    check_history,
)

__all__ = [
    "DEFAULT_MAX_STATES",
    "HistoryError",
    "KeyStats",
    "Op",
    "OpType",
    "Operation",
    "Outcome",
    "Verdict",
    "check_history",
    "read_jsonl",
    "write_jsonl",
]
