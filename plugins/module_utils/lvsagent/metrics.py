"""Prometheus metrics from the agent's status snapshot.

`lvs-agent status --json` and /metrics read the same dict (`Agent.status()`): `families()`
turns it into metric families (plain data, stdlib only), `render()` writes them in the text
exposition format through prometheus_client, with its process and platform collectors.
prometheus_client is optional: the agent imports and runs without it, and a configuration
with `metrics_listen` is refused on a host that lacks it (`missing_library()`, a host check).
Names follow the Prometheus conventions: `lvs_agent_` prefix, base units, `_total` counters,
Unix timestamps (`..._timestamp_seconds`) rather than ages.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Optional

from . import __version__
from .ipvs import format_endpoint

try:
    from prometheus_client import PlatformCollector, ProcessCollector
    from prometheus_client.exposition import generate_latest
    from prometheus_client.metrics_core import Metric

    PROCESS_COLLECTORS = (ProcessCollector(registry=None), PlatformCollector(registry=None))
except ImportError:
    Metric = None

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes

PREFIX = "lvs_agent_"
VRRP_STATES = ("INIT", "BACKUP", "MASTER", "FAULT")
# status counter key -> (metric name without prefix and _total, help)
VRRP_COUNTERS = {
    "adverts_sent": ("vrrp_adverts_sent", "VRRP advertisements sent (one per packet)."),
    "adverts_received": (
        "vrrp_adverts_received",
        "VRRP advertisements received that passed the receive rules.",
    ),
    "priority_zero_sent": ("vrrp_priority_zero_sent", "Priority-0 advertisements sent."),
    "priority_zero_received": (
        "vrrp_priority_zero_received",
        "Priority-0 advertisements received.",
    ),
    "became_master": ("vrrp_became_master", "Transitions into MASTER."),
    "released_master": ("vrrp_released_master", "Transitions out of MASTER."),
    "gratuitous_announcements_sent": (
        "vrrp_gratuitous_announcements_sent",
        "Gratuitous ARPs and unsolicited neighbour advertisements sent for the VIPs.",
    ),
}


def missing_library() -> str:
    """Why /metrics cannot be served on this host, or "" when it can."""
    if Metric is None:
        return (
            "the Python library prometheus_client is not installed "
            "(the lvs_director role ships it; or pip install prometheus_client)"
        )
    return ""


@dataclass
class Family:
    """One metric family: `kind` is gauge or counter; a counter's samples get `_total`."""

    name: str
    kind: str
    help: str
    samples: list = field(default_factory=list)  # [(labels dict, value)]

    def add(self, labels: dict, value: Optional[float]) -> None:
        if value is not None:
            self.samples.append((labels, value))


def gauge(name: str, text: str) -> Family:
    return Family(PREFIX + name, "gauge", text)


def counter(name: str, text: str) -> Family:
    return Family(PREFIX + name, "counter", text)


def _timestamp(iso: Optional[str]) -> Optional[float]:
    """The status' ISO-8601 UTC time as Unix seconds."""
    if not iso:
        return None
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def families(snapshot: dict) -> list[Family]:
    """The metric families of one status snapshot (`Agent.status()`)."""
    return [*_agent(snapshot.get("agent", {})), *_vrrp(snapshot), *_ipvs(snapshot.get("ipvs", []))]


def _agent(agent: dict) -> list[Family]:
    build = gauge("build_info", "lvs-agent's version; always 1.")
    build.add({"version": __version__}, 1)
    reloads = counter("config_reloads", "Configuration reloads by result.")
    for result, count in sorted(agent.get("reloads", {}).items()):
        reloads.add({"result": result}, count)
    last = gauge("config_last_reload_success_timestamp_seconds", "When a reload was last taken.")
    last.add({}, agent.get("last_reload"))
    return [build, reloads, last]


def _vrrp(snapshot: dict) -> list[Family]:
    state = gauge("vrrp_state", "1 for the state the instance is in.")
    priority = gauge("vrrp_priority", "Configured priority.")
    effective = gauge("vrrp_effective_priority", "Priority after tracking weights.")
    transition = gauge(
        "vrrp_last_transition_timestamp_seconds", "When the instance last changed state."
    )
    counters = {key: counter(name, text) for key, (name, text) in VRRP_COUNTERS.items()}
    for instance in snapshot.get("vrrp", []):
        labels = {
            "vrrp_instance": instance["name"],
            "interface": instance["interface"],
            "vrid": str(instance["virtual_router_id"]),
        }
        for name in VRRP_STATES:
            state.add({**labels, "state": name}, int(instance["state"] == name))
        priority.add(labels, instance["priority"])
        effective.add(labels, instance["effective_priority"])
        transition.add(labels, instance["last_transition"])
        for key, family in counters.items():
            family.add(labels, instance["counters"][key])
    drops = counter("vrrp_packets_dropped", "Received VRRP packets dropped, by reason.")
    for reason, count in sorted(snapshot.get("vrrp_drops", {}).items()):
        drops.add({"reason": reason}, count)
    return [state, priority, effective, transition, *counters.values(), drops]


def _ipvs(services: list) -> list[Family]:
    up = gauge("real_server_up", "1 when the real server's checks pass.")
    weight = gauge("real_server_weight", "Weight in the kernel's table.")
    active = gauge("real_server_connections_active", "Active connections (kernel).")
    inactive = gauge("real_server_connections_inactive", "Inactive connections (kernel).")
    failures = counter("real_server_check_failures", "Failed health-check probes.")
    changed = gauge(
        "real_server_last_change_timestamp_seconds", "When the real server last went up or down."
    )
    for service in services:
        for row in service["realservers"]:
            labels = {
                "virtual_server": service["service"],
                "protocol": service["protocol"] or "",
                "real_server": format_endpoint(row["address"], row["port"]),
            }
            if row["health"] in ("up", "down"):  # declared (not a sorry server, not foreign)
                up.add(labels, int(row["health"] == "up"))
                failures.add(labels, row.get("check_failures"))
                changed.add(labels, _timestamp(row["since"]))
            weight.add(labels, row["weight"])
            active.add(labels, row["active"])
            inactive.add(labels, row["inactive"])
    return [up, weight, active, inactive, failures, changed]


class _Snapshot:
    """A collector of one snapshot's families and the process' own, for generate_latest."""

    def __init__(self, snapshot: dict) -> None:
        self.snapshot = snapshot

    def collect(self):
        for family in families(self.snapshot):
            metric = Metric(family.name, family.help, family.kind)
            suffix = "_total" if family.kind == "counter" else ""
            for labels, value in family.samples:
                metric.add_sample(family.name + suffix, labels, value)
            yield metric
        for collector in PROCESS_COLLECTORS:
            yield from collector.collect()


def render(snapshot: dict) -> bytes:
    """The text exposition of a snapshot (needs prometheus_client: see missing_library)."""
    return generate_latest(_Snapshot(snapshot))
