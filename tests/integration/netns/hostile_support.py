"""The hostile LAN of the flood test and benchmark: two directors and a third host that floods
them with malformed and hostile adverts (tests/testbed/flood.py).

VI_1 is VRRPv2 multicast with a password, VI_2 VRRPv3 unicast between the directors with
check_unicast_src; the master (priority 150) must keep both through the flood.
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

from vrrp_support import PYTHON, config, holders, instance_block, wait_single_holder

from lvsagent import control
from lvsagent.vrrp import packet
from testbed import flood
from testbed.flood import ipv4_frame, multicast_mac

PASSWORD = "secret12"
VIPS = {"VI_1": "192.168.77.100", "VI_2": "192.168.77.101"}
GROUP = "224.0.0.18"


def director_config(me, peer, priority: int) -> str:
    unicast = (
        f"  unicast_src_ip {me.ip}\n  unicast_peer {{\n    {peer.ip}\n  }}\n  check_unicast_src\n"
    )
    return config(
        instance_block(
            priority, name="VI_1", vrid=51, vip=f"{VIPS['VI_1']}/24", auth_pass=PASSWORD
        ),
        instance_block(
            priority, name="VI_2", vrid=52, vip=f"{VIPS['VI_2']}/24", version=3, extra=unicast
        ),
    )


def _v2(priority: int, interval: float = 1.0, password: str = PASSWORD) -> bytes:
    return advert_message(2, priority, interval, password=password)


def _v3(priority: int, source: str, destination: str, interval: float = 1.0) -> bytes:
    return advert_message(3, priority, interval, source=source, destination=destination)


def advert_message(version, priority, interval, password=None, source=None, destination=None):
    """VI_1's adverts are v2 with the password, VI_2's v3 (checksum over the addresses)."""
    name = "VI_1" if version == 2 else "VI_2"
    advert = packet.Advertisement(
        version=version,
        vrid=51 if version == 2 else 52,
        priority=priority,
        addresses=(ipaddress.ip_address(VIPS[name]),),
        interval=interval,
        auth_type=packet.AUTH_PASS if password else packet.AUTH_NONE,
        auth_data=packet.auth_data_for(password),
    )
    if source is None:
        return packet.encode(advert)
    return packet.encode(advert, ipaddress.ip_address(source), ipaddress.ip_address(destination))


def _bad_checksum(message: bytes) -> bytes:
    return message[:6] + bytes([message[6] ^ 0xFF]) + message[7:]


def hostile_frames(attacker, master, backup) -> dict[str, bytes]:
    """Every advert claims priority 255; each is wrong in one way only."""
    group_mac = multicast_mac(GROUP)

    def to_group(message: bytes, ttl: int = 255) -> bytes:
        return ipv4_frame(group_mac, attacker.mac, attacker.ip, GROUP, message, ttl)

    def to_host(host, source: str, message: bytes) -> bytes:
        return ipv4_frame(host.mac, attacker.mac, source, host.ip, message)

    return {
        "VI_1 TTL 64": to_group(_v2(255), ttl=64),
        "VI_1 bad checksum": to_group(_bad_checksum(_v2(255))),
        "VI_1 interval 0": to_group(_v2(255, interval=0)),
        "VI_1 wrong password": to_group(_v2(255, password="guessed!")),
        "VI_2 not a unicast peer (to master)": to_host(
            master, attacker.ip, _v3(255, attacker.ip, master.ip)
        ),
        "VI_2 not a unicast peer (to backup)": to_host(
            backup, attacker.ip, _v3(255, attacker.ip, backup.ip)
        ),
        "VI_2 interval 0 in the master's name": to_host(
            backup, master.ip, _v3(255, master.ip, backup.ip, interval=0)
        ),
        "VI_2 bad checksum in the master's name": to_host(
            backup, master.ip, _bad_checksum(_v3(255, master.ip, backup.ip))
        ),
    }


ADVERT_LINE = re.compile(r"^(\d+\.\d+) .*VRRPv\d, Advertisement, vrid (\d+), prio (\d+)")


def advert_gaps(lines: list[str]) -> dict[int, float]:
    """The longest gap between two adverts, per VRID, of `tcpdump -tt` lines."""
    last: dict[int, float] = {}
    gaps: dict[int, float] = {}
    for line in lines:
        match = ADVERT_LINE.match(line)
        if not match:
            continue
        when, vrid = float(match.group(1)), int(match.group(2))
        if vrid in last:
            gaps[vrid] = max(gaps.get(vrid, 0.0), when - last[vrid])
        last[vrid] = when
    return gaps


def flood_pair(lab, kind, workdir: Path, seconds: float) -> dict:
    """Start `kind` (vrrp_support.Agent or Keepalived) on d1 (150) and d2 (100), flood them
    from x for `seconds`, and return what happened."""
    master, backup, attacker = (lab.hosts[name] for name in ("d1", "d2", "x"))
    directors = [master, backup]
    nodes = [
        kind(master, workdir, director_config(master, backup, 150)).start(),
        kind(backup, workdir, director_config(backup, master, 100)).start(),
    ]
    try:
        for vip in VIPS.values():
            wait_single_holder(directors, master, vip=vip, timeout=30)
        capture = lab.capture(f"ether src {master.mac} and ip proto 112", host=backup)
        before = [len(node.log_text().splitlines()) for node in nodes]
        drops_before = [_drops(node) for node in nodes]
        frames = hostile_frames(attacker, master, backup)
        sender = flood.start(attacker, list(frames.values()), seconds, workdir, PYTHON)
        moved = set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            moved |= {vip for vip in VIPS.values() if holders(directors, vip) != [master]}
            time.sleep(0.5)
        out, _err = sender.communicate(timeout=60)
        time.sleep(1.5)  # the last held-back drop reports
        capture.stop()
        moved |= {vip for vip in VIPS.values() if holders(directors, vip) != [master]}
        during = [node.log_text().splitlines()[lines:] for node, lines in zip(nodes, before)]
        drops = [_drops(node) for node in nodes]
    finally:
        for node in nodes:
            node.stop()
    return {
        "sent": int(out.split()[-1]),
        "vips moved": sorted(moved),
        "backup became master": sum("Entering MASTER STATE" in line for line in during[1]),
        "master became backup": sum("Entering BACKUP STATE" in line for line in during[0]),
        "advert gaps": advert_gaps(capture.read("-tt")),
        "log lines": [len(lines) for lines in during],
        "drops": [  # per reason, during the flood (None: keepalived has no such status)
            None if old is None else {key: new[key] - old.get(key, 0) for key in new}
            for old, new in zip(drops_before, drops)
        ],
    }


def _drops(node) -> dict | None:
    socket_path = getattr(node, "socket", None)
    if socket_path is None:
        return None
    return control.request(str(socket_path), "status")["vrrp_drops"]
