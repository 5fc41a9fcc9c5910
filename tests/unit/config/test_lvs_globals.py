"""lvs_sync_daemon (and vrrp_instance's old lvs_sync_daemon_interface), lvs_timeouts,
lvs_flush, lvs_flush_on_stop and persistence_engine, read as keepalived 2.2.7 reads them."""

from __future__ import annotations

import pytest
from config_helpers import errors_of, parse, warnings_of

from lvsagent.config.model import LvsTimeouts, SyncDaemon

INSTANCE = (
    "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n{body}\n"
    " virtual_ipaddress {{\n  10.0.0.100\n }}\n}}\n"
)


def with_globals(*lines: str, instance_body: str = "") -> str:
    return "global_defs {\n" + "\n".join(lines) + "\n}\n" + INSTANCE.format(body=instance_body)


def daemon_of(text: str):
    return parse(text).global_defs.lvs_sync_daemon


def test_sync_daemon_with_every_option():
    daemon = daemon_of(
        with_globals(" lvs_sync_daemon eth1 VI_1 id 7 maxlen 1472 port 8849 ttl 2 group 239.1.2.3")
    )
    assert daemon == SyncDaemon(
        "eth1", "VI_1", 7, 1472, 8849, 2, "239.1.2.3", location=daemon.location
    )
    assert str(daemon.location) == "test.conf:2"


def test_sync_id_defaults_to_the_instance_vrid():
    assert daemon_of(with_globals(" lvs_sync_daemon eth1 inst VI_1")).sync_id == 51


def test_without_an_instance_the_sync_id_is_0():
    daemon = daemon_of(with_globals(" lvs_sync_daemon eth1"))
    assert (daemon.instance, daemon.sync_id) == (None, 0)


def test_keepalived_1_positional_sync_id_still_reads_with_a_warning():
    config = parse(with_globals(" lvs_sync_daemon eth1 VI_1 9"))
    assert config.global_defs.lvs_sync_daemon.sync_id == 9
    assert '2: Please use keyword "id" before lvs_sync_daemon SYNCID' in warnings_of(config)


@pytest.mark.parametrize(
    ("options", "warning", "attribute", "value"),
    [
        ("id 256", "Invalid syncid (256) - defaulting to vrid", "sync_id", 51),
        ("id", "No value specified for lvs_sync_daemon id, defaulting to vrid", "sync_id", 51),
        ("maxlen 0", "Invalid lvs_sync_daemon maxlen (0) - ignoring", "max_len", None),
        ("maxlen 65508", "Invalid lvs_sync_daemon maxlen (65508) - ignoring", "max_len", None),
        ("port 65536", "Invalid lvs_sync_daemon port (65536) - ignoring", "port", None),
        ("ttl 0", "Invalid lvs_sync_daemon ttl (0) - ignoring", "ttl", None),
        ("group 10.0.0.1", "lvs_sync_daemon group address 10.0.0.1 is not multicast - ignoring",
         "group", None),
        ("group nope", "Invalid lvs_sync_daemon group (nope) - ignoring", "group", None),
        ("port 8849 colour blue", "Unknown option colour specified for lvs_sync_daemon",
         "port", 8849),
        ("inst VI_2", "lvs_sync_daemon vrrp instance has already been specified as VI_1 - ignoring",
         "instance", "VI_1"),
    ],
)  # fmt: skip
def test_bad_options_warn_as_keepalived_and_are_skipped(options, warning, attribute, value):
    config = parse(with_globals(f" lvs_sync_daemon eth1 VI_1 {options}"))
    assert f"2: {warning}" in warnings_of(config)
    assert getattr(config.global_defs.lvs_sync_daemon, attribute) == value


def test_an_unknown_instance_clears_the_daemon_with_keepalived_warning():
    config = parse(with_globals(" lvs_sync_daemon eth1 VI_9"))
    assert config.global_defs.lvs_sync_daemon is None
    assert (
        "2: Unable to find vrrp instance VI_9 for lvs_syncd - clearing lvs_syncd config"
        in warnings_of(config)
    )


def test_a_second_daemon_is_ignored():
    config = parse(with_globals(" lvs_sync_daemon eth1 VI_1", " lvs_sync_daemon eth2 VI_1"))
    assert config.global_defs.lvs_sync_daemon.interface == "eth1"
    assert "3: lvs_sync_daemon has already been specified as eth1 VI_1 - ignoring" in (
        warnings_of(config)
    )


def test_an_interface_name_too_long_for_the_kernel_is_ignored():
    config = parse(with_globals(" lvs_sync_daemon abcdefghijklmnop VI_1"))
    assert config.global_defs.lvs_sync_daemon is None
    assert "2: lvs_sync_daemon interface name 'abcdefghijklmnop' too long - ignoring" in (
        warnings_of(config)
    )


