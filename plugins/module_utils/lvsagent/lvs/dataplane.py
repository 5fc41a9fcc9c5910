"""The seam between the LVS engine and a data plane: kernel IPVS or nftables.

Both take the same desired table (ServiceKey -> (Service, [Destination])) and return the
same changes and the same table for status; the engine neither knows nor cares which one
runs. A data plane's failures are IpvsErrors (the engine logs them and retries).
"""

from __future__ import annotations

from time import thread_time

from ..ipvs import IpvsError
from . import reconciler


class DataPlane:
    name = ""  # in log lines: "IPVS: 3 services declared"
    last_sync_cpu = 0.0  # CPU seconds the last sync cost its worker: audits are paced by it

    async def sync(self, desired: dict, retired, whole_table: bool) -> tuple:
        """Reads, compares, changes the declared services: (changes, failed changes)."""
        raise NotImplementedError

    async def table(self, keys: set) -> dict:
        """The live view of `keys`, with counters, for status."""
        raise NotImplementedError

    async def run(self, job, *args):
        """An IPVS-only job (sync daemon, timeouts, flush): refused by the configuration
        for every other data plane."""
        raise IpvsError(f"{self.name} data plane: {job.__name__} needs lvs_data_plane ipvs")

    async def close(self) -> None:
        """After stop() removed the declared services: whatever the plane itself owns."""


def _read_table(client, keys: set) -> dict:
    """`keys` as the kernel holds them, with their counters: for status and scrapes only
    (the reconciler's reads and audits take none)."""
    return {key: entry for key, entry in client.table(stats=True).items() if key in keys}


def _measured_sync(client, *args) -> tuple:
    """reconciler.sync, and the CPU time it took on the thread that ran it (kernel included)."""
    start = thread_time()
    changes, failed = reconciler.sync(client, *args)
    return changes, failed, thread_time() - start


class IpvsPlane(DataPlane):
    """Kernel IPVS: the reconciler's jobs on the netlink thread (`runner.run`)."""

    name = "IPVS"

    def __init__(self, runner):
        self._runner = runner

    async def run(self, job, *args):
        return await self._runner.run(job, *args)

    async def sync(self, desired: dict, retired, whole_table: bool) -> tuple:
        changes, failed, self.last_sync_cpu = await self._runner.run(
            _measured_sync, desired, retired, whole_table
        )
        return changes, failed

    async def table(self, keys: set) -> dict:
        return await self._runner.run(_read_table, keys)
