"""Every supported keyword lands in the model with keepalived's meaning and defaults."""

from __future__ import annotations

import ipaddress

import pytest
from config_helpers import MINIMAL_INSTANCE, errors_of, parse, warnings_of

from lvsagent.config import loads
from lvsagent.ipvs.model import SCHEDULERS
from lvsagent.lvs.checkers.http import HttpCheck
from lvsagent.lvs.checkers.misc import MiscCheck
from lvsagent.lvs.checkers.tcp import TcpCheck


def commands(*scripts):
    return tuple(script.command for script in scripts)


FULL_VRRP = """
global_defs {
    router_id DIRECTOR_1
    vrrp_version 3
    vrrp_garp_master_delay 10
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 60
    vrrp_garp_master_refresh_repeat 2
    vrrp_garp_interval 0.001
    vrrp_gna_interval 0.002
    vrrp_startup_delay 5.5
    script_user keepalived_script
    enable_script_security
    vrrp_mcast_group4 224.0.0.19
}
vrrp_script chk_web {
    script "/usr/bin/curl -sf http://127.0.0.1/"
    interval 2
    timeout 3
    weight -20 reverse
    rise 2
    fall 4
    user nobody
    init_fail
}
vrrp_sync_group SG {
    group {
        VI_1
        VI_6
    }
    notify_master /sg/master
    notify_backup /sg/backup
    notify_fault /sg/fault
    notify_stop /sg/stop
    notify /sg/any
    sync_group_tracking_weight
    track_script {
        chk_web
    }
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.5
    preempt_delay 0
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
        10.0.0.3
    }
    virtual_ipaddress {
        10.0.0.100
        10.0.0.101/24 brd 10.0.0.255 dev eth1 scope global label eth1:vip
        10.0.0.102/32 dev eth0 peer 10.0.0.200 no_track
    }
    virtual_ipaddress_excluded {
        2001:db8::1/64 dev eth0
    }
    track_interface {
        eth1
        eth2 weight -10
        eth3 weight 5 reverse
    }
    track_script {
        chk_web
        chk_web weight 7
    }
    notify_master "/usr/local/bin/notify master"
    notify_backup /b
    notify_fault /f
    notify_stop /s
    notify /n
    garp_master_delay 1
    garp_master_repeat 2
    garp_master_refresh 30
    garp_master_refresh_repeat 4
    v3_checksum_as_v2
    dont_track_primary
    no_accept
}
vrrp_instance VI_6 {
    interface eth0
    virtual_router_id 52
    nopreempt
    virtual_ipaddress {
        fe80::1
        2001:db8::10/64
    }
}
"""


@pytest.fixture(scope="module")
def vrrp_config():
    return parse(FULL_VRRP)


def test_global_defs(vrrp_config):
    g = vrrp_config.global_defs
    assert (g.router_id, g.vrrp_version) == ("DIRECTOR_1", 3)
    assert (g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat) == (10, 3)
    assert (g.vrrp_garp_master_refresh, g.vrrp_garp_master_refresh_repeat) == (60, 2)
    assert (g.vrrp_garp_interval, g.vrrp_gna_interval, g.vrrp_startup_delay) == (0.001, 0.002, 5.5)
    assert (g.script_user.user, g.script_user.group) == ("keepalived_script", None)
    assert g.enable_script_security is True
    assert (g.vrrp_strict, g.vrrp_mcast_group4) == (False, "224.0.0.19")


def test_global_defaults_are_keepalived_defaults():
    g = parse("").global_defs
    assert (g.vrrp_version, g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat) == (2, 5, 5)
    assert (g.vrrp_garp_master_refresh, g.vrrp_garp_master_refresh_repeat) == (0, 1)
    assert (g.vrrp_startup_delay, g.enable_script_security, g.vrrp_strict) == (0.0, False, False)


def test_vrrp_script(vrrp_config):
    s = vrrp_config.vrrp_scripts["chk_web"]
    assert s.script == "/usr/bin/curl -sf http://127.0.0.1/"
    assert (s.interval, s.timeout, s.weight, s.weight_reverse) == (2.0, 3.0, -20, True)
    assert (s.rise, s.fall, s.user.user, s.init_fail) == (2, 4, "nobody", True)


def test_vrrp_script_timeout_defaults_to_interval():
    s = parse("vrrp_script c {\n script /bin/true\n interval 4\n}\n").vrrp_scripts["c"]
    assert (s.timeout, s.weight, s.rise, s.fall) == (4.0, 0, 1, 1)