def test_inst_without_a_name_is_refused():
    assert "2: lvs_sync_daemon inst: missing instance name" in errors_of(
        with_globals(" lvs_sync_daemon eth1 inst")
    )


def test_old_spelling_in_an_instance_follows_it_with_sync_id_0():
    config = parse(with_globals(instance_body=" lvs_sync_daemon_interface eth1"))
    daemon = config.global_defs.lvs_sync_daemon
    assert (daemon.interface, daemon.instance, daemon.sync_id) == ("eth1", "VI_1", 0)
    assert (
        "7: (VI_1) Specifying lvs_sync_daemon_interface against a vrrp is deprecated. "
        "Please use global lvs_sync_daemon" in warnings_of(config)
    )


def test_old_spelling_after_the_global_keyword_is_ignored():
    config = parse(
        with_globals(" lvs_sync_daemon eth2 VI_1", instance_body=" lvs_sync_daemon_interface eth1")
    )
    assert config.global_defs.lvs_sync_daemon.interface == "eth2"
    assert (
        "7: (VI_1) lvs_sync_daemon_interface has already been specified as eth2 - ignoring"
        in warnings_of(config)
    )


def test_old_spelling_elsewhere_is_unknown_as_in_keepalived():
    config = parse(with_globals(" lvs_sync_daemon_interface eth1"))
    assert config.global_defs.lvs_sync_daemon is None
    unknown = "2: Unknown keyword 'lvs_sync_daemon_interface' - obsolete, ignored as by keepalived"
    assert unknown in warnings_of(config)


@pytest.mark.parametrize(
    ("line", "timeouts", "warning"),
    [
        ("lvs_timeouts tcp 900 tcpfin 30 udp 60", LvsTimeouts(900, 30, 60), None),
        ("lvs_timeouts udp 5", LvsTimeouts(udp=5), None),
        ("lvs_timeouts tcp", LvsTimeouts(), "lvs_timeouts requires at least one option"),
        ("lvs_timeouts tcp 2678401 udp 5", LvsTimeouts(udp=5),
         "Invalid lvs_timeout tcp (2678401) - ignoring"),
        ("lvs_timeouts udp 5 tcp", LvsTimeouts(udp=5),
         "No value specified for lvs_timeout tcp - ignoring"),
        ("lvs_timeouts sctp 5 udp 7", LvsTimeouts(udp=7),
         "Unknown option sctp specified for lvs_timeouts"),
        ("lvs_timeouts tcp \u00b2 udp 7", LvsTimeouts(udp=7),
         "Invalid lvs_timeout tcp (\u00b2) - ignoring"),
    ],
)  # fmt: skip
def test_lvs_timeouts(line, timeouts, warning):
    config = parse(with_globals(f" {line}"))
    assert config.global_defs.lvs_timeouts == timeouts
    if warning is not None:
        assert f"2: {warning}" in warnings_of(config)


@pytest.mark.parametrize(
    ("line", "flush_on_stop"),
    [("lvs_flush_on_stop", "full"), ("lvs_flush_on_stop VS", "VS"), ("lvs_flush_onstop", "full")],
)
def test_lvs_flush_on_stop(line, flush_on_stop):
    assert parse(with_globals(f" {line}")).global_defs.lvs_flush_on_stop == flush_on_stop


def test_an_unknown_flush_on_stop_type_leaves_the_default():
    config = parse(with_globals(" lvs_flush_on_stop vs"))
    assert config.global_defs.lvs_flush_on_stop == ""
    assert "2: Unknown lvs_flush_on_stop type vs" in warnings_of(config)


def test_lvs_flush():
    assert parse(with_globals(" lvs_flush")).global_defs.lvs_flush
    assert not parse(with_globals()).global_defs.lvs_flush


SERVER = (
    "virtual_server 10.0.0.1 5060 {{\n lvs_sched rr\n lvs_method DR\n protocol UDP\n"
    " persistence_timeout 60\n persistence_engine {engine}\n"
    " real_server 10.0.0.9 5060 {{\n }}\n}}\n"
)


def test_persistence_engine():
    config = parse(SERVER.format(engine="sip"))
    assert config.virtual_servers[0].persistence_engine == "sip"


def test_a_persistence_engine_name_too_long_is_cut_as_keepalived_does():
    config = parse(SERVER.format(engine="abcdefghijklmnopq"))
    assert config.virtual_servers[0].persistence_engine == "abcdefghijklmno"
    assert "6: persistence_name too long, truncating - abcdefghijklmnopq" in warnings_of(config)
