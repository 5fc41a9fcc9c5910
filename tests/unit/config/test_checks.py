"""Checks across objects and keepalived's completion rules for instances."""

from __future__ import annotations

import pytest
from config_helpers import MINIMAL_INSTANCE, errors_of, parse, warnings_of

from lvsagent.config import ConfigError, checks, loads


def instance(*lines: str, vips: str = "10.0.0.100", name: str = "VI_1", vrid: int = 51) -> str:
    body = "\n".join(f"    {line}" for line in lines)
    return (
        f"vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id {vrid}\n{body}\n"
        f"    virtual_ipaddress {{\n        {vips}\n    }}\n}}\n"
    )


def test_nopreempt_with_state_master_is_cleared_with_keepalived_warning():
    config = parse(instance("state MASTER", "priority 150", "nopreempt"))
    assert config.vrrp_instances[0].nopreempt is False
    assert warnings_of(config) == [
        "6: (VI_1) Warning - nopreempt will not work with initial state MASTER - clearing"
    ]


def test_nopreempt_is_reset_for_the_address_owner():
    config = parse(instance("priority 255", "nopreempt"))
    assert config.vrrp_instances[0].nopreempt is False
    assert warnings_of(config) == [
        "5: (VI_1) nopreempt is incompatible with priority 255 - resetting"
    ]


def test_preempt_delay_with_nopreempt_is_reset():
    config = parse(instance("nopreempt", "preempt_delay 10"))
    assert (config.vrrp_instances[0].nopreempt, config.vrrp_instances[0].preempt_delay) == (
        True,
        0.0,
    )
    assert warnings_of(config) == [
        "5: (VI_1) preempt_delay is incompatible with nopreempt mode - resetting"
    ]


def test_priority_derived_from_state_and_state_from_priority():
    master = parse(instance("state MASTER")).vrrp_instances[0]
    assert master.priority == 255
    owner = parse(instance("priority 255")).vrrp_instances[0]
    assert owner.state == "MASTER"


def test_long_pass_password_is_a_warning():
    config = parse(instance("authentication {", "auth_type PASS", "auth_pass 123456789", "}"))
    assert config.vrrp_instances[0].auth_pass == "123456789"
    assert warnings_of(config) == [
        "6: (VI_1) auth_pass is longer than 8 characters: only the first 8 are sent"
    ]


def test_authentication_is_dropped_for_vrrp_v3():
    config = parse(instance("version 3", "authentication {", "auth_type PASS", "auth_pass x", "}"))
    assert (config.vrrp_instances[0].auth_type, config.vrrp_instances[0].auth_pass) == (None, None)
    message = "6: (VI_1) VRRP version 3 does not support authentication. Ignoring."
    assert message in warnings_of(config)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["advert_int 1.4"],
         "4: (VI_1) VRRPv2 advertisement interval 1.4s must be an integer - rounding to 1s"),
        (["version 3", "advert_int 0.125"],
         "5: (VI_1) VRRPv3 advertisement interval 0.125s must be in units of 10ms"
         " - rounding to 0.13s"),
    ],
)  # fmt: skip
def test_advert_int_rounding_per_version(lines, message):
    assert message in warnings_of(parse(instance(*lines)))


@pytest.mark.parametrize(
    ("lines", "message", "advert_int"),
    [
        (
            ["advert_int 255.5"],
            "4: (VI_1) Advert interval (255.5) not valid! Must be > 0 - ignoring",
            1.0,
        ),
        (
            ["version 3", "advert_int 41"],
            "5: (VI_1) VRRPv3 advertisement interval 41.00s is out of range. "
            "Must be less than 40.96s. Setting to 40.95s",
            40.95,
        ),
    ],
)
def test_advert_int_out_of_range_is_corrected_as_keepalived_does(lines, message, advert_int):
    config = parse(instance(*lines))
    assert message in warnings_of(config)
    assert config.vrrp_instances[0].advert_int == advert_int


def test_duplicate_vrid_on_one_interface():
    text = instance() + instance(name="VI_2", vips="10.0.0.101")
    assert errors_of(text) == [
        "11: (VI_2) virtual_router_id 51 is already used on eth0 by VI_1 (test.conf:1)"
    ]


def test_same_vrid_allowed_on_other_interface_family_or_disjoint_unicast_peers():
    other_family = instance() + instance(name="VI_2", vips="2001:db8::1")
    parse(other_family)
    peers_a = instance("unicast_peer {", "10.0.0.2", "}")
    peers_b = instance("unicast_peer {", "10.0.0.3", "}", name="VI_2", vips="10.0.0.101")
    parse(peers_a + peers_b)
    same_peer = instance("unicast_peer {", "10.0.0.2", "}", name="VI_2", vips="10.0.0.101")
    assert "already used on eth0" in errors_of(peers_a + same_peer)[0]


