"""The nftables data plane: the engine's desired table kept in the agent's own nft table.

Each pass lists the table (one JSON listing), plans against it and applies what differs as
one transaction; a hand edit is found by the same comparison and undone. stop() leaves no
table behind.
"""

from __future__ import annotations

import logging

from ..lvs.dataplane import DataPlane
from . import ruleset
from .client import NftClient, NftError

log = logging.getLogger("lvsagent.lvs")


class NftPlane(DataPlane):
    name = "nftables"

    def __init__(self, client: NftClient):
        self._client = client

    async def _live(self) -> ruleset.LiveTable:
        return ruleset.parse_listing(await self._client.list_table(ruleset.FAMILY, ruleset.TABLE))

    async def sync(self, desired: dict, retired, whole_table: bool) -> tuple:
        live = await self._live()
        changes, commands, repaired = ruleset.plan(desired, live, retired, whole_table=whole_table)
        if repaired:
            log.warning(
                "nftables table %s changed outside lvs-agent, restoring its base", ruleset.TABLE
            )
        try:
            await self._client.apply(commands)
        except NftError as error:
            log.error("%s", error)
            return changes, changes
        for change in changes:
            log.debug("nftables: %s", change)
        return changes, []

    async def table(self, keys: set) -> dict:
        return ruleset.read(await self._live(), keys)

    async def close(self) -> None:
        if (await self._live()).present:
            await self._client.apply(ruleset.delete_table())
