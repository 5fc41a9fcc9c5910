"""Bring the kernel's IPVS table to the desired one with the fewest changes.

Only the services the configuration declares (and those it just stopped declaring, or a
killed run recorded as its own) are looked at: an operator's other services are never
touched. An unchanged destination is never deleted and re-added, so adopting a table left by
a previous run keeps connections.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from ..ipvs import Destination, IpvsClient, IpvsError, Service, ServiceKey, format_endpoint

log = logging.getLogger("lvsagent.lvs")

Desired = dict  # dict[ServiceKey, tuple[Service, list[Destination]]]


@dataclass(frozen=True)
class Change:
    action: str  # add_service, edit_service, delete_service, add/edit/delete_destination
    key: ServiceKey
    service: Optional[Service] = None
    destination: Optional[Destination] = None

    def __str__(self) -> str:
        if self.destination is None:
            return f"{self.action} {self.key}"
        endpoint = format_endpoint(self.destination.address, self.destination.port)
        return f"{self.action} {endpoint} of {self.key}"


def _endpoint(dest: Destination) -> tuple:
    return ipaddress.ip_address(dest.address), dest.port


def plan(desired: Desired, current: dict, retired: Iterable[ServiceKey] = ()) -> list[Change]:
    """The changes turning `current` into `desired`; `retired` services are deleted.

    `current` maps keys to (Service, [Destination]) as the kernel holds them; keys it lacks
    are absent from the kernel. Destinations are added before stale ones are deleted, so a
    service never goes empty while its members are being swapped.
    """
    changes = [Change("delete_service", key) for key in retired if key in current]
    for key, (service, destinations) in desired.items():
        live_service, live_destinations = current.get(key, (None, []))
        if live_service is None:
            changes.append(Change("add_service", key, service))
        elif live_service != service:
            changes.append(Change("edit_service", key, service))
        live = {_endpoint(d): d for d in live_destinations}
        wanted = {_endpoint(d): d for d in destinations}
        for endpoint, dest in wanted.items():
            if endpoint not in live:
                changes.append(Change("add_destination", key, destination=dest))
            elif live[endpoint] != dest:
                changes.append(Change("edit_destination", key, destination=dest))
        for endpoint, dest in live.items():
            if endpoint not in wanted:
                changes.append(Change("delete_destination", key, destination=dest))
    return changes


def apply(client: IpvsClient, changes: list[Change]) -> list[Change]:
    """Applies the changes; a failed one is logged and left for the next pass.

    Returns the changes that failed.
    """
    failed = []
    for change in changes:
        try:
            if change.action == "add_service":
                client.add_service(change.service)
            elif change.action == "edit_service":
                client.edit_service(change.service)
            elif change.action == "delete_service":
                client.delete_service(change.key)
            elif change.action == "add_destination":
                client.add_destination(change.key, change.destination)
            elif change.action == "edit_destination":
                client.edit_destination(change.key, change.destination)
            else:
                dest = change.destination
                client.delete_destination(change.key, dest.address, dest.port)
        except IpvsError as exc:
            log.error("%s", exc)
            failed.append(change)
        else:
            log.debug("IPVS: %s", change)
    return failed


def read_current(client: IpvsClient, keys: Iterable[ServiceKey], *, whole_table: bool) -> dict:
    """The kernel's view of `keys`: one dump of the whole table, or one query per service."""
    keys = set(keys)
    if whole_table:
        return {key: entry for key, entry in client.table().items() if key in keys}
    current = {}
    for key in keys:
        service = client.service(key)
        if service is not None:
            current[key] = (service, client.destinations(key))
    return current
