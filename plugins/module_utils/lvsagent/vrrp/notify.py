"""notify_master / notify_backup / notify_fault / notify_stop and `notify`, as keepalived runs them.

The state script runs as written; `notify` gets keepalived's arguments TYPE NAME STATE PRIORITY
(TYPE is INSTANCE or GROUP; a group's priority is 0), each one word whatever the name holds.
They run through lvsagent.scripts, as their configured user. The same event goes to the notify
FIFOs as the line `TYPE "NAME" STATE PRIORITY`.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..config.model import GlobalDefs, Script
from ..notify_fifo import NotifyFifos
from ..scripts import ScriptRunner, split_command

log = logging.getLogger("lvsagent.vrrp")

STOP_GRACE = 5.0  # seconds the agent's shutdown waits for notify_stop scripts


def notify_argv(script: Script, kind: str, name: str, state: str, priority: int) -> list[str]:
    """The generic `notify` script's words, then TYPE NAME STATE PRIORITY as single arguments."""
    return [*split_command(script.command), kind, name, state, str(priority)]


def fifo_line(kind: str, name: str, state: str, priority: int) -> str:
    return f'{kind} "{name}" {state} {priority}\n'


class Notifier:
    def __init__(self) -> None:
        self._scripts = ScriptRunner()
        self.fifos = NotifyFifos()

    async def configure(self, global_defs: GlobalDefs) -> None:
        """Open the notify FIFOs of global_defs (again, when a reload changed them)."""
        await self.fifos.configure(global_defs)

    def state_changed(
        self,
        kind: str,
        name: str,
        state: str,
        priority: int,
        state_script: Optional[Script],
        generic_script: Optional[Script],
    ) -> None:
        """Run the script for `state` (MASTER/BACKUP/FAULT/STOP) and the generic one."""
        owner = f"({name})" if kind == "INSTANCE" else f"VRRP_Group({name})"
        self.fifos.vrrp_line(fifo_line(kind, name, state, priority))
        try:
            if state_script:
                argv = split_command(state_script.command)
                self._scripts.spawn(argv, state_script.run_as, owner)
            if generic_script:
                argv = notify_argv(generic_script, kind, name, state, priority)
                self._scripts.spawn(argv, generic_script.run_as, owner)
        except ValueError as error:  # the parser checks quoting; this is a last guard
            log.error("%s notify script: %s", owner, error)

    async def drain(self, timeout: float = STOP_GRACE) -> None:
        """Give running notify scripts (notify_stop at shutdown) a chance to finish, then kill
        what is left of them."""
        await self._scripts.close(timeout)
        await self.fifos.close()
