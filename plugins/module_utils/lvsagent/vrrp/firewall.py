"""no_accept mode with nftables, as keepalived 2.2.7 does it (vrrp_nftables.c).

A master in no_accept mode (the default under vrrp_strict) that is not the address owner
(priority 255) holds its VIPs for routing only: the host neither receives packets addressed to
them nor sends from them. keepalived enforces that with a table of its own (`nftables [NAME]`,
default `keepalived`; Debian's build has no iptables, so `vrrp_iptables` and a bare no_accept or
vrrp_strict use the same table): per family a set `vips` and base chains `in`/`out` that drop
what goes to or comes from the set, at priority filter + nftables_priority (default -1). For
IPv6, neighbour discovery stays allowed, and link-local VIPs are matched with their interface
(`vips_link_local`, keyed by ifindex, or by name when an instance has dont_track_primary and
nftables_ifindex is not set). `nftables_counters` puts a counter on each rule.

A family's table is made when a VIP of that family first needs it, its sets follow the
masters' VIPs, and every table made is deleted at stop. `nft -f -` runs as a subprocess: the
loop never waits on it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Optional

from ..config.checks import PRIORITY_OWNER
from ..config.model import DEFAULT_NFTABLES_TABLE, GlobalDefs, VrrpInstance

log = logging.getLogger(__name__)

FAMILIES = {4: "ip", 6: "ip6"}
LINK_LOCAL = ipaddress.ip_network("fe80::/10")
NFT = "nft"


def drops_vip_traffic(instance: VrrpInstance, global_defs: GlobalDefs) -> bool:
    """no_accept in effect: set, or vrrp_strict's default, for a router that is not the owner."""
    accept = not global_defs.vrrp_strict if instance.accept is None else instance.accept
    return not accept and instance.priority != PRIORITY_OWNER


