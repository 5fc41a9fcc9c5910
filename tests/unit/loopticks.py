"""How often the event loop ran other tasks while a test awaited something long."""

from __future__ import annotations

import asyncio


class LoopTicks:
    """`async with LoopTicks() as ticks:` ... `ticks.count`: the turns a task that only
    yields got meanwhile (0 when the awaited work never let the loop run)."""

    def __init__(self) -> None:
        self.count = 0
        self._task = None

    async def _tick(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTicks:
        self._task = asyncio.ensure_future(self._tick())
        await asyncio.sleep(0)
        self.count = 0
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._task.cancel()