def test_sync_group(vrrp_config):
    (group,) = vrrp_config.sync_groups
    assert group.group == ["VI_1", "VI_6"]
    assert commands(group.notify_master, group.notify_backup, group.notify_fault) == (
        "/sg/master",
        "/sg/backup",
        "/sg/fault",
    )
    assert commands(group.notify_stop, group.notify) == ("/sg/stop", "/sg/any")
    assert [t.name for t in group.track_scripts] == ["chk_web"]
    assert group.tracking_weight  # the members keep their weighted track_interface entries
    assert [i.sync_group for i in vrrp_config.vrrp_instances] == ["SG", "SG"]


def test_vrrp_instance_scalars(vrrp_config):
    vi = vrrp_config.vrrp_instances[0]
    assert (vi.name, vi.state, vi.interface, vi.virtual_router_id) == ("VI_1", "MASTER", "eth0", 51)
    assert (vi.priority, vi.advert_int, vi.version, vi.family) == (150, 0.5, 3, 4)
    assert (vi.unicast_src_ip, vi.unicast_peers) == ("10.0.0.1", ["10.0.0.2", "10.0.0.3"])
    assert commands(vi.notify_master, vi.notify_backup, vi.notify_fault) == (
        "/usr/local/bin/notify master",
        "/b",
        "/f",
    )
    assert commands(vi.notify_stop, vi.notify) == ("/s", "/n")
    assert (vi.garp_master_delay, vi.garp_master_repeat) == (1, 2)
    assert (vi.garp_master_refresh, vi.garp_master_refresh_repeat) == (30, 4)
    assert (vi.checksum_with_pseudo_header, vi.dont_track_primary) == (False, True)
    assert vi.accept is False


def test_virtual_addresses_in_all_forms(vrrp_config):
    vips = vrrp_config.vrrp_instances[0].virtual_ipaddresses
    assert [str(v.address) for v in vips] == ["10.0.0.100/32", "10.0.0.101/24", "10.0.0.102/32"]
    assert (vips[0].dev, vips[0].label, vips[0].scope, vips[0].broadcast) == (None,) * 4
    assert (vips[1].dev, vips[1].label, vips[1].scope, vips[1].broadcast) == (
        "eth1",
        "eth1:vip",
        "global",
        "10.0.0.255",
    )
    assert (vips[2].peer, vips[2].no_track) == ("10.0.0.200", True)
    excluded = vrrp_config.vrrp_instances[0].virtual_ipaddresses_excluded
    assert excluded[0].address == ipaddress.ip_interface("2001:db8::1/64")


def test_ipv6_instance_is_version_3_and_keeps_nopreempt(vrrp_config):
    vi = vrrp_config.vrrp_instances[1]
    assert (vi.family, vi.version, vi.state) == (6, 3, "BACKUP")
    assert (vi.priority, vi.nopreempt) == (100, True)
    assert str(vi.virtual_ipaddresses[0].address) == "fe80::1/128"


def test_tracking_with_weights(vrrp_config):
    vi = vrrp_config.vrrp_instances[0]
    assert [(t.name, t.weight, t.reverse) for t in vi.track_interfaces] == [
        ("eth1", 0, False),
        ("eth2", -10, False),
        ("eth3", 5, True),
    ]
    # keepalived tracks a script once: the second line is ignored with a warning
    assert [(t.name, t.weight) for t in vi.track_scripts] == [("chk_web", None)]
    assert "68: (VI_1) duplicate track_script chk_web - ignoring" in warnings_of(vrrp_config)


def test_instance_defaults():
    vi = parse(MINIMAL_INSTANCE).vrrp_instances[0]
    assert (vi.state, vi.priority, vi.advert_int, vi.version) == ("BACKUP", 100, 1.0, 2)
    assert (vi.nopreempt, vi.preempt_delay, vi.auth_type, vi.auth_pass) == (False, 0.0, None, None)
    assert (vi.checksum_with_pseudo_header, vi.garp_master_delay) == (True, None)


def test_authentication_pass():
    text = MINIMAL_INSTANCE.replace(
        "interface eth0", "interface eth0\nauthentication {\nauth_type PASS\nauth_pass s3cret\n}"
    )
    vi = parse(text).vrrp_instances[0]
    assert (vi.auth_type, vi.auth_pass) == ("PASS", "s3cret")
    assert "s3cret" not in repr(vi)


