"""PING_CHECK bursts on this host: wall and CPU time of N echo probes started at once.

Each probe owns its socket. Where net.ipv4.ping_group_range lets the agent's group open
ICMP datagram sockets the kernel hands each socket its own replies; otherwise the probes use
raw sockets, and every raw ICMP socket sees every ICMP packet, so a burst of N costs about
N x N deliveries: the figures show how large a simultaneous burst stays cheap (warmup
spreads real checks over delay_loop, so bursts are far smaller than the checker count).
The probes go to 127.0.0.1 only.

    .venv/bin/python benchmarks/ping_checks.py [--bursts 10,100,500,2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))

from lvsagent.lvs.checkers import CheckSpec, probe  # noqa: E402
from lvsagent.lvs.checkers.ping import _icmp_socket  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def burst(size: int) -> tuple[int, float, float]:
    specs = [CheckSpec("PING_CHECK", "127.0.0.1", 0, connect_timeout=5) for _probe in range(size)]
    wall, cpu = time.monotonic(), cpu_seconds()
    results = await asyncio.gather(*(probe(spec) for spec in specs))
    return sum(result.ok for result in results), time.monotonic() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", default="10,100,500,2000")
    args = parser.parse_args()
    sock, raw = _icmp_socket(CheckSpec("PING_CHECK", "127.0.0.1", 0))
    sock.close()
    print(f"socket: {'raw' if raw else 'ICMP datagram (ping socket)'}")
    print(f"{'burst':>6} {'passed':>7} {'wall s':>8} {'cpu s':>8} {'cpu ms/probe':>13}")
    for size in (int(word) for word in args.bursts.split(",")):
        passed, wall, cpu = asyncio.run(burst(size))
        print(f"{size:>6} {passed:>7} {wall:>8.3f} {cpu:>8.3f} {1000 * cpu / size:>13.3f}")


if __name__ == "__main__":
    main()
