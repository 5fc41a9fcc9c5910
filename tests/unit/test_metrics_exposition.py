"""Metrics from the status snapshot: names, types, values; metrics_listen in the
configuration; the /metrics server and what it does with hostile requests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lvsagent import cli, metrics, metrics_server
from lvsagent.config import ConfigError, loads
from lvsagent.config.model import MetricsListen
from lvsagent.durations import BUCKETS, Durations
from lvsagent.ipvs import KERNEL_COUNTERS, Stats
from lvsagent.metrics_server import MetricsServer

COUNTERS = dict.fromkeys(metrics.VRRP_COUNTERS, 0)


def durations(*seconds) -> dict:
    observed = Durations()
    for each in seconds:
        observed.observe(each)
    return observed.status()


KERNEL = {"connections": 41, "packets_in": 420, "packets_out": 380, "bytes_in": 9000}
KERNEL = {**KERNEL, "bytes_out": 2**40}  # beyond 32 bits: the kernel's 64-bit counters
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
            "virtual_server": "[10.0.0.100]:80",
            "quorum": {"up": False, "quorum": 150, "alive_weight": 100},
            "counters": {**KERNEL, "connections": 99},
            "realservers": [
                {
                    "address": "10.0.0.2",
                    "port": 80,
                    "weight": 100,
                    "active": 3,
                    "inactive": 4,
                    "counters": KERNEL,
                    "health": "up",
                    "since": "2026-01-01T10:00:00Z",
                    "last_error": "",
                    "check_failures": 2,
                    "check_failure_reasons": {"refused": 1, "timeout": 1},
                    "check_durations": durations(0.0004, 0.003, 0.2, 45.0),
                },
                {
                    "address": "10.0.0.3",
                    "port": 80,
                    "weight": None,
                    "active": None,
                    "inactive": None,
                    "counters": None,
                    "health": "down",
                    "since": "2026-01-01T10:00:00Z",
                    "last_error": "connection refused",
                    "check_failures": 4,
                    "check_failure_reasons": {"refused": 4},
                    "check_durations": durations(0.001, 0.001, 0.001, 0.001),
                },
                {
                    "address": "10.0.0.9",
                    "port": 80,
                    "weight": 1,
                    "active": 0,
                    "inactive": 0,
                    "counters": dict.fromkeys(KERNEL, 0),
                    "health": "sorry",
                    "since": None,
                    "last_error": "",
                },
            ],
        }
    ],
    "vrrp_drops": {"ttl": 3, "auth_password": 1},
    "vrrp_scripts": {
        "chk_nginx": {
            "ok": True,
            "last_change": 1767261000.25,
            "timeouts": 0,
            "durations": durations(0.02, 0.03),
        },
        "chk_disk": {
            "ok": False,
            "last_change": 1767261700.0,
            "timeouts": 3,
            "durations": durations(2.0, 2.0, 2.0),
        },
    },
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
    for name, (kind, text) in metrics.METRICS.items():
        assert name.startswith(("lvs_agent_", "process_")) and text
        assert kind in ("gauge", "counter", "histogram")
        assert not name.endswith("_total")  # added to a counter's samples
        if "timestamp" in name:
            assert name.endswith("_timestamp_seconds")
        if kind == "histogram":
            assert name.endswith("_seconds")
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
    assert value(samples, "lvs_agent_real_server_check_failures_total", **rs, reason="refused") == 1
    assert value(samples, "lvs_agent_real_server_check_failures_total", **rs, reason="timeout") == 1
    changed = value(samples, "lvs_agent_real_server_last_change_timestamp_seconds", **rs)
    assert changed == 1767261600.0  # 2026-01-01T10:00:00Z
    weights = {labels["real_server"] for labels, _v in samples["lvs_agent_real_server_weight"]}
    assert "[10.0.0.3]:80" not in weights  # not in the kernel: no weight, no connections
    assert value(samples, "lvs_agent_config_reloads_total", result="refused") == 1
    assert value(samples, "lvs_agent_config_last_reload_success_timestamp_seconds") == 1767261500
    assert value(samples, "lvs_agent_build_info", version="0.1.0") == 1


def test_the_registry_is_what_a_scrape_holds():
    """Every family in METRICS is rendered from a full snapshot (no name registered and never
    served), and every sample of the scrape is one `sample_names()` announces."""
    assert {family.name for family in metrics.families(SNAPSHOT)} == set(metrics.METRICS)
    assert set(scraped()) <= metrics.sample_names()
    assert "lvs_agent_real_server_check_duration_seconds_bucket" in metrics.sample_names()
    assert "lvs_agent_real_server_connections_total" in metrics.sample_names()


def test_kernel_counters_per_real_server_and_virtual_server():
    samples = scraped()
    service = {"virtual_server": "[10.0.0.100]:80", "protocol": "TCP"}
    rs = {**service, "real_server": "[10.0.0.2]:80"}
    names = {
        "connections": "connections_total",
        "packets_in": "incoming_packets_total",
        "packets_out": "outgoing_packets_total",
        "bytes_in": "incoming_bytes_total",
        "bytes_out": "outgoing_bytes_total",
    }
    for key, name in names.items():
        assert value(samples, f"lvs_agent_real_server_{name}", **rs) == KERNEL[key]
    assert value(samples, "lvs_agent_real_server_outgoing_bytes_total", **rs) == 2**40
    sorry = {**service, "real_server": "[10.0.0.9]:80"}
    assert value(samples, "lvs_agent_real_server_connections_total", **sorry) == 0
    counted = {
        labels["real_server"] for labels, _v in samples["lvs_agent_real_server_connections_total"]
    }
    assert "[10.0.0.3]:80" not in counted  # not in the kernel: no counters
    assert value(samples, "lvs_agent_virtual_server_connections_total", **service) == 99
    assert value(samples, "lvs_agent_virtual_server_incoming_bytes_total", **service) == 9000
    text = metrics.render(SNAPSHOT).decode()
    assert "# TYPE lvs_agent_real_server_incoming_bytes_total counter" in text


def test_the_kernel_counters_named_are_those_the_status_carries():
    assert list(metrics.KERNEL_COUNTER_NAMES) == list(KERNEL_COUNTERS)
    assert set(KERNEL_COUNTERS) <= {field.name for field in dataclasses.fields(Stats)}


def test_quorum_per_virtual_server():
    samples = scraped()
    service = {"virtual_server": "[10.0.0.100]:80", "protocol": "TCP"}
    assert value(samples, "lvs_agent_virtual_server_quorum_up", **service) == 0
    assert value(samples, "lvs_agent_virtual_server_quorum_weight", **service) == 150
    assert value(samples, "lvs_agent_virtual_server_alive_weight", **service) == 100


def histogram(samples, name, **labels) -> tuple:
    """({le: cumulative count}, sum, count) of one histogram sample of a scrape."""
    buckets = {
        got["le"]: v for got, v in samples[name + "_bucket"] if labels.items() <= got.items()
    }
    return (
        buckets,
        value(samples, name + "_sum", **labels),
        value(samples, name + "_count", **labels),
    )


def test_check_durations_are_a_histogram_per_real_server_with_the_one_set_of_buckets():
    samples = scraped()
    rs = {"virtual_server": "[10.0.0.100]:80", "protocol": "TCP", "real_server": "[10.0.0.2]:80"}
    buckets, total, count = histogram(samples, "lvs_agent_real_server_check_duration_seconds", **rs)
    assert list(buckets) == [*(repr(float(b)) for b in BUCKETS), "+Inf"]
    assert buckets["0.001"] == 1 and buckets["0.005"] == 2  # 0.4 ms, then 3 ms
    assert buckets["0.25"] == 3 and buckets["30.0"] == 3  # 45 s: beyond every bound
    assert buckets["+Inf"] == count == 4
    assert total == pytest.approx(45.2034)
    down = {**rs, "real_server": "[10.0.0.3]:80"}
    buckets, _total, count = histogram(
        samples, "lvs_agent_real_server_check_duration_seconds", **down
    )
    assert buckets["0.001"] == count == 4  # on a bound: counted in it (`le`)
    sorry = {**rs, "real_server": "[10.0.0.9]:80"}
    assert not [
        got
        for got, _v in samples["lvs_agent_real_server_check_duration_seconds_count"]
        if got == sorry
    ]


def test_vrrp_scripts_status_duration_timeouts_and_last_change():
    samples = scraped()
    assert value(samples, "lvs_agent_vrrp_script_timeouts_total", vrrp_script="chk_disk") == 3
    assert value(samples, "lvs_agent_vrrp_script_timeouts_total", vrrp_script="chk_nginx") == 0
    changed = value(
        samples, "lvs_agent_vrrp_script_last_change_timestamp_seconds", vrrp_script="chk_nginx"
    )
    assert changed == 1767261000.25
    buckets, total, count = histogram(
        samples, "lvs_agent_vrrp_script_duration_seconds", vrrp_script="chk_disk"
    )
    assert (buckets["1.0"], buckets["2.5"], total, count) == (0, 3, 6.0, 3)


def test_durations_count_each_observation_once_in_its_bucket():
    observed = Durations()
    for seconds in (0.0, 0.001, 0.0011, 31.0):
        observed.observe(seconds)
    other = Durations()
    other.observe(0.5)
    observed.merge(other)
    status = observed.status()
    assert [bound for bound, _count in status["buckets"]] == list(BUCKETS)
    cumulative = dict(map(tuple, status["buckets"]))
    assert (cumulative[0.001], cumulative[0.005], cumulative[0.5], cumulative[30.0]) == (2, 3, 4, 4)
    assert status["count"] == 5 and status["sum"] == pytest.approx(31.5021)
    assert Durations().status()["count"] == 0
    assert observed.status() is status  # kept for the next status (one per real server)
    observed.observe(0.002)
    assert observed.status()["count"] == 6  # an observation is seen at once
    observed.merge(other)
    assert observed.status()["count"] == 7


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


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        ("gzip", True),
        ("deflate, GZIP;q=0.5", True),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=0.001", True),
        ("gzip;q=nonsense", False),
        (None, False),
    ],
)
def test_the_reply_is_gzipped_when_the_client_accepts_it(accept, gzipped):
    async def scenario():
        server, port = await serving()
        header = f"Accept-Encoding: {accept}\r\n" if accept else ""
        reply = await exchange(port, f"GET /metrics HTTP/1.1\r\n{header}\r\n".encode())
        await server.close()
        return reply.split(b"\r\n\r\n", 1)

    head, body = asyncio.run(scenario())
    assert (b"Content-Encoding: gzip\r\n" in head) is gzipped
    assert f"Content-Length: {len(body)}\r\n".encode() in head
    plain = metrics.render(SNAPSHOT)
    assert (gzip.decompress(body) if gzipped else body) == plain


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
