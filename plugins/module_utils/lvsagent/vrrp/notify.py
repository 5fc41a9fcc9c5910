"""notify_master / notify_backup / notify_fault / notify_stop and `notify`, as keepalived runs them.

The state script runs as written; `notify` gets keepalived's arguments TYPE NAME STATE PRIORITY
(TYPE is INSTANCE or GROUP). They run through lvsagent.scripts.
"""

from __future__ import annotations

from typing import Optional

from ..scripts import ScriptRunner

STOP_GRACE = 5.0  # seconds the agent's shutdown waits for notify_stop scripts


class Notifier:
    def __init__(self) -> None:
        self._scripts = ScriptRunner()

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
            self._scripts.spawn(state_script, reason)
        if generic_script:
            self._scripts.spawn(f"{generic_script} {kind} {name} {state} {priority}", reason)

    async def drain(self, timeout: float = STOP_GRACE) -> None:
        """Give running notify scripts (notify_stop at shutdown) a chance to finish."""
        await self._scripts.drain(timeout)
