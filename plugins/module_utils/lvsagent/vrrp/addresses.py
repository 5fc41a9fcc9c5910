"""Virtual addresses through rtnetlink (pyroute2), and the gratuitous ARP / unsolicited NA
frames."""

from __future__ import annotations

import asyncio
import collections
import errno
import fcntl
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Callable

from ..config.model import Config, VirtualAddress
from ..netlink import HAS_PYROUTE2, AsyncIPRoute, missing_pyroute2
from . import packet
from .packet import IPAddress

log = logging.getLogger("lvsagent.vrrp")

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
SIOCGIFHWADDR = 0x8927
Budget = tuple[str, str]  # what shares the slots: ("interface", NAME) or ("garp_group", NUMBER)
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
            if vip.address.network.prefixlen == 128:
                # keepalived's default for a /128: deprecated (preferred_lft 0, RFC 3484), so
                # that the host never picks the VIP as a source (a health check sent from it
                # would get its answer on a DR real server's own copy of the VIP)
                options["preferred_lft"] = 0
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

    As keepalived, a frame of one kind on one interface goes out `vrrp_garp_interval` (ARP) or
    `vrrp_gna_interval` (NA) after the one sent before it, whichever instance sends them; the
    interfaces of a garp_group share one budget, the group's intervals. Frames waiting for
    their turn are queued per budget (`queue`, at most one per address), and an instance
    leaving MASTER takes its own back (`forget`).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sockets: dict[str, tuple[int, socket.socket]] = {}
        self._loop = loop
        self._unpaced = {4: 0.0, 6: 0.0}
        self._groups: dict[str, tuple[Budget, dict[int, float]]] = {}
        self._waiting: dict[tuple[Budget, int], collections.deque] = {}
        self._last_sent: dict[tuple[Budget, int], float] = {}
        self._timers: dict[tuple[Budget, int], asyncio.TimerHandle] = {}

    def pace(self, config: Config) -> None:
        """Take the spacing of a configuration: each garp_group's for its interfaces (an
        interval the group leaves unset is no spacing), the global one for every other."""
        defaults = config.global_defs
        self._unpaced = {4: defaults.vrrp_garp_interval, 6: defaults.vrrp_gna_interval}
        self._groups = {}
        for number, group in enumerate(config.garp_groups):
            spacing = {4: group.garp_interval or 0.0, 6: group.gna_interval or 0.0}
            for ifname in group.interfaces:
                self._groups[ifname] = (("garp_group", str(number)), spacing)

    def _budget(self, ifname: str, version: int) -> tuple[Budget, int]:
        """The queue a frame of this kind on this interface waits in."""
        budget, _spacing = self._groups.get(ifname, (("interface", ifname), None))
        return budget, version

    def _spacing(self, ifname: str, version: int) -> float:
        """Seconds between two frames of this kind on this interface's budget."""
        _budget, spacing = self._groups.get(ifname, (None, self._unpaced))
        return spacing[version]

    def queue(
        self, owner: object, ifname: str, address: IPAddress, sent: Callable[[], None]
    ) -> None:
        """Send the frame when its budget allows (now, when nothing is waiting and the last
        frame is old enough); `sent()` once it went out. As keepalived (a "pending" flag per
        address), an address already waiting is not queued twice: under pacing the rounds of a
        burst that find it waiting collapse into that one frame."""
        key = self._budget(ifname, address.version)
        waiting = self._waiting.setdefault(key, collections.deque())
        if any(entry[1:3] == (ifname, address) for entry in waiting):
            return
        waiting.append((owner, ifname, address, sent))
        if key not in self._timers:
            self._drain(key)

    def forget(self, owner: object) -> None:
        """Drop the frames `owner` queued that did not go out yet."""
        for waiting in self._waiting.values():
            kept = [entry for entry in waiting if entry[0] is not owner]
            waiting.clear()
            waiting.extend(kept)

    def _drain(self, key: tuple[Budget, int]) -> None:
        self._timers.pop(key, None)
        waiting = self._waiting.get(key)
        while waiting:
            _owner, ifname, address, sent = waiting[0]
            spacing = self._spacing(ifname, address.version)
            now = self._loop.time()
            last = self._last_sent.get(key)
            if spacing and last is not None and now < last + spacing:
                self._timers[key] = self._loop.call_at(last + spacing, self._drain, key)
                return
            waiting.popleft()
            self._last_sent[key] = now
            if self.announce(ifname, address):
                sent()

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
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._waiting.clear()
        for _ifindex, sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
