"""Shards (regions): a replica is a Raft node plus its state machine, driven through `Env`."""