VIRTUAL_SERVERS = """
virtual_server_group WEB {
    10.0.0.1 80
    10.0.0.2-9 80
    10.0.1.0/30 443
    2001:db8::2-a 80
    fwmark 7
}
virtual_server 192.168.1.10 80 {
    delay_loop 6
    lvs_sched wrr
    lvs_method DR
    persistence_timeout 60
    persistence_granularity 255.255.255.0
    protocol TCP
    quorum 2
    hysteresis 1
    quorum_up "/bin/up arg"
    quorum_down /bin/down
    sorry_server 192.168.1.99 8080
    sorry_server_inhibit
    sorry_server_lvs_method NAT
    inhibit_on_failure
    alpha
    omega
    ha_suspend
    virtualhost www.example.com
    sh-port
    ops
    connect_timeout 7
    retry 4
    real_server 192.168.1.1 80 {
        weight 3
        lvs_method TUN
        notify_up /bin/rs-up
        notify_down /bin/rs-down
        uthreshold 100
        lthreshold 10
        inhibit_on_failure off
        delay_before_retry 9
        HTTP_GET {
            url {
                path /health
                digest 9B3A0C85A887A256D6939DA88AABD8CD
                status_code 200-299 404 503
                virtualhost h.example.com
            }
            url {
                path /other
            }
            connect_ip 192.168.1.2
            connect_port 8080
            bindto 192.168.1.10
            bind_port 5000
            warmup 2
            delay_loop 3
        }
        SSL_GET {
            url {
                path /
                digest 00112233445566778899aabbccddeeff
            }
            http_protocol 1.1
        }
        TCP_CHECK {
            nb_get_retry 2
        }
        MISC_CHECK {
            misc_path "/bin/check arg"
            misc_timeout 5
            misc_dynamic
            user nobody
        }
    }
    real_server 192.168.1.2 80 {
    }
}
virtual_server fwmark 7 {
    lb_algo sh
    lb_kind NAT
    protocol UDP
    persistence_timeout
    real_server 192.168.1.1 {
        MISC_CHECK {
            misc_path /bin/x
        }
    }
}
virtual_server group WEB {
    lvs_sched rr
    protocol SCTP
    real_server 192.168.1.5 80 {
    }
}
virtual_server 2001:db8::80 443 {
    lvs_sched rr
    persistence_granularity 64
    persistence_timeout 10
    real_server 2001:db8::1 443 {
    }
}
"""


@pytest.fixture(scope="module")
def lvs_config():
    return parse(VIRTUAL_SERVERS)


def test_virtual_server_group_entries(lvs_config):
    entries = lvs_config.virtual_server_groups["WEB"].entries
    assert [(e.address, e.last_address, e.port, e.fwmark) for e in entries] == [
        ("10.0.0.1", None, 80, None),
        ("10.0.0.2", "10.0.0.9", 80, None),
        ("10.0.1.0", "10.0.1.3", 443, None),
        ("2001:db8::2", "2001:db8::a", 80, None),
        (None, None, None, 7),
    ]


def test_virtual_server_keywords(lvs_config):
    vs = lvs_config.virtual_servers[0]
    assert (vs.kind, vs.address, vs.port, vs.protocol) == ("ip", "192.168.1.10", 80, "TCP")
    assert (vs.delay_loop, vs.lvs_sched, vs.lvs_method) == (6.0, "wrr", "DR")
    assert (vs.persistence_timeout, vs.persistence_granularity) == (60, "255.255.255.0")
    assert (vs.quorum, vs.hysteresis) == (2, 1)
    assert commands(vs.quorum_up, vs.quorum_down) == ("/bin/up arg", "/bin/down")
    sorry = vs.sorry_server
    assert (sorry.address, sorry.port, sorry.inhibit, sorry.lvs_method) == (
        "192.168.1.99",
        8080,
        True,
        "NAT",
    )
    assert (vs.inhibit_on_failure, vs.alpha, vs.omega, vs.ha_suspend) == (True, True, True, True)
    assert vs.virtualhost == "www.example.com"
    # sh-port dropped: the scheduler is wrr; ops dropped: one-packet scheduling is for UDP
    assert vs.scheduler_flags == []


