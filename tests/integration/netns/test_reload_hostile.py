"""Reloads under hostile conditions, two lvs-agent nodes on the lab LAN (advert_int 1).

A 10 MB configuration and one that includes a FIFO: the master keeps sending adverts through
the reload (gaps measured on the wire, between consecutive adverts), keeps the VIP, and the bad
file is refused with `FILE:LINE: message`. And one agent per control socket: a second one
refuses to start and the first keeps running. Figures: benchmarks/reload_stall.py.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from test_vrrp_agents import start_pair
from vrrp_support import (
    Agent,
    advert_times,
    holders,
    longest_gap,
    stays,
    unused_scripts,
    wait_single_holder,
)

pytestmark = pytest.mark.netns

ADVERT_INT = 1.0
# A loaded 2-core machine delays timers a little; a stalled loop misses whole adverts.
GAP_BOUND = ADVERT_INT + 0.6


@pytest.fixture
def pair(lab):
    d1 = lab.host("d1", "192.168.77.11/24")
    d2 = lab.host("d2", "192.168.77.12/24")
    return d1, d2


def reload_and_measure(lab, pair, tmp_path, new_text: str, done: str, timeout: float):
    """Start both agents, give the master `new_text`, SIGHUP it; return (agents, gap, took)."""
    d1, _d2 = pair
    adverts = lab.capture("proto 112")
    a1, a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    time.sleep(1.5)
    a1.conf.write_text(a1.conf.read_text() + new_text)
    start = time.time()
    a1.signal(signal.SIGHUP)
    d1.wait_for(lambda: done in a1.log_text(), timeout=timeout)
    end = time.time()
    assert stays(lambda: holders(pair) == [d1], 2 * ADVERT_INT)
    adverts.stop()
    gap = longest_gap(advert_times(adverts, d1.ip), start - ADVERT_INT, end + ADVERT_INT)
    return (a1, a2), gap, end - start


@pytest.mark.slow
def test_reload_of_a_ten_megabyte_configuration_leaves_no_advert_gap(lab, pair, tmp_path):
    (a1, a2), gap, took = reload_and_measure(
        lab, pair, tmp_path, unused_scripts(10), "Reload finished in", timeout=180
    )
    assert os.path.getsize(a1.conf) > 10_000_000
    print(f"10 MB reload took {took:.1f} s, longest advert gap {gap:.3f} s")
    assert gap < GAP_BOUND, f"no advert for {gap:.2f} s during a {took:.1f} s reload"
    assert "Entering MASTER STATE" not in a2.log_text()
    assert "sent 0 priority" not in a1.log_text()


def test_reload_of_a_configuration_including_a_fifo_is_refused_without_a_stall(lab, pair, tmp_path):
    fifo = tmp_path / "pipe.conf"
    os.mkfifo(fifo)  # nobody writes it: opening it for reading would block for ever
    (a1, a2), gap, _took = reload_and_measure(
        lab, pair, tmp_path, "include pipe.conf\n", "keeping the running configuration", 30
    )
    line = a1.conf.read_text().count("\n")
    assert f"{a1.conf}:{line}: include: cannot read {fifo}: not a regular file (a FIFO)" in (
        a1.log_text()
    )
    assert gap < GAP_BOUND, f"no advert for {gap:.2f} s"
    assert "Entering MASTER STATE" not in a2.log_text()
    a1.conf.write_text(a1.conf.read_text().replace("include pipe.conf\n", ""))
    reload = a1.command("reload")
    assert reload.returncode == 0, reload.stderr


def test_a_second_agent_on_the_same_socket_refuses_and_the_first_keeps_running(pair, tmp_path):
    d1, _d2 = pair
    a1, _a2 = start_pair(pair, tmp_path)
    wait_single_holder(pair, d1)
    (tmp_path / "second").mkdir()
    second = Agent(d1, tmp_path / "second", a1.conf.read_text())
    second.socket = a1.socket
    second.start()
    assert second.proc.wait(30) == 1
    assert f"lvs-agent is already running (pid {a1.proc.pid}," in second.log_text()
    assert a1.proc.poll() is None
    status = a1.command("status")
    assert status.returncode == 0, status.stderr
    assert "VRRP VI_1: MASTER" in status.stdout
    assert stays(lambda: holders(pair) == [d1], 2)
