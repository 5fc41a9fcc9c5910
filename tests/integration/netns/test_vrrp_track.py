"""track_file, vrrp_track_process and the notify FIFO with lvs-agent nodes on the lab LAN, and
the FIFO's lines against keepalived 2.2.7's.

d1 (priority 150) and d2 (100); the tracking on d1 moves the VIP to d2 and back.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess

import pytest
from vrrp_support import (
    VIP4_2,
    Agent,
    Keepalived,
    config,
    instance_block,
    sync_group_blocks,
    wait_single_holder,
)

pytestmark = pytest.mark.netns


@pytest.fixture
def pair(lab):
    return lab.host("d1", "192.168.77.11/24"), lab.host("d2", "192.168.77.12/24")


def test_track_file_value_moves_the_vip_and_weight_0_faults(pair, tmp_path):
    d1, d2 = pair
    weighted, failing = tmp_path / "weighted", tmp_path / "failing"
    failing.write_text("0\n")
    files = (
        f"track_file weighted {{\n  file {weighted}\n  weight -30\n  init_file\n}}\n"
        f"track_file failing {{\n  file {failing}\n}}\n"
    )
    block = instance_block(150, extra="  track_file {\n    weighted\n    failing weight 0\n  }\n")
    a1 = Agent(d1, tmp_path, config(files, block)).start()
    Agent(d2, tmp_path, config(instance_block(100))).start()
    wait_single_holder(pair, d1)
    assert weighted.read_text() == "0\n"  # init_file: created with 0
    weighted.write_text("2\n")  # 150 + 2 * -30 = 90 < 100: d2 preempts
    wait_single_holder(pair, d2, timeout=10)
    assert "priority 90/150" in a1.command("status").stdout  # effective/configured
    weighted.write_text("0\n")
    wait_single_holder(pair, d1, timeout=10)
    failing.write_text("1\n")  # weight 0: a non-zero value is FAULT
    wait_single_holder(pair, d2, timeout=10)
    assert "(VI_1) Entering FAULT STATE" in a1.log_text()
    failing.write_text("0\n")
    wait_single_holder(pair, d1, timeout=10)


def test_killed_tracked_process_moves_the_vip_and_its_restart_brings_it_back(pair, tmp_path):
    d1, d2 = pair
    name = f"trk{secrets.token_hex(4)}"  # a process name no other test runs
    program = tmp_path / name
    shutil.copy("/bin/sleep", program)
    track = f"vrrp_track_process worker {{\n  process {name}\n  weight 0\n}}\n"
    block = instance_block(150, extra="  track_process {\n    worker\n  }\n")
    worker = d1.popen([str(program), "1000"])
    a1 = Agent(d1, tmp_path, config(track, block)).start()
    Agent(d2, tmp_path, config(instance_block(100))).start()
    wait_single_holder(pair, d1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(5)
    wait_single_holder(pair, d2, timeout=10)
    assert "VRRP_Track_Process(worker) quorum lost (0 running)" in a1.log_text()
    d1.popen([str(program), "1000"])
    wait_single_holder(pair, d1, timeout=10)
    assert "VRRP_Track_Process(worker) quorum gained (1 running)" in a1.log_text()


class FifoReader:
    """The test's end of a notify FIFO it creates (so that the daemon keeps it)."""

    def __init__(self, path) -> None:
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.text = ""

    def lines(self) -> list[str]:
        try:
            while True:
                data = os.read(self.fd, 65536)
                if not data:
                    break
                self.text += data.decode()
        except BlockingIOError:
            pass
        return self.text.splitlines()

    def close(self) -> None:
        os.close(self.fd)


GROUP = "vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_2\n  }\n}\n"


def fifo_lines_of(daemon_class, pair, tmp_path) -> list[str]:
    """The lines d1 writes from its start as backup to its stop as master (a group of two)."""
    d1, d2 = pair
    reader = FifoReader(tmp_path / "vrrp.fifo")
    blocks = [instance_block(150), instance_block(150, name="VI_2", vrid=52, vip="10.9.9.9/32")]
    fifo = f"  vrrp_notify_fifo {tmp_path / 'vrrp.fifo'}\n"
    daemon = daemon_class(d1, tmp_path, config(GROUP, *blocks, global_extra=fifo)).start()
    Agent(d2, tmp_path, config(instance_block(100))).start()
    wait_single_holder(pair, d1)
    d1.wait_for(lambda: 'GROUP "G1" MASTER 0' in reader.lines(), timeout=10)
    daemon.stop()
    d1.wait_for(lambda: 'GROUP "G1" STOP 0' in reader.lines(), timeout=10)
    lines = reader.lines()
    reader.close()
    return lines


