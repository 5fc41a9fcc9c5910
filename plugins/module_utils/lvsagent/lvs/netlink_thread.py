"""IpvsClient for code running inside an asyncio loop: every call made on one worker thread.

pyroute2's synchronous sockets drive an asyncio loop of their own, which cannot run in a
thread whose loop is already running (the agent's). So the netlink socket is created and
used on a dedicated thread. `run()` awaits a whole job there without blocking the loop;
the plain operations block until they return, as a direct call would.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..ipvs import IpvsClient

OPERATIONS = frozenset(
    {
        "services",
        "service",
        "destinations",
        "table",
        "add_service",
        "edit_service",
        "delete_service",
        "add_destination",
        "edit_destination",
        "delete_destination",
    }
)


class IpvsThread:
    """IpvsClient's operations, run on the thread that owns the netlink socket."""

    def __init__(self, factory: Callable[[], IpvsClient] = IpvsClient):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipvs-netlink")
        self._client = self._executor.submit(factory).result()  # IpvsError when no IPVS

    async def run(self, job, *args):
        """`job(client, *args)` on the netlink thread; the loop keeps running meanwhile."""
        return await asyncio.wrap_future(self._executor.submit(job, self._client, *args))

    def __getattr__(self, name: str):
        if name not in OPERATIONS:
            raise AttributeError(name)
        method = getattr(self._client, name)

        def call(*args):
            return self._executor.submit(method, *args).result()

        return call
