"""Prometheus metrics from the agent's status snapshot.

`lvs-agent status --json` and /metrics read the same dict (`Agent.status()`): `families()`
turns it into metric families, `exposition()` writes them in the Prometheus text format 0.0.4,
a slice of samples at a time so that the server can let the loop run between slices. Written
by hand rather than with prometheus_client: measured with 1,000 destinations
(benchmarks/metrics_scrape.py), the library renders 3-4 times slower and in one call that
cannot yield to the loop (docs/DESIGN.md). Names follow the Prometheus conventions:
`lvs_agent_` prefix, base units, `_total` counters, Unix timestamps (`..._timestamp_seconds`)
rather than ages; the process' own metrics use the client libraries' standard `process_` names.
"""

from __future__ import annotations

import datetime
import math
import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

from . import __version__
from .ipvs import format_endpoint

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SLICE = 500  # samples written between two turns of the loop
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
    "address_list_mismatches": (
        "vrrp_address_list_mismatches",
        "Adverts whose address list differs from ours (accepted, as keepalived does).",
    ),
}


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
    agent = snapshot.get("agent", {})
    return [
        *_agent(agent),
        *_vrrp(snapshot),
        *_ipvs(snapshot.get("ipvs", [])),
        *_process(agent.get("process", {})),
    ]


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
    scripts = gauge("vrrp_script_up", "1 when the vrrp_script's last result counts as success.")
    for name, script in sorted(snapshot.get("vrrp_scripts", {}).items()):
        scripts.add({"vrrp_script": name}, int(script["ok"]))
    return [state, priority, effective, transition, *counters.values(), drops, scripts]


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


def process_status() -> dict:
    """The agent process' CPU time, memory, file descriptors and start time (Linux /proc)."""
    times = os.times()
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    with open("/proc/stat", "rb") as system:
        boot = next(int(line.split()[1]) for line in system if line.startswith(b"btime "))
    page = os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu_seconds": times.user + times.system,
        "resident_memory_bytes": int(fields[21]) * page,
        "virtual_memory_bytes": int(fields[20]),
        "start_time_seconds": boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"),
        "open_fds": len(os.listdir("/proc/self/fd")),
        "max_fds": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def _process(process: dict) -> list[Family]:
    """The standard names of the Prometheus client libraries' process collector."""
    found = []
    for key, value in process.items():
        family = Family("process_" + key, "gauge", f"The agent process' {key}.")
        if key == "cpu_seconds":
            family = Family("process_cpu_seconds", "counter", "User and system CPU time.")
        family.add({}, value)
        found.append(family)
    return found


def _escape(text: str, quote: bool = True) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def exposition(found: list[Family]) -> Iterator[str]:
    """The text format, in pieces of at most SLICE samples. A label set shared by several
    families (one real server's) is written once and reused."""
    written: dict[int, str] = {}
    for family in found:
        sample = family.name + ("_total" if family.kind == "counter" else "")
        lines = [f"# HELP {sample} {_escape(family.help, quote=False)}\n"]
        lines.append(f"# TYPE {sample} {family.kind}\n")
        for labels, value in family.samples:
            text = written.get(id(labels))
            if text is None:
                pairs = ",".join(f'{key}="{_escape(str(v))}"' for key, v in labels.items())
                text = written[id(labels)] = "{" + pairs + "}" if pairs else ""
            lines.append(f"{sample}{text} {_number(value)}\n")
            if len(lines) >= SLICE:
                yield "".join(lines)
                lines = []
        yield "".join(lines)


def render(snapshot: dict) -> bytes:
    """The whole text of a snapshot at once (the server writes it in slices)."""
    return "".join(exposition(families(snapshot))).encode()
