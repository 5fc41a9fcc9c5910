"""IpvsClient: reads and changes the kernel's IPVS table over generic netlink.

pyroute2 quirks handled here (measured against a real kernel):
- ``"update"`` sends a DELETE: edits use ``"set"``.
- ``from_message()`` fills missing fields with defaults: values are read from the raw
  ``IPVS_*_ATTR_*`` attributes instead.
- Dumped service flags carry HASHED (0x2), an internal kernel bit: it is masked.
- The kernel wants a netmask with every service (fwmark ones included); for IPv6 that
  "netmask" is a prefix length carried in the same 32 bits, in host byte order.
"""

from __future__ import annotations

import errno
import os
from typing import Optional

from ..netlink import HAS_PYROUTE2, IPVS, NetlinkError, missing_pyroute2
from .codec import (
    destination_from_message,
    destination_request,
    service_from_message,
    service_request,
)
from .model import Destination, IpvsError, Service, ServiceKey, Table, format_endpoint


class IpvsClient:
    """Reads and changes the kernel's IPVS table of the current network namespace.

    `netlink` is anything with pyroute2's ``IPVS`` interface (``service(cmd, service)``,
    ``dest(cmd, service, dest)``); unit tests pass a fake, everything else the real socket.
    """

    def __init__(self, netlink=None):
        if netlink is None:
            if not HAS_PYROUTE2:
                raise IpvsError(missing_pyroute2())
            try:
                netlink = IPVS()
            except NetlinkError as exc:
                raise self._connect_error(exc) from None
            except OSError as exc:
                raise IpvsError(f"cannot open a netlink socket: {exc}", exc.errno or 0) from None
        self._netlink = netlink

    def close(self) -> None:
        close = getattr(self._netlink, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> IpvsClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- services -------------------------------------------------------------------------

    def services(self) -> list:
        """Every virtual service, with its stats."""
        messages = self._call("list the virtual services", self._netlink.service, "dump")
        return [service_from_message(msg) for msg in messages]

    def service(self, key: ServiceKey) -> Optional[Service]:
        """The service as the kernel holds it, or None."""
        try:
            messages = self._service_call("get", f"read virtual service {key}", key)
        except IpvsError as exc:
            if exc.errno == errno.ESRCH:
                return None
            raise
        return next((service_from_message(msg) for msg in messages), None)

    def add_service(self, service: Service) -> None:
        self._service_call("add", f"add virtual service {service.key}", service.key, service)

    def edit_service(self, service: Service) -> None:
        self._service_call("set", f"change virtual service {service.key}", service.key, service)

    def delete_service(self, key: ServiceKey) -> None:
        self._service_call("del", f"delete virtual service {key}", key)

    def _service_call(self, command: str, action: str, key: ServiceKey, service=None):
        scheduler = service.scheduler if service is not None else None
        request = service_request(key, service)
        return self._call(action, self._netlink.service, command, request, scheduler=scheduler)

    # -- destinations ---------------------------------------------------------------------

    def destinations(self, key: ServiceKey) -> list:
        """The real servers of the service; none when the service does not exist (the kernel
        answers a dump for a missing service with nothing)."""
        messages = self._dest_call("dump", f"list the real servers of {key}", key)
        return [destination_from_message(msg) for msg in messages]

    def add_destination(self, key: ServiceKey, dest: Destination) -> None:
        endpoint = format_endpoint(dest.address, dest.port)
        self._dest_call("add", f"add real server {endpoint} to {key}", key, dest)

    def edit_destination(self, key: ServiceKey, dest: Destination) -> None:
        endpoint = format_endpoint(dest.address, dest.port)
        self._dest_call("set", f"change real server {endpoint} of {key}", key, dest)

    def delete_destination(self, key: ServiceKey, address: str, port: int) -> None:
        dest = Destination(address, port)
        endpoint = format_endpoint(dest.address, dest.port)
        self._dest_call("del", f"delete real server {endpoint} from {key}", key, dest)

    def _dest_call(self, command: str, action: str, key: ServiceKey, dest=None):
        args = [service_request(key)]
        if dest is not None:
            args.append(destination_request(dest))
        return self._call(action, self._netlink.dest, command, *args)

    def table(self) -> Table:
        """The whole table: {key: (service, [destinations])}."""
        return {svc.key: (svc, self.destinations(svc.key)) for svc in self.services()}

    # -- errors ---------------------------------------------------------------------------

    @staticmethod
    def _connect_error(exc) -> IpvsError:
        if exc.code == errno.ENOENT:
            return IpvsError(
                "IPVS is not available in this kernel: load the ip_vs module", errno.ENOENT
            )
        if exc.code in (errno.EPERM, errno.EACCES):
            return IpvsError("IPVS needs root (CAP_NET_ADMIN): permission denied", exc.code)
        return IpvsError(f"cannot reach IPVS over netlink: {exc}", exc.code)

    def _call(self, action: str, method, *args, scheduler: Optional[str] = None):
        """Runs one netlink request; `scheduler` is given for service add/edit requests."""
        try:
            return tuple(method(*args))
        except NetlinkError as exc:
            raise self._translate(action, exc.code, scheduler) from None
        except OSError as exc:
            raise IpvsError(f"cannot {action}: {exc}", exc.errno or 0) from None

    @staticmethod
    def _translate(action: str, code: int, scheduler: Optional[str]) -> IpvsError:
        if code == errno.EEXIST:
            reason = "it already exists"
        elif code == errno.ESRCH:
            reason = "the virtual service does not exist"
        elif code == errno.ENOENT and scheduler is not None:
            reason = f"scheduler {scheduler!r} is not available (no ip_vs_{scheduler} module)"
        elif code == errno.ENOENT:
            reason = "the real server does not exist"
        elif code in (errno.EPERM, errno.EACCES):
            reason = "permission denied: IPVS needs root (CAP_NET_ADMIN)"
        elif code == errno.ERANGE:
            reason = "the lower threshold is above the upper threshold (ERANGE)"
        elif code == errno.EINVAL:
            reason = "the kernel rejected the request as invalid (EINVAL)"
        else:
            reason = f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
        return IpvsError(f"cannot {action}: {reason}", code)
