"""Bring the kernel's IPVS table to the desired one with the fewest changes.

Only the services the configuration declares (and those it just stopped declaring, or a
killed run recorded as its own) are looked at: an operator's other services are never
touched. The changes come from the one planner the modules use too (ipvs.plan).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..ipvs import IpvsClient, ServiceKey, codec
from ..ipvs.plan import Change, plan
from ..ipvs.plan import apply as apply_changes

log = logging.getLogger("lvsagent.lvs")

Desired = dict  # dict[ServiceKey, tuple[Service, list[Destination]]]


def apply(client: IpvsClient, changes: list[Change]) -> list[Change]:
    """Applies the changes; a failed one is logged and left for the next pass.

    Returns the changes that failed.
    """
    failed = apply_changes(client, changes)
    for _change, exc in failed:
        log.error("%s", exc)
    if log.isEnabledFor(logging.DEBUG):
        failing = {id(change) for change, _exc in failed}
        for change in changes:
            if id(change) not in failing:
                log.debug("IPVS: %s", change)
    return [change for change, _exc in failed]


def read_current(client: IpvsClient, keys: Iterable[ServiceKey], *, whole_table: bool) -> dict:
    """The kernel's view of `keys` (no counters): one dump of the whole table, or one query
    per service."""
    keys = set(keys)
    if whole_table:
        return {key: entry for key, entry in client.table(stats=False).items() if key in keys}
    current = {}
    for key, service in _live_services(client, keys, whole_table=False).items():
        current[key] = (service, client.destinations(key, stats=False))
    return current


def _live_services(client: IpvsClient, keys: set, *, whole_table: bool) -> dict:
    if whole_table:
        return {svc.key: svc for svc in client.services(stats=False) if svc.key in keys}
    services = {key: client.service(key, stats=False) for key in keys}
    return {key: service for key, service in services.items() if service is not None}


def sync(client: IpvsClient, desired: Desired, retired, whole_table: bool) -> tuple:
    """Read, compare, change: one job on the netlink thread. Returns (changes, failed).

    Each service's real servers are compared by fingerprint first; only a service whose
    fingerprint moved is decoded and planned, so a pass over an unchanged table builds no
    Destination at all.
    """
    live = _live_services(client, set(desired) | set(retired), whole_table=whole_table)
    current, unchanged = {}, set()
    for key, live_service in live.items():
        if key not in desired:  # retired
            current[key] = (live_service, [])
            continue
        service, destinations = desired[key]
        expected = frozenset(codec.expected_fingerprint(d) for d in destinations)
        live_destinations = client.changed_destinations(key, expected)
        if live_destinations is None and live_service == service:
            unchanged.add(key)
        else:
            current[key] = (
                live_service,
                destinations if live_destinations is None else live_destinations,
            )
    todo = {key: entry for key, entry in desired.items() if key not in unchanged}
    changes = plan(todo, current, retired)
    return changes, apply(client, changes)
