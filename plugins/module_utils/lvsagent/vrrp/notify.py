"""notify_master / notify_backup / notify_fault / notify_stop and `notify`, as keepalived runs them.

The state script runs as written; `notify` gets keepalived's arguments TYPE NAME STATE PRIORITY
(TYPE is INSTANCE or GROUP). Scripts run as child processes of the event loop and are reaped
there; the agent never waits for them before acting.
"""

from __future__ import annotations

import asyncio
from typing import Optional


class Notifier:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._running: set[asyncio.Task] = set()

    def state_changed(
        self,
        kind: str,
        name: str,
        state: str,
        priority: int,
        state_script: Optional[str],
        generic_script: Optional[str],
    ) -> None:
        """Run the script for `state` (MASTER/BACKUP/FAULT/STOP) and the generic one."""
        reason = f"{kind.lower()} {name} {state}"
        if state_script:
            self._spawn(state_script, reason)
        if generic_script:
            self._spawn(f"{generic_script} {kind} {name} {state} {priority}", reason)

    def _spawn(self, command: str, reason: str) -> None:
        from ..lvs.engine import run_script  # here: a VRRP-only agent never loads the IPVS code

        task = self.loop.create_task(run_script(command, reason))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def drain(self, timeout: float = 5.0) -> None:
        """Give running notify scripts (notify_stop at shutdown) a chance to finish."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
