"""IpvsThread runs the client's jobs on its own thread, never on the calling loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lvsagent.ipvs import IpvsError
from lvsagent.lvs.netlink_thread import IpvsThread


class LoopHatingClient:
    """Fails like pyroute2's sync socket would inside a running loop."""

    def __init__(self):
        self.created_on = threading.get_ident()

    def table(self):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return {"thread": threading.get_ident()}
        raise RuntimeError("This event loop is already running")


def test_jobs_are_the_only_way_in_and_creation_errors_surface():
    """No operation that would block the calling loop until netlink answers."""
    proxy = IpvsThread(LoopHatingClient)
    with pytest.raises(AttributeError):
        proxy.table  # noqa: B018

    def no_ipvs():
        raise IpvsError("IPVS is not available in this kernel: load the ip_vs module")

    with pytest.raises(IpvsError, match="load the ip_vs module"):
        IpvsThread(no_ipvs)


def test_jobs_run_on_the_worker_thread_while_the_loop_goes_on():
    async def use():
        proxy = IpvsThread(LoopHatingClient)
        ticks = []

        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)

        task = asyncio.ensure_future(ticker())

        def slow_job(client, seconds):
            threading.Event().wait(seconds)
            return client.table()

        answer = await proxy.run(slow_job, 0.2)
        task.cancel()
        return proxy, answer, len(ticks)

    proxy, answer, ticks = asyncio.run(use())
    assert answer["thread"] == proxy._client.created_on and ticks >= 5
