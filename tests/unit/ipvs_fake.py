"""An in-memory stand-in for the kernel's IPVS netlink family, for unit tests only.

It speaks bytes, as the kernel does: each datagram the client sends is split into netlink
messages and decoded with pyroute2's `ipvsmsg` (a codec independent of ours), checked the way
net/netfilter/ipvs/ip_vs_ctl.c does (full entries need scheduler, flags, timeout and netmask;
EEXIST, ESRCH, ENOENT), and answered with messages pyroute2 encoded, HASHED flag included,
then acknowledgements or errors carrying the request's sequence number. The real kernel is
exercised by tests/integration/ipvs in the guest.
"""

from __future__ import annotations

import errno
import socket
import struct

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.ipvs import ipvsmsg

KNOWN_SCHEDULERS = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo"}
KNOWN_SCHEDULERS |= {"ovf", "mh"}
HASHED = 0x2


FAMILY_ID = 0x2A
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x2, 0x4, 0x300
_SERVICE_COMMANDS = {1: "add", 2: "set", 3: "del", 4: "get"}
_DEST_COMMANDS = {5: "add", 6: "set", 7: "del", 8: "dump"}


def _attrs(nla) -> dict:
    """{name: value} of a decoded nested attribute (flags as a plain dict)."""
    found = {}
    for name, value in nla["attrs"]:
        if name == "IPVS_SVC_ATTR_FLAGS":
            value = {"flags": value["flags"], "mask": value["mask"]}
        found[name] = value
    return found


def _header(kind: int, flags: int, seq: int, payload: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0) + payload


def _service_key(attrs: dict) -> tuple:
    if "IPVS_SVC_ATTR_AF" not in attrs:
        raise NetlinkError(errno.EINVAL)
    if attrs.get("IPVS_SVC_ATTR_FWMARK"):
        return (int(attrs["IPVS_SVC_ATTR_AF"]), attrs["IPVS_SVC_ATTR_FWMARK"])
    needed = ("IPVS_SVC_ATTR_PROTOCOL", "IPVS_SVC_ATTR_ADDR", "IPVS_SVC_ATTR_PORT")
    if any(name not in attrs for name in needed):
        raise NetlinkError(errno.EINVAL)
    return (int(attrs["IPVS_SVC_ATTR_AF"]), *(attrs[name] for name in needed))


def _message(cmd: int, nla: str, attrs: list) -> ipvsmsg:
    msg = ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = [(nla, {"attrs": attrs})]
    return msg


