"""One planner for the reconciler and the modules: the fewest changes from the kernel's view
to the desired one.

Additions and edits come before deletions, so a service never goes empty while its members
are being swapped; an unchanged real server is never deleted and re-added (that drops its
connections).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from .model import SLOTS, Destination, IpvsError, Service, ServiceKey, Table, format_endpoint

# What each action did, in the words the modules report (`done`).
_DONE = {
    "add_service": "created service",
    "edit_service": "changed service",
    "delete_service": "deleted service",
    "add_destination": "added real server",
    "edit_destination": "changed real server",
    "delete_destination": "deleted real server",
}


@dataclass(frozen=True, **SLOTS)  # one per real server when a large table is built
class Change:
    action: str  # add_service, edit_service, delete_service, add/edit/delete_destination
    key: ServiceKey
    service: Optional[Service] = None
    destination: Optional[Destination] = None

    def __str__(self) -> str:
        if self.destination is None:
            return f"{self.action} {self.key}"
        return f"{self.action} {self._endpoint()} of {self.key}"

    def done(self) -> str:
        """What the change did, once it succeeded: ``added real server [10.0.0.2]:80``."""
        if self.destination is None:
            return f"{_DONE[self.action]} {self.key}"
        return f"{_DONE[self.action]} {self._endpoint()}"

    def _endpoint(self) -> str:
        return format_endpoint(self.destination.address, self.destination.port)


def _endpoint(dest: Destination) -> tuple:
    """Addresses are canonical text (Destination normalizes them): equal text, equal address."""
    return dest.address, dest.port


def plan_service(
    key: ServiceKey,
    service: Optional[Service],
    destinations: Iterable[Destination],
    live_service: Optional[Service],
    live_destinations: Iterable[Destination],
    *,
    purge: bool = True,
) -> list[Change]:
    """The changes turning one service's live state into the desired one.

    `service` None leaves the service itself alone (only its real servers are planned);
    undeclared real servers are deleted only when `purge` is set.
    """
    changes = []
    if service is not None and live_service is None:
        changes.append(Change("add_service", key, service))
    elif service is not None and live_service != service:
        changes.append(Change("edit_service", key, service))
    live = {_endpoint(d): d for d in live_destinations}
    wanted = {_endpoint(d): d for d in destinations}
    edits = []
    for endpoint, dest in wanted.items():
        if endpoint not in live:
            changes.append(Change("add_destination", key, destination=dest))
        elif live[endpoint] != dest:
            edits.append(Change("edit_destination", key, destination=dest))
    changes.extend(edits)
    if purge:
        changes.extend(
            Change("delete_destination", key, destination=dest)
            for endpoint, dest in live.items()
            if endpoint not in wanted
        )
    return changes


def plan(desired: Table, current: Table, retired: Iterable[ServiceKey] = ()) -> list[Change]:
    """The changes turning `current` into `desired` (real servers purged); `retired` services
    are deleted last.

    Both map keys to (Service, [Destination]); keys `current` lacks are absent from the kernel.
    """
    changes = []
    for key, (service, destinations) in desired.items():
        live_service, live_destinations = current.get(key, (None, []))
        changes.extend(plan_service(key, service, destinations, live_service, live_destinations))
    changes.extend(Change("delete_service", key) for key in retired if key in current)
    return changes


def result(live_destinations: list, changes: list[Change]) -> list:
    """The real servers of one service once `changes` are applied (what check mode reports)."""
    touched = {_endpoint(c.destination): c for c in changes if c.destination is not None}
    kept = [d for d in live_destinations if _endpoint(d) not in touched]
    return kept + [c.destination for c in touched.values() if c.action != "delete_destination"]


def apply(client, changes: list[Change]) -> list[tuple[Change, IpvsError]]:
    """Applies every change, in order, even past a failure (`client.apply` sends them in
    batches); returns (change, error) of each one that failed."""
    return client.apply(changes) if changes else []


class PartlyApplied(IpvsError):
    """Changes failed after others succeeded; `done` says what did change (the modules'
    tasks fail, yet report changed)."""

    def __init__(self, errors: list, done: list):
        messages = "; ".join(str(exc) for exc in errors)
        super().__init__(f"{messages} (already done: {'; '.join(done)})", errors[0].errno)
        self.done = done


def apply_or_raise(client, changes: list[Change]) -> None:
    """Applies the changes; raises the kernel's error when all failed, PartlyApplied when some
    succeeded."""
    failed = apply(client, changes)
    if not failed:
        return
    failing = {id(change) for change, _exc in failed}
    done = [change.done() for change in changes if id(change) not in failing]
    errors = [exc for _change, exc in failed]
    if done:
        raise PartlyApplied(errors, done)
    if len(errors) == 1:
        raise errors[0]
    raise IpvsError("; ".join(str(exc) for exc in errors), errors[0].errno)