def test_real_server_keywords(lvs_config):
    rs = lvs_config.virtual_servers[0].real_servers[0]
    assert (rs.address, rs.port, rs.weight, rs.lvs_method) == ("192.168.1.1", 80, 3, "TUN")
    assert commands(rs.notify_up, rs.notify_down) == ("/bin/rs-up", "/bin/rs-down")
    assert (rs.uthreshold, rs.lthreshold) == (100, 10)
    assert rs.inhibit_on_failure is False
    other = lvs_config.virtual_servers[0].real_servers[1]
    assert (other.weight, other.lvs_method, other.inhibit_on_failure) == (1, None, None)


def test_checkers_and_inheritance(lvs_config):
    http, ssl, tcp, misc = lvs_config.virtual_servers[0].real_servers[0].checkers
    assert isinstance(http, HttpCheck) and http.kind == "HTTP_GET"
    assert [(u.path, u.digest, u.status_codes, u.virtualhost) for u in http.urls] == [
        ("/health", "9b3a0c85a887a256d6939da88aabd8cd", [(200, 299), (404, 404), (503, 503)],
         "h.example.com"),
        ("/other", None, [(200, 299)], None),
    ]  # fmt: skip
    assert (http.connect_ip, http.connect_port, http.bindto, http.bind_port) == (
        "192.168.1.2",
        8080,
        "192.168.1.10",
        5000,
    )
    # connect_timeout and retry from the virtual server, delay_before_retry from the real server
    assert (http.connect_timeout, http.retry, http.delay_before_retry) == (7.0, 4, 9.0)
    assert (http.warmup, http.delay_loop) == (2.0, 3.0)
    assert (ssl.kind, ssl.http_protocol, ssl.delay_loop) == ("SSL_GET", "1.1", 6.0)
    # nb_get_retry is ignored, as by keepalived 2.2: the virtual server's retry applies
    assert isinstance(tcp, TcpCheck) and tcp.retry == 4
    assert isinstance(misc, MiscCheck)
    assert (misc.misc_path, misc.misc_timeout, misc.misc_dynamic, misc.user.user) == (
        "/bin/check arg",
        5.0,
        True,
        "nobody",
    )


def test_checker_defaults_per_type():
    config = parse(
        """
        virtual_server 10.0.0.1 80 {
            lvs_sched rr
            real_server 10.0.0.2 80 {
                TCP_CHECK {
                }
                HTTP_GET {
                    url {
                        path /
                    }
                }
                MISC_CHECK {
                    misc_path /bin/true
                }
            }
        }
        """
    )
    tcp, http, misc = config.virtual_servers[0].real_servers[0].checkers
    assert (tcp.connect_timeout, tcp.retry, tcp.delay_before_retry, tcp.delay_loop) == (
        5.0,
        1,
        1.0,
        60.0,
    )
    assert (http.retry, http.delay_before_retry) == (1, 3.0)
    assert (misc.retry, misc.misc_timeout) == (0, None)


def test_fwmark_group_and_ipv6_services(lvs_config):
    fwm, group, v6 = lvs_config.virtual_servers[1:]
    assert (fwm.kind, fwm.fwmark, fwm.lvs_sched, fwm.lvs_method, fwm.protocol) == (
        "fwmark",
        7,
        "sh",
        "NAT",
        "UDP",
    )
    assert (fwm.persistence_timeout, fwm.real_servers[0].port) == (360, None)
    assert (group.kind, group.group, group.protocol, group.lvs_method) == (
        "group",
        "WEB",
        "SCTP",
        "NAT",
    )
    assert (v6.family, v6.persistence_granularity, v6.name) == (6, "64", "[2001:db8::80]:443")


def test_deprecated_names_and_keepalived_defaults_warn_with_their_line(lvs_config):
    assert warnings_of(lvs_config) == [
        "9: virtual server [192.168.1.10]:80: one packet scheduling requires UDP - resetting",
        "28: sh-port only applies to the sh scheduler - ignoring",
        "66: Unknown keyword 'nb_get_retry' - obsolete, ignored as by keepalived",
        "79: lb_algo is deprecated, use lvs_sched",
        "80: lb_kind is deprecated, use lvs_method",
        "81: virtual server FWM 7: protocol specified for fwmark - protocol will be ignored",
        "89: virtual server [WEB]: no forwarding method set, setting default NAT",
        "95: virtual server [2001:db8::80]:443: no protocol set - defaulting to UDP",
        "95: virtual server [2001:db8::80]:443: no forwarding method set, setting default NAT",
    ]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_ipvs_scheduler(scheduler):
    real = "real_server 10.0.0.2 80 {\n }"
    text = f"virtual_server 10.0.0.1 80 {{\n lvs_sched {scheduler}\n {real}\n}}\n"
    assert parse(text).virtual_servers[0].lvs_sched == scheduler


