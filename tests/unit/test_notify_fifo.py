"""Notify FIFOs: keepalived's lines, never blocking the loop, created and removed as keepalived."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
import sys
from types import SimpleNamespace

from lvsagent.config import loads
from lvsagent.config.model import GlobalDefs, Location, Script
from lvsagent.lvs.engine import fifo_rs, fifo_vs
from lvsagent.notify_fifo import NotifyFifo, NotifyFifos
from lvsagent.vrrp.notify import Notifier


def read_all(path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def test_state_changes_become_keepalived_lines_on_both_vrrp_fifos(tmp_path):
    every, vrrp = tmp_path / "all.fifo", tmp_path / "vrrp.fifo"
    defs = GlobalDefs(notify_fifo=str(every), vrrp_notify_fifo=str(vrrp))

    async def scenario():
        notifier = Notifier()
        await notifier.configure(defs)
        assert stat.S_ISFIFO(os.stat(every).st_mode) and stat.S_ISFIFO(os.stat(vrrp).st_mode)
        # written with nobody reading: kept in the pipe for a reader that comes later
        notifier.state_changed("INSTANCE", "VI_1", "MASTER", 100, None, None)
        notifier.state_changed("GROUP", "G 1", "BACKUP", 0, None, None)
        lines = read_all(every), read_all(vrrp)
        await notifier.drain(0)
        return lines

    expected = b'INSTANCE "VI_1" MASTER 100\nGROUP "G 1" BACKUP 0\n'
    assert asyncio.run(scenario()) == (expected, expected)
    assert not every.exists() and not vrrp.exists()  # created here: removed at close


def test_a_full_fifo_drops_lines_and_never_blocks(tmp_path, caplog):
    path = tmp_path / "f"
    os.mkfifo(path)

    async def scenario():
        fifo = NotifyFifo(str(path), None)
        fifo.open()
        for _line in range(10000):  # far more than the pipe holds
            fifo.write('INSTANCE "VI_1" MASTER 100\n')
        dropped = fifo.dropped
        await fifo.close()
        return dropped

    assert asyncio.run(scenario()) > 0
    assert caplog.text.count("line dropped") == 1
    assert path.exists()  # it was there before: left in place


def test_a_regular_file_is_not_taken_for_a_fifo(tmp_path, caplog):
    path = tmp_path / "plain"
    path.write_text("keep me")
    fifo = NotifyFifo(str(path), None)
    fifo.open()
    fifo.write("x\n")
    assert path.read_text() == "keep me"
    assert "is not a FIFO" in caplog.text


def test_fifo_script_reads_the_fifo_given_as_last_argument(tmp_path):
    path, out = tmp_path / "f", tmp_path / "out"
    reader = tmp_path / "reader.py"
    reader.write_text(
        "import sys\n"
        f"with open(sys.argv[-1]) as fifo, open({str(out)!r}, 'w') as out:\n"
        "    for line in fifo:\n"
        "        out.write(sys.argv[1] + ' ' + line)\n"
        "        out.flush()\n"
    )
    script = Script(f"{sys.executable} {reader} seen")

    async def scenario():
        fifo = NotifyFifo(str(path), script)
        fifo.open()
        fifo.write('INSTANCE "VI_1" FAULT 100\n')
        for _line in range(200):
            if out.exists() and out.read_text():
                break
            await asyncio.sleep(0.05)
        await fifo.close()
        return out.read_text()

    assert asyncio.run(scenario()) == 'seen INSTANCE "VI_1" FAULT 100\n'


def test_reload_reopens_only_when_the_fifos_change(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"

    async def scenario():
        notifier = Notifier()
        await notifier.configure(GlobalDefs(vrrp_notify_fifo=str(first)))
        await notifier.configure(GlobalDefs(vrrp_notify_fifo=str(first)))
        notifier.state_changed("INSTANCE", "VI_1", "BACKUP", 90, None, None)
        kept = read_all(first)
        await notifier.configure(GlobalDefs(vrrp_notify_fifo=str(second)))
        moved = first.exists(), second.exists()
        await notifier.drain(0)
        return kept, moved

    assert asyncio.run(scenario()) == (b'INSTANCE "VI_1" BACKUP 90\n', (False, True))


def test_a_reload_that_only_moves_lines_keeps_the_fifo_and_its_reader(tmp_path):
    path = tmp_path / "f"
    script = Script(f"{sys.executable} -c pass")
    moved = Script(script.command, location=Location("other.conf", 40))

    def defs(reader):
        return GlobalDefs(vrrp_notify_fifo=str(path), vrrp_notify_fifo_script=reader)

    async def scenario():
        notifier = Notifier()
        await notifier.configure(
            GlobalDefs(vrrp_notify_fifo=str(path), vrrp_notify_fifo_script=script)
        )
        fifo = notifier.fifos._fifos[0][0]
        await notifier.configure(
            GlobalDefs(vrrp_notify_fifo=str(path), vrrp_notify_fifo_script=moved)
        )
        kept = notifier.fifos._fifos[0][0] is fifo
        await notifier.drain(0)
        return kept

    assert asyncio.run(scenario())


def test_each_fifo_gets_its_kind_of_lines_and_notify_fifo_gets_both(tmp_path):
    every, vrrp, lvs = tmp_path / "all", tmp_path / "vrrp", tmp_path / "lvs"
    defs = GlobalDefs(notify_fifo=str(every), vrrp_notify_fifo=str(vrrp), lvs_notify_fifo=str(lvs))

    async def scenario():
        fifos = NotifyFifos()
        await fifos.configure(defs)
        fifos.vrrp_line('INSTANCE "VI_1" MASTER 100\n')
        fifos.lvs_line("VS [10.0.0.1]:tcp:80 DOWN\n")
        lines = read_all(every), read_all(vrrp), read_all(lvs)
        await fifos.close()
        return lines

    assert asyncio.run(scenario()) == (
        b'INSTANCE "VI_1" MASTER 100\nVS [10.0.0.1]:tcp:80 DOWN\n',
        b'INSTANCE "VI_1" MASTER 100\n',
        b"VS [10.0.0.1]:tcp:80 DOWN\n",
    )


def test_virtual_and_real_servers_are_named_as_keepalived_names_them():
    config = loads(
        """
virtual_server_group WEB {
    10.0.0.1 80
}
virtual_server fwmark 7 {
    lvs_sched rr
    real_server 10.0.0.2 8080 {
    }
}
virtual_server group WEB {
    lvs_sched rr
    protocol TCP
    real_server 10.0.0.3 80 {
    }
}
virtual_server 2001:db8::1 53 {
    lvs_sched rr
    protocol UDP
    real_server 2001:db8::0:2 53 {
    }
}
"""
    )
    names = []
    for vs in config.virtual_servers:
        rs = vs.real_servers[0]
        entry = SimpleNamespace(address=ipaddress.ip_address(rs.address).compressed, port=rs.port)
        names.append((fifo_vs(vs), fifo_rs(entry, vs)))
    assert names == [
        ("FWM 7", "[10.0.0.2]:none:8080"),
        ("[WEB]:0", "[10.0.0.3]:tcp:80"),
        ("[2001:db8::1]:udp:53", "[2001:db8::2]:udp:53"),
    ]