def test_required_fields_and_families():
    assert errors_of("vrrp_instance V {\n}\n") == [
        "1: (V) virtual_router_id is required",
        "1: (V) interface is required (unless unicast peers are given)",
    ]
    mixed = (
        "7: (VI_1) 2001:db8::1/128: all virtual_ipaddress entries must be IPv4 (use "
        "virtual_ipaddress_excluded to mix families)"
    )
    assert mixed in errors_of(instance(vips="10.0.0.1\n2001:db8::1"))
    assert "4: (VI_1) cannot use IPv6 with VRRP version 2" in errors_of(
        instance("version 2", vips="fe80::1")
    )
    assert "1: (VI_1) No VIP specified; at least one is required" in errors_of(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 5\n version 3\n}\n"
    )


def test_a_track_script_naming_no_vrrp_script_is_dropped_as_by_keepalived():
    config = parse(instance("track_script {", "chk_missing", "}"))
    assert "5: (VI_1) track script chk_missing not found, ignoring..." in warnings_of(config)
    assert config.vrrp_instances[0].track_scripts == []


def test_sync_group_members_missing_or_taken_are_ignored_as_by_keepalived():
    text = MINIMAL_INSTANCE + "vrrp_sync_group A {\n group {\n  VI_1\n  VI_X\n }\n}\n"
    text += "vrrp_sync_group B {\n group {\n  VI_1\n }\n}\n"
    config = parse(text)
    assert warnings_of(config)[-4:] == [
        "9: Virtual router VI_X specified in sync group A doesn't exist - ignoring",
        "9: Sync group A has only 1 virtual router(s) - this probably isn't what you want",
        "15: Virtual router VI_1 cannot exist in more than one sync group; ignoring B",
        "15: Sync group B has no virtual router(s). removing",
    ]
    assert [(group.name, group.group) for group in config.sync_groups] == [("A", ["VI_1"])]


def test_old_style_sync_group_members_are_ignored_and_the_group_removed_as_by_keepalived():
    config = parse(MINIMAL_INSTANCE + "vrrp_sync_group A {\n VI_1\n smtp_alert\n}\n")
    assert config.sync_groups == []
    assert warnings_of(config)[-3:] == [
        "9: Sync group A has no virtual router(s). removing",
        "10: Unknown keyword 'VI_1' - instance names belong in 'group { }'; ignored, "
        "as keepalived does",
        "11: smtp_alert: not supported by lvs-agent, ignored",
    ]


VS = "virtual_server {header} {{\n lvs_sched rr\n{body}\n real_server 10.0.0.9 80 {{\n }}\n}}\n"


def virtual_server(header: str = "10.0.0.1 80", *body: str) -> str:
    return VS.format(header=header, body="\n".join(body))


def test_duplicate_virtual_servers_and_real_servers():
    text = virtual_server() + virtual_server()
    assert errors_of(text) == ["7: virtual server [10.0.0.1]:80 UDP already defined at test.conf:1"]
    parse(virtual_server() + virtual_server("10.0.0.1 80", "protocol TCP"))
    rs = "real_server 10.0.0.2 80 {\n}"
    config = parse(virtual_server("10.0.0.1 80", "protocol TCP", rs, rs))
    assert (
        "6: VS [10.0.0.1]:80: real server 10.0.0.2 port 80 is duplicated (first at test.conf:4)"
        " - removing second rs" in warnings_of(config)
    )
    assert [r.address for r in config.virtual_servers[0].real_servers] == ["10.0.0.2", "10.0.0.9"]


def test_port_omitted_makes_the_service_persistent_as_in_keepalived():
    config = parse(virtual_server("10.0.0.1", "protocol TCP", "lvs_method DR"))
    assert warnings_of(config) == [
        "1: virtual server [10.0.0.1]: zero port only valid for persistent services - setting"
    ]
    assert config.virtual_servers[0].persistence_timeout == 360
    config = parse(
        virtual_server("10.0.0.1", "protocol TCP", "lvs_method DR", "persistence_timeout 30")
    )
    assert (warnings_of(config), config.virtual_servers[0].persistence_timeout) == ([], 30)


