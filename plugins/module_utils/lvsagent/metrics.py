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
from .ipvs import KERNEL_COUNTERS, format_endpoint

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SLICE = 500  # samples written between two turns of the loop
VRRP_STATES = ("INIT", "BACKUP", "MASTER", "FAULT")

# Every metric the agent exports, the one list of their names (a counter's without `_total`,
# which its samples get; a histogram's samples are `_bucket`, `_sum`, `_count`): type, help.
METRICS = {
    "lvs_agent_build_info": ("gauge", "lvs-agent's version; always 1."),
    "lvs_agent_config_reloads": ("counter", "Configuration reloads by result."),
    "lvs_agent_config_last_reload_success_timestamp_seconds": (
        "gauge",
        "When a reload was last taken.",
    ),
    "lvs_agent_vrrp_state": ("gauge", "1 for the state the instance is in."),
    "lvs_agent_vrrp_priority": ("gauge", "Configured priority."),
    "lvs_agent_vrrp_effective_priority": ("gauge", "Priority after tracking weights."),
    "lvs_agent_vrrp_last_transition_timestamp_seconds": (
        "gauge",
        "When the instance last changed state.",
    ),
    "lvs_agent_vrrp_adverts_sent": ("counter", "VRRP advertisements sent (one per packet)."),
    "lvs_agent_vrrp_adverts_received": (
        "counter",
        "VRRP advertisements received that passed the receive rules.",
    ),
    "lvs_agent_vrrp_priority_zero_sent": ("counter", "Priority-0 advertisements sent."),
    "lvs_agent_vrrp_priority_zero_received": ("counter", "Priority-0 advertisements received."),
    "lvs_agent_vrrp_became_master": ("counter", "Transitions into MASTER."),
    "lvs_agent_vrrp_released_master": ("counter", "Transitions out of MASTER."),
    "lvs_agent_vrrp_gratuitous_announcements_sent": (
        "counter",
        "Gratuitous ARPs and unsolicited neighbour advertisements sent for the VIPs.",
    ),
    "lvs_agent_vrrp_address_list_mismatches": (
        "counter",
        "Adverts whose address list differs from ours (accepted, as keepalived does).",
    ),
    "lvs_agent_vrrp_packets_dropped": ("counter", "Received VRRP packets dropped, by reason."),
    "lvs_agent_vrrp_script_up": (
        "gauge",
        "1 when the vrrp_script's last result counts as success.",
    ),
    "lvs_agent_vrrp_script_last_change_timestamp_seconds": (
        "gauge",
        "When the vrrp_script's state last changed (or its tracking started).",
    ),
    "lvs_agent_vrrp_script_duration_seconds": ("histogram", "How long the script's runs took."),
    "lvs_agent_vrrp_script_timeouts": ("counter", "Runs of the script killed at its timeout."),
    "lvs_agent_virtual_server_quorum_up": (
        "gauge",
        "1 while the virtual server has its quorum (its live real servers' weights).",
    ),
    "lvs_agent_virtual_server_quorum_weight": ("gauge", "The quorum the weights must reach."),
    "lvs_agent_virtual_server_alive_weight": ("gauge", "Sum of the live real servers' weights."),
    "lvs_agent_virtual_server_connections": ("counter", "Connections scheduled (kernel)."),
    "lvs_agent_virtual_server_incoming_packets": ("counter", "Packets in (kernel)."),
    "lvs_agent_virtual_server_outgoing_packets": ("counter", "Packets out (kernel)."),
    "lvs_agent_virtual_server_incoming_bytes": ("counter", "Bytes in (kernel)."),
    "lvs_agent_virtual_server_outgoing_bytes": ("counter", "Bytes out (kernel)."),
    "lvs_agent_real_server_up": ("gauge", "1 when the real server's checks pass."),
    "lvs_agent_real_server_weight": ("gauge", "Weight in the kernel's table."),
    "lvs_agent_real_server_connections_active": ("gauge", "Active connections (kernel)."),
    "lvs_agent_real_server_connections_inactive": ("gauge", "Inactive connections (kernel)."),
    "lvs_agent_real_server_connections": ("counter", "Connections scheduled to it (kernel)."),
    "lvs_agent_real_server_incoming_packets": ("counter", "Packets in (kernel)."),
    "lvs_agent_real_server_outgoing_packets": ("counter", "Packets out (kernel)."),
    "lvs_agent_real_server_incoming_bytes": ("counter", "Bytes in (kernel)."),
    "lvs_agent_real_server_outgoing_bytes": ("counter", "Bytes out (kernel)."),
    "lvs_agent_real_server_check_failures": (
        "counter",
        "Failed health-check probes (retries included), by reason.",
    ),
    "lvs_agent_real_server_check_duration_seconds": (
        "histogram",
        "How long the real server's health-check probes took.",
    ),
    "lvs_agent_real_server_last_change_timestamp_seconds": (
        "gauge",
        "When the real server last went up or down.",
    ),
    # the client libraries' standard process collector names
    "process_cpu_seconds": ("counter", "User and system CPU time."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size."),
    "process_start_time_seconds": ("gauge", "Start time of the process since the Unix epoch."),
    "process_open_fds": ("gauge", "Open file descriptors."),
    "process_max_fds": ("gauge", "Maximum number of open file descriptors."),
}
SUFFIXES = {"gauge": ("",), "counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
# status counter key -> metric name
VRRP_COUNTERS = {
    key: f"lvs_agent_vrrp_{key}"
    for key in (
        "adverts_sent",
        "adverts_received",
        "priority_zero_sent",
        "priority_zero_received",
        "became_master",
        "released_master",
        "gratuitous_announcements_sent",
        "address_list_mismatches",
    )
}
# the kernel's counters (status "counters" key -> name after `virtual_server_`/`real_server_`),
# worded as node_exporter's IPVS collector words them
KERNEL_COUNTER_NAMES = dict(
    zip(
        KERNEL_COUNTERS,
        ("connections", "incoming_packets", "outgoing_packets", "incoming_bytes", "outgoing_bytes"),
    )
)


def sample_names() -> set:
    """Every sample name a scrape may hold (what a dashboard's expressions may use)."""
    return {name + suffix for name, (kind, _help) in METRICS.items() for suffix in SUFFIXES[kind]}


@dataclass
class Family:
    """One metric family of METRICS: a counter's samples get `_total`; a histogram's sample
    value is a `Durations.status()`."""

    name: str
    samples: list = field(default_factory=list)  # [(labels dict, value)]

    @property
    def kind(self) -> str:
        return METRICS[self.name][0]

    @property
    def help(self) -> str:
        return METRICS[self.name][1]

    def add(self, labels: dict, value) -> None:
        if value is not None:
            self.samples.append((labels, value))


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
        *_vrrp_scripts(snapshot.get("vrrp_scripts", {})),
        *_ipvs(snapshot.get("ipvs", [])),
        *_process(agent.get("process", {})),
    ]


def _agent(agent: dict) -> list[Family]:
    build = Family("lvs_agent_build_info")
    build.add({"version": __version__}, 1)
    reloads = Family("lvs_agent_config_reloads")
    for result, count in sorted(agent.get("reloads", {}).items()):
        reloads.add({"result": result}, count)
    last = Family("lvs_agent_config_last_reload_success_timestamp_seconds")
    last.add({}, agent.get("last_reload"))
    return [build, reloads, last]


def _vrrp(snapshot: dict) -> list[Family]:
    state = Family("lvs_agent_vrrp_state")
    priority = Family("lvs_agent_vrrp_priority")
    effective = Family("lvs_agent_vrrp_effective_priority")
    transition = Family("lvs_agent_vrrp_last_transition_timestamp_seconds")
    counters = {key: Family(name) for key, name in VRRP_COUNTERS.items()}
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
    drops = Family("lvs_agent_vrrp_packets_dropped")
    for reason, count in sorted(snapshot.get("vrrp_drops", {}).items()):
        drops.add({"reason": reason}, count)
    return [state, priority, effective, transition, *counters.values(), drops]


def _vrrp_scripts(scripts: dict) -> list[Family]:
    up = Family("lvs_agent_vrrp_script_up")
    changed = Family("lvs_agent_vrrp_script_last_change_timestamp_seconds")
    durations = Family("lvs_agent_vrrp_script_duration_seconds")
    timeouts = Family("lvs_agent_vrrp_script_timeouts")
    for name, script in sorted(scripts.items()):
        labels = {"vrrp_script": name}
        up.add(labels, int(script["ok"]))
        changed.add(labels, script["last_change"])
        durations.add(labels, script["durations"])
        timeouts.add(labels, script["timeouts"])
    return [up, changed, durations, timeouts]


def _kernel_counters(prefix: str) -> dict:
    return {key: Family(f"lvs_agent_{prefix}_{name}") for key, name in KERNEL_COUNTER_NAMES.items()}


def _add_counters(found: dict, labels: dict, counters: Optional[dict]) -> None:
    if counters is not None:  # None: not in the kernel's table
        for key, family in found.items():
            family.add(labels, counters[key])


def _ipvs(services: list) -> list[Family]:
    quorum_up = Family("lvs_agent_virtual_server_quorum_up")
    quorum = Family("lvs_agent_virtual_server_quorum_weight")
    alive = Family("lvs_agent_virtual_server_alive_weight")
    service_counters = _kernel_counters("virtual_server")
    up = Family("lvs_agent_real_server_up")
    weight = Family("lvs_agent_real_server_weight")
    active = Family("lvs_agent_real_server_connections_active")
    inactive = Family("lvs_agent_real_server_connections_inactive")
    counters = _kernel_counters("real_server")
    failures = Family("lvs_agent_real_server_check_failures")
    durations = Family("lvs_agent_real_server_check_duration_seconds")
    changed = Family("lvs_agent_real_server_last_change_timestamp_seconds")
    for service in services:
        service_labels = {
            "virtual_server": service["service"],
            "protocol": service["protocol"] or "",
        }
        quorum_up.add(service_labels, int(service["quorum"]["up"]))
        quorum.add(service_labels, service["quorum"]["quorum"])
        alive.add(service_labels, service["quorum"]["alive_weight"])
        _add_counters(service_counters, service_labels, service["counters"])
        for row in service["realservers"]:
            labels = {**service_labels, "real_server": format_endpoint(row["address"], row["port"])}
            if row["health"] in ("up", "down"):  # declared (not a sorry server, not foreign)
                up.add(labels, int(row["health"] == "up"))
                for reason, count in row["check_failure_reasons"].items():
                    failures.add({**labels, "reason": reason}, count)
                durations.add(labels, row["check_durations"])
                changed.add(labels, _timestamp(row["since"]))
            weight.add(labels, row["weight"])
            active.add(labels, row["active"])
            inactive.add(labels, row["inactive"])
            _add_counters(counters, labels, row["counters"])
    return [
        quorum_up,
        quorum,
        alive,
        *service_counters.values(),
        up,
        weight,
        active,
        inactive,
        *counters.values(),
        failures,
        durations,
        changed,
    ]


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
        family = Family("process_" + key)
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


def _labels(labels: dict) -> str:
    return ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())


