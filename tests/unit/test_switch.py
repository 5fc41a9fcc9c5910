"""`lvs-agent switch`: the old daemon goes without cleaning up, keepalived's state is read.

A small stand-in for keepalived runs for real: a parent that respawns its child when it dies,
and a child that cleans up on SIGTERM, which it gets when its parent dies (PR_SET_PDEATHSIG),
as keepalived's VRRP and checker processes do.
"""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from lvsagent import switch
from lvsagent.cli import main

DAEMON = r"""
import ctypes, os, signal, sys, time
pid_file, marks = sys.argv[1], sys.argv[2]
PR_SET_PDEATHSIG = 1

def mark(what):
    with open(os.path.join(marks, what), "w"):
        pass

def child():
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: (mark("cleaned"), os._exit(0)))
    with open(pid_file + ".child-ready", "w"):
        pass
    while True:
        time.sleep(1)

def spawn():
    pid = os.fork()
    if pid == 0:
        child()
    return pid

def respawn(*_):
    os.waitpid(-1, os.WNOHANG)
    mark("respawned")
    spawn()

signal.signal(signal.SIGCHLD, respawn)
spawn()
with open(pid_file, "w") as file:
    file.write(f"{os.getpid()}\n")
while True:
    time.sleep(1)
"""


@pytest.fixture
def daemon(tmp_path):
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    marks = tmp_path / "marks"
    marks.mkdir()
    pid_file = tmp_path / "daemon.pid"
    process = subprocess.Popen([sys.executable, str(script), str(pid_file), str(marks)])
    args = SimpleNamespace(keepalived_pid_file=str(pid_file))

    def pids():
        found = switch.daemon_pids("keepalived", args)
        return found if len(found) == 2 else None

    deadline = time.monotonic() + 30
    child_ready = tmp_path / "daemon.pid.child-ready"  # its death signal and handler are set
    while pids() is None or not child_ready.exists():
        assert time.monotonic() < deadline, "the stand-in daemon did not start"
        time.sleep(0.05)
    yield SimpleNamespace(pids=pids(), marks=marks, process=process)
    for pid in switch.daemon_pids("keepalived", args):
        switch.kill_all([pid])
    process.wait(timeout=10)


def test_kill_all_leaves_no_clean_up_and_no_respawn(daemon):
    parent, child = daemon.pids
    switch.kill_all(daemon.pids)
    assert daemon.process.wait(timeout=10) == -9
    assert not switch.alive(child)
    time.sleep(0.5)  # a SIGTERM handler, had one run, would have marked by now
    assert sorted(path.name for path in daemon.marks.iterdir()) == []


def test_the_stand_in_cleans_up_when_only_its_parent_is_killed(daemon):
    """What kill_all avoids: a SIGKILLed parent lets the child clean up."""
    parent, child = daemon.pids
    switch.kill_all([parent])
    deadline = time.monotonic() + 10
    while not (daemon.marks / "cleaned").exists():
        assert time.monotonic() < deadline, "the child never cleaned up"
        time.sleep(0.05)


def test_daemon_pids_without_a_running_daemon(tmp_path):
    args = SimpleNamespace(keepalived_pid_file=str(tmp_path / "absent.pid"))
    assert switch.daemon_pids("keepalived", args) == []


# The lines of keepalived 2.2.7's data dump (SIGUSR1) the switch reads, among others.
DATA = """\
------< Global definitions >------
 Router ID = LVS_DEVEL
------< VRRP Topology >------
 VRRP Instance = VI_1
   VRRP Version = 2
   State = MASTER
   Wantstate = MASTER
 VRRP Instance = VI_2
   State = BACKUP
"""


def test_parse_keepalived_data():
    assert switch.parse_keepalived_data(DATA) == {"VI_1": "MASTER", "VI_2": "BACKUP"}


def test_a_refused_configuration_stops_the_switch_before_anything(tmp_path, capsys):
    config = tmp_path / "keepalived.conf"
    config.write_text("vrrp_instance VI_1 {\n    use_vmac_addr\n}\n")
    assert main(["switch", "--to", "agent", "-f", str(config)]) == 1
    assert f"{config}:2: use_vmac_addr: not supported by lvs-agent" in capsys.readouterr().err


def test_nothing_to_hand_over_without_the_old_daemon(tmp_path, capsys):
    config = tmp_path / "keepalived.conf"
    config.write_text("global_defs {\n    router_id T\n}\n")
    argv = ["switch", "--to", "agent", "-f", str(config)]
    argv += ["--keepalived-pid-file", str(tmp_path / "keepalived.pid")]
    assert main(argv) == 1
    assert "keepalived is not running: nothing to hand over" in capsys.readouterr().err
