"""keepalived's use_vmac: a private macvlan with the VRRP virtual MAC on the instance's interface.

RFC 5798 section 7.3: a master answers for its VIPs with 00-00-5E-00-01-VRID (IPv6:
00-00-5E-00-02-VRID). keepalived gets that MAC on the wire by creating a macvlan (mode private,
so that two VMACs on one interface do not hear each other) named PREFIX.VRID or as configured,
putting the VIPs on it and sending the adverts from it (from the base interface with
vmac_xmit_base). For IPv4 it sets on the macvlan arp_ignore=1 (answer only for its own
addresses), accept_local=1 (hear the other router), rp_filter=0 (receive on an interface without
an address) and promote_secondaries=1; on the base interface arp_ignore=1 and arp_filter=1 (so
that it does not answer for the VIPs with its own MAC), put back when its last VMAC goes; and
all.rp_filter 0 (each interface and `default` raised to the old value first, so that only the
VMACs lose the filter), put back when the last VMAC goes. For IPv6 it gives the macvlan no
automatic link-local address but the base interface's, the adverts' source.

The netlink work runs on the agent's loop through pyroute2's asyncio socket; the sysctls are
small /proc/sys files read and written in a worker thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from typing import Optional

from ..arpsuppress import ArpSuppressError, ProcSys
from ..netlink import NetlinkError
from .addresses import AddressManager

log = logging.getLogger("lvsagent.vrrp")

VMAC_SYSCTLS = {"arp_ignore": 1, "accept_local": 1, "rp_filter": 0, "promote_secondaries": 1}
BASE_SYSCTLS = {"arp_ignore": 1, "arp_filter": 1}
ADDR_GEN_MODE_NONE = 1
IFA_F_NODAD = 0x02
ALL_RP_FILTER = "net.ipv4.conf.all.rp_filter"


def virtual_mac(vrid: int, family: int) -> str:
    """RFC 5798 section 7.3: 00-00-5E-00-01-{VRID} (IPv4) or 00-00-5E-00-02-{VRID} (IPv6)."""
    return f"00:00:5e:00:{1 if family == 4 else 2:02x}:{vrid:02x}"


def conf_key(family: int, ifname: str, name: str) -> str:
    """The sysctl key of an interface's setting (a '.' in its name is '/' in a key)."""
    return f"net.ipv{family}.conf.{ifname.replace('.', '/')}.{name}"


@dataclass
class Vmac:
    """What one instance asks for."""

    name: str
    base: str
    vrid: int
    family: int
    owner: str  # the instance, for the log lines
    link_local: Optional[ipaddress.IPv6Address] = None  # IPv6 without vmac_xmit_base

    @property
    def mac(self) -> str:
        return virtual_mac(self.vrid, self.family)


@dataclass
class BaseSettings:
    """arp_ignore/arp_filter of a base interface as they were before its first VMAC."""

    ifindex: int
    saved: dict
    vmacs: set = field(default_factory=set)


