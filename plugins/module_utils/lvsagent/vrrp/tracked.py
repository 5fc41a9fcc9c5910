"""What every tracker (vrrp_script, track_file, vrrp_track_process) shares: the instances that
listen to it, and the background task that keeps it current."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Callable, Optional

log = logging.getLogger("lvsagent.vrrp")

Listener = Callable[[str, Any], None]  # (tracked object's name, its new state)


class Listeners:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def tell(self, name: str, state: Any) -> None:
        for listener in list(self._listeners):
            listener(name, state)


async def repeat(interval: float, action: Callable[[], Awaitable[None]]) -> None:
    """`action()` every `interval` seconds (after each has ended), until cancelled; a failing
    one is logged and the next one runs: tracking never stops on its own."""
    while True:
        await asyncio.sleep(interval)
        try:
            await action()
        except Exception:
            log.exception("tracking update failed")


async def cancelled(task: Optional[asyncio.Task]) -> None:
    """Cancel a background task (if any) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
