"""The table as `ipvsadm -Ln` prints it, and as plain data (ipvs_info, `lvs-agent status`)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict
from typing import Callable, Optional

from .model import (
    FAMILIES,
    FLAG_BITS,
    FORWARDING_LABELS,
    PROTOCOLS,
    Destination,
    Service,
    ServiceKey,
    Stats,
    Table,
    default_netmask,
)


def _ipvsadm_endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ipvsadm_service_name(key: ServiceKey) -> str:
    if key.fwmark is not None:
        return f"FWM  {key.fwmark}" + (" IPv6" if key.family == 6 else "")
    return f"{key.protocol.upper():<4} {_ipvsadm_endpoint(key.address, key.port)}"


def _largenum(value: int) -> str:
    """A counter as ipvsadm prints it without -x: 9 columns, K/M/G/T past 100 million."""
    if value < 10**8:
        return f"{value:9d}"
    for limit, unit, scale in ((10**9, "K", 10**3), (10**11, "M", 10**6), (10**14, "G", 10**9)):
        if value < limit:
            return f"{value // scale:8d}{unit}"
    return f"{value // 10**12:8d}T"


def render_table(
    table: Table,
    *,
    stats: bool = False,
    annotate: Optional[Callable[[ServiceKey, Destination], str]] = None,
) -> str:
    """The table in `ipvsadm -Ln` layout (``--stats`` with stats=True), sorted as ipvsadm sorts.

    `annotate(key, destination)` may append a column to each real server line, which is how
    `lvs-agent status` shows health next to the kernel's view.
    """
    if stats:
        lines = [
            f"{'Prot LocalAddress:Port':<33}"
            + "".join(f" {h:>8}" for h in ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")),
            "  -> RemoteAddress:Port",
        ]
    else:
        lines = [
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        ]
    for key in sorted(table, key=_ipvsadm_sort_key):
        service, destinations = table[key]
        name = _ipvsadm_service_name(key)
        if stats:
            lines.append(f"{name:<33}" + _stats_columns(service.stats))
        else:
            lines.append(f"{name} {_ipvsadm_service_flags(service)}")
        for dest in sorted(destinations, key=_destination_sort_key):
            endpoint = _ipvsadm_endpoint(dest.address, dest.port)
            if stats:
                line = f"  -> {endpoint:<28}" + _stats_columns(dest.stats)
            else:
                line = (
                    f"  -> {endpoint:<28} {FORWARDING_LABELS[dest.forwarding]:<7} "
                    f"{dest.weight:<6d} {dest.active_connections:<10d} "
                    f"{dest.inactive_connections:<10d}"
                )
            if annotate is not None:
                line = f"{line} {annotate(key, dest)}"
            lines.append(line)
    return "\n".join(lines) + "\n"


def table_as_data(table: Table) -> list:
    """The table as plain data with counters (ipvs_info, JSON output), in ipvsadm's order."""
    return [
        {
            **table[key][0].to_dict(),
            "stats": asdict(table[key][0].stats or Stats()),
            "realservers": [
                {
                    **dest.to_dict(),
                    "active_connections": dest.active_connections,
                    "inactive_connections": dest.inactive_connections,
                    "persistent_connections": dest.persistent_connections,
                    "stats": asdict(dest.stats or Stats()),
                }
                for dest in sorted(table[key][1], key=_destination_sort_key)
            ],
        }
        for key in sorted(table, key=_ipvsadm_sort_key)
    ]


def _ipvsadm_service_flags(service: Service) -> str:
    text = service.scheduler
    sched = sorted(service.flags - {"ops"}, key=lambda n: FLAG_BITS[n])
    if sched:
        text += f" ({','.join(sched)})"
    if service.persistence_timeout:
        text += f" persistent {service.persistence_timeout}"
        if service.persistence_netmask != default_netmask(service.key.family):
            text += f" mask {service.persistence_netmask}"
        if service.persistence_engine:
            text += f" pe {service.persistence_engine}"
    if "ops" in service.flags:
        text += " ops"
    return text


def _stats_columns(stats: Optional[Stats]) -> str:
    stats = stats or Stats()
    values = (stats.connections, stats.packets_in, stats.packets_out, stats.bytes_in)
    return "".join(_largenum(v) for v in (*values, stats.bytes_out))


def _ipvsadm_sort_key(key: ServiceKey):
    # libipvs's ipvs_cmp_services: fwmark (0 for address services), family, protocol,
    # address, port.
    if key.fwmark is not None:
        return (key.fwmark, FAMILIES[key.family], 0, b"", 0)
    packed = ipaddress.ip_address(key.address).packed
    return (0, FAMILIES[key.family], PROTOCOLS[key.protocol], packed, key.port)


def _destination_sort_key(dest: Destination):
    return (dest.family, ipaddress.ip_address(dest.address).packed, dest.port)
