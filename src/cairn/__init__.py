"""Cairn: a strongly consistent, self-healing, sharded key-value and stream store."""

__version__ = "0.1.0"
