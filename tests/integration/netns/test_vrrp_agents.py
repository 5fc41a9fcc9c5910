"""Two lvs-agent nodes on the lab LAN: election, handover, takeover, preemption, tracking.

advert_int 1 and priorities 150 / 100, as in the keepalived reference measurements: a backup
takes over 3 x 1 + (256 - 100) / 256 = 3.61 s after the last advert, 0.61 s after a
priority-0 advert. Bounds below are generous (shared CI machines); the figures themselves are
measured by benchmarks/vrrp_failover.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from vrrp_support import (
    VIP4,
    VIP4_2,
    Agent,
    config,
    holders,
    holds,
    instance_block,
    stays,
    sync_group_blocks,
    wait_single_holder,
)

pytestmark = pytest.mark.netns

PORT = 8080
MASTER_DOWN_100 = 3 + 156 / 256


@pytest.fixture
def pair(lab, tmp_path):
    d1 = lab.host("d1", "192.168.77.11/24")
    d2 = lab.host("d2", "192.168.77.12/24")
    return d1, d2


def start_pair(pair, tmp_path, extra1="", extra2=""):
    d1, d2 = pair
    a1 = Agent(d1, tmp_path, config(instance_block(150, extra=extra1))).start()
    a2 = Agent(d2, tmp_path, config(instance_block(100, extra=extra2))).start()
    return a1, a2


def add_uplink(host):
    """A second interface to track: `uplink` loses carrier when `uplink_peer` goes down."""
    host.run(["ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplink_peer"])
    host.run(["ip", "link", "set", "uplink", "up"])
    host.run(["ip", "link", "set", "uplink_peer", "up"])


def test_election_sigterm_handover_and_preempt_back(pair, tmp_path):
    d1, d2 = pair
    a1, a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    assert "(VI_1) Entering MASTER STATE" in a1.log_text()
    assert "(VI_1) Entering BACKUP STATE" in a2.log_text()
    assert "Sending gratuitous ARP on eth0 for 192.168.77.100" in a1.log_text()

    status = a1.command("status")
    assert status.returncode == 0
    assert "VRRP VI_1: MASTER on eth0 priority 150/150" in status.stdout

    took = time.monotonic()
    assert a1.stop() == 0
    wait_single_holder(pair, d2, timeout=5)
    assert time.monotonic() - took < 3.0  # priority 0: skew only, not Master_Down_Interval
    assert "(VI_1) sent 0 priority" in a1.log_text()
    assert not holds(d1)

    a1.start()
    wait_single_holder(pair, d1, timeout=10)
    assert "(VI_1) Entering BACKUP STATE" in a2.log_text().split("Entering MASTER STATE")[-1]


def test_sigkill_takeover_and_leftover_vip_removed_on_restart(pair, tmp_path):
    d1, d2 = pair
    a1, a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    a1.kill()
    took = time.monotonic()
    d2.wait_for(lambda: holds(d2), timeout=10)
    assert time.monotonic() - took < MASTER_DOWN_100 + 2
    assert holds(d1)  # a crash leaves the VIP behind ...
    a1.start()
    d1.wait_for(lambda: "removing leftover VIP" in a1.log_text(), timeout=10)  # ... start cleans
    wait_single_holder(pair, d1, timeout=10)


def test_link_cut_takeover_then_preempt_back(pair, tmp_path):
    d1, d2 = pair
    a1, a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    d1.link_down()
    took = time.monotonic()
    d2.wait_for(lambda: holds(d2), timeout=10)
    assert time.monotonic() - took < MASTER_DOWN_100 + 2
    d1.wait_for(lambda: "(VI_1) Entering FAULT STATE" in a1.log_text(), timeout=5)
    assert not holds(d1)
    d1.link_up()
    wait_single_holder(pair, d1, timeout=15)


def test_unicast_peers_without_multicast(pair, tmp_path):
    d1, d2 = pair

    def unicast(source, peer):
        return f"  unicast_src_ip {source}\n  unicast_peer {{\n    {peer}\n  }}\n"

    a1, a2 = start_pair(
        pair,
        tmp_path,
        extra1=unicast("192.168.77.11", "192.168.77.12"),
        extra2=unicast("192.168.77.12", "192.168.77.11"),
    )
    wait_single_holder(pair, d1)
    assert stays(lambda: holders(pair) == [d1], 4)  # the backup hears the unicast adverts
    a1.stop()
    wait_single_holder(pair, d2, timeout=5)


def test_nopreempt_keeps_the_lower_master(pair, tmp_path):
    d1, d2 = pair
    Agent(d2, tmp_path, config(instance_block(100, extra="  nopreempt\n"))).start()
    wait_single_holder(pair, d2)
    a1 = Agent(d1, tmp_path, config(instance_block(150, extra="  nopreempt\n"))).start()
    assert stays(lambda: holders(pair) == [d2], 8)
    assert "(VI_1) Entering BACKUP STATE" in a1.log_text()


def test_preempt_delay_is_honoured(pair, tmp_path):
    d1, d2 = pair
    Agent(d2, tmp_path, config(instance_block(100))).start()
    wait_single_holder(pair, d2)
    a1 = Agent(d1, tmp_path, config(instance_block(150, extra="  preempt_delay 6\n"))).start()
    started = time.monotonic()
    d1.wait_for(lambda: "start preempt delay" in a1.log_text(), timeout=5)
    assert stays(lambda: holders(pair) == [d2], 5)
    wait_single_holder(pair, d1, timeout=10)
    assert time.monotonic() - started > 6


def test_track_interface_down_moves_the_vip(pair, tmp_path):
    d1, d2 = pair
    add_uplink(d1)
    a1, _a2 = start_pair(pair, tmp_path, extra1="  track_interface {\n    uplink\n  }\n")
    wait_single_holder(pair, d1)
    d1.run(["ip", "link", "set", "uplink_peer", "down"])  # uplink loses its carrier
    wait_single_holder(pair, d2, timeout=5)
    assert "(VI_1) Entering FAULT STATE" in a1.log_text()
    d1.run(["ip", "link", "set", "uplink_peer", "up"])
    wait_single_holder(pair, d1, timeout=10)


def test_failing_vrrp_script_lowers_priority_and_moves_the_vip(pair, tmp_path):
    d1, d2 = pair
    flag = tmp_path / "healthy"
    flag.write_text("")
    script = (
        f'vrrp_script chk {{\n  script "/usr/bin/test -e {flag}"\n  interval 0.5\n'
        "  weight -60\n  fall 2\n  rise 2\n}\n"
    )
    block = instance_block(150, extra="  track_script {\n    chk\n  }\n")
    a1 = Agent(d1, tmp_path, config(script, block)).start()
    Agent(d2, tmp_path, config(instance_block(100))).start()
    wait_single_holder(pair, d1)
    flag.unlink()
    wait_single_holder(pair, d2, timeout=10)  # 150 - 60 = 90 < 100: d2 preempts
    assert "VRRP_Script(chk) failed" in a1.log_text()
    flag.write_text("")
    wait_single_holder(pair, d1, timeout=10)
    status = a1.command("status").stdout
    assert "priority 150/150" in status


def test_notify_scripts_get_keepalived_arguments(pair, tmp_path):
    d1, d2 = pair
    out = tmp_path / "notify.out"
    script = tmp_path / "notify.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)
    a1, _a2 = start_pair(pair, tmp_path, extra1=f"  notify {script}\n")
    wait_single_holder(pair, d1)
    d1.wait_for(lambda: out.exists() and "MASTER" in out.read_text(), timeout=5)
    a1.stop()
    d1.wait_for(lambda: "STOP" in out.read_text(), timeout=5)
    assert out.read_text().splitlines() == [
        "INSTANCE VI_1 BACKUP 150",
        "INSTANCE VI_1 MASTER 150",
        "INSTANCE VI_1 STOP 150",
    ]


def test_sync_group_members_move_together(pair, tmp_path):
    d1, d2 = pair
    add_uplink(d1)
    track = "  track_interface {\n    uplink\n  }\n"
    Agent(d1, tmp_path, config(sync_group_blocks(150, member_extra=track))).start()
    Agent(d2, tmp_path, config(sync_group_blocks(100))).start()
    wait_single_holder(pair, d1)
    wait_single_holder(pair, d1, vip=VIP4_2)
    d1.run(["ip", "link", "set", "uplink_peer", "down"])  # only VI_1 tracks it: both must move
    wait_single_holder(pair, d2, timeout=8)
    wait_single_holder(pair, d2, vip=VIP4_2, timeout=8)


def test_sync_group_track_script_failing_moves_every_member(pair, tmp_path):
    """The group's track_script (weight 0) applies to both members: failing, it puts the group
    in FAULT on d1, so both VIPs move to d2; succeeding again, both come back."""
    d1, d2 = pair
    flag = tmp_path / "healthy"
    flag.write_text("")
    script = f'vrrp_script chk {{\n  script "/usr/bin/test -e {flag}"\n  interval 0.5\n}}\n'
    track = "  track_script {\n    chk\n  }\n"
    a1 = Agent(d1, tmp_path, config(script, sync_group_blocks(150, group_extra=track))).start()
    Agent(d2, tmp_path, config(sync_group_blocks(100))).start()
    wait_single_holder(pair, d1)
    wait_single_holder(pair, d1, vip=VIP4_2)
    flag.unlink()
    wait_single_holder(pair, d2, timeout=10)
    wait_single_holder(pair, d2, vip=VIP4_2, timeout=10)
    log = a1.log_text()
    assert "(VI_1) Entering FAULT STATE" in log and "(VI_2) Entering FAULT STATE" in log
    flag.write_text("")
    wait_single_holder(pair, d1, timeout=10)
    wait_single_holder(pair, d1, vip=VIP4_2, timeout=10)


def test_reload_keeps_running_config_on_error_and_applies_a_good_one(pair, tmp_path):
    d1, d2 = pair
    a1, _a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    good = a1.conf.read_text()
    a1.conf.write_text(good.replace("priority 150", "priority 150\n  priorty 50"))  # a typo
    a1.signal(signal.SIGHUP)
    d1.wait_for(lambda: "keeping the running configuration" in a1.log_text(), timeout=5)
    assert f"{a1.conf}:" in a1.log_text()  # FILE:LINE: message
    assert stays(lambda: holders(pair) == [d1], 2)
    a1.conf.write_text(good.replace("priority 150", "priority 50"))
    reload = a1.command("reload")
    assert reload.returncode == 0, reload.stderr
    wait_single_holder(pair, d2, timeout=10)


def test_reloaded_master_keeps_the_vip_and_takes_the_new_settings(lab, pair, tmp_path):
    d1, d2 = pair
    adverts = lab.capture("proto 112")
    a1, _a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    new_vips = f"{VIP4}/24\n    192.168.77.101/24"
    a1.conf.write_text(config(instance_block(140, vip=new_vips, extra="  nopreempt\n")))
    reload = a1.command("reload")
    assert reload.returncode == 0, reload.stderr
    assert stays(lambda: holders(pair) == [d1], 3, interval=0.05)
    assert holders(pair, "192.168.77.101") == [d1]
    status = a1.command("status")
    assert "VRRP VI_1: MASTER on eth0 priority 140/140" in status.stdout
    time.sleep(1.2)
    adverts.stop()
    from_d1 = [line for line in adverts.read() if "192.168.77.11 >" in line]
    assert not [line for line in from_d1 if "prio 0," in line], from_d1
    assert "prio 140," in from_d1[-1]
    log = a1.log_text()
    assert log.count("Entering MASTER STATE") == 1 and "sent 0 priority" not in log


LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[2])))
server.listen()
while True:
    conn, _ = server.accept()
    conn.sendall(sys.argv[1].encode())
    conn.close()
"""
CLIENT = """
import socket, sys, time
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.5) as conn:
            print(round(time.monotonic(), 2), conn.recv(100).decode(), flush=True)
    except OSError:
        print(round(time.monotonic(), 2), "-", flush=True)
    time.sleep(0.1)
"""


def test_client_keeps_reaching_the_vip_across_a_failover(lab, pair, tmp_path):
    d1, d2 = pair
    client = lab.host("c1", "192.168.77.50/24")
    for host in pair:
        host.popen([sys.executable, "-c", LISTENER, host.short_name, str(PORT)])
    a1, _a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    probe = client.popen(
        [sys.executable, "-c", CLIENT, VIP4, str(PORT), "8"], stdout=subprocess.PIPE
    )
    time.sleep(2)
    a1.stop()
    out, _err = probe.communicate(timeout=20)
    answers = [line.split()[1] for line in out.decode().splitlines()]
    assert answers[0] == "d1" and answers[-1] == "d2"
    switch = answers.index("d2")
    assert "d1" not in answers[switch:]
    gaps = answers.count("-")
    assert gaps <= 15  # at most ~1.5 s of refused/unanswered probes around the switch
