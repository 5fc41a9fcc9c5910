"""Reload: parsed in a worker thread (VRRP keeps running), abandoned after a timeout, and an
empty configuration refused; the running configuration stays whenever a reload fails."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

import pytest

from lvsagent import agent, cli, control
from lvsagent.config import load

INSTANCE = """vrrp_instance VI_1 {
  interface lo
  virtual_router_id 51
  priority 100
  virtual_ipaddress {
    192.168.77.100/24
  }
}
"""


class FakeVrrp:
    def __init__(self) -> None:
        self.applied = []
        self.drops = {}
        self.scripts = {}

    def status(self) -> list:
        return []

    async def apply_config(self, config) -> None:
        self.applied.append(config)


def make_agent(tmp_path, text: str = INSTANCE) -> agent.Agent:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    args = cli.build_parser().parse_args(
        ["run", "-f", str(conf), "--control-socket", str(tmp_path / "c.sock")]
    )
    running = agent.Agent(args, load(str(conf)))
    running.vrrp = FakeVrrp()
    return running


def reload(running: agent.Agent, **options) -> dict:
    async def scenario():
        running._reload_lock = asyncio.Lock()
        return await running.reload(**options)

    return asyncio.run(scenario())


def test_the_loop_keeps_running_while_a_reload_parses(tmp_path, monkeypatch):
    running = make_agent(tmp_path)
    parsing, released = threading.Event(), threading.Event()
    parsed_in = []
    real_load = agent.load

    def slow_load(path, **_options):
        parsed_in.append(threading.current_thread())
        parsing.set()
        released.wait(5)  # on the loop's thread this would hold every timer for 5 s
        parsing.clear()
        return real_load(path)

    monkeypatch.setattr(agent, "load", slow_load)

    async def scenario():
        running._reload_lock = asyncio.Lock()
        ticks_during_parse = 0

        async def ticker():
            nonlocal ticks_during_parse
            for _tick in range(500):
                await asyncio.sleep(0.01)
                ticks_during_parse += parsing.is_set()
                if ticks_during_parse == 3:
                    released.set()

        ticking = asyncio.ensure_future(ticker())
        answer = await running.reload()
        ticking.cancel()
        return answer, ticks_during_parse

    answer, ticks_during_parse = asyncio.run(scenario())
    assert answer["reloaded"] is True
    assert ticks_during_parse >= 3  # the loop ran its timers while the parse was blocked
    assert parsed_in and parsed_in[0] is not threading.main_thread()
    assert len(running.vrrp.applied) == 1


def test_a_parse_that_times_out_is_abandoned_and_the_next_reload_waits_for_it(
    tmp_path, monkeypatch, caplog
):
    running = make_agent(tmp_path)
    before = running.config
    released = threading.Event()
    real_load = agent.load

    def stuck_load(path, **_options):
        released.wait(10)
        return real_load(path)

    monkeypatch.setattr(agent, "load", stuck_load)
    monkeypatch.setattr(agent, "RELOAD_PARSE_TIMEOUT", 0.2)
    with caplog.at_level(logging.ERROR, logger="lvsagent"):
        first = reload(running)
        second = reload(running)
    assert "took more than 0.2 seconds" in first["error"]
    assert "has not finished" in second["error"]
    assert "keeping the running configuration" in caplog.text
    assert running.config is before and running.vrrp.applied == []
    released.set()
    running._abandoned_parse.join(5)
    assert reload(running)["reloaded"] is True


def test_a_parse_that_delivered_does_not_hold_the_next_reload_back(tmp_path, monkeypatch):
    """The parse thread may still be on its way out when its reload has finished."""

    leave = threading.Event()

    class LingeringThread(threading.Thread):
        def run(self):
            super().run()
            if self.name == "config-parse":  # the executor's threads are Threads too
                leave.wait(10)

    monkeypatch.setattr(agent.threading, "Thread", LingeringThread)
    running = make_agent(tmp_path)
    try:
        assert reload(running)["reloaded"] is True
        assert reload(running)["reloaded"] is True
    finally:
        leave.set()


def test_a_reload_that_would_remove_everything_is_refused(tmp_path, caplog):
    running = make_agent(tmp_path)
    before = running.config
    with open(running.args.config, "w") as emptied:
        emptied.write("global_defs {\n  router_id R1\n}\n")
    with caplog.at_level(logging.ERROR, logger="lvsagent"):
        answer = reload(running)
    assert "no vrrp_instance and no virtual_server" in answer["error"]
    assert "Reload refused: the new configuration has no vrrp_instance" in caplog.text
    assert running.config is before and running.vrrp.applied == []


def test_an_explicit_request_may_leave_nothing_declared(tmp_path):
    running = make_agent(tmp_path)
    with open(running.args.config, "w") as emptied:
        emptied.write("global_defs {\n  router_id R1\n}\n")
    assert reload(running, allow_empty=True)["reloaded"] is True
    assert running.config.vrrp_instances == [] and len(running.vrrp.applied) == 1


def test_an_empty_configuration_may_replace_an_empty_one(tmp_path):
    running = make_agent(tmp_path, "")
    assert reload(running)["reloaded"] is True


def test_a_reload_that_includes_a_fifo_fails_at_the_including_line(tmp_path, caplog):
    running = make_agent(tmp_path)
    fifo = tmp_path / "pipe.conf"
    os.mkfifo(fifo)
    with open(running.args.config, "a") as conf:
        conf.write("include pipe.conf\n")
    with caplog.at_level(logging.ERROR, logger="lvsagent"):
        answer = reload(running)
    line = INSTANCE.count("\n") + 1
    problem = f"{running.args.config}:{line}: include: cannot read {fifo}: not a regular file"
    assert answer["problems"][0].startswith(problem)
    assert problem in caplog.text
    assert running.vrrp.applied == []


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_a_truncated_configuration_keeps_the_running_one(tmp_path, cut):
    running = make_agent(tmp_path)
    before = running.config
    with open(running.args.config, "w") as truncated:
        truncated.write(INSTANCE[: int(len(INSTANCE) * cut)])
    assert "error" in reload(running)
    assert running.config is before and running.vrrp.applied == []


def test_a_reload_reads_the_conditional_lines_of_the_agents_config_id(tmp_path):
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        INSTANCE.replace("  priority 100\n", "  @lb1 priority 150\n  @^lb1 priority 50\n")
    )
    args = cli.build_parser().parse_args(
        ["run", "-f", str(conf), "-i", "lb1", "--control-socket", str(tmp_path / "c.sock")]
    )
    running = agent.Agent(args, load(str(conf), config_id="lb1"))
    running.vrrp = FakeVrrp()
    conf.write_text(conf.read_text().replace("150", "160"))
    assert reload(running)["reloaded"] is True
    (applied,) = running.vrrp.applied
    assert applied.vrrp_instances[0].priority == 160


def test_reloads_are_counted_and_move_the_metrics_listener(tmp_path):
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = make_agent(tmp_path)
    conf = tmp_path / "keepalived.conf"

    async def scrape() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        reply = await reader.read()
        writer.close()
        return reply

    async def scenario():
        running._reload_lock = asyncio.Lock()
        assert (await running.status())["agent"]["reloads"] == {"ok": 0, "refused": 0}
        conf.write_text(f"global_defs {{\n  metrics_listen 127.0.0.1:{port}\n}}\n" + INSTANCE)
        assert (await running.reload())["reloaded"] is True
        assert (await scrape()).startswith(b"HTTP/1.1 200 OK")
        conf.write_text("vrrp_instance {\n")
        assert "error" in await running.reload()
        assert running.metrics.listening is not None  # a refused reload changes nothing
        conf.write_text(INSTANCE)
        assert (await running.reload())["reloaded"] is True
        assert running.metrics.listening is None
        status = (await running.status())["agent"]
        assert status["reloads"] == {"ok": 2, "refused": 1}
        assert status["last_reload"] > status["started"] > 0
        await running.metrics.close()

    asyncio.run(scenario())


def test_status_names_the_router_id_or_the_host_as_keepalived_defaults_it(tmp_path):
    running = make_agent(tmp_path)
    conf = tmp_path / "keepalived.conf"

    async def scenario():
        running._reload_lock = asyncio.Lock()
        assert (await running.status())["agent"]["router_id"] == socket.gethostname()
        conf.write_text("global_defs {\n  router_id LVS_EDGE_1\n}\n" + INSTANCE)
        assert (await running.reload())["reloaded"] is True
        return await running.status()

    status = asyncio.run(scenario())
    assert status["agent"]["router_id"] == "LVS_EDGE_1"
    assert control.status_text(status).splitlines()[0] == "Router ID LVS_EDGE_1"
