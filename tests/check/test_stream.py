"""The stream check: a clean hand-made history, one per anomaly, the unknown cases the check
must allow, and a property test against a simulated stream and group (correct, or with a
planted fault)."""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.check.history import HistoryError, Op, OpType
from cairn.check.stream import AnomalyKind, StreamFinal, StreamVerdict, check_stream, parse_id

OK, FAIL, INFO = OpType.OK, OpType.FAIL, OpType.INFO
S = 1_000_000_000


@dataclass
class H:
    """A hand-made history: operations as intervals (seconds), rendered as `Op` events."""

    ops: list[tuple[int, int, Op]] = field(default_factory=list)
    _process: int = 0

    def op(self, f: str, arg: object, done: object, start: float, end: float | None,
           outcome: OpType = OK, key: str = "s") -> H:  # fmt: skip
        self._process += 1
        p, t0 = self._process, int(start * S)
        self.ops.append((t0, 0, Op(p, OpType.INVOKE, f, key, arg, t0)))
        if end is not None:
            t = int(end * S)
            self.ops.append((t, 1, Op(p, outcome, f, key, done, t)))
        return self

    def add(self, payload: str, i: str | None, start: float, end: float | None = None,
            outcome: OpType = OK) -> H:  # fmt: skip
        return self.op("xadd", payload, i, start, start + 0.1 if end is None else end, outcome)

    def read(self, consumer: str, got: list[tuple[str, str]], start: float, new: bool = True,
             outcome: OpType = OK) -> H:  # fmt: skip
        arg = [consumer, ">" if new else "0"]
        end = None if outcome is INFO else start + 0.1
        return self.op("xreadgroup", arg, [list(e) for e in got], start, end, outcome)

    def claim(self, consumer: str, got: list[tuple[str, str]], start: float) -> H:
        return self.op("xautoclaim", [consumer], [list(e) for e in got], start, start + 0.1)

    def ack(self, ids: list[str], count: int | None, start: float, outcome: OpType = OK) -> H:
        end = None if outcome is INFO else start + 0.1
        return self.op("xack", ids, count, start, end, outcome)

    def history(self) -> list[Op]:
        return [op for _, _, op in sorted(self.ops, key=lambda e: (e[0], e[1]))]

    def check(self, final: StreamFinal | None) -> StreamVerdict:
        return check_stream(self.history(), None if final is None else {"s": final})


def kinds(v: StreamVerdict) -> set[AnomalyKind]:
    return {a.kind for a in v.anomalies}


def clean() -> H:
    """a, b, c added; a delivered to c1 and acked, b delivered to c2 (pending), c unread."""
    return (
        H()
        .add("a", "1-0", 0)
        .add("b", "2-0", 1)
        .add("c", "3-0", 2)
        .read("c1", [("1-0", "a")], 1.5)
        .ack(["1-0"], 1, 1.7)
        .read("c2", [("2-0", "b")], 2.5)
    )


FINAL = StreamFinal([("1-0", "a"), ("2-0", "b"), ("3-0", "c")], [("2-0", "c2")], "2-0")


def test_a_clean_history_passes_with_its_figures() -> None:
    v = clean().check(FINAL)
    assert v.ok, [a.text for a in v.anomalies]
    s = v.stats
    assert (s.added, s.delivered, s.acked, s.final_pending, s.unread, s.lost) == (3, 2, 1, 1, 1, 0)
    assert s.describe().startswith("3 acknowledged XADDs")


def test_lost_and_duplicate_and_unexpected_in_the_final_stream() -> None:
    final = StreamFinal([("1-0", "a"), ("2-0", "b"), ("2-1", "b"), ("4-0", "zz")],
                        [("2-0", "c2")], "2-0")  # fmt: skip
    v = clean().check(final)
    assert kinds(v) == {AnomalyKind.LOST, AnomalyKind.DUPLICATE, AnomalyKind.UNEXPECTED}
    assert v.stats.lost == 1
    lost = next(a for a in v.anomalies if a.kind is AnomalyKind.LOST)
    assert lost.items == ("c",)