class FakeIpvsNetlink:
    """Holds services {key: attrs} and destinations {key: {(addr, port): attrs}}."""

    def __init__(self):
        self.services: dict = {}
        self.destinations: dict = {}
        self.commands: list = []  # (object, command) of every request, to assert on
        self.datagrams: list = []  # sizes of the datagrams received, in messages
        self.received = 0  # datagrams the client read (receive calls)
        self.closed = False
        self.family = FAMILY_ID
        self._replies: list = []

    def close(self):
        self.closed = True

    # -- the wire -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        offset, count = 0, 0
        while offset < len(data):
            length = struct.unpack_from("=I", data, offset)[0]
            self._handle(data[offset : offset + length])
            offset += (length + 3) & ~3
            count += 1
        self.datagrams.append(count)

    def recv(self) -> bytes:
        self.received += 1
        return self._replies.pop(0)

    def _handle(self, raw: bytes) -> None:
        request = ipvsmsg(raw)
        request.decode()
        header = request["header"]
        assert header["type"] == FAMILY_ID, "sent to another family"
        seq, flags, cmd = header["sequence_number"], header["flags"], request["cmd"]
        service = request.get_attr("IPVS_CMD_ATTR_SERVICE")
        try:
            if cmd in _SERVICE_COMMANDS:
                dump = flags & NLM_F_DUMP == NLM_F_DUMP
                command = "dump" if dump else _SERVICE_COMMANDS[cmd]
                replies = self.service(command, service)
            else:
                dest = request.get_attr("IPVS_CMD_ATTR_DEST")
                replies = self.dest(_DEST_COMMANDS[cmd], service, dest)
        except NetlinkError as exc:
            self._replies.append(
                _header(NLMSG_ERROR, 0, seq, struct.pack("=i", -exc.code) + raw[:16])
            )
            return
        out = b""
        multi = NLM_F_MULTI if flags & NLM_F_DUMP == NLM_F_DUMP else 0
        for reply in replies:
            reply["header"] = {"type": FAMILY_ID, "flags": multi, "sequence_number": seq, "pid": 0}
            reply.encode()
            out += bytes(reply.data)
        if multi:
            out += _header(NLMSG_DONE, NLM_F_MULTI, seq, struct.pack("=i", 0))
        elif flags & NLM_F_ACK:
            out += _header(NLMSG_ERROR, 0, seq, struct.pack("=i", 0) + raw[:16])
        if out:  # as the kernel: a success without NLM_F_ACK is not answered
            self._replies.append(out)

    # -- services -------------------------------------------------------------------------

    def service(self, command, service=None):
        self.commands.append(("service", command))
        if command == "dump":
            return [self._service_message(key) for key in self.services]
        attrs = _attrs(service)
        key = _service_key(attrs)
        if command == "get":
            self._existing(key)
            return [self._service_message(key)]
        if command == "del":
            self._existing(key)
            del self.services[key]
            del self.destinations[key]
            return []
        full = ("IPVS_SVC_ATTR_SCHED_NAME", "IPVS_SVC_ATTR_FLAGS", "IPVS_SVC_ATTR_TIMEOUT")
        if any(name not in attrs for name in (*full, "IPVS_SVC_ATTR_NETMASK")):
            raise NetlinkError(errno.EINVAL)
        if attrs["IPVS_SVC_ATTR_SCHED_NAME"] not in KNOWN_SCHEDULERS:
            raise NetlinkError(errno.ENOENT)
        if command == "add":
            if key in self.services:
                raise NetlinkError(errno.EEXIST)
            old_flags = 0
            self.destinations[key] = {}
        elif command == "set":
            old_flags = self._existing(key)["IPVS_SVC_ATTR_FLAGS"]["flags"]
        else:
            raise AssertionError(f"the layer must not send service {command!r}")
        flags = attrs["IPVS_SVC_ATTR_FLAGS"]
        merged = (old_flags & ~flags["mask"]) | (flags["flags"] & flags["mask"]) | HASHED
        attrs["IPVS_SVC_ATTR_FLAGS"] = {"flags": merged, "mask": 0xFFFFFFFF}
        self.services[key] = attrs
        return []

    def _existing(self, key) -> dict:
        if key not in self.services:
            raise NetlinkError(errno.ESRCH)
        return self.services[key]

    def _service_message(self, key) -> ipvsmsg:
        attrs = dict(self.services[key])
        if attrs.get("IPVS_SVC_ATTR_FWMARK"):  # the kernel reports a fwmark service by mark only
            for name in ("IPVS_SVC_ATTR_PROTOCOL", "IPVS_SVC_ATTR_ADDR", "IPVS_SVC_ATTR_PORT"):
                attrs.pop(name, None)
        attrs.setdefault("IPVS_SVC_ATTR_STATS64", {"attrs": [("IPVS_STATS_ATTR_CONNS", 0)]})
        return _message(4, "IPVS_CMD_ATTR_SERVICE", list(attrs.items()))

    # -- destinations ---------------------------------------------------------------------

    def dest(self, command, service, dest=None):
        self.commands.append(("dest", command))
        key = _service_key(_attrs(service))
        dests = self.destinations.get(key)
        if dests is None:
            raise NetlinkError(errno.ESRCH)
        if command == "dump":
            return [_message(8, "IPVS_CMD_ATTR_DEST", list(a.items())) for a in dests.values()]
        attrs = _attrs(dest)
        dest_key = (attrs["IPVS_DEST_ATTR_ADDR"], attrs["IPVS_DEST_ATTR_PORT"])
        if command == "add":
            if dest_key in dests:
                raise NetlinkError(errno.EEXIST)
            family = int(attrs["IPVS_DEST_ATTR_ADDR_FAMILY"])
            if family != key[0] and attrs["IPVS_DEST_ATTR_FWD_METHOD"] != 2:
                raise NetlinkError(errno.EINVAL)  # mixed families only through tunnels
        elif command in ("set", "del"):
            if dest_key not in dests:
                raise NetlinkError(errno.ENOENT)
            if command == "del":
                del dests[dest_key]
                return []
        else:
            raise AssertionError(f"the layer must not send dest {command!r}")
        dests[dest_key] = attrs
        return []

    # -- helpers for tests ----------------------------------------------------------------

    def put_service(self, attrs: dict) -> None:
        """Inserts a service the way ipvsadm would have made it (bypassing the layer)."""
        attrs.setdefault("IPVS_SVC_ATTR_AF", socket.AF_INET)
        key = _service_key(attrs)
        self.services[key] = attrs
        self.destinations.setdefault(key, {})