def test_real_server_family_must_match_unless_tunnelled():
    v6 = "real_server 2001:db8::1 80 {\n}"
    config = parse(virtual_server("10.0.0.1 80", v6))
    assert (
        "3: Address family of virtual server and real server 2001:db8::1 don't match - "
        "skipping real server." in warnings_of(config)
    )
    assert [r.address for r in config.virtual_servers[0].real_servers] == ["10.0.0.9"]
    config = parse(virtual_server("10.0.0.1 80", "lvs_method TUN", v6))
    assert len(config.virtual_servers[0].real_servers) == 2


def test_group_virtual_server_needs_its_group():
    assert errors_of(virtual_server("group NOPE")) == [
        "1: virtual server [NOPE]: no virtual_server_group named NOPE"
    ]


def test_host_checks_look_for_interfaces(tmp_path, monkeypatch):
    (tmp_path / "eth0").mkdir()
    monkeypatch.setattr(checks, "SYS_CLASS_NET", str(tmp_path))
    text = instance("track_interface {", "eth9", "}", vips="10.0.0.1 dev eth7")
    with pytest.raises(ConfigError) as raised:
        loads(text, "h.conf", host_checks=True)
    assert [str(p) for p in raised.value.problems] == [
        "h.conf:5: warning: (VI_1) track_interface eth9 does not exist on this host",
        "h.conf:8: (VI_1) 10.0.0.1/32: interface eth7 does not exist on this host",
    ]
    loads(text.replace("eth7", "eth0").replace("eth9", "eth0"), "h.conf", host_checks=True)
    parse(text)  # no host checks: the controller cannot know the director's interfaces


def test_check_unicast_src_per_instance_and_global():
    peers = ("unicast_peer {", "10.0.0.2", "}")
    (checked,) = parse(instance(*peers, "check_unicast_src")).vrrp_instances
    assert checked.check_unicast_src is True
    (plain,) = parse(instance(*peers)).vrrp_instances
    assert plain.check_unicast_src is False
    config = parse("global_defs {\n    vrrp_check_unicast_src\n}\n" + instance(*peers))
    assert config.global_defs.vrrp_check_unicast_src is True


def test_check_unicast_src_without_unicast_peers_is_a_warning():
    config = parse(instance("check_unicast_src"))
    assert warnings_of(config) == ["4: (VI_1) check_unicast_src has no effect without unicast_peer"]


def test_lower_prio_no_advert_bad_value_is_ignored_with_a_warning():
    config = parse(instance("lower_prio_no_advert maybe"))
    assert config.vrrp_instances[0].lower_prio_no_advert is None
    assert warnings_of(config) == ["4: Invalid lower_prio_no_advert parameter maybe"]


def test_unicast_ttl_read_as_keepalived_reads_it():
    peers = "unicast_peer {\n        10.0.0.2\n    }"
    assert parse(instance("unicast_ttl 0", peers)).vrrp_instances[0].unicast_ttl == 0
    config = parse(instance("unicast_ttl 256", peers))
    assert config.vrrp_instances[0].unicast_ttl is None
    assert warnings_of(config) == ["4: (VI_1): TTL '256' not valid - must be between 0 & 255"]


def test_unicast_ttl_without_unicast_peers_is_refused():
    with pytest.raises(ConfigError) as raised:
        loads(instance("unicast_ttl 5"))
    assert "4: (VI_1) unicast_ttl without unicast_peer: not supported by lvs-agent" in str(
        raised.value
    )


def test_promote_secondaries_is_read_and_cleared_with_a_vmac():
    assert parse(instance("promote_secondaries")).vrrp_instances[0].promote_secondaries is True
    config = parse(instance("promote_secondaries", "use_vmac"))
    assert config.vrrp_instances[0].promote_secondaries is False
    assert warnings_of(config) == [
        "4: (VI_1) promote_secondaries is automatically set for vmacs - ignoring"
    ]


def garp_globals(config):
    defs = config.global_defs
    return (
        defs.vrrp_garp_master_repeat,
        defs.vrrp_garp_master_refresh,
        defs.vrrp_garp_master_refresh_repeat,
        defs.vrrp_garp_master_delay,
    )


def test_vrrp_min_garp_changes_only_the_garp_settings_still_at_their_default():
    assert garp_globals(parse("global_defs {\n    vrrp_min_garp\n}\n")) == (1, 0, 0, 0)
    before = "global_defs {\n    vrrp_garp_master_delay 2\n    vrrp_min_garp true\n}\n"
    assert garp_globals(parse(before)) == (1, 0, 0, 2)
    after = "global_defs {\n    vrrp_min_garp\n    vrrp_garp_master_repeat 3\n}\n"
    assert garp_globals(parse(after)) == (3, 0, 0, 0)
    assert garp_globals(parse("global_defs {\n    vrrp_min_garp off\n}\n")) == (5, 0, 1, 5)


