"""An in-memory stand-in for the kernel's IPVS netlink family, for unit tests only.

It takes pyroute2's real request objects, checks them the way net/netfilter/ipvs/ip_vs_ctl.c
does (full entries need scheduler, flags, timeout and netmask; EEXIST, ESRCH, ENOENT), and
answers with real `ipvsmsg` messages that went through pyroute2's encoder and decoder, HASHED
flag included. The real kernel is exercised by tests/integration/ipvs in the guest.
"""

from __future__ import annotations

import errno
import socket

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.ipvs import ipvsmsg

KNOWN_SCHEDULERS = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo"}
KNOWN_SCHEDULERS |= {"ovf", "mh"}
HASHED = 0x2


def _attrs(request) -> dict:
    return dict(request.dump_nla()["attrs"])


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
    msg.encode()
    decoded = ipvsmsg(msg.data)
    decoded.decode()
    return decoded


class FakeIpvsNetlink:
    """Holds services {key: attrs} and destinations {key: {(addr, port): attrs}}."""

    def __init__(self):
        self.services: dict = {}
        self.destinations: dict = {}
        self.commands: list = []  # (object, command) of every request, to assert on
        self.closed = False

    def close(self):
        self.closed = True

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
        key = _service_key(dict(service.dump_key()["attrs"]))
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