class VmacLinks:
    """Creates and removes the VMACs of every instance, and owns what they share: the base
    interfaces' ARP settings and all.rp_filter, each put back when its last VMAC goes. Links
    are made on the AddressManager's rtnetlink socket."""

    def __init__(self, addresses: AddressManager, sysctl: Optional[ProcSys] = None) -> None:
        self.addresses = addresses  # its rtnetlink socket
        self.sysctl = sysctl or ProcSys()
        self._bases: dict[str, BaseSettings] = {}
        # key -> (value we set, value to put back), while we hold all.rp_filter
        self._rp_filter: Optional[dict] = None
        self._lock: Optional[asyncio.Lock] = None  # made in the loop (Python 3.9)

    def _serial(self) -> asyncio.Lock:
        """One change at a time: instances on one base interface share its settings."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def create(self, vmac: Vmac) -> int:
        """Create (or take over) the macvlan and set it up as keepalived does; its index."""
        async with self._serial():
            try:
                return await self._create(vmac)
            except NetlinkError as error:
                raise RuntimeError(
                    f"({vmac.owner}): Unable to create VMAC interface {vmac.name}: {error}"
                ) from error

    async def _create(self, vmac: Vmac) -> int:
        ipr = await self.addresses.rtnl()
        base_index = socket.if_nametoindex(vmac.base)
        index = await self._existing(ipr, vmac, base_index)
        if index is None:
            await ipr.link(
                "add",
                ifname=vmac.name,
                kind="macvlan",
                macvlan_mode="private",
                link=base_index,
                address=vmac.mac,
            )
            index = socket.if_nametoindex(vmac.name)
            log.info("(%s): Success creating VMAC interface %s", vmac.owner, vmac.name)
        if vmac.family == 4:
            await self._set_ipv4(vmac, base_index)
        await self._write({conf_key(6, vmac.name, "addr_gen_mode"): ADDR_GEN_MODE_NONE})
        await ipr.link("set", index=index, state="up")
        if vmac.link_local is not None:
            await self._add_link_local(ipr, index, vmac.link_local)
        return index

    async def _existing(self, ipr, vmac: Vmac, base_index: int) -> Optional[int]:
        """keepalived takes over a private macvlan of ours with the right MAC and base, and
        replaces any other macvlan of that name; another kind of interface it leaves alone."""
        found = await ipr.link_lookup(ifname=vmac.name)
        if not found:
            return None
        (link,) = await ipr.link("get", index=found[0])
        if link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "macvlan":
            raise RuntimeError(
                f"({vmac.owner}) macvlan interface name {vmac.name} already exists as a non "
                "macvlan interface"
            )
        mode = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_MACVLAN_MODE")
        same = (
            link.get("IFLA_LINK") == base_index
            and link.get("IFLA_ADDRESS") == vmac.mac
            and mode in ("private", 1)  # MACVLAN_MODE_PRIVATE
        )
        if same:
            return found[0]
        log.info(
            "(%s) Removing old VMAC interface %s due to conflicting interface",
            vmac.owner,
            vmac.name,
        )
        await ipr.link("del", index=found[0])
        return None

    async def _set_ipv4(self, vmac: Vmac, base_index: int) -> None:
        await self._clear_rp_filter()
        await self._write({conf_key(4, vmac.name, k): v for k, v in VMAC_SYSCTLS.items()})
        await self._write({conf_key(6, vmac.name, "disable_ipv6"): 1})
        held = self._bases.get(vmac.base)
        if held is None or held.ifindex != base_index:
            keys = {conf_key(4, vmac.base, k): v for k, v in BASE_SYSCTLS.items()}
            held = BaseSettings(base_index, await self._read(keys))
            self._bases[vmac.base] = held
            await self._write(keys)
        held.vmacs.add(vmac.name)

    async def _clear_rp_filter(self) -> None:
        """keepalived's clear_rp_filter: all.rp_filter to 0, every interface and `default` kept
        at least at the old value so that the change reaches the VMACs only."""
        if self._rp_filter is not None:
            return
        old = (await self._read({ALL_RP_FILTER: 0}))[ALL_RP_FILTER]
        self._rp_filter = {}
        if old == 0:
            return
        names = ["default", *(name for _index, name in socket.if_nameindex())]
        keys = [conf_key(4, name, "rp_filter") for name in names]
        current = await self._read(dict.fromkeys(keys, 0))
        raised = {key: old for key, value in current.items() if value < old}
        await self._write(raised)
        self._rp_filter = {key: (old, current[key]) for key in raised}
        self._rp_filter[ALL_RP_FILTER] = (0, old)
        log.info("NOTICE: setting sysctl %s from %d to 0", ALL_RP_FILTER, old)
        await self._write({ALL_RP_FILTER: 0})

    async def _add_link_local(self, ipr, index: int, address: ipaddress.IPv6Address) -> None:
        try:
            await ipr.addr(
                "add", index=index, address=str(address), prefixlen=64, flags=IFA_F_NODAD
            )
        except NetlinkError as error:
            if error.code != 17:  # EEXIST: taken over with it
                raise

    async def remove(self, vmac: Vmac) -> None:
        """Delete the macvlan (if it is still there) and put back what its last user set."""
        async with self._serial():
            held = self._bases.get(vmac.base)
            if held is not None and vmac.name in held.vmacs:
                held.vmacs.discard(vmac.name)
                if not held.vmacs:
                    del self._bases[vmac.base]
                    if _index_of(vmac.base) == held.ifindex:
                        await self._write(held.saved)
            ipr = await self.addresses.rtnl()
            found = await ipr.link_lookup(ifname=vmac.name)
            if found:
                try:
                    await ipr.link("del", index=found[0])
                except NetlinkError as error:
                    log.warning("(%s) removing VMAC %s failed: %s", vmac.owner, vmac.name, error)
            if not self._bases:
                await self._restore_rp_filter()

    async def _restore_rp_filter(self) -> None:
        """keepalived's restore_rp_filter: each value put back if it is still the one set."""
        held, self._rp_filter = self._rp_filter or {}, None
        now = await self._read({key: None for key in held})
        back = {key: old for key, (ours, old) in held.items() if now[key] == ours}
        if ALL_RP_FILTER in back:
            log.info("NOTICE: resetting sysctl %s to %d", ALL_RP_FILTER, back[ALL_RP_FILTER])
        await self._write(back)

    async def _read(self, keys: dict) -> dict:
        """The current values of `keys` (the given default for one that is gone)."""

        def read() -> dict:
            values = {}
            for key, default in keys.items():
                try:
                    values[key] = int(self.sysctl.read(key))
                except (OSError, ValueError, ArpSuppressError):
                    values[key] = default
            return values

        return await asyncio.to_thread(read)

    async def _write(self, values: dict) -> None:
        def write() -> None:
            for key, value in values.items():
                try:
                    self.sysctl.write(key, str(value))
                except OSError as error:
                    log.warning("Unable to set sysctl %s to %s: %s", key, value, error.strerror)

        await asyncio.to_thread(write)


def _index_of(ifname: str) -> Optional[int]:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return None
