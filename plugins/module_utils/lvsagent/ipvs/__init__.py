"""IPVS: the one layer the modules and the agent share.

model (values and the constants the configuration shares), plan (the one planner), render
(ipvsadm's layout), codec (netlink messages) and client (the socket). The names most callers
need are re-exported here.
"""

from __future__ import annotations

from .client import IpvsClient
from .model import (
    DEFAULT_SCHEDULER,
    DESTINATION_OPTIONS,
    FAMILIES,
    FORWARDING,
    KERNEL_COUNTERS,
    PROTOCOLS,
    SCHEDULERS,
    SERVICE_FLAGS,
    Destination,
    IpvsError,
    Service,
    ServiceKey,
    Stats,
    Table,
    desired_destination,
    format_endpoint,
    format_service,
    service_key_dict,
    service_key_from,
    with_changes,
)
from .render import render_table, table_as_data

__all__ = [
    "DEFAULT_SCHEDULER",
    "DESTINATION_OPTIONS",
    "FAMILIES",
    "FORWARDING",
    "KERNEL_COUNTERS",
    "PROTOCOLS",
    "SCHEDULERS",
    "SERVICE_FLAGS",
    "Destination",
    "IpvsClient",
    "IpvsError",
    "Service",
    "ServiceKey",
    "Stats",
    "Table",
    "desired_destination",
    "format_endpoint",
    "format_service",
    "render_table",
    "service_key_dict",
    "service_key_from",
    "table_as_data",
    "with_changes",
]
