"""The replicated KV state machine."""

from __future__ import annotations

from cairn.sim.kv_machine import KVCommand, KVMachine, KVOp


def apply(m: KVMachine, index: int, cmd: KVCommand) -> object:
    return m.apply(index, cmd.encode())


def test_put_append_cas_semantics() -> None:
    m = KVMachine()
    assert apply(m, 1, KVCommand(KVOp.APPEND, "k", "a;")) is None
    assert m.get("k") == "a;"
    assert apply(m, 2, KVCommand(KVOp.CAS, "k", "x", expected="nope")) is False
    assert apply(m, 3, KVCommand(KVOp.CAS, "k", "x", expected="a;")) is True
    assert apply(m, 4, KVCommand(KVOp.CAS, "j", "y", expected=None)) is True
    apply(m, 5, KVCommand(KVOp.PUT, "k", "z"))
    assert (m.get("k"), m.get("j"), m.get("missing")) == ("z", "y", None)


def test_snapshot_round_trip_is_canonical() -> None:
    a, b = KVMachine(), KVMachine()
    apply(a, 1, KVCommand(KVOp.PUT, "x", "1"))
    apply(a, 2, KVCommand(KVOp.PUT, "y", "2"))
    apply(b, 1, KVCommand(KVOp.PUT, "y", "2"))
    apply(b, 2, KVCommand(KVOp.PUT, "x", "1"))
    assert a.snapshot() == b.snapshot()
    c = KVMachine()
    c.restore(a.snapshot())
    assert c.data == {"x": "1", "y": "2"} and c.applied_index == 2