def test_final_ids_out_of_order() -> None:
    final = StreamFinal([("2-0", "b"), ("1-0", "a"), ("3-0", "c")], [("2-0", "c2")], "2-0")
    assert AnomalyKind.ID_ORDER in kinds(clean().check(final))


def test_an_id_reused_by_two_acknowledged_xadds() -> None:
    h = H().add("a", "1-0", 0).add("b", "1-0", 0.05)
    v = h.check(StreamFinal([("1-0", "a")]))
    assert AnomalyKind.ID_REUSED in kinds(v) and AnomalyKind.LOST in kinds(v)


def test_a_later_xadd_with_a_smaller_id() -> None:
    h = H().add("a", "5-0", 0).add("b", "4-0", 1)
    v = h.check(None)
    assert kinds(v) == {AnomalyKind.ID_ORDER}
    concurrent = H().add("a", "5-0", 0, 1).add("b", "4-0", 0.5, 1.5)
    assert concurrent.check(None).ok  # overlapping XADDs may be ordered either way


def test_a_payload_under_another_id() -> None:
    final = StreamFinal([("1-0", "a"), ("2-0", "b"), ("3-1", "c")], [("2-0", "c2")], "2-0")
    assert kinds(clean().check(final)) == {AnomalyKind.MISMATCH}
    wrong = clean().read("c3", [("3-0", "a")], 3)
    assert AnomalyKind.MISMATCH in kinds(wrong.check(None))


def test_new_delivered_twice() -> None:
    h = clean().read("c3", [("2-0", "b")], 3)
    assert kinds(h.check(None)) == {AnomalyKind.NEW_TWICE}
    pending = clean().read("c2", [("2-0", "b")], 3, new=False)
    assert pending.check(FINAL).ok  # re-reading one's own pending entry is fine


def test_acked_entry_delivered_again_or_pending_at_the_end() -> None:
    h = clean().read("c1", [("1-0", "a")], 3, new=False)
    assert kinds(h.check(None)) == {AnomalyKind.ACKED_PENDING}
    final = StreamFinal(FINAL.entries, [("1-0", "c1"), ("2-0", "c2")], "2-0")
    assert kinds(clean().check(final)) == {AnomalyKind.ACKED_PENDING}
    claimed = clean().claim("c3", [("1-0", "a")], 4)
    assert kinds(claimed.check(None)) == {AnomalyKind.ACKED_PENDING}


def test_an_unknown_xack_may_or_may_not_have_removed_the_entry() -> None:
    h = clean().ack(["2-0"], None, 3, INFO)
    assert h.check(FINAL).ok
    gone = StreamFinal(FINAL.entries, [], "2-0")
    assert h.check(gone).ok
    assert h.read("c2", [("2-0", "b")], 4, new=False).check(FINAL).ok


def test_pel_lost_at_the_end_or_by_an_xack_returning_zero() -> None:
    final = StreamFinal(FINAL.entries, [], "2-0")
    v = clean().check(final)
    assert kinds(v) == {AnomalyKind.PEL_LOST}
    zero = clean().ack(["2-0"], 0, 3)
    assert AnomalyKind.PEL_LOST in kinds(zero.check(None))
    raced = clean().ack(["2-0"], 1, 3).ack(["2-0"], 0, 3.05)
    assert raced.check(StreamFinal(FINAL.entries, [], "2-0")).ok


def test_pel_holding_what_nobody_was_given() -> None:
    final = StreamFinal(FINAL.entries, [("2-0", "c1")], "2-0")
    assert kinds(clean().check(final)) == {AnomalyKind.PEL_UNEXPECTED}
    final = StreamFinal(FINAL.entries, [("2-0", "c2"), ("3-0", "c4")], "3-0")
    assert kinds(clean().check(final)) == {AnomalyKind.PEL_UNEXPECTED}
    unknown = clean().read("c4", [], 3, outcome=INFO)
    assert unknown.check(final).ok  # c4's unknown read may have taken c


def test_the_group_passing_an_entry_it_never_delivered() -> None:
    final = StreamFinal(FINAL.entries, [("2-0", "c2")], "3-0")
    v = clean().check(final)
    assert kinds(v) == {AnomalyKind.UNDELIVERED}
    assert v.anomalies[0].items == ("3-0",)


