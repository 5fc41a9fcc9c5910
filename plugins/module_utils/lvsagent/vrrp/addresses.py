"""Virtual addresses through rtnetlink (pyroute2), and the gratuitous ARP / unsolicited NA
frames."""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Callable

from ..config.model import VirtualAddress
from ..netlink import HAS_PYROUTE2, AsyncIPRoute, missing_pyroute2
from . import packet
from .packet import IPAddress

log = logging.getLogger("lvsagent.vrrp")

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
SIOCGIFHWADDR = 0x8927
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


@dataclass(frozen=True)
class AddressEntry:
    ifindex: int
    address: str
    prefixlen: int
    secondary: bool


def interface_mac(ifname: str) -> str:
    """The interface's own MAC (keepalived sends from it unless use_vmac)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("256s", ifname.encode()[:15])
        answer = fcntl.ioctl(probe.fileno(), SIOCGIFHWADDR, request)
    return ":".join(f"{byte:02x}" for byte in answer[18:24])


class AddressManager:
    """Adds, removes and lists addresses; one rtnetlink socket in the agent's loop."""

    def __init__(self) -> None:
        self._ipr = None

    async def rtnl(self):
        if self._ipr is None:
            if not HAS_PYROUTE2:
                raise RuntimeError(f"lvs-agent run: {missing_pyroute2()}")
            self._ipr = AsyncIPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def addresses(self) -> list[AddressEntry]:
        ipr = await self.rtnl()
        return [
            AddressEntry(
                ifindex=msg["index"],
                address=msg.get("address"),
                prefixlen=msg["prefixlen"],
                secondary=bool(msg["flags"] & IFA_F_SECONDARY),
            )
            async for msg in await ipr.addr("dump")
        ]

    async def source_address(self, ifname: str, family: int) -> IPAddress | None:
        """keepalived's choice: the primary IPv4 address, or the IPv6 link-local address."""
        ifindex = socket.if_nametoindex(ifname)
        for entry in await self.addresses():
            if entry.ifindex != ifindex or entry.secondary:
                continue
            address = ipaddress.ip_address(entry.address)
            if family == 4 and address.version == 4:
                return address
            if family == 6 and address.version == 6 and address.is_link_local:
                return address
        return None

    async def present(self, vip: VirtualAddress, ifname: str) -> bool:
        ifindex = socket.if_nametoindex(ifname)
        wanted = str(vip.address.ip)
        return any(
            entry.ifindex == ifindex and entry.address == wanted for entry in await self.addresses()
        )

    async def add(self, vip: VirtualAddress, ifname: str) -> None:
        ipr = await self.rtnl()
        options = {
            "index": socket.if_nametoindex(ifname),
            "address": str(vip.address.ip),
            "prefixlen": vip.address.network.prefixlen,
        }
        if vip.family == 6:
            options["flags"] = IFA_F_NODAD
        if vip.label:
            options["label"] = vip.label
        if vip.broadcast:
            options["broadcast"] = vip.broadcast
        if vip.scope:
            options["scope"] = SCOPES.get(vip.scope, vip.scope)
        try:
            await ipr.addr("add", **options)
        except Exception as error:
            if getattr(error, "code", None) != errno.EEXIST:
                raise

    async def remove(self, vip: VirtualAddress, ifname: str) -> None:
        ipr = await self.rtnl()
        try:
            ifindex = socket.if_nametoindex(ifname)
        except OSError:
            return  # the interface is gone, and its addresses with it
        try:
            await ipr.addr(
                "del",
                index=ifindex,
                address=str(vip.address.ip),
                prefixlen=vip.address.network.prefixlen,
            )
        except Exception as error:
            if getattr(error, "code", None) not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                raise


class Announcer:
    """Sends gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) as frames.

    A packet socket is bound to an interface index: one deleted and re-created under the same
    name needs a new socket, so each is kept with the index it was bound to and checked.

    As keepalived, frames of one kind on one interface are kept `vrrp_garp_interval` (ARP) or
    `vrrp_gna_interval` (NA) apart, whichever instance sends them: `reserve` hands out the slots.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._sockets: dict[str, tuple[int, socket.socket]] = {}
        self._clock = clock
        self._next_free: dict[tuple[str, int], float] = {}

    def reserve(self, ifname: str, version: int, spacing: float) -> float:
        """Seconds from now until a frame of this IP version may go out on this interface."""
        if not spacing:
            return 0.0
        now = self._clock()
        slot = max(now, self._next_free.get((ifname, version), now))
        self._next_free[(ifname, version)] = slot + spacing
        return slot - now

    def announce(self, ifname: str, address: IPAddress) -> bool:
        """True when the frame went out."""
        try:
            mac = interface_mac(ifname)
            if address.version == 4:
                frame = packet.gratuitous_arp(mac, address)
                log.info("Sending gratuitous ARP on %s for %s", ifname, address)
            else:
                frame = packet.unsolicited_neighbour_advert(mac, address)
                log.info("Sending unsolicited Neighbour Advert on %s for %s", ifname, address)
            self._socket(ifname).send(frame)
        except OSError as error:
            log.warning("Announcing %s on %s failed: %s", address, ifname, error.strerror)
            return False
        return True

    def _socket(self, ifname: str) -> socket.socket:
        ifindex = socket.if_nametoindex(ifname)
        bound, sock = self._sockets.get(ifname, (None, None))
        if bound != ifindex:
            if sock is not None:
                sock.close()
                del self._sockets[ifname]
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            try:
                sock.bind((ifname, 0))
            except OSError:
                sock.close()
                raise
            self._sockets[ifname] = (ifindex, sock)
        return sock

    def close(self) -> None:
        for _ifindex, sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
