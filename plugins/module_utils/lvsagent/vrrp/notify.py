"""notify_master / notify_backup / notify_fault / notify_stop and `notify`, as keepalived runs them.

The state script runs as written; `notify` gets keepalived's arguments TYPE NAME STATE PRIORITY
(TYPE is INSTANCE or GROUP). Scripts run as child processes of the event loop and are reaped
there; the agent never waits for them before acting.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from typing import Optional

log = logging.getLogger("lvsagent.vrrp")


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
        if state_script:
            self._spawn(shlex.split(state_script))
        if generic_script:
            self._spawn([*shlex.split(generic_script), kind, name, state, str(priority)])

    def _spawn(self, argv: list[str]) -> None:
        task = self.loop.create_task(self._run(argv))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, argv: list[str]) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            status = await process.wait()
        except OSError as error:
            log.warning("Failed to exec notify script %s: %s", argv[0], error.strerror)
            return
        if status != 0:
            log.info("Notify script %s exited with status %d", argv[0], status)

    async def drain(self, timeout: float = 5.0) -> None:
        """Give running notify scripts (notify_stop at shutdown) a chance to finish."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
