"""The control socket protocol (server and client) and `run` refusing a bad configuration."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import stat

import pytest

from lvsagent import agent, cli, control
from lvsagent.config.model import Config
from lvsagent.ipvs import IpvsError, ServiceKey
from lvsagent.lvs import netlink_thread
from lvsagent.owned import owned_services, owned_vips

STATUS = {
    "vrrp": [
        {
            "name": "VI_1",
            "state": "MASTER",
            "priority": 150,
            "effective_priority": 140,
            "interface": "eth0",
            "vips": ["192.168.77.100/24"],
        }
    ],
    "ipvs": [
        {
            "service": "[192.168.77.100]:80",
            "family": 4,
            "protocol": "tcp",
            "address": "192.168.77.100",
            "port": 80,
            "fwmark": None,
            "scheduler": "rr",
            "persistence_timeout": 60,
            "persistence_netmask": "255.255.255.255",
            "flags": [],
            "realservers": [
                {
                    "address": "192.168.77.21",
                    "port": 80,
                    "forwarding": "dr",
                    "weight": 100,
                    "active": 3,
                    "inactive": 7,
                    "health": "up",
                    "since": "2025-01-01T10:00:00Z",
                    "last_error": "",
                },
                {
                    "address": "192.168.77.22",
                    "port": 80,
                    "forwarding": "dr",
                    "weight": None,
                    "active": None,
                    "inactive": None,
                    "health": "down",
                    "since": "2025-01-01T10:05:00Z",
                    "last_error": "connection refused",
                },
            ],
        },
        {
            "service": "FWM 1",
            "family": 4,
            "protocol": None,
            "address": None,
            "port": None,
            "fwmark": 1,
            "scheduler": "sh",
            "persistence_timeout": 0,
            "persistence_netmask": "255.255.255.255",
            "flags": ["sh-port"],
            "realservers": [
                {
                    "address": "10.0.0.5",
                    "port": 443,
                    "forwarding": "nat",
                    "weight": 0,
                    "active": 0,
                    "inactive": 1,
                    "health": "down",
                    "since": "2025-01-01T10:06:00Z",
                    "last_error": "status code 500",
                },
                {
                    "address": "10.0.0.9",
                    "port": 443,
                    "forwarding": "nat",
                    "weight": 1,
                    "active": 0,
                    "inactive": 0,
                    "health": "sorry",
                    "since": None,
                    "last_error": "",
                },
            ],
        },
    ],
}


def serve_and_ask(tmp_path, handlers, ask):
    """Run a ControlServer in a loop and `ask(path)` from a worker thread (the client blocks)."""
    path = str(tmp_path / "run" / "control.sock")

    async def scenario():
        server = control.ControlServer(path, handlers)
        await server.start()
        mode = stat.S_IMODE(os.stat(path).st_mode)
        try:
            return mode, await asyncio.get_running_loop().run_in_executor(None, ask, path)
        finally:
            await server.close()

    return asyncio.run(scenario())


async def status_handler():
    return STATUS


def test_request_round_trip_and_socket_mode(tmp_path):
    mode, answer = serve_and_ask(
        tmp_path, {"status": status_handler}, lambda path: control.request(path, "status")
    )
    assert answer == STATUS
    assert mode == 0o600


def test_unknown_command_is_an_error_reply(tmp_path):
    _mode, answer = serve_and_ask(tmp_path, {}, lambda path: control.request(path, "dance"))
    assert answer == {"error": "unknown command 'dance'"}


def test_malformed_request_is_an_error_reply(tmp_path):
    def ask(path):
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(b"not json\n")
            return json.loads(sock.makefile().readline())

    _mode, answer = serve_and_ask(tmp_path, {"status": status_handler}, ask)
    assert "error" in answer


def run_status_command(tmp_path, capsys, *, as_json: bool) -> str:
    def ask(path):
        return control.status_command(argparse.Namespace(control_socket=path, json=as_json))

    _mode, code = serve_and_ask(tmp_path, {"status": status_handler}, ask)
    assert code == 0
    return capsys.readouterr().out


def test_status_command_prints_a_summary(tmp_path, capsys):
    out = run_status_command(tmp_path, capsys, as_json=False)
    assert "VRRP VI_1: MASTER on eth0 priority 140/150 VIPs 192.168.77.100/24" in out


def test_status_command_shows_the_ipvsadm_table_with_health(tmp_path, capsys):
    out = run_status_command(tmp_path, capsys, as_json=False)
    assert out.splitlines() == [
        "VRRP VI_1: MASTER on eth0 priority 140/150 VIPs 192.168.77.100/24",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  192.168.77.100:80 rr persistent 60",
        "  -> 192.168.77.21:80             Route   100    3          7          "
        "up since 2025-01-01T10:00:00Z",
        "FWM  1 sh (sh-port)",
        "  -> 10.0.0.5:443                 Masq    0      0          1          "
        "down since 2025-01-01T10:06:00Z, last error: status code 500",
        "  -> 10.0.0.9:443                 Masq    1      0          0          sorry",
        "Real servers not in the kernel's table:",
        "  [192.168.77.22]:80 of [192.168.77.100]:80: "
        "down since 2025-01-01T10:05:00Z, last error: connection refused",
    ]


def test_status_command_json_is_the_agent_reply(tmp_path, capsys):
    assert json.loads(run_status_command(tmp_path, capsys, as_json=True)) == STATUS


def test_reload_command_reports_problems(tmp_path, capsys):
    async def failing_reload(allow_empty):
        return {"error": "configuration has errors", "problems": ["a.conf:3: bad"]}

    def ask(path):
        return control.reload_command(
            cli.build_parser().parse_args(["reload", "--control-socket", path])
        )

    _mode, code = serve_and_ask(tmp_path, {"reload": failing_reload}, ask)
    assert code == 1
    assert "configuration has errors" in capsys.readouterr().err


def test_client_without_agent_raises_control_error(tmp_path):
    with pytest.raises(control.ControlError, match="cannot reach lvs-agent"):
        control.request(str(tmp_path / "absent.sock"), "status")


def test_run_refuses_a_bad_configuration_with_file_and_line(tmp_path, caplog):
    conf = tmp_path / "bad.conf"
    conf.write_text("vrrp_instance VI_1 {\n  priority banana\n}\n")
    args = argparse.Namespace(
        config=str(conf), control_socket=str(tmp_path / "c.sock"), log_level="INFO", config_id=None
    )
    with caplog.at_level(logging.ERROR, logger="lvsagent"):
        assert agent.run(args) == 1
    assert f"{conf}:2:" in caplog.text


def test_state_dir_defaults_to_the_control_socket_folder(tmp_path):
    def state_dir(*argv):
        args = cli.build_parser().parse_args(["run", *argv])
        return agent.Agent(args, None).state_dir()

    assert state_dir() == "/run/lvs-agent"
    assert state_dir("--control-socket", str(tmp_path / "c.sock")) == str(tmp_path)
    assert state_dir("--control-socket", "c.sock", "--state-dir", "/var/x") == "/var/x"


def test_without_virtual_servers_ipvs_is_opened_only_for_a_killed_runs_leftovers(
    tmp_path, monkeypatch, caplog
):
    """A VRRP-only configuration never needs IPVS, unless the record lists services to remove;
    then IPVS missing is a warning, not a failed start."""
    opened = []

    def no_ipvs():
        opened.append(True)
        raise IpvsError("IPVS is not available in this kernel")

    monkeypatch.setattr(netlink_thread, "IpvsThread", no_ipvs)
    args = cli.build_parser().parse_args(["run", "--state-dir", str(tmp_path)])
    runner = agent.Agent(args, Config())
    asyncio.run(runner._start_lvs(None))
    assert opened == [] and runner.lvs is None
    owned_services(str(tmp_path)).save({ServiceKey.for_address("10.0.0.1", 80)})
    with caplog.at_level(logging.WARNING, logger="lvsagent"):
        asyncio.run(runner._start_lvs(None))
    assert opened == [True] and runner.lvs is None
    assert "services a previous run left behind are not removed" in caplog.text


def test_a_start_that_fails_before_vrrp_keeps_the_record_of_vips(tmp_path):
    """The VIPs of a killed run may still be on their interfaces: the record must outlive a
    start that failed (here: a control socket path too long for AF_UNIX)."""
    socket_path = str(tmp_path / ("x" * 120 + ".sock"))
    argv = ["run", "--control-socket", socket_path, "--state-dir", str(tmp_path)]
    vips = owned_vips(str(tmp_path))
    left = (ipaddress.ip_interface("10.0.0.5/24"), "eth0")
    vips.save({left})
    assert asyncio.run(agent.Agent(cli.build_parser().parse_args(argv), Config()).main()) == 1
    assert owned_vips(str(tmp_path)).load() == {left}


def raw_exchange(path: str, data: bytes, *, half_close: bool = True) -> bytes:
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


BAD_REQUESTS = {
    b"not json\n": "expected one JSON object with a command",
    b"[1, 2]\n": "expected one JSON object with a command",
    b"42\n": "expected one JSON object with a command",
    b"{}\n": "expected one JSON object with a command",
    b'{"command": ["status"]}\n': "expected one JSON object with a command",
    b'{"command": {"a": 1}}\n': "expected one JSON object with a command",
    b'{"command": "dance"}\n': "unknown command 'dance'",
    b"\xff\xfe\x00\x01binary\x80garbage\n": "expected one JSON object with a command",
    b'{"command": "sta': "expected one JSON object with a command",  # half a line, then close
    b"": "expected one JSON object with a command",
    b"x" * (control.MAX_LINE * 2): f"request longer than {control.MAX_LINE} bytes",
}


def test_every_malformed_request_gets_an_error_reply_and_the_server_keeps_serving(tmp_path):
    async def broken():
        raise RuntimeError("handler bug")

    def ask(path):
        replies = {data: json.loads(raw_exchange(path, data)) for data in BAD_REQUESTS}
        replies[b"broken"] = control.request(path, "broken")
        return replies, control.request(path, "status")

    handlers = {"status": status_handler, "broken": broken}
    _mode, (replies, status) = serve_and_ask(tmp_path, handlers, ask)
    for data, message in BAD_REQUESTS.items():
        assert replies[data] == {"error": message}, data[:40]
    assert replies[b"broken"] == {"error": "broken failed, see the agent's log"}
    assert status == STATUS


def test_request_options_are_checked_against_the_commands_own(tmp_path):
    async def reload(allow_empty=False):
        return {"reloaded": True, "allow_empty": allow_empty}

    def ask(path):
        return [
            control.request(path, "reload", allow_empty=True),
            control.request(path, "reload"),
            control.request(path, "reload", allow_empty="yes"),
            control.request(path, "reload", force=True),
            control.request(path, "status", allow_empty=True),
        ]

    _mode, replies = serve_and_ask(tmp_path, {"reload": reload, "status": status_handler}, ask)
    assert replies[:2] == [
        {"reloaded": True, "allow_empty": True},
        {"reloaded": True, "allow_empty": False},
    ]
    assert replies[2:] == [
        {"error": "reload: unexpected option 'allow_empty'"},
        {"error": "reload: unexpected option 'force'"},
        {"error": "status: unexpected option 'allow_empty'"},
    ]


def test_lock_path_follows_the_control_socket():
    assert control.lock_path("/run/lvs-agent/control.sock") == "/run/lvs-agent/control.pid"
    assert control.lock_path("/tmp/x/agent-d1.sock") == "/tmp/x/agent-d1.pid"


HOLD_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[2])
from lvsagent.control import AgentLock
AgentLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_agent_refuses_to_start_and_leaves_the_socket_alone(tmp_path, caplog):
    import subprocess
    import sys

    socket_path = tmp_path / "control.sock"
    socket_path.write_text("the first agent's socket")
    module_utils = os.path.dirname(os.path.dirname(os.path.abspath(agent.__file__)))
    lock = str(tmp_path / "control.pid")
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, lock, module_utils], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline() == "locked\n"
        conf = tmp_path / "k.conf"
        conf.write_text("")
        args = argparse.Namespace(
            config=str(conf), control_socket=str(socket_path), log_level="INFO", config_id=None
        )
        with caplog.at_level(logging.ERROR, logger="lvsagent"):
            assert agent.run(args) == 1
        assert f"lvs-agent is already running (pid {first.pid}, lock {lock})" in caplog.text
        assert socket_path.read_text() == "the first agent's socket"
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()


def test_a_stale_pid_file_does_not_block_a_start(tmp_path):
    path = tmp_path / "run" / "control.pid"
    path.parent.mkdir()
    path.write_text("999999\n")  # left by a killed agent: its lock died with it
    lock = control.AgentLock(str(path))
    lock.acquire()
    try:
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(control.AlreadyRunning, match=f"pid {os.getpid()}"):
            control.AgentLock(str(path)).acquire()  # another open file: flock conflicts
    finally:
        lock.release()
    assert path.read_text() == ""
    again = control.AgentLock(str(path))
    again.acquire()
    again.release()
