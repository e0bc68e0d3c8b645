"""The TSO's physical time on a real node follows the node's skewed clock."""

from __future__ import annotations

import asyncio
import time

from cairn.runtime.real_env import LoopClock
from cairn.runtime.tso_wiring import skewed_wall_ms


def test_skewed_wall_follows_the_clock_skew() -> None:
    """Unskewed it is the wall clock; a clock running at half speed falls behind it."""

    async def run() -> tuple[int, int]:
        clock = LoopClock(asyncio.get_running_loop())
        wall = skewed_wall_ms(clock)
        before = abs(wall() - int(time.time() * 1000))
        clock.set_skew(-0.5)
        await asyncio.sleep(0.4)
        behind = int(time.time() * 1000) - wall()
        return before, behind

    before, behind = asyncio.run(run())
    assert before <= 1
    assert 150 <= behind <= 400
