"""FILE_CHECK and lvs_notify_fifo through the LVS engine's health path, on the real clock: real
track files written under it, a real TCP listener on loopback for a TCP_CHECK beside them, and
a reader on the FIFO seeing keepalived's lines. The IPVS table is the unit tests' in-memory one
(kernel IPVS is exercised in the guest); what is checked here is what the engine asks of it."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from lvs.fakes import FakeIpvs

from lvsagent.config import loads
from lvsagent.lvs.engine import LvsEngine
from lvsagent.vrrp.machine import LoopClock

pytestmark = pytest.mark.netns

WAIT = 10.0  # seconds: a file is looked at every second, a check runs every second

CONFIG = """
global_defs {{
    lvs_notify_fifo {fifo}
}}
track_file maintenance {{
    file {maintenance}
    weight 0
}}
track_file capacity {{
    file {capacity}
    weight 5
}}
virtual_server 127.0.0.1 80 {{
    protocol TCP
    lvs_sched wrr
    lvs_method NAT
    delay_loop 1
    real_server 127.0.0.1 {port} {{
        weight 10
        TCP_CHECK {{
            warmup 0
            retry 0
            connect_timeout 1
        }}
        FILE_CHECK {{
            track_file maintenance
        }}
    }}
    real_server 127.0.0.2 {port} {{
        weight 10
        FILE_CHECK {{
            track_file capacity
        }}
    }}
}}
"""


def listener(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    return sock


class FifoReader:
    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.buffer = b""

    async def line(self) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while b"\n" not in self.buffer:
            assert loop.time() < deadline, f"no line on the FIFO within {WAIT}s"
            try:
                self.buffer += os.read(self.fd, 4096)
            except BlockingIOError:
                await asyncio.sleep(0.05)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        os.close(self.fd)


async def until(condition) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_real_servers_go_out_and_back_by_file_and_by_check_with_fifo_lines(tmp_path):
    maintenance, capacity = tmp_path / "maintenance", tmp_path / "capacity"
    maintenance.write_text("0\n")
    capacity.write_text("2\n")
    server = listener()
    port = server.getsockname()[1]
    fifo = tmp_path / "lvs.fifo"
    config = loads(CONFIG.format(fifo=fifo, maintenance=maintenance, capacity=capacity, port=port))
    rs1 = f"[127.0.0.1]:tcp:{port}"
    vs = "[127.0.0.1]:tcp:80"

    async def scenario():
        nonlocal server
        ipvs = FakeIpvs()
        engine = LvsEngine(config, ipvs, LoopClock(asyncio.get_running_loop()))
        await engine.start()
        (key,) = ipvs.kernel

        def weights():
            return ipvs.weights(key)

        reader = FifoReader(str(fifo))
        try:
            await until(lambda: weights() == {f"127.0.0.1:{port}": 10, f"127.0.0.2:{port}": 20})
            maintenance.write_text("1\n")  # weight 0: a non-zero value takes it out
            assert await reader.line() == f"RS {rs1} {vs} DOWN"
            assert weights() == {f"127.0.0.2:{port}": 20}
            maintenance.write_text("0\n")
            assert await reader.line() == f"RS {rs1} {vs} UP"
            await until(lambda: f"127.0.0.1:{port}" in weights())

            server.close()  # the TCP_CHECK fails: out, whatever the file says
            assert await reader.line() == f"RS {rs1} {vs} DOWN"
            capacity.write_text("-2\n")  # 10 + (-2 * 5): alive with weight 0, no quorum
            assert await reader.line() == f"VS {vs} DOWN"
            capacity.write_text("3\n")
            assert await reader.line() == f"VS {vs} UP"
            await until(lambda: weights() == {f"127.0.0.2:{port}": 25})
            server = listener(port)
            assert await reader.line() == f"RS {rs1} {vs} UP"
            await until(lambda: weights() == {f"127.0.0.1:{port}": 10, f"127.0.0.2:{port}": 25})
        finally:
            reader.close()
            await engine.stop()

    try:
        asyncio.run(scenario())
    finally:
        server.close()
    assert not fifo.exists()  # created by the engine: removed at stop


def test_init_file_creates_the_track_file_a_file_check_reads(tmp_path):
    flag = tmp_path / "flag"
    config = loads(
        f"""
track_file flag {{
    file {flag}
    weight 0
    init_file 1
}}
virtual_server 127.0.0.1 80 {{
    protocol TCP
    lvs_sched rr
    real_server 127.0.0.3 80 {{
        FILE_CHECK {{
            track_file flag
        }}
    }}
}}
"""
    )

    async def scenario():
        ipvs = FakeIpvs()
        engine = LvsEngine(config, ipvs, LoopClock(asyncio.get_running_loop()))
        await engine.start()
        (key,) = ipvs.kernel
        try:
            await until(flag.exists)
            await asyncio.sleep(1.5)  # a look at the file after init: 1 keeps it out
            assert ipvs.weights(key) == {}
            flag.write_text("0\n")
            await until(lambda: ipvs.weights(key) == {"127.0.0.3:80": 1})
        finally:
            await engine.stop()

    asyncio.run(scenario())
    assert flag.read_text() == "0\n"
