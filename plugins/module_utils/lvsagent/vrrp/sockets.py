"""Raw IP protocol 112 sockets, one per (interface, family), shared by the instances on it.

Sending builds keepalived's own IPv4 header (IP_HDRINCL, TOS 0xc0, TTL 255, IP ID from 1) so
the frames equal keepalived's; IPv6 sets hop limit 255 and traffic class 0xc0 by option and
computes the VRRP checksum itself. Receiving reads the TTL / hop limit and the destination so
that the instance can apply the receive rules; nothing here raises on what the network sends.
On IPv4 a second, bulk socket takes what the kernel filters (kernel_filter) find cannot be a
real advert, so that a flood of those never pushes a real advert out of the first queue.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Callable, Optional

from . import kernel_filter, packet
from .packet import InvalidPacket, IPAddress
from .receive import Drops, ReceiveRules

log = logging.getLogger("lvsagent.vrrp")

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_MULTICAST_ALL = 49  # Linux: deliver only the groups joined on this socket
RECEIVE_BUFFER = 65535
QUIET_SEND_ERRORS = (errno.ENETDOWN, errno.ENXIO, errno.ENODEV)  # the link is down or gone


@dataclass(frozen=True)
class Received:
    """A VRRP message as it arrived, before any check."""

    message: bytes
    source: IPAddress
    destination: IPAddress
    ttl: int
    ifname: str


class VrrpSocket:
    """Protocol 112 on one interface and family: send adverts, hand received ones to a callback."""

    def __init__(
        self,
        ifname: str,
        family: int,
        on_receive: Callable[[Received], None],
        drops: Drops,
    ) -> None:
        self.ifname = ifname
        self.family = family
        self.on_receive = on_receive
        self.drops = drops
        self.ifindex: int | None = socket.if_nametoindex(ifname)
        self._ip_id = 0
        self._joined: set[IPAddress] = set()
        self._send_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._filter_rules: dict = {}
        self.sock: socket.socket | None = None
        self.bulk: socket.socket | None = None
        self._open_all()

    def _open(self) -> socket.socket:
        af = socket.AF_INET if self.family == 4 else socket.AF_INET6
        sock = socket.socket(af, socket.SOCK_RAW, packet.IPPROTO_VRRP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.ifname.encode())
            if self.family == 4:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
                interface = struct.pack("4s4si", b"\0" * 4, b"\0" * 4, self.ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, interface)
            else:
                for option, value in (
                    (socket.IPV6_MULTICAST_HOPS, packet.VRRP_TTL),
                    (socket.IPV6_UNICAST_HOPS, packet.VRRP_TTL),
                    (socket.IPV6_TCLASS, packet.VRRP_TOS),
                    (socket.IPV6_MULTICAST_LOOP, 0),
                    (socket.IPV6_MULTICAST_IF, self.ifindex),
                    (socket.IPV6_RECVHOPLIMIT, 1),
                    (socket.IPV6_RECVPKTINFO, 1),
                ):
                    sock.setsockopt(socket.IPPROTO_IPV6, option, value)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def join(self, group: IPAddress) -> None:
        """Multicast membership on this interface (224.0.0.18 / ff02::12 by default)."""
        if group in self._joined:
            return
        if self.sock is not None:
            self._add_membership(group)
        self._joined.add(group)

    def _add_membership(self, group: IPAddress) -> None:
        if self.family == 4:
            request = struct.pack("4s4si", group.packed, b"\0" * 4, self.ifindex)
            for sock in self._receivers():
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
        else:
            request = struct.pack("16sI", group.packed, self.ifindex)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, request)

    def set_filter(self, rules_by_vrid: dict) -> None:
        """IPv4: the kernel sorts the adverts by the instances' rules (kernel_filter)."""
        self._filter_rules = rules_by_vrid
        if self.bulk is not None:
            first, bulk = kernel_filter.ipv4_programs(rules_by_vrid)
            kernel_filter.attach(self.sock, first)
            kernel_filter.attach(self.bulk, bulk)

    def _receivers(self) -> list[socket.socket]:
        return [sock for sock in (self.sock, self.bulk) if sock is not None]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for sock in self._receivers():
            loop.add_reader(sock.fileno(), self._readable, sock)

    def close(self) -> None:
        self._shut()
        self._loop = None

    def _open_all(self) -> None:
        """The socket and, on IPv4, its bulk companion (kernel_filter): both or neither."""
        self.sock = self._open()
        try:
            # IPv4: what the kernel filter does not find a possible advert queues here instead
            self.bulk = self._open() if self.family == 4 else None
        except OSError:
            self.sock.close()
            self.sock = None
            raise

    def _shut(self) -> None:
        for sock in self._receivers():
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self.sock = self.bulk = None

    def follow(self, ifindex: int | None) -> None:
        """The interface was deleted (None: close) or is there again under a new index: the old
        sockets and their memberships are bound to the old index, so open anew and re-join."""
        if ifindex == self.ifindex and self.sock is not None:
            return
        self._shut()
        self.ifindex = ifindex
        if ifindex is None or self._loop is None:
            return
        try:
            self._open_all()
            for group in self._joined:
                self._add_membership(group)
            self.set_filter(self._filter_rules)  # before the first read, as at start
        except OSError as error:
            log.warning("VRRP socket on %s cannot be opened: %s", self.ifname, error.strerror)
            self._shut()
            return
        self._send_errors = 0
        for sock in self._receivers():
            self._loop.add_reader(sock.fileno(), self._readable, sock)
        log.info("VRRP socket on %s reopened (ifindex %d)", self.ifname, ifindex)

    # -- sending ---------------------------------------------------------------------------------
    def send(
        self,
        advert: packet.Advertisement,
        source: IPAddress,
        destination: IPAddress,
        ttl: Optional[int] = None,
    ) -> bool:
        """`ttl`: unicast_ttl, a unicast advert's TTL / hop limit (None: 255 / the socket's)."""
        if self.sock is None:
            return False
        message = packet.encode(advert, source, destination)
        try:
            if self.family == 4:
                self._ip_id = self._ip_id % 0xFFFF + 1
                datagram = packet.ipv4_header(
                    source,
                    destination,
                    len(message),
                    self._ip_id,
                    packet.VRRP_TTL if ttl is None else ttl,
                )
                self.sock.sendto(datagram + message, (str(destination), 0))
            else:
                # the source the checksum was computed with, whatever the routing would pick
                source_info = struct.pack("16sI", source.packed, self.ifindex)
                ancillary = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, source_info)]
                if ttl is not None:
                    ancillary.append(
                        (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("i", ttl))
                    )
                self.sock.sendmsg(
                    [message],
                    ancillary,
                    0,
                    (str(destination), 0, 0, self.ifindex),
                )
        except OSError as error:
            self._send_errors += 1
            if self._send_errors == 1 or error.errno not in QUIET_SEND_ERRORS:
                log.warning("VRRP send on %s failed: %s", self.ifname, error.strerror)
            return False
        self._send_errors = 0
        return True

    # -- receiving -------------------------------------------------------------------------------
    def _readable(self, sock: socket.socket) -> None:
        """Drain what is queued; a bad packet is counted and dropped, never raised."""
        for _attempt in range(64):
            try:
                received = self._receive_one(sock)
            except BlockingIOError:
                return
            except InvalidPacket as bad:
                self.drops.drop(self.ifname, bad.reason, f"VRRP packet on {self.ifname}: {bad}")
                continue
            except OSError as error:
                log.debug("VRRP receive on %s: %s", self.ifname, error)
                return
            if received is not None:
                self.on_receive(received)

    def _receive_one(self, sock: socket.socket) -> Received | None:
        if self.family == 4:
            data, _sender = sock.recvfrom(RECEIVE_BUFFER)
            header = packet.parse_ipv4_header(data)
            if header.protocol != packet.IPPROTO_VRRP:
                return None
            return Received(
                message=data[header.header_len : header.total_len],
                source=header.source,
                destination=header.destination,
                ttl=header.ttl,
                ifname=self.ifname,
            )
        ancillary_space = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(20)
        data, ancillary, _msg_flags, address = sock.recvmsg(RECEIVE_BUFFER, ancillary_space)
        hop_limit, destination = -1, None
        for level, kind, value in ancillary:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                hop_limit = struct.unpack("i", value[:4])[0]
            elif kind == socket.IPV6_PKTINFO and len(value) >= 16:
                destination = ipaddress.IPv6Address(value[:16])
        if destination is None:
            raise InvalidPacket("truncated", "no destination address")
        source = ipaddress.IPv6Address(address[0].split("%")[0])
        return Received(data, source, destination, hop_limit, self.ifname)