class Settings:
    """The global_defs that shape the table."""

    def __init__(self, global_defs: GlobalDefs, instances: Iterable[VrrpInstance]) -> None:
        self.table = global_defs.nftables or DEFAULT_NFTABLES_TABLE
        self.priority = global_defs.nftables_priority
        self.counters = global_defs.nftables_counters
        self.by_name = not global_defs.nftables_ifindex and any(
            instance.dont_track_primary for instance in instances
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and vars(self) == vars(other)


def table_script(settings: Settings, family: int) -> str:
    """The nft batch that (re)creates our table of `family`, empty, in one transaction."""
    name = f"{FAMILIES[family]} {settings.table}"
    counter = "counter " if settings.counters else ""
    sign = "-" if settings.priority < 0 else "+"
    hook = f"type filter hook {{}} priority filter {sign} {abs(settings.priority)}; policy accept;"
    lines = [f"add table {name}", f"delete table {name}", f"table {name} {{"]
    if family == 4:
        lines += [
            "  set vips { type ipv4_addr; }",
            f"  chain out {{ {hook.format('output')} ip saddr @vips {counter}drop; }}",
            f"  chain in {{ {hook.format('input')} ip daddr @vips {counter}drop; }}",
        ]
    else:
        lines += [
            "  set vips { type ipv6_addr; }",
            "  set neighbor-discovery { type icmpv6_type; flags constant;"
            " elements = { nd-neighbor-solicit, nd-neighbor-advert }; }",
            "  chain in_link_local { }",
            "  chain out_link_local { }",
        ]
        for chain, hook_name, field in (("in", "input", "daddr"), ("out", "output", "saddr")):
            lines.append(
                f"  chain {chain} {{ {hook.format(hook_name)}"
                f" icmpv6 type @neighbor-discovery {counter}accept;"
                f" ip6 {field} fe80::/10 {counter}goto {chain}_link_local;"
                f" ip6 {field} @vips {counter}drop; }}"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def link_local_script(settings: Settings) -> str:
    """What the IPv6 table gets with its first link-local VIP: a set keyed by the interface."""
    name = f"ip6 {settings.table}"
    key, iif, oif = (
        ("ifname", "iifname", "oifname") if settings.by_name else ("iface_index", "iif", "oif")
    )
    counter = "counter " if settings.counters else ""
    return (
        f"add set {name} vips_link_local {{ type ipv6_addr . {key}; }}\n"
        f"add rule {name} in_link_local ip6 daddr . {iif} @vips_link_local {counter}drop\n"
        f"add rule {name} out_link_local ip6 saddr . {oif} @vips_link_local {counter}drop\n"
    )


def elements_script(settings: Settings, family: int, blocked: set, link_local: bool) -> str:
    """The batch that makes the sets of `family` hold exactly `blocked` ((address, dev)
    pairs); `link_local`: the IPv6 table has its link-local set."""
    name = f"{FAMILIES[family]} {settings.table}"
    sets: dict[str, list[str]] = {"vips": []}
    if link_local:
        sets["vips_link_local"] = []
    for address, dev in sorted(blocked, key=str):
        if link_local and address in LINK_LOCAL:
            try:
                interface = f'"{dev}"' if settings.by_name else str(socket.if_nametoindex(dev))
            except OSError:  # the interface is gone: nothing reaches the VIP through it
                continue
            sets["vips_link_local"].append(f"{address} . {interface}")
        else:
            sets["vips"].append(str(address))
    lines = []
    for set_name, elements in sets.items():
        lines.append(f"flush set {name} {set_name}")
        if elements:
            lines.append(f"add element {name} {set_name} {{ {', '.join(elements)} }}")
    return "\n".join(lines) + "\n"


class Firewall:
    """Our nftables tables: the VIPs each instance blocks, applied one batch at a time."""

    def __init__(self) -> None:
        self.settings: Optional[Settings] = None
        self._blocked: dict[str, set] = {}  # instance -> {(address, dev)}
        self._tables: set[int] = set()  # the families whose table we made
        self._link_local = False  # the IPv6 table has its link-local set
        self._lock = asyncio.Lock()

    async def configure(self, global_defs: GlobalDefs, instances: Iterable[VrrpInstance]) -> None:
        """Take the settings of a (re)loaded configuration; tables made with others are made
        again with the VIPs they hold."""
        instances = list(instances)
        settings = Settings(global_defs, instances)
        implied = global_defs.vrrp_strict or any(i.accept is False for i in instances)
        if self.settings is None and global_defs.nftables is None and implied:
            log.info("no_accept/strict specified, but no firewall configured - using nftables")
        async with self._lock:
            if settings == self.settings:
                return
            families = set(self._tables)
            await self._delete_tables()
            self.settings = settings
            for family in sorted(families):
                await self._apply(family)

    async def block(self, instance: str, vips: Iterable) -> None:
        """Make `instance`'s blocked VIPs ((VirtualAddress, dev) pairs) exactly `vips`."""
        wanted = {(vip.address.ip, dev) for vip, dev in vips}
        async with self._lock:
            before = self._blocked.get(instance, set())
            if wanted == before or self.settings is None:
                return
            self._blocked[instance] = wanted
            for family in sorted({address.version for address, _where in wanted ^ before}):
                await self._apply(family)

    async def stop(self) -> None:
        async with self._lock:
            self._blocked.clear()
            await self._delete_tables()

    async def _apply(self, family: int) -> None:
        """One batch: our table of `family` (made if need be) holds the VIPs blocked now."""
        script = ""
        if family not in self._tables:
            script = table_script(self.settings, family)
            self._tables.add(family)
        blocked = {entry for held in self._blocked.values() for entry in held}
        blocked = {entry for entry in blocked if entry[0].version == family}
        needs_link_local = any(address in LINK_LOCAL for address, _where in blocked)
        if family == 6 and needs_link_local and not self._link_local:
            script += link_local_script(self.settings)
            self._link_local = True
        link_local = family == 6 and self._link_local
        await self._run(script + elements_script(self.settings, family, blocked, link_local))

    async def _delete_tables(self) -> None:
        if self._tables and self.settings is not None:
            names = [f"{FAMILIES[family]} {self.settings.table}" for family in self._tables]
            await self._run("".join(f"delete table {name}\n" for name in names))
        self._tables.clear()
        self._link_local = False

    async def _run(self, script: str) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                NFT,
                "-f",
                "-",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _output, errors = await process.communicate(script.encode())
        except OSError as error:
            log.error("nftables: cannot run %s: %s", NFT, error)
            return
        if process.returncode:
            log.error("nftables: %s", errors.decode(errors="replace").strip()[:500])
