"""The test bed itself: addresses, IPv6 without DAD, link cuts, captures, cleanup, sweeper."""

from __future__ import annotations

import subprocess

import pytest

from testbed.netns import CommandError, Lab, list_netns, sweep_stale

pytestmark = pytest.mark.netns


def ping(host, address: str) -> bool:
    argv = ["ping", "-c", "1", "-W", "1", address]
    return host.run(argv, check=False).returncode == 0


def test_hosts_talk_over_ipv4_and_ipv6_at_once(lab):
    a = lab.host("a", "192.168.78.1/24", ipv6="fd00:78::1/64")
    b = lab.host("b", "192.168.78.2/24", ipv6="fd00:78::2/64")
    assert (a.ip, a.ipv6, a.ifname) == ("192.168.78.1", "fd00:78::1", "eth0")
    assert a.mac != b.mac and len(a.mac.split(":")) == 6
    assert ping(a, b.ip)
    assert ping(a, b.ipv6), "IPv6 address not usable at once (DAD not disabled?)"
    link = a.run(["ip", "-j", "link", "show", "eth0"]).stdout
    assert a.mac in link


def test_addresses_and_command_errors(lab):
    a = lab.host("a", "192.168.78.1/24")
    a.add_address("10.9.9.9/32", dev="lo")
    a.add_address("fd00:99::9/128", dev="lo")
    assert {"10.9.9.9/32", "fd00:99::9/128", "127.0.0.1/8"} <= set(a.addresses("lo"))
    assert "192.168.78.1/24" in a.addresses()
    assert "192.168.78.1/24" not in a.addresses("lo")
    with pytest.raises(CommandError, match="No such file|not found|cannot|No such"):
        a.run(["ls", "/does/not/exist"])


def test_link_down_cuts_and_link_up_restores(lab):
    a = lab.host("a", "192.168.78.1/24")
    b = lab.host("b", "192.168.78.2/24")
    assert ping(a, b.ip)
    a.link_down()
    assert not ping(b, a.ip)
    assert "NO-CARRIER" in a.run(["ip", "link", "show", "eth0"]).stdout
    a.link_up()
    assert a.wait_for(lambda: ping(b, a.ip), timeout=5)


def test_capture_on_the_bridge_and_in_a_host(lab):
    a = lab.host("a", "192.168.78.1/24")
    b = lab.host("b", "192.168.78.2/24")
    on_bridge = lab.capture("icmp")
    in_b = lab.capture("icmp", host=b)
    assert ping(a, b.ip)
    assert on_bridge.stop().suffix == ".pcap"
    in_b.stop()
    for capture in (on_bridge, in_b):
        lines = capture.read()
        assert any(f"{a.ip} > {b.ip}: ICMP echo request" in line for line in lines), lines
        assert any(f"{b.ip} > {a.ip}: ICMP echo reply" in line for line in lines), lines


def test_wait_for_returns_the_value_or_says_what_timed_out(lab):
    a = lab.host("a", "192.168.78.1/24")
    assert a.wait_for(lambda: "ready", timeout=1) == "ready"

    def never():
        return False

    with pytest.raises(TimeoutError, match="never"):
        a.wait_for(never, timeout=0.2)


def test_close_kills_processes_and_deletes_every_namespace(tmp_path):
    lab = Lab(prefix="lvshatest", workdir=tmp_path)
    a = lab.host("a", "192.168.78.1/24")
    sleeper = a.popen(["sleep", "600"])
    names = {lab.bridge_netns, a.name}
    assert names <= set(list_netns())
    lab.close()
    assert sleeper.poll() is not None
    assert not names & set(list_netns())


def test_sweeper_removes_namespaces_of_dead_runs_only(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"lvshatest-{dead.pid}-abcd-a"
    with Lab(prefix="lvshatest", workdir=tmp_path) as alive:
        subprocess.run(["ip", "netns", "add", stale], check=True)
        stray = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "600"])
        try:
            assert sweep_stale("lvshatest") == [stale]
            assert stale not in list_netns()
            assert stray.wait(timeout=5) != 0
            assert alive.bridge_netns in list_netns(), "the sweeper removed a live run"
        finally:
            if stray.poll() is None:
                stray.kill()
            subprocess.run(["ip", "netns", "delete", stale], check=False, capture_output=True)
