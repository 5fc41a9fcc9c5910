"""IpvsClient for code running inside an asyncio loop: every call made on one worker thread.

Netlink calls block (a large dump or batch takes a while), so the socket is created and used
on a dedicated thread, never on the agent's loop. `run()` awaits a whole job there without
blocking the loop; it is the only way in, so that no call from the loop can wait on netlink.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..ipvs import IpvsClient


class IpvsThread:
    """IpvsClient's operations, run on the thread that owns the netlink socket."""

    def __init__(self, factory: Callable[[], IpvsClient] = IpvsClient):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipvs-netlink")
        self._client = self._executor.submit(factory).result()  # IpvsError when no IPVS

    async def run(self, job, *args):
        """`job(client, *args)` on the netlink thread; the loop keeps running meanwhile."""
        return await asyncio.wrap_future(self._executor.submit(job, self._client, *args))
