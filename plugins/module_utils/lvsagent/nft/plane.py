"""The nftables data plane: the engine's desired table kept in the agent's own nft tables.

Each pass plans against the tables (`inet lvs_ha` for NAT, `netdev lvs_ha` for DR) and applies
what differs as one transaction; a hand edit is found by the same comparison and undone. The
tables are listed only when the ruleset's generation moved since the plane last knew it: after
its own transaction (the generation moved by exactly one) the plane knows the result without
listing, so a health change costs one transaction, while anyone else's commit (a hand edit)
makes the next pass list again. DR forwards through the device the kernel routes the real
servers through, looked up once and again on each full pass. stop() leaves no table behind.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..ipvs.plan import Change
from ..lvs.dataplane import DataPlane
from . import ruleset
from .client import NftClient, NftError

log = logging.getLogger("lvsagent.lvs")


class NftPlane(DataPlane):
    name = "nftables"

    def __init__(self, client: NftClient):
        self._client = client
        self._known: Optional[dict] = None  # family -> LiveTable, as of `_generation`
        self._generation: Optional[int] = None
        self._routes: dict = {}  # real server address -> device (DR)
        self._homes: dict = {}  # ServiceKey -> the family of the table it was last put in

    async def _live(self) -> dict:
        """The tables: what the plane knows while the generation stands still, else listed."""
        generation = await self._client.generation()
        if self._known is None or generation != self._generation:
            known = {}
            for family in ruleset.TABLE_FAMILIES.values():
                listing = await self._client.list_table(family, ruleset.TABLE)
                known[family] = await self._client.compute(ruleset.parse_listing, listing, family)
            self._known, self._generation = known, generation
        return self._known

    async def _devices(self, desired: dict, refresh: bool) -> tuple:
        """(ServiceKey -> the one device a DR service's real servers are reached through,
        ServiceKey -> why it has none)."""
        if refresh:
            self._routes = {}
        addresses = {d.address for _s, dests in desired.values() for d in dests}
        missing = sorted(addresses - set(self._routes))
        if missing:
            self._routes.update(await self._client.devices(missing))
        devices, unusable = {}, {}
        for key, (_service, destinations) in desired.items():
            found = {self._routes[d.address] for d in destinations}
            if None in found:
                unusable[key] = f"nftables: no route to a DR real server of {key}"
            elif len(found) > 1:
                unusable[key] = (
                    f"nftables: the DR real servers of {key} are reached through "
                    f"{' and '.join(sorted(found))}: fwd takes one device"
                )
            else:
                devices[key] = next(iter(found), None)
        return devices, unusable

    def _home(self, key, destinations: list) -> str:
        """The table a service belongs in, by its real servers' method (the configuration
        gives a service one); without real servers, the one it is in."""
        if destinations:
            self._homes[key] = ruleset.TABLE_FAMILIES[destinations[0].forwarding]
        return self._homes.get(key, ruleset.FAMILY)

    async def sync(self, desired: dict, retired, whole_table: bool) -> tuple:
        live = await self._live()
        split = {family: {} for family in live}
        for key, (service, destinations) in desired.items():
            split[self._home(key, destinations)][key] = (service, destinations)
        devices, unusable = await self._devices(split[ruleset.DR_FAMILY], whole_table)
        failed = []
        for key, why in unusable.items():
            log.error("%s", why)
            failed.append(Change("edit_service", key, split[ruleset.DR_FAMILY].pop(key)[0]))
        whole_table = whole_table and not unusable  # what it holds for them stays, this once
        changes, commands, repaired = await self._client.compute(
            _plan, live, split, set(retired), whole_table, devices
        )
        for family in repaired:
            log.warning(
                "nftables table %s %s changed outside lvs-agent, restoring its base",
                family,
                ruleset.TABLE,
            )
        if not commands:
            return changes, failed
        before, self._known = self._generation, None  # unknown until the commit is seen
        try:
            await self._client.apply(commands)
        except NftError as error:
            log.error("%s", error)
            return changes, changes
        if await self._client.generation() == (before + 1) & 0xFFFFFFFF:
            self._known = await self._client.compute(_applied, live, commands)
            self._generation = (before + 1) & 0xFFFFFFFF
        for change in changes:
            log.debug("nftables: %s", change)
        return changes, failed

    async def table(self, keys: set) -> dict:
        """Listed afresh (the counters move without the generation): status and scrapes only."""
        table = {}
        for family in ruleset.TABLE_FAMILIES.values():
            listing = await self._client.list_table(family, ruleset.TABLE)
            table.update(await self._client.compute(_read, listing, family, keys))
        return table

    async def close(self) -> None:
        present = [family for family, live in (await self._live()).items() if live.present]
        await self._client.apply([ruleset.delete_table(family)[0] for family in present])


def _plan(live: dict, split: dict, leaving: set, whole_table: bool, devices: dict) -> tuple:
    """(changes, commands, the families whose base was repaired) over both tables: on the
    worker thread, so a large service's slot table and JSON stay off the loop."""
    changes, commands, repaired = [], [], []
    for family, table in live.items():
        elsewhere = {
            key for other, services in split.items() if other != family for key in services
        }
        found, fixes, repairs = ruleset.plan(
            split[family],
            table,
            leaving | elsewhere,
            whole_table=whole_table,
            devices=devices if family == ruleset.DR_FAMILY else None,
        )
        changes += found
        commands += fixes
        repaired += [family] if repairs else []
    return changes, commands, repaired


def _applied(live: dict, commands: list) -> dict:
    return {family: ruleset.applied(table, commands) for family, table in live.items()}


def _read(listing: Optional[dict], family: str, keys: set) -> dict:
    return ruleset.read(ruleset.parse_listing(listing, family, counters=True), keys)
