"""VRRP on a hostile LAN: what the receive path absorbs, and what a flood does to the election.

1. The receive rules on one core (no network): packets a second through `ReceiveRules.check`
   and the drop counter, per kind of hostile advert and for a real one.
2. Live, for lvs-agent and keepalived in the same lab (tests/integration/netns/hostile_support):
   two directors hold VI_1 (v2 multicast, password) and VI_2 (v3 unicast, check_unicast_src)
   while a third host sends forged adverts for `--seconds` at the rate one Python core
   reaches. Printed: frames sent per second, whether a VIP moved or a state flipped, the
   longest gap between the master's adverts seen on the backup's wire, the log lines written,
   and for lvs-agent the drops counted per second (what its receive path absorbed after the
   kernel filter sorted the flood).

Run as root: `.venv/bin/python benchmarks/vrrp_hostile.py [--seconds 10] [--loops 20000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(REPO / "plugins" / "module_utils"),
    str(REPO / "tests"),
    str(REPO / "tests" / "integration" / "netns"),
]

from hostile_support import (  # noqa: E402
    GROUP,
    PASSWORD,
    advert_message,
    director_config,
    flood_pair,
    hostile_frames,
)
from vrrp_support import Agent, Keepalived  # noqa: E402

from lvsagent.config import loads  # noqa: E402
from lvsagent.vrrp import packet  # noqa: E402
from lvsagent.vrrp.machine import LoopClock  # noqa: E402
from lvsagent.vrrp.packet import InvalidPacket  # noqa: E402
from lvsagent.vrrp.receive import Drops, ReceiveRules  # noqa: E402
from testbed.flood import ipv4_frame, multicast_mac  # noqa: E402
from testbed.netns import Lab  # noqa: E402


class Node:
    """What hostile_frames needs of a host, without a lab."""

    def __init__(self, ip: str, mac: str) -> None:
        self.ip, self.mac = ip, mac


def offline_figures(loops: int) -> None:
    """The receive rules of the backup (d2) against each forged advert, and a real one."""
    master = Node("192.168.77.11", "02:00:00:00:00:11")
    backup = Node("192.168.77.12", "02:00:00:00:00:12")
    attacker = Node("192.168.77.66", "02:00:00:00:00:66")
    config = loads(director_config(backup, master, 100))
    rules = {
        instance.virtual_router_id: ReceiveRules(
            instance, config.global_defs, ipaddress.ip_address(backup.ip)
        )
        for instance in config.vrrp_instances
    }
    drops = Drops(LoopClock(asyncio.new_event_loop()))  # its reports are never due here
    cases = dict(hostile_frames(attacker, master, backup))
    real = advert_message(2, 150, 1.0, password=PASSWORD)
    cases["VI_1 the master's real advert"] = ipv4_frame(
        multicast_mac(GROUP), master.mac, master.ip, GROUP, real
    )
    print(f"Receive rules on one core ({loops} packets each):")
    for name, frame in cases.items():
        datagram = frame[14:]
        header = packet.parse_ipv4_header(datagram)
        message = datagram[header.header_len : header.total_len]
        rule = rules[message[1]]
        start = time.perf_counter()
        for _packet in range(loops):
            try:
                rule.check(message, header.source, header.destination, header.ttl)
            except InvalidPacket as bad:
                drops.drop(rule.name, bad.reason, bad.detail)
        rate = loops / (time.perf_counter() - start)
        print(f"  {name:42} {rate:>10,.0f} packets/s")


def live_figures(seconds: float) -> None:
    print(f"\nFlood of forged adverts for {seconds:g} s (advert_int 1, takeover after 3.6 s):")
    with (
        tempfile.TemporaryDirectory(prefix="vrrp-hostile-") as scratch,
        Lab(workdir=Path(scratch) / "lab") as lab,
    ):
        for name, address in (("d1", ".11"), ("d2", ".12"), ("x", ".66")):
            lab.host(name, f"192.168.77{address}/24")
        for name, kind in (("lvs-agent", Agent), ("keepalived", Keepalived)):
            workdir = Path(scratch) / name
            workdir.mkdir()
            seen = flood_pair(lab, kind, workdir, seconds)
            gaps = ", ".join(
                f"vrid {vrid} {gap:.3f} s" for vrid, gap in sorted(seen["advert gaps"].items())
            )
            print(f"  {name}:")
            print(f"    frames sent               {seen['sent'] / seconds:,.0f} /s")
            print(f"    VIPs moved                {seen['vips moved'] or 'none'}")
            print(f"    backup became master      {seen['backup became master']} times")
            print(f"    master became backup      {seen['master became backup']} times")
            print(f"    longest advert gap        {gaps or 'no adverts seen'}")
            print(f"    log lines (master, backup) {seen['log lines']}")
            for role, drops in zip(("master", "backup"), seen["drops"]):
                if drops is not None:
                    total = sum(drops.values())
                    print(f"    {role} drops counted      {total / seconds:,.0f} /s {drops}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loops", type=int, default=20_000)
    options = parser.parse_args()
    offline_figures(options.loops)
    if os.geteuid() != 0:
        print("live figures need root (network namespaces)", file=sys.stderr)
        return 2
    live_figures(options.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