class SocketPool:
    """One socket per (interface, family); each instance registers its VRID on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, drops: Drops) -> None:
        self.loop = loop
        self.drops = drops
        self._sockets: dict[tuple[str, int], VrrpSocket] = {}
        self._handlers: dict[tuple[str, int], dict[int, Callable[[Received], None]]] = {}
        self._rules: dict[tuple[str, int], dict[int, ReceiveRules]] = {}

    def register(
        self,
        ifname: str,
        family: int,
        vrid: int,
        handler: Callable[[Received], None],
        rules: ReceiveRules,
    ) -> VrrpSocket:
        """Add (or, on reload, update) an instance: its handler and the rules of its filter."""
        key = (ifname, family)
        new = key not in self._sockets
        if new:
            self._sockets[key] = VrrpSocket(
                ifname, family, lambda got: self._dispatch(key, got), self.drops
            )
            self._handlers[key] = {}
            self._rules[key] = {}
        self._handlers[key][vrid] = handler
        self._rules[key][vrid] = rules
        sock = self._sockets[key]
        sock.set_filter(self._rules[key])
        if new:
            sock.start(self.loop)  # once the filters sort what arrives
        return sock

    def unregister(self, ifname: str, family: int, vrid: int) -> None:
        key = (ifname, family)
        handlers = self._handlers.get(key, {})
        handlers.pop(vrid, None)
        self._rules.get(key, {}).pop(vrid, None)
        if not handlers and key in self._sockets:
            self._sockets.pop(key).close()
            self._handlers.pop(key, None)
            self._rules.pop(key, None)
        elif key in self._sockets:
            self._sockets[key].set_filter(self._rules[key])

    def _dispatch(self, key: tuple[str, int], received: Received) -> None:
        vrid = received.message[1] if len(received.message) > 1 else -1
        handler = self._handlers.get(key, {}).get(vrid)
        if handler is None:
            # keepalived too says nothing of other routers' VRIDs (unless log_unknown_vrids)
            message = f"VRRP packet for unknown VRID {vrid} on {key[0]}"
            self.drops.drop(key[0], "vrid", message, logging.DEBUG)
            return
        try:
            handler(received)
        except Exception:  # a bug must not take the agent down with one packet
            message = f"VRRP packet from {received.source} on {key[0]} not handled"
            self.drops.drop(key[0], "internal", message, logging.ERROR, exc_info=True)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self._handlers.clear()
        self._rules.clear()