def test_strict_mode_resets_what_it_forbids_a_master_hearing_other_priorities():
    config = parse(
        "global_defs {\n    vrrp_strict\n}\n"
        + instance(
            "garp_lower_prio_repeat 2",
            "garp_lower_prio_delay 3",
            "lower_prio_no_advert false",
            "higher_prio_send_advert true",
        )
    )
    vrrp = config.vrrp_instances[0]
    assert (vrrp.garp_lower_prio_repeat, vrrp.garp_lower_prio_delay) == (0, 0)
    assert (vrrp.lower_prio_no_advert, vrrp.higher_prio_send_advert) == (True, False)
    assert warnings_of(config) == [
        "7: (VI_1) Strict mode requires no repeat garps. resetting",
        "8: (VI_1) Strict mode requires no repeat garp delay. resetting",
        "9: (VI_1) Strict mode requires no lower priority advert - resetting",
        "10: (VI_1) strict mode requires higher_prio_send_advert to be clear - resetting",
    ]


@pytest.mark.parametrize(
    ("global_lines", "lines", "names", "values", "warnings"),
    [
        (
            ("vrrp_lower_prio_no_advert", "vrrp_higher_prio_send_advert false"),
            ("lower_prio_no_advert off", "higher_prio_send_advert"),
            ("lower_prio_no_advert", "higher_prio_send_advert"),
            ((True, False), (False, True)),
            [],
        ),
        (
            ("vrrp_garp_lower_prio_delay 7", "vrrp_garp_lower_prio_repeat x"),
            ("garp_lower_prio_delay 2", "garp_lower_prio_repeat 0"),
            ("garp_lower_prio_delay", "garp_lower_prio_repeat"),
            ((7, None), (2, 0)),
            ["3: Invalid vrrp_garp_lower_prio_repeat 'x'"],
        ),
    ],
)
def test_a_masters_answers_to_other_priorities_read_as_keepalived_reads_them(
    global_lines, lines, names, values, warnings
):
    globals_block = "".join(f"    {line}\n" for line in global_lines)
    config = parse(f"global_defs {{\n{globals_block}}}\n" + instance(*lines))
    vrrp = config.vrrp_instances[0]
    found_globals = tuple(getattr(config.global_defs, f"vrrp_{name}") for name in names)
    assert (found_globals, tuple(getattr(vrrp, name) for name in names)) == values
    assert warnings_of(config) == warnings
    assert parse(instance()).vrrp_instances[0].lower_prio_no_advert is None


def test_down_timer_adverts_takes_the_global_value_when_the_block_starts():
    first = "global_defs {\n    vrrp_down_timer_adverts 6\n}\n"
    assert parse(first + instance()).vrrp_instances[0].down_timer_adverts == 6
    assert parse(instance() + first).vrrp_instances[0].down_timer_adverts == 3
    config = parse(first + instance("down_timer_adverts 101"))
    assert config.vrrp_instances[0].down_timer_adverts == 6
    assert warnings_of(config) == ["7: (VI_1): Invalid down_timer_adverts [1:100] '101'"]
    strict = parse("global_defs {\n    vrrp_strict\n}\n" + instance("down_timer_adverts 2"))
    assert strict.vrrp_instances[0].down_timer_adverts == 3
    assert warnings_of(strict) == [
        "7: (VI_1) down_timer_adverts is incompatible with strict mode - resetting"
    ]


def test_startup_and_shutdown_scripts_read_as_keepalived_reads_them():
    config = parse(
        "global_defs {\n"
        "    startup_script /bin/true\n"
        "    startup_script /bin/false\n"
        '    shutdown_script "/bin/echo bye" nobody\n'
        "    shutdown_script_timeout 1001\n"
        "    startup_script_timeout 3\n"
        "}\n" + instance()
    )
    defs = config.global_defs
    assert (defs.startup_script.command, defs.startup_script_timeout) == ("/bin/true", 3)
    assert (defs.shutdown_script.command, defs.shutdown_script.user.user) == (
        "/bin/echo bye",
        "nobody",
    )
    assert defs.shutdown_script_timeout == 10
    assert warnings_of(config) == [
        "3: startup script already specified",
        "5: shutdown_script_timeout '1001' must be in [1, 1000] - ignoring",
    ]