def test_default_scheduler_is_wlc_with_keepalived_warning():
    config = parse("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n")
    assert config.virtual_servers[0].lvs_sched == "wlc"
    assert config.virtual_servers[0].lvs_method == "NAT"
    assert warnings_of(config) == [
        "1: virtual server [10.0.0.1]:80: no scheduler set, using 'wlc'",
        "1: virtual server [10.0.0.1]:80: no protocol set - defaulting to UDP",
        "1: virtual server [10.0.0.1]:80: no forwarding method set, setting default NAT",
    ]


def test_a_virtual_server_without_real_servers_is_dropped_as_by_keepalived():
    config = parse("virtual_server 10.0.0.1 80 {\n lvs_sched rr\n protocol TCP\n}\n")
    assert config.virtual_servers == []
    assert warnings_of(config) == ["1: Virtual server [10.0.0.1]:80 has no real servers - ignoring"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "vrrp_instance V {\n use_vmac_addr\n}\n",
            "2: use_vmac_addr: not supported by lvs-agent",
        ),
        ("bfd_instance B {\n}\n", "1: bfd_instance: not supported by lvs-agent"),
        (
            "virtual_server 10.0.0.1 80 {\n lvs_sched rr\n real_server 10.0.0.2 80 {\n"
            "  BFD_CHECK {\n  }\n }\n}\n",
            "4: BFD_CHECK: not supported by lvs-agent",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lvs_sched rr\n lvs_method TUN type gue port 5\n}\n",
            "3: lvs_method TUN type gue port 5: not supported by lvs-agent",
        ),
        (
            "vrrp_instance V {\n virtual_ipaddress {\n  10.0.0.1 home\n }\n}\n",
            "3: 10.0.0.1: option 'home' not supported by lvs-agent",
        ),
    ],
)
def test_known_but_unsupported_keywords_are_errors(text, expected):
    assert expected in errors_of(text)


def test_ignored_keywords_are_warnings_not_silence():
    config = parse("global_defs {\n notification_email {\n  a@b\n }\n smtp_server 10.0.0.1\n}\n")
    assert warnings_of(config) == [
        "2: notification_email: not supported by lvs-agent, ignored",
        "5: smtp_server: not supported by lvs-agent, ignored",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("global_defs {\n routerid x\n}\n", "2: unknown keyword 'routerid' in global_defs"),
        ("frobnicate 1\n", "1: unknown keyword 'frobnicate' at top level"),
        ("global_defs {\n priority 5\n}\n", "2: priority is not valid in global_defs"),
        ("real_server 10.0.0.1 80 {\n}\n", "1: real_server outside a virtual_server"),
        ("vrrp_instance V {\n virtual_router_id 256\n}\n",
         "2: virtual_router_id: 256 is out of range 1-255"),
        ("virtual_server 10.0.0.1 99999 {\n}\n",
         "1: virtual_server: 99999 is out of range 0-65535"),
        ("virtual_server 10.0.0.1 80 {\n persistence_granularity 255.0.255.0\n}\n",
         "2: persistence_granularity: '255.0.255.0' is not a contiguous netmask"),
        ("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  MISC_CHECK {\n"
         "   connect_port 80\n  }\n }\n}\n", "4: connect_port is not valid in MISC_CHECK"),
        ("virtual_server_group G {\n 10.0.0.9-3 80\n}\n", "2: invalid address range '10.0.0.9-3'"),
        ("vrrp_instance V {\n virtual_ipaddress 10.0.0.1\n}\n",
         "2: virtual_ipaddress: expected a block { ... }"),
    ],
)  # fmt: skip
def test_bad_values_name_the_keyword_and_line(text, expected):
    assert expected in errors_of(text)


def test_a_reload_shares_the_address_texts_of_the_running_configuration():
    """Ten thousand real servers' addresses are one string each, whichever configuration
    (running, reloaded) or engine entry holds them."""
    text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n"
    text += (
        "virtual_server 2001:db8::1 80 {\n protocol TCP\n real_server 2001:0db8::2 80 {\n }\n}\n"
    )
    running, reloaded = loads(text), loads(text)
    for old, new in zip(running.virtual_servers, reloaded.virtual_servers):
        assert new.real_servers[0].address is old.real_servers[0].address
        assert new.address is old.address
    assert reloaded.virtual_servers[1].real_servers[0].address == "2001:db8::2"