def assert_keepalived_order(lines: list[str]) -> None:
    """keepalived 2.2.7 writes, for this scenario: each line once; the instances' and the
    group's BACKUP, then MASTER (the group's after both instances'), then STOP (the group's
    last). Within one step the order of the members may differ."""
    backup = {'GROUP "G1" BACKUP 0', 'INSTANCE "VI_1" BACKUP 150', 'INSTANCE "VI_2" BACKUP 150'}
    master = ['INSTANCE "VI_1" MASTER 150', 'INSTANCE "VI_2" MASTER 150']
    stop = ['INSTANCE "VI_1" STOP 150', 'INSTANCE "VI_2" STOP 150']
    assert len(lines) == 9, lines
    assert set(lines[:3]) == backup
    assert sorted(lines[3:5]) == master and lines[5] == 'GROUP "G1" MASTER 0'
    assert sorted(lines[6:8]) == stop and lines[8] == 'GROUP "G1" STOP 0'


def test_notify_fifo_lines_on_state_changes(pair, tmp_path):
    assert_keepalived_order(fifo_lines_of(Agent, pair, tmp_path))


def test_notify_fifo_lines_of_keepalived_are_the_reference(pair, tmp_path):
    assert_keepalived_order(fifo_lines_of(Keepalived, pair, tmp_path))


def test_vrrp_notify_fifo_script_reads_the_fifo_the_agent_creates(pair, tmp_path):
    d1, _d2 = pair
    fifo, out = tmp_path / "made.fifo", tmp_path / "reader.out"
    reader = tmp_path / "reader.sh"
    reader.write_text(f'#!/bin/sh\nwhile read -r line; do echo "$line" >> {out}; done < "$1"\n')
    reader.chmod(0o755)
    settings = f"  vrrp_notify_fifo {fifo}\n  vrrp_notify_fifo_script {reader}\n"
    a1 = Agent(d1, tmp_path, config(instance_block(150), global_extra=settings)).start()
    Agent(pair[1], tmp_path, config(instance_block(100))).start()
    wait_single_holder(pair, d1)
    d1.wait_for(lambda: out.exists() and 'INSTANCE "VI_1" MASTER 150' in out.read_text(), 10)
    assert out.read_text().splitlines()[:2] == [
        'INSTANCE "VI_1" BACKUP 150',
        'INSTANCE "VI_1" MASTER 150',
    ]
    assert a1.stop() == 0
    assert not fifo.exists()  # created by the agent: removed at its stop
    reader_left = subprocess.run(["pgrep", "-f", str(reader)], capture_output=True, check=False)
    assert reader_left.returncode == 1  # the reader does not outlive the agent


def test_sync_group_track_file_moves_every_member(pair, tmp_path):
    """The group's track_file (weight -60) lowers each member: both VIPs move to d2."""
    d1, d2 = pair
    value = tmp_path / "value"
    value.write_text("0\n")

    track = f"track_file tf {{\n  file {value}\n  weight -60\n}}\n"
    tracking = "  track_file {\n    tf\n  }\n"
    Agent(d1, tmp_path, config(track, sync_group_blocks(150, group_extra=tracking))).start()
    Agent(d2, tmp_path, config(sync_group_blocks(100))).start()
    wait_single_holder(pair, d1)
    wait_single_holder(pair, d1, vip=VIP4_2)
    value.write_text("1\n")  # 150 - 60 = 90 < 100 on both members
    wait_single_holder(pair, d2, timeout=10)
    wait_single_holder(pair, d2, vip=VIP4_2, timeout=10)
    value.write_text("0\n")
    wait_single_holder(pair, d1, timeout=10)
    wait_single_holder(pair, d1, vip=VIP4_2, timeout=10)