def test_unknown_and_failed_xadds() -> None:
    h = clean().add("d", None, 3, None, INFO).add("e", None, 4, 4.1, FAIL)
    assert h.check(FINAL).ok
    present = StreamFinal([*FINAL.entries, ("5-0", "d")], FINAL.pending, "2-0")
    v = h.check(present)
    assert v.ok and v.stats.recovered == 1
    twice = StreamFinal([*FINAL.entries, ("5-0", "d"), ("6-0", "d")], FINAL.pending, "2-0")
    assert kinds(h.check(twice)) == {AnomalyKind.DUPLICATE}
    failed = StreamFinal([*FINAL.entries, ("5-0", "e")], FINAL.pending, "2-0")
    assert kinds(h.check(failed)) == {AnomalyKind.UNEXPECTED}


def test_malformed_histories_are_rejected() -> None:
    with pytest.raises(HistoryError, match="unknown function"):
        check_stream([Op(1, OpType.INVOKE, "xdel", "s", "a", 0)], None)
    with pytest.raises(HistoryError, match="payload"):
        check_stream([Op(1, OpType.INVOKE, "xadd", "s", 3, 0)], None)
    with pytest.raises(HistoryError, match="added twice"):
        H().add("a", "1-0", 0).add("a", "2-0", 1).check(None)
    with pytest.raises(HistoryError, match="bad stream id"):
        parse_id("12")


# --- property: a simulated stream and group --------------------------------------------------


def simulate(seed: int, fault: str | None) -> tuple[list[Op], dict[str, StreamFinal]]:
    """Random producers and consumers against a model stream and group; `fault` breaks it:
    `reuse` (an XADD after a "failover" reuses the last id), `ack-lost` (one XACK is
    forgotten), `pel-drop` (one delivered entry leaves the PEL)."""
    rng = Random(seed)
    entries: list[tuple[str, str]] = []
    pel: dict[str, str] = {}
    stuck: set[str] = set()
    last = "0-0"
    ops: list[Op] = []
    t = 0
    faulted = False
    for n in range(rng.randrange(5, 40)):
        t += 10
        roll = rng.random()
        p = n
        if roll < 0.45:
            i = f"{len(entries) + 1}-0"
            if fault == "reuse" and entries and not faulted and rng.random() < 0.3:
                i, faulted = entries[-1][0], True
            entries.append((i, f"p{n}"))
            ops += [Op(p, OpType.INVOKE, "xadd", "s", f"p{n}", t), Op(p, OK, "xadd", "s", i, t + 1)]
        elif roll < 0.75:
            consumer = rng.choice(["c1", "c2"])
            got = [e for e in entries if parse_id(e[0]) > parse_id(last)][: rng.randrange(1, 4)]
            for i, _ in got:
                pel[i] = consumer
            if got:
                last = got[-1][0]
            ops += [Op(p, OpType.INVOKE, "xreadgroup", "s", [consumer, ">"], t),
                    Op(p, OK, "xreadgroup", "s", [list(e) for e in got], t + 1)]  # fmt: skip
        elif set(pel) - stuck:
            i = rng.choice(sorted(set(pel) - stuck))
            forget = fault == "ack-lost" and not faulted
            faulted = faulted or forget
            if forget:
                stuck.add(i)  # acknowledged, yet left pending
            else:
                del pel[i]
            ops += [Op(p, OpType.INVOKE, "xack", "s", [i], t), Op(p, OK, "xack", "s", 1, t + 1)]
    if fault == "pel-drop" and pel:
        del pel[sorted(pel)[0]]
        faulted = True
    final = StreamFinal(list(dict(entries).items()), sorted(pel.items()), last)
    return ops, ({"s": final} if faulted or fault is None else {})


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([None, "reuse", "ack-lost", "pel-drop"]))
def test_a_correct_model_passes_and_each_fault_is_found(seed: int, fault: str | None) -> None:
    ops, final = simulate(seed, fault)
    if not final:
        return  # the fault had no chance to fire
    v = check_stream(ops, final)
    assert v.ok == (fault is None), [a.text for a in v.anomalies]
