"""promote_secondaries: the interface keeps its other addresses when its primary one goes.

Without net.ipv4.conf.IFACE.promote_secondaries the kernel removes every secondary address of
a subnet with its primary one, so a VIP in the subnet of another address can take the other
VIPs with it. keepalived 2.2.7 (vrrp_complete_instance, set_promote_secondaries) sets the flag
at start on the interface of an instance with `promote_secondaries`, if the interface exists and
the flag is not 1 already; at shutdown it puts 0 back on the interfaces it changed, once the last
instance asking for it goes. A VMAC always has it (vmac.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from ..arpsuppress import ArpSuppressError, ProcSys
from .vmac import conf_key

log = logging.getLogger("lvsagent.vrrp")


class PromoteSecondaries:
    """The interfaces whose flag the agent set, with the number of instances asking for each."""

    def __init__(self, sysctl: Optional[ProcSys] = None) -> None:
        self.sysctl = sysctl or ProcSys()
        self._users: dict[str, int] = {}

    async def acquire(self, ifname: str) -> None:
        if ifname in self._users:
            self._users[ifname] += 1
            return
        key = conf_key(4, ifname, "promote_secondaries")

        def set_flag() -> bool:
            if self.sysctl.read(key) == "1":
                return False
            self.sysctl.write(key, "1")
            return True

        try:
            changed = await asyncio.to_thread(set_flag)
        except (ArpSuppressError, OSError) as error:
            log.warning("Unable to set promote_secondaries on %s: %s", ifname, error)
            return
        if changed:
            self._users[ifname] = 1

    async def release(self, ifname: str) -> None:
        users = self._users.get(ifname, 0)
        if users > 1:
            self._users[ifname] = users - 1
            return
        if not users:
            return  # the flag was already set: it stays
        del self._users[ifname]
        key = conf_key(4, ifname, "promote_secondaries")
        try:
            await asyncio.to_thread(self.sysctl.write, key, "0")
        except OSError as error:
            log.warning("Unable to reset promote_secondaries on %s: %s", ifname, error)
