"""vrrp_track_process: matching processes as keepalived does, quorum, fork and terminate delays."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakeclock import FakeClock

from lvsagent.config.model import TrackProcess
from lvsagent.vrrp.track_process import (
    Process,
    ProcessTracker,
    ProcessWatch,
    process_matches,
    read_processes,
)


def proc(comm, *argv):
    return Process(comm, b"".join(arg.encode() + b"\0" for arg in argv))


HAPROXY = proc("haproxy", "/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg", "-p")


@pytest.mark.parametrize(
    ("track", "process", "matched"),
    [
        (TrackProcess("t", "haproxy"), HAPROXY, True),
        (TrackProcess("t", "hap"), HAPROXY, False),  # no regular expression, no prefix
        (TrackProcess("t", "/usr/sbin/haproxy"), HAPROXY, False),  # the name, not the path
        (TrackProcess("t", "/usr/sbin/haproxy", full_command=True), HAPROXY, True),
        (TrackProcess("t", "haproxy", full_command=True), HAPROXY, False),
        (TrackProcess("t", "/usr/sbin/haproxy", param_match="exact"), HAPROXY, False),
        (
            TrackProcess("t", "/usr/sbin/haproxy", ["-f", "/etc/haproxy.cfg", "-p"], "exact"),
            HAPROXY,
            True,
        ),
        (TrackProcess("t", "/usr/sbin/haproxy", ["-f"], "exact"), HAPROXY, False),
        (TrackProcess("t", "/usr/sbin/haproxy", ["-f"], "partial"), HAPROXY, True),
        (TrackProcess("t", "/usr/sbin/haproxy", ["-f", "/etc/hap"], "partial"), HAPROXY, False),
        (TrackProcess("t", "/usr/sbin/haproxy", ["-f", "/etc/hap"], "initial"), HAPROXY, True),
        (TrackProcess("t", "/usr/sbin/haproxy", ["-x"], "initial"), HAPROXY, False),
        (TrackProcess("t", "sleep", [], "exact"), proc("sleep", "sleep"), True),
        (TrackProcess("t", "sleep", [], "exact"), proc("sleep", "sleep", "5"), False),
    ],
)
def test_process_matches_as_keepalived(track, process, matched):
    assert process_matches(track, process) is matched


def tracker_with(clock, **settings):
    tracker = ProcessTracker(TrackProcess("tp", "worker", **settings), clock)
    flips = []
    tracker.subscribe(lambda name, ok: flips.append(ok))
    return tracker, flips


def workers(count):
    return [proc("worker", "worker")] * count + [proc("other", "other")]


def test_quorum_and_quorum_max():
    clock = FakeClock()
    tracker, flips = tracker_with(clock, quorum=2, quorum_max=3)
    tracker.record(workers(1))
    assert tracker.ok is False and flips == []  # the first scan sets the state, silently
    tracker.record(workers(2))
    tracker.record(workers(4))
    tracker.record(workers(3))
    assert flips == [True, False, True]


def test_fork_delay_and_terminate_delay_absorb_a_restart():
    clock = FakeClock()
    tracker, flips = tracker_with(clock, fork_delay=2.0, terminate_delay=3.0)
    tracker.record(workers(1))
    tracker.record(workers(0))  # gone ...
    clock.advance(2.0)
    tracker.record(workers(1))  # ... and back within terminate_delay: nothing happened
    clock.advance(5.0)
    assert flips == [] and tracker.ok is True
    tracker.record(workers(0))
    clock.advance(2.9)
    assert flips == []
    clock.advance(0.2)
    assert flips == [False]
    tracker.record(workers(1))
    clock.advance(1.9)
    assert flips == [False]
    clock.advance(0.2)
    assert flips == [False, True]


def test_read_processes_sees_a_real_child_by_name_and_command_line():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "marker-arg"])
    try:
        # Python 3.13 (Debian 13) starts children with vfork: Popen can return while the
        # child's exec is still setting up its command line, which then reads empty.
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{child.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the child never showed its command line"
            time.sleep(0.01)
        found = read_processes("/proc", with_cmdline=True)
        track = TrackProcess("t", sys.executable, ["-c"], "partial")
        assert any(process_matches(track, process) for process in found)
        without = read_processes("/proc", with_cmdline=False)
        assert all(process.cmdline == b"" for process in without)
        assert any(p.comm == os.path.basename(sys.executable)[:15] for p in without)
    finally:
        child.kill()
        child.wait()


def test_zombies_do_not_count(tmp_path):
    for pid, state in (("10", "S"), ("11", "Z"), ("12", "R")):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(f"{pid} (my (odd) name) {state} 1 1 1\n")
    (tmp_path / "self").mkdir()
    assert read_processes(str(tmp_path), with_cmdline=False) == [Process("my (odd) name", b"")] * 2


def test_watch_scans_once_for_every_tracker(tmp_path):
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "stat").write_text("10 (worker) S 1\n")

    async def scenario():
        watch = ProcessWatch(asyncio.get_running_loop(), str(tmp_path))
        first = await watch.add(TrackProcess("a", "worker"))
        second = await watch.add(TrackProcess("b", "worker", quorum=2))
        states = (first.ok, second.ok)
        await watch.remove("a")
        await watch.remove("b")
        return states

    assert asyncio.run(scenario()) == (True, False)
