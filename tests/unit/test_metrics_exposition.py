"""Metrics from the status snapshot: names, types, values; metrics_listen in the
configuration; the /metrics server and what it does with hostile requests."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lvsagent import cli, metrics, metrics_server
from lvsagent.config import ConfigError, loads
from lvsagent.config.model import MetricsListen
from lvsagent.metrics_server import MetricsServer

COUNTERS = dict.fromkeys(metrics.VRRP_COUNTERS, 0)
SNAPSHOT = {
    "vrrp": [
        {
            "name": "VI_1",
            "state": "MASTER",
            "priority": 150,
            "effective_priority": 140,
            "interface": "eth0",
            "virtual_router_id": 51,
            "family": 4,
            "vips": ["192.168.77.100/24"],
            "last_transition": 1767261600.5,
            "counters": {**COUNTERS, "adverts_sent": 7, "became_master": 1},
        }
    ],
    "ipvs": [
        {
            "service": "[10.0.0.100]:80",
            "protocol": "TCP",
            "realservers": [
                {
                    "address": "10.0.0.2",
                    "port": 80,
                    "weight": 100,
                    "active": 3,
                    "inactive": 4,
                    "health": "up",
                    "since": "2026-01-01T10:00:00Z",
                    "last_error": "",
                    "check_failures": 2,
                },
                {
                    "address": "10.0.0.3",
                    "port": 80,
                    "weight": None,
                    "active": None,
                    "inactive": None,
                    "health": "down",
                    "since": "2026-01-01T10:00:00Z",
                    "last_error": "connection refused",
                    "check_failures": 4,
                },
                {
                    "address": "10.0.0.9",
                    "port": 80,
                    "weight": 1,
                    "active": 0,
                    "inactive": 0,
                    "health": "sorry",
                    "since": None,
                    "last_error": "",
                },
            ],
        }
    ],
    "vrrp_drops": {"ttl": 3, "auth_password": 1},
    "vrrp_scripts": {"chk_nginx": {"ok": True}, "chk_disk": {"ok": False}},
    "agent": {
        "version": "0.1.0",
        "started": 1767261000.0,
        "reloads": {"ok": 2, "refused": 1},
        "last_reload": 1767261500.0,
        "process": metrics.process_status(),
    },
}


def scraped(snapshot=None) -> dict:
    """The rendered text as prometheus_client parses it: {sample name: [(labels, value)]}."""
    samples = {}
    text = metrics.render(SNAPSHOT if snapshot is None else snapshot).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, name, **labels):
    (found,) = [v for got, v in samples[name] if labels.items() <= got.items()]
    return found


def test_every_family_is_named_and_typed_by_the_conventions():
    for family in metrics.families(SNAPSHOT):
        assert family.name.startswith(("lvs_agent_", "process_"))
        assert family.kind in ("gauge", "counter")
        assert not family.name.endswith("_total")  # added to a counter's samples
        if "timestamp" in family.name:
            assert family.name.endswith("_timestamp_seconds")
    text = metrics.render(SNAPSHOT).decode()
    assert "# TYPE lvs_agent_vrrp_adverts_sent_total counter" in text
    assert "# TYPE lvs_agent_vrrp_state gauge" in text
    assert "# TYPE process_cpu_seconds_total counter" in text  # the process' own


def test_vrrp_instance_state_is_one_labelled_gauge_and_counters_follow_the_status():
    samples = scraped()
    states = {
        labels["state"]: v
        for labels, v in samples["lvs_agent_vrrp_state"]
        if labels["vrrp_instance"] == "VI_1"
    }
    assert states == {"INIT": 0, "BACKUP": 0, "MASTER": 1, "FAULT": 0}
    labels = {"vrrp_instance": "VI_1", "interface": "eth0", "vrid": "51"}
    assert value(samples, "lvs_agent_vrrp_priority", **labels) == 150
    assert value(samples, "lvs_agent_vrrp_effective_priority", **labels) == 140
    assert value(samples, "lvs_agent_vrrp_adverts_sent_total", **labels) == 7
    assert value(samples, "lvs_agent_vrrp_became_master_total", **labels) == 1
    assert value(samples, "lvs_agent_vrrp_released_master_total", **labels) == 0
    assert value(samples, "lvs_agent_vrrp_last_transition_timestamp_seconds") == 1767261600.5
    assert value(samples, "lvs_agent_vrrp_packets_dropped_total", reason="ttl") == 3
    assert value(samples, "lvs_agent_vrrp_script_up", vrrp_script="chk_nginx") == 1
    assert value(samples, "lvs_agent_vrrp_script_up", vrrp_script="chk_disk") == 0


def test_real_servers_agent_and_build_info():
    samples = scraped()
    up = {labels["real_server"]: v for labels, v in samples["lvs_agent_real_server_up"]}
    assert up == {"[10.0.0.2]:80": 1, "[10.0.0.3]:80": 0}  # the sorry server is not one
    rs = {"virtual_server": "[10.0.0.100]:80", "protocol": "TCP", "real_server": "[10.0.0.2]:80"}
    assert value(samples, "lvs_agent_real_server_weight", **rs) == 100
    assert value(samples, "lvs_agent_real_server_connections_active", **rs) == 3
    assert value(samples, "lvs_agent_real_server_connections_inactive", **rs) == 4
    assert value(samples, "lvs_agent_real_server_check_failures_total", **rs) == 2
    changed = value(samples, "lvs_agent_real_server_last_change_timestamp_seconds", **rs)
    assert changed == 1767261600.0  # 2026-01-01T10:00:00Z
    weights = {labels["real_server"] for labels, _v in samples["lvs_agent_real_server_weight"]}
    assert "[10.0.0.3]:80" not in weights  # not in the kernel: no weight, no connections
    assert value(samples, "lvs_agent_config_reloads_total", result="refused") == 1
    assert value(samples, "lvs_agent_config_last_reload_success_timestamp_seconds") == 1767261500
    assert value(samples, "lvs_agent_build_info", version="0.1.0") == 1


def test_process_metrics_are_the_agents_own():
    samples = scraped()
    assert value(samples, "process_open_fds") >= 3
    assert value(samples, "process_resident_memory_bytes") > 1_000_000
    assert 0 < value(samples, "process_start_time_seconds") <= time.time()
    assert value(samples, "process_cpu_seconds_total") > 0


def test_label_values_are_escaped_and_large_families_come_in_slices():
    odd = 'VI "1"\\ line\nbreak'
    instance = {**SNAPSHOT["vrrp"][0], "name": odd}
    many = [{**instance, "name": f"VI_{n}"} for n in range(metrics.SLICE)]
    snapshot = {**SNAPSHOT, "vrrp": [instance, *many]}
    samples = scraped(snapshot)
    names = {labels["vrrp_instance"] for labels, _v in samples["lvs_agent_vrrp_priority"]}
    assert odd in names and len(names) == metrics.SLICE + 1
    pieces = list(metrics.exposition(metrics.families(snapshot)))
    assert max(piece.count("\n") for piece in pieces) <= metrics.SLICE
    assert len(pieces) > len(metrics.families(snapshot))  # the state family alone is 4 slices


def test_an_agent_without_instances_or_reloads_renders():
    text = metrics.render({"vrrp": [], "ipvs": [], "vrrp_drops": {}, "agent": {}}).decode()
    assert "lvs_agent_build_info{" in text
    assert "lvs_agent_vrrp_state{" not in text


# -- metrics_listen -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("127.0.0.1:9650", MetricsListen("127.0.0.1", 9650)),
        ("[::1]:9650", MetricsListen("::1", 9650)),
    ],
)
def test_metrics_listen_is_read(written, expected):
    config = loads(f"global_defs {{\n  metrics_listen {written}\n}}\n")
    assert config.global_defs.metrics_listen == expected
    assert str(config.global_defs.metrics_listen) == written


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("9650", "expected ADDRESS:PORT or [IPV6]:PORT"),
        ("::1:9650", "expected ADDRESS:PORT or [IPV6]:PORT"),
        ("localhost:9650", "invalid IP address"),
        ("127.0.0.1:0", "0 is out of range 1-65535"),
        ("127.0.0.1:http", "'http' is not an integer"),
    ],
)
def test_a_bad_metrics_listen_is_an_error_at_its_line(written, message):
    with pytest.raises(ConfigError) as raised:
        loads(f"global_defs {{\n  metrics_listen {written}\n}}\n", filename="k.conf")
    assert f"k.conf:2: metrics_listen: {message}" in str(raised.value.problems[0])


def test_check_config_accepts_metrics_listen(tmp_path, capsys):
    conf = tmp_path / "lvs-agent.conf"
    conf.write_text("global_defs {\n  metrics_listen [fd00::1]:9650\n}\n")
    assert cli.main(["check-config", str(conf)]) == 0
    assert "configuration OK" in capsys.readouterr().out


# -- the server -----------------------------------------------------------------------------


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    writer.write_eof()  # the request is all there is (cut short, when it has no end)
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return reply


async def serving() -> tuple:
    async def snapshot():
        return SNAPSHOT

    server = MetricsServer(snapshot)
    await server.listen(MetricsListen("127.0.0.1", 0))
    return server, server._server.sockets[0].getsockname()[1]


def test_get_metrics_and_what_else_a_client_may_ask():
    async def scenario():
        server, port = await serving()
        reply = await exchange(port, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        head, body = reply.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
        assert f"Content-Length: {len(body)}".encode() in head
        assert b"lvs_agent_vrrp_state{" in body
        head_only = await exchange(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert head_only.startswith(b"HTTP/1.1 200 OK") and head_only.endswith(b"\r\n\r\n")
        assert (await exchange(port, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await exchange(port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert (await exchange(port, b"\x16\x03\x01garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
        oversized = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
        assert (await exchange(port, oversized)).startswith(b"HTTP/1.1 431")
        assert await exchange(port, b"GET /metrics HTTP/1.1\r\n") == b""  # cut short
        await server.close()

    asyncio.run(scenario())


def test_a_slow_client_is_cut_off_and_the_connections_are_capped(monkeypatch):
    monkeypatch.setattr(metrics_server, "REQUEST_TIMEOUT", 1.0)

    async def scenario():
        server, port = await serving()
        idle = [
            await asyncio.open_connection("127.0.0.1", port)
            for _n in range(metrics_server.MAX_CONNECTIONS)
        ]
        for _wait in range(100):  # until the server has taken them all
            if server._connections == metrics_server.MAX_CONNECTIONS:
                break
            await asyncio.sleep(0.01)
        reader, _writer = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(ConnectionResetError):  # over the cap: closed at once
            assert await asyncio.wait_for(reader.read(), 0.9) == b""
        for reader, _writer in idle:  # slowloris: a timeout, then the connection closes
            assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 408")
        reply = await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200")  # room again
        await server.close()

    asyncio.run(scenario())


def test_listen_moves_and_a_failed_bind_keeps_the_running_listener():
    async def scenario():
        server, port = await serving()
        blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        taken = blocker.sockets[0].getsockname()[1]
        with pytest.raises(OSError):
            await server.listen(MetricsListen("127.0.0.1", taken))
        assert (await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
        blocker.close()
        await server.listen(None)
        with pytest.raises(OSError):
            await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        await server.close()

    asyncio.run(scenario())
