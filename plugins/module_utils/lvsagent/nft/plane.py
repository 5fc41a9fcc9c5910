"""The nftables data plane: the engine's desired table kept in the agent's own nft table.

Each pass plans against the table and applies what differs as one transaction; a hand edit
is found by the same comparison and undone. The table is listed only when the ruleset's
generation moved since the plane last knew it: after its own transaction (the generation
moved by exactly one) the plane knows the result without listing, so a health change costs
one transaction, while anyone else's commit (a hand edit) makes the next pass list again.
stop() leaves no table behind.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..lvs.dataplane import DataPlane
from . import ruleset
from .client import NftClient, NftError

log = logging.getLogger("lvsagent.lvs")


class NftPlane(DataPlane):
    name = "nftables"

    def __init__(self, client: NftClient):
        self._client = client
        self._known: Optional[ruleset.LiveTable] = None  # the table as of `_generation`
        self._generation: Optional[int] = None

    async def _live(self) -> ruleset.LiveTable:
        """The table: what the plane knows while the generation stands still, else listed."""
        generation = await self._client.generation()
        if self._known is None or generation != self._generation:
            listing = await self._client.list_table(ruleset.FAMILY, ruleset.TABLE)
            self._known, self._generation = ruleset.parse_listing(listing), generation
        return self._known

    async def sync(self, desired: dict, retired, whole_table: bool) -> tuple:
        live = await self._live()
        changes, commands, repaired = ruleset.plan(desired, live, retired, whole_table=whole_table)
        if repaired:
            log.warning(
                "nftables table %s changed outside lvs-agent, restoring its base", ruleset.TABLE
            )
        if not commands:
            return changes, []
        before, self._known = self._generation, None  # unknown until the commit is seen
        try:
            await self._client.apply(commands)
        except NftError as error:
            log.error("%s", error)
            return changes, changes
        if await self._client.generation() == (before + 1) & 0xFFFFFFFF:
            self._known = ruleset.applied(live, commands)
            self._generation = (before + 1) & 0xFFFFFFFF
        for change in changes:
            log.debug("nftables: %s", change)
        return changes, []

    async def table(self, keys: set) -> dict:
        return ruleset.read(await self._live(), keys)

    async def close(self) -> None:
        if (await self._live()).present:
            await self._client.apply(ruleset.delete_table())
