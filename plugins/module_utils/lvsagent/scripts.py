"""Notify and quorum scripts, run as keepalived runs them: split into words, no shell.

Scripts run as child processes of the event loop and are reaped there; nothing waits for one
before acting, except a shutdown that gives the last ones (notify_stop, omega) a grace period.
"""

from __future__ import annotations

import asyncio
import logging
import shlex

log = logging.getLogger("lvsagent.scripts")


async def run_script(command: str, reason: str) -> None:
    """Runs one script to its end; a failure is logged, never raised."""
    log.info("Executing [%s] for %s", command, reason)
    try:
        process = await asyncio.create_subprocess_exec(
            *shlex.split(command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        code = await process.wait()
    except (OSError, ValueError) as exc:
        log.error("Cannot run [%s]: %s", command, exc)
        return
    if code != 0:
        log.warning("Script [%s] exited with status %d", command, code)


class ScriptRunner:
    """Starts scripts in the background and holds on to them until they end."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task] = set()

    def spawn(self, command: str, reason: str) -> None:
        task = asyncio.ensure_future(run_script(command, reason))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def drain(self, timeout: float) -> None:
        """Give the running scripts up to `timeout` seconds to finish."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
