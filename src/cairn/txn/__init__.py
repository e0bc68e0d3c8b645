"""Cross-region transactions, the coordinator's side (pure): `Coordinator` runs one
transaction over several regions, `Resolver` clears the locks others left
(docs/transactions.md)."""

from cairn.txn.coordinator import (
    Coordinator,
    Scratch,
    TimestampSource,
    TxnIO,
    TxnSettings,
    transaction_keys,
)
from cairn.txn.protocol import Conflict, Effect, Loaded, read_locked_error
from cairn.txn.resolver import Resolver

__all__ = [
    "Conflict",
    "Coordinator",
    "Effect",
    "Loaded",
    "Resolver",
    "Scratch",
    "TimestampSource",
    "TxnIO",
    "TxnSettings",
    "read_locked_error",
    "transaction_keys",
]
