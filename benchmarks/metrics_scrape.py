"""A /metrics scrape with 1,000 destinations: time and size, by hand vs prometheus_client.

A synthetic status snapshot (the shape `Agent.status()` returns: 100 virtual servers x 10
real servers, each with the kernel's counters, failures by reason and a check duration
histogram; 4 VRRP instances, 2 vrrp_scripts) is rendered:
  1. `metrics.families()` alone (snapshot -> metric families);
  2. `metrics.render()`: families + the agent's hand-written text exposition (what it serves);
  3. families + prometheus_client's `generate_latest` (the alternative the issue asked to
     weigh; skipped when the library is not installed);
  4. a whole HTTP scrape of `MetricsServer` on loopback (request, render in slices, reply),
     plain and gzipped (as Prometheus asks for it: Accept-Encoding: gzip);
  5. the longest slice of the exposition (the loop runs VRRP between two slices; the
     families, built in one step, are figure 1).
Each figure is the median of the runs (default 50).

    .venv/bin/python benchmarks/metrics_scrape.py [--runs N] [--destinations N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))

from lvsagent import metrics  # noqa: E402
from lvsagent.config.model import MetricsListen  # noqa: E402
from lvsagent.durations import Durations  # noqa: E402
from lvsagent.metrics_server import MetricsServer  # noqa: E402

PER_SERVICE = 10


def durations(*seconds) -> dict:
    observed = Durations()
    for each in seconds:
        observed.observe(each)
    return observed.status()


def snapshot(destinations: int) -> dict:
    counters = dict.fromkeys(metrics.VRRP_COUNTERS, 12345)
    kernel = {"connections": 123456, "packets_in": 98765432, "packets_out": 87654321}
    kernel.update(bytes_in=12345678901, bytes_out=98765432109)
    checks = durations(*(0.0005 * n for n in range(1, 200)))
    vrrp = [
        {
            "name": f"VI_{n}",
            "state": "MASTER",
            "priority": 150,
            "effective_priority": 150,
            "interface": "eth0",
            "virtual_router_id": 50 + n,
            "family": 4,
            "vips": [],
            "last_transition": 1767261600.0,
            "counters": counters,
        }
        for n in range(4)
    ]
    ipvs = [
        {
            "service": f"[10.100.{vs // 250}.{vs % 250 + 1}]:80",
            "protocol": "tcp",
            "virtual_server": f"[10.100.{vs // 250}.{vs % 250 + 1}]:80",
            "quorum": {"up": True, "quorum": 1, "alive_weight": 100 * PER_SERVICE},
            "counters": kernel,
            "realservers": [
                {
                    "address": f"10.{101 + vs // 100}.{vs % 100}.{rs + 1}",
                    "port": 80,
                    "weight": 100,
                    "active": 1234,
                    "inactive": 56789,
                    "counters": kernel,
                    "health": "up",
                    "since": "2026-01-01T10:00:00Z",
                    "last_error": "",
                    "check_failures": 3,
                    "check_failure_reasons": {"timeout": 2, "refused": 1},
                    "check_durations": checks,
                }
                for rs in range(PER_SERVICE)
            ],
        }
        for vs in range(destinations // PER_SERVICE)
    ]
    agent = {"reloads": {"ok": 3, "refused": 1}, "last_reload": 1767261600.0}
    script = {"ok": True, "last_change": 1767261600.0, "timeouts": 2}
    scripts = {name: {**script, "durations": checks} for name in ("chk_nginx", "chk_disk")}
    return {
        "vrrp": vrrp,
        "ipvs": ipvs,
        "vrrp_drops": {"ttl": 5},
        "vrrp_scripts": scripts,
        "agent": agent,
    }


class _Families:
    """The families as prometheus_client metrics, for its generate_latest."""

    def __init__(self, snap: dict) -> None:
        self.snap = snap

    def collect(self):
        from prometheus_client.metrics_core import Metric

        for family in metrics.families(self.snap):
            metric = Metric(family.name, family.help, family.kind)
            for labels, value in family.samples:
                if family.kind == "histogram":
                    for bound, count in value["buckets"]:
                        metric.add_sample(
                            family.name + "_bucket", {**labels, "le": str(bound)}, count
                        )
                    metric.add_sample(
                        family.name + "_bucket", {**labels, "le": "+Inf"}, value["count"]
                    )
                    metric.add_sample(family.name + "_sum", labels, value["sum"])
                    metric.add_sample(family.name + "_count", labels, value["count"])
                else:
                    suffix = "_total" if family.kind == "counter" else ""
                    metric.add_sample(family.name + suffix, labels, value)
            yield metric


def with_library(snap: dict) -> bytes:
    from prometheus_client.exposition import generate_latest

    return generate_latest(_Families(snap))


def median_ms(action, runs: int):
    times, result = [], None
    for _run in range(runs):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


async def scrape_ms(snap: dict, runs: int, accept: str = ""):
    async def current():
        return snap

    server = MetricsServer(current)
    await server.listen(MetricsListen("127.0.0.1", 0))
    port = server._server.sockets[0].getsockname()[1]
    times, reply = [], b""
    for _run in range(runs):
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: bench\r\n{accept}\r\n".encode())
        reply = await reader.read()
        writer.close()
        times.append(time.perf_counter() - started)
    await server.close()
    return statistics.median(times) * 1000, reply


def longest_slice_ms(snap: dict, runs: int) -> float:
    """The median over runs of the longest piece of the exposition: the longest the loop
    is held by writing it (the server runs the loop between pieces)."""
    longest = []
    for _run in range(runs):
        pieces = metrics.exposition(metrics.families(snap))
        worst = 0.0
        while True:
            started = time.perf_counter()
            if next(pieces, None) is None:
                break
            worst = max(worst, time.perf_counter() - started)
        longest.append(worst)
    return statistics.median(longest) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--destinations", type=int, default=1000)
    args = parser.parse_args()
    snap = snapshot(args.destinations)
    snap["agent"]["process"] = metrics.process_status()
    print(f"{args.destinations} destinations, median of {args.runs} runs")
    took, _families = median_ms(lambda: metrics.families(snap), args.runs)
    print(f"  snapshot -> families              {took:7.2f} ms")
    took, text = median_ms(lambda: metrics.render(snap), args.runs)
    print(f"  render by hand (the agent's)      {took:7.2f} ms  {len(text):>8} bytes")
    try:
        took, text = median_ms(lambda: with_library(snap), args.runs)
        print(f"  render with prometheus_client     {took:7.2f} ms  {len(text):>8} bytes")
    except ImportError:
        print("  render with prometheus_client     (not installed)")
    took, reply = asyncio.run(scrape_ms(snap, args.runs))
    body = reply.split(b"\r\n\r\n", 1)[1]
    print(f"  HTTP scrape on loopback           {took:7.2f} ms  {len(body):>8} bytes")
    took, reply = asyncio.run(scrape_ms(snap, args.runs, "Accept-Encoding: gzip\r\n"))
    body = reply.split(b"\r\n\r\n", 1)[1]
    print(f"  HTTP scrape, gzipped              {took:7.2f} ms  {len(body):>8} bytes")
    print(f"  longest slice of the exposition     {longest_slice_ms(snap, args.runs):7.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