def exposition(found: list[Family]) -> Iterator[str]:
    """The text format, in pieces of at most about SLICE samples. A label set shared by
    several families (one real server's) is written once and reused."""
    written: dict[int, str] = {}
    for family in found:
        kind = family.kind
        sample = family.name + ("_total" if kind == "counter" else "")
        lines = [f"# HELP {sample} {_escape(family.help, quote=False)}\n"]
        lines.append(f"# TYPE {sample} {kind}\n")
        for labels, value in family.samples:
            text = written.get(id(labels))
            if text is None:
                text = written[id(labels)] = _labels(labels)
            if kind == "histogram":
                lines.extend(_histogram(sample, text, value))
            else:
                labelled = f"{sample}{{{text}}}" if text else sample
                lines.append(f"{labelled} {_number(value)}\n")
            if len(lines) >= SLICE:
                yield "".join(lines)
                lines = []
        yield "".join(lines)


def _histogram(name: str, labels: str, durations: dict) -> list[str]:
    """One histogram sample (a `Durations.status()`): its buckets, +Inf, sum and count."""
    head = f"{name}_bucket{{{labels}," if labels else f"{name}_bucket{{"
    lines = [f'{head}le="{_number(bound)}"}} {count}\n' for bound, count in durations["buckets"]]
    lines.append(f'{head}le="+Inf"}} {durations["count"]}\n')
    tail = f"{{{labels}}}" if labels else ""
    lines.append(f"{name}_sum{tail} {_number(durations['sum'])}\n")
    lines.append(f"{name}_count{tail} {durations['count']}\n")
    return lines


def render(snapshot: dict) -> bytes:
    """The whole text of a snapshot at once (the server writes it in slices)."""
    return "".join(exposition(families(snapshot))).encode()
