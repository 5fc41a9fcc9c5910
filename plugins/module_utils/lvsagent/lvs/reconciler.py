"""Bring the kernel's IPVS table to the desired one with the fewest changes.

Only the services the configuration declares (and those it just stopped declaring, or a
killed run recorded as its own) are looked at: an operator's other services are never
touched. The changes come from the one planner the modules use too (ipvs.plan).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..ipvs import IpvsClient, ServiceKey
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


def sync(client: IpvsClient, desired: Desired, retired, whole_table: bool) -> tuple:
    """Read, compare, change: one job on the netlink thread. Returns (changes, failed)."""
    keys = set(desired) | set(retired)
    current = read_current(client, keys, whole_table=whole_table)
    changes = plan(desired, current, retired)
    return changes, apply(client, changes)
