"""A fake region host for the reclaimer's tests (`cairn.runtime.reclaimer`): leaders and
followers by region, and proposals applied at once to real `StoreMachine`s."""

from __future__ import annotations

from dataclasses import dataclass, field

from store_harness import MachineClient

from cairn.shard.replica import Callback, Completion, Outcome
from cairn.store import decode_command


@dataclass
class FakeReplica:
    is_leader: bool
    stopped: bool = False


@dataclass
class FakeRegion:
    epoch: int = 1


@dataclass
class FakePeer:
    replica: FakeReplica
    region: FakeRegion = field(default_factory=FakeRegion)


@dataclass
class FakeHost:
    """Regions by id; `propose` applies the command to that region's client's machine."""

    clients: dict[int, MachineClient]
    peers: dict[int, FakePeer]
    proposed: list[tuple[int, str, list[bytes]]] = field(default_factory=list)

    def propose(self, region_id: int, epoch: int, command: bytes, on_done: Callback) -> None:
        name, args, _ = decode_command(command)
        self.proposed.append((region_id, name, args))
        client = self.clients[region_id]
        client.index += 1
        reply = client.machine.apply(client.index, command)
        on_done(Completion(Outcome.OK, reply))
