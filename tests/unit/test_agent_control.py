"""The control socket protocol (server and client) and `run` refusing a bad configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import stat

import pytest

from lvsagent import agent, control

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
    "ipvs": [],
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


def test_status_command_prints_a_summary(tmp_path, capsys):
    def ask(path):
        return control.status_command(argparse.Namespace(control_socket=path, json=False))

    _mode, code = serve_and_ask(tmp_path, {"status": status_handler}, ask)
    assert code == 0
    out = capsys.readouterr().out
    assert "VRRP VI_1: MASTER on eth0 priority 140/150 VIPs 192.168.77.100/24" in out


def test_reload_command_reports_problems(tmp_path, capsys):
    async def failing_reload():
        return {"error": "configuration has errors", "problems": ["a.conf:3: bad"]}

    def ask(path):
        return control.reload_command(argparse.Namespace(control_socket=path))

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
        config=str(conf), control_socket=str(tmp_path / "c.sock"), log_level="INFO"
    )
    with caplog.at_level(logging.ERROR, logger="lvsagent"):
        assert agent.run(args) == 1
    assert f"{conf}:2:" in caplog.text
