"""`POST /v1/placement/transfer-leader` (`cairn.admin.placement_leader`) against a fake
node: only the serving placement leader hands over, only to another member, and it says
whether the leadership went."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from cairn.admin.placement_leader import PlacementLeadership
from cairn.admin.source import BadRequestError, SourceUnavailableError


@dataclass
class FakeReplica:
    """A placement replica that leads until told to transfer (and gives up if `moves`)."""

    moves: bool = True
    is_leader: bool = True
    lead: int = 1
    term: int = 4
    asked: list[int] = field(default_factory=list)

    def transfer_leader(self, to: int) -> None:
        self.asked.append(to)
        if self.moves:
            self.is_leader, self.lead, self.term = False, to, 5


class FakePlacement:
    def __init__(self, replica: FakeReplica | None, leader: int | None = 1) -> None:
        self.members = (1, 2, 3)
        self.replica = replica
        self._leader = leader

    def serving_member(self) -> Any:
        return None if self.replica is None else SimpleNamespace(replica=self.replica)

    def leader(self) -> int | None:
        return self._leader


def _transfer(placement: FakePlacement | None, to: object) -> dict[str, Any]:
    node: Any = SimpleNamespace(config=SimpleNamespace(node_id=1), placement=placement)
    return asyncio.run(PlacementLeadership(node).transfer(to))


def test_the_leader_hands_over_to_another_member() -> None:
    replica = FakeReplica()
    doc = _transfer(FakePlacement(replica), 3)
    assert doc == {"from": 1, "to": 3, "moved": True, "leader": 3, "term": 5}
    assert replica.asked == [3]


def test_a_transfer_that_does_not_happen_in_time_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cairn.admin.placement_leader.TRANSFER_WAIT_S", 0.05)
    doc = _transfer(FakePlacement(FakeReplica(moves=False)), 2)
    assert doc["moved"] is False and doc["leader"] == 1


@pytest.mark.parametrize("to", [1, 4, "2", True, None])
def test_only_another_member_is_a_target(to: object) -> None:
    replica = FakeReplica()
    with pytest.raises(BadRequestError):
        _transfer(FakePlacement(replica), to)
    assert replica.asked == []


def test_a_node_that_does_not_lead_refuses_naming_the_leader() -> None:
    with pytest.raises(SourceUnavailableError, match="leader: 2"):
        _transfer(FakePlacement(None, leader=2), 3)
    with pytest.raises(SourceUnavailableError):  # itself: judged by the leader, not here
        _transfer(FakePlacement(None, leader=2), 1)
    with pytest.raises(SourceUnavailableError):
        _transfer(None, 3)
